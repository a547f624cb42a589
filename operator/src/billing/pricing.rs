//! Prices: which PriceList is in force when, which of its rates applies (the most specific
//! match on service level, component class and account profile), and the priced lines of one
//! tenant's timeline — accounts, components, notice after a reduction, and service credits.
//!
//! A later `effectiveFrom` supersedes a list from that instant, so a stretch that crosses it is
//! split there (an interim increase from 1 July prices June at the old rate, July at the new).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use kube::ResourceExt;
use regie_crds::PriceList;
use regie_crds::commercial::{RateItem, RatePer};
use regie_crds::duration::parse_duration;
use regie_crds::tenancy::ComponentClass;
use regie_crds::validate::{parse_date_or_time, parse_decimal};
use rust_decimal::Decimal;

use super::BillingError;
use super::invoice::{Line, LineKind, Unit, VatTreatment};
use super::ledger::Span;
use super::period::Month;
use super::proration::Calendar;
use super::round_cents;

/// One rate of a list, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRate {
    pub item: RateItem,
    pub service_level: Option<String>,
    pub class: Option<ComponentClass>,
    pub profile: Option<String>,
    pub per: RatePer,
    pub amount: Decimal,
}

/// A PriceList with the stretch it is in force.
#[derive(Clone, Debug, PartialEq)]
pub struct PricedList {
    pub name: String,
    pub from: Timestamp,
    /// First instant it no longer applies: its own `effectiveUntil` or the next list's start.
    pub until: Option<Timestamp>,
    /// Seconds a downgrade or cut is billed at the previous level; 0 for none.
    pub notice_seconds: i64,
    pub notice_text: Option<String>,
    pub vat: VatTreatment,
    pub rates: Vec<ParsedRate>,
}

impl PricedList {
    /// The most specific rate for an item: a rate naming the level, class or profile beats one
    /// that leaves it open; two equally specific matches are an error, never a silent pick.
    pub fn rate(
        &self,
        item: RateItem,
        level: &str,
        class: Option<ComponentClass>,
        profile: Option<&str>,
    ) -> Result<&ParsedRate, BillingError> {
        let mut best: Option<(usize, &ParsedRate)> = None;
        let mut tie = false;
        for r in &self.rates {
            if r.item != item
                || r.service_level.as_deref().is_some_and(|l| l != level)
                || (r.class.is_some() && r.class != class)
                || r.profile.as_deref().is_some_and(|p| Some(p) != profile)
            {
                continue;
            }
            let score = usize::from(r.service_level.is_some())
                + usize::from(r.class.is_some())
                + usize::from(r.profile.is_some());
            match best {
                Some((s, _)) if s > score => {}
                Some((s, _)) if s == score => tie = true,
                _ => {
                    best = Some((score, r));
                    tie = false;
                }
            }
        }
        let what = describe_item(item, level, class, profile);
        match best {
            None => Err(BillingError::input(format!(
                "PriceList/{}: spec.rates has no {what} (a rate is missing for a tier in use)",
                self.name
            ))),
            Some(_) if tie => Err(BillingError::input(format!(
                "PriceList/{}: spec.rates has two equally specific rates for {what}",
                self.name
            ))),
            Some((_, r)) => Ok(r),
        }
    }
}

fn describe_item(
    item: RateItem,
    level: &str,
    class: Option<ComponentClass>,
    profile: Option<&str>,
) -> String {
    match item {
        RateItem::Account => format!(
            "account rate for profile {:?} at serviceLevel {level:?}",
            profile.unwrap_or("")
        ),
        RateItem::Component => format!(
            "component rate for class {} at serviceLevel {level:?}",
            class.map_or("?", ComponentClass::as_str)
        ),
        RateItem::FlexibleHour => format!("flexibleHour rate at serviceLevel {level:?}"),
    }
}

/// Every PriceList, ordered by the instant it takes effect.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceBook {
    pub lists: Vec<PricedList>,
}

impl PriceBook {
    pub fn new(lists: &[PriceList], cal: &Calendar) -> Result<PriceBook, BillingError> {
        let mut out = Vec::new();
        for pl in lists {
            let name = pl.name_any();
            let s = &pl.spec;
            let field =
                |f: &str, m: String| BillingError::input(format!("PriceList/{name}: {f}: {m}"));
            let from = parse_date_or_time(&s.effective_from)
                .map_err(|m| field("spec.effectiveFrom", m))?
                .instant(cal.tz());
            let until = match &s.effective_until {
                Some(u) => Some(
                    parse_date_or_time(u)
                        .map_err(|m| field("spec.effectiveUntil", m))?
                        .instant(cal.tz()),
                ),
                None => None,
            };
            let notice_seconds = match &s.notice_period {
                Some(n) => i64::try_from(
                    parse_duration(n)
                        .map_err(|m| field("spec.noticePeriod", m))?
                        .as_secs(),
                )
                .map_err(|_| field("spec.noticePeriod", format!("{n:?} is too long")))?,
                None => 0,
            };
            let percent =
                parse_decimal(&s.vat.percent).map_err(|m| field("spec.vat.percent", m))?;
            let mut rates = Vec::new();
            for (i, r) in s.rates.iter().enumerate() {
                let amount = parse_decimal(&r.amount)
                    .map_err(|m| field(&format!("spec.rates[{i}].amount"), m))?;
                if amount < Decimal::ZERO {
                    return Err(field(
                        &format!("spec.rates[{i}].amount"),
                        format!("{:?} must not be negative", r.amount),
                    ));
                }
                rates.push(ParsedRate {
                    item: r.item,
                    service_level: r.service_level.clone(),
                    class: r.class,
                    profile: r.profile.clone(),
                    per: r.per,
                    amount,
                });
            }
            out.push(PricedList {
                name,
                from,
                until,
                notice_seconds,
                notice_text: s.notice_period.clone(),
                vat: VatTreatment {
                    category: s.vat.category.clone(),
                    percent,
                    exemption_reason: s.vat.exemption_reason.clone(),
                },
                rates,
            });
        }
        out.sort_by(|a, b| a.from.cmp(&b.from).then_with(|| a.name.cmp(&b.name)));
        for w in out.windows(2) {
            if w[0].from == w[1].from {
                return Err(BillingError::input(format!(
                    "PriceList/{} and PriceList/{} take effect at the same instant; one must supersede the other",
                    w[0].name, w[1].name
                )));
            }
        }
        // A later list supersedes an earlier one from its first instant.
        for i in 0..out.len().saturating_sub(1) {
            let next = out[i + 1].from;
            out[i].until = Some(out[i].until.map_or(next, |u| u.min(next)));
        }
        Ok(PriceBook { lists: out })
    }

    /// The list in force at `t`.
    pub fn at(&self, t: Timestamp) -> Result<(usize, &PricedList), BillingError> {
        self.lists
            .iter()
            .enumerate()
            .rev()
            .find(|(_, l)| l.from <= t && l.until.is_none_or(|u| t < u))
            .ok_or_else(|| {
                if self.lists.is_empty() {
                    BillingError::input("no PriceList in the input: nothing can be priced")
                } else {
                    BillingError::input(format!("no PriceList is in force at {t} (check spec.effectiveFrom and spec.effectiveUntil)"))
                }
            })
    }

    /// `[from, to)` cut where one list supersedes another: (list index, start, end).
    pub fn pieces(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(usize, Timestamp, Timestamp)>, BillingError> {
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let (i, l) = self.at(at)?;
            let end = l.until.map_or(to, |u| u.min(to));
            out.push((i, at, end));
            at = end;
        }
        Ok(out)
    }

    /// The longest notice period of any list, in seconds: how far back a bill must look.
    pub fn max_notice_seconds(&self) -> i64 {
        self.lists
            .iter()
            .map(|l| l.notice_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// What a line is charged for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ItemKey {
    Account(String),
    Component(String, ComponentClass),
}

/// The items a state bills: accounts per profile (non-zero) and components, each with its level.
fn items(state: &super::ledger::BillableState) -> Vec<(ItemKey, String, i64)> {
    let mut out = Vec::with_capacity(state.accounts.len() + state.components.len());
    for (profile, n) in &state.accounts {
        if *n != 0 {
            out.push((
                ItemKey::Account(profile.clone()),
                state.service_level.clone(),
                *n,
            ));
        }
    }
    for c in &state.components {
        out.push((
            ItemKey::Component(c.name.clone(), c.class),
            c.service_level.clone(),
            1,
        ));
    }
    out
}

/// Rate lookups repeat for every segment; remember them per list, item and level.
#[derive(Default)]
struct RateCache {
    map: HashMap<(usize, ItemKey, String), (Decimal, RatePer)>,
}

impl RateCache {
    fn get(
        &mut self,
        book: &PriceBook,
        list: usize,
        key: &ItemKey,
        level: &str,
    ) -> Result<(Decimal, RatePer), BillingError> {
        if let Some(v) = self.map.get(&(list, key.clone(), level.to_string())) {
            return Ok(*v);
        }
        let l = &book.lists[list];
        let r = match key {
            ItemKey::Account(p) => l.rate(RateItem::Account, level, None, Some(p))?,
            ItemKey::Component(_, class) => {
                l.rate(RateItem::Component, level, Some(*class), None)?
            }
        };
        if r.per == RatePer::Hour {
            return Err(BillingError::input(format!(
                "PriceList/{}: {} is per hour; account and component rates are per month or per year",
                l.name,
                describe(key, level)
            )));
        }
        let v = (r.amount, r.per);
        self.map.insert((list, key.clone(), level.to_string()), v);
        Ok(v)
    }
}

fn describe(key: &ItemKey, level: &str) -> String {
    match key {
        ItemKey::Account(p) => format!("Workplace accounts {p}, {level}"),
        ItemKey::Component(n, c) => format!("Component {n} ({}), {level}", c.as_str()),
    }
}

fn per_text(per: RatePer) -> &'static str {
    match per {
        RatePer::Month => "month",
        RatePer::Year => "year",
        RatePer::Hour => "hour",
    }
}

/// A stretch of one item at one quantity, level and rate, growing as segments repeat it.
struct Run {
    key: ItemKey,
    level: String,
    quantity: i64,
    rate: Decimal,
    per: RatePer,
    list: usize,
    from: Timestamp,
    to: Timestamp,
    /// Σ quantity × rate × seconds / period seconds.
    amount: Decimal,
    /// Σ rate × seconds / period seconds: the price of one unit over the run.
    unit_price: Decimal,
}

/// Service credits: (component, month) → percent of that component's charges for the month.
pub type ComponentCredits = BTreeMap<(String, Month), Decimal>;

/// The priced lines of a timeline over `[from, to)`: accounts and components per stretch of
/// constant price, notice after reductions, and credits. `spans` may reach back before `from`
/// (for notice) and must be ordered and closed.
pub fn price_timeline(
    book: &PriceBook,
    cal: &Calendar,
    spans: &[Span],
    from: Timestamp,
    to: Timestamp,
    credits: &ComponentCredits,
) -> Result<Vec<Line>, BillingError> {
    let mut cache = RateCache::default();
    let mut runs: Vec<Run> = Vec::new();
    let mut last_run: HashMap<ItemKey, usize> = HashMap::new();
    let mut component_month: BTreeMap<(String, Month), Decimal> = BTreeMap::new();
    for span in spans {
        let end = span.to.unwrap_or(to);
        let (a, b) = (span.from.max(from), end.min(to));
        if a >= b {
            continue;
        }
        let its = items(&span.state);
        for (list, pa, pb) in book.pieces(a, b)? {
            for (m, ma, mb) in cal.month_pieces(pa, pb)? {
                let secs = Decimal::from(mb.as_second() - ma.as_second());
                let month_den = Decimal::from(cal.month_seconds(m)?);
                let year_den = Decimal::from(cal.year_seconds(m.year)?);
                for (key, level, qty) in &its {
                    let (rate, per) = cache.get(book, list, key, level)?;
                    let den = if per == RatePer::Month {
                        month_den
                    } else {
                        year_den
                    };
                    let unit = rate * secs / den;
                    let amount = rate * Decimal::from(*qty) * secs / den;
                    if let ItemKey::Component(name, _) = key {
                        *component_month.entry((name.clone(), m)).or_default() += amount;
                    }
                    let extend = last_run.get(key).map(|&i| &runs[i]).is_some_and(|r| {
                        r.to == ma
                            && r.level == *level
                            && r.quantity == *qty
                            && r.rate == rate
                            && r.per == per
                            && book.lists[r.list].vat == book.lists[list].vat
                    });
                    if extend {
                        if let Some(&i) = last_run.get(key) {
                            let r = &mut runs[i];
                            r.to = mb;
                            r.amount += amount;
                            r.unit_price += unit;
                        }
                    } else {
                        last_run.insert(key.clone(), runs.len());
                        runs.push(Run {
                            key: key.clone(),
                            level: level.clone(),
                            quantity: *qty,
                            rate,
                            per,
                            list,
                            from: ma,
                            to: mb,
                            amount,
                            unit_price: unit,
                        });
                    }
                }
            }
        }
    }
    let mut lines = Vec::with_capacity(runs.len() + 4);
    for r in &runs {
        let (kind, unit) = match r.key {
            ItemKey::Account(_) => (LineKind::Account, Unit::Account),
            ItemKey::Component(..) => (LineKind::Component, Unit::Component),
        };
        lines.push(Line {
            kind,
            description: format!(
                "{}, {} per {}",
                describe(&r.key, &r.level),
                super::money(r.rate),
                per_text(r.per)
            ),
            quantity: Decimal::from(r.quantity),
            unit,
            unit_price: r.unit_price,
            amount: round_cents(r.amount),
            from: r.from,
            to: r.to,
            vat: book.lists[r.list].vat.clone(),
        });
    }
    lines.extend(notice_lines(book, cal, spans, from, to, &mut cache)?);
    for ((component, m), percent) in credits {
        let Some(charge) = component_month.get(&(component.clone(), *m)) else {
            continue;
        };
        if percent.is_zero() || charge.is_zero() {
            continue;
        }
        let (ma, mb) = cal.month_bounds(*m)?;
        let (a, b) = (ma.max(from), mb.min(to));
        let (_, list) = book.at(a)?;
        lines.push(Line {
            kind: LineKind::Credit,
            description: format!(
                "Service credit {m}: component {component} below its availability target, {percent}% of its charges for the month ({})",
                super::money(*charge)
            ),
            quantity: -*percent,
            unit: Unit::Percent,
            unit_price: *charge / Decimal::ONE_HUNDRED,
            amount: -round_cents(*charge * *percent / Decimal::ONE_HUNDRED),
            from: a,
            to: b,
            vat: list.vat.clone(),
        });
    }
    Ok(lines)
}

/// `t` moved by a notice period: whole days are calendar days in Europe/Amsterdam (90 days
/// after 16 March 00:00 is 14 June 00:00, summer time or not); other periods are exact seconds.
fn shift(t: Timestamp, secs: i64, cal: &Calendar, forward: bool) -> Timestamp {
    let sign = if forward { 1 } else { -1 };
    let moved = if secs % 86_400 == 0 {
        t.to_zoned(cal.tz().clone())
            .checked_add(jiff::Span::new().days(sign * secs / 86_400))
            .map(|z| z.timestamp())
    } else {
        t.checked_add(jiff::SignedDuration::from_secs(sign * secs))
    };
    moved.unwrap_or(if forward {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

/// A stretch in which the notice surcharge of one item has one cause.
struct NoticeRun {
    key: ItemKey,
    committed: (String, i64),
    actual: (String, i64),
    list: usize,
    from: Timestamp,
    to: Timestamp,
    amount: Decimal,
}

/// Notice: at each instant an item is billed at least at the highest charge any state held
/// within the notice period before it (valued at today's prices), and the excess over what the
/// current state costs is its own line. Upgrades raise the current charge at once and never
/// leave an excess; price changes of the list never count as a reduction.
fn notice_lines(
    book: &PriceBook,
    cal: &Calendar,
    spans: &[Span],
    from: Timestamp,
    to: Timestamp,
    cache: &mut RateCache,
) -> Result<Vec<Line>, BillingError> {
    let notices: Vec<i64> = {
        let mut v: Vec<i64> = book
            .lists
            .iter()
            .map(|l| l.notice_seconds)
            .filter(|n| *n > 0)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if notices.is_empty() || spans.len() < 2 {
        return Ok(Vec::new());
    }
    // Breakpoints: where a state begins, where it leaves a notice window, where lists change.
    let mut points: Vec<Timestamp> = vec![from, to];
    for s in spans {
        points.push(s.from);
        if let Some(t) = s.to {
            points.push(t);
            for n in &notices {
                points.push(shift(t, *n, cal, true));
            }
        }
    }
    for l in &book.lists {
        points.push(l.from);
    }
    points.retain(|p| *p >= from && *p <= to);
    points.sort_unstable();
    points.dedup();
    let mut runs: Vec<NoticeRun> = Vec::new();
    let mut cur_idx = 0usize;
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        while cur_idx < spans.len() && spans[cur_idx].to.is_some_and(|t| t <= a) {
            cur_idx += 1;
        }
        let Some(cur) = spans.get(cur_idx).filter(|s| s.from <= a) else {
            continue;
        };
        let (list, l) = book.at(a)?;
        if l.notice_seconds == 0 {
            continue;
        }
        let window_start = shift(a, l.notice_seconds, cal, false);
        let f_month = cal.prorate(Decimal::ONE, RatePer::Month, a, b)?;
        let f_year = cal.prorate(Decimal::ONE, RatePer::Year, a, b)?;
        let value = |cache: &mut RateCache,
                     key: &ItemKey,
                     level: &str,
                     qty: i64|
         -> Result<Decimal, BillingError> {
            let (rate, per) = cache.get(book, list, key, level)?;
            Ok(rate
                * Decimal::from(qty)
                * if per == RatePer::Month {
                    f_month
                } else {
                    f_year
                })
        };
        let mut current = items(&cur.state);
        // Accounts of a profile that is gone altogether are a cut to zero.
        for s in spans[..cur_idx].iter().rev() {
            if s.to.is_some_and(|t| t <= window_start) {
                break;
            }
            for p in s.state.accounts.keys() {
                let k = ItemKey::Account(p.clone());
                if !current.iter().any(|(c, _, _)| *c == k) {
                    current.push((k, cur.state.service_level.clone(), 0));
                }
            }
        }
        for (key, level, qty) in &current {
            let actual = if *qty == 0 {
                Decimal::ZERO
            } else {
                value(cache, key, level, *qty)?
            };
            let mut best: Option<(Decimal, String, i64)> = None;
            for s in spans[..cur_idx].iter().rev() {
                if s.to.is_some_and(|t| t <= window_start) {
                    break;
                }
                for (k2, l2, q2) in items(&s.state) {
                    if k2 != *key || (*l2 == **level && q2 <= *qty) {
                        continue;
                    }
                    let v = value(cache, &k2, &l2, q2)?;
                    if v > actual && best.as_ref().is_none_or(|(bv, _, _)| v > *bv) {
                        best = Some((v, l2, q2));
                    }
                }
            }
            let Some((v, bl, bq)) = best else { continue };
            let excess = v - actual;
            let committed = (bl, bq);
            let now = (level.clone(), *qty);
            if let Some(r) = runs.iter_mut().rev().find(|r| {
                r.key == *key
                    && r.to == a
                    && r.committed == committed
                    && r.actual == now
                    && r.list == list
            }) {
                r.to = b;
                r.amount += excess;
            } else {
                runs.push(NoticeRun {
                    key: key.clone(),
                    committed,
                    actual: now,
                    list,
                    from: a,
                    to: b,
                    amount: excess,
                });
            }
        }
    }
    let mut lines = Vec::with_capacity(runs.len());
    for r in runs {
        let l = &book.lists[r.list];
        let what = match &r.key {
            ItemKey::Account(p) => format!("{p} accounts"),
            ItemKey::Component(n, _) => format!("component {n}"),
        };
        let amount = round_cents(r.amount);
        lines.push(Line {
            kind: LineKind::Notice,
            description: format!(
                "Notice period {} after a reduction: {what} billed at {} × {} instead of {} × {}",
                l.notice_text.as_deref().unwrap_or(""),
                r.committed.0,
                r.committed.1,
                r.actual.0,
                r.actual.1
            ),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: r.amount,
            amount,
            from: r.from,
            to: r.to,
            vat: l.vat.clone(),
        });
    }
    Ok(lines)
}
