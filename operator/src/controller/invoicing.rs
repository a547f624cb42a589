//! Invoicing inside `regie run`: one `Invoice` per tenant per billing period (monthly, or
//! quarterly where the Tenant's `spec.billing.invoicing` says so), named `<tenant>-<period>`
//! (e.g. `tholen-2026-03`, `werkplein-2026-q1`) — and a leaving tenant's closing invoice
//! `<tenant>-<period>-c<n>` when its last period is final already — priced by
//! [`crate::billing::engine::bill`] — the same code as `regie bill` — from the cluster's Usage
//! ledgers, Tenants, packages, components, PriceLists, CostPools, ServiceOrders and the monthly
//! SlaReports' credits.
//!
//! - While its period is open an invoice is a `draft`, recomputed whenever a Usage, SlaReport,
//!   PriceList, CostPool or ServiceOrder changes and at least every `invoice_interval`. It is
//!   written only when its spec differs from what the cluster holds, so an unchanged world
//!   causes zero writes.
//! - When the period has closed (Europe/Amsterdam; the injected clock decides) the invoice is
//!   written once as `final`, complete, with a number, and never written again. What changes
//!   afterwards (a corrected Usage, a late SLA credit) is recomputed for the final invoices of
//!   the current and the previous quarter and appears as `correction` lines on the tenant's next
//!   invoice that is not yet final; corrections already carried by a later final invoice count
//!   as billed, so nothing is corrected twice.
//! - A draft that is no longer produced (the tenant's invoicing period changed, nothing is
//!   billed) is deleted, with its resourceVersion as precondition so a final invoice never is.
//! - A tenant is invoiced from the first period in which it has a Usage (metering started), so
//!   installing regie does not issue invoices for months before it ran.
//! - Offboarding ([`offboard`], from the Tenant finalizer, after its usage is closed): the
//!   tenant's invoices up to the deletion instant become final before its namespace goes.
//!   They carry the tenant as cost pools knew it ([`MEMBER_ANNOTATION`]): once its Tenant is
//!   gone it stays a member of the pool periods it was a member of, so its share is not
//!   allocated over the others again.
//! - Without cost pools a pass prices a part of the tenants at a time (`Options::invoice_part`,
//!   64): it first finds every final and the tenants whose drafts differ, writes the finals in
//!   their numbering order, then prices those tenants again a part at a time as it writes
//!   their drafts. What a pass holds no longer grows with the number of tenants (see
//!   `Pricing::plan`); pools, shared out over every tenant, are priced all at once.
//!
//! **Numbers** (`RG-<year>-<seq>`, sequential per year of issue, no gaps) come from a counter,
//! the ConfigMap `regie-invoice-numbers` in regie's own namespace, changed only by `replace`
//! with its resourceVersion as precondition (optimistic concurrency: of two replicas or an old
//! and a new leader, one wins and the other re-reads). Handing out a number records a claim
//! `claim.<invoice>` in the same write; the claim is dropped only after the invoice is written
//! final with that number. An operator that dies between the two finds its claim again and
//! uses the same number, so a number is neither lost nor given twice. Final invoices are
//! created or replaced with a resourceVersion precondition too, so a draft write can never
//! overwrite a final invoice written by another replica. When the counter is missing it is
//! seeded from the highest number among the final invoices in the cluster.
//!
//! `status.deliveredAt` belongs to the delivery of final invoices; this module writes only
//! the spec (and labels) of Invoices.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroI64;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Client, Resource, ResourceExt};
use regie_crds::generated::{InvoiceLine, InvoiceSpec, InvoiceState, Segment, UsageSpec};
use regie_crds::tenancy::InvoicingPeriod;
use regie_crds::{
    CostPool, HostingComponent, Invoice as InvoiceObject, PriceList, ServiceOrder, SlaReport,
    Tenant, Usage, WorkplacePackage,
};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use super::activity::DEFER_AT_MOST;
use super::cache::{Cache, Filler, differ, digest, watch_all};
use super::kept::{Kept, Split, Version};
use super::kept_text::{self, KeptText, Vocabulary};
use super::{Context, slimmed};
use crate::billing::engine::{
    Catalogue, Credit, Credits, Record, TenantInput, TenantObjects, bill_each, catalogue,
    member_of, tenant_input,
};
use crate::billing::invoice::{
    Invoice, Line, LineKind, NUMBER_PREFIX, State, Unit, VatTreatment, corrections,
};
use crate::billing::period::{Month, Period};
use crate::billing::pools::Member;
use crate::billing::proration::Calendar;
use crate::billing::{BillingError, parse_instant};
use crate::input::Source;
use crate::inventory::tenant_namespace;

/// The ConfigMap (in regie's namespace) that holds the last number of each year and the
/// claims not yet written.
pub const COUNTER: &str = "regie-invoice-numbers";
const CLAIM: &str = "claim.";
/// Label on every Invoice: the tenant it bills.
pub const TENANT_LABEL: &str = "regie.dev/tenant";
/// Annotation on a leaving tenant's final invoices: the tenant as cost pools knew it when it
/// left (a [`Member`] as JSON, `leaves` the day it left at the latest). Once its Tenant is gone
/// this is what keeps it a member of the pool periods it was a member of (see
/// [`departed_members`]); the final invoices are the billing state regie keeps of a tenant
/// after it is gone, and are never deleted.
pub const MEMBER_ANNOTATION: &str = "regie.dev/pool-member";

/// The caches invoicing bills from (beside the controller's tenants, packages and components),
/// and what wakes it. Each keeps only what a pass reads (see [`super::cache`]).
pub struct Invoicing {
    pub price_lists: Arc<Cache<PriceList>>,
    pub pools: Arc<Cache<CostPool>>,
    pub orders: Arc<Cache<ServiceOrder>>,
    pub usages: Arc<Cache<Ledger>>,
    pub reports: Arc<Cache<ReportCredits>>,
    pub invoices: Arc<Cache<StoredInvoice>>,
    /// Namespace of the number counter.
    pub namespace: String,
    /// How often an unchanged world is priced again (writing nothing).
    pub interval: Duration,
    /// How many tenants a pass prices together (see [`Pricing::plan`]).
    part: usize,
    wake: tokio::sync::Notify,
    /// One pass at a time per process; holds what was reported, to report each once.
    pass: tokio::sync::Mutex<Reported>,
}

/// What the passes have reported in Warning events, so that a problem that stays is reported
/// once, not at every pass.
#[derive(Debug, Default)]
struct Reported {
    /// Why the last pass could price no tenant at all.
    whole: Option<String>,
    /// Why each tenant the last pass over all of them could not price could not be priced.
    tenants: BTreeMap<String, String>,
}

impl Invoicing {
    pub fn new(namespace: String, interval: Duration, part: usize) -> Arc<Invoicing> {
        Arc::new(Invoicing {
            price_lists: Arc::default(),
            pools: Arc::default(),
            orders: Arc::default(),
            usages: Arc::default(),
            reports: Arc::default(),
            invoices: Arc::default(),
            namespace,
            interval,
            part: part.max(1),
            wake: tokio::sync::Notify::new(),
            pass: tokio::sync::Mutex::new(Reported::default()),
        })
    }

    /// Resolves once every cache holds its first full list; any number of tasks may wait.
    async fn ready(&self) {
        self.price_lists.wait_listed().await;
        self.pools.wait_listed().await;
        self.orders.wait_listed().await;
        self.usages.wait_listed().await;
        self.reports.wait_listed().await;
        self.invoices.wait_listed().await;
    }
}

/// An Invoice as invoicing's cache keeps it. A draft is kept as a digest of its spec and its
/// period: a pass only ever compares a draft with the one it computes, and asks of it no more
/// than its tenant, period and state — the tenant is its name before the period. A draft is
/// most of the invoices a cluster holds (one per tenant, rewritten as the month goes on), and
/// its spec as values is a dozen small allocations. A final invoice is kept whole, because
/// corrections are computed from its lines; so is anything that does not fit the draft's form.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredInvoice {
    /// The cache's key (an Invoice has no namespace), shared with it.
    pub name: Arc<str>,
    /// For the precondition of a rewrite or a delete.
    version: Version,
    /// The labels, annotations, finalizers and owners, only when they are not just the tenant
    /// label regie gives every invoice: a draft written again keeps them.
    extra: Option<Box<ObjectMeta>>,
    held: Held,
}

#[derive(Clone, Debug, PartialEq)]
enum Held {
    /// A draft without a number, named as regie names it (`<tenant>-<period>`, see
    /// [`invoice_name`]), its period written the canonical way.
    Draft {
        period: Period,
        digest: u64,
    },
    Whole(Box<InvoiceSpec>),
}

impl StoredInvoice {
    fn of(o: InvoiceObject, key: &Arc<str>) -> StoredInvoice {
        let InvoiceObject { metadata, spec, .. } = o;
        let own_labels = metadata
            .labels
            .as_ref()
            .is_none_or(|l| l.len() == 1 && l.get(TENANT_LABEL).is_some_and(|t| *t == spec.tenant));
        let foreign = !own_labels
            || metadata.annotations.as_ref().is_some_and(|a| !a.is_empty())
            || metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty())
            || metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| !o.is_empty());
        let extra = foreign.then(|| {
            Box::new(ObjectMeta {
                labels: metadata.labels,
                annotations: metadata.annotations,
                finalizers: metadata.finalizers,
                owner_references: metadata.owner_references,
                ..ObjectMeta::default()
            })
        });
        let draft_period = Period::parse(&spec.period).ok().filter(|p| {
            spec.state == InvoiceState::Draft
                && spec.number.is_none()
                && p.to_string() == spec.period
                && **key == *invoice_name(&spec.tenant, &spec.period)
        });
        let held = match draft_period {
            Some(period) => Held::Draft {
                period,
                digest: digest(&spec),
            },
            None => Held::Whole(Box::new(spec)),
        };
        StoredInvoice {
            name: key.clone(),
            version: Version::of(metadata.uid, metadata.resource_version),
            extra,
            held,
        }
    }

    pub fn state(&self) -> InvoiceState {
        match &self.held {
            Held::Draft { .. } => InvoiceState::Draft,
            Held::Whole(spec) => spec.state,
        }
    }

    pub fn is_final(&self) -> bool {
        self.state() == InvoiceState::Final
    }

    pub fn tenant(&self) -> &str {
        match &self.held {
            Held::Draft { period, .. } => tenant_in(&self.name, &period.to_string()),
            Held::Whole(spec) => &spec.tenant,
        }
    }

    pub fn number(&self) -> Option<&str> {
        match &self.held {
            Held::Draft { .. } => None,
            Held::Whole(spec) => spec.number.as_deref(),
        }
    }

    /// The spec as a pass reads it: whole for a final invoice; for a draft its tenant, period
    /// and state, without the amounts and lines that only its digest keeps.
    pub fn spec(&self) -> InvoiceSpec {
        match &self.held {
            Held::Draft { period, .. } => InvoiceSpec {
                tenant: self.tenant().to_string(),
                period: period.to_string(),
                number: None,
                state: InvoiceState::Draft,
                currency: String::new(),
                lines: Vec::new(),
                subtotal: String::new(),
                vat: String::new(),
                total: String::new(),
            },
            Held::Whole(spec) => InvoiceSpec::clone(spec),
        }
    }

    /// Whether the cluster holds `spec`.
    fn holds(&self, spec: &InvoiceSpec) -> bool {
        match &self.held {
            Held::Draft { digest: held, .. } => digest(spec) == *held,
            Held::Whole(held) => **held == *spec,
        }
    }

    /// The object that replaces it with `spec`, only in the version cached (a precondition).
    fn replaced_by(&self, spec: InvoiceSpec) -> InvoiceObject {
        let mut o = new_object(&self.name, spec);
        if let Some(extra) = &self.extra {
            let extra = (**extra).clone();
            o.metadata.labels = extra.labels;
            o.metadata.annotations = extra.annotations;
            o.metadata.finalizers = extra.finalizers;
            o.metadata.owner_references = extra.owner_references;
        }
        o.metadata.resource_version = self.version.resource_version();
        o
    }
}

/// The tenants that have left and whose Tenant is gone (not in `tenants`), as cost pools knew
/// them when they left: from the [`MEMBER_ANNOTATION`] of their final invoices. An annotation
/// that does not read is an error naming the invoice: pools priced without that member would
/// charge its share to the others.
pub fn departed_members<'a>(
    invoices: impl IntoIterator<Item = &'a StoredInvoice>,
    tenants: &HashSet<&str>,
) -> Result<Vec<Member>, BillingError> {
    let mut departed: BTreeMap<String, Member> = BTreeMap::new();
    for inv in invoices {
        if !inv.is_final() || tenants.contains(inv.tenant()) {
            continue;
        }
        let Some(text) = inv
            .extra
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(MEMBER_ANNOTATION))
        else {
            continue;
        };
        let member: Member = serde_json::from_str(text).map_err(|e| {
            BillingError::input(format!(
                "Invoice/{}: metadata.annotations[{MEMBER_ANNOTATION}]: not a pool member: {e}",
                inv.name
            ))
        })?;
        if member.tenant != inv.tenant() {
            return Err(BillingError::input(format!(
                "Invoice/{}: metadata.annotations[{MEMBER_ANNOTATION}]: names tenant {:?}, the \
                 invoice bills {:?}",
                inv.name,
                member.tenant,
                inv.tenant()
            )));
        }
        // The same on each of its final invoices written by one offboarding pass.
        match departed.entry(member.tenant.clone()) {
            Entry::Vacant(v) => {
                v.insert(member);
            }
            Entry::Occupied(mut o) => {
                // A member from its first joining to its last leaving (a gap between two stays
                // counts: it is minutes when a Tenant deleted by mistake is applied again).
                let m = o.get_mut();
                m.joined = m.joined.min(member.joined);
                m.leaves = match (m.leaves, member.leaves) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
    }
    Ok(departed.into_values().collect())
}

/// Keeps one cache filled; when what it keeps changes (`same` tells), and at the end of a list,
/// it wakes the invoicing loop if `wakes`.
async fn watch<K, V>(
    client: Client,
    cache: Arc<Cache<V>>,
    inv: Arc<Invoicing>,
    slim: fn(K, &Arc<str>) -> V,
    same: fn(&V, &V) -> bool,
    wakes: bool,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    let mut events = std::pin::pin!(watch_all::<K>(client));
    let mut filler = Filler::new(cache, same);
    while let Some(ev) = events.next().await {
        if filler.handle(ev, slim) && wakes {
            inv.wake.notify_one();
        }
    }
}

/// A Usage as invoicing's cache keeps it: what billing reads, the name, spec and ledger, without
/// the object's metadata (a k8s-openapi `ObjectMeta` is 360 bytes before any of its strings).
/// The ledger is kept as its JSON text packed with its schema's words (`kept_text`), one
/// allocation of about 100 bytes for a tenant's month (300 as plain text):
/// as values its segments take about four times that (each segment's accounts are a B-tree of
/// their own, each name a string), and invoicing reads them once per pass, not per event.
/// Its spec, tenant and month, is kept as the month alone when the name says the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Ledger {
    /// The cache's key (a Usage has no namespace), shared with it.
    name: Arc<str>,
    spec: LedgerSpec,
    status: Option<KeptText>,
}

/// The words a ledger's text is packed with: those of the Usage status's schema.
fn ledger_words() -> &'static Vocabulary {
    kept_text::USAGE_STATUS.vocabulary()
}

#[derive(Clone, Debug, PartialEq)]
enum LedgerSpec {
    /// A Usage named as metering names it, `<tenant>-<YYYY-MM>`, and saying the same in its
    /// spec: the tenant is the name before the month.
    Named(Month),
    Whole(Box<UsageSpec>),
}

impl Ledger {
    /// `u` as the Usage cache keeps it, under its cache key `key`.
    pub fn of(u: Usage, key: &Arc<str>) -> Ledger {
        let name = key.clone();
        let status = u.status.and_then(|s| {
            let words = ledger_words();
            let text = serde_json::to_string(&s)
                // Not seen: the status was just read from JSON. Priced as a ledger still opening.
                .inspect_err(|e| tracing::warn!(usage = %name, error = %e, "ledger not kept"))
                .ok()?;
            Some(KeptText::new(text, words))
        });
        let month = regie_crds::validate::parse_month(&u.spec.period)
            .ok()
            .map(|(year, month)| Month::new(year, month))
            .filter(|m| {
                m.to_string() == u.spec.period
                    && *name == *super::metering::usage_name(&u.spec.tenant, *m)
            });
        let spec = match month {
            Some(month) => LedgerSpec::Named(month),
            None => LedgerSpec::Whole(Box::new(u.spec)),
        };
        Ledger { name, spec, status }
    }

    fn tenant(&self) -> &str {
        match &self.spec {
            LedgerSpec::Named(month) => tenant_in(&self.name, &month.to_string()),
            LedgerSpec::Whole(spec) => &spec.tenant,
        }
    }

    fn usage_spec(&self) -> UsageSpec {
        match &self.spec {
            LedgerSpec::Named(month) => UsageSpec {
                tenant: self.tenant().to_string(),
                period: month.to_string(),
            },
            LedgerSpec::Whole(spec) => UsageSpec::clone(spec),
        }
    }

    fn to_usage(&self) -> Usage {
        let mut u = Usage::new(&self.name, self.usage_spec());
        u.status = self.status.as_ref().and_then(|kept| {
            match serde_json::from_str(&kept.text(ledger_words())) {
                Ok(status) => Some(status),
                Err(e) => {
                    tracing::warn!(usage = %self.name, error = %e, "kept ledger not read");
                    None
                }
            }
        });
        u
    }
}

/// An SlaReport as invoicing's cache keeps it: the credits it grants (see [`credits_of`]), none
/// of the figures and incidents behind them, so that only a change of credits wakes invoicing
/// (see [`ReportCredits::same_credits`]). A report that grants none — most months' reports, and
/// every week's or day's, which billing does not read — keeps nothing else but, while it is not
/// final, the end of its period: the prober closes a report that nothing will write again
/// (see `probing::close_left_reports`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReportCredits {
    granted: Option<Box<Granted>>,
    /// The end of the period, in seconds since the epoch, while the report is not final.
    open_until: Option<NonZeroI64>,
}

#[derive(Clone, Debug, PartialEq)]
struct Granted {
    tenant: String,
    month: Month,
    /// Component and credit, for the components (or the parts of the month under one level)
    /// that earned a credit.
    credits: Vec<(String, Credit)>,
}

impl ReportCredits {
    pub fn of(r: SlaReport) -> ReportCredits {
        let open_until = if r.status.as_ref().is_some_and(super::probing::is_final) {
            None
        } else {
            // A report whose end does not read is not regie's to close.
            r.spec
                .to
                .parse::<Timestamp>()
                .ok()
                .and_then(|t| NonZeroI64::new(t.as_second()))
        };
        ReportCredits {
            granted: Self::granted(r),
            open_until,
        }
    }

    fn granted(r: SlaReport) -> Option<Box<Granted>> {
        let Ok((year, month)) = regie_crds::validate::parse_month(&r.spec.period) else {
            return None;
        };
        let name = r.metadata.name.as_deref().unwrap_or_default();
        let credits: Vec<(String, Credit)> = r
            .status
            .iter()
            .flat_map(|s| &s.components)
            .filter_map(|c| match Credit::of_entry(c) {
                Ok(credit) => credit.map(|credit| (c.component.clone(), credit)),
                Err(e) => {
                    // Only a hand-edited report gets here; its credit waits until it is mended.
                    tracing::warn!(report = %name, error = %e, "service credit not read");
                    None
                }
            })
            .collect();
        (!credits.is_empty()).then(|| {
            Box::new(Granted {
                tenant: r.spec.tenant,
                month: Month::new(year, month),
                credits,
            })
        })
    }

    /// Whether invoicing reads the same in both: a report closing changes no credit.
    pub fn same_credits(a: &ReportCredits, b: &ReportCredits) -> bool {
        a.granted == b.granted
    }

    /// Whether the report is not final (and the end of its period reads).
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// The end of the report's period when it is not final and the period ended at or before
    /// `before`.
    pub fn ended_open(&self, before: Timestamp) -> Option<Timestamp> {
        let end = Timestamp::from_second(self.open_until?.get()).ok()?;
        (end <= before).then_some(end)
    }
}

/// The tenant in the name of a Usage or Invoice kept in regie's form, `<tenant>-<period>` (the
/// form is checked when it is kept).
fn tenant_in<'a>(name: &'a str, period: &str) -> &'a str {
    name.get(..name.len().saturating_sub(period.len() + 1))
        .unwrap_or(name)
}

/// Keeps a price list, pool or order whole (slimmed of managed fields): there are few of them.
fn whole<K: Resource>(o: K, _key: &Arc<str>) -> K {
    slimmed(o)
}

/// Starts the caches' watches and the invoicing loop.
pub fn spawn(ctx: Arc<Context>, tasks: &mut tokio::task::JoinSet<()>) {
    let inv = ctx.invoicing.clone();
    let c = ctx.client.clone();
    let (lists, pools, orders) = (
        inv.price_lists.clone(),
        inv.pools.clone(),
        inv.orders.clone(),
    );
    tasks.spawn(watch(c.clone(), lists, inv.clone(), whole, differ, true));
    tasks.spawn(watch(c.clone(), pools, inv.clone(), whole, differ, true));
    tasks.spawn(watch(c.clone(), orders, inv.clone(), whole, differ, true));
    let (usages, reports) = (inv.usages.clone(), inv.reports.clone());
    tasks.spawn(watch(
        c.clone(),
        usages,
        inv.clone(),
        Ledger::of,
        Ledger::eq,
        true,
    ));
    tasks.spawn(watch(
        c.clone(),
        reports,
        inv.clone(),
        |r, _| ReportCredits::of(r),
        ReportCredits::same_credits,
        true,
    ));
    // Its own output: nothing to price again.
    let invoices = inv.invoices.clone();
    tasks.spawn(watch(
        c,
        invoices,
        inv,
        StoredInvoice::of,
        StoredInvoice::eq,
        false,
    ));
    tasks.spawn(run(ctx));
}

/// The loop: a pass after every change (gathered for a moment) and every `interval`.
async fn run(ctx: Arc<Context>) {
    let inv = ctx.invoicing.clone();
    inv.ready().await;
    ctx.tenants.wait_listed().await;
    ctx.packages.wait_listed().await;
    ctx.components.wait_listed().await;
    let mut backoff = Duration::ZERO;
    loop {
        // Drafts can wait for a pause in the reconciles (see `activity`). Waited for here, not
        // inside the pass: an offboarding reconcile takes the pass's lock.
        ctx.activity
            .quiet_or(tokio::time::Instant::now() + DEFER_AT_MOST)
            .await;
        let started = std::time::Instant::now();
        let result = pass(&ctx, Scope::All).await;
        let took = started.elapsed();
        if let Err(e) = result {
            // Bad input stays bad until someone fixes it: retry ever more slowly (5 s doubling
            // up to the interval), not on every change of a busy cluster.
            backoff = (backoff * 2).max(FAILED_PASS_BACKOFF).min(inv.interval);
            tracing::warn!(error = %e, retry_in = ?backoff, "invoicing pass failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::ZERO;
        // A pass prices every tenant: gather changes for at least ten times what one costs, so
        // that pricing takes at most about a tenth of a core however fast the cluster changes.
        let gather = Duration::from_millis(500).max(took * 10);
        tokio::select! {
            _ = inv.wake.notified() => tokio::time::sleep(gather).await,
            _ = tokio::time::sleep(inv.interval) => {},
        }
    }
}

/// The first wait after a failed pass; it doubles with every further failure.
const FAILED_PASS_BACKOFF: Duration = Duration::from_secs(5);

/// Offboarding: makes the tenant's invoices up to the instant it left final (its usage must be
/// closed first). `Ok(false)` when they cannot be priced: a Warning event names why, and the
/// caller keeps the namespace until they can.
///
/// The finalizer calls this on every pass until the namespace is gone, which may be after a
/// month end: the tenant left at its deletion timestamp, not at the pass's `now`, so a pass
/// after the month end must not make a final invoice of the new month (nor bill the pool
/// instalment due at its start).
pub async fn offboard(ctx: &Context, tenant: &Tenant) -> Result<bool, kube::Error> {
    ctx.invoicing.ready().await;
    let now = ctx.now();
    let left = tenant
        .meta()
        .deletion_timestamp
        .as_ref()
        .map_or(now, |t| t.0.min(now));
    match pass(ctx, Scope::Leaving(tenant.name_any(), left)).await {
        Ok(()) => Ok(true),
        Err(PassError::Kube(e)) => Err(e),
        Err(PassError::Billing(_)) => Ok(false),
    }
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Billing(#[from] BillingError),
}

/// Which invoices a pass writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant's, except tenants being deleted (their finalizer does theirs).
    All,
    /// Only this tenant's, which left at the instant given (its Tenant's deletion timestamp):
    /// its period of that instant becomes final too, and nothing after it is billed. The
    /// instant is taken as at most the pass's `now` (a clock behind the API server's, as in
    /// tests, bills up to `now`).
    Leaving(String, Timestamp),
}

fn cluster_source() -> Source {
    Source {
        file: PathBuf::from("cluster"),
        document: 0,
    }
}

/// What a pass prices from: the caches' entries when it began, shared with the caches, not
/// copied. Objects are rebuilt from them one tenant at a time while the pass runs, so a pass
/// over thousands of tenants holds one tenant's objects and every tenant's billing input, not
/// every object whole (heaptrack saw about 6 KiB per tenant for the whole objects).
struct Snapshot {
    tenants: Vec<Arc<Kept<Tenant>>>,
    packages: Vec<Arc<Kept<WorkplacePackage>>>,
    components: Vec<Arc<Kept<HostingComponent>>>,
    orders: Vec<Arc<ServiceOrder>>,
    ledgers: Vec<Arc<Ledger>>,
    /// A leaving tenant's ledgers read from the API server; they come after the cached ones and
    /// replace those named in `replaced`.
    fetched: Vec<Usage>,
    replaced: BTreeSet<String>,
    price_lists: Vec<Arc<PriceList>>,
    pools: Vec<Arc<CostPool>>,
}

impl Snapshot {
    fn ledgers(&self) -> impl Iterator<Item = &Ledger> {
        self.ledgers
            .iter()
            .map(|l| &**l)
            .filter(|l| !self.replaced.contains(&*l.name))
    }

    /// Tenants whose ledger is being opened. Metering opens a ledger in two writes, the Usage
    /// and then its segments: priced in between, the tenant's month would look empty and its
    /// draft be written twice. Only a ledger of the `current` month is being opened: an older
    /// one whose segments never came (regie stopped between the two writes, and ran again only
    /// in a later month) is no record of its month, and holds nothing back.
    fn opening(&self, current: Month) -> BTreeSet<String> {
        let recent = |u: &UsageSpec| {
            regie_crds::validate::parse_month(&u.period)
                .is_ok_and(|(y, m)| Month::new(y, m) >= current)
        };
        self.ledgers()
            .filter(|l| l.status.is_none() && recent(&l.usage_spec()))
            .map(|l| l.tenant().to_string())
            .chain(
                self.fetched
                    .iter()
                    .filter(|u| u.status.is_none() && recent(&u.spec))
                    .map(|u| u.spec.tenant.clone()),
            )
            .collect()
    }

    fn catalogue(&self, cal: Calendar) -> Result<Catalogue, BillingError> {
        let lists: Vec<PriceList> = self.price_lists.iter().map(|p| (**p).clone()).collect();
        catalogue(&lists, self.pools.iter().map(|p| &**p), cal)
    }

    /// Where each namespace's packages, components and orders and each tenant's ledgers lie in
    /// the snapshot: found once per pass, read by each of its parts.
    fn groups(&self) -> Groups {
        fn positions<'a>(
            keys: impl Iterator<Item = Option<&'a str>>,
        ) -> HashMap<String, Vec<usize>> {
            let mut at: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, key) in keys.enumerate() {
                if let Some(key) = key {
                    at.entry(key.to_string()).or_default().push(i);
                }
            }
            at
        }
        Groups {
            packages: positions(self.packages.iter().map(|p| p.namespace())),
            components: positions(self.components.iter().map(|c| c.namespace())),
            orders: positions(self.orders.iter().map(|o| o.metadata.namespace.as_deref())),
            ledgers: positions(
                self.ledgers
                    .iter()
                    .map(|l| (!self.replaced.contains(&*l.name)).then(|| l.tenant())),
            ),
        }
    }

    /// The billing input of `tenants` (some of the snapshot's, in name order), as `regie bill`
    /// reads it from files (the same [`tenant_input`]), in name order; `groups` are the
    /// snapshot's.
    fn inputs_of(
        &self,
        groups: &Groups,
        tenants: &[Arc<Kept<Tenant>>],
    ) -> Result<Vec<TenantInput>, BillingError> {
        // An object that does not read back (not seen) stops the pass: pricing without it
        // would bill the tenant as if it were gone.
        fn rebuilt_one<K: Split>(kept: &Kept<K>) -> Result<K, BillingError> {
            kept.object().ok_or_else(|| {
                BillingError::input(format!("the cached {} does not read back", kept.describe()))
            })
        }
        fn rebuilt<K: Split>(all: &[Arc<Kept<K>>], at: &[usize]) -> Result<Vec<K>, BillingError> {
            at.iter().map(|i| rebuilt_one(&all[*i])).collect()
        }
        fn of<'a>(groups: &'a HashMap<String, Vec<usize>>, key: &str) -> &'a [usize] {
            groups.get(key).map_or(&[], Vec::as_slice)
        }
        let source = cluster_source();
        let mut inputs = Vec::with_capacity(tenants.len());
        for kept in tenants {
            let tenant = &rebuilt_one(kept)?;
            let ns = tenant_namespace(tenant);
            let name = tenant.name_any();
            let tenant_packages: Vec<WorkplacePackage> =
                rebuilt(&self.packages, of(&groups.packages, &ns))?;
            let tenant_components: Vec<HostingComponent> =
                rebuilt(&self.components, of(&groups.components, &ns))?;
            let cached_usages: Vec<Usage> = of(&groups.ledgers, &name)
                .iter()
                .map(|i| self.ledgers[*i].to_usage())
                .collect();
            let usages = cached_usages
                .iter()
                .chain(self.fetched.iter().filter(|u| u.spec.tenant == name))
                .map(|u| (&source, u))
                .collect();
            inputs.push(tenant_input(TenantObjects {
                tenant,
                source: &source,
                packages: tenant_packages.iter().collect(),
                components: tenant_components.iter().collect(),
                orders: of(&groups.orders, &ns)
                    .iter()
                    .map(|i| (&source, &*self.orders[*i]))
                    .collect(),
                usages,
            })?);
        }
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(inputs)
    }
}

/// Positions in a [`Snapshot`]'s lists, by namespace (packages, components, orders) or by
/// tenant (ledgers, those not replaced by `fetched`).
struct Groups {
    packages: HashMap<String, Vec<usize>>,
    components: HashMap<String, Vec<usize>>,
    orders: HashMap<String, Vec<usize>>,
    ledgers: HashMap<String, Vec<usize>>,
}

/// Service credits of the monthly SlaReports, as `regie bill` reads them.
pub fn credits_of<'a>(reports: impl IntoIterator<Item = &'a ReportCredits>) -> Credits {
    let mut credits = Credits::new();
    for granted in reports.into_iter().filter_map(|r| r.granted.as_deref()) {
        for (component, credit) in &granted.credits {
            credits
                .entry((granted.tenant.clone(), component.clone(), granted.month))
                .or_default()
                .push(credit.clone());
        }
    }
    credits
}

/// The Invoice's name: `<tenant>-<period>`, lower case (`2026-Q1` → `2026-q1`).
pub fn invoice_name(tenant: &str, period: &str) -> String {
    format!("{tenant}-{}", period.to_ascii_lowercase())
}

/// What a pass wants written.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// The invoice of an open period, as it stands.
    Draft { name: String, invoice: Invoice },
    /// A closed period's (or a leaving tenant's) invoice, complete, still without a number.
    /// A leaving tenant's carries `member`, written as [`MEMBER_ANNOTATION`].
    Final {
        name: String,
        invoice: Invoice,
        member: Option<Box<Member>>,
    },
    /// A draft the tenant no longer gets (its invoicing period changed, nothing is billed).
    Obsolete { name: String },
    /// A tenant whose input of its own does not allow a correct bill (`message` says why): its
    /// invoices stay as they are, the other tenants' are written.
    Unpriced { tenant: String, message: String },
}

fn dec(s: &str, what: &str) -> Result<Decimal, BillingError> {
    Decimal::from_str_exact(s)
        .map_err(|e| BillingError::Input(format!("{what}: {s:?} is not a decimal: {e}")))
}

/// A stored invoice's line, back in billing's terms. Lines written before they carried their
/// VAT get the default treatment (S, 21%), which was the only one regie priced with then.
fn line_of(l: &InvoiceLine, what: &str) -> Result<Line, BillingError> {
    let default = VatTreatment::default();
    let vat = VatTreatment {
        category: l.vat_category.clone().unwrap_or(default.category),
        percent: match &l.vat_percent {
            Some(p) => dec(p, &format!("{what}.vatPercent"))?,
            None => default.percent,
        },
        exemption_reason: l.vat_exemption_reason.clone(),
    };
    Ok(Line {
        kind: LineKind::parse(&l.kind)
            .ok_or_else(|| BillingError::Input(format!("{what}: unknown kind {:?}", l.kind)))?,
        description: l.description.as_str().into(),
        quantity: dec(&l.quantity, what)?,
        unit: Unit::parse(&l.unit).unwrap_or(Unit::Item),
        unit_price: dec(&l.unit_price, what)?,
        amount: dec(&l.amount, what)?,
        from: parse_instant(&l.from, what)?,
        to: parse_instant(&l.to, what)?,
        vat: Arc::new(vat),
    })
}

fn correction_prefix(number: &str, period: &str) -> String {
    format!("Correction of invoice {number} ({period}): ")
}

/// What has been billed for the period of final invoice `name`: its lines, plus the correction
/// lines that later final invoices carried for it, folded into the lines they correct where
/// their VAT is the same, else beside them.
/// `recomputed` supplies the kind of a line the final invoice did not have. A correction whose
/// line exists in neither (an SLA credit whose percentage changed again, a late ServiceOrder
/// deleted since) is still billed: it is kept as a line of its own, under its own description,
/// period and VAT, so that [`corrections`] finds it gone from the recomputation and reverses
/// it. Dropped, it would stay billed for good and its replacement be billed on top.
fn billed_so_far(
    name: &str,
    spec: &InvoiceSpec,
    others: &[(&String, &InvoiceSpec)],
    recomputed: &Invoice,
    cal: &Calendar,
) -> Result<Invoice, BillingError> {
    let period = Period::parse(&spec.period)?;
    // Its own correction lines settle other invoices; they are not part of its period — except
    // those taking off what finals inside its period billed (after a change of invoicing
    // period), which its recomputation is settled with again (see [`invoiced_on`]).
    let mut lines = spec
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.kind != LineKind::Correction.as_str() || l.description.starts_with(INVOICED_ON)
        })
        .map(|(i, l)| line_of(l, &format!("Invoice/{name}: spec.lines[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(number) = &spec.number {
        let prefix = correction_prefix(number, &spec.period);
        for (other, o) in others {
            if o.state != InvoiceState::Final {
                continue;
            }
            for (i, l) in o.lines.iter().enumerate() {
                let Some(rest) = l.description.strip_prefix(&prefix) else {
                    continue;
                };
                let Some((description, _)) = rest.rsplit_once(": was ") else {
                    continue;
                };
                let c = line_of(l, &format!("Invoice/{other}: spec.lines[{i}]"))?;
                let same =
                    |x: &Line| &*x.description == description && x.from == c.from && x.to == c.to;
                // A correction at another VAT than the line (its treatment changed: credited at
                // the old, billed anew at the new) stays a line of its own at its own VAT;
                // folded in, it would take the line's old VAT and be made again next time.
                if let Some(target) = lines.iter_mut().find(|x| same(x) && x.vat.same_tax(&c.vat)) {
                    target.amount += c.amount;
                } else {
                    // Of a line no longer billed the kind is not known: it is kept as a
                    // correction. Every correction of that line in this call takes the same
                    // kind (the first one found here, or the recomputation's), so they fold
                    // together above and are reversed once, as one key.
                    let kind = lines
                        .iter()
                        .chain(&recomputed.lines)
                        .find(|x| same(x))
                        .map_or(LineKind::Correction, |x| x.kind);
                    lines.push(Line {
                        kind,
                        description: description.into(),
                        ..c
                    });
                }
            }
        }
    }
    Ok(Invoice {
        tenant: spec.tenant.clone(),
        period: spec.period.clone(),
        from: period.start(cal.tz())?,
        to: period.end(cal.tz())?,
        state: State::Final,
        number: spec.number.clone(),
        currency: spec.currency.clone(),
        lines,
    })
}

/// What a change of invoicing period (monthly to quarterly or back) leaves to settle: the
/// tenant's final invoices of another period than the recomputed ones, each with its recomputation
/// under the period it was invoiced by, so that nothing is billed twice and a late change to it is
/// still corrected. Only finals that lie inside a recomputed invoice or contain one: of older
/// ones nothing is recomputed.
struct OtherPeriods {
    finals: Vec<OtherFinal>,
}

struct OtherFinal {
    from: Timestamp,
    to: Timestamp,
    /// What it billed (its lines, with the corrections made to it since).
    billed: Invoice,
    /// The same period priced again now, under the invoicing it was billed by.
    recomputed: Invoice,
}

impl OtherPeriods {
    #[allow(clippy::too_many_arguments)]
    fn of(
        tenant: &str,
        invoices: &[Invoice],
        mine: &[(&String, &InvoiceSpec)],
        cat: &Catalogue,
        tenants: &[TenantInput],
        credits: &Credits,
        now: Timestamp,
        record: Record,
    ) -> Result<OtherPeriods, BillingError> {
        let cal = &cat.cal;
        let recomputed: BTreeSet<&str> = invoices.iter().map(|i| i.period.as_str()).collect();
        let mut finals = Vec::new();
        for (name, spec) in mine {
            // A closing invoice is settled through its period's own: its lines are corrections
            // of that one (see `billed_so_far`).
            if spec.state != InvoiceState::Final
                || recomputed.contains(spec.period.as_str())
                || !is_periods_own(name, spec)
            {
                continue;
            }
            let period = Period::parse(&spec.period)?;
            let (from, to) = (period.start(cal.tz())?, period.end(cal.tz())?);
            let related = invoices
                .iter()
                .any(|i| (from >= i.from && to <= i.to) || (i.from >= from && i.to <= to));
            if !related {
                continue;
            }
            let invoicing = match period {
                Period::Quarter { .. } => InvoicingPeriod::Quarterly,
                _ => InvoicingPeriod::Monthly,
            };
            // Pools are shared out over every tenant: price them all, this one as it was.
            let as_it_was: Vec<TenantInput> = tenants
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    if t.name == tenant {
                        t.invoicing = invoicing;
                    }
                    t
                })
                .collect();
            let billed = bill_each(cat, &as_it_was, credits, period, now, record)?;
            if let Some((_, e)) = billed.unbilled.into_iter().find(|(t, _)| t == tenant) {
                return Err(e);
            }
            let again = billed
                .invoices
                .into_iter()
                .find(|i| i.tenant == tenant && i.period == spec.period);
            let mut recomputed = again.unwrap_or_else(|| Invoice {
                tenant: tenant.to_string(),
                period: spec.period.clone(),
                from,
                to,
                state: State::Final,
                number: None,
                currency: spec.currency.clone(),
                lines: Vec::new(),
            });
            // What it took off for the finals inside it, as they bill now (they are among the
            // recomputed invoices: a month of a quarter invoiced before the switch back).
            for inner in invoices {
                if inner.from >= from && inner.to <= to && inner.period != spec.period {
                    let Some(number) = mine
                        .iter()
                        .find(|(n, o)| {
                            o.state == InvoiceState::Final
                                && o.period == inner.period
                                && is_periods_own(n, o)
                        })
                        .and_then(|(_, o)| o.number.as_deref())
                    else {
                        continue;
                    };
                    recomputed
                        .lines
                        .extend(invoiced_on(number, &inner.period, inner));
                }
            }
            let billed = billed_so_far(name, spec, mine, &recomputed, cal)?;
            finals.push(OtherFinal {
                from,
                to,
                billed,
                recomputed,
            });
        }
        Ok(OtherPeriods { finals })
    }

    /// The corrections of every such final (a late change since it was billed), once each.
    fn corrections(&self) -> Vec<Line> {
        self.finals
            .iter()
            .flat_map(|f| corrections(&f.billed, &f.recomputed))
            .collect()
    }

    /// Settles `inv` against them: false when it is billed already in whole (it lies inside a
    /// final, or finals cover it); otherwise what finals inside it billed is taken off it.
    fn settle(&self, inv: &mut Invoice) -> bool {
        if self
            .finals
            .iter()
            .any(|f| inv.from >= f.from && inv.to <= f.to)
        {
            return false;
        }
        let inside: Vec<&OtherFinal> = self
            .finals
            .iter()
            .filter(|f| f.from >= inv.from && f.to <= inv.to)
            .collect();
        let mut at = inv.from;
        let mut spans: Vec<(Timestamp, Timestamp)> =
            inside.iter().map(|f| (f.from, f.to)).collect();
        spans.sort();
        for (from, to) in spans {
            if from <= at && to > at {
                at = to;
            }
        }
        if !inside.is_empty() && at >= inv.to {
            return false;
        }
        for f in inside {
            let reference = f.billed.number.as_deref().unwrap_or_default();
            inv.lines
                .extend(invoiced_on(reference, &f.billed.period, &f.recomputed));
        }
        true
    }
}

/// How the lines that take off what a final inside an invoice's period billed begin.
const INVOICED_ON: &str = "Invoiced on ";

/// The lines that take off of an invoice what final `reference` of `period`, inside it, bills
/// as `recomputed` now: one per line, its amount negated.
fn invoiced_on<'a>(
    reference: &'a str,
    period: &'a str,
    recomputed: &'a Invoice,
) -> impl Iterator<Item = Line> + 'a {
    recomputed.lines.iter().map(move |l| Line {
        kind: LineKind::Correction,
        description: format!("{INVOICED_ON}{reference} ({period}): {}", l.description).into(),
        quantity: Decimal::ONE,
        unit: Unit::Item,
        unit_price: -l.amount,
        amount: -l.amount,
        from: l.from,
        to: l.to,
        vat: l.vat.clone(),
    })
}

/// The pure heart of a pass: prices the tenants' recent billing periods at `now` and says
/// which invoices should be drafts, which should become final, with any corrections of final
/// invoices moved onto the next open one. `existing` holds the cluster's Invoices by name;
/// final ones are never proposed again.
///
/// `tenants` may be some of them (a part, see `Pricing::plan`); `metered_elsewhere` says
/// whether a tenant outside them has a Usage: only then can a draft of one of them be obsolete
/// while none of them is metered (false when they are all).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    cat: &Catalogue,
    tenants: &[TenantInput],
    credits: &Credits,
    existing: &BTreeMap<String, InvoiceSpec>,
    deleting: &BTreeSet<String>,
    scope: &Scope,
    now: Timestamp,
    metered_elsewhere: bool,
) -> Result<Vec<Intent>, BillingError> {
    let cal = &cat.cal;
    // A leaving tenant is priced as at the instant it left: its periods are those up to then
    // (a period that starts after it is not billed, and so neither is a pool instalment due at
    // its start), its files fill months only up to then.
    let now = match scope {
        Scope::Leaving(_, left) => now.min(*left),
        Scope::All => now,
    };
    // ... and as a member of cost pools until the day it left: its last instalments settle its
    // share for the days it was a member, and the others' shares take the rest, as they will
    // once it is a departed member (see `Catalogue::departed`).
    let adjusted: Vec<TenantInput>;
    let tenants = match scope {
        Scope::Leaving(name, _) => {
            let day = now.to_zoned(cal.tz().clone()).date();
            adjusted = tenants
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    if t.name == *name {
                        t.leaves = Some(t.leaves.map_or(day, |l| l.min(day)));
                    }
                    t
                })
                .collect();
            &adjusted[..]
        }
        Scope::All => tenants,
    };
    let current = cal.month_of(now);
    let mut quarters: BTreeSet<Period> = BTreeSet::new();
    quarters.insert(Period::quarter_of(current));
    quarters.insert(Period::quarter_of(
        Period::quarter_of(current).first_month().prev(),
    ));
    for spec in existing.values() {
        if spec.state == InvoiceState::Draft
            && let Ok(p) = Period::parse(&spec.period)
        {
            // The draft's own quarter and the one before it: the corrections it carries were
            // found against the final invoices of those, and must still be there when it
            // becomes final in the next quarter, or they are lost with the window.
            let quarter = Period::quarter_of(p.first_month());
            quarters.insert(Period::quarter_of(quarter.first_month().prev()));
            quarters.insert(quarter);
        }
    }
    // Metering started in the first month with a Usage: nothing is invoiced before it.
    let metered_from: BTreeMap<&str, Month> = tenants
        .iter()
        .filter_map(|t| t.usage.keys().next().map(|m| (t.name.as_str(), *m)))
        .collect();
    match metered_from.values().min() {
        Some(earliest) => {
            let earliest = Period::quarter_of(*earliest);
            quarters.retain(|q| *q >= earliest);
        }
        None if metered_elsewhere => quarters.clear(),
        None => return Ok(Vec::new()),
    }
    // The ledgers are the record: months without one are billed from the files only after
    // metering started and, for a tenant leaving, until now.
    let record = Record::Ledgers {
        leaving: match scope {
            Scope::Leaving(t, _) => Some(t.as_str()),
            Scope::All => None,
        },
    };
    let mut computed: BTreeMap<String, Vec<Invoice>> = BTreeMap::new();
    // A tenant that cannot be billed in one quarter is billed in none: a part of its invoices
    // would make the rest look obsolete.
    let mut unpriced: BTreeMap<String, String> = BTreeMap::new();
    for q in quarters {
        let billed = bill_each(cat, tenants, credits, q, now, record)?;
        for (tenant, e) in billed.unbilled {
            unpriced.entry(tenant).or_insert_with(|| e.to_string());
        }
        for inv in billed.invoices {
            let Some(first) = metered_from.get(inv.tenant.as_str()) else {
                continue;
            };
            if inv.to <= first.start(cal.tz())? || inv.from > now {
                continue;
            }
            computed.entry(inv.tenant.clone()).or_default().push(inv);
        }
    }
    let mut existing_by_tenant: BTreeMap<&str, Vec<(&String, &InvoiceSpec)>> = BTreeMap::new();
    for (name, spec) in existing {
        existing_by_tenant
            .entry(spec.tenant.as_str())
            .or_default()
            .push((name, spec));
    }
    let mut intents = Vec::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for (tenant, mut invoices) in computed {
        let leaving = match scope {
            Scope::All if deleting.contains(&tenant) => continue,
            Scope::All => false,
            Scope::Leaving(t, _) if *t != tenant => continue,
            Scope::Leaving(..) => true,
        };
        if unpriced.contains_key(&tenant) {
            continue;
        }
        invoices.sort_by_key(|i| i.from);
        let mine = existing_by_tenant
            .get(tenant.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut wants = Vec::new();
        match tenant_intents(
            &tenant,
            invoices,
            mine,
            leaving,
            &mut wants,
            (cat, tenants, credits, existing, now, record),
        ) {
            Ok(()) => {
                wanted.extend(wants.iter().map(|(name, _)| name.clone()));
                intents.extend(wants.into_iter().filter_map(|(_, intent)| intent));
            }
            Err(e) => {
                unpriced.insert(tenant, e.to_string());
            }
        }
    }
    if let Scope::Leaving(t, _) = scope
        && let Some(message) = unpriced.get(t.as_str())
    {
        // A leaving tenant's final invoice is not skipped: its offboarding waits for it.
        return Err(BillingError::Input(message.clone()));
    }
    // Numbers follow the periods, then the tenants.
    intents.sort_by(|a, b| intent_order(a).cmp(&intent_order(b)));
    let priced: HashSet<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    let in_scope = |tenant: &str| match scope {
        Scope::All => {
            !deleting.contains(tenant) && priced.contains(tenant) && !unpriced.contains_key(tenant)
        }
        Scope::Leaving(t, _) => t == tenant,
    };
    for (name, spec) in existing {
        if spec.state == InvoiceState::Draft && in_scope(&spec.tenant) && !wanted.contains(name) {
            intents.push(Intent::Obsolete { name: name.clone() });
        }
    }
    if *scope == Scope::All {
        for (tenant, message) in unpriced {
            if !deleting.contains(&tenant) {
                intents.push(Intent::Unpriced { tenant, message });
            }
        }
    }
    Ok(intents)
}

/// What [`plan`] reads besides one tenant's own: the catalogue, every tenant (cost pools are
/// shared out over all), credits, the cluster's invoices, now, and what the ledgers record.
type PlanInputs<'a> = (
    &'a Catalogue,
    &'a [TenantInput],
    &'a Credits,
    &'a BTreeMap<String, InvoiceSpec>,
    Timestamp,
    Record<'a>,
);

/// One tenant's part of [`plan`]: its invoices `computed`, settled against the periods it was
/// already billed under, with the corrections of its final invoices moved onto the next open
/// one. Adds to `wants` each invoice name to keep and the intent to write it, if any; on an
/// error nothing of the tenant's is to be written.
fn tenant_intents(
    tenant: &str,
    computed: Vec<Invoice>,
    mine: &[(&String, &InvoiceSpec)],
    leaving: bool,
    wants: &mut Vec<(String, Option<Intent>)>,
    (cat, tenants, credits, existing, now, record): PlanInputs,
) -> Result<(), BillingError> {
    let cal = &cat.cal;
    let others = OtherPeriods::of(tenant, &computed, mine, cat, tenants, credits, now, record)?;
    let mut pending: Vec<Line> = others.corrections();
    // What a closing invoice would take of the last period: only a leaving tenant gets one.
    let last = computed.last().filter(|_| leaving).map(|inv| Invoice {
        tenant: inv.tenant.clone(),
        period: inv.period.clone(),
        from: inv.from,
        to: inv.to,
        state: State::Final,
        number: None,
        currency: inv.currency.clone(),
        lines: Vec::new(),
    });
    let member = || {
        leaving
            .then(|| tenants.iter().find(|t| t.name == tenant))
            .flatten()
            .map(|t| Box::new(member_of(t)))
    };
    for mut inv in computed {
        let name = invoice_name(tenant, &inv.period);
        if let Some(spec) = existing.get(&name)
            && spec.state == InvoiceState::Final
        {
            // Settled as it was when it was written: a late change to a final inside it is
            // corrected on that final's account, not once more on this one's.
            others.settle(&mut inv);
            let billed = billed_so_far(&name, spec, mine, &inv, cal)?;
            pending.extend(corrections(&billed, &inv));
            wants.push((name, None));
            continue;
        }
        if !others.settle(&mut inv) {
            // Billed in whole under another period already: no invoice, and a draft of it goes.
            continue;
        }
        inv.lines.append(&mut pending);
        crate::billing::invoice::sort_lines(&mut inv.lines);
        let intent = if inv.state == State::Final || leaving {
            inv.state = State::Final;
            Intent::Final {
                name: name.clone(),
                invoice: inv,
                member: member(),
            }
        } else {
            Intent::Draft {
                name: name.clone(),
                invoice: inv,
            }
        };
        wants.push((name, Some(intent)));
    }
    // A leaving tenant whose periods are all final already (it left before in this period and
    // came back under the same name) has no open invoice to carry the corrections; they go on
    // a closing invoice of their own, under its last period, or they would be lost with it —
    // when its ledger holds a stay the period's invoices did not bill: each of them was written
    // at a departure (its own, `<tenant>-<period>`, at the first), so the ledger has a stay
    // more than there are of them. Without a new stay a change found while the tenant leaves
    // (the finalizer prices it again until its namespace is gone, and an SLA credit may still
    // move meanwhile) is not billed, as a tenant gone has no next invoice for it.
    if !pending.is_empty()
        && let Some(mut closing) = last
        && new_stay(tenants, tenant, &closing.period, mine, cal)
    {
        let name = closing_invoice_name(&invoice_name(tenant, &closing.period), mine);
        closing.lines = pending;
        crate::billing::invoice::sort_lines(&mut closing.lines);
        wants.push((
            name.clone(),
            Some(Intent::Final {
                name,
                invoice: closing,
                member: member(),
            }),
        ));
    }
    Ok(())
}

/// Whether `tenant`'s ledgers of `period` hold more stays than it has final invoices of that
/// period (see [`ledger_stays`]).
fn new_stay(
    tenants: &[TenantInput],
    tenant: &str,
    period: &str,
    mine: &[(&String, &InvoiceSpec)],
    cal: &Calendar,
) -> bool {
    let Some(t) = tenants.iter().find(|t| t.name == tenant) else {
        return false;
    };
    let Ok(p) = Period::parse(period) else {
        return false;
    };
    let ledgers = p
        .months()
        .into_iter()
        .filter_map(|m| t.usage.get(&m).map(|segments| (m, segments.as_slice())));
    let invoiced = mine
        .iter()
        .filter(|(_, s)| s.state == InvoiceState::Final && s.period == period)
        .count();
    ledger_stays(ledgers, cal) > invoiced
}

/// How many stays the ledgers of consecutive months hold: one, plus one for each return after
/// a departure — a segment that begins where the one before it did not end. A gap from a
/// month's end to a later month's start is no departure: a month without a ledger (regie was
/// down for it) or one left open does not make the tenant leave. A segment that begins after
/// its month's start where the month before ended at its end is a return: a month is opened
/// from its first instant when the tenant stayed, so only a tenant deleted at the month's first
/// instant comes back later in it.
fn ledger_stays<'a>(
    ledgers: impl Iterator<Item = (Month, &'a [Segment])>,
    cal: &Calendar,
) -> usize {
    let mut stays = 0;
    // Where the last segment ended, and whether that was its month's end.
    let mut ended: Option<(Timestamp, bool)> = None;
    for (month, segments) in ledgers {
        // One that does not read counts for nothing here; pricing names it.
        let Ok(bounds) = crate::billing::ledger::bounds(segments, "ledger") else {
            continue;
        };
        let Ok((month_start, month_end)) = cal.month_bounds(month) else {
            continue;
        };
        for (from, to) in bounds {
            let returned = ended.is_some_and(|(at, at_month_end)| {
                at != from && !(at_month_end && from == month_start)
            });
            if stays == 0 || returned {
                stays += 1;
            }
            ended = to.map(|to| (to, to == month_end));
        }
    }
    stays
}

/// The name of a leaving tenant's next closing invoice for the period whose invoice is
/// `base`: `<base>-c1`, `-c2`, … after those it has (a tenant can come back and leave again).
fn closing_invoice_name(base: &str, mine: &[(&String, &InvoiceSpec)]) -> String {
    let taken = mine
        .iter()
        .filter_map(|(name, _)| closing_number(base, name))
        .max()
        .unwrap_or(0);
    format!("{base}-c{}", taken + 1)
}

/// `n` when `name` is closing invoice `<base>-c<n>` (n written without leading zeros).
fn closing_number(base: &str, name: &str) -> Option<u32> {
    let digits = name.strip_prefix(base)?.strip_prefix("-c")?;
    let n = digits.parse::<u32>().ok()?;
    (n > 0 && n.to_string() == digits).then_some(n)
}

/// Whether invoice `name` is its period's own (`<tenant>-<period>`), not a closing invoice.
fn is_periods_own(name: &str, spec: &InvoiceSpec) -> bool {
    name == invoice_name(&spec.tenant, &spec.period)
}

/// The version of invoice `name` in its delivery event's id: 1 for its period's own, n + 1
/// for closing invoice `-c<n>` of the period (one id each; a closing invoice sent under its
/// period's id would be taken for a repeat and never counted).
pub fn event_version(name: &str, spec: &InvoiceSpec) -> u32 {
    closing_number(&invoice_name(&spec.tenant, &spec.period), name)
        .and_then(|n| n.checked_add(1))
        .unwrap_or(1)
}

/// One pass: read the caches, plan, write what differs; counted in
/// `regie_invoicing_passes_total` by how it ended.
async fn pass(ctx: &Context, scope: Scope) -> Result<(), PassError> {
    let result = pass_once(ctx, scope).await;
    if result.is_err() {
        ctx.metrics.invoicing_pass("failed");
    }
    result
}

async fn pass_once(ctx: &Context, scope: Scope) -> Result<(), PassError> {
    let inv = &ctx.invoicing;
    let mut reported = inv.pass.lock().await;
    let now = ctx.now();
    let cal = Calendar::amsterdam()?;
    let tz = cal.tz().clone();
    // The leaving tenant's ledgers as the API server has them now: the ledger was closed a
    // moment ago and the cache may not have seen it yet.
    let mut fetched: Vec<Usage> = Vec::new();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    if let Scope::Leaving(tenant, left) = &scope {
        // Up to the month it left in: a ledger of a later month (opened by a pass after the
        // month end) is not billed, nor carried into one.
        let now = now.min(*left);
        let api: Api<Usage> = Api::all(ctx.client.clone());
        let month = cal.month_of(now);
        let mut last: Option<Usage> = None;
        for m in [month.prev().prev(), month.prev(), month] {
            let name = format!("{tenant}-{m}");
            if let Some(u) = api.get_opt(&name).await? {
                replaced.insert(name);
                fetched.push(u.clone());
                last = Some(u);
            } else if m == month
                && let Some(prev) = &last
                && let Some(u) = carried_over(prev, tenant, month, now, &cal)?
            {
                fetched.push(u);
            }
        }
    }
    let tenants = ctx.tenants.state();
    let snapshot = Snapshot {
        tenants: tenants.clone(),
        packages: ctx.packages.state(),
        components: ctx.components.state(),
        orders: inv.orders.state(),
        ledgers: inv.usages.state(),
        fetched,
        replaced,
        price_lists: inv.price_lists.state(),
        pools: inv.pools.state(),
    };
    let opening = snapshot.opening(cal.month_of(now));
    let deleting: BTreeSet<String> = tenants
        .iter()
        .filter(|t| t.deleting())
        .map(|t| t.name().to_string())
        .collect();
    let reports = inv.reports.state();
    let stored: Arc<BTreeMap<String, Arc<StoredInvoice>>> = Arc::new(
        inv.invoices
            .state()
            .into_iter()
            .map(|i| (i.name.to_string(), i))
            .collect(),
    );
    let existing: BTreeMap<String, InvoiceSpec> =
        stored.iter().map(|(n, i)| (n.clone(), i.spec())).collect();
    let departed = {
        let names: HashSet<&str> = tenants.iter().map(|t| t.name()).collect();
        departed_members(stored.values().map(|i| &**i), &names)
    };
    let planned = {
        let scope = scope.clone();
        let (stored, tz, part) = (Arc::clone(&stored), tz.clone(), inv.part);
        in_background(move || -> Result<(Arc<Pricing>, Planned), BillingError> {
            let mut cat = snapshot.catalogue(cal)?;
            cat.departed = departed?;
            let pricing = Arc::new(Pricing {
                cat,
                groups: snapshot.groups(),
                snapshot,
                credits: credits_of(reports.iter().map(|r| &**r)),
                existing,
                deleting,
                scope,
                now,
                stored,
                tz,
            });
            let planned = pricing.plan(part)?;
            Ok((pricing, planned))
        })
        .await
        .ok_or_else(|| BillingError::Input("invoicing stopped: the pricing thread failed".into()))?
    };
    let (pricing, planned) = match planned {
        Ok(p) => {
            reported.whole = None;
            p
        }
        Err(e) => {
            let message = e.to_string();
            if reported.whole.as_deref() != Some(message.as_str()) {
                tracing::error!(error = %message, "invoices cannot be priced");
                let regarding = tenants.iter().filter(|x| match &scope {
                    Scope::All => true,
                    Scope::Leaving(t, _) => x.name() == t,
                });
                for t in regarding.filter_map(|t| t.object()) {
                    ctx.warn(&t, "InvoicingFailed", "Invoice", &message).await;
                }
                reported.whole = Some(message);
            }
            return Err(e.into());
        }
    };
    let (planned, unpriced) = planned.without_unpriced();
    if scope == Scope::All {
        report_unpriced(ctx, &mut reported.tenants, unpriced).await;
    }
    let mut writer = Writer {
        api: Api::all(ctx.client.clone()),
        known: stored
            .values()
            .filter_map(|i| i.number().map(str::to_string))
            .collect(),
        // A pass over the whole cluster gives way to reconciles between its draft writes (see
        // `activity`): once it has written one, it stops while a reconcile is in progress and
        // the loop runs it again when they pause. Finals (closed periods, first in the order)
        // are not interrupted; a leaving tenant's pass runs inside its own reconcile and never
        // gives way.
        gives_way: matches!(scope, Scope::All),
        written: false,
        opening,
        stored,
        tz,
        now,
    };
    match planned {
        Planned::Whole(intents) => {
            if !writer.write(ctx, intents).await? {
                return Ok(());
            }
        }
        Planned::Parts {
            finals,
            changed,
            obsolete,
        } => {
            if !writer.write(ctx, finals).await? {
                return Ok(());
            }
            // The drafts to write, priced again a part at a time: no more of them held at once.
            for part in changed.chunks(inv.part) {
                if writer.interrupted(ctx) {
                    return Ok(());
                }
                let (pricing, part) = (Arc::clone(&pricing), part.to_vec());
                let drafts = in_background(move || pricing.drafts_of(&part))
                    .await
                    .ok_or_else(|| {
                        BillingError::Input("invoicing stopped: the pricing thread failed".into())
                    })??;
                if !writer.write(ctx, drafts).await? {
                    return Ok(());
                }
            }
            if !writer.write(ctx, obsolete).await? {
                return Ok(());
            }
        }
    }
    ctx.metrics.invoicing_pass("complete");
    Ok(())
}

/// How many tenants a pass prices together. Without cost pools tenants are priced
/// independently, so a pass holds the inputs and invoices of this many at a time, not of every
/// tenant: what a pass allocates stays the same however many tenants there are (with glibc, a
/// pass's transient larger than the free space in the heap grows the heap for good).
pub const TENANTS_PER_PART: usize = 64;

/// What a pass prices with; shared by the threads that price its parts.
struct Pricing {
    snapshot: Snapshot,
    /// The snapshot's groups, found once for all parts.
    groups: Groups,
    cat: Catalogue,
    credits: Credits,
    existing: BTreeMap<String, InvoiceSpec>,
    deleting: BTreeSet<String>,
    scope: Scope,
    now: Timestamp,
    stored: Arc<BTreeMap<String, Arc<StoredInvoice>>>,
    tz: jiff::tz::TimeZone,
}

/// Warns once about each tenant that could not be priced (again when the reason changes), and
/// remembers this pass's set: a tenant priced again is reported anew if it fails later.
async fn report_unpriced(
    ctx: &Context,
    reported: &mut BTreeMap<String, String>,
    unpriced: BTreeMap<String, String>,
) {
    for (tenant, message) in &unpriced {
        if reported.get(tenant) == Some(message) {
            continue;
        }
        tracing::error!(%tenant, error = %message, "a tenant's invoices cannot be priced");
        if let Some(t) = ctx.tenant(tenant) {
            ctx.warn(t.as_ref(), "InvoicingFailed", "Invoice", message)
                .await;
        }
    }
    ctx.metrics
        .unpriced_tenants
        .set(i64::try_from(unpriced.len()).unwrap_or(i64::MAX));
    *reported = unpriced;
}

/// What a pass found to write.
enum Planned {
    /// Every intent, in order (priced in one part).
    Whole(Vec<Intent>),
    /// Priced a part at a time: every final in order, the tenants whose drafts differ from what
    /// is stored (priced again a part at a time when their drafts are written), and the drafts
    /// that go (with the tenants that could not be priced).
    Parts {
        finals: Vec<Intent>,
        changed: Vec<Arc<Kept<Tenant>>>,
        obsolete: Vec<Intent>,
    },
}

impl Planned {
    /// The plan without its [`Intent::Unpriced`], and those, by tenant.
    fn without_unpriced(self) -> (Planned, BTreeMap<String, String>) {
        let mut unpriced = BTreeMap::new();
        let mut keep = |intents: Vec<Intent>| -> Vec<Intent> {
            intents
                .into_iter()
                .filter_map(|i| match i {
                    Intent::Unpriced { tenant, message } => {
                        unpriced.insert(tenant, message);
                        None
                    }
                    other => Some(other),
                })
                .collect()
        };
        let planned = match self {
            Planned::Whole(intents) => Planned::Whole(keep(intents)),
            Planned::Parts {
                finals,
                changed,
                obsolete,
            } => Planned::Parts {
                finals,
                changed,
                obsolete: keep(obsolete),
            },
        };
        (planned, unpriced)
    }
}

impl Pricing {
    /// The pass's plan. With cost pools (shared out over every tenant) or no more tenants than
    /// `part`, in one part; else `part` tenants at a time, keeping of the drafts only whose they
    /// are. The finals of all parts are numbered in the order [`plan`] gives them (periods,
    /// then tenants), before any draft is written.
    fn plan(&self, part: usize) -> Result<Planned, BillingError> {
        let tenants = &self.snapshot.tenants;
        if !self.cat.pools.is_empty() || tenants.len() <= part || self.scope != Scope::All {
            return Ok(Planned::Whole(self.intents(tenants, false)?));
        }
        let mut finals = Vec::new();
        let mut changed = Vec::new();
        let mut obsolete = Vec::new();
        let mut metered_anywhere = false;
        let mut unmetered = Vec::new();
        for run in tenants.chunks(part) {
            let inputs = self.snapshot.inputs_of(&self.groups, run)?;
            if !inputs.iter().any(|t| !t.usage.is_empty()) {
                unmetered.push(run);
                continue;
            }
            metered_anywhere = true;
            self.sift(
                run,
                &inputs,
                false,
                &mut finals,
                &mut changed,
                &mut obsolete,
            )?;
        }
        // A part without a metered tenant has nothing to bill; its drafts go if another part
        // is billed, as they would priced all at once.
        if metered_anywhere {
            for run in unmetered {
                let inputs = self.snapshot.inputs_of(&self.groups, run)?;
                self.sift(run, &inputs, true, &mut finals, &mut changed, &mut obsolete)?;
            }
        }
        finals.sort_by(|a, b| intent_order(a).cmp(&intent_order(b)));
        Ok(Planned::Parts {
            finals,
            changed,
            obsolete,
        })
    }

    /// Sorts one part's intents into the pass's finals, the tenants with a draft to write and
    /// the drafts that go.
    fn sift(
        &self,
        run: &[Arc<Kept<Tenant>>],
        inputs: &[TenantInput],
        metered_elsewhere: bool,
        finals: &mut Vec<Intent>,
        changed: &mut Vec<Arc<Kept<Tenant>>>,
        obsolete: &mut Vec<Intent>,
    ) -> Result<(), BillingError> {
        let mut drafted: BTreeSet<String> = BTreeSet::new();
        for intent in self.planned(inputs, metered_elsewhere)? {
            match intent {
                Intent::Final { .. } => finals.push(intent),
                Intent::Obsolete { .. } | Intent::Unpriced { .. } => obsolete.push(intent),
                Intent::Draft { invoice, .. } => {
                    drafted.insert(invoice.tenant);
                }
            }
        }
        changed.extend(run.iter().filter(|t| drafted.contains(t.name())).cloned());
        Ok(())
    }

    /// The drafts to write of `tenants` (some of those with drafts that differ), priced again.
    fn drafts_of(&self, tenants: &[Arc<Kept<Tenant>>]) -> Result<Vec<Intent>, BillingError> {
        let mut drafts = self.intents(tenants, true)?;
        drafts.retain(|i| matches!(i, Intent::Draft { .. }));
        Ok(drafts)
    }

    fn intents(
        &self,
        tenants: &[Arc<Kept<Tenant>>],
        metered_elsewhere: bool,
    ) -> Result<Vec<Intent>, BillingError> {
        self.planned(
            &self.snapshot.inputs_of(&self.groups, tenants)?,
            metered_elsewhere,
        )
    }

    /// [`plan`] for `inputs`, without the drafts the cluster holds already: the write loop may
    /// wait on the API server for a while and keeps only what it has to write.
    fn planned(
        &self,
        inputs: &[TenantInput],
        metered_elsewhere: bool,
    ) -> Result<Vec<Intent>, BillingError> {
        let mut intents = plan(
            &self.cat,
            inputs,
            &self.credits,
            &self.existing,
            &self.deleting,
            &self.scope,
            self.now,
            metered_elsewhere,
        )?;
        intents.retain(|i| match i {
            Intent::Draft { name, invoice } => !self
                .stored
                .get(name)
                .is_some_and(|s| s.is_final() || s.holds(&invoice.to_spec(&self.tz))),
            Intent::Final { .. } | Intent::Obsolete { .. } | Intent::Unpriced { .. } => true,
        });
        Ok(intents)
    }
}

/// Where [`plan`] puts an intent: numbers follow the periods, then the tenants; obsolete
/// drafts last.
fn intent_order(i: &Intent) -> (Timestamp, &str) {
    match i {
        Intent::Draft { invoice, .. } | Intent::Final { invoice, .. } => {
            (invoice.from, invoice.tenant.as_str())
        }
        Intent::Obsolete { name } => (Timestamp::MAX, name.as_str()),
        Intent::Unpriced { tenant, .. } => (Timestamp::MAX, tenant.as_str()),
    }
}

/// Writes a pass's intents.
struct Writer {
    api: Api<InvoiceObject>,
    /// The invoice numbers the cluster held when the pass began.
    known: Vec<String>,
    gives_way: bool,
    /// Whether the pass has written a draft or removed one.
    written: bool,
    opening: BTreeSet<String>,
    stored: Arc<BTreeMap<String, Arc<StoredInvoice>>>,
    tz: jiff::tz::TimeZone,
    now: Timestamp,
}

impl Writer {
    /// Whether the pass stops here to give way to reconciles (see `pass_once`); if so, it is
    /// counted and the loop woken to run it again.
    fn interrupted(&self, ctx: &Context) -> bool {
        let stop = self.gives_way && self.written && !ctx.activity.is_quiet();
        if stop {
            ctx.invoicing.wake.notify_one();
            ctx.metrics.invoicing_pass("interrupted");
        }
        stop
    }

    /// Writes `intents` in order; false when the pass gave way.
    async fn write(&mut self, ctx: &Context, intents: Vec<Intent>) -> Result<bool, kube::Error> {
        for intent in intents {
            if !matches!(intent, Intent::Final { .. }) && self.interrupted(ctx) {
                return Ok(false);
            }
            let stored = &self.stored;
            match intent {
                Intent::Draft { invoice, .. } if self.opening.contains(&invoice.tenant) => {}
                Intent::Obsolete { name }
                    if stored
                        .get(&name)
                        .is_some_and(|s| self.opening.contains(s.tenant())) => {}
                Intent::Draft { name, invoice } => {
                    let spec = invoice.to_spec(&self.tz);
                    self.written |=
                        write_draft(ctx, &self.api, &name, stored.get(&name), spec).await?;
                }
                Intent::Final {
                    name,
                    invoice,
                    member,
                } => {
                    finalize(
                        ctx,
                        &self.api,
                        &name,
                        invoice,
                        member.as_deref(),
                        &self.known,
                        &self.tz,
                        self.now,
                    )
                    .await?;
                }
                Intent::Obsolete { name } => {
                    if let Some(s) = stored.get(&name) {
                        self.written |= remove_draft(ctx, &self.api, s).await?;
                    }
                }
                // Reported before the writes (see `report_unpriced`).
                Intent::Unpriced { .. } => {}
            }
        }
        Ok(true)
    }
}

/// How much less CPU a pricing pass gets than the reconciles when both want it (a nice value).
const PRICING_NICENESS: i32 = 10;

/// Runs `work` on a thread of its own at a lower priority: a pass prices every tenant, and a
/// reconcile (a tier change someone waits for) must not queue behind it for a share of the core.
/// A thread per pass, not the blocking pool: a pool thread would keep the priority for whatever
/// it runs next, and an unprivileged process cannot raise it again. None when the thread failed.
async fn in_background<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("regie-pricing".into())
        .spawn(move || {
            // Best effort: without it the pass merely competes as an equal.
            let _ = rustix::process::setpriority_process(
                Some(rustix::thread::gettid()),
                PRICING_NICENESS,
            );
            let _ = tx.send(work());
        });
    if spawned.is_err() {
        return None;
    }
    rx.await.ok()
}

/// The current month's ledger of a tenant that leaves before it was reconciled in this month:
/// the state open at the end of `prev` carried from the month's start to `now`, as metering
/// would have recorded it. Only priced, never written (the Usage belongs to metering).
fn carried_over(
    prev: &Usage,
    tenant: &str,
    month: Month,
    now: Timestamp,
    cal: &Calendar,
) -> Result<Option<Usage>, BillingError> {
    let segments = prev.status.clone().unwrap_or_default().segments;
    let Some(open) = crate::billing::ledger::carried_state(&segments, month.start(cal.tz())?)
    else {
        return Ok(None);
    };
    let mut carried = Vec::new();
    crate::billing::ledger::record(&mut carried, &open, month.start(cal.tz())?, cal)?;
    crate::billing::ledger::close(&mut carried, now, cal)?;
    let mut u = Usage::new(
        &format!("{tenant}-{month}"),
        regie_crds::generated::UsageSpec {
            tenant: tenant.into(),
            period: month.to_string(),
        },
    );
    u.status = Some(regie_crds::generated::UsageStatus {
        segments: carried,
        closed: true,
        ..Default::default()
    });
    Ok(Some(u))
}

fn new_object(name: &str, spec: InvoiceSpec) -> InvoiceObject {
    let mut o = InvoiceObject::new(name, spec);
    o.metadata.labels = Some(BTreeMap::from([(
        TENANT_LABEL.to_string(),
        o.spec.tenant.clone(),
    )]));
    o
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Writes a draft when the cluster's differs, never over a final one (resourceVersion
/// precondition; a conflict waits for the next pass). Whether a write was sent.
async fn write_draft(
    ctx: &Context,
    api: &Api<InvoiceObject>,
    name: &str,
    stored: Option<&Arc<StoredInvoice>>,
    spec: InvoiceSpec,
) -> Result<bool, kube::Error> {
    match stored {
        None => match api
            .create(&PostParams::default(), &new_object(name, spec))
            .await
        {
            Ok(_) => {
                ctx.metrics.write("create", "Invoice");
                tracing::debug!(invoice = name, "draft created");
            }
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(e),
        },
        Some(s) if s.is_final() || s.holds(&spec) => return Ok(false),
        Some(s) => {
            let o = s.replaced_by(spec);
            match api.replace(name, &PostParams::default(), &o).await {
                Ok(_) => {
                    ctx.metrics.write("update", "Invoice");
                    tracing::debug!(invoice = name, subtotal = %o.spec.subtotal, "draft updated");
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(true)
}

/// Deletes a draft nobody is invoiced for any more; only that version of it (a precondition),
/// so an invoice made final meanwhile stays. Whether a delete was sent.
async fn remove_draft(
    ctx: &Context,
    api: &Api<InvoiceObject>,
    stored: &StoredInvoice,
) -> Result<bool, kube::Error> {
    if stored.state() != InvoiceState::Draft {
        return Ok(false);
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: stored.version.resource_version(),
            uid: stored.version.uid(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&stored.name, &params).await {
        Ok(_) => {
            ctx.metrics.write("delete", "Invoice");
            tracing::info!(invoice = %stored.name, "draft no longer wanted; deleted");
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(true),
        Err(e) => Err(e),
    }
}

/// Numbers and writes a final invoice once. Re-reads it first: a final one is left alone.
/// A leaving tenant's carries its pool membership (`member`, see [`MEMBER_ANNOTATION`]).
#[allow(clippy::too_many_arguments)]
async fn finalize(
    ctx: &Context,
    api: &Api<InvoiceObject>,
    name: &str,
    mut invoice: Invoice,
    member: Option<&Member>,
    known: &[String],
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let counter: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.invoicing.namespace);
    let fresh = api.get_opt(name).await?;
    if let Some(f) = &fresh
        && f.spec.state == InvoiceState::Final
    {
        release(ctx, &counter, name, f.spec.number.as_deref()).await?;
        return Ok(());
    }
    let year = now.to_zoned(tz.clone()).year();
    let (number, writes) = claim_number(&counter, name, year, known).await?;
    for verb in writes {
        ctx.metrics.write(verb, "ConfigMap");
    }
    invoice.number = Some(number.clone());
    let spec = invoice.to_spec(tz);
    let annotate = |o: &mut InvoiceObject| {
        if let Some(text) = member.and_then(|m| serde_json::to_string(m).ok()) {
            o.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(MEMBER_ANNOTATION.to_string(), text);
        }
    };
    let written = match fresh {
        None => {
            let mut o = new_object(name, spec);
            annotate(&mut o);
            api.create(&PostParams::default(), &o)
                .await
                .map(|_| "create")
        }
        Some(mut o) => {
            o.spec = spec;
            annotate(&mut o);
            api.replace(name, &PostParams::default(), &o)
                .await
                .map(|_| "update")
        }
    };
    match written {
        Ok(verb) => {
            ctx.metrics.write(verb, "Invoice");
            tracing::info!(invoice = %name, number = %number, total = %invoice.payable(), "invoice final");
        }
        // Another replica got there first; the next pass sees its final invoice.
        Err(e) if is_conflict(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    release(ctx, &counter, name, Some(&number)).await
}

/// The number for invoice `name`: its claim when it has one, else the next of `year`, claimed
/// in the same optimistic write that advances the counter. `known` are numbers already on
/// invoices (the floor when the counter is new or behind). With the number come the verbs of
/// the writes that landed on the counter (its creation, the claim), for the write counter.
pub async fn claim_number(
    counter: &Api<ConfigMap>,
    name: &str,
    year: i16,
    known: &[String],
) -> Result<(String, Vec<&'static str>), kube::Error> {
    let key = format!("{CLAIM}{name}");
    let year_key = format!("{NUMBER_PREFIX}-{year:04}");
    let mut writes = Vec::new();
    loop {
        let Some(cm) = counter.get_opt(COUNTER).await? else {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(COUNTER.into()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_string(),
                        "regie".to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            };
            match counter.create(&PostParams::default(), &cm).await {
                Ok(_) => writes.push("create"),
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e),
            }
            continue;
        };
        let mut data = cm.data.clone().unwrap_or_default();
        if let Some(n) = data.get(&key) {
            return Ok((n.clone(), writes));
        }
        let last: u64 = data
            .get(&year_key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let floor = next_seq(known, year).saturating_sub(1);
        let seq = last.max(floor) + 1;
        let number = format!("{year_key}-{seq:06}");
        data.insert(year_key.clone(), seq.to_string());
        data.insert(key.clone(), number.clone());
        let mut updated = cm.clone();
        updated.data = Some(data);
        match counter
            .replace(COUNTER, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {
                writes.push("update");
                return Ok((number, writes));
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The sequence number that follows the `known` numbers of `year`.
fn next_seq(known: &[String], year: i16) -> u64 {
    crate::billing::invoice::next_number(known, year)
        .ok()
        .and_then(|n| n.rsplit('-').next().and_then(|s| s.parse().ok()))
        .unwrap_or(1)
}

/// Drops the claim of `name` once the invoice carries its number.
async fn release(
    ctx: &Context,
    counter: &Api<ConfigMap>,
    name: &str,
    number: Option<&str>,
) -> Result<(), kube::Error> {
    let key = format!("{CLAIM}{name}");
    for _ in 0..5 {
        let Some(mut cm) = counter.get_opt(COUNTER).await? else {
            return Ok(());
        };
        let Some(data) = cm.data.as_mut() else {
            return Ok(());
        };
        if data.get(&key).map(String::as_str) != number || number.is_none() {
            return Ok(());
        }
        data.remove(&key);
        match counter.replace(COUNTER, &PostParams::default(), &cm).await {
            Ok(_) => {
                ctx.metrics.write("update", "ConfigMap");
                return Ok(());
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::ledger::BillableState;
    use crate::billing::pricing::PriceBook;
    use crate::controller::cache::key_of as name_key;

    /// An Invoice as the cache keeps it, under its key.
    fn kept_invoice(o: InvoiceObject) -> StoredInvoice {
        let key = name_key(&o.metadata);
        StoredInvoice::of(o, &key)
    }
    use jiff::civil::date;
    use regie_crds::PriceList;
    use regie_crds::generated::Segment;

    fn catalogue() -> Catalogue {
        let list: PriceList = serde_yaml::from_str(
            r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: p}
spec:
  currency: EUR
  effectiveFrom: "2026-01-01"
  vat: {category: S, percent: "21"}
  rates:
    - {item: account, profile: standard, serviceLevel: bronze, per: month, amount: "30.00"}
    - {item: account, profile: standard, serviceLevel: silver, per: month, amount: "36.00"}
"#,
        )
        .unwrap();
        let cal = Calendar::amsterdam().unwrap();
        let book = PriceBook::new(&[list], &cal).unwrap();
        Catalogue {
            cal,
            book,
            pools: vec![],
            departed: vec![],
        }
    }

    fn seg(from: &str, to: Option<&str>, level: &str, accounts: i64) -> Segment {
        Segment {
            from: from.into(),
            to: to.map(Into::into),
            service_level: level.into(),
            accounts: BTreeMap::from([("standard".to_string(), accounts)]),
            measured_accounts: BTreeMap::new(),
            components: vec![],
        }
    }

    fn ledger(tenant: &str, month: &str, segments: Vec<Segment>) -> Usage {
        let mut usage = Usage::new(
            &format!("{tenant}-{month}"),
            regie_crds::generated::UsageSpec {
                tenant: tenant.into(),
                period: month.into(),
            },
        );
        usage.status = Some(regie_crds::generated::UsageStatus {
            segment_count: i32::try_from(segments.len()).ok(),
            segments,
            ..Default::default()
        });
        usage
    }

    /// The examples as `regie bill` reads them, with a ledger for the first tenant.
    fn examples_inventory() -> crate::inventory::Inventory {
        use crate::inventory::{Inventory, Sourced};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let loaded = crate::input::load(&[dir.join("catalogue"), dir.join("tenants")]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let mut inv = Inventory::new(loaded.objects);
        let first = inv.tenants[0].object.name_any();
        inv.usages.push(Sourced {
            source: cluster_source(),
            object: ledger(&first, "2026-03", march()),
        });
        let ns = tenant_namespace(&inv.tenants[0].object);
        for (name, date) in [("storing-b", "2026-03-12"), ("storing-a", "2026-03-02")] {
            let mut order = ServiceOrder::new(
                name,
                regie_crds::commercial::ServiceOrderSpec {
                    date: date.into(),
                    hours: "2.5".into(),
                    description: "storing".into(),
                    rate: None,
                },
            );
            order.metadata.namespace = Some(ns.clone());
            inv.orders.push(Sourced {
                source: cluster_source(),
                object: order,
            });
        }
        inv
    }

    fn snapshot_of(inv: &crate::inventory::Inventory) -> Snapshot {
        fn shared<T: Clone>(items: &[crate::inventory::Sourced<T>]) -> Vec<Arc<T>> {
            items.iter().map(|s| Arc::new(s.object.clone())).collect()
        }
        fn kept<K: Split + Clone>(items: &[crate::inventory::Sourced<K>]) -> Vec<Arc<Kept<K>>> {
            items
                .iter()
                .map(|s| Arc::new(Kept::new(s.object.clone())))
                .collect()
        }
        Snapshot {
            tenants: kept(&inv.tenants),
            packages: kept(&inv.packages),
            components: kept(&inv.components),
            orders: shared(&inv.orders),
            ledgers: inv
                .usages
                .iter()
                .map(|u| Arc::new(Ledger::of(u.object.clone(), &name_key(&u.object.metadata))))
                .collect(),
            fetched: Vec::new(),
            replaced: BTreeSet::new(),
            price_lists: shared(&inv.price_lists),
            pools: shared(&inv.pools),
        }
    }

    #[test]
    fn a_pass_prices_from_the_same_inputs_as_regie_bill() {
        let inv = examples_inventory();
        assert!(inv.tenants.len() > 1 && !inv.components.is_empty());
        let (_, from_files) =
            crate::billing::engine::from_inventory(&inv, Calendar::amsterdam().unwrap()).unwrap();
        let snapshot = snapshot_of(&inv);
        assert_eq!(
            snapshot
                .inputs_of(&snapshot.groups(), &snapshot.tenants)
                .unwrap(),
            from_files
        );
        assert!(snapshot.catalogue(Calendar::amsterdam().unwrap()).is_ok());
        assert!(
            from_files
                .iter()
                .any(|t| !t.usage.is_empty() && t.orders.len() == 2)
        );
    }

    /// A PriceList, CostPool or ServiceOrder that `regie validate` refuses (the API server's
    /// schema admits it) is refused by a pass too, with the object and field named: VAT category
    /// E at 21%, a rate of 2135.123456 (more than 4 decimals), an order without a description.
    #[test]
    fn a_pass_refuses_what_regie_validate_refuses() {
        let inv = examples_inventory();
        let cal = || Calendar::amsterdam().unwrap();
        let refused = |edit: &dyn Fn(&mut PriceList)| -> String {
            let mut snapshot = snapshot_of(&inv);
            let mut list = (*snapshot.price_lists[0]).clone();
            edit(&mut list);
            snapshot.price_lists[0] = Arc::new(list);
            snapshot.catalogue(cal()).unwrap_err().to_string()
        };
        let name = inv.price_lists[0].object.name_any();
        let e = refused(&|l| {
            l.spec.vat.category = "E".into();
            l.spec.vat.percent = "21".into();
        });
        assert!(
            e.contains(&format!("PriceList/{name}: spec.vat.percent: must be 0")),
            "{e}"
        );
        let e = refused(&|l| l.spec.rates[0].amount = "2135.123456".into());
        assert!(
            e.contains(&format!("PriceList/{name}: spec.rates[0].amount")),
            "{e}"
        );
        let mut snapshot = snapshot_of(&inv);
        let mut pool = (*snapshot.pools[0]).clone();
        pool.spec.amount = "650000.005".into();
        snapshot.pools[0] = Arc::new(pool);
        let e = snapshot.catalogue(cal()).unwrap_err().to_string();
        assert!(e.contains("CostPool/") && e.contains("spec.amount"), "{e}");
        let mut snapshot = snapshot_of(&inv);
        let mut order = (*snapshot.orders[0]).clone();
        order.spec.description = " ".into();
        snapshot.orders[0] = Arc::new(order);
        let e = snapshot
            .inputs_of(&snapshot.groups(), &snapshot.tenants)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ServiceOrder/") && e.contains("spec.description: must not be empty"),
            "{e}"
        );
    }

    /// Priced a part at a time (no cost pools), a pass finds the finals priced all at once would
    /// find, in the same order (their numbers follow it), the same drafts to write and the same
    /// drafts to drop — also of a part where no tenant is metered.
    #[test]
    fn a_pass_priced_a_part_at_a_time_plans_what_it_would_all_at_once() {
        let mut inv = examples_inventory();
        let names: Vec<String> = inv.tenants.iter().map(|t| t.object.name_any()).collect();
        assert!(names.len() >= 4, "{names:?}");
        let (metered, unmetered) = names.split_at(names.len() - 1);
        inv.usages = metered
            .iter()
            .map(|n| crate::inventory::Sourced {
                source: cluster_source(),
                object: ledger(n, "2026-03", march()),
            })
            .collect();
        let mut snapshot = snapshot_of(&inv);
        let with_pools = !snapshot.pools.is_empty();
        // A draft of a tenant no longer metered: it goes.
        let gone = invoice_name(&unmetered[0], "2026-03");
        let existing = BTreeMap::from([(
            gone.clone(),
            InvoiceSpec {
                tenant: unmetered[0].clone(),
                period: "2026-03".into(),
                number: None,
                state: InvoiceState::Draft,
                currency: "EUR".into(),
                lines: Vec::new(),
                subtotal: "0.00".into(),
                vat: "0.00".into(),
                total: "0.00".into(),
            },
        )]);
        let pricing = |snapshot: Snapshot| Pricing {
            cat: snapshot.catalogue(Calendar::amsterdam().unwrap()).unwrap(),
            groups: snapshot.groups(),
            snapshot,
            credits: Credits::new(),
            existing: existing.clone(),
            deleting: BTreeSet::new(),
            scope: Scope::All,
            now: t("2026-04-02T10:00:00+02:00"),
            stored: Arc::default(),
            tz: crate::billing::amsterdam().unwrap(),
        };
        if with_pools {
            // Pools are shared out over every tenant: priced all at once.
            let p = pricing(snapshot_of(&inv));
            assert!(matches!(p.plan(1).unwrap(), Planned::Whole(_)));
        }
        snapshot.pools.clear();
        let p = pricing(snapshot);
        let Planned::Whole(whole) = p.plan(usize::MAX).unwrap() else {
            panic!("one part")
        };
        let Planned::Parts {
            finals,
            changed,
            obsolete,
        } = p.plan(1).unwrap()
        else {
            panic!("in parts")
        };
        let mut drafts: Vec<Intent> = changed
            .chunks(2)
            .flat_map(|part| p.drafts_of(part).unwrap())
            .collect();
        let of_kind = |want: fn(&Intent) -> bool| -> Vec<Intent> {
            whole.iter().filter(|i| want(i)).cloned().collect()
        };
        let whole_finals = of_kind(|i| matches!(i, Intent::Final { .. }));
        let mut whole_drafts = of_kind(|i| matches!(i, Intent::Draft { .. }));
        let whole_obsolete = of_kind(|i| matches!(i, Intent::Obsolete { .. }));
        assert_eq!(whole_finals.len(), metered.len(), "{whole:#?}");
        assert_eq!(finals, whole_finals);
        assert_eq!(changed.len(), metered.len());
        whole_drafts.sort_by(|a, b| intent_order(a).cmp(&intent_order(b)));
        drafts.sort_by(|a, b| intent_order(a).cmp(&intent_order(b)));
        assert_eq!(drafts.len(), metered.len());
        assert_eq!(drafts, whole_drafts);
        assert_eq!(obsolete, vec![Intent::Obsolete { name: gone }]);
        assert_eq!(obsolete, whole_obsolete);
    }

    #[test]
    fn a_leaving_tenants_ledger_read_from_the_server_replaces_the_cached_one() {
        let inv = examples_inventory();
        let first = inv.tenants[0].object.name_any();
        let mut snapshot = snapshot_of(&inv);
        let mut closed = march();
        closed.truncate(1);
        snapshot.fetched = vec![ledger(&first, "2026-03", closed.clone())];
        snapshot.replaced = BTreeSet::from([format!("{first}-2026-03")]);
        let inputs = snapshot
            .inputs_of(&snapshot.groups(), &snapshot.tenants)
            .unwrap();
        let input = inputs.iter().find(|t| t.name == first).unwrap();
        assert_eq!(input.usage.len(), 1);
        assert_eq!(input.usage.values().next(), Some(&closed));
        let (march, april) = (Month::new(2026, 3), Month::new(2026, 4));
        assert!(snapshot.opening(march).is_empty());
        // A ledger whose segments are not written yet holds its tenant's drafts back while it
        // is of this month; an older one never written holds nothing back.
        snapshot.fetched[0].status = None;
        assert_eq!(snapshot.opening(march), BTreeSet::from([first]));
        assert!(snapshot.opening(april).is_empty());
    }

    #[test]
    fn a_kept_ledger_gives_back_the_usage_billing_reads() {
        let mut open = seg("2026-03-10T09:00:00Z", None, "gold", 118);
        open.measured_accounts = BTreeMap::from([("standard".to_string(), 117)]);
        open.components = vec![regie_crds::generated::SegmentComponent {
            name: "zaaksysteem".into(),
            class: regie_crds::tenancy::ComponentClass::ApplicationHosting,
            service_level: "gold".into(),
        }];
        let mut usage = Usage::new(
            "tholen-2026-03",
            regie_crds::generated::UsageSpec {
                tenant: "tholen".into(),
                period: "2026-03".into(),
            },
        );
        usage.status = Some(regie_crds::generated::UsageStatus {
            observed_generation: Some(1),
            conditions: vec![regie_crds::status::condition(
                "Delivered",
                false,
                "Pending",
                "waiting for the month to end",
                None,
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t("2026-03-10T09:00:00Z")),
            )],
            segments: vec![
                seg(
                    "2026-03-01T00:00:00+01:00",
                    Some("2026-03-10T09:00:00Z"),
                    "silver",
                    120,
                ),
                open,
            ],
            segment_count: Some(2),
            closed: false,
            delivered_segments: None,
        });
        let json = |u: &Usage| serde_json::to_value(u).unwrap();
        let kept = Ledger::of(usage.clone(), &name_key(&usage.metadata));
        assert_eq!(json(&kept.to_usage()), json(&usage));
        assert_eq!(kept.to_usage().status, usage.status);
        assert!(
            matches!(kept.spec, LedgerSpec::Named(_)),
            "the name says the spec"
        );
        assert_eq!(kept.tenant(), "tholen");
        // Named otherwise, or for another month: the spec is kept as it came.
        for (name, period) in [("tholen-march", "2026-03"), ("tholen-2026-03", "2026-04")] {
            let mut other = usage.clone();
            other.metadata.name = Some(name.into());
            other.spec.period = period.into();
            let kept = Ledger::of(other.clone(), &name_key(&other.metadata));
            assert!(matches!(kept.spec, LedgerSpec::Whole(_)), "{name}");
            assert_eq!(kept.tenant(), "tholen");
            assert_eq!(json(&kept.to_usage()), json(&other));
        }
        // A Usage whose ledger is not written yet stays one: invoicing waits for it.
        usage.status = None;
        assert_eq!(
            Ledger::of(usage.clone(), &name_key(&usage.metadata))
                .to_usage()
                .status,
            None
        );
    }

    fn tenant(usage: Vec<(Month, Vec<Segment>)>) -> TenantInput {
        TenantInput {
            name: "tholen".into(),
            labels: BTreeMap::new(),
            joined: date(2024, 1, 1),
            leaves: None,
            inhabitants: 1000,
            invoicing: Default::default(),
            declared: BillableState {
                service_level: "silver".into(),
                accounts: BTreeMap::from([("standard".to_string(), 120)]),
                measured_accounts: BTreeMap::new(),
                components: vec![],
            },
            usage: usage.into_iter().collect(),
            left_empty: BTreeSet::new(),
            orders: vec![],
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn march() -> Vec<Segment> {
        vec![
            seg(
                "2026-03-01T00:00:00+01:00",
                Some("2026-03-11T00:00:00+01:00"),
                "bronze",
                100,
            ),
            seg(
                "2026-03-11T00:00:00+01:00",
                Some("2026-03-21T00:00:00+01:00"),
                "silver",
                100,
            ),
            seg("2026-03-21T00:00:00+01:00", None, "silver", 120),
        ]
    }

    fn run(
        tenants: &[TenantInput],
        existing: &BTreeMap<String, InvoiceSpec>,
        scope: Scope,
        now: &str,
    ) -> Vec<Intent> {
        let cat = catalogue();
        plan(
            &cat,
            tenants,
            &Credits::new(),
            existing,
            &BTreeSet::new(),
            &scope,
            t(now),
            false,
        )
        .unwrap()
    }

    /// A tenant whose own input cannot be priced (a level no rate has, in its ledger) keeps its
    /// invoices as they are and is named; the other tenants' are planned as ever. Leaving, it
    /// waits: its final invoice is not skipped.
    #[test]
    fn one_tenant_that_cannot_be_priced_leaves_the_others_planned() {
        let fine = tenant(vec![(Month::new(2026, 3), march())]);
        let mut broken = tenant(vec![(
            Month::new(2026, 3),
            vec![seg("2026-03-01T00:00:00+01:00", None, "platinum", 100)],
        )]);
        broken.name = "moerdijk".into();
        let stale = InvoiceSpec {
            tenant: "moerdijk".into(),
            period: "2026-03".into(),
            number: None,
            state: InvoiceState::Draft,
            currency: "EUR".into(),
            lines: vec![],
            subtotal: "0.00".into(),
            vat: "0.00".into(),
            total: "0.00".into(),
        };
        let existing = BTreeMap::from([("moerdijk-2026-03".to_string(), stale)]);
        let alone = run(
            std::slice::from_ref(&fine),
            &BTreeMap::new(),
            Scope::All,
            "2026-03-25T11:00:00Z",
        );
        let both = run(
            &[fine.clone(), broken.clone()],
            &existing,
            Scope::All,
            "2026-03-25T11:00:00Z",
        );
        let (unpriced, others): (Vec<_>, Vec<_>) = both
            .into_iter()
            .partition(|i| matches!(i, Intent::Unpriced { .. }));
        assert_eq!(
            others, alone,
            "tholen is planned as if alone; moerdijk's draft stays"
        );
        match &unpriced[..] {
            [Intent::Unpriced { tenant, message }] => {
                assert_eq!(tenant, "moerdijk");
                assert!(message.contains("platinum"), "{message}");
            }
            other => panic!("{other:#?}"),
        }
        let cat = catalogue();
        let leaving = plan(
            &cat,
            &[fine, broken],
            &Credits::new(),
            &existing,
            &BTreeSet::new(),
            &Scope::Leaving("moerdijk".into(), t("2026-03-25T11:00:00Z")),
            t("2026-03-25T11:00:00Z"),
            false,
        );
        assert!(leaving.is_err(), "{leaving:#?}");
    }

    #[test]
    fn stored_lines_keep_their_vat() {
        let tz = crate::billing::amsterdam().unwrap();
        let line = Line {
            kind: LineKind::Component,
            description: "archive".into(),
            quantity: Decimal::ONE,
            unit: Unit::Item,
            unit_price: Decimal::from(250),
            amount: Decimal::from(250),
            from: "2026-02-28T23:00:00Z".parse().unwrap(),
            to: "2026-03-31T22:00:00Z".parse().unwrap(),
            vat: Arc::new(VatTreatment {
                category: "E".into(),
                percent: Decimal::ZERO,
                exemption_reason: Some("Article 11 Wet OB".into()),
            }),
        };
        let stored = crate::billing::invoice::line_spec(&line, &tz);
        assert_eq!(stored.vat_category.as_deref(), Some("E"));
        assert_eq!(stored.vat_percent.as_deref(), Some("0"));
        assert_eq!(line_of(&stored, "here").unwrap(), line);
        // Written before lines carried their VAT: the one treatment regie priced with then.
        let old = InvoiceLine {
            vat_category: None,
            vat_percent: None,
            vat_exemption_reason: None,
            ..stored.clone()
        };
        assert_eq!(*line_of(&old, "here").unwrap().vat, VatTreatment::default());
        let bad = InvoiceLine {
            vat_percent: Some("21%".into()),
            ..stored
        };
        let e = line_of(&bad, "Invoice/x: spec.lines[0]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.lines[0].vatPercent"), "{e}");
    }

    /// The correction lines of an invoice.
    fn corrections_on(spec: &InvoiceSpec) -> Vec<&InvoiceLine> {
        spec.lines
            .iter()
            .filter(|l| l.kind == "correction")
            .collect()
    }

    fn spec_of(i: &Intent, number: Option<&str>) -> (String, InvoiceSpec) {
        let tz = crate::billing::amsterdam().unwrap();
        match i {
            Intent::Draft { name, invoice } | Intent::Final { name, invoice, .. } => {
                let mut inv = invoice.clone();
                inv.number = number.map(Into::into);
                (name.clone(), inv.to_spec(&tz))
            }
            Intent::Obsolete { name } => panic!("{name} is obsolete"),
            Intent::Unpriced { tenant, message } => panic!("{tenant} unpriced: {message}"),
        }
    }

    #[test]
    fn an_open_month_is_a_draft_priced_to_the_cent() {
        let tenants = [tenant(vec![(Month::new(2026, 3), march())])];
        let intents = run(
            &tenants,
            &BTreeMap::new(),
            Scope::All,
            "2026-03-25T10:00:00Z",
        );
        assert_eq!(intents.len(), 1, "{intents:?}");
        let (name, spec) = spec_of(&intents[0], None);
        assert_eq!(name, "tholen-2026-03");
        assert!(matches!(intents[0], Intent::Draft { .. }));
        // March 2026 has 743 hours; 240 h bronze 100, 240 h silver 100, 263 h silver 120:
        // 969.04 + 1162.85 + 1529.15 = 3661.04
        assert_eq!(spec.subtotal, "3661.04", "{spec:#?}");
    }

    #[test]
    fn nothing_before_metering_started_and_a_closed_month_becomes_final() {
        let tenants = [tenant(vec![(Month::new(2026, 3), march())])];
        let intents = run(
            &tenants,
            &BTreeMap::new(),
            Scope::All,
            "2026-04-01T00:00:05+02:00",
        );
        let names: Vec<_> = intents.iter().map(|i| spec_of(i, None).0).collect();
        assert_eq!(
            names,
            ["tholen-2026-03", "tholen-2026-04"],
            "no January, February"
        );
        assert!(matches!(intents[0], Intent::Final { .. }));
        assert!(matches!(intents[1], Intent::Draft { .. }));
    }

    #[test]
    fn a_late_change_is_corrected_once_on_the_next_invoice() {
        let tenants = [tenant(vec![(Month::new(2026, 3), march())])];
        let mut existing = BTreeMap::new();
        let intents = run(&tenants, &existing, Scope::All, "2026-04-02T00:00:00Z");
        let (n, s) = spec_of(&intents[0], Some("RG-2026-000001"));
        existing.insert(n, s);
        // The ledger of March is corrected afterwards: 101 accounts in the first stretch.
        let mut late = march();
        late[0].accounts.insert("standard".into(), 101);
        let tenants = [tenant(vec![(Month::new(2026, 3), late)])];
        let intents = run(&tenants, &existing, Scope::All, "2026-04-02T00:00:00Z");
        assert_eq!(intents.len(), 1, "the final March is not proposed again");
        let (n, april) = spec_of(&intents[0], None);
        assert_eq!(n, "tholen-2026-04");
        let corr = corrections_on(&april);
        // One account at 30.00 a month for 240 of 743 hours: 9.69.
        assert_eq!(corr.len(), 1, "{corr:#?}");
        assert_eq!(corr[0].amount, "9.69");
        assert!(corr[0].description.contains("RG-2026-000001"));
        // April becomes final with the correction; May carries none.
        let intents = run(&tenants, &existing, Scope::All, "2026-05-01T00:00:05+02:00");
        let (n, s) = spec_of(&intents[0], Some("RG-2026-000002"));
        assert_eq!(n, "tholen-2026-04");
        assert!(s.lines.iter().any(|l| l.kind == "correction"));
        existing.insert(n, s);
        let intents = run(&tenants, &existing, Scope::All, "2026-05-01T00:00:05+02:00");
        let (n, may) = spec_of(&intents[0], None);
        assert_eq!(n, "tholen-2026-05");
        assert!(
            may.lines.iter().all(|l| l.kind != "correction"),
            "corrected once: {may:#?}"
        );
    }

    /// A change to March found in June is carried by June's draft; on 1 July, when June
    /// becomes final, March is no longer in the window of the current and the previous quarter,
    /// yet the correction must stay on June's final invoice (it was dropped with the window).
    #[test]
    fn a_correction_from_the_quarter_before_stays_when_its_draft_becomes_final() {
        let tenants = [tenant(vec![(Month::new(2026, 3), march())])];
        let mut existing = BTreeMap::new();
        let mut number = 0;
        let mut keep = |intents: Vec<Intent>, existing: &mut BTreeMap<String, InvoiceSpec>| {
            for i in &intents {
                let final_ = matches!(i, Intent::Final { .. });
                if final_ {
                    number += 1;
                }
                let (n, s) = spec_of(i, final_.then(|| format!("RG-2026-{number:06}")).as_deref());
                existing.insert(n, s);
            }
        };
        keep(
            run(&tenants, &existing, Scope::All, "2026-04-02T00:00:00Z"),
            &mut existing,
        );
        keep(
            run(&tenants, &existing, Scope::All, "2026-06-10T00:00:00Z"),
            &mut existing,
        );
        assert_eq!(existing["tholen-2026-05"].state, InvoiceState::Final);
        let mut late = march();
        late[0].accounts.insert("standard".into(), 101);
        let tenants = [tenant(vec![(Month::new(2026, 3), late)])];
        keep(
            run(&tenants, &existing, Scope::All, "2026-06-20T00:00:00Z"),
            &mut existing,
        );
        let june = &existing["tholen-2026-06"];
        assert_eq!(june.state, InvoiceState::Draft);
        assert_eq!(corrections_on(june).len(), 1, "{june:#?}");
        let intents = run(&tenants, &existing, Scope::All, "2026-07-01T00:00:05+02:00");
        let (n, june) = intents
            .iter()
            .find(|i| matches!(i, Intent::Final { .. }))
            .map(|i| spec_of(i, None))
            .expect("June becomes final");
        assert_eq!(n, "tholen-2026-06");
        let corr = corrections_on(&june);
        assert_eq!(corr.len(), 1, "{june:#?}");
        assert_eq!(corr[0].amount, "9.69");
        assert!(corr[0].description.contains("RG-2026-000001"));
    }

    /// A correction whose line is gone again is reversed, not dropped. March (one hosted
    /// component at 2,544.50 a month) is final without a credit; April's pass finds a 5% credit
    /// for March (−127.225 → −127.23) and April, final, carries it as a correction; then the
    /// report changes to 10% (−254.45). May must carry +127.23 and −254.45, so that March is
    /// credited −254.45 in all; dropping the 5% correction gave −381.68. A ServiceOrder added
    /// late and deleted again is reversed the same way.
    #[test]
    fn a_correction_whose_line_is_gone_again_is_reversed() {
        let list: PriceList = serde_yaml::from_str(
            r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: p}
spec:
  currency: EUR
  effectiveFrom: "2026-01-01"
  vat: {category: S, percent: "21"}
  rates:
    - {item: account, profile: standard, serviceLevel: silver, per: month, amount: "36.00"}
    - {item: component, class: applicationHosting, serviceLevel: silver, per: month, amount: "2544.50"}
"#,
        )
        .unwrap();
        let cal = Calendar::amsterdam().unwrap();
        let cat = Catalogue {
            book: PriceBook::new(&[list], &cal).unwrap(),
            cal,
            pools: vec![],
            departed: vec![],
        };
        let mut segment = seg(
            "2026-03-01T00:00:00+01:00",
            Some("2026-04-01T00:00:00+02:00"),
            "silver",
            0,
        );
        segment.accounts.clear();
        segment.components = vec![regie_crds::generated::SegmentComponent {
            name: "archive".into(),
            class: regie_crds::tenancy::ComponentClass::ApplicationHosting,
            service_level: "silver".into(),
        }];
        let mut april = segment.clone();
        april.from = "2026-04-01T00:00:00+02:00".into();
        april.to = None;
        let mut tholen = tenant(vec![
            (Month::new(2026, 3), vec![segment]),
            (Month::new(2026, 4), vec![april]),
        ]);
        let credit = |percent: i64| {
            Credits::from([(
                (
                    "tholen".to_string(),
                    "archive".to_string(),
                    Month::new(2026, 3),
                ),
                vec![Credit::month(Decimal::from(percent))],
            )])
        };
        let step = |tenants: &[TenantInput],
                    credits: &Credits,
                    existing: &BTreeMap<String, InvoiceSpec>,
                    now: &str| {
            plan(
                &cat,
                tenants,
                credits,
                existing,
                &BTreeSet::new(),
                &Scope::All,
                t(now),
                false,
            )
            .unwrap()
        };
        let sum = |lines: &[&InvoiceLine]| -> Decimal {
            lines
                .iter()
                .map(|l| Decimal::from_str_exact(&l.amount).unwrap())
                .sum()
        };
        let final_of = |intents: &[Intent], name: &str, number: &str| {
            let i = intents
                .iter()
                .find(|i| matches!(i, Intent::Final { name: n, .. } if n == name))
                .unwrap_or_else(|| panic!("{name} final: {intents:#?}"));
            spec_of(i, Some(number))
        };
        let draft_of = |intents: &[Intent], name: &str| {
            let i = intents
                .iter()
                .find(|i| matches!(i, Intent::Draft { name: n, .. } if n == name))
                .unwrap_or_else(|| panic!("{name} draft: {intents:#?}"));
            spec_of(i, None).1
        };
        let mut existing = BTreeMap::new();
        let none = Credits::new();
        let intents = step(
            std::slice::from_ref(&tholen),
            &none,
            &existing,
            "2026-04-01T00:00:05+02:00",
        );
        let (n, march) = final_of(&intents, "tholen-2026-03", "RG-2026-000001");
        assert_eq!(march.subtotal, "2544.50");
        existing.insert(n, march);
        // April: the 5% credit arrives and April closes with its correction.
        let intents = step(
            std::slice::from_ref(&tholen),
            &credit(5),
            &existing,
            "2026-05-01T00:00:05+02:00",
        );
        let (n, april) = final_of(&intents, "tholen-2026-04", "RG-2026-000002");
        assert_eq!(sum(&corrections_on(&april)), Decimal::new(-12723, 2));
        existing.insert(n, april);
        // May: the report now says 10%.
        let intents = step(
            std::slice::from_ref(&tholen),
            &credit(10),
            &existing,
            "2026-05-10T00:00:00+02:00",
        );
        let may = draft_of(&intents, "tholen-2026-05");
        let corr = corrections_on(&may);
        assert_eq!(corr.len(), 2, "{corr:#?}");
        assert_eq!(sum(&corr), Decimal::new(-12722, 2), "+127.23 − 254.45");
        assert!(
            corr.iter()
                .any(|l| l.amount == "127.23" && l.description.contains("5%")),
            "{corr:#?}"
        );
        // In all March is credited −254.45 (−127.23 in April, −127.22 in May).

        // The same with a ServiceOrder for March added after March was final, then deleted.
        let march = existing["tholen-2026-03"].clone();
        let mut existing = BTreeMap::from([("tholen-2026-03".to_string(), march)]);
        tholen.orders = vec![crate::billing::engine::Order {
            id: "ServiceOrder/tenant-tholen/migration".into(),
            date: date(2026, 3, 20),
            hours: Decimal::from(10),
            rate: Some(Decimal::from(100)),
            description: "migration".into(),
        }];
        let intents = step(
            std::slice::from_ref(&tholen),
            &none,
            &existing,
            "2026-05-01T00:00:05+02:00",
        );
        let (n, april) = final_of(&intents, "tholen-2026-04", "RG-2026-000002");
        assert_eq!(sum(&corrections_on(&april)), Decimal::from(1000));
        existing.insert(n, april);
        tholen.orders.clear();
        let intents = step(
            std::slice::from_ref(&tholen),
            &none,
            &existing,
            "2026-05-10T00:00:00+02:00",
        );
        let may = draft_of(&intents, "tholen-2026-05");
        assert_eq!(
            sum(&corrections_on(&may)),
            Decimal::from(-1000),
            "the order deleted is credited: {may:#?}"
        );
    }

    /// March billed exempt, its PriceList's treatment fixed to S 21% afterwards: same amounts,
    /// so only the VAT differs. April credits March at E and bills it anew at S; May, with
    /// April final, has nothing left to correct.
    #[test]
    fn a_change_of_vat_alone_is_corrected_once() {
        let tenants = [tenant(vec![(Month::new(2026, 3), march())])];
        let mut existing = BTreeMap::new();
        let intents = run(&tenants, &existing, Scope::All, "2026-04-02T00:00:00Z");
        let (n, mut s) = spec_of(&intents[0], Some("RG-2026-000001"));
        for l in &mut s.lines {
            l.vat_category = Some("E".into());
            l.vat_percent = Some("0".into());
            l.vat_exemption_reason = Some("Article 11 Wet OB".into());
        }
        let march_lines = s.lines.len();
        existing.insert(n, s);
        let intents = run(&tenants, &existing, Scope::All, "2026-05-01T00:00:05+02:00");
        let (n, april) = spec_of(&intents[0], Some("RG-2026-000002"));
        assert_eq!(n, "tholen-2026-04");
        let corr = corrections_on(&april);
        assert_eq!(corr.len(), 2 * march_lines, "{corr:#?}");
        let at = |cat: &str| -> Decimal {
            corr.iter()
                .filter(|l| l.vat_category.as_deref() == Some(cat))
                .map(|l| Decimal::from_str_exact(&l.amount).unwrap())
                .sum()
        };
        // 3661.04 credited exempt, billed anew at 21%: 768.82 VAT more.
        assert_eq!(at("E"), Decimal::from_str_exact("-3661.04").unwrap());
        assert_eq!(at("S"), Decimal::from_str_exact("3661.04").unwrap());
        existing.insert(n, april);
        let intents = run(&tenants, &existing, Scope::All, "2026-05-01T00:00:05+02:00");
        let (n, may) = spec_of(&intents[0], None);
        assert_eq!(n, "tholen-2026-05");
        assert!(
            may.lines.iter().all(|l| l.kind != "correction"),
            "corrected once: {may:#?}"
        );
    }

    #[test]
    fn a_leaving_tenant_gets_its_current_period_final() {
        let mut segs = march();
        segs[2].to = Some("2026-03-25T12:00:00+01:00".into());
        let tenants = [tenant(vec![(Month::new(2026, 3), segs)])];
        let intents = run(
            &tenants,
            &BTreeMap::new(),
            Scope::Leaving("tholen".into(), t("2026-03-25T11:00:00Z")),
            "2026-03-25T11:00:00Z",
        );
        assert_eq!(intents.len(), 1);
        assert!(matches!(intents[0], Intent::Final { .. }));
        let (_, s) = spec_of(&intents[0], None);
        assert!(
            s.lines
                .iter()
                .all(|l| t(&l.to) <= t("2026-03-25T12:00:00+01:00")),
            "{s:#?}"
        );
        let others = run(
            &tenants,
            &BTreeMap::new(),
            Scope::Leaving("other".into(), t("2026-03-25T11:00:00Z")),
            "2026-03-25T11:00:00Z",
        );
        assert!(others.is_empty());
    }

    /// Offboarding that runs past a month end: the Tenant was deleted on 31 March at 23:59:40
    /// (its ledger closed then), its namespace still terminating at 1 April 00:00:05 when the
    /// finalizer's pass runs again. March is its last invoice, up to 23:59:40; there is no
    /// April invoice (it was a final one with 5 seconds of accounts, and any pool instalment due
    /// on 1 April, before).
    #[test]
    fn offboarding_past_a_month_end_bills_nothing_of_the_next_month() {
        let mut segs = march();
        segs[2].to = Some("2026-03-31T23:59:40+02:00".into());
        let tenants = [tenant(vec![(Month::new(2026, 3), segs)])];
        let left = t("2026-03-31T23:59:40+02:00");
        let intents = run(
            &tenants,
            &BTreeMap::new(),
            Scope::Leaving("tholen".into(), left),
            "2026-04-01T00:00:05+02:00",
        );
        let names: Vec<_> = intents.iter().map(|i| spec_of(i, None).0).collect();
        assert_eq!(names, ["tholen-2026-03"], "{intents:#?}");
        assert!(matches!(intents[0], Intent::Final { .. }));
        let (_, march) = spec_of(&intents[0], None);
        assert!(march.lines.iter().all(|l| t(&l.to) <= left), "{march:#?}");
        // 240 h bronze 100, 240 h silver 100 and 263 h less 20 s silver 120 of March's 743 h:
        // 969.04 + 1162.85 + 4320.00 × 946 780 / 2 674 800 (1529.12) = 3661.01.
        assert_eq!(march.subtotal, "3661.01", "{march:#?}");
    }

    /// A tenant that leaves, comes back under the same name and leaves again within one month:
    /// the month's invoice became final at the first departure, and the second stay — priced
    /// as a correction of it — had no open invoice to go on once the tenant was gone, so it
    /// was never billed. It now goes on a closing invoice of its own, once; the two together
    /// bill what the month's ledger holds.
    #[test]
    fn a_tenant_back_and_gone_again_in_a_final_month_is_billed_for_its_second_stay() {
        let first = seg(
            "2026-03-01T00:00:00+01:00",
            Some("2026-03-10T00:00:00+01:00"),
            "silver",
            120,
        );
        let second = seg(
            "2026-03-15T00:00:00+01:00",
            Some("2026-03-20T00:00:00+01:00"),
            "silver",
            120,
        );
        let stays = |segments: Vec<Segment>| [tenant(vec![(Month::new(2026, 3), segments)])];
        let mut existing = BTreeMap::new();
        let left = t("2026-03-10T00:00:00+01:00");
        let intents = run(
            &stays(vec![first.clone()]),
            &existing,
            Scope::Leaving("tholen".into(), left),
            "2026-03-10T00:00:00+01:00",
        );
        assert_eq!(intents.len(), 1, "{intents:#?}");
        let (name, march) = spec_of(&intents[0], Some("RG-2026-000001"));
        assert_eq!(name, "tholen-2026-03");
        existing.insert(name, march.clone());

        let both = stays(vec![first.clone(), second.clone()]);
        let left_again = t("2026-03-20T00:00:00+01:00");
        let intents = run(
            &both,
            &existing,
            Scope::Leaving("tholen".into(), left_again),
            "2026-03-20T00:00:00+01:00",
        );
        assert_eq!(intents.len(), 1, "{intents:#?}");
        assert!(matches!(intents[0], Intent::Final { .. }), "{intents:#?}");
        let (name, closing) = spec_of(&intents[0], Some("RG-2026-000002"));
        assert_eq!(name, "tholen-2026-03-c1");
        assert_eq!(closing.period, "2026-03");
        assert!(
            closing.lines.iter().all(|l| l.kind == "correction"
                && l.description
                    .starts_with("Correction of invoice RG-2026-000001 (2026-03): ")),
            "{closing:#?}"
        );
        // 120 accounts at 36.00 a month (4,320.00): 216 of March's 743 hours, then 120 more.
        assert_eq!(march.subtotal, "1255.88", "{march:#?}");
        assert_eq!(closing.subtotal, "697.71", "{closing:#?}");
        let whole = run(
            &both,
            &BTreeMap::new(),
            Scope::Leaving("tholen".into(), left_again),
            "2026-03-20T00:00:00+01:00",
        );
        let (_, whole) = spec_of(&whole[0], None);
        let sum = dec(&march.subtotal, "march").unwrap() + dec(&closing.subtotal, "c1").unwrap();
        assert_eq!(sum, dec(&whole.subtotal, "whole").unwrap());

        // Its offboarding runs again (a retry, a restart): the stay is billed, nothing more;
        // nor is a change found while it leaves (an SLA credit moving while the namespace
        // goes) a closing invoice of its own: the ledger holds no stay the invoices did not
        // bill.
        existing.insert(name, closing);
        let again = run(
            &both,
            &existing,
            Scope::Leaving("tholen".into(), left_again),
            "2026-03-20T00:00:00+01:00",
        );
        assert!(again.is_empty(), "{again:#?}");
        let mut changed = vec![first.clone(), second.clone()];
        changed[0].accounts.insert("standard".into(), 121);
        changed[1].accounts.insert("standard".into(), 121);
        let again = run(
            &stays(changed),
            &existing,
            Scope::Leaving("tholen".into(), left_again),
            "2026-03-20T00:00:00+01:00",
        );
        assert!(again.is_empty(), "{again:#?}");

        // Back with `membership.joined` set to its return: read as a correction of the
        // membership, the first stay is credited (as the next invoice of a tenant that stays
        // would credit it; docs/billing.md asks to keep `joined`).
        let mut rejoined = stays(vec![first.clone(), second.clone()]);
        rejoined[0].joined = date(2026, 3, 15);
        let mut first_only = BTreeMap::new();
        first_only.insert("tholen-2026-03".to_string(), march.clone());
        let intents = run(
            &rejoined,
            &first_only,
            Scope::Leaving("tholen".into(), left_again),
            "2026-03-20T00:00:00+01:00",
        );
        assert_eq!(intents.len(), 1, "{intents:#?}");
        let (_, closing) = spec_of(&intents[0], None);
        assert_eq!(
            closing.subtotal, "-558.17",
            "697.71 - 1255.88: {closing:#?}"
        );
    }

    /// Stays: one, and one more for each return — a segment beginning where the one before
    /// did not end, but for a month's end followed by a later month's start (a month without a
    /// ledger, or one left open, is no departure).
    #[test]
    fn a_ledger_counts_its_stays() {
        let cal = catalogue().cal;
        let s = |from: &str, to: Option<&str>| seg(from, to, "silver", 1);
        let (march, april) = (Month::new(2026, 3), Month::new(2026, 4));
        let one = [
            s(
                "2026-03-01T00:00:00+01:00",
                Some("2026-03-05T00:00:00+01:00"),
            ),
            s(
                "2026-03-05T00:00:00+01:00",
                Some("2026-04-01T00:00:00+02:00"),
            ),
        ];
        let april_on = [s("2026-04-01T00:00:00+02:00", None)];
        assert_eq!(
            ledger_stays(
                [(march, &one[..]), (april, &april_on[..])].into_iter(),
                &cal
            ),
            1
        );
        let two = [
            s(
                "2026-03-01T00:00:00+01:00",
                Some("2026-03-10T00:00:00+01:00"),
            ),
            s("2026-03-10T00:00:05+01:00", None),
        ];
        assert_eq!(ledger_stays([(march, &two[..])].into_iter(), &cal), 2);
        // Left on 20 March, back on 3 April.
        let left = [s(
            "2026-03-01T00:00:00+01:00",
            Some("2026-03-20T00:00:00+01:00"),
        )];
        let back = [s("2026-04-03T00:00:00+02:00", None)];
        assert_eq!(
            ledger_stays([(march, &left[..]), (april, &back[..])].into_iter(), &cal),
            2
        );
        // January, then no ledger in February (regie was down), then March: one stay.
        let january = [s(
            "2026-01-01T00:00:00+01:00",
            Some("2026-02-01T00:00:00+01:00"),
        )];
        let march_on = [s("2026-03-01T00:00:00+01:00", None)];
        assert_eq!(
            ledger_stays(
                [(Month::new(2026, 1), &january[..]), (march, &march_on[..])].into_iter(),
                &cal
            ),
            1
        );
        // An older month left open, the next begun later: one stay.
        let open = [s("2026-03-01T00:00:00+01:00", None)];
        assert_eq!(
            ledger_stays([(march, &open[..]), (april, &back[..])].into_iter(), &cal),
            1
        );
        // Left at April's first instant (March closed at its end, April empty), back on 3
        // April: two stays.
        assert_eq!(
            ledger_stays([(march, &one[..]), (april, &back[..])].into_iter(), &cal),
            2
        );
        assert_eq!(ledger_stays(std::iter::empty(), &cal), 0);
    }

    /// The closing invoice is settled through its period's own: a tenant back a third time,
    /// invoiced by quarter now, is not billed for March again on its quarter's invoice (the
    /// closing invoice counted as a March final of its own that billed nothing).
    #[test]
    fn a_closing_invoice_is_not_a_period_billed_of_its_own() {
        let whole = |from: &str, to: &str| seg(from, Some(to), "silver", 120);
        let mut existing = BTreeMap::new();
        let mut numbered = 0;
        let mut keep = |intents: &[Intent], existing: &mut BTreeMap<String, InvoiceSpec>| {
            for i in intents {
                numbered += 1;
                let (n, s) = spec_of(i, Some(&format!("RG-2026-{numbered:06}")));
                existing.insert(n, s);
            }
        };
        let first = vec![
            (
                Month::new(2026, 1),
                vec![whole(
                    "2026-01-01T00:00:00+01:00",
                    "2026-02-01T00:00:00+01:00",
                )],
            ),
            (
                Month::new(2026, 2),
                vec![whole(
                    "2026-02-01T00:00:00+01:00",
                    "2026-03-01T00:00:00+01:00",
                )],
            ),
            (
                Month::new(2026, 3),
                vec![whole(
                    "2026-03-01T00:00:00+01:00",
                    "2026-03-10T00:00:00+01:00",
                )],
            ),
        ];
        let intents = run(
            &[tenant(first.clone())],
            &existing,
            Scope::Leaving("tholen".into(), t("2026-03-10T00:00:00+01:00")),
            "2026-03-10T00:00:00+01:00",
        );
        assert_eq!(intents.len(), 3, "{intents:#?}");
        keep(&intents, &mut existing);
        let mut second = first.clone();
        second[2].1.push(whole(
            "2026-03-15T00:00:00+01:00",
            "2026-03-20T00:00:00+01:00",
        ));
        let intents = run(
            &[tenant(second.clone())],
            &existing,
            Scope::Leaving("tholen".into(), t("2026-03-20T00:00:00+01:00")),
            "2026-03-20T00:00:00+01:00",
        );
        assert_eq!(intents.len(), 1, "{intents:#?}");
        keep(&intents, &mut existing);
        assert!(existing.contains_key("tholen-2026-03-c1"));
        let mut third = second;
        third.push((
            Month::new(2026, 4),
            vec![seg("2026-04-01T00:00:00+02:00", None, "silver", 120)],
        ));
        let mut quarterly = tenant(third);
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(&[quarterly], &existing, Scope::All, "2026-04-10T00:00:00Z");
        let specs: BTreeMap<String, InvoiceSpec> =
            intents.iter().map(|i| spec_of(i, None)).collect();
        // The first quarter was invoiced by its months (and March's closing invoice).
        assert_eq!(specs.keys().collect::<Vec<_>>(), ["tholen-2026-q2"]);
        let q2 = &specs["tholen-2026-q2"];
        assert!(q2.lines.iter().all(|l| l.kind != "correction"), "{q2:#?}");
    }

    #[test]
    fn closing_invoices_are_delivered_under_ids_of_their_own() {
        let spec = stored_spec(InvoiceState::Final, "300.00");
        let base = invoice_name(&spec.tenant, &spec.period);
        assert_eq!(event_version(&base, &spec), 1);
        assert_eq!(event_version(&format!("{base}-c1"), &spec), 2);
        assert_eq!(event_version(&format!("{base}-c12"), &spec), 13);
        for other in ["-c01", "-c0", "-cx", "-c", "x"] {
            assert_eq!(
                event_version(&format!("{base}{other}"), &spec),
                1,
                "{other}"
            );
        }
    }

    /// ICT West-Brabant West's €650,000 i-programme 2025, equal shares over five, quarterly
    /// (32,500.00 each a quarter). Q4 2025 is final for all five when Tholen leaves on 15
    /// January 2026 and its Tenant is deleted. Priced again in January over the four left, the
    /// pool gave each of them 40,625.00 for Q4: +8,125.00 corrections on four January
    /// invoices, €682,500 collected. Tholen, a departed member until 15 January, keeps the pool
    /// as it was: no correction. Its offboarding pass is what records it as such.
    #[test]
    fn a_departed_tenant_stays_a_member_of_the_pools_it_was_in() {
        let list: PriceList = serde_yaml::from_str(
            r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: p}
spec:
  currency: EUR
  effectiveFrom: "2025-01-01"
  vat: {category: S, percent: "21"}
  rates:
    - {item: account, profile: standard, serviceLevel: silver, per: month, amount: "36.00"}
"#,
        )
        .unwrap();
        let pool: regie_crds::CostPool = serde_yaml::from_str(
            r#"
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {name: i-programme-2025}
spec:
  description: Joint i-programme 2025
  amount: "650000.00"
  from: "2025-01-01"
  until: "2025-12-31"
  allocation: equalShares
  tenantSelector: {matchLabels: {regie.dev/organisation: ict-wbw}}
  instalments: quarterly
"#,
        )
        .unwrap();
        let cat = || {
            crate::billing::engine::catalogue(
                std::slice::from_ref(&list),
                [&pool],
                Calendar::amsterdam().unwrap(),
            )
            .unwrap()
        };
        let five: Vec<TenantInput> = [
            "etten-leur",
            "moerdijk",
            "roosendaal",
            "tholen",
            "werkplein",
        ]
        .into_iter()
        .map(|name| {
            let mut t = tenant(vec![(
                Month::new(2025, 10),
                vec![seg("2025-10-01T00:00:00+02:00", None, "silver", 120)],
            )]);
            t.name = name.into();
            t.labels = BTreeMap::from([("regie.dev/organisation".into(), "ict-wbw".into())]);
            t
        })
        .collect();
        let step = |cat: &Catalogue,
                    tenants: &[TenantInput],
                    existing: &BTreeMap<String, InvoiceSpec>,
                    scope: &Scope,
                    now: &str| {
            plan(
                cat,
                tenants,
                &Credits::new(),
                existing,
                &BTreeSet::new(),
                scope,
                t(now),
                false,
            )
            .unwrap()
        };
        // 2 January 2026: Q4 2025 becomes final for all five, each with 32,500.00 of the pool.
        let mut existing = BTreeMap::new();
        let intents = step(
            &cat(),
            &five,
            &existing,
            &Scope::All,
            "2026-01-02T10:00:00+01:00",
        );
        let mut seq = 0;
        for i in &intents {
            if let Intent::Final { name, .. } = i {
                seq += 1;
                let (n, spec) = spec_of(i, Some(&format!("RG-2026-{seq:06}")));
                if n.ends_with("2025-10") {
                    let pool_lines: Vec<_> =
                        spec.lines.iter().filter(|l| l.kind == "pool").collect();
                    assert_eq!(pool_lines.len(), 1, "{name}: {spec:#?}");
                    assert_eq!(pool_lines[0].amount, "32500.00", "{name}");
                }
                existing.insert(n, spec);
            }
        }
        assert_eq!(seq, 15, "October to December of five: {intents:#?}");
        // 15 January, 10:00: Tholen leaves; its offboarding pass records it as a member until
        // that day.
        let leaving = step(
            &cat(),
            &five,
            &existing,
            &Scope::Leaving("tholen".into(), t("2026-01-15T10:00:00+01:00")),
            "2026-01-15T10:00:05+01:00",
        );
        let member = leaving
            .iter()
            .find_map(|i| match i {
                Intent::Final { name, member, .. } if name == "tholen-2026-01" => member.clone(),
                _ => None,
            })
            .unwrap_or_else(|| panic!("tholen's final January names it: {leaving:#?}"));
        assert_eq!(member.tenant, "tholen");
        assert_eq!(member.leaves, Some(date(2026, 1, 15)));
        // Its Tenant is gone: the four are priced again.
        let four: Vec<TenantInput> = five
            .iter()
            .filter(|t| t.name != "tholen")
            .cloned()
            .collect();
        let correction = |cat: &Catalogue| -> Decimal {
            step(
                cat,
                &four,
                &existing,
                &Scope::All,
                "2026-01-20T10:00:00+01:00",
            )
            .iter()
            .filter_map(|i| match i {
                Intent::Draft { invoice, .. } => Some(invoice),
                _ => None,
            })
            .flat_map(|inv| inv.lines.iter().filter(|l| l.kind == LineKind::Correction))
            .map(|l| l.amount)
            .sum()
        };
        assert_eq!(
            correction(&cat()),
            Decimal::from(4 * 8125),
            "without it, Q4 is shared over four (the defect)"
        );
        let mut with_tholen = cat();
        with_tholen.departed = vec![*member];
        assert_eq!(
            correction(&with_tholen),
            Decimal::ZERO,
            "the pool stays as it was"
        );
    }

    /// Departed members are read from the annotation of final invoices of tenants that are
    /// gone; one that does not read is an error naming the invoice and the annotation.
    #[test]
    fn departed_members_come_from_final_invoices_of_tenants_gone() {
        let member = Member {
            tenant: "tholen".into(),
            labels: BTreeMap::from([("regie.dev/organisation".into(), "ict-wbw".into())]),
            joined: date(2024, 1, 1),
            leaves: Some(date(2026, 1, 15)),
            inhabitants: 26_000,
            accounts: 120,
        };
        let annotated = |text: &str| {
            let mut o = in_cluster(stored_spec(InvoiceState::Final, "300.00"));
            o.metadata.annotations = Some(BTreeMap::from([(
                MEMBER_ANNOTATION.to_string(),
                text.to_string(),
            )]));
            kept_invoice(o)
        };
        let good = annotated(&serde_json::to_string(&member).unwrap());
        let none: HashSet<&str> = HashSet::new();
        assert_eq!(
            departed_members([&good], &none).unwrap(),
            std::slice::from_ref(&member)
        );
        // Back (joined anew) and gone again: a member from its first joining to its last
        // leaving, whichever invoice comes first.
        let again = annotated(
            &serde_json::to_string(&Member {
                joined: date(2026, 1, 20),
                leaves: Some(date(2026, 1, 25)),
                ..member.clone()
            })
            .unwrap(),
        );
        let whole = Member {
            leaves: Some(date(2026, 1, 25)),
            ..member.clone()
        };
        for order in [[&good, &again], [&again, &good]] {
            assert_eq!(
                departed_members(order, &none).unwrap(),
                std::slice::from_ref(&whole)
            );
        }
        let still_there: HashSet<&str> = HashSet::from(["tholen"]);
        assert!(departed_members([&good], &still_there).unwrap().is_empty());
        let e = departed_members([&annotated("{")], &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Invoice/tholen-2026-03") && e.contains(MEMBER_ANNOTATION),
            "{e}"
        );
    }

    /// A quarterly tenant's final invoice on leaving ends when it leaves: the rest of the
    /// quarter has no Usage, and its files must not fill it.
    #[test]
    fn a_quarterly_tenant_leaving_is_billed_until_it_leaves() {
        let mut quarterly = tenant(vec![
            (
                Month::new(2026, 4),
                vec![seg(
                    "2026-04-01T00:00:00+02:00",
                    Some("2026-05-01T00:00:00+02:00"),
                    "silver",
                    120,
                )],
            ),
            (
                Month::new(2026, 5),
                vec![seg(
                    "2026-05-01T00:00:00+02:00",
                    Some("2026-05-15T12:00:00+02:00"),
                    "silver",
                    120,
                )],
            ),
        ]);
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(
            &[quarterly],
            &BTreeMap::new(),
            Scope::Leaving("tholen".into(), t("2026-05-15T10:00:00Z")),
            "2026-05-15T10:00:00Z",
        );
        assert_eq!(intents.len(), 1, "{intents:#?}");
        assert!(matches!(intents[0], Intent::Final { .. }));
        let (name, s) = spec_of(&intents[0], None);
        assert_eq!(name, "tholen-2026-q2");
        assert!(
            s.lines
                .iter()
                .all(|l| t(&l.to) <= t("2026-05-15T10:00:00Z")),
            "{s:#?}"
        );
        // April whole (120 × 36.00) and 14.5 of May's 31 days.
        assert_eq!(s.subtotal, "6340.65");
    }

    /// A tenant that left on 10 April and came back on 15 June has no ledger for May: it was
    /// away, not metered by no regie. May's usage is billed to it neither on a month's invoice
    /// of its own nor in the quarter (both were billed from its files, as if it had stayed); a
    /// cost pool's share follows its membership, which a stay away does not end.
    #[test]
    fn a_month_away_between_two_stays_is_not_billed() {
        let away = || {
            tenant(vec![
                (
                    Month::new(2026, 4),
                    vec![seg(
                        "2026-04-01T00:00:00+02:00",
                        Some("2026-04-10T00:00:00+02:00"),
                        "silver",
                        120,
                    )],
                ),
                (
                    Month::new(2026, 6),
                    vec![seg("2026-06-15T00:00:00+02:00", None, "silver", 120)],
                ),
            ])
        };
        // (invoice, subtotal) of each invoice planned for `tenant` at `now`.
        let billed = |tenant: TenantInput, now: &str| -> Vec<(String, String)> {
            run(&[tenant], &BTreeMap::new(), Scope::All, now)
                .iter()
                .map(|i| spec_of(i, None))
                .map(|(name, s)| (name, s.subtotal))
                .collect()
        };
        let owed = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect()
        };
        let now = "2026-06-20T10:00:00Z";
        // April: 9 of its 30 days, 120 × 36.00 × 9/30; June a draft to its end, 16 of 30 days.
        assert_eq!(
            billed(away(), now),
            owed(&[("tholen-2026-04", "1296.00"), ("tholen-2026-06", "2304.00")])
        );
        let mut quarterly = away();
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(&[quarterly], &BTreeMap::new(), Scope::All, now);
        let (name, s) = spec_of(&intents[0], None);
        assert_eq!(name, "tholen-2026-q2");
        assert_eq!(s.subtotal, "3600.00", "{s:#?}");
        assert!(
            s.lines
                .iter()
                .all(|l| t(&l.to) <= t("2026-04-10T00:00:00+02:00")
                    || t(&l.from) >= t("2026-06-15T00:00:00+02:00")),
            "{s:#?}"
        );
        // May ended empty at the deletion (opened by a reconcile that read the tenant before
        // it was deleted), July without a ledger after June's stay ended on the 20th.
        let mut emptied = away();
        emptied.usage.insert(Month::new(2026, 5), vec![]);
        emptied.left_empty.insert(Month::new(2026, 5));
        emptied.usage.get_mut(&Month::new(2026, 6)).unwrap()[0].to =
            Some("2026-06-20T00:00:00+02:00".into());
        assert_eq!(
            billed(emptied, "2026-08-02T10:00:00Z"),
            owed(&[("tholen-2026-04", "1296.00"), ("tholen-2026-06", "720.00")])
        );
        // Deleted at May's first instant: April closed at its end, May empty. Back on 15 July;
        // June is a month away too.
        let mut at_first_instant = away();
        at_first_instant.usage = BTreeMap::from([
            (
                Month::new(2026, 4),
                vec![seg(
                    "2026-04-01T00:00:00+02:00",
                    Some("2026-05-01T00:00:00+02:00"),
                    "silver",
                    120,
                )],
            ),
            (Month::new(2026, 5), vec![]),
            (
                Month::new(2026, 7),
                vec![seg("2026-07-15T00:00:00+02:00", None, "silver", 120)],
            ),
        ]);
        at_first_instant.left_empty.insert(Month::new(2026, 5));
        // April whole; July a draft from the 15th to its end, 17 of 31 days.
        assert_eq!(
            billed(at_first_instant.clone(), "2026-07-20T10:00:00Z"),
            owed(&[("tholen-2026-04", "4320.00"), ("tholen-2026-07", "2369.03")])
        );
        // May's Usage created and its ledger never written (regie stopped between the two
        // writes, and down until July): no departure, May and June are billed from the files.
        let mut not_written = at_first_instant;
        not_written.left_empty.clear();
        assert_eq!(
            billed(not_written, "2026-07-20T10:00:00Z"),
            owed(&[
                ("tholen-2026-04", "4320.00"),
                ("tholen-2026-05", "4320.00"),
                ("tholen-2026-06", "4320.00"),
                ("tholen-2026-07", "2369.03")
            ])
        );
    }

    /// Metering that starts in the last month of a quarter bills nothing of the quarter before
    /// it: the files are not the record of months already past.
    #[test]
    fn nothing_of_a_quarter_is_billed_before_metering_started() {
        let mut quarterly = tenant(vec![(
            Month::new(2026, 3),
            vec![seg("2026-03-10T00:00:00+01:00", None, "silver", 120)],
        )]);
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(
            &[quarterly],
            &BTreeMap::new(),
            Scope::All,
            "2026-03-20T10:00:00Z",
        );
        let (name, s) = spec_of(&intents[0], None);
        assert_eq!(name, "tholen-2026-q1");
        assert!(!s.lines.is_empty());
        assert!(
            s.lines
                .iter()
                .all(|l| t(&l.from) >= t("2026-03-10T00:00:00+01:00")),
            "{s:#?}"
        );
    }

    #[test]
    fn a_draft_no_longer_billed_is_dropped() {
        let tenants = [tenant(vec![(Month::new(2026, 3), march())])];
        let intents = run(
            &tenants,
            &BTreeMap::new(),
            Scope::All,
            "2026-03-25T10:00:00Z",
        );
        let (name, spec) = spec_of(&intents[0], None);
        let existing = BTreeMap::from([(name, spec)]);
        // The tenant is now invoiced quarterly: the monthly draft goes, the quarter's comes.
        let mut quarterly = tenant(vec![(Month::new(2026, 3), march())]);
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(&[quarterly], &existing, Scope::All, "2026-03-25T10:00:00Z");
        assert!(intents.contains(&Intent::Obsolete {
            name: "tholen-2026-03".into()
        }));
        assert!(
            intents
                .iter()
                .any(|i| matches!(i, Intent::Draft { name, .. } if name == "tholen-2026-q1"))
        );
    }

    #[test]
    fn a_change_of_invoicing_period_never_bills_twice() {
        // Monthly until April is final; then quarterly from mid-May.
        let april = vec![seg(
            "2026-04-01T00:00:00+02:00",
            Some("2026-05-01T00:00:00+02:00"),
            "silver",
            120,
        )];
        let tenants = [tenant(vec![(Month::new(2026, 4), april.clone())])];
        let intents = run(
            &tenants,
            &BTreeMap::new(),
            Scope::All,
            "2026-05-01T00:00:05+02:00",
        );
        let (n, s) = spec_of(&intents[0], Some("RG-2026-000001"));
        assert_eq!(n, "tholen-2026-04");
        let april_total = s.subtotal.clone();
        let existing = BTreeMap::from([(n, s)]);
        let mut quarterly = tenant(vec![
            (Month::new(2026, 4), april.clone()),
            (
                Month::new(2026, 5),
                vec![seg("2026-05-01T00:00:00+02:00", None, "silver", 120)],
            ),
        ]);
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(
            &[quarterly.clone()],
            &existing,
            Scope::All,
            "2026-05-15T10:00:00Z",
        );
        let q2: Vec<_> = intents
            .iter()
            .filter(|i| matches!(i, Intent::Draft { name, .. } if name == "tholen-2026-q2"))
            .collect();
        assert_eq!(q2.len(), 1, "{intents:#?}");
        let (_, spec) = spec_of(q2[0], None);
        // The quarter at 120 silver accounts, less what April's invoice billed.
        let invoiced = corrections_on(&spec);
        assert_eq!(invoiced.len(), 1, "{spec:#?}");
        assert_eq!(invoiced[0].amount, "-4320.00");
        assert!(
            invoiced[0]
                .description
                .starts_with("Invoiced on RG-2026-000001 (2026-04)")
        );
        assert_eq!(spec.subtotal, "8640.00");
        assert_eq!(april_total, "4320.00");
        // A late change to April is corrected on the quarter, once.
        let mut late = april;
        late[0].accounts.insert("standard".into(), 121);
        quarterly.usage.insert(Month::new(2026, 4), late);
        let intents = run(&[quarterly], &existing, Scope::All, "2026-05-15T10:00:00Z");
        let (_, spec) = spec_of(
            intents
                .iter()
                .find(|i| matches!(i, Intent::Draft { name, .. } if name == "tholen-2026-q2"))
                .unwrap(),
            None,
        );
        let corr: Vec<_> = spec
            .lines
            .iter()
            .filter(|l| {
                l.description
                    .starts_with("Correction of invoice RG-2026-000001")
            })
            .collect();
        assert_eq!(corr.len(), 1, "{spec:#?}");
        assert_eq!(corr[0].amount, "36.00");
        // 8640.00 for May and June plus one account more in April.
        assert_eq!(spec.subtotal, "8676.00");
    }

    /// The quarter of a change of invoicing period is final, April's final inside it taken
    /// off; a later change to April is corrected once — on April's account — and not once more
    /// on the quarter's (whose "Invoiced on" lines follow April as it bills now).
    #[test]
    fn a_late_change_to_a_month_taken_off_a_final_quarter_is_corrected_once() {
        let april = vec![seg(
            "2026-04-01T00:00:00+02:00",
            Some("2026-05-01T00:00:00+02:00"),
            "silver",
            120,
        )];
        let intents = run(
            &[tenant(vec![(Month::new(2026, 4), april.clone())])],
            &BTreeMap::new(),
            Scope::All,
            "2026-05-01T00:00:05+02:00",
        );
        let (n, s) = spec_of(&intents[0], Some("RG-2026-000001"));
        let mut existing = BTreeMap::from([(n, s)]);
        let mut quarterly = tenant(vec![
            (Month::new(2026, 4), april.clone()),
            (
                Month::new(2026, 5),
                vec![seg("2026-05-01T00:00:00+02:00", None, "silver", 120)],
            ),
        ]);
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(
            &[quarterly.clone()],
            &existing,
            Scope::All,
            "2026-07-01T00:00:05+02:00",
        );
        let q2 = intents
            .iter()
            .find(|i| matches!(i, Intent::Final { name, .. } if name == "tholen-2026-q2"))
            .expect("the quarter final");
        let (n, s) = spec_of(q2, Some("RG-2026-000002"));
        assert_eq!(s.subtotal, "8640.00");
        existing.insert(n, s);
        let mut late = april;
        late[0].accounts.insert("standard".into(), 121);
        quarterly.usage.insert(Month::new(2026, 4), late);
        // The draft after July's pass, and the sum of its corrections.
        let corrected = |t: TenantInput| {
            let intents = run(&[t], &existing, Scope::All, "2026-07-10T00:00:00Z");
            let draft = intents
                .iter()
                .find(|i| matches!(i, Intent::Draft { .. }))
                .expect("a draft");
            let (n, spec) = spec_of(draft, None);
            let sum: Decimal = corrections_on(&spec)
                .iter()
                .map(|l| l.amount.parse::<Decimal>().expect("an amount"))
                .sum();
            (n, sum)
        };
        // Back to monthly from July: the quarter is then one of the finals of another period.
        let mut monthly = quarterly.clone();
        monthly.invoicing = regie_crds::tenancy::InvoicingPeriod::Monthly;
        let once = Decimal::new(3600, 2);
        assert_eq!(corrected(monthly), ("tholen-2026-07".to_string(), once));
        assert_eq!(corrected(quarterly), ("tholen-2026-q3".to_string(), once));
    }

    #[test]
    fn a_quarter_invoiced_monthly_is_not_invoiced_again_as_a_quarter() {
        // January to March final monthly; the tenant is invoiced quarterly from April.
        let month = |m: i8| {
            let from = format!("2026-{m:02}-01T00:00:00+01:00");
            let to = match m {
                3 => "2026-04-01T00:00:00+02:00".to_string(),
                _ => format!("2026-{:02}-01T00:00:00+01:00", m + 1),
            };
            (
                Month::new(2026, m),
                vec![seg(&from, Some(&to), "silver", 120)],
            )
        };
        let monthly = tenant(vec![month(1), month(2), month(3)]);
        let mut existing = BTreeMap::new();
        for (i, now) in [
            "2026-02-01T00:00:05+01:00",
            "2026-03-01T00:00:05+01:00",
            "2026-04-01T00:00:05+02:00",
        ]
        .into_iter()
        .enumerate()
        {
            let intents = run(std::slice::from_ref(&monthly), &existing, Scope::All, now);
            for intent in &intents {
                if let Intent::Final { .. } = intent {
                    let (n, s) = spec_of(intent, Some(&format!("RG-2026-{:06}", i + 1)));
                    existing.insert(n, s);
                }
            }
        }
        assert_eq!(existing.len(), 3, "{:?}", existing.keys());
        let mut quarterly = monthly;
        quarterly.invoicing = regie_crds::tenancy::InvoicingPeriod::Quarterly;
        let intents = run(&[quarterly], &existing, Scope::All, "2026-04-10T10:00:00Z");
        assert!(
            intents
                .iter()
                .all(|i| !matches!(i, Intent::Final { name, .. } | Intent::Draft { name, .. } if name == "tholen-2026-q1")),
            "{intents:#?}"
        );
    }

    #[tokio::test]
    async fn a_pass_prices_on_a_thread_of_lower_priority() {
        let own = || {
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                .expect("own priority")
        };
        let before = own();
        let nice = in_background(|| {
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                .expect("own priority")
        })
        .await
        .expect("the thread ran");
        assert!(nice >= PRICING_NICENESS, "nice {nice}");
        // The caller's thread keeps its own.
        assert_eq!(own(), before);
    }

    #[test]
    fn names_are_lower_case() {
        assert_eq!(invoice_name("werkplein", "2026-Q1"), "werkplein-2026-q1");
        assert_eq!(next_seq(&["RG-2026-000007".into()], 2026), 8);
        assert_eq!(next_seq(&[], 2026), 1);
    }

    fn stored_spec(state: InvoiceState, amount: &str) -> InvoiceSpec {
        InvoiceSpec {
            tenant: "tholen".into(),
            period: "2026-03".into(),
            number: (state == InvoiceState::Final).then(|| "RG-2026-000001".into()),
            state,
            currency: "EUR".into(),
            lines: vec![InvoiceLine {
                kind: "account".into(),
                description: "Werkplek standard (bronze)".into(),
                quantity: "10".into(),
                unit: "account-month".into(),
                unit_price: "30.00".into(),
                amount: amount.into(),
                from: "2026-03-01T00:00:00+01:00".into(),
                to: "2026-04-01T00:00:00+02:00".into(),
                vat_category: None,
                vat_percent: None,
                vat_exemption_reason: None,
            }],
            subtotal: amount.into(),
            vat: "0.00".into(),
            total: amount.into(),
        }
    }

    fn in_cluster(spec: InvoiceSpec) -> InvoiceObject {
        let mut o = new_object("tholen-2026-03", spec);
        o.metadata.resource_version = Some("41".into());
        o.metadata.uid = Some("u-1".into());
        o
    }

    #[test]
    fn a_cached_draft_keeps_only_a_digest_and_its_period_and_still_tells_a_change() {
        let spec = stored_spec(InvoiceState::Draft, "300.00");
        let stored = kept_invoice(in_cluster(spec.clone()));
        assert!(matches!(stored.held, Held::Draft { .. }));
        assert!(stored.extra.is_none(), "regie's own label is not kept");
        assert!(stored.holds(&spec));
        assert_eq!(
            (stored.tenant(), stored.state(), stored.number()),
            ("tholen", InvoiceState::Draft, None)
        );
        // What a pass reads of it: tenant, period and state.
        let read = stored.spec();
        assert_eq!(
            (read.tenant.as_str(), read.period.as_str(), read.state),
            ("tholen", "2026-03", InvoiceState::Draft)
        );
        let mut other_line = spec.clone();
        other_line.lines[0].quantity = "11".into();
        assert!(!stored.holds(&other_line));
        let mut other_total = spec.clone();
        other_total.total = "363.00".into();
        assert!(!stored.holds(&other_total));
        let mut other_currency = spec.clone();
        other_currency.currency = "USD".into();
        assert!(!stored.holds(&other_currency));
        // Written again: the cached version as precondition, regie's label, the whole new spec.
        let o = stored.replaced_by(other_line.clone());
        assert_eq!(o.metadata.resource_version.as_deref(), Some("41"));
        assert_eq!(
            o.metadata
                .labels
                .unwrap()
                .get(TENANT_LABEL)
                .map(String::as_str),
            Some("tholen")
        );
        assert_eq!(o.spec, other_line);
    }

    #[test]
    fn a_draft_not_in_regies_form_is_kept_whole() {
        let draft = stored_spec(InvoiceState::Draft, "300.00");
        let numbered = InvoiceSpec {
            number: Some("RG-2026-000009".into()),
            ..draft.clone()
        };
        let odd_period = InvoiceSpec {
            period: "2026-3".into(),
            ..draft.clone()
        };
        let other_tenant = InvoiceSpec {
            tenant: "tho".into(),
            ..draft.clone()
        };
        for spec in [numbered, odd_period, other_tenant] {
            let stored = kept_invoice(in_cluster(spec.clone()));
            assert!(matches!(stored.held, Held::Whole(_)), "{spec:?}");
            assert_eq!(stored.spec(), spec);
            assert_eq!(stored.tenant(), spec.tenant);
            assert!(stored.holds(&spec));
        }
        // A quarter's draft: its name has the period in lower case.
        let quarter = InvoiceSpec {
            period: "2026-Q1".into(),
            ..draft
        };
        let mut o = in_cluster(quarter.clone());
        o.metadata.name = Some("tholen-2026-q1".into());
        let stored = kept_invoice(o);
        assert!(matches!(stored.held, Held::Draft { .. }));
        assert_eq!(stored.tenant(), "tholen");
        assert_eq!(stored.spec().period, "2026-Q1");
    }

    #[test]
    fn a_cached_final_invoice_keeps_its_lines_and_a_draft_rewritten_keeps_what_others_set() {
        let final_spec = stored_spec(InvoiceState::Final, "300.00");
        let stored = kept_invoice(in_cluster(final_spec.clone()));
        assert!(matches!(stored.held, Held::Whole(_)));
        assert_eq!(
            stored.spec(),
            final_spec,
            "corrections are computed from its lines"
        );
        assert_eq!(stored.number(), Some("RG-2026-000001"));
        assert!(stored.is_final());

        let mut o = in_cluster(stored_spec(InvoiceState::Draft, "300.00"));
        o.metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "finance".into());
        o.metadata.annotations = Some(BTreeMap::from([("note".into(), "checked".into())]));
        let kept = kept_invoice(o);
        let again = kept.replaced_by(stored_spec(InvoiceState::Draft, "330.00"));
        let labels = again.metadata.labels.unwrap();
        assert_eq!(labels.get("team").map(String::as_str), Some("finance"));
        assert_eq!(labels.get(TENANT_LABEL).map(String::as_str), Some("tholen"));
        assert_eq!(
            again
                .metadata
                .annotations
                .unwrap()
                .get("note")
                .map(String::as_str),
            Some("checked")
        );
    }

    #[test]
    fn a_cached_report_changes_only_when_its_credits_do() {
        use regie_crds::generated::{ComponentCompliance, SlaReportSpec, SlaReportStatus};
        let report = |availability: &str, credit: i32| {
            let mut r = SlaReport::new(
                "tholen-2026-03",
                SlaReportSpec {
                    tenant: "tholen".into(),
                    period: "2026-03".into(),
                    from: "2026-03-01T00:00:00+01:00".into(),
                    to: "2026-04-01T00:00:00+02:00".into(),
                },
            );
            r.metadata.resource_version = Some(availability.into());
            r.status = Some(SlaReportStatus {
                components: vec![ComponentCompliance {
                    component: "zaaksysteem".into(),
                    service_level: "gold".into(),
                    from: None,
                    to: None,
                    window_seconds: 1000,
                    down_seconds: 10,
                    availability: availability.into(),
                    target: "99.9".into(),
                    met: credit == 0,
                    credit_percent: credit,
                    incidents: vec![],
                    last_sample: None,
                }],
                met: Some(credit == 0),
                worst_availability: Some(availability.into()),
                ..SlaReportStatus::default()
            });
            ReportCredits::of(r)
        };
        let same = ReportCredits::same_credits;
        assert!(same(&report("99.0", 5), &report("98.0", 5)));
        assert!(!same(&report("98.0", 5), &report("97.0", 10)));
        assert!(same(&report("99.95", 0), &report("99.99", 0)));
        let end: Timestamp = "2026-03-31T22:00:00Z".parse().unwrap();
        assert_eq!(
            report("99.95", 0),
            ReportCredits {
                granted: None,
                open_until: NonZeroI64::new(end.as_second()),
            },
            "no credit: only the end of a period not final"
        );
        // Open until it is final; ended from its end on.
        let open = report("99.95", 0);
        assert_eq!(open.ended_open(end), Some(end));
        assert_eq!(
            open.ended_open(end - jiff::SignedDuration::from_secs(1)),
            None
        );
        let mut closed = SlaReport::new("tholen-2026-03", open_spec());
        closed.status = Some(SlaReportStatus {
            conditions: vec![regie_crds::status::condition(
                super::super::probing::FINAL,
                true,
                super::super::probing::PERIOD_CLOSED,
                "ended",
                None,
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(end),
            )],
            ..SlaReportStatus::default()
        });
        let closed = ReportCredits::of(closed);
        assert_eq!(closed.ended_open(Timestamp::MAX), None);
        assert!(same(&closed, &open), "closing changes no credit");
        let credits = credits_of(&[report("98.0", 5), report("99.95", 0)]);
        assert_eq!(credits.len(), 1);
        // A week's report is not billed from, whatever it says.
        let week = SlaReport::new(
            "tholen-2026-w14",
            SlaReportSpec {
                tenant: "tholen".into(),
                period: "2026-W14".into(),
                from: "2026-03-30T00:00:00+02:00".into(),
                to: "2026-04-06T00:00:00+02:00".into(),
            },
        );
        let mut credited = week.clone();
        credited.status = Some(SlaReportStatus {
            components: vec![ComponentCompliance {
                credit_percent: 5,
                ..ComponentCompliance::default()
            }],
            ..SlaReportStatus::default()
        });
        assert_eq!(ReportCredits::of(credited).granted, None);
    }

    fn open_spec() -> regie_crds::generated::SlaReportSpec {
        regie_crds::generated::SlaReportSpec {
            tenant: "tholen".into(),
            period: "2026-03".into(),
            from: "2026-03-01T00:00:00+01:00".into(),
            to: "2026-04-01T00:00:00+02:00".into(),
        }
    }

    /// A component whose level changed in the month has an entry per level; each credit is of
    /// its own part of the month.
    #[test]
    fn a_reports_parts_are_credited_each_for_its_part() {
        use regie_crds::generated::{ComponentCompliance, SlaReportSpec, SlaReportStatus};
        let mut r = SlaReport::new(
            "tholen-2026-03",
            SlaReportSpec {
                tenant: "tholen".into(),
                period: "2026-03".into(),
                from: "2026-03-01T00:00:00+01:00".into(),
                to: "2026-04-01T00:00:00+02:00".into(),
            },
        );
        let part =
            |level: &str, from: Option<&str>, to: Option<&str>, credit: i32| ComponentCompliance {
                component: "website".into(),
                service_level: level.into(),
                from: from.map(Into::into),
                to: to.map(Into::into),
                credit_percent: credit,
                ..ComponentCompliance::default()
            };
        let change = "2026-03-16T10:00:00Z";
        r.status = Some(SlaReportStatus {
            components: vec![
                part("bronze", None, Some(change), 10),
                part("silver", Some(change), None, 5),
            ],
            ..SlaReportStatus::default()
        });
        let credits = credits_of(&[ReportCredits::of(r)]);
        let at: jiff::Timestamp = change.parse().unwrap();
        assert_eq!(
            credits[&("tholen".into(), "website".into(), Month::new(2026, 3))],
            [
                Credit {
                    percent: 10.into(),
                    from: None,
                    to: Some(at)
                },
                Credit {
                    percent: 5.into(),
                    from: Some(at),
                    to: None
                },
            ]
        );
    }
}
