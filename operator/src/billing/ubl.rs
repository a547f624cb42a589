//! UBL 2.1 invoices in the shape of Peppol BIS Billing 3.0 (EN 16931), as Dutch public bodies
//! receive e-invoices: the buyer's Peppol endpoint from the tenant's electronic address, its
//! purchase-order reference as buyer and order reference, VAT per treatment, and one
//! `InvoiceLine` per line with UN/ECE unit codes (C62 for accounts, components and items, HUR for
//! hours, P1 for percent).
//!
//! Written with a small writer that escapes every text and attribute; element order follows the
//! UBL 2.1 schema, which the test suite checks with `eu-einvoice validate`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use regie_crds::Tenant;
use rust_decimal::Decimal;

use super::invoice::{Invoice, State};
use super::{BillingError, decimal_text, money};

/// The invoicing organisation. The defaults are the examples' (fictitious) ICT West-Brabant West.
#[derive(Clone, Debug, PartialEq)]
pub struct Seller {
    pub name: String,
    /// Peppol EAS scheme and identifier of the seller's endpoint.
    pub endpoint_scheme: String,
    pub endpoint_id: String,
    /// VAT identifier, e.g. `NL001234567B01`.
    pub vat_id: Option<String>,
    /// Legal registration (scheme, id), e.g. KvK `0106`.
    pub legal_id: Option<(String, String)>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
    pub iban: Option<String>,
    pub email: Option<String>,
    /// Days between issue and due date.
    pub payment_days: i32,
}

impl Default for Seller {
    fn default() -> Self {
        Seller {
            name: "ICT West-Brabant West".into(),
            endpoint_scheme: "0190".into(),
            endpoint_id: "00000001009999999000".into(),
            vat_id: Some("NL001234567B01".into()),
            legal_id: Some(("0106".into(), "12345678".into())),
            street: Some("Markt 1".into()),
            city: Some("Roosendaal".into()),
            postal_code: Some("4701 PC".into()),
            country: "NL".into(),
            iban: Some("NL91ABNA0417164300".into()),
            email: Some("facturen@ict-wbw.example".into()),
            payment_days: 30,
        }
    }
}

/// The customer as an invoice names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Buyer {
    pub name: String,
    pub endpoint_scheme: String,
    pub endpoint_id: String,
    pub purchase_order: Option<String>,
    pub customer_reference: Option<String>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
}

impl Buyer {
    /// The buyer of a tenant; Peppol needs its electronic address.
    pub fn from_tenant(t: &Tenant) -> Result<Buyer, BillingError> {
        let name = t.metadata.name.clone().unwrap_or_default();
        let b = &t.spec.billing;
        let addr = b.electronic_address.as_ref().ok_or_else(|| {
            BillingError::input(format!(
                "Tenant/{name}: spec.billing.electronicAddress is required for UBL invoices (the buyer's Peppol endpoint, e.g. scheme 0190 and an OIN)"
            ))
        })?;
        let post = b.address.clone().unwrap_or_default();
        Ok(Buyer {
            name: t.spec.display_name.clone(),
            endpoint_scheme: addr.scheme.clone(),
            endpoint_id: addr.id.clone(),
            purchase_order: b.purchase_order_reference.clone(),
            customer_reference: b.customer_reference.clone(),
            street: post.street,
            city: post.city,
            postal_code: post.postal_code,
            country: post.country.unwrap_or_else(|| "NL".into()),
        })
    }
}

/// Escapes text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A minimal indenting XML writer.
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, tag: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    fn close(&mut self, tag: &str) {
        self.depth -= 1;
        self.indent();
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
    }

    fn leaf_attr(&mut self, tag: &str, attrs: &[(&str, &str)], text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v));
            self.out.push('"');
        }
        self.out.push('>');
        self.out.push_str(&escape(text));
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
    }

    fn leaf(&mut self, tag: &str, text: &str) {
        self.leaf_attr(tag, &[], text);
    }

    fn amount(&mut self, tag: &str, currency: &str, d: Decimal) {
        self.leaf_attr(tag, &[("currencyID", currency)], &money(d));
    }
}

fn tax_category(x: &mut Xml, tag: &str, category: &str, percent: Decimal, reason: Option<&str>) {
    x.open(tag);
    x.leaf("cbc:ID", category);
    // Category O (outside the scope of VAT) carries no rate at all.
    if category != "O" {
        x.leaf("cbc:Percent", &decimal_text(percent, 0, 4));
    }
    if let Some(r) = reason {
        x.leaf("cbc:TaxExemptionReason", r);
    }
    x.open("cac:TaxScheme");
    x.leaf("cbc:ID", "VAT");
    x.close("cac:TaxScheme");
    x.close(tag);
}

/// The VAT treatments Peppol BIS 3.0 rejects, refused before a document is written: the
/// PriceLists are validated so (see `regie_crds::validate`), but an invoice may carry lines
/// priced before that (a final one, a correction at an old treatment). Category O only alone
/// (BR-O-11 to BR-O-14); S only above 0% (BR-S-05); AE not at all, as it needs the buyer's VAT
/// identifier (BR-AE-02), which a Tenant does not carry.
fn peppol_vat(inv: &Invoice) -> Result<(), String> {
    let mut categories: Vec<&str> = inv.lines.iter().map(|l| l.vat.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    if categories.contains(&"O") && categories.len() > 1 {
        return Err(format!(
            "VAT category O (not subject to VAT) cannot share an invoice with other categories \
             (Peppol BR-O-11 to BR-O-14); it has {}",
            categories.join(", ")
        ));
    }
    if categories.contains(&"AE") {
        return Err(
            "VAT category AE (reverse charge) needs the buyer's VAT identifier (Peppol \
             BR-AE-02), which a Tenant does not carry"
                .into(),
        );
    }
    if let Some(l) = inv
        .lines
        .iter()
        .find(|l| l.vat.category == "S" && l.vat.percent.is_zero())
    {
        return Err(format!(
            "line \"{}\" is VAT category S at 0% (Peppol BR-S-05: a zero rate is category Z)",
            l.description
        ));
    }
    Ok(())
}

/// The reason printed for categories that carry no VAT, when the PriceList gives none.
fn exemption_reason(category: &str, given: Option<&str>) -> Option<String> {
    if category == "S" || category == "Z" {
        return None;
    }
    Some(given.map_or_else(
        || match category {
            "AE" => "Reverse charge".to_string(),
            "O" => "Not subject to VAT".to_string(),
            _ => "Exempt from VAT".to_string(),
        },
        str::to_string,
    ))
}

/// The period printed on a line: the days it covers that fall in the invoice period, or none.
///
/// Peppol makes a line period outside the invoice period fatal (PEPPOL-EN16931-R110 for the
/// start, R111 for the end), yet lines do reach past it: a pool instalment due on the first day
/// of a quarter covers the whole quarter while the invoice may be a month, and a correction
/// covers a stretch of an earlier, already final period. A line period is optional (BT-134/135),
/// so where the line overlaps the invoice period the overlap is printed — every date in it is
/// true, and an instalment keeps its due day as its start — and where it does not, none is:
/// any date inside the invoice period would then be false. The caller puts the whole stretch in
/// the line's description, so nothing is lost.
fn line_period(line: (Date, Date), invoice: (Date, Date)) -> Option<(Date, Date)> {
    let from = line.0.max(invoice.0);
    let to = line.1.min(invoice.1);
    (from <= to).then_some((from, to))
}

/// The invoice as a UBL 2.1 document. Drafts carry a provisional id (`CONCEPT-<tenant>-<period>`)
/// until they are final and numbered.
pub fn invoice_xml(
    inv: &Invoice,
    buyer: &Buyer,
    seller: &Seller,
    issue: Date,
    tz: &TimeZone,
) -> Result<String, BillingError> {
    let cur = inv.currency.as_str();
    let id = inv
        .number
        .clone()
        .unwrap_or_else(|| format!("CONCEPT-{}-{}", inv.tenant, inv.period));
    peppol_vat(inv).map_err(|m| BillingError::input(format!("UBL invoice {id}: {m}")))?;
    // Not subject to VAT: the invoice carries no seller VAT identifier (Peppol BR-O-02).
    let outside_scope = inv.lines.iter().any(|l| l.vat.category == "O");
    let due = issue
        .checked_add(jiff::Span::new().days(i64::from(seller.payment_days)))
        .map_err(|e| BillingError::input(format!("due date of {id}: {e}")))?;
    let last_day = |t: jiff::Timestamp| -> Date {
        let d = super::period::local_date(t, tz);
        if t.to_zoned(tz.clone()).time() == jiff::civil::Time::midnight() {
            d.yesterday().unwrap_or(d)
        } else {
            d
        }
    };
    let mut x = Xml {
        out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        depth: 0,
    };
    x.out.push_str(
        "<Invoice xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\" xmlns:cac=\"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2\" xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\">\n",
    );
    x.depth = 1;
    x.leaf(
        "cbc:CustomizationID",
        "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0",
    );
    x.leaf(
        "cbc:ProfileID",
        "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0",
    );
    x.leaf("cbc:ID", &id);
    x.leaf("cbc:IssueDate", &issue.to_string());
    x.leaf("cbc:DueDate", &due.to_string());
    x.leaf("cbc:InvoiceTypeCode", "380");
    let state = match inv.state {
        State::Draft => "draft",
        State::Final => "final",
    };
    x.leaf(
        "cbc:Note",
        &format!(
            "regie invoice of {} for {} ({state})",
            inv.tenant, inv.period
        ),
    );
    x.leaf("cbc:DocumentCurrencyCode", cur);
    let buyer_ref = buyer
        .purchase_order
        .clone()
        .or_else(|| buyer.customer_reference.clone())
        .unwrap_or_else(|| inv.tenant.clone());
    x.leaf("cbc:BuyerReference", &buyer_ref);
    let inv_start = super::period::local_date(inv.from, tz);
    let inv_end = last_day(inv.to).max(inv_start);
    x.open("cac:InvoicePeriod");
    x.leaf("cbc:StartDate", &inv_start.to_string());
    x.leaf("cbc:EndDate", &inv_end.to_string());
    x.close("cac:InvoicePeriod");
    if let Some(po) = &buyer.purchase_order {
        x.open("cac:OrderReference");
        x.leaf("cbc:ID", po);
        x.close("cac:OrderReference");
    }

    x.open("cac:AccountingSupplierParty");
    x.open("cac:Party");
    x.leaf_attr(
        "cbc:EndpointID",
        &[("schemeID", &seller.endpoint_scheme)],
        &seller.endpoint_id,
    );
    x.open("cac:PartyName");
    x.leaf("cbc:Name", &seller.name);
    x.close("cac:PartyName");
    address(
        &mut x,
        seller.street.as_deref(),
        seller.city.as_deref(),
        seller.postal_code.as_deref(),
        &seller.country,
    );
    if let Some(v) = seller.vat_id.as_ref().filter(|_| !outside_scope) {
        x.open("cac:PartyTaxScheme");
        x.leaf("cbc:CompanyID", v);
        x.open("cac:TaxScheme");
        x.leaf("cbc:ID", "VAT");
        x.close("cac:TaxScheme");
        x.close("cac:PartyTaxScheme");
    }
    x.open("cac:PartyLegalEntity");
    x.leaf("cbc:RegistrationName", &seller.name);
    if let Some((scheme, lid)) = &seller.legal_id {
        x.leaf_attr("cbc:CompanyID", &[("schemeID", scheme)], lid);
    }
    x.close("cac:PartyLegalEntity");
    if let Some(e) = &seller.email {
        x.open("cac:Contact");
        x.leaf("cbc:ElectronicMail", e);
        x.close("cac:Contact");
    }
    x.close("cac:Party");
    x.close("cac:AccountingSupplierParty");

    x.open("cac:AccountingCustomerParty");
    x.open("cac:Party");
    x.leaf_attr(
        "cbc:EndpointID",
        &[("schemeID", &buyer.endpoint_scheme)],
        &buyer.endpoint_id,
    );
    if let Some(c) = &buyer.customer_reference {
        x.open("cac:PartyIdentification");
        x.leaf("cbc:ID", c);
        x.close("cac:PartyIdentification");
    }
    address(
        &mut x,
        buyer.street.as_deref(),
        buyer.city.as_deref(),
        buyer.postal_code.as_deref(),
        &buyer.country,
    );
    x.open("cac:PartyLegalEntity");
    x.leaf("cbc:RegistrationName", &buyer.name);
    x.close("cac:PartyLegalEntity");
    x.close("cac:Party");
    x.close("cac:AccountingCustomerParty");

    if let Some(iban) = &seller.iban {
        x.open("cac:PaymentMeans");
        x.leaf("cbc:PaymentMeansCode", "58");
        x.leaf("cbc:PaymentID", &id);
        x.open("cac:PayeeFinancialAccount");
        x.leaf("cbc:ID", iban);
        x.leaf("cbc:Name", &seller.name);
        x.close("cac:PayeeFinancialAccount");
        x.close("cac:PaymentMeans");
    }
    x.open("cac:PaymentTerms");
    x.leaf(
        "cbc:Note",
        &format!("Payment within {} days", seller.payment_days),
    );
    x.close("cac:PaymentTerms");

    let breakdown = inv.vat_breakdown();
    let vat_total: Decimal = breakdown.iter().map(|b| b.tax).sum();
    x.open("cac:TaxTotal");
    x.amount("cbc:TaxAmount", cur, vat_total);
    for b in &breakdown {
        x.open("cac:TaxSubtotal");
        x.amount("cbc:TaxableAmount", cur, b.taxable);
        x.amount("cbc:TaxAmount", cur, b.tax);
        let reason = exemption_reason(&b.vat.category, b.vat.exemption_reason.as_deref());
        tax_category(
            &mut x,
            "cac:TaxCategory",
            &b.vat.category,
            b.vat.percent,
            reason.as_deref(),
        );
        x.close("cac:TaxSubtotal");
    }
    x.close("cac:TaxTotal");

    let net = inv.subtotal();
    x.open("cac:LegalMonetaryTotal");
    x.amount("cbc:LineExtensionAmount", cur, net);
    x.amount("cbc:TaxExclusiveAmount", cur, net);
    x.amount("cbc:TaxInclusiveAmount", cur, net + vat_total);
    x.amount("cbc:PayableAmount", cur, net + vat_total);
    x.close("cac:LegalMonetaryTotal");

    for (i, l) in inv.lines.iter().enumerate() {
        // EN 16931 wants a price of zero or more: a negative line has a negative quantity.
        let (qty, price) = if l.unit_price < Decimal::ZERO {
            (-l.quantity, -l.unit_price)
        } else {
            (l.quantity, l.unit_price)
        };
        x.open("cac:InvoiceLine");
        x.leaf("cbc:ID", &(i + 1).to_string());
        x.leaf_attr(
            "cbc:InvoicedQuantity",
            &[("unitCode", l.unit.ubl_code())],
            &decimal_text(qty, 0, 6),
        );
        x.amount("cbc:LineExtensionAmount", cur, l.amount);
        let start = super::period::local_date(l.from, tz);
        let covers = (start, last_day(l.to).max(start));
        let shown = line_period(covers, (inv_start, inv_end));
        if let Some((from, to)) = shown {
            x.open("cac:InvoicePeriod");
            x.leaf("cbc:StartDate", &from.to_string());
            x.leaf("cbc:EndDate", &to.to_string());
            x.close("cac:InvoicePeriod");
        }
        x.open("cac:Item");
        if shown == Some(covers) {
            x.leaf("cbc:Description", &l.description);
        } else {
            // The days the line is for are no longer all in its period: the description keeps
            // them (which quarter an instalment pays, which stretch a correction corrects).
            x.leaf(
                "cbc:Description",
                &format!("{} (covers {} to {})", l.description, covers.0, covers.1),
            );
        }
        x.leaf("cbc:Name", &item_name(l));
        x.open("cac:SellersItemIdentification");
        x.leaf("cbc:ID", l.kind.as_str());
        x.close("cac:SellersItemIdentification");
        // Exemption reasons belong to the VAT breakdown only; a line names the category and rate.
        tax_category(
            &mut x,
            "cac:ClassifiedTaxCategory",
            &l.vat.category,
            l.vat.percent,
            None,
        );
        x.close("cac:Item");
        x.open("cac:Price");
        x.amount_unrounded("cbc:PriceAmount", cur, price);
        x.close("cac:Price");
        x.close("cac:InvoiceLine");
    }
    x.depth = 0;
    x.out.push_str("</Invoice>\n");
    Ok(x.out)
}

impl Xml {
    /// Prices may carry more than two decimals (a prorated unit price), up to six.
    fn amount_unrounded(&mut self, tag: &str, currency: &str, d: Decimal) {
        self.leaf_attr(tag, &[("currencyID", currency)], &decimal_text(d, 2, 6));
    }
}

fn address(
    x: &mut Xml,
    street: Option<&str>,
    city: Option<&str>,
    postal: Option<&str>,
    country: &str,
) {
    x.open("cac:PostalAddress");
    if let Some(s) = street {
        x.leaf("cbc:StreetName", s);
    }
    if let Some(c) = city {
        x.leaf("cbc:CityName", c);
    }
    if let Some(p) = postal {
        x.leaf("cbc:PostalZone", p);
    }
    x.open("cac:Country");
    x.leaf("cbc:IdentificationCode", country);
    x.close("cac:Country");
    x.close("cac:PostalAddress");
}

/// A short item name (the description says the rest).
fn item_name(l: &super::invoice::Line) -> String {
    use super::invoice::LineKind::*;
    match l.kind {
        Account => "Workplace accounts",
        Component => "Hosting component",
        FlexibleHour => "Flexible services",
        Pool => "Shared costs",
        Credit => "Service credit",
        Notice => "Notice period",
        Correction => "Correction",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"R&D <"x"> 'y'"#),
            "R&amp;D &lt;&quot;x&quot;&gt; &apos;y&apos;"
        );
        assert_eq!(escape("a\u{1}b"), "a b");
    }

    fn at(d: Date, tz: &TimeZone) -> jiff::Timestamp {
        super::super::period::midnight(d, tz).unwrap()
    }

    /// The `InvoicePeriod` of each `InvoiceLine`, `None` where a line has none.
    fn line_periods(xml: &str) -> Vec<Option<(String, String)>> {
        let tag = |s: &str, t: &str| -> Option<String> {
            let open = format!("<cbc:{t}>");
            let i = s.find(&open)? + open.len();
            Some(s[i..i + s[i..].find('<')?].to_string())
        };
        xml.split("<cac:InvoiceLine>")
            .skip(1)
            .map(|l| {
                let head = &l[..l.find("<cac:Item>").unwrap()];
                let p = &head[head.find("<cac:InvoicePeriod>")?..];
                Some((tag(p, "StartDate")?, tag(p, "EndDate")?))
            })
            .collect()
    }

    fn buyer() -> Buyer {
        Buyer {
            name: "Gemeente Tholen".into(),
            endpoint_scheme: "0190".into(),
            endpoint_id: "00000001001234567000".into(),
            purchase_order: None,
            customer_reference: None,
            street: None,
            city: None,
            postal_code: None,
            country: "NL".into(),
        }
    }

    #[test]
    fn one_tax_subtotal_per_category_and_rate() {
        use super::super::invoice::{Line, LineKind, Unit, VatTreatment};
        use jiff::civil::date;
        use std::sync::Arc;
        let tz = super::super::amsterdam().unwrap();
        let exempt = |desc: &str, reason: &str| Line {
            kind: LineKind::Pool,
            description: desc.into(),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: Decimal::ONE_HUNDRED,
            amount: Decimal::ONE_HUNDRED,
            from: at(date(2026, 1, 1), &tz),
            to: at(date(2026, 2, 1), &tz),
            vat: Arc::new(VatTreatment {
                category: "E".into(),
                percent: Decimal::ZERO,
                exemption_reason: Some(reason.into()),
            }),
        };
        let inv = Invoice {
            tenant: "tholen".into(),
            period: "2026-01".into(),
            from: at(date(2026, 1, 1), &tz),
            to: at(date(2026, 2, 1), &tz),
            state: State::Draft,
            number: None,
            currency: "EUR".into(),
            lines: vec![
                exempt("a", "Article 11 Wet OB"),
                exempt("b", "art. 11 lid 1 Wet OB"),
            ],
        };
        let xml = invoice_xml(&inv, &buyer(), &Seller::default(), date(2026, 2, 2), &tz).unwrap();
        assert_eq!(xml.matches("<cac:TaxSubtotal>").count(), 1, "{xml}");
        assert!(
            xml.contains("<cbc:TaxableAmount currencyID=\"EUR\">200.00</cbc:TaxableAmount>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<cbc:TaxExemptionReason>Article 11 Wet OB; art. 11 lid 1 Wet OB</cbc:TaxExemptionReason>"
            ),
            "{xml}"
        );
    }

    #[test]
    fn line_periods_lie_within_the_invoice_period() {
        use super::super::invoice::{Line, LineKind, Unit, VatTreatment};
        use jiff::civil::date;
        use std::sync::Arc;
        let tz = super::super::amsterdam().unwrap();
        let line = |kind, desc: &str, from, to| Line {
            kind,
            description: desc.into(),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: Decimal::ONE_HUNDRED,
            amount: Decimal::ONE_HUNDRED,
            from: at(from, &tz),
            to: at(to, &tz),
            vat: Arc::new(VatTreatment::default()),
        };
        let inv = Invoice {
            tenant: "tholen".into(),
            period: "2026-01".into(),
            from: at(date(2026, 1, 1), &tz),
            to: at(date(2026, 2, 1), &tz),
            state: State::Draft,
            number: None,
            currency: "EUR".into(),
            lines: vec![
                line(
                    LineKind::Account,
                    "standard",
                    date(2026, 1, 1),
                    date(2026, 2, 1),
                ),
                // A quarterly instalment, due on the first day, covering the quarter ahead.
                line(
                    LineKind::Pool,
                    "Joint i-programme 2026, instalment 1 of 4",
                    date(2026, 1, 1),
                    date(2026, 4, 1),
                ),
                // A correction of the final invoice of December.
                line(
                    LineKind::Correction,
                    "Correction of invoice RG-2025-000060 (2025-12): standard: was 1.00, is 2.00",
                    date(2025, 12, 1),
                    date(2026, 1, 1),
                ),
            ],
        };
        let xml = invoice_xml(&inv, &buyer(), &Seller::default(), date(2026, 2, 2), &tz).unwrap();
        let p = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(
            line_periods(&xml),
            vec![
                p("2026-01-01", "2026-01-31"),
                // Cut at the invoice's end (PEPPOL-EN16931-R111)…
                p("2026-01-01", "2026-01-31"),
                // …and left out where nothing of it falls in the invoice period (R110).
                None,
            ],
            "{xml}"
        );
        // What the printed period no longer says, the description does.
        assert!(
            xml.contains(
                "<cbc:Description>Joint i-programme 2026, instalment 1 of 4 (covers 2026-01-01 to 2026-03-31)</cbc:Description>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("is 2.00 (covers 2025-12-01 to 2025-12-31)</cbc:Description>"),
            "{xml}"
        );
        assert!(
            xml.contains("<cbc:Description>standard</cbc:Description>"),
            "a line within the period keeps its description: {xml}"
        );
    }

    /// Peppol's VAT category rules: an invoice not subject to VAT (O) names no seller VAT
    /// identifier (BR-O-02) and has no other category (BR-O-11 to 14); S is above 0% (BR-S-05);
    /// AE needs the buyer's VAT identifier (BR-AE-02), which a Tenant does not carry.
    #[test]
    fn vat_categories_follow_peppol() {
        use super::super::invoice::{Line, LineKind, Unit, VatTreatment};
        use jiff::civil::date;
        use std::sync::Arc;
        let tz = super::super::amsterdam().unwrap();
        let line = |desc: &str, category: &str, percent: i64| Line {
            kind: LineKind::Account,
            description: desc.into(),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: Decimal::ONE_HUNDRED,
            amount: Decimal::ONE_HUNDRED,
            from: at(date(2026, 1, 1), &tz),
            to: at(date(2026, 2, 1), &tz),
            vat: Arc::new(VatTreatment {
                category: category.into(),
                percent: Decimal::from(percent),
                exemption_reason: None,
            }),
        };
        let inv = |lines: Vec<Line>| Invoice {
            tenant: "tholen".into(),
            period: "2026-01".into(),
            from: at(date(2026, 1, 1), &tz),
            to: at(date(2026, 2, 1), &tz),
            state: State::Draft,
            number: None,
            currency: "EUR".into(),
            lines,
        };
        let xml = |lines| {
            invoice_xml(
                &inv(lines),
                &buyer(),
                &Seller::default(),
                date(2026, 2, 2),
                &tz,
            )
        };
        let seller_vat = "<cbc:CompanyID>NL001234567B01</cbc:CompanyID>";
        let standard = xml(vec![line("a", "S", 21)]).unwrap();
        assert!(standard.contains(seller_vat), "{standard}");
        let outside = xml(vec![line("a", "O", 0), line("b", "O", 0)]).unwrap();
        assert!(!outside.contains(seller_vat), "BR-O-02: {outside}");
        assert!(!outside.contains("<cac:PartyTaxScheme>"), "{outside}");
        let e = xml(vec![line("a", "O", 0), line("b", "S", 21)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CONCEPT-tholen-2026-01") && e.contains("BR-O-11"),
            "{e}"
        );
        let e = xml(vec![line("a", "S", 0)]).unwrap_err().to_string();
        assert!(e.contains("BR-S-05") && e.contains("\"a\""), "{e}");
        let e = xml(vec![line("a", "AE", 0)]).unwrap_err().to_string();
        assert!(e.contains("BR-AE-02"), "{e}");
    }
}
