//! Exports of invoices for finance: JSON (the contract of `regie bill -o json`) and CSV (one row
//! per invoice line). UBL lives in [`super::ubl`].
//!
//! JSON: `{"period", "currency", "invoices": [{"tenant", "total", "lines": [{"kind",
//! "description", "quantity", "unit", "unitPrice", "amount", "from", "to"}]}]}` with amounts as
//! decimal strings of two decimals. `total` is the sum of the rounded lines (before VAT), as the
//! contract says; `vat` and `totalInclVat` are added beside it, with `subtotal` (= `total`),
//! `state`, `number` and the invoice's own `period`, `from` and `to`.

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::BillingError;
use super::invoice::{Invoice, State, line_spec};
use super::{local_rfc3339, money};

/// One invoice as a JSON object.
pub fn invoice_json(inv: &Invoice, tz: &TimeZone) -> Value {
    let lines: Vec<Value> = inv
        .lines
        .iter()
        .map(|l| {
            let s = line_spec(l, tz);
            let mut line = json!({
                "kind": s.kind,
                "description": s.description,
                "quantity": s.quantity,
                "unit": s.unit,
                "unitPrice": s.unit_price,
                "amount": s.amount,
                "from": s.from,
                "to": s.to,
                "vatCategory": s.vat_category,
                "vatPercent": s.vat_percent,
            });
            if let Some(reason) = s.vat_exemption_reason {
                line["vatExemptionReason"] = json!(reason);
            }
            line
        })
        .collect();
    let vat: Vec<Value> = inv
        .vat_breakdown()
        .iter()
        .map(|b| {
            json!({
                "category": b.vat.category,
                "percent": b.vat.percent.normalize().to_string(),
                "taxable": money(b.taxable),
                "vat": money(b.tax),
            })
        })
        .collect();
    let mut o = json!({
        "tenant": inv.tenant,
        "period": inv.period,
        "from": local_rfc3339(inv.from, tz),
        "to": local_rfc3339(inv.to, tz),
        "state": match inv.state { State::Draft => "draft", State::Final => "final" },
        "currency": inv.currency,
        "total": money(inv.subtotal()),
        "subtotal": money(inv.subtotal()),
        "vat": money(inv.vat()),
        "totalInclVat": money(inv.payable()),
        "vatBreakdown": vat,
        "lines": lines,
    });
    if let (Some(n), Some(map)) = (&inv.number, o.as_object_mut()) {
        map.insert("number".into(), Value::String(n.clone()));
    }
    o
}

/// The JSON document of `regie bill -o json`.
pub fn json_document(period: &str, invoices: &[Invoice], tz: &TimeZone) -> Value {
    json!({
        "period": period,
        "currency": "EUR",
        "invoices": invoices.iter().map(|i| invoice_json(i, tz)).collect::<Vec<_>>(),
    })
}

/// Pretty JSON with a final newline.
pub fn to_json(period: &str, invoices: &[Invoice], tz: &TimeZone) -> Result<String, BillingError> {
    serde_json::to_string_pretty(&json_document(period, invoices, tz))
        .map(|s| s + "\n")
        .map_err(|e| BillingError::input(format!("cannot write JSON: {e}")))
}

/// Columns of the CSV export.
pub const CSV_HEADER: [&str; 16] = [
    "period",
    "tenant",
    "number",
    "state",
    "line",
    "kind",
    "description",
    "quantity",
    "unit",
    "unitPrice",
    "amount",
    "from",
    "to",
    "currency",
    "vatCategory",
    "vatPercent",
];

/// One row per invoice line, with a header row.
pub fn to_csv(invoices: &[Invoice], tz: &TimeZone) -> Result<String, BillingError> {
    let err = |e: csv::Error| BillingError::input(format!("cannot write CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(err)?;
    for inv in invoices {
        for (i, l) in inv.lines.iter().enumerate() {
            let s = line_spec(l, tz);
            let n = (i + 1).to_string();
            let pct = l.vat.percent.normalize().to_string();
            w.write_record([
                inv.period.as_str(),
                inv.tenant.as_str(),
                inv.number.as_deref().unwrap_or(""),
                match inv.state {
                    State::Draft => "draft",
                    State::Final => "final",
                },
                n.as_str(),
                s.kind.as_str(),
                s.description.as_str(),
                s.quantity.as_str(),
                s.unit.as_str(),
                s.unit_price.as_str(),
                s.amount.as_str(),
                s.from.as_str(),
                s.to.as_str(),
                inv.currency.as_str(),
                l.vat.category.as_str(),
                pct.as_str(),
            ])
            .map_err(err)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| BillingError::input(format!("cannot write CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| BillingError::input(format!("cannot write CSV: {e}")))
}

/// The file an invoice is written to with `--out`: `<tenant>-<period>.<ext>`.
pub fn file_name(inv: &Invoice, ext: &str) -> String {
    format!("{}-{}.{ext}", inv.tenant, inv.period)
}
