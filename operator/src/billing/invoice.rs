//! Invoices: priced lines per tenant per billing period, each rounded half-up to cents; the
//! subtotal is the sum of the rounded lines, VAT is computed per VAT category and rate on that
//! sum. A final invoice is never rewritten: what changes afterwards goes on the next invoice as
//! `correction` lines ([`corrections`]). Numbers are unique and sequential per year
//! ([`next_number`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use regie_crds::generated::{InvoiceLine, InvoiceSpec, InvoiceState};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{BillingError, decimal_text, local_rfc3339, money, round_cents};

/// What a line charges for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LineKind {
    Account,
    Component,
    FlexibleHour,
    Pool,
    Credit,
    Notice,
    Correction,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Account => "account",
            LineKind::Component => "component",
            LineKind::FlexibleHour => "flexibleHour",
            LineKind::Pool => "pool",
            LineKind::Credit => "credit",
            LineKind::Notice => "notice",
            LineKind::Correction => "correction",
        }
    }

    pub fn parse(s: &str) -> Option<LineKind> {
        [
            LineKind::Account,
            LineKind::Component,
            LineKind::FlexibleHour,
            LineKind::Pool,
            LineKind::Credit,
            LineKind::Notice,
            LineKind::Correction,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The unit of a line's quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Unit {
    Account,
    Component,
    Hour,
    Percent,
    Item,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Account => "account",
            Unit::Component => "component",
            Unit::Hour => "hour",
            Unit::Percent => "percent",
            Unit::Item => "item",
        }
    }

    /// UN/ECE Recommendation 20 code, as UBL wants it.
    pub fn ubl_code(self) -> &'static str {
        match self {
            Unit::Account | Unit::Component | Unit::Item => "C62",
            Unit::Hour => "HUR",
            Unit::Percent => "P1",
        }
    }

    pub fn parse(s: &str) -> Option<Unit> {
        [
            Unit::Account,
            Unit::Component,
            Unit::Hour,
            Unit::Percent,
            Unit::Item,
        ]
        .into_iter()
        .find(|u| u.as_str() == s)
    }
}

/// VAT treatment of a line, from the PriceList in force.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VatTreatment {
    /// UNCL 5305 category: S, Z, E, O, AE, …
    pub category: String,
    pub percent: Decimal,
    pub exemption_reason: Option<String>,
}

impl VatTreatment {
    /// The same VAT: category and rate. The exemption reason only words it.
    pub fn same_tax(&self, other: &VatTreatment) -> bool {
        self.category == other.category && self.percent == other.percent
    }
}

impl Default for VatTreatment {
    fn default() -> Self {
        VatTreatment {
            category: "S".into(),
            percent: Decimal::from(21),
            exemption_reason: None,
        }
    }
}

/// One invoice line. `amount` is already rounded to cents; `unit_price` is exact.
///
/// The description and the VAT treatment are shared (`Arc`): a year of a thousand tenants has
/// hundreds of thousands of lines but only a few descriptions per tenant and one treatment per
/// list, and a string of each on every line was a large part of what billing cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub kind: LineKind,
    pub description: Arc<str>,
    pub quantity: Decimal,
    pub unit: Unit,
    pub unit_price: Decimal,
    pub amount: Decimal,
    pub from: Timestamp,
    pub to: Timestamp,
    pub vat: Arc<VatTreatment>,
}

/// Puts an invoice's lines in the order they are printed: by kind, description, then start.
/// Lines of one item and level share their description: the same string is equal without
/// reading it.
pub fn sort_lines(lines: &mut [Line]) {
    lines.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| {
                if Arc::ptr_eq(&a.description, &b.description) {
                    std::cmp::Ordering::Equal
                } else {
                    a.description.cmp(&b.description)
                }
            })
            .then(a.from.cmp(&b.from))
    });
}

/// VAT of one category and rate: the base (sum of its rounded lines) and the tax on it, rounded;
/// `vat.exemption_reason` holds the reasons of its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct VatBreakdown {
    pub vat: VatTreatment,
    pub taxable: Decimal,
    pub tax: Decimal,
}

/// Draft while the period is open, final after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Draft,
    Final,
}

/// The invoice of one tenant for one billing period.
#[derive(Clone, Debug, PartialEq)]
pub struct Invoice {
    pub tenant: String,
    /// `YYYY-MM`, `YYYY-Qn` or `YYYY`.
    pub period: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub state: State,
    pub number: Option<String>,
    pub currency: String,
    pub lines: Vec<Line>,
}

impl Invoice {
    /// The sum of the rounded lines, before VAT.
    pub fn subtotal(&self) -> Decimal {
        self.lines.iter().map(|l| l.amount).sum()
    }

    /// VAT per category and rate, each rounded half-up on the sum of its lines.
    ///
    /// Not per whole treatment: two PriceLists of one period may word the exemption reason of
    /// the same category and rate differently, and EN 16931 wants one VAT subtotal per category
    /// and rate (BR-S-08, BR-E-08, …), its tax rounded once. The subtotal carries each distinct
    /// reason once, in line order, joined by "; " — no reason a line was billed under is lost.
    pub fn vat_breakdown(&self) -> Vec<VatBreakdown> {
        let mut groups: BTreeMap<(&str, Decimal), (Decimal, Vec<&str>)> = BTreeMap::new();
        for l in &self.lines {
            let (taxable, reasons) = groups
                .entry((l.vat.category.as_str(), l.vat.percent))
                .or_default();
            *taxable += l.amount;
            if let Some(r) = l.vat.exemption_reason.as_deref()
                && !reasons.contains(&r)
            {
                reasons.push(r);
            }
        }
        if groups.is_empty() {
            let none = VatTreatment::default();
            return vec![VatBreakdown {
                vat: none,
                taxable: Decimal::ZERO,
                tax: Decimal::ZERO,
            }];
        }
        groups
            .into_iter()
            .map(|((category, percent), (taxable, reasons))| VatBreakdown {
                vat: VatTreatment {
                    category: category.to_string(),
                    percent,
                    exemption_reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
                },
                taxable,
                tax: round_cents(taxable * percent / Decimal::ONE_HUNDRED),
            })
            .collect()
    }

    pub fn vat(&self) -> Decimal {
        self.vat_breakdown().iter().map(|b| b.tax).sum()
    }

    /// Subtotal plus VAT: what the tenant pays.
    pub fn payable(&self) -> Decimal {
        self.subtotal() + self.vat()
    }

    /// The `Invoice` object's spec: `subtotal` the lines, `vat`, `total` including VAT.
    pub fn to_spec(&self, tz: &TimeZone) -> InvoiceSpec {
        InvoiceSpec {
            tenant: self.tenant.clone(),
            period: self.period.clone(),
            number: self.number.clone(),
            state: match self.state {
                State::Draft => InvoiceState::Draft,
                State::Final => InvoiceState::Final,
            },
            currency: self.currency.clone(),
            lines: self.lines.iter().map(|l| line_spec(l, tz)).collect(),
            subtotal: money(self.subtotal()),
            vat: money(self.vat()),
            total: money(self.payable()),
        }
    }
}

/// A line as the API and the exports print it.
pub fn line_spec(l: &Line, tz: &TimeZone) -> InvoiceLine {
    InvoiceLine {
        kind: l.kind.as_str().into(),
        description: l.description.to_string(),
        quantity: decimal_text(l.quantity, 0, 6),
        unit: l.unit.as_str().into(),
        unit_price: decimal_text(l.unit_price, 2, 6),
        amount: money(l.amount),
        from: local_rfc3339(l.from, tz),
        to: local_rfc3339(l.to, tz),
        vat_category: Some(l.vat.category.clone()),
        vat_percent: Some(decimal_text(l.vat.percent, 0, 4)),
        vat_exemption_reason: l.vat.exemption_reason.clone(),
    }
}

/// The state of an invoice for a period ending at `to`, seen at `now`.
pub fn state_at(to: Timestamp, now: Timestamp) -> State {
    if now >= to {
        State::Final
    } else {
        State::Draft
    }
}

/// Correction lines for a final invoice whose lines, recomputed now, differ: for each line
/// (matched on kind, description and stretch) the difference, so that the corrections add up
/// exactly to `recomputed.subtotal() - final_invoice.subtotal()`. They go on the next invoice.
///
/// A credit takes the VAT of what it credits, so a line is compared per VAT category and rate:
/// billed under another than it has now, it is credited whole at the old one and billed anew at
/// the new one — also when its amount is the same, else a treatment fixed after the fact (E made
/// S) would never invoice its VAT. A final invoice's corrections are billed at their own VAT
/// beside the lines they correct, and so are counted at it here: once made, a correction is not
/// made again. Another wording of the exemption reason changes no VAT and corrects nothing.
pub fn corrections(final_invoice: &Invoice, recomputed: &Invoice) -> Vec<Line> {
    type Key = (LineKind, Arc<str>, Timestamp, Timestamp);
    /// A line's amount per category and rate, in line order, each with its first line.
    type Parts<'a> = Vec<(&'a Line, Decimal)>;
    fn parts(inv: &Invoice) -> BTreeMap<Key, Parts<'_>> {
        let mut by_line: BTreeMap<Key, Parts<'_>> = BTreeMap::new();
        for l in &inv.lines {
            let parts = by_line
                .entry((l.kind, l.description.clone(), l.from, l.to))
                .or_default();
            match parts.iter_mut().find(|(p, _)| p.vat.same_tax(&l.vat)) {
                Some(part) => part.1 += l.amount,
                None => parts.push((l, l.amount)),
            }
        }
        by_line
    }
    fn at<'a>(parts: &Parts<'a>, vat: &VatTreatment) -> Option<(&'a Line, Decimal)> {
        parts
            .iter()
            .find(|(p, _)| p.vat.same_tax(vat))
            .map(|(p, a)| (*p, *a))
    }
    let old = parts(final_invoice);
    let new = parts(recomputed);
    let reference = final_invoice
        .number
        .clone()
        .unwrap_or_else(|| format!("{} {}", final_invoice.tenant, final_invoice.period));
    let mut out = Vec::new();
    let mut keys: Vec<&Key> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let none = Parts::new();
    for k in keys {
        let o = old.get(k).unwrap_or(&none);
        let n = new.get(k).unwrap_or(&none);
        let was: Decimal = o.iter().map(|p| p.1).sum();
        let is: Decimal = n.iter().map(|p| p.1).sum();
        // Old treatments first (where credits go), then the new ones, for a stable order.
        let mut taxes: Vec<&VatTreatment> = o.iter().map(|(p, _)| &*p.vat).collect();
        for (p, _) in n {
            if !taxes.iter().any(|t| t.same_tax(&p.vat)) {
                taxes.push(&p.vat);
            }
        }
        for vat in taxes {
            let (o, n) = (at(o, vat), at(n, vat));
            let diff = n.map_or(Decimal::ZERO, |p| p.1) - o.map_or(Decimal::ZERO, |p| p.1);
            let Some((template, _)) = n.or(o) else {
                continue;
            };
            if diff.is_zero() {
                continue;
            }
            out.push(Line {
                kind: LineKind::Correction,
                description: format!(
                    "Correction of invoice {reference} ({}): {}: was {}, is {}",
                    final_invoice.period,
                    template.description,
                    money(was),
                    money(is)
                )
                .into(),
                quantity: Decimal::ONE,
                unit: Unit::Item,
                unit_price: diff,
                amount: diff,
                from: template.from,
                to: template.to,
                vat: template.vat.clone(),
            });
        }
    }
    out
}

/// Prefix of every invoice number.
pub const NUMBER_PREFIX: &str = "RG";

/// The next invoice number of `year` after the existing ones: `RG-2026-000001`, then
/// `RG-2026-000002`, … Numbers of other years and other formats do not count; a gap is never
/// filled, so a number once used is never used again.
pub fn next_number(existing: &[String], year: i16) -> Result<String, BillingError> {
    let prefix = format!("{NUMBER_PREFIX}-{year:04}-");
    let mut max: u64 = 0;
    for n in existing {
        if let Some(seq) = n.strip_prefix(&prefix)
            && seq.len() >= 6
            && seq.chars().all(|c| c.is_ascii_digit())
            && let Ok(v) = seq.parse::<u64>()
        {
            max = max.max(v);
        }
    }
    let next = max
        .checked_add(1)
        .ok_or_else(|| BillingError::input(format!("invoice numbers of {year} are exhausted")))?;
    Ok(format!("{prefix}{next:06}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn line(kind: LineKind, desc: &str, amount: &str) -> Line {
        Line {
            kind,
            description: desc.into(),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: d(amount),
            amount: d(amount),
            from: "2026-02-28T23:00:00Z".parse().unwrap(),
            to: "2026-03-31T22:00:00Z".parse().unwrap(),
            vat: Arc::default(),
        }
    }

    fn invoice(lines: Vec<Line>) -> Invoice {
        Invoice {
            tenant: "tholen".into(),
            period: "2026-03".into(),
            from: "2026-02-28T23:00:00Z".parse().unwrap(),
            to: "2026-03-31T22:00:00Z".parse().unwrap(),
            state: State::Final,
            number: Some("RG-2026-000003".into()),
            currency: "EUR".into(),
            lines,
        }
    }

    #[test]
    fn totals_are_sums_of_rounded_lines_and_vat_rounds_half_up() {
        let inv = invoice(vec![
            line(LineKind::Account, "a", "10.01"),
            line(LineKind::Component, "c", "0.04"),
        ]);
        assert_eq!(inv.subtotal(), d("10.05"));
        // 21% of 10.05 = 2.1105 → 2.11
        assert_eq!(inv.vat(), d("2.11"));
        assert_eq!(inv.payable(), d("12.16"));
        // 21% of 0.50 = 0.105 → 0.11 (half-up, not banker's 0.10)
        let inv = invoice(vec![line(LineKind::Account, "a", "0.50")]);
        assert_eq!(inv.vat(), d("0.11"));
    }

    #[test]
    fn vat_is_computed_per_treatment() {
        let mut exempt = line(LineKind::Pool, "p", "100.00");
        exempt.vat = Arc::new(VatTreatment {
            category: "E".into(),
            percent: Decimal::ZERO,
            exemption_reason: Some("cost sharing".into()),
        });
        let inv = invoice(vec![line(LineKind::Account, "a", "100.00"), exempt]);
        let b = inv.vat_breakdown();
        assert_eq!(b.len(), 2);
        assert_eq!(inv.vat(), d("21.00"));
        assert_eq!(inv.payable(), d("221.00"));
    }

    #[test]
    fn vat_is_one_subtotal_per_category_and_rate_whatever_the_reasons() {
        let treated = |kind, desc: &str, amount: &str, category: &str, percent, reason: &str| {
            let mut l = line(kind, desc, amount);
            l.vat = Arc::new(VatTreatment {
                category: category.into(),
                percent: Decimal::from(percent),
                exemption_reason: Some(reason.into()),
            });
            l
        };
        // Two PriceLists of one quarter, worded differently: the same category and rate.
        let inv = invoice(vec![
            treated(LineKind::Account, "a", "0.50", "S", 21, "standard rate"),
            treated(LineKind::Component, "b", "0.50", "S", 21, "Standard rate"),
            treated(LineKind::Pool, "p", "100.00", "E", 0, "Article 11 Wet OB"),
            treated(LineKind::Pool, "q", "50.00", "E", 0, "art. 11 lid 1 Wet OB"),
            treated(LineKind::Pool, "r", "25.00", "E", 0, "Article 11 Wet OB"),
        ]);
        let b = inv.vat_breakdown();
        assert_eq!(b.len(), 2, "{b:?}");
        let (e, s) = (&b[0], &b[1]);
        assert_eq!(
            (e.vat.category.as_str(), e.vat.percent),
            ("E", Decimal::ZERO)
        );
        assert_eq!((e.taxable, e.tax), (d("175.00"), d("0.00")));
        // The reasons in line order, each once.
        assert_eq!(
            e.vat.exemption_reason.as_deref(),
            Some("Article 11 Wet OB; art. 11 lid 1 Wet OB")
        );
        // 21% of 1.00, rounded once: 0.21, not 0.11 + 0.11.
        assert_eq!(
            (s.vat.category.as_str(), s.taxable, s.tax),
            ("S", d("1.00"), d("0.21"))
        );
        assert_eq!(
            s.vat.exemption_reason.as_deref(),
            Some("standard rate; Standard rate")
        );
        let taxable: Decimal = b.iter().map(|x| x.taxable).sum();
        assert_eq!(taxable, inv.subtotal());
        assert_eq!(inv.subtotal(), d("176.00"));
        assert_eq!(inv.vat(), d("0.21"));
        assert_eq!(inv.payable(), d("176.21"));
    }

    #[test]
    fn corrections_add_up_to_the_difference() {
        let was = invoice(vec![
            line(LineKind::Account, "standard", "1000.00"),
            line(LineKind::Component, "archive", "250.00"),
            line(LineKind::Notice, "gone", "10.00"),
        ]);
        let mut is = was.clone();
        is.lines[0].amount = d("1012.34");
        is.lines.remove(2);
        is.lines
            .push(line(LineKind::FlexibleHour, "migration", "300.00"));
        let c = corrections(&was, &is);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|l| l.kind == LineKind::Correction));
        let sum: Decimal = c.iter().map(|l| l.amount).sum();
        assert_eq!(sum, is.subtotal() - was.subtotal());
        assert!(
            c.iter()
                .any(|l| l.description.contains("RG-2026-000003") && l.amount == d("12.34"))
        );
        assert!(c.iter().any(|l| l.amount == d("-10.00")));
        assert!(
            corrections(&was, &was).is_empty(),
            "no difference, no correction"
        );
    }

    #[test]
    fn a_credit_takes_the_vat_of_what_it_credits() {
        let exempt = Arc::new(VatTreatment {
            category: "E".into(),
            percent: Decimal::ZERO,
            exemption_reason: Some("Article 11 Wet OB".into()),
        });
        let mut hosting = line(LineKind::Component, "archive", "250.00");
        hosting.vat = exempt.clone();
        let was = invoice(vec![
            line(LineKind::Account, "standard", "1000.00"),
            hosting.clone(),
        ]);
        // The exempt line vanished: its credit is exempt too, not charged 21% back.
        let is = invoice(vec![line(LineKind::Account, "standard", "1000.00")]);
        let c = corrections(&was, &is);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].amount, d("-250.00"));
        assert_eq!(c[0].vat, exempt);
        // The same line now under the standard treatment: credited whole at the old, billed
        // anew at the new; the two add up to the difference.
        let mut standard = hosting.clone();
        standard.vat = Arc::default();
        standard.amount = d("260.00");
        let is = invoice(vec![
            line(LineKind::Account, "standard", "1000.00"),
            standard,
        ]);
        let c = corrections(&was, &is);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].amount, &c[0].vat), (d("-250.00"), &exempt));
        assert_eq!(
            (c[1].amount, &*c[1].vat),
            (d("260.00"), &VatTreatment::default())
        );
        let sum: Decimal = c.iter().map(|l| l.amount).sum();
        assert_eq!(sum, is.subtotal() - was.subtotal());
        assert!(
            c.iter()
                .all(|l| l.description.ends_with("was 250.00, is 260.00"))
        );
    }

    #[test]
    fn a_change_of_vat_alone_is_credited_and_billed_anew() {
        let exempt = Arc::new(VatTreatment {
            category: "E".into(),
            percent: Decimal::ZERO,
            exemption_reason: Some("Article 11 Wet OB".into()),
        });
        let mut hosting = line(LineKind::Component, "archive", "250.00");
        hosting.vat = exempt.clone();
        let was = invoice(vec![
            line(LineKind::Account, "standard", "1000.00"),
            hosting.clone(),
        ]);
        // The PriceList's treatment fixed after the month was final: same amount, now S 21%.
        let mut standard = hosting.clone();
        standard.vat = Arc::default();
        let is = invoice(vec![
            line(LineKind::Account, "standard", "1000.00"),
            standard.clone(),
        ]);
        let c = corrections(&was, &is);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!((c[0].amount, &c[0].vat), (d("-250.00"), &exempt));
        assert_eq!(
            (c[1].amount, &*c[1].vat),
            (d("250.00"), &VatTreatment::default())
        );
        assert!(
            c.iter()
                .all(|l| l.from == hosting.from && l.to == hosting.to)
        );
        // Nothing net, but the 21% never invoiced is: 52.50.
        let on_next = invoice(c.clone());
        assert_eq!(on_next.subtotal(), Decimal::ZERO);
        assert_eq!(on_next.vat(), d("52.50"));
        // Once billed, with the corrections at their own VAT beside the line they correct,
        // there is nothing left to correct.
        let mut billed = was.clone();
        billed.lines.extend(c.into_iter().map(|l| Line {
            kind: hosting.kind,
            description: hosting.description.clone(),
            ..l
        }));
        assert_eq!(corrections(&billed, &is), Vec::new());
        // Another wording of the same category and rate changes no VAT: no correction.
        let mut reworded = hosting.clone();
        reworded.vat = Arc::new(VatTreatment {
            exemption_reason: Some("art. 11 lid 1 Wet OB".into()),
            ..(*exempt).clone()
        });
        let is = invoice(vec![
            line(LineKind::Account, "standard", "1000.00"),
            reworded,
        ]);
        assert_eq!(corrections(&was, &is), Vec::new());
    }

    #[test]
    fn numbers_are_sequential_per_year() {
        assert_eq!(next_number(&[], 2026).unwrap(), "RG-2026-000001");
        let existing = vec![
            "RG-2026-000001".to_string(),
            "RG-2026-000007".into(),
            "RG-2025-000100".into(),
            "junk".into(),
        ];
        assert_eq!(next_number(&existing, 2026).unwrap(), "RG-2026-000008");
        assert_eq!(next_number(&existing, 2025).unwrap(), "RG-2025-000101");
        assert_eq!(next_number(&existing, 2027).unwrap(), "RG-2027-000001");
    }
}
