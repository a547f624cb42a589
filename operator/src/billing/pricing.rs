//! Prices: which PriceList is in force when, which of its rates applies (the most specific
//! match on service level, component class and account profile), and the priced lines of one
//! tenant's timeline — accounts, components, notice after a reduction, and service credits.
//!
//! A later `effectiveFrom` supersedes a list from that instant, so a stretch that crosses it is
//! split there (an interim increase from 1 July prices June at the old rate, July at the new).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;
use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use regie_crds::PriceList;
use regie_crds::commercial::{RateItem, RatePer};
use regie_crds::duration::parse_duration;
use regie_crds::generated::SegmentComponent;
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

/// The largest amount, rate × quantity or line billing computes with: € 10^15, far above any
/// real bill and far enough below what a Decimal holds (about 7.9 × 10^28) that products with
/// seconds of a year and sums of many lines stay exact. Above it an input is refused, not priced.
pub fn max_amount() -> Decimal {
    Decimal::from(1_000_000_000_000_000_i64)
}

/// What a line is charged for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ItemKey {
    Account(String),
    Component(String, ComponentClass),
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

/// What pricing reads of a stretch of the timeline: its bounds and its billable state, borrowed
/// from the ledger or the tenant's files rather than copied. `components` in the ledger's order
/// (sorted, as [`crate::billing::ledger::BillableState::of_segment`] keeps them).
#[derive(Clone, Copy, Debug)]
pub struct SpanRef<'a> {
    pub from: Timestamp,
    pub to: Option<Timestamp>,
    pub service_level: &'a str,
    pub accounts: &'a BTreeMap<String, i64>,
    pub components: &'a [SegmentComponent],
}

impl<'a> SpanRef<'a> {
    pub fn of(span: &'a Span) -> SpanRef<'a> {
        SpanRef {
            from: span.from,
            to: span.to,
            service_level: &span.state.service_level,
            accounts: &span.state.accounts,
            components: &span.state.components,
        }
    }
}

/// Bounds and lengths of the few months one call touches, kept here rather than asked of the
/// calendar for every piece: its cache is behind a lock that the billing threads share.
struct Months<'c> {
    cal: &'c Calendar,
    /// (month, start, end, seconds of the month, seconds of its year)
    known: Vec<(Month, Timestamp, Timestamp, Decimal, Decimal)>,
}

impl<'c> Months<'c> {
    fn new(cal: &'c Calendar) -> Months<'c> {
        Months {
            cal,
            known: Vec::new(),
        }
    }

    fn get(&mut self, m: Month) -> Result<(Timestamp, Timestamp, Decimal, Decimal), BillingError> {
        if let Some(&(_, a, b, ms, ys)) = self.known.iter().rev().find(|k| k.0 == m) {
            return Ok((a, b, ms, ys));
        }
        let (a, b) = self.cal.month_bounds(m)?;
        let ms = Decimal::from(self.cal.month_seconds(m)?);
        let ys = Decimal::from(self.cal.year_seconds(m.year)?);
        self.known.push((m, a, b, ms, ys));
        Ok((a, b, ms, ys))
    }
}

/// One billed item of a span, with its key and level interned.
struct Item {
    key: usize,
    level: usize,
    qty: i64,
    /// Index into [`Table::values`].
    slot: usize,
}

/// A span with its items.
struct TSpan {
    from: Timestamp,
    to: Timestamp,
    /// The tenant's level, for a profile cut to zero.
    level: usize,
    items: Vec<Item>,
}

/// The timeline of one call, with items and levels interned to small integers, rates kept in a
/// dense table per (list, item, level) and rate × quantity per (item, list): a year of ten
/// segments a month asks the same questions hundreds of thousands of times.
struct Table<'a> {
    book: &'a PriceBook,
    keys: Vec<ItemKey>,
    levels: Vec<String>,
    spans: Vec<TSpan>,
    rates: Vec<Option<(Decimal, RatePer)>>,
    /// rate × quantity per item slot and list.
    values: Vec<Option<(Decimal, RatePer)>>,
    /// Line descriptions per (list, item, level), like `rates`: a year has hundreds of lines of
    /// the same few descriptions, and they share one string.
    descriptions: Vec<Option<Arc<str>>>,
    /// The VAT treatment of each list, shared by the lines of this call. One per call rather
    /// than one for the whole book: the billing threads would otherwise contend for a single
    /// reference count hundreds of thousands of times.
    vats: Vec<Arc<VatTreatment>>,
}

/// The index of `want` in `v`, appended when new; a handful of entries, so a scan is fastest.
fn intern<T, Q: ?Sized>(
    v: &mut Vec<T>,
    want: &Q,
    eq: impl Fn(&T, &Q) -> bool,
    make: impl FnOnce(&Q) -> T,
) -> usize {
    if let Some(i) = v.iter().position(|x| eq(x, want)) {
        return i;
    }
    v.push(make(want));
    v.len() - 1
}

impl<'a> Table<'a> {
    /// The spans that end after `since` (the start of the bill less the longest notice) and
    /// begin before `to`.
    fn new(book: &'a PriceBook, spans: &[SpanRef], since: Timestamp, to: Timestamp) -> Table<'a> {
        let mut t = Table {
            book,
            keys: Vec::new(),
            levels: Vec::new(),
            spans: Vec::new(),
            rates: Vec::new(),
            values: Vec::new(),
            descriptions: Vec::new(),
            vats: book.lists.iter().map(|l| Arc::new(l.vat.clone())).collect(),
        };
        let mut slots = 0usize;
        let level_eq = |x: &String, l: &str| x == l;
        for s in spans {
            let end = s.to.unwrap_or(to);
            if s.from >= to || end <= s.from || end <= since {
                continue;
            }
            let tl = intern(&mut t.levels, s.service_level, level_eq, str::to_string);
            let mut items = Vec::with_capacity(s.accounts.len() + s.components.len());
            for (profile, n) in s.accounts {
                if *n == 0 {
                    continue;
                }
                let key = intern(
                    &mut t.keys,
                    profile.as_str(),
                    |k, p| matches!(k, ItemKey::Account(x) if x == p),
                    |p| ItemKey::Account(p.to_string()),
                );
                items.push(Item {
                    key,
                    level: tl,
                    qty: *n,
                    slot: slots,
                });
                slots += 1;
            }
            for c in s.components {
                let key = intern(
                    &mut t.keys,
                    c,
                    |k, c| matches!(k, ItemKey::Component(n, cl) if *n == c.name && *cl == c.class),
                    |c| ItemKey::Component(c.name.clone(), c.class),
                );
                let level = intern(
                    &mut t.levels,
                    c.service_level.as_str(),
                    level_eq,
                    str::to_string,
                );
                items.push(Item {
                    key,
                    level,
                    qty: 1,
                    slot: slots,
                });
                slots += 1;
            }
            t.spans.push(TSpan {
                from: s.from,
                to: end,
                level: tl,
                items,
            });
        }
        let lists = book.lists.len();
        t.rates = vec![None; lists * t.keys.len() * t.levels.len()];
        t.descriptions = vec![None; t.rates.len()];
        t.values = vec![None; slots * lists];
        t
    }

    fn rate(
        &mut self,
        list: usize,
        key: usize,
        level: usize,
    ) -> Result<(Decimal, RatePer), BillingError> {
        let i = (list * self.keys.len() + key) * self.levels.len() + level;
        if let Some(v) = self.rates[i] {
            return Ok(v);
        }
        let l = &self.book.lists[list];
        let lv = &self.levels[level];
        let r = match &self.keys[key] {
            ItemKey::Account(p) => l.rate(RateItem::Account, lv, None, Some(p))?,
            ItemKey::Component(_, class) => l.rate(RateItem::Component, lv, Some(*class), None)?,
        };
        if r.per == RatePer::Hour {
            return Err(BillingError::input(format!(
                "PriceList/{}: the rate for {} is per hour; account and component rates are per month or per year",
                l.name,
                describe(&self.keys[key], lv)
            )));
        }
        let v = (r.amount, r.per);
        self.rates[i] = Some(v);
        Ok(v)
    }

    /// The index of (list, item, level) in `rates` and `descriptions`.
    fn slot(&self, list: usize, key: usize, level: usize) -> usize {
        (list * self.keys.len() + key) * self.levels.len() + level
    }

    /// The rank of each description made so far among them in text order, equal texts equal
    /// ranks: comparing ranks orders lines as comparing their descriptions would.
    fn description_ranks(&self) -> Vec<u32> {
        let d = &self.descriptions;
        let mut made: Vec<usize> = (0..d.len()).filter(|i| d[*i].is_some()).collect();
        made.sort_by(|a, b| d[*a].cmp(&d[*b]));
        let mut ranks = vec![u32::MAX; d.len()];
        let mut rank = 0u32;
        for (n, &i) in made.iter().enumerate() {
            if n > 0 && d[made[n - 1]] != d[i] {
                rank += 1;
            }
            ranks[i] = rank;
        }
        ranks
    }

    /// The description of a line of `key` at `level` priced by `list` at `rate` per `per`.
    fn description(
        &mut self,
        list: usize,
        key: usize,
        level: usize,
        rate: Decimal,
        per: RatePer,
    ) -> Arc<str> {
        let i = self.slot(list, key, level);
        if let Some(d) = &self.descriptions[i] {
            return d.clone();
        }
        let d: Arc<str> = format!(
            "{}, {} per {}",
            describe(&self.keys[key], &self.levels[level]),
            super::money(rate),
            per_text(per)
        )
        .into();
        self.descriptions[i] = Some(d.clone());
        d
    }

    /// rate × quantity of item `ii` of span `si` under `list`.
    fn value(
        &mut self,
        si: usize,
        ii: usize,
        list: usize,
    ) -> Result<(Decimal, RatePer), BillingError> {
        let (key, level, qty, slot) = {
            let it = &self.spans[si].items[ii];
            (it.key, it.level, it.qty, it.slot)
        };
        let i = slot * self.book.lists.len() + list;
        if let Some(v) = self.values[i] {
            return Ok(v);
        }
        let (rate, per) = self.rate(list, key, level)?;
        // An account source or a file can give any count, a price list any rate: bounding their
        // product bounds every amount made of it, so the sums of lines cannot overflow either.
        let value = rate
            .checked_mul(Decimal::from(qty))
            .filter(|v| v.abs() <= max_amount())
            .ok_or_else(|| {
                BillingError::input(format!(
                    "{}: {qty} × {rate} per {} (PriceList/{}) is more than billing takes (at most {} per {0})",
                    describe(&self.keys[key], &self.levels[level]),
                    per_text(per),
                    self.book.lists[list].name,
                    max_amount(),
                ))
            })?;
        let v = (value, per);
        self.values[i] = Some(v);
        Ok(v)
    }
}

/// A stretch of one item at one quantity, level and rate within one billing period, growing as
/// segments repeat it.
struct Run {
    /// Index of the billing period it is billed in.
    period: usize,
    key: usize,
    level: usize,
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

/// A service credit: a percentage of a component's charges for a month, or for the part of the
/// month one level was held when the component's level changed in it (each level's part is
/// judged against that level's target, and credited from that level's charges).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credit {
    pub percent: Decimal,
    /// Start of the part; `None`: the month's start.
    pub from: Option<Timestamp>,
    /// End of the part; `None`: the month's end.
    pub to: Option<Timestamp>,
}

impl Credit {
    /// A percentage of the whole month's charges.
    pub fn month(percent: Decimal) -> Credit {
        Credit {
            percent,
            from: None,
            to: None,
        }
    }

    fn is_part(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// The credit one entry of a monthly `SlaReport` grants: none at 0 %, an error naming the
    /// field for a percentage outside 0 to 100 or a part's bound that is no RFC 3339 time.
    pub fn of_entry(
        c: &regie_crds::generated::ComponentCompliance,
    ) -> Result<Option<Credit>, String> {
        if !(0..=100).contains(&c.credit_percent) {
            return Err(format!(
                "status.components[{}].creditPercent: {} must be 0 to 100",
                c.component, c.credit_percent
            ));
        }
        if c.credit_percent == 0 {
            return Ok(None);
        }
        let time = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| {
                    t.parse::<Timestamp>().map_err(|e| {
                        format!(
                            "status.components[{}].{field}: {t:?} is not an RFC 3339 time: {e}",
                            c.component
                        )
                    })
                })
                .transpose()
        };
        Ok(Some(Credit {
            percent: c.credit_percent.into(),
            from: time("from", &c.from)?,
            to: time("to", &c.to)?,
        }))
    }
}

/// A stretch of one item's charges: from, to, amount.
type Piece = (Timestamp, Timestamp, Decimal);

/// Service credits: (component, month) → the credits of that component's charges in the month.
pub type ComponentCredits = BTreeMap<(String, Month), Vec<Credit>>;

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
    let spans: Vec<SpanRef> = spans.iter().map(SpanRef::of).collect();
    Ok(price_periods(book, cal, &spans, &[(from, to)], credits)?
        .pop()
        .unwrap_or_default())
}

/// The priced lines of a timeline for several billing periods at once, in one pass over the
/// timeline: exactly the lines of one [`price_timeline`] call per period (no run of a line and
/// no notice stretch crosses a period's bounds), without re-reading the timeline for every
/// period. `periods` must be in order and must not overlap.
pub fn price_periods(
    book: &PriceBook,
    cal: &Calendar,
    spans: &[SpanRef],
    periods: &[(Timestamp, Timestamp)],
    credits: &ComponentCredits,
) -> Result<Vec<Vec<Line>>, BillingError> {
    let mut out: Vec<Vec<Line>> = periods.iter().map(|_| Vec::new()).collect();
    for w in periods.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(BillingError::input(format!(
                "billing periods {}..{} and {}..{} overlap",
                w[0].0, w[0].1, w[1].0, w[1].1
            )));
        }
    }
    // Empty periods have no lines; the others are priced together.
    let live: Vec<usize> = (0..periods.len())
        .filter(|p| periods[*p].0 < periods[*p].1)
        .collect();
    let (Some(&first), Some(&last)) = (live.first(), live.last()) else {
        return Ok(out);
    };
    let bounds: Vec<(Timestamp, Timestamp)> = live.iter().map(|p| periods[*p]).collect();
    let (from, to) = (periods[first].0, periods[last].1);
    // A day more than the longest notice: calendar days may be an hour longer than 86 400 s.
    let since = from
        .checked_sub(jiff::SignedDuration::from_secs(
            book.max_notice_seconds() + 86_400,
        ))
        .unwrap_or(Timestamp::MIN);
    let mut tab = Table::new(book, spans, since, to);
    let mut runs: Vec<Run> = Vec::new();
    let mut last_run: Vec<Option<usize>> = vec![None; tab.keys.len()];
    // (period, item, month) → that item's charges in the month within the period, piece by
    // piece (from, to, amount), for the components a credit is of: a charge accrues evenly over
    // a piece, so the share of a part of the month is its share of time.
    let credited: BTreeSet<&str> = credits.keys().map(|(n, _)| n.as_str()).collect();
    let mut component_pieces: BTreeMap<(usize, usize, Month), Vec<Piece>> = BTreeMap::new();
    let mut pieces: Vec<(usize, Month, Timestamp, Timestamp)> = Vec::new();
    let mut months = Months::new(cal);
    for si in 0..tab.spans.len() {
        let (span_from, span_to) = (tab.spans[si].from, tab.spans[si].to);
        for (p, &(pf, pt)) in bounds.iter().enumerate() {
            let (a, b) = (span_from.max(pf), span_to.min(pt));
            if a >= b {
                continue;
            }
            // The stretch cut where a list supersedes another and at month ends, as
            // PriceBook::pieces and Calendar::month_pieces cut it, without allocating.
            pieces.clear();
            let mut pa = a;
            while pa < b {
                let (list, l) = book.at(pa)?;
                let pb = l.until.map_or(b, |u| u.min(b));
                let (mut m, mut ma) = (cal.month_of(pa), pa);
                while ma < pb {
                    let mb = months.get(m)?.1.min(pb);
                    pieces.push((list, m, ma, mb));
                    (m, ma) = (m.next(), mb);
                }
                pa = pb;
            }
            for &(list, m, ma, mb) in &pieces {
                let secs = Decimal::from(mb.as_second() - ma.as_second());
                let (_, _, month_den, year_den) = months.get(m)?;
                for ii in 0..tab.spans[si].items.len() {
                    let (key, level, qty) = {
                        let it = &tab.spans[si].items[ii];
                        (it.key, it.level, it.qty)
                    };
                    let (rate, per) = tab.rate(list, key, level)?;
                    let den = if per == RatePer::Month {
                        month_den
                    } else {
                        year_den
                    };
                    // rate × quantity, kept per item and list: the same product, made once. It
                    // is bounded, and so is the rate (a quantity is at least 1), before either is
                    // multiplied by seconds.
                    let amount = tab.value(si, ii, list)?.0 * secs / den;
                    let unit = rate * secs / den;
                    if let ItemKey::Component(name, _) = &tab.keys[key]
                        && credited.contains(name.as_str())
                    {
                        component_pieces
                            .entry((p, key, m))
                            .or_default()
                            .push((ma, mb, amount));
                    }
                    let extend = last_run[key].map(|i| &runs[i]).is_some_and(|r| {
                        r.period == p
                            && r.to == ma
                            && r.level == level
                            && r.quantity == qty
                            && r.rate == rate
                            && r.per == per
                            && (r.list == list || book.lists[r.list].vat == book.lists[list].vat)
                    });
                    match last_run[key] {
                        Some(i) if extend => {
                            let r = &mut runs[i];
                            r.to = mb;
                            r.amount += amount;
                            r.unit_price += unit;
                        }
                        _ => {
                            last_run[key] = Some(runs.len());
                            runs.push(Run {
                                period: p,
                                key,
                                level,
                                quantity: qty,
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
    }
    let notices = notice_runs(&mut tab, cal, &bounds)?;
    // Every line of a period lands in a vector of the right size at once: a year of lines is
    // hundreds of megabytes to move otherwise.
    let mut sizes = vec![credits.len(); bounds.len()];
    for p in runs
        .iter()
        .map(|r| r.period)
        .chain(notices.iter().map(|r| r.period))
    {
        sizes[p] += 1;
    }
    let mut lines: Vec<Vec<Line>> = sizes.into_iter().map(Vec::with_capacity).collect();
    // Each period's lines come out in the order the invoice prints them (kind, description,
    // start; see the engine), so that its sort finds them in order and compares each line
    // once: runs, then credits, then notices. Runs are ordered by the rank of their shared
    // description rather than by the text, ties by their order here, as a stable sort would.
    let kinds: Vec<(LineKind, Unit)> = tab
        .keys
        .iter()
        .map(|k| match k {
            ItemKey::Account(_) => (LineKind::Account, Unit::Account),
            ItemKey::Component(..) => (LineKind::Component, Unit::Component),
        })
        .collect();
    let descriptions: Vec<Arc<str>> = runs
        .iter()
        .map(|r| tab.description(r.list, r.key, r.level, r.rate, r.per))
        .collect();
    let ranks = tab.description_ranks();
    let mut order: Vec<(usize, LineKind, u32, Timestamp, usize)> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rank = ranks[tab.slot(r.list, r.key, r.level)];
            (r.period, kinds[r.key].0, rank, r.from, i)
        })
        .collect();
    order.sort_unstable();
    for (_, _, _, _, i) in order {
        let r = &runs[i];
        let (kind, unit) = kinds[r.key];
        let description = descriptions[i].clone();
        lines[r.period].push(Line {
            kind,
            description,
            quantity: Decimal::from(r.quantity),
            unit,
            unit_price: r.unit_price,
            amount: round_cents(r.amount),
            from: r.from,
            to: r.to,
            vat: tab.vats[r.list].clone(),
        });
    }
    for (p, &(pf, pt)) in bounds.iter().enumerate() {
        for ((component, m), credit) in credits
            .iter()
            .flat_map(|(k, cs)| cs.iter().map(move |c| (k, c)))
        {
            let percent = &credit.percent;
            // A component reclassified during the month is charged under one key per class
            // (its name with each): the credit is a share of all its charges for the month, or
            // for the part of the month it is about.
            let keys = || {
                tab.keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| matches!(k, ItemKey::Component(n, _) if n == component))
                    .map(|(k, _)| (p, k, *m))
            };
            let (ma, mb) = cal.month_bounds(*m)?;
            let (part_from, part_to) = (
                credit.from.unwrap_or(ma).max(ma),
                credit.to.unwrap_or(mb).min(mb),
            );
            let charge = &keys()
                .filter_map(|k| component_pieces.get(&k))
                .flatten()
                .map(|&(a, b, amount)| {
                    let whole = b.as_second() - a.as_second();
                    let inside = b.min(part_to).as_second() - a.max(part_from).as_second();
                    if inside <= 0 || whole <= 0 {
                        Decimal::ZERO
                    } else if inside >= whole {
                        amount
                    } else {
                        amount * Decimal::from(inside) / Decimal::from(whole)
                    }
                })
                .sum::<Decimal>();
            if percent.is_zero() || charge.is_zero() {
                continue;
            }
            let (a, b) = (part_from.max(pf), part_to.min(pt));
            let (list, _) = book.at(a)?;
            let of = if credit.is_part() {
                let day = |t: Timestamp| {
                    t.to_zoned(cal.tz().clone())
                        .strftime("%Y-%m-%d %H:%M")
                        .to_string()
                };
                format!("of its charges from {} to {}", day(part_from), day(part_to))
            } else {
                "of its charges for the month".to_string()
            };
            lines[p].push(Line {
                kind: LineKind::Credit,
                description: format!(
                    "Service credit {m}: component {component} below its availability target, {percent}% {of} ({})",
                    super::money(*charge)
                )
                .into(),
                quantity: -*percent,
                unit: Unit::Percent,
                unit_price: *charge / Decimal::ONE_HUNDRED,
                amount: -round_cents(*charge * *percent / Decimal::ONE_HUNDRED),
                from: a,
                to: b,
                vat: tab.vats[list].clone(),
            });
        }
    }
    notice_lines(&tab, notices, &mut lines);
    for (p, l) in live.into_iter().zip(lines) {
        out[p] = l;
    }
    Ok(out)
}

/// `t` moved by a notice period: whole days are calendar days in Europe/Amsterdam (90 days
/// after 16 March 00:00 is 14 June 00:00, summer time or not); other periods are exact seconds.
fn shift(t: Timestamp, secs: i64, cal: &Calendar, forward: bool) -> Timestamp {
    let sign = if forward { 1 } else { -1 };
    let naive = t.checked_add(jiff::SignedDuration::from_secs(sign * secs));
    let moved = if secs % 86_400 == 0 {
        // The same local time of day, whole days on: correct by the change of UTC offset.
        naive.and_then(|n| {
            let change = i64::from(cal.tz().to_offset(t).seconds())
                - i64::from(cal.tz().to_offset(n).seconds());
            n.checked_add(jiff::SignedDuration::from_secs(change))
        })
    } else {
        naive
    };
    moved.unwrap_or(if forward {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

/// Where a state that ended at `end` leaves the notice window of `secs`: the first instant
/// whose window (back from it by [`shift`]) starts at or after `end`. Whole days shifted forward
/// and back are not each other's inverse at a change of UTC offset — 90 days after 29 December
/// 02:30 is a local time the spring change skips — and the surcharge runs until this point, so
/// it is found from the backward shift itself, the one the window is measured by.
fn notice_end(end: Timestamp, secs: i64, cal: &Calendar) -> Timestamp {
    let guess = shift(end, secs, cal, true);
    let back = |t: Timestamp| shift(t, secs, cal, false);
    let before = guess.checked_sub(jiff::SignedDuration::from_nanos(1));
    if back(guess) >= end && before.is_ok_and(|b| back(b) < end) {
        return guess;
    }
    // The backward shift does not decrease with its argument, and differs from the exact one
    // by the offsets' difference (an hour or two): a day either side brackets the answer.
    let day = jiff::SignedDuration::from_hours(24);
    let (Ok(mut lo), Ok(mut hi)) = (guess.checked_sub(day), guess.checked_add(day)) else {
        return guess;
    };
    if back(lo) >= end || back(hi) < end {
        return guess;
    }
    // back(lo) < end <= back(hi), to the nanosecond.
    while let Ok(mid) = lo.checked_add(hi.duration_since(lo) / 2)
        && mid > lo
        && mid < hi
    {
        if back(mid) >= end {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// A stretch in which the notice surcharge of one item has one cause.
struct NoticeRun {
    period: usize,
    key: usize,
    /// (level, quantity) billed for, and what the tenant has.
    committed: (usize, i64),
    actual: (usize, i64),
    list: usize,
    from: Timestamp,
    to: Timestamp,
    amount: Decimal,
}

/// The highest rate × quantity of one item in a notice window, kept apart per rate period so the
/// comparison stays exact (a month and a year differ in length from month to month).
#[derive(Clone, Copy)]
struct Best {
    value: Decimal,
    level: usize,
    qty: i64,
}

/// One item of a span in the notice window.
#[derive(Clone, Copy)]
struct Candidate {
    span: usize,
    best: Best,
}

/// The notice window of every item as it slides along the timeline: per item and rate period, a
/// deque of the spans that could still be the window's maximum (values strictly falling from
/// front to back), so each span enters and leaves once instead of the whole window being
/// rescanned at every breakpoint. Ties go to the latest span, and within a span to its first
/// item, as a scan from the newest span back would pick them.
struct Window {
    /// Spans `lo..hi` are in the window.
    lo: usize,
    hi: usize,
    /// The list the values are priced with; another list rebuilds the window.
    list: Option<usize>,
    month: Vec<VecDeque<Candidate>>,
    year: Vec<VecDeque<Candidate>>,
}

impl Window {
    fn new(keys: usize) -> Window {
        Window {
            lo: 0,
            hi: 0,
            list: None,
            month: vec![VecDeque::new(); keys],
            year: vec![VecDeque::new(); keys],
        }
    }

    /// Moves the window to spans `lo..hi` priced with `list`.
    fn slide(
        &mut self,
        tab: &mut Table,
        lo: usize,
        hi: usize,
        list: usize,
    ) -> Result<(), BillingError> {
        if self.list != Some(list) || lo < self.lo || hi < self.hi {
            // A new list prices every span anew; a window that moved back (its start is a local
            // time of day, which summer time can pull back an hour) is rebuilt. Both are rare.
            self.month.iter_mut().for_each(VecDeque::clear);
            self.year.iter_mut().for_each(VecDeque::clear);
            self.list = Some(list);
            self.lo = lo;
            self.hi = lo;
        }
        for j in self.hi.max(lo)..hi {
            for ii in (0..tab.spans[j].items.len()).rev() {
                let (key, level, qty) = {
                    let it = &tab.spans[j].items[ii];
                    (it.key, it.level, it.qty)
                };
                let (value, per) = tab.value(j, ii, list)?;
                let deque = if per == RatePer::Month {
                    &mut self.month[key]
                } else {
                    &mut self.year[key]
                };
                while deque.back().is_some_and(|c| c.best.value <= value) {
                    deque.pop_back();
                }
                deque.push_back(Candidate {
                    span: j,
                    best: Best { value, level, qty },
                });
            }
        }
        self.hi = hi;
        for deque in self.month.iter_mut().chain(self.year.iter_mut()) {
            while deque.front().is_some_and(|c| c.span < lo) {
                deque.pop_front();
            }
        }
        self.lo = lo;
        Ok(())
    }

    fn best(&self, key: usize) -> (Option<Best>, Option<Best>) {
        (
            self.month[key].front().map(|c| c.best),
            self.year[key].front().map(|c| c.best),
        )
    }

    fn holds(&self, key: usize) -> bool {
        !self.month[key].is_empty() || !self.year[key].is_empty()
    }
}

/// Notice: at each instant an item is billed at least at the highest charge any state held
/// within the notice period before it (valued at today's prices), and the excess over what the
/// current state costs is its own line. Upgrades raise the current charge at once and never
/// leave an excess; price changes of the list never count as a reduction. The stretches of
/// surcharge, each within one billing period of `periods` (ordered, not overlapping, not empty).
fn notice_runs(
    tab: &mut Table,
    cal: &Calendar,
    periods: &[(Timestamp, Timestamp)],
) -> Result<Vec<NoticeRun>, BillingError> {
    let book = tab.book;
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
    let (Some(&(from, _)), Some(&(_, to))) = (periods.first(), periods.last()) else {
        return Ok(Vec::new());
    };
    if notices.is_empty() || tab.spans.len() < 2 {
        return Ok(Vec::new());
    }
    let inside = |p: Timestamp| periods.iter().any(|(a, b)| *a <= p && p <= *b);
    // Breakpoints: where a state begins and ends (a ledger that ends — the tenant left — has no
    // state after it, so no surcharge either), where it leaves a notice window, where lists
    // change, and every period's bounds.
    let mut points: Vec<Timestamp> = Vec::new();
    for (a, b) in periods {
        points.push(*a);
        points.push(*b);
    }
    for s in &tab.spans {
        for p in [s.from, s.to] {
            if p >= from && p <= to {
                points.push(p);
            }
        }
        for n in &notices {
            let p = notice_end(s.to, *n, cal);
            if p >= from && p <= to {
                points.push(p);
            }
        }
    }
    for l in &book.lists {
        points.push(l.from);
    }
    // Month starts too, so that every interval lies in one month and its share is one division.
    let mut month_bounds = Vec::new();
    let mut m = cal.month_of(from);
    loop {
        let (ms, me) = cal.month_bounds(m)?;
        points.push(ms);
        month_bounds.push((m, ms, me));
        if me >= to {
            break;
        }
        m = m.next();
    }
    // Seconds of the years those months lie in, by year (a bill spans two or three at most).
    let mut year_seconds: Vec<(i16, Decimal)> = Vec::new();
    for (m, _, _) in &month_bounds {
        if !year_seconds.iter().any(|(y, _)| *y == m.year) {
            year_seconds.push((m.year, Decimal::from(cal.year_seconds(m.year)?)));
        }
    }
    points.retain(|p| inside(*p));
    points.sort_unstable();
    points.dedup();
    // Items in spans before each index: whether a window holds anything at all.
    let mut items_before: Vec<usize> = Vec::with_capacity(tab.spans.len() + 1);
    items_before.push(0);
    for s in &tab.spans {
        items_before.push(items_before[items_before.len() - 1] + s.items.len());
    }
    let nkeys = tab.keys.len();
    let mut window = Window::new(nkeys);
    let mut runs: Vec<NoticeRun> = Vec::new();
    // Runs of each item in the current period, newest last.
    let mut key_runs: Vec<Vec<usize>> = vec![Vec::new(); nkeys];
    let mut period = 0usize;
    let mut cur = 0usize;
    let mut current: Vec<(usize, usize, i64, Option<usize>)> = Vec::new();
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        while period < periods.len() && periods[period].1 <= a {
            period += 1;
            key_runs.iter_mut().for_each(Vec::clear);
        }
        if period >= periods.len() {
            break;
        }
        if a < periods[period].0 {
            // Between two periods.
            continue;
        }
        while cur < tab.spans.len() && tab.spans[cur].to <= a {
            cur += 1;
        }
        if cur >= tab.spans.len() || tab.spans[cur].from > a {
            continue;
        }
        let (list, l) = book.at(a)?;
        if l.notice_seconds == 0 {
            continue;
        }
        let window_start = shift(a, l.notice_seconds, cal, false);
        // The window: the spans before the current one that end after its start.
        let lo = tab.spans[..cur].partition_point(|s| s.to <= window_start);
        if items_before[cur] == items_before[lo] {
            continue;
        }
        window.slide(tab, lo, cur, list)?;
        // What the tenant has now, per item; a profile of the window it no longer has is a cut
        // to zero.
        current.clear();
        current.extend(
            tab.spans[cur]
                .items
                .iter()
                .enumerate()
                .map(|(ii, i)| (i.key, i.level, i.qty, Some(ii))),
        );
        for k in 0..nkeys {
            if window.holds(k)
                && matches!(tab.keys[k], ItemKey::Account(_))
                && !current.iter().any(|c| c.0 == k)
            {
                current.push((k, tab.spans[cur].level, 0, None));
            }
        }
        let mut factors: Option<(Decimal, Decimal)> = None;
        for &(key, level, qty, ii) in &current {
            let (best_month, best_year) = window.best(key);
            if best_month.is_none() && best_year.is_none() {
                continue;
            }
            let (actual_value, actual_per) = match ii {
                Some(ii) if qty != 0 => {
                    let (v, per) = tab.value(cur, ii, list)?;
                    (v, Some(per))
                }
                _ => (Decimal::ZERO, None),
            };
            // Quick exact rejection when the window holds nothing dearer at the same period.
            let dearer = |b: &Option<Best>, per: RatePer| {
                b.is_some_and(|b| actual_per != Some(per) || b.value > actual_value)
            };
            if !dearer(&best_month, RatePer::Month) && !dearer(&best_year, RatePer::Year) {
                continue;
            }
            let (f_month, f_year) = match factors {
                Some(f) => f,
                None => {
                    let Some(&(m, ms, me)) =
                        month_bounds.iter().find(|(_, ms, me)| *ms <= a && b <= *me)
                    else {
                        return Err(BillingError::input(format!(
                            "notice: no month holds {a}..{b}"
                        )));
                    };
                    let secs = Decimal::from(b.as_second() - a.as_second());
                    let year = match year_seconds.iter().find(|(y, _)| *y == m.year) {
                        Some((_, s)) => *s,
                        None => Decimal::from(cal.year_seconds(m.year)?),
                    };
                    let f = (
                        secs / Decimal::from(me.as_second() - ms.as_second()),
                        secs / year,
                    );
                    factors = Some(f);
                    f
                }
            };
            let actual = match actual_per {
                Some(RatePer::Month) => actual_value * f_month,
                Some(_) => actual_value * f_year,
                None => Decimal::ZERO,
            };
            let candidates = [
                best_month.map(|b| (b, b.value * f_month)),
                best_year.map(|b| (b, b.value * f_year)),
            ];
            let Some((top, committed)) = candidates
                .into_iter()
                .flatten()
                .max_by(|x, y| x.1.cmp(&y.1))
            else {
                continue;
            };
            if committed <= actual {
                continue;
            }
            let excess = committed - actual;
            let c = (top.level, top.qty);
            let now = (level, qty);
            let open = key_runs[key].iter().rev().copied().find(|i| {
                let r = &runs[*i];
                r.to == a && r.committed == c && r.actual == now && r.list == list
            });
            if let Some(i) = open {
                let r = &mut runs[i];
                r.to = b;
                r.amount += excess;
            } else {
                key_runs[key].push(runs.len());
                runs.push(NoticeRun {
                    period,
                    key,
                    committed: c,
                    actual: now,
                    list,
                    from: a,
                    to: b,
                    amount: excess,
                });
            }
        }
    }
    Ok(runs)
}

/// The lines of notice runs, appended to their periods' lines in the order the invoice prints
/// them (description, then start; ties in the order of the runs).
fn notice_lines(tab: &Table, runs: Vec<NoticeRun>, lines: &mut [Vec<Line>]) {
    // "Notice period 90d after a reduction: standard accounts billed at " per list and item.
    let mut heads: BTreeMap<(usize, usize), String> = BTreeMap::new();
    // Each description is written here and copied once into its line's shared string.
    let mut description = String::new();
    // (the line, its period, the list and item of its description's head, the head's length)
    type Made = (Line, usize, (usize, usize), usize);
    let mut made: Vec<Made> = Vec::with_capacity(runs.len());
    for r in runs {
        let l = &tab.book.lists[r.list];
        let head = heads.entry((r.list, r.key)).or_insert_with(|| {
            let what = match &tab.keys[r.key] {
                ItemKey::Account(p) => format!("{p} accounts"),
                ItemKey::Component(n, _) => format!("component {n}"),
            };
            format!(
                "Notice period {} after a reduction: {what} billed at ",
                l.notice_text.as_deref().unwrap_or("")
            )
        });
        description.clear();
        description.push_str(head);
        // Writing to a String cannot fail.
        let _ = write!(
            description,
            "{} × {} instead of {} × {}",
            tab.levels[r.committed.0], r.committed.1, tab.levels[r.actual.0], r.actual.1
        );
        let line = Line {
            kind: LineKind::Notice,
            description: Arc::from(description.as_str()),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: r.amount,
            amount: round_cents(r.amount),
            from: r.from,
            to: r.to,
            vat: tab.vats[r.list].clone(),
        };
        made.push((line, r.period, (r.list, r.key), head.len()));
    }
    // Lines of the same list and item share the head and differ only after it.
    made.sort_by(|a, b| {
        a.1.cmp(&b.1)
            .then_with(|| {
                if a.2 == b.2 {
                    a.0.description[a.3..].cmp(&b.0.description[b.3..])
                } else {
                    a.0.description.cmp(&b.0.description)
                }
            })
            .then(a.0.from.cmp(&b.0.from))
    });
    for (line, period, _, _) in made {
        lines[period].push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAYS_90: i64 = 90 * 86_400;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn a_notice_ends_at_the_first_instant_whose_window_no_longer_holds_the_state() {
        let cal = Calendar::amsterdam().expect("the calendar");
        // 90 days after 16 March 00:00 is 14 June 00:00, summer time or not.
        assert_eq!(
            notice_end(ts("2026-03-15T23:00:00Z"), DAYS_90, &cal),
            ts("2026-06-13T22:00:00Z")
        );
        // 90 days after 29 December 02:30 is 29 March 02:30, which the spring change skips:
        // the notice ends at 03:00 summer time, not at 01:30 winter time (which left the
        // surcharge running until the next breakpoint, the month's end).
        assert_eq!(
            notice_end(ts("2025-12-29T01:30:00Z"), DAYS_90, &cal),
            ts("2026-03-29T01:00:00Z")
        );
        // Exact seconds need no correction.
        assert_eq!(
            notice_end(ts("2025-12-29T01:30:00Z"), 3_600, &cal),
            ts("2025-12-29T02:30:00Z")
        );
        // Every quarter hour over the nights whose 90th day falls on a change of offset, and
        // the changes themselves: the end is where the window lets go, to the nanosecond.
        let nanosecond = jiff::SignedDuration::from_nanos(1);
        for start in [
            "2025-12-28T22:00:00Z",
            "2026-03-28T22:00:00Z",
            "2026-07-26T22:00:00Z",
            "2026-10-24T22:00:00Z",
        ] {
            let mut end = ts(start);
            for _ in 0..(6 * 4) {
                let at = notice_end(end, DAYS_90, &cal);
                assert!(shift(at, DAYS_90, &cal, false) >= end, "{end} → {at}");
                let before = at.checked_sub(nanosecond).expect("in range");
                assert!(shift(before, DAYS_90, &cal, false) < end, "{end} → {at}");
                end = end
                    .checked_add(jiff::SignedDuration::from_mins(15))
                    .expect("in range");
            }
        }
    }
}
