//! `regie diff BASE HEAD [--period YYYY-MM]`: what a pull request changes, as Markdown for a
//! pull-request comment — per tenant, the objects `render` would add, change or remove, and the
//! monthly price change (both trees billed for the month with the same code as `regie bill`,
//! compared per tenant and per line, VAT beside); the ServiceLevels changed and whom they
//! bind. This is what a member sees when it asks for gold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use rust_decimal::Decimal;

use crate::billing::invoice::Invoice;
use crate::billing::money;
use crate::billing::period::{Month, Period};
use crate::desired::{Child, Settings};
use crate::input;
use crate::inventory::Inventory;

/// Objects of one tenant that differ between two trees, by `Kind/namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl ObjectChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The price of one tenant for the month, before and after, line by line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceChange {
    pub before: Decimal,
    pub after: Decimal,
    /// The VAT on `before` and on `after`, when the VAT the lines are billed under changed (a
    /// rate, a category): the tenant pays another amount even where no line's price changed.
    pub vat: Option<(Decimal, Decimal)>,
    /// (line, before, after) for lines that differ; `None` where the line does not exist.
    pub lines: Vec<(String, Option<Decimal>, Option<Decimal>)>,
}

/// A ServiceLevel added, changed or removed: the contract of every component at that level —
/// targets, service hours, credits, probing — whether or not an object or price changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelChange {
    pub level: String,
    /// `added`, `changed` or `removed`.
    pub what: &'static str,
    /// The tenants at that level, each with its components at it (in either tree).
    pub bound: BTreeMap<String, BTreeSet<String>>,
}

/// Everything the comment shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub month: String,
    pub objects: BTreeMap<String, ObjectChanges>,
    pub prices: BTreeMap<String, PriceChange>,
    pub levels: Vec<LevelChange>,
    /// The longest notice period of HEAD's price lists, when any: a reduction is billed at the
    /// old price until it has passed after the change, which the month's prices do not show.
    pub notice: Option<String>,
}

fn load(dir: &Path, settings: &Settings) -> Result<Inventory, Vec<String>> {
    let loaded = input::load(&[dir.to_path_buf()]);
    let mut problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    let inv = Inventory::new(loaded.objects);
    problems.extend(
        inv.check_with(&settings.allowed_namespaces)
            .iter()
            .map(ToString::to_string),
    );
    if problems.is_empty() {
        Ok(inv)
    } else {
        Err(problems)
    }
}

/// Compares rendered objects per tenant.
pub fn object_changes(
    base: &BTreeMap<String, Vec<Child>>,
    head: &BTreeMap<String, Vec<Child>>,
) -> BTreeMap<String, ObjectChanges> {
    let tenants: BTreeSet<&String> = base.keys().chain(head.keys()).collect();
    let mut out = BTreeMap::new();
    for t in tenants {
        let index = |m: &BTreeMap<String, Vec<Child>>| -> BTreeMap<String, serde_json::Value> {
            m.get(t)
                .into_iter()
                .flatten()
                .map(|c| (c.key(), c.body.clone()))
                .collect()
        };
        let (b, h) = (index(base), index(head));
        let mut c = ObjectChanges::default();
        for (k, v) in &h {
            match b.get(k) {
                None => c.added.push(k.clone()),
                Some(old) if old != v => c.changed.push(k.clone()),
                _ => {}
            }
        }
        c.removed = b.keys().filter(|k| !h.contains_key(*k)).cloned().collect();
        if !c.is_empty() {
            out.insert(t.clone(), c);
        }
    }
    out
}

/// Compares invoices per tenant and per line (kind and description).
pub fn price_changes(base: &[Invoice], head: &[Invoice]) -> BTreeMap<String, PriceChange> {
    /// A tenant's lines, its VAT, and the VAT treatments (category, rate) it is billed under.
    #[derive(Default)]
    struct Billed {
        lines: BTreeMap<String, Decimal>,
        vat: Decimal,
        treatments: BTreeSet<(String, Decimal)>,
    }
    let by_tenant = |invs: &[Invoice]| -> BTreeMap<String, Billed> {
        let mut m: BTreeMap<String, Billed> = BTreeMap::new();
        for i in invs {
            let billed = m.entry(i.tenant.clone()).or_default();
            for l in &i.lines {
                *billed
                    .lines
                    .entry(format!("{}: {}", l.kind.as_str(), l.description))
                    .or_default() += l.amount;
                billed
                    .treatments
                    .insert((l.vat.category.clone(), l.vat.percent.normalize()));
            }
            billed.vat += i.vat();
        }
        m
    };
    let (b, h) = (by_tenant(base), by_tenant(head));
    let empty = Billed::default();
    let mut out = BTreeMap::new();
    for t in b.keys().chain(h.keys()).collect::<BTreeSet<_>>() {
        let (bb, hb) = (b.get(t).unwrap_or(&empty), h.get(t).unwrap_or(&empty));
        let vat_changed = bb.treatments != hb.treatments
            && !bb.treatments.is_empty()
            && !hb.treatments.is_empty();
        let mut pc = PriceChange {
            before: bb.lines.values().copied().sum(),
            after: hb.lines.values().copied().sum(),
            vat: vat_changed.then_some((bb.vat, hb.vat)),
            lines: Vec::new(),
        };
        for k in bb
            .lines
            .keys()
            .chain(hb.lines.keys())
            .collect::<BTreeSet<_>>()
        {
            let (x, y) = (bb.lines.get(k).copied(), hb.lines.get(k).copied());
            if x != y {
                pc.lines.push((k.clone(), x, y));
            }
        }
        if !pc.lines.is_empty() || pc.vat.is_some() {
            out.insert(t.clone(), pc);
        }
    }
    out
}

/// ServiceLevels added, changed or removed between two trees, each with the tenants and
/// components at it in either tree.
pub fn level_changes(base: &Inventory, head: &Inventory) -> Vec<LevelChange> {
    use kube::ResourceExt;
    let specs = |inv: &Inventory| -> BTreeMap<String, serde_json::Value> {
        (inv.levels.iter())
            .map(|l| {
                let spec = serde_json::to_value(&l.object.spec).unwrap_or_default();
                (l.object.name_any(), spec)
            })
            .collect()
    };
    let (b, h) = (specs(base), specs(head));
    let mut out = Vec::new();
    for name in b.keys().chain(h.keys()).collect::<BTreeSet<_>>() {
        let what = match (b.get(name), h.get(name)) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(x), Some(y)) if x != y => "changed",
            _ => continue,
        };
        let mut bound: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for inv in [base, head] {
            for t in &inv.tenants {
                let tenant = &t.object;
                let components: BTreeSet<String> = (inv.components_of(tenant).into_iter())
                    .filter(|c| crate::desired::component_level(tenant, c) == name.as_str())
                    .map(ResourceExt::name_any)
                    .collect();
                if tenant.spec.service_level == *name || !components.is_empty() {
                    bound
                        .entry(tenant.name_any())
                        .or_default()
                        .extend(components);
                }
            }
        }
        out.push(LevelChange {
            level: name.clone(),
            what,
            bound,
        });
    }
    out
}

/// The notice periods of `inv`'s price lists, when any says one.
fn notice_periods(inv: &Inventory) -> Option<String> {
    let periods: BTreeSet<&str> = (inv.price_lists.iter())
        .filter_map(|p| p.object.spec.notice_period.as_deref())
        .collect();
    (!periods.is_empty()).then(|| periods.into_iter().collect::<Vec<_>>().join(" or "))
}

fn signed(d: Decimal) -> String {
    if d > Decimal::ZERO {
        format!("+{}", money(d))
    } else {
        money(d)
    }
}

fn cell(d: Option<Decimal>) -> String {
    d.map_or_else(|| "—".to_string(), money)
}

/// The Markdown comment.
pub fn markdown(d: &Diff, base: &str, head: &str) -> String {
    let mut s = format!(
        "## regie diff\n\n`{base}` → `{head}`; prices for {} in EUR, before VAT.\n\n",
        d.month
    );
    let tenants: BTreeSet<&String> = d.objects.keys().chain(d.prices.keys()).collect();
    if tenants.is_empty() && d.levels.is_empty() {
        s.push_str("No tenant's objects or prices change, nor any service level.\n");
        return s;
    }
    if !d.levels.is_empty() {
        s.push_str("### Service levels\n\n");
        for l in &d.levels {
            let bound: Vec<String> = (l.bound.iter())
                .map(|(t, cs)| match cs.is_empty() {
                    true => t.clone(),
                    false => format!(
                        "{t} ({})",
                        cs.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })
                .collect();
            let whom = match bound.is_empty() {
                true => "no tenant".to_string(),
                false => bound.join(", "),
            };
            s.push_str(&format!(
                "- {} `ServiceLevel/{}`: the targets, service hours, credits and probing of {whom}\n",
                l.what, l.level
            ));
        }
        s.push('\n');
    }
    if tenants.is_empty() {
        return s;
    }
    s.push_str("| tenant | objects added | changed | removed | per month before | after | change |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for t in &tenants {
        let o = d.objects.get(*t).cloned().unwrap_or_default();
        let (before, after, change) = match d.prices.get(*t) {
            Some(p) => {
                let delta = p.after - p.before;
                let pct = if p.before.is_zero() {
                    String::new()
                } else {
                    let pct = (delta * Decimal::ONE_HUNDRED / p.before)
                        .round_dp(1)
                        .normalize();
                    format!(" ({}{pct}%)", if pct > Decimal::ZERO { "+" } else { "" })
                };
                (
                    money(p.before),
                    money(p.after),
                    format!("{}{pct}", signed(delta)),
                )
            }
            None => ("".into(), "".into(), "no change".into()),
        };
        s.push_str(&format!(
            "| {t} | {} | {} | {} | {before} | {after} | {change} |\n",
            o.added.len(),
            o.changed.len(),
            o.removed.len()
        ));
    }
    let reduced = d.prices.values().any(|p| p.after < p.before);
    if let (true, Some(notice)) = (reduced, &d.notice) {
        s.push_str(&format!(
            "\nA reduction is billed at the previous price until its notice period ({notice}) after \
             the change has passed: *after* is the price once it has.\n"
        ));
    }
    for t in tenants {
        s.push_str(&format!("\n### {t}\n"));
        if let Some(o) = d.objects.get(t) {
            s.push('\n');
            for (what, list) in [
                ("added", &o.added),
                ("changed", &o.changed),
                ("removed", &o.removed),
            ] {
                for k in list {
                    s.push_str(&format!("- {what} `{k}`\n"));
                }
            }
        }
        if let Some(p) = d.prices.get(t) {
            s.push_str("\n| line | before | after | change |\n|---|---:|---:|---:|\n");
            for (line, x, y) in &p.lines {
                let delta = y.unwrap_or_default() - x.unwrap_or_default();
                s.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    line.replace('|', "\\|"),
                    cell(*x),
                    cell(*y),
                    signed(delta)
                ));
            }
            s.push_str(&format!(
                "| **total** | **{}** | **{}** | **{}** |\n",
                money(p.before),
                money(p.after),
                signed(p.after - p.before)
            ));
            if let Some((before, after)) = p.vat {
                s.push_str(&format!(
                    "| VAT (its rate or category changed) | {} | {} | {} |\n",
                    money(before),
                    money(after),
                    signed(after - before)
                ));
            }
        }
    }
    s
}

/// Computes the diff of two trees for a month, rendered with the installation's `settings`.
pub fn diff(
    base: &Path,
    head: &Path,
    month: Month,
    now: jiff::Timestamp,
    settings: &Settings,
) -> Result<Diff, Vec<String>> {
    let tag = |side: &str, ps: Vec<String>| {
        ps.into_iter()
            .map(|p| format!("{side}: {p}"))
            .collect::<Vec<_>>()
    };
    let bi = load(base, settings).map_err(|p| tag("base", p))?;
    let hi = load(head, settings).map_err(|p| tag("head", p))?;
    let objects = object_changes(
        &crate::desired::render(&bi, settings),
        &crate::desired::render(&hi, settings),
    );
    let period = month.to_string();
    let bb =
        super::bill::bill_paths(&[base.to_path_buf()], &period, now).map_err(|p| tag("base", p))?;
    let hb =
        super::bill::bill_paths(&[head.to_path_buf()], &period, now).map_err(|p| tag("head", p))?;
    Ok(Diff {
        month: period,
        objects,
        prices: price_changes(&bb.invoices, &hb.invoices),
        levels: level_changes(&bi, &hi),
        notice: notice_periods(&hi),
    })
}

pub fn run(base: &Path, head: &Path, period: Option<&str>, settings: &Settings) -> ExitCode {
    let now = match super::bill::now() {
        Ok(n) => n,
        Err(e) => {
            say!("regie diff: {e}");
            return ExitCode::from(1);
        }
    };
    let month = match period {
        None => match crate::billing::amsterdam() {
            Ok(tz) => Month::of(now, &tz),
            Err(e) => {
                say!("regie diff: {e}");
                return ExitCode::from(1);
            }
        },
        Some(p) => match Period::parse(p) {
            Ok(Period::Month(m)) => m,
            Ok(other) => {
                say!(
                    "regie diff: --period {other}: the price change is monthly; give a month (YYYY-MM)"
                );
                return ExitCode::from(1);
            }
            Err(e) => {
                say!("regie diff: --period: {e}");
                return ExitCode::from(1);
            }
        },
    };
    match diff(base, head, month, now, settings) {
        Ok(d) => {
            super::emit(&markdown(
                &d,
                &base.display().to_string(),
                &head.display().to_string(),
            ));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                say!("{p}");
            }
            ExitCode::from(1)
        }
    }
}
