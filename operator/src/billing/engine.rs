//! The billing run: from tenants (their files and their Usage ledgers), the price book, cost
//! pools, service orders and service credits to one invoice per tenant per billing period.
//!
//! A month with a `Usage` object is billed from its segments, a month without one as the
//! tenant's files describe it; either only for the part of the month it is a member. The timeline
//! reaches back by the longest notice period, so a reduction in February still shows in March.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use regie_crds::commercial::RateItem;
use regie_crds::generated::{Segment, SegmentComponent};
use regie_crds::tenancy::InvoicingPeriod;
use regie_crds::validate::{FieldError, Validate, parse_date, parse_decimal};
use regie_crds::{
    CostPool, HostingComponent, PriceList, ServiceOrder, Tenant, Usage, WorkplacePackage,
};
use rust_decimal::Decimal;

use super::invoice::{Invoice, Line, LineKind, Unit, state_at};
use super::ledger::{BillableState, bounds};
use super::period::{Month, Period, midnight};
use super::pools::{Instalment, Member, Pool};
pub use super::pricing::Credit;
use super::pricing::{ComponentCredits, PriceBook, SpanRef, max_amount, price_periods};
use super::proration::Calendar;
use super::{BillingError, round_cents};
use crate::desired::component_level;
use crate::input::Source;
use crate::inventory::{Inventory, tenant_namespace};

/// Flexible work of one day.
#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    /// `ServiceOrder/<namespace>/<name>`, for messages.
    pub id: String,
    pub date: Date,
    pub hours: Decimal,
    pub rate: Option<Decimal>,
    pub description: String,
}

/// Everything billing needs of one tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub joined: Date,
    pub leaves: Option<Date>,
    pub inhabitants: i64,
    pub invoicing: InvoicingPeriod,
    /// The state its files describe: billed for months without a Usage.
    pub declared: BillableState,
    /// Usage segments per month, where the ledger has them.
    pub usage: BTreeMap<Month, Vec<Segment>>,
    /// Months whose ledger offboarding closed with nothing in it (a deletion at the month's
    /// first instant): a departure, unlike a ledger not written yet, which is empty too.
    pub left_empty: BTreeSet<Month>,
    pub orders: Vec<Order>,
}

/// The catalogue a bill is priced with.
#[derive(Debug)]
pub struct Catalogue {
    pub cal: Calendar,
    pub book: PriceBook,
    pub pools: Vec<Pool>,
    /// Tenants that have left and whose Tenant is gone, as pools knew them when they left
    /// (their `leaves` the day they left at the latest). They are billed no more, but stay
    /// members of the pool periods they were members of: dropped, their share would be
    /// allocated over the others again, on top of what they had been invoiced (a pool over
    /// five with one gone is recomputed over four and collected 5/4 of its amount). `regie
    /// bill` has none: a repository's tenants are those in its files.
    pub departed: Vec<Member>,
}

/// Service credits: (tenant, component, month) → the credits of that component's month charges
/// (one, or one per level held when the component's level changed in the month).
pub type Credits = BTreeMap<(String, String, Month), Vec<Credit>>;

/// `Err` naming the object and every field `regie validate` refuses in it, if any.
fn checked(what: impl FnOnce() -> String, errors: Vec<FieldError>) -> Result<(), BillingError> {
    if errors.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Err(BillingError::input(format!(
        "{}: {}",
        what(),
        fields.join("; ")
    )))
}

/// The catalogue of price lists and cost pools.
///
/// Each list and pool is first checked as `regie validate` checks it (the same
/// `spec.validate()`): the API server admits what its schema allows, so without this the
/// controller would price with a list `regie validate` refuses (VAT category E at 21%, a rate
/// of 2135.123456). `regie bill` reads only valid objects; for it this changes nothing.
pub fn catalogue<'a>(
    lists: &[PriceList],
    pools: impl IntoIterator<Item = &'a CostPool>,
    cal: Calendar,
) -> Result<Catalogue, BillingError> {
    for l in lists {
        checked(|| format!("PriceList/{}", l.name_any()), l.spec.validate())?;
    }
    let book = PriceBook::new(lists, &cal)?;
    let pools = pools
        .into_iter()
        .map(|p| {
            checked(|| format!("CostPool/{}", p.name_any()), p.spec.validate())?;
            Pool::from_object(p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Catalogue {
        cal,
        book,
        pools,
        departed: Vec::new(),
    })
}

/// One tenant and its objects that billing reads, each with the file it came from (for
/// messages). Packages and components are those of the tenant's namespace, orders too; usages
/// are the Usage ledgers whose `spec.tenant` is the tenant.
pub struct TenantObjects<'a> {
    pub tenant: &'a Tenant,
    pub source: &'a Source,
    pub packages: Vec<&'a WorkplacePackage>,
    pub components: Vec<&'a HostingComponent>,
    pub orders: Vec<(&'a Source, &'a ServiceOrder)>,
    pub usages: Vec<(&'a Source, &'a Usage)>,
}

/// Reads the catalogue and tenants from an inventory of valid objects.
pub fn from_inventory(
    inv: &Inventory,
    cal: Calendar,
) -> Result<(Catalogue, Vec<TenantInput>), BillingError> {
    let lists: Vec<_> = inv.price_lists.iter().map(|p| p.object.clone()).collect();
    let cat = catalogue(&lists, inv.pools.iter().map(|p| &p.object), cal)?;
    let packages = grouped(
        inv.packages
            .iter()
            .filter_map(|p| Some((p.object.metadata.namespace.as_deref()?, &p.object))),
    );
    let components = grouped(
        inv.components
            .iter()
            .filter_map(|c| Some((c.object.metadata.namespace.as_deref()?, &c.object))),
    );
    let orders = grouped(inv.orders.iter().filter_map(|o| {
        Some((
            o.object.metadata.namespace.as_deref()?,
            (&o.source, &o.object),
        ))
    }));
    let usages = grouped(
        inv.usages
            .iter()
            .map(|u| (u.object.spec.tenant.as_str(), (&u.source, &u.object))),
    );
    let mut tenants = Vec::with_capacity(inv.tenants.len());
    for t in &inv.tenants {
        let ns = tenant_namespace(&t.object);
        let name = t.object.name_any();
        tenants.push(tenant_input(TenantObjects {
            tenant: &t.object,
            source: &t.source,
            packages: packages.get(ns.as_str()).cloned().unwrap_or_default(),
            components: components.get(ns.as_str()).cloned().unwrap_or_default(),
            orders: orders.get(ns.as_str()).cloned().unwrap_or_default(),
            usages: usages.get(name.as_str()).cloned().unwrap_or_default(),
        })?);
    }
    tenants.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((cat, tenants))
}

/// Values grouped by key (a namespace, a tenant's name), each group in the values' order: a
/// tenant's objects are found through one index instead of a search over all of them.
pub fn grouped<'a, V>(pairs: impl IntoIterator<Item = (&'a str, V)>) -> HashMap<&'a str, Vec<V>> {
    let mut groups: HashMap<&str, Vec<V>> = HashMap::new();
    for (key, value) in pairs {
        groups.entry(key).or_default().push(value);
    }
    groups
}

/// What billing needs of one tenant, from its objects.
pub fn tenant_input(objects: TenantObjects) -> Result<TenantInput, BillingError> {
    let TenantObjects {
        tenant,
        source,
        packages,
        components,
        orders: order_objects,
        usages,
    } = objects;
    let name = tenant.name_any();
    let field =
        |f: &str, m: String| BillingError::input(format!("{source}: Tenant/{name}: {f}: {m}"));
    let joined = parse_date(&tenant.spec.membership.joined)
        .map_err(|m| field("spec.membership.joined", m))?;
    let leaves = match &tenant.spec.membership.leaves {
        Some(l) => Some(parse_date(l).map_err(|m| field("spec.membership.leaves", m))?),
        None => None,
    };
    let mut accounts: BTreeMap<String, i64> = BTreeMap::new();
    for p in packages {
        // A package exported from the cluster carries the count billing uses (after its basis).
        let billed = p
            .status
            .as_ref()
            .and_then(|s| s.billed_accounts)
            .unwrap_or(p.spec.accounts);
        *accounts.entry(p.spec.profile.clone()).or_default() += billed;
    }
    let mut components: Vec<SegmentComponent> = components
        .into_iter()
        .map(|c| SegmentComponent {
            name: c.name_any(),
            class: c.spec.class,
            service_level: component_level(tenant, c).to_string(),
        })
        .collect();
    components.sort();
    let mut orders = Vec::with_capacity(order_objects.len());
    for (order_source, o) in order_objects {
        let id = format!(
            "ServiceOrder/{}/{}",
            o.metadata.namespace.as_deref().unwrap_or_default(),
            o.name_any()
        );
        let f =
            |fld: &str, m: String| BillingError::input(format!("{order_source}: {id}: {fld}: {m}"));
        let s = &o.spec;
        // As `regie validate` checks it (see `catalogue`).
        checked(|| format!("{order_source}: {id}"), s.validate())?;
        let hours = parse_decimal(&s.hours).map_err(|m| f("spec.hours", m))?;
        if hours < Decimal::ZERO {
            return Err(f(
                "spec.hours",
                format!("{:?} is negative: hours worked cannot be negative", s.hours),
            ));
        }
        let rate = match &s.rate {
            Some(r) => {
                let v = parse_decimal(r).map_err(|m| f("spec.rate", m))?;
                if v < Decimal::ZERO {
                    return Err(f("spec.rate", format!("{r:?} must not be negative")));
                }
                Some(v)
            }
            None => None,
        };
        orders.push(Order {
            date: parse_date(&s.date).map_err(|m| f("spec.date", m))?,
            id,
            hours,
            rate,
            description: s.description.clone(),
        });
    }
    orders.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.id.cmp(&b.id)));
    let mut usage = BTreeMap::new();
    let mut left_empty = BTreeSet::new();
    for (usage_source, u) in usages {
        let (y, m) = regie_crds::validate::parse_month(&u.spec.period).map_err(|m| {
            BillingError::input(format!(
                "{usage_source}: Usage/{}: spec.period: {m}",
                u.name_any()
            ))
        })?;
        let segs = u
            .status
            .as_ref()
            .map(|s| s.segments.clone())
            .unwrap_or_default();
        if segs.is_empty() && u.status.as_ref().is_some_and(|s| s.closed) {
            left_empty.insert(Month::new(y, m));
        }
        usage.insert(Month::new(y, m), segs);
    }
    Ok(TenantInput {
        labels: tenant.labels().clone(),
        joined,
        leaves,
        inhabitants: tenant.spec.inhabitants,
        invoicing: tenant.spec.billing.invoicing,
        declared: BillableState {
            service_level: tenant.spec.service_level.clone(),
            accounts,
            measured_accounts: BTreeMap::new(),
            components,
        },
        usage,
        left_empty,
        orders,
        name,
    })
}

/// The tenant's billing periods within `period`: its months, or its quarters when it is
/// invoiced quarterly and `period` holds whole quarters (a single month is then billed on its
/// own, as a preview).
pub fn billing_periods(period: Period, invoicing: InvoicingPeriod) -> Vec<Period> {
    match (invoicing, period) {
        (InvoicingPeriod::Quarterly, Period::Month(_))
        | (InvoicingPeriod::Quarterly, Period::Quarter { .. }) => vec![period],
        (InvoicingPeriod::Quarterly, Period::Year(y)) => (1..=4)
            .map(|q| Period::Quarter {
                year: y,
                quarter: q,
            })
            .collect(),
        (InvoicingPeriod::Monthly, p) => p.months().into_iter().map(Period::Month).collect(),
    }
}

/// What a bill takes as the record of what tenants had.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Record<'a> {
    /// Their files, where a month has no Usage (`regie bill`: a repository's forecast).
    #[default]
    Files,
    /// Their Usage ledgers (`regie run`): the files fill a month without one only from the
    /// first month that has one — nothing is billed before metering started — and, for the
    /// tenant `leaving`, only until the bill's `now`, its last instant.
    Ledgers { leaving: Option<&'a str> },
}

/// The tenant's timeline over `months`: Usage segments where there are some, else its files
/// (within what `record` lets them fill). Open segments run to the end of their month (a
/// forecast, on a draft). The states are borrowed from the tenant; `sorted` keeps the copies of
/// segments whose components the ledger did not keep in order.
fn timeline<'a>(
    t: &'a TenantInput,
    months: &[Month],
    cal: &Calendar,
    record: Record,
    now: Timestamp,
    sorted: &'a mut Vec<Vec<SegmentComponent>>,
) -> Result<Vec<SpanRef<'a>>, BillingError> {
    let mut joined = midnight(t.joined, cal.tz())?;
    let mut left = match t.leaves {
        Some(l) => Some(midnight(l.tomorrow().unwrap_or(l), cal.tz())?),
        None => None,
    };
    if let Record::Ledgers { leaving } = record {
        if let Some(first) = t.usage.keys().next() {
            joined = joined.max(first.start(cal.tz())?);
        }
        if leaving == Some(t.name.as_str()) {
            left = Some(left.map_or(now, |l| l.min(now)));
        }
    }
    // Pass one: the bounds, checked; copies of unsorted component lists.
    // (from, to, the segment and the index of its sorted copy, or none for the files' state)
    type Part<'s> = (Timestamp, Timestamp, Option<(&'s Segment, Option<usize>)>);
    let mut parts: Vec<Part<'a>> = Vec::new();
    for m in months {
        let (ms, me) = cal.month_bounds(*m)?;
        // A ledger not written yet (its Usage created, its segments still to come: regie
        // stopped between the two writes) is no record of the month; one offboarding closed
        // with nothing in it is.
        let ledger = t
            .usage
            .get(m)
            .filter(|s| !s.is_empty() || t.left_empty.contains(m));
        match ledger {
            Some(segs) => {
                let what = format!("Usage/{}-{m}", t.name);
                for ((from, to), s) in bounds(segs, &what)?.into_iter().zip(segs) {
                    // Within the month and the membership, as the files are: a ledger may run
                    // before `joined` (a Tenant applied early) or after `leaves` (still
                    // running), and a leaving tenant's past the instant it left; none of that
                    // is billed.
                    let to = to.unwrap_or(me).min(me);
                    let to = left.map_or(to, |l| to.min(l));
                    let from = from.max(ms).max(joined);
                    if from >= to {
                        continue;
                    }
                    let copy = if s.components.is_sorted() {
                        None
                    } else {
                        let mut c = s.components.clone();
                        c.sort();
                        sorted.push(c);
                        Some(sorted.len() - 1)
                    };
                    parts.push((from, to, Some((s, copy))));
                }
            }
            // Away: the tenant left in the latest earlier month with a ledger and has not
            // come back (its next ledger opens when it does).
            None if departed_before(t, *m, cal) => {}
            None => {
                let from = ms.max(joined);
                let to = left.map_or(me, |l| l.min(me));
                if from < to {
                    parts.push((from, to, None));
                }
            }
        }
    }
    let sorted: &'a Vec<Vec<SegmentComponent>> = sorted;
    let out: Vec<SpanRef<'a>> = parts
        .into_iter()
        .map(|(from, to, seg)| match seg {
            Some((s, copy)) => SpanRef {
                from,
                to: Some(to),
                service_level: &s.service_level,
                accounts: &s.accounts,
                components: match copy {
                    Some(i) => &sorted[i],
                    None => &s.components,
                },
            },
            None => SpanRef {
                from,
                to: Some(to),
                service_level: &t.declared.service_level,
                accounts: &t.declared.accounts,
                components: &t.declared.components,
            },
        })
        .collect();
    for w in out.windows(2) {
        if w[0].to.is_some_and(|t0| t0 > w[1].from) {
            return Err(BillingError::input(format!(
                "Usage of {}: segments overlap at {}",
                t.name, w[1].from
            )));
        }
    }
    Ok(out)
}

/// Whether the tenant's latest ledger before `month` ends with its departure: offboarding
/// closed it with nothing in it (a deletion at the month's first instant), or its last segment
/// was closed before its own month's end, as only offboarding closes one (a month's rollover
/// closes it at the end; regie down leaves it open). A month without a ledger after it is one
/// the tenant was away for: regie made nothing of it until its next ledger opens (a tenant
/// applied again while no regie ran is billed from when regie made it, as a new one is). A
/// ledger not written yet (created, its segments still to come) is passed over; one that does
/// not read tells nothing here, and is named where its own month is billed.
fn departed_before(t: &TenantInput, month: Month, cal: &Calendar) -> bool {
    for (at, segments) in t.usage.range(..month).rev() {
        if segments.is_empty() {
            if t.left_empty.contains(at) {
                return true;
            }
            continue;
        }
        return match bounds(segments, "ledger")
            .ok()
            .and_then(|b| b.last().copied())
        {
            Some((_, Some(to))) => cal.month_bounds(*at).is_ok_and(|(_, end)| to < end),
            _ => false,
        };
    }
    false
}

fn months_between(first: Month, last: Month) -> Vec<Month> {
    let mut v = Vec::new();
    let mut m = first;
    while m <= last {
        v.push(m);
        m = m.next();
    }
    v
}

/// The tenant as cost pools see it.
pub fn member_of(t: &TenantInput) -> Member {
    Member {
        tenant: t.name.clone(),
        labels: t.labels.clone(),
        joined: t.joined,
        leaves: t.leaves,
        inhabitants: t.inhabitants,
        accounts: t.declared.accounts.values().sum(),
    }
}

/// Pool instalments per tenant, with the pool they come from; and the tenants of a pool that
/// cannot be allocated (a member's data at runtime, such as its weights), with why: they cannot
/// be billed, the others can. A pool that fails and selects nobody fails the whole, as nobody
/// else would be told.
fn pool_instalments(cat: &Catalogue, tenants: &[TenantInput]) -> Result<PoolPlans, BillingError> {
    let mut members: Vec<Member> = tenants.iter().map(member_of).collect();
    // A departed tenant that is a tenant again (made anew under its name) is that tenant.
    members.extend(
        cat.departed
            .iter()
            .filter(|d| !tenants.iter().any(|t| t.name == d.tenant))
            .cloned(),
    );
    let mut out = PoolPlans::default();
    for (i, pool) in cat.pools.iter().enumerate() {
        let schedule = match pool.schedule(&members) {
            Ok(schedule) => schedule,
            Err(e) => {
                let selected: Vec<&TenantInput> = tenants
                    .iter()
                    .filter(|t| {
                        super::pools::selects(pool.selector.as_ref(), &t.labels).unwrap_or(true)
                    })
                    .collect();
                if selected.is_empty() {
                    return Err(e);
                }
                for t in selected {
                    out.failed
                        .entry(t.name.clone())
                        .or_insert_with(|| e.clone());
                }
                continue;
            }
        };
        for (tenant, plan) in schedule {
            out.instalments
                .entry(tenant)
                .or_default()
                .extend(plan.into_iter().map(|inst| (i, inst)));
        }
    }
    Ok(out)
}

/// See [`pool_instalments`].
#[derive(Default)]
struct PoolPlans {
    instalments: BTreeMap<String, Vec<(usize, Instalment)>>,
    failed: BTreeMap<String, BillingError>,
}

/// Invoices of every tenant for `period`, seen at `now` (draft while a period is open).
pub fn bill(
    cat: &Catalogue,
    tenants: &[TenantInput],
    credits: &Credits,
    period: Period,
    now: Timestamp,
) -> Result<Vec<Invoice>, BillingError> {
    bill_from(cat, tenants, credits, period, now, Record::Files)
}

/// [`bill`], with `record` saying what tenants had where a month has no Usage.
pub fn bill_from(
    cat: &Catalogue,
    tenants: &[TenantInput],
    credits: &Credits,
    period: Period,
    now: Timestamp,
    record: Record,
) -> Result<Vec<Invoice>, BillingError> {
    let billed = bill_each(cat, tenants, credits, period, now, record)?;
    match billed.unbilled.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(billed.invoices),
    }
}

/// The invoices of the tenants that could be billed, and why each other one could not.
#[derive(Debug, Default)]
pub struct Billed {
    pub invoices: Vec<Invoice>,
    /// By tenant, in the input's order: an input of that tenant's alone (a ledger, a rate for a
    /// level or class only it uses) does not allow a correct bill.
    pub unbilled: Vec<(String, BillingError)>,
}

/// [`bill_from`], tenant by tenant: one tenant that cannot be billed leaves the others' bills
/// as they are, and so do the members of a cost pool that cannot be allocated. What all share
/// (the price lists' periods) still fails the whole.
pub fn bill_each(
    cat: &Catalogue,
    tenants: &[TenantInput],
    credits: &Credits,
    period: Period,
    now: Timestamp,
    record: Record,
) -> Result<Billed, BillingError> {
    let cal = &cat.cal;
    let pools = pool_instalments(cat, tenants)?;
    // A day more than the longest notice: calendar days may be an hour longer than 86 400 s.
    let lookback = SignedDuration::from_secs(cat.book.max_notice_seconds() + 86_400);
    let start = period.start(cal.tz())?;
    let first = cal.month_of(start.checked_sub(lookback).unwrap_or(start));
    let months = months_between(first, period.last_month());
    // Tenants are independent: bill them on every core, in chunks, and keep their order. The
    // controller calls this from a blocking task.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = tenants.len().div_ceil(threads).max(1);
    let ctx = Ctx {
        cat,
        credits,
        pools: &pools,
        months: &months,
        period,
        now,
        record,
    };
    if threads == 1 || tenants.len() < 2 * threads {
        return bill_tenants(&ctx, tenants);
    }
    let results: Vec<Result<Billed, BillingError>> = std::thread::scope(|s| {
        let handles: Vec<_> = tenants
            .chunks(chunk)
            .map(|part| {
                let ctx = &ctx;
                s.spawn(move || bill_tenants(ctx, part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BillingError::input("a billing thread failed")))
            })
            .collect()
    });
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut billed = Billed {
        invoices: Vec::with_capacity(results.iter().map(|r| r.invoices.len()).sum()),
        unbilled: Vec::new(),
    };
    for r in results {
        billed.invoices.extend(r.invoices);
        billed.unbilled.extend(r.unbilled);
    }
    Ok(billed)
}

/// What every tenant's bill shares.
struct Ctx<'a> {
    cat: &'a Catalogue,
    credits: &'a Credits,
    pools: &'a PoolPlans,
    months: &'a [Month],
    period: Period,
    now: Timestamp,
    record: Record<'a>,
}

fn bill_tenants(ctx: &Ctx, tenants: &[TenantInput]) -> Result<Billed, BillingError> {
    let mut billed = Billed {
        // At most one invoice per tenant per month.
        invoices: Vec::with_capacity(tenants.len() * ctx.period.months().len()),
        unbilled: Vec::new(),
    };
    for t in tenants {
        if let Some(e) = ctx.pools.failed.get(&t.name) {
            billed.unbilled.push((t.name.clone(), e.clone()));
            continue;
        }
        let first = billed.invoices.len();
        if let Err(e) = bill_tenant(ctx, t, &mut billed.invoices) {
            billed.invoices.truncate(first);
            billed.unbilled.push((t.name.clone(), e));
        }
    }
    Ok(billed)
}

/// One tenant's invoices of the period, added to `invoices`.
fn bill_tenant(
    ctx: &Ctx,
    t: &TenantInput,
    invoices: &mut Vec<Invoice>,
) -> Result<(), BillingError> {
    let (cat, credits, pools, months, period, now) = (
        ctx.cat,
        ctx.credits,
        ctx.pools,
        ctx.months,
        ctx.period,
        ctx.now,
    );
    let cal = &cat.cal;
    let mut sorted = Vec::new();
    let spans = timeline(t, months, cal, ctx.record, now, &mut sorted)?;
    let tenant_credits: ComponentCredits = credits
        .range((t.name.clone(), String::new(), Month::new(i16::MIN, 1))..)
        .take_while(|((tn, _, _), _)| *tn == t.name)
        .map(|((_, c, m), p)| ((c.clone(), *m), p.clone()))
        .collect();
    let periods = billing_periods(period, t.invoicing);
    let bounds = periods
        .iter()
        .map(|bp| Ok((bp.start(cal.tz())?, bp.end(cal.tz())?)))
        .collect::<Result<Vec<_>, BillingError>>()?;
    // All of the tenant's periods in one pass over its timeline.
    let priced =
        price_periods(&cat.book, cal, &spans, &bounds, &tenant_credits).map_err(|e| match e {
            BillingError::Input(m) => {
                BillingError::Input(format!("billing Tenant/{}: {m}", t.name))
            }
            other => other,
        })?;
    for ((bp, (from, to)), mut lines) in periods.into_iter().zip(bounds).zip(priced) {
        lines.extend(order_lines(cat, t, &spans, bp)?);
        for (pi, inst) in pools.instalments.get(&t.name).into_iter().flatten() {
            if !bp.contains_date(inst.due) {
                continue;
            }
            let pool = &cat.pools[*pi];
            let due = midnight(inst.due, cal.tz())?;
            let (_, list) = cat.book.at(due)?;
            let what = if inst.settles {
                format!(
                    "settlement of instalment {} of {} after a change of members",
                    inst.index, inst.count
                )
            } else {
                format!("instalment {} of {}", inst.index, inst.count)
            };
            lines.push(Line {
                kind: LineKind::Pool,
                description: format!(
                    "{} (CostPool {}, {}), {what}",
                    pool.description,
                    pool.name,
                    allocation_text(pool),
                )
                .into(),
                quantity: Decimal::ONE,
                unit: Unit::Item,
                unit_price: inst.amount,
                amount: inst.amount,
                from: due,
                to: midnight(inst.until, cal.tz())?,
                vat: Arc::new(list.vat.clone()),
            });
        }
        if lines.is_empty() {
            continue;
        }
        outside_scope_alone(&cat.book, &lines, (from, to)).map_err(|m| {
            BillingError::input(format!("Invoice of Tenant/{} for {bp}: {m}", t.name))
        })?;
        crate::billing::invoice::sort_lines(&mut lines);
        invoices.push(Invoice {
            tenant: t.name.clone(),
            period: bp.to_string(),
            from,
            to,
            state: state_at(to, now),
            number: None,
            currency: "EUR".into(),
            lines,
        });
    }
    Ok(())
}

/// Peppol BIS 3.0 allows VAT category O (not subject to VAT) on an invoice only alone: no other
/// VAT breakdown, no line of another category (BR-O-11 to BR-O-14). An invoice mixes them when
/// a PriceList of category O and one of another take effect within one invoicing period, or a
/// correction at the old category lands on an invoice at O. Refused here, naming the PriceList,
/// rather than written as an invoice the buyer's access point rejects.
fn outside_scope_alone(
    book: &PriceBook,
    lines: &[Line],
    (from, to): (Timestamp, Timestamp),
) -> Result<(), String> {
    let outside = lines.iter().any(|l| l.vat.category == "O");
    let Some(other) = lines.iter().find(|l| l.vat.category != "O") else {
        return Ok(());
    };
    if !outside {
        return Ok(());
    }
    let o_lists: Vec<String> = book
        .lists
        .iter()
        .filter(|l| l.vat.category == "O")
        .filter(|l| l.from < to && l.until.is_none_or(|u| u > from))
        .map(|l| format!("PriceList/{}", l.name))
        .collect();
    let named = if o_lists.is_empty() {
        "a line at VAT category O".to_string()
    } else {
        format!("{}: spec.vat.category O", o_lists.join(", "))
    };
    Err(format!(
        "{named} (not subject to VAT) shares the invoice with VAT category {} (\"{}\"); Peppol \
         allows category O on an invoice only alone (BR-O-11 to BR-O-14): let a PriceList of \
         category O take effect at the start of an invoicing period",
        other.vat.category, other.description
    ))
}

fn allocation_text(pool: &Pool) -> &'static str {
    use regie_crds::commercial::AllocationKey::*;
    match pool.allocation {
        PerInhabitant => "per inhabitant",
        PerAccount => "per account",
        EqualShares => "equal shares",
        FixedShares => "fixed shares",
    }
}

/// Flexible hours of the orders dated in `bp`, at the order's rate or the list's.
fn order_lines(
    cat: &Catalogue,
    t: &TenantInput,
    spans: &[SpanRef],
    bp: Period,
) -> Result<Vec<Line>, BillingError> {
    let cal = &cat.cal;
    let mut out = Vec::new();
    for o in t.orders.iter().filter(|o| bp.contains_date(o.date)) {
        if o.hours < Decimal::ZERO {
            return Err(BillingError::input(format!(
                "{}: spec.hours: {} is negative: hours worked cannot be negative",
                o.id, o.hours
            )));
        }
        let from = midnight(o.date, cal.tz())?;
        let to = midnight(o.date.tomorrow().unwrap_or(o.date), cal.tz())?;
        let (_, list) = cat.book.at(from)?;
        let level = spans
            .iter()
            .find(|s| s.from <= from && s.to.is_none_or(|e| from < e))
            .map_or(t.declared.service_level.as_str(), |s| s.service_level);
        let rate = match o.rate {
            Some(r) => r,
            None => {
                list.rate(RateItem::FlexibleHour, level, None, None)
                    .map_err(|e| {
                        BillingError::input(format!("{}: no rate on the order and {e}", o.id))
                    })?
                    .amount
            }
        };
        // Hours and rate come from YAML without an upper bound: an overflow is refused, not a
        // panic that would stop the billing of every tenant.
        let amount = o
            .hours
            .checked_mul(rate)
            .filter(|a| *a <= max_amount())
            .ok_or_else(|| {
                BillingError::input(format!(
                    "{}: spec.hours × rate: {} × {rate} is more than billing takes (at most {})",
                    o.id,
                    o.hours,
                    max_amount()
                ))
            })?;
        out.push(Line {
            kind: LineKind::FlexibleHour,
            description: format!("Flexible services {}: {} ({})", o.date, o.description, o.id)
                .into(),
            quantity: o.hours,
            unit: Unit::Hour,
            unit_price: rate,
            amount: round_cents(amount),
            from,
            to,
            vat: Arc::new(list.vat.clone()),
        });
    }
    Ok(out)
}
