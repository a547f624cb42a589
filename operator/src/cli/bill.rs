//! `regie bill`: invoices for a period from the same YAML as everywhere, plus any Usage objects
//! (the ledger, e.g. exported with kubectl), SlaReports (their credits) and Invoices (their
//! numbers). Prints JSON, CSV or UBL, or writes one file per invoice with `--out DIR`.
//!
//! The clock is the system's, or `REGIE_NOW` (RFC 3339) for reproducible output: it decides
//! only whether an invoice is `draft` (period still open) or `final`, and a UBL issue date.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;
use kube::ResourceExt;
use regie_crds::Tenant;
use regie_crds::generated::InvoiceState;

use super::BillFormat;
use crate::billing::engine::{Credit, Credits, bill, from_inventory};
use crate::billing::export::{file_name, to_csv, to_json};
use crate::billing::invoice::{Invoice, State};
use crate::billing::period::{Month, Period, local_date};
use crate::billing::proration::Calendar;
use crate::billing::ubl::{Buyer, Seller, invoice_xml};
use crate::billing::{BillingError, amsterdam};
use crate::controller::invoicing::invoice_name;
use crate::input::{self, Object};
use crate::inventory::Inventory;

/// A priced period: the invoices and the tenants they are for.
#[derive(Debug)]
pub struct Bill {
    pub period: Period,
    pub invoices: Vec<Invoice>,
    pub tenants: BTreeMap<String, Tenant>,
}

/// The clock of the offline commands: `REGIE_NOW` when set, else the system clock.
pub fn now() -> Result<Timestamp, String> {
    match std::env::var("REGIE_NOW") {
        Ok(s) => s
            .parse()
            .map_err(|e| format!("REGIE_NOW: {s:?} is not an RFC 3339 time: {e}")),
        Err(_) => Ok(Timestamp::now()),
    }
}

/// Loads, validates and prices; every problem as one printable line when it cannot.
pub fn bill_paths(paths: &[PathBuf], period: &str, now: Timestamp) -> Result<Bill, Vec<String>> {
    let period = Period::parse(period).map_err(|e| vec![format!("--period: {e}")])?;
    let loaded = input::load(paths);
    let mut problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    let mut credits: Credits = BTreeMap::new();
    let mut numbers: BTreeMap<(String, String), String> = BTreeMap::new();
    for (source, o) in &loaded.objects {
        match o {
            Object::SlaReport(r) => {
                // Credits are monthly; weekly and daily reports only inform.
                let Ok((y, m)) = regie_crds::validate::parse_month(&r.spec.period) else {
                    continue;
                };
                for c in r.status.iter().flat_map(|s| s.components.iter()) {
                    match Credit::of_entry(c) {
                        Err(e) => {
                            problems.push(format!("{source}: SlaReport/{}: {e}", r.name_any()))
                        }
                        Ok(None) => {}
                        Ok(Some(credit)) => credits
                            .entry((r.spec.tenant.clone(), c.component.clone(), Month::new(y, m)))
                            .or_default()
                            .push(credit),
                    }
                }
            }
            // A period's own invoice, not a leaving tenant's closing one (`<name>-c1`): the
            // period priced here is the whole of what both bill.
            Object::Invoice(i)
                if i.spec.state == InvoiceState::Final
                    && i.name_any() == invoice_name(&i.spec.tenant, &i.spec.period) =>
            {
                if let Some(n) = &i.spec.number {
                    numbers.insert((i.spec.tenant.clone(), i.spec.period.clone()), n.clone());
                }
            }
            _ => {}
        }
    }
    let inv = Inventory::new(loaded.objects);
    problems.extend(inv.check().iter().map(ToString::to_string));
    let months: Vec<(i16, i8)> = period.months().iter().map(|m| (m.year, m.month)).collect();
    problems.extend(
        inv.unclaimed_credits(&months)
            .iter()
            .map(ToString::to_string),
    );
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(problems);
    }
    let priced = (|| -> Result<Vec<Invoice>, BillingError> {
        let cal = Calendar::new(amsterdam()?);
        let (cat, tenants) = from_inventory(&inv, cal)?;
        bill(&cat, &tenants, &credits, period, now)
    })();
    let mut invoices = priced.map_err(|e| vec![with_files(&e.to_string(), &inv)])?;
    for i in &mut invoices {
        if i.state == State::Final {
            i.number = numbers.get(&(i.tenant.clone(), i.period.clone())).cloned();
        }
    }
    let tenants = inv
        .tenants
        .iter()
        .map(|t| (t.object.name_any(), t.object.clone()))
        .collect();
    Ok(Bill {
        period,
        invoices,
        tenants,
    })
}

/// A pricing error names the PriceList, CostPool, Tenant or Usage at fault; this adds the file
/// it came from.
fn with_files(message: &str, inv: &Inventory) -> String {
    let mut out = message.to_string();
    let sourced = |kind, name: String, source| (kind, name, source);
    let named = (inv.price_lists.iter())
        .map(|p| sourced("PriceList", p.object.name_any(), &p.source))
        .chain((inv.pools.iter()).map(|p| sourced("CostPool", p.object.name_any(), &p.source)))
        .chain((inv.tenants.iter()).map(|t| sourced("Tenant", t.object.name_any(), &t.source)))
        .chain((inv.usages.iter()).map(|u| sourced("Usage", u.object.name_any(), &u.source)));
    for (kind, name, source) in named {
        let at = format!("{kind}/{name}:");
        out = out.replacen(&at, &format!("{kind}/{name} ({source}):"), 1);
    }
    out
}

/// The UBL document of one invoice.
fn ubl(b: &Bill, inv: &Invoice, now: Timestamp) -> Result<String, BillingError> {
    let tz = amsterdam()?;
    let tenant = b
        .tenants
        .get(&inv.tenant)
        .ok_or_else(|| BillingError::input(format!("Tenant/{} is not in the input", inv.tenant)))?;
    invoice_xml(
        inv,
        &Buyer::from_tenant(tenant)?,
        &Seller::default(),
        local_date(now, &tz),
        &tz,
    )
}

fn render(
    b: &Bill,
    format: BillFormat,
    now: Timestamp,
    invoices: &[Invoice],
    period: &str,
) -> Result<String, BillingError> {
    let tz = amsterdam()?;
    match format {
        BillFormat::Json => to_json(period, invoices, &tz),
        BillFormat::Csv => to_csv(invoices, &tz),
        BillFormat::Ubl => {
            let mut out = String::new();
            for i in invoices {
                out.push_str(&ubl(b, i, now)?);
            }
            Ok(out)
        }
    }
}

pub fn run(paths: &[PathBuf], period: &str, format: BillFormat, out: Option<&Path>) -> ExitCode {
    let now = match now() {
        Ok(n) => n,
        Err(e) => {
            say!("regie bill: {e}");
            return ExitCode::from(1);
        }
    };
    let b = match bill_paths(paths, period, now) {
        Ok(b) => b,
        Err(problems) => {
            for p in problems {
                say!("{p}");
            }
            return ExitCode::from(1);
        }
    };
    let result = match out {
        None => {
            if format == BillFormat::Ubl && b.invoices.len() > 1 {
                say!(
                    "regie bill: {} UBL documents follow one another; use --out DIR for one file each",
                    b.invoices.len()
                );
            }
            render(&b, format, now, &b.invoices, &b.period.to_string()).map(|s| super::emit(&s))
        }
        Some(dir) => write_files(&b, format, now, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("regie bill: {e}");
            ExitCode::from(1)
        }
    }
}

fn write_files(
    b: &Bill,
    format: BillFormat,
    now: Timestamp,
    dir: &Path,
) -> Result<(), BillingError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| BillingError::input(format!("--out {}: {e}", dir.display())))?;
    let ext = match format {
        BillFormat::Json => "json",
        BillFormat::Csv => "csv",
        BillFormat::Ubl => "xml",
    };
    for inv in &b.invoices {
        let text = render(b, format, now, std::slice::from_ref(inv), &inv.period)?;
        let path = dir.join(file_name(inv, ext));
        std::fs::write(&path, text)
            .map_err(|e| BillingError::input(format!("cannot write {}: {e}", path.display())))?;
    }
    say!("{} invoices written to {}", b.invoices.len(), dir.display());
    Ok(())
}
