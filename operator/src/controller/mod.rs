//! The controller behind `regie run`: it makes every tenant's namespace, quota, isolation,
//! access and hosted workloads match the specs, and reports the truth in status.
//!
//! ```text
//!  Tenant ─┐                      ┌─ reconcile(tenant): dereference → validate → build
//!  HostingComponent ─┤ map to ──▶ │    (desired.rs, the same code as `regie render`)
//!  WorkplacePackage ─┤  tenant    │    → apply changed children → prune → status
//!  ServiceLevel ─────┤            └─ one field manager, zero writes when nothing changed
//!  children (labels) ┘
//! ```
//!
//! The Tenant is the unit of work: its reconcile handles its components and packages too, so
//! its status can roll them up and name the root cause of anything not ready. Every change is
//! a tenant's name sent to the work queue (`queue`), which reconciles each tenant as the
//! tenant cache holds it at that moment.

pub mod accounts;
pub mod activity;
pub mod cache;
pub mod children;
pub mod delivery;
pub mod invoicing;
pub mod kept;
pub mod kept_conditions;
pub mod kept_status;
pub mod kept_text;
pub mod leader;
pub mod memo;
pub mod metering;
pub mod probing;
pub mod queue;
pub mod tenant;
pub mod views;
pub mod warnings;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use regie_crds::{HostingComponent, ServiceLevel, Tenant, WorkplacePackage};

use crate::desired::Settings;
use crate::metrics::Metrics;
use cache::Cache;
use children::{ChildIndex, ChildKind};
use kept::{Kept, Split};

/// The clock, injectable so tests and benchmarks decide what "now" is.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    pub kinds: Vec<ChildKind>,
    pub index: ChildIndex,
    pub tenants: Arc<Cache<Kept<Tenant>>>,
    pub levels: Store<ServiceLevel>,
    pub components: Arc<Cache<Kept<HostingComponent>>>,
    pub packages: Arc<Cache<Kept<WorkplacePackage>>>,
    pub warnings: warnings::Warnings,
    pub clock: Clock,
    /// How often an unchanged tenant is looked at again.
    pub resync: Duration,
    /// The SLA prober; None when it could not start.
    pub probes: Option<probing::Probes>,
    /// Invoicing's caches and loop (Invoices from the Usage ledgers).
    pub invoicing: Arc<invoicing::Invoicing>,
    /// What the measured-accounts monitor last read, per package.
    pub measurements: accounts::Measurements,
    /// The billable state this process last found durable in each tenant's ledger.
    pub metered: metering::Recorded,
    /// The statuses this process has just written, ahead of the cache.
    pub status_memo: memo::StatusMemo,
    /// The reconciles in progress: SLA reports and invoice drafts are written between them.
    pub activity: Arc<activity::Activity>,
    /// Namespaces a tenant's reconcile is creating, by namespace: the tenant that claimed it
    /// first. Until the namespace's watch shows its `regie.dev/tenant` label, this is what
    /// keeps a second tenant naming the same namespace from applying its children (its
    /// RoleBinding, its groups) into it at the same moment.
    namespace_claims: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The tenants whose last reconciles failed, with how many failed in a row: each is tried
    /// again later than the one before (see [`tenant::retry_after`]).
    pub failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// The fields of a Tenant's spec that the loops over every tenant read, decoded without the
/// rest (see [`Kept::spec_part`]).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub service_level: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl Placement {
    /// The namespace of a tenant named `name` with this placement
    /// ([`crate::inventory::tenant_namespace`] on the compact form).
    pub fn namespace_of(&self, name: &str) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| format!("{}{name}", regie_crds::tenancy::NAMESPACE_PREFIX))
    }

    /// Whether a tenant named `name` with this placement owns namespace `ns`
    /// ([`crate::inventory::has_namespace`] on the compact form).
    fn owns(&self, name: &str, ns: &str) -> bool {
        match &self.namespace {
            Some(own) => own == ns,
            None => ns
                .strip_prefix(regie_crds::tenancy::NAMESPACE_PREFIX)
                .is_some_and(|rest| rest == name),
        }
    }
}

/// Whether cached tenant `t` names namespace `ns`.
/// The tenant that keeps another from a namespace (see [`Context::namespace_owner_besides`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceHolder {
    /// It names the namespace, and holds it or claimed it first.
    Owner(String),
    /// It moved out of the namespace, leaving components or packages there.
    LeftBy(String),
}

fn names(t: &Kept<Tenant>, ns: &str) -> bool {
    t.spec_part::<Placement>()
        .is_some_and(|p| p.owns(t.name(), ns))
}

impl Context {
    /// Publishes a Warning event about `obj` (its note cut to the API's 1,024 bytes), counted as
    /// a write; a failure to publish is logged, never the caller's error.
    pub async fn warn<K: kube::Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        action: &str,
        message: &str,
    ) {
        let mut regarding = obj.object_ref(&());
        // Events of cluster-scoped objects live in `default`; v1.20 insists the reference says so.
        if regarding.namespace.is_none() {
            regarding.namespace = Some("default".into());
        }
        let note = warnings::cut_note(message);
        if let Err(e) = (self.warnings)
            .publish(&self.metrics, &regarding, reason, action, note)
            .await
        {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }

    /// A controller's shared state before its watches start: every cache and the child index
    /// empty and not yet listed. [`run`] builds its own this way; so do tests that drive one
    /// step of it against a real API server.
    pub fn new(
        client: Client,
        options: &Options,
        metrics: Metrics,
        clock: Clock,
        kinds: Vec<ChildKind>,
        levels: Store<ServiceLevel>,
        probes: Option<probing::Probes>,
    ) -> Context {
        Context {
            warnings: warnings::Warnings::new(client.clone(), "regie", &options.identity),
            client,
            settings: options.settings.clone(),
            metrics,
            kinds,
            index: ChildIndex::default(),
            tenants: Arc::default(),
            levels,
            components: Arc::default(),
            packages: Arc::default(),
            clock,
            resync: options.resync,
            probes,
            invoicing: invoicing::Invoicing::new(
                options.namespace.clone(),
                options.invoice_interval,
                options.invoice_part,
            ),
            measurements: accounts::Measurements::default(),
            metered: metering::Recorded::default(),
            status_memo: memo::StatusMemo::default(),
            activity: options.activity.clone().unwrap_or_default(),
            namespace_claims: Default::default(),
            failures: Default::default(),
        }
    }

    pub fn now(&self) -> jiff::Timestamp {
        (self.clock)()
    }

    /// The tenant `name`, whole (None when the cache does not hold it, or it does not read
    /// back: logged by [`Kept::spec`]).
    pub fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.named(name)?.object().map(Arc::new)
    }

    /// The names of every tenant the cache holds, in order.
    pub fn tenant_names(&self) -> Vec<String> {
        self.tenants
            .state()
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// Whether tenant `name` (in the cache) names namespace `ns`.
    fn names_namespace(&self, name: &str, ns: &str) -> bool {
        self.tenants.named(name).is_some_and(|t| names(&t, ns))
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // A poisoned lock only means a reconcile panicked while holding it; the map is whole.
        self.namespace_claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tenant namespace `ns` is labelled with, when that tenant still names it.
    fn labelled_owner(&self, ns: &str) -> Option<Arc<str>> {
        let owner = self.namespace_label(ns)?;
        self.names_namespace(&owner, ns).then_some(owner)
    }

    /// The tenant namespace `ns` is labelled with, whether or not it still names it: a tenant
    /// that moved prunes the namespace it left once nothing of regie's input is left in it.
    fn namespace_label(&self, ns: &str) -> Option<Arc<str>> {
        self.index
            .get(&("Namespace".into(), None, ns.into()))?
            .tenant
    }

    /// The tenant namespace `ns` is labelled with when that tenant moved out of it (it names
    /// another now) but left components or packages in it: until they are moved or deleted the
    /// namespace is still that tenant's to delete, and no other tenant's — one taking it over
    /// would take them over too, and give its groups `edit` over what the other's staff left.
    fn left_holding(&self, ns: &str) -> Option<Arc<str>> {
        let left = self.namespace_label(ns)?;
        let moved = self.tenants.named(&left).is_some_and(|t| !names(&t, ns));
        (moved && self.holds_regie_objects(ns)).then_some(left)
    }

    /// The name of the tenant that owns namespace `ns`, if any: the one the namespace is
    /// labelled with, or that is creating it; else the one that names it (most tenants live
    /// in `tenant-<name>`, found by that name; only a namespace of another form takes a walk).
    /// None for a namespace a tenant left holding components or packages, whoever names it.
    pub fn tenant_name_of_namespace(&self, ns: &str) -> Option<String> {
        if let Some(owner) = self.labelled_owner(ns) {
            return Some(owner.to_string());
        }
        if self.left_holding(ns).is_some() {
            return None;
        }
        let claimer = self.claims().get(ns).cloned();
        if let Some(claimer) = claimer.filter(|c| self.names_namespace(c, ns)) {
            return Some(claimer);
        }
        if let Some(name) = ns.strip_prefix(regie_crds::tenancy::NAMESPACE_PREFIX)
            && self.names_namespace(name, ns)
        {
            return Some(name.to_string());
        }
        self.tenants
            .state()
            .iter()
            .find(|t| names(t, ns))
            .map(|t| t.name().to_string())
    }

    /// Drops every claim of `tenant`, offboarded: a claim that never became a label (the
    /// tenant stalled before applying its namespace) would otherwise be held for good.
    pub fn forget_namespace_claims_of(&self, tenant: &str) {
        self.claims().retain(|_, claimer| claimer != tenant);
    }

    /// Drops `tenant`'s claim on namespace `ns` once the child index knows the namespace as
    /// `tenant`'s (right after applying it): from then on its label decides.
    pub fn release_namespace_claim(&self, ns: &str, tenant: &str) {
        let mut claims = self.claims();
        if claims.get(ns).is_some_and(|c| c == tenant) {
            claims.remove(ns);
        }
    }

    /// The tenants besides `except` that name namespace `ns`.
    pub fn tenants_naming(&self, ns: &str, except: &str) -> Vec<String> {
        self.tenants
            .state()
            .iter()
            .filter(|t| t.name() != except && names(t, ns))
            .map(|t| t.name().to_string())
            .collect()
    }

    /// The tenant other than `tenant` that namespace `ns` belongs to, or None when `tenant`
    /// may have it. The namespace belongs to the tenant its `regie.dev/tenant` label names,
    /// when that tenant still names it or left components or packages in it; a namespace not
    /// labelled so (not yet created, or created by someone else) to the first tenant whose
    /// reconcile claims it here — the leader is the only writer, so two tenants created
    /// together cannot both apply into it.
    pub fn namespace_owner_besides(&self, ns: &str, tenant: &str) -> Option<NamespaceHolder> {
        if let Some(owner) = self.labelled_owner(ns) {
            if &*owner == tenant {
                self.release_namespace_claim(ns, tenant);
                return None;
            }
            return Some(NamespaceHolder::Owner(owner.to_string()));
        }
        if let Some(left) = self.left_holding(ns) {
            return Some(NamespaceHolder::LeftBy(left.to_string()));
        }
        let mut claims = self.claims();
        match claims.get(ns) {
            Some(claimer) if claimer != tenant && self.names_namespace(claimer, ns) => {
                Some(NamespaceHolder::Owner(claimer.clone()))
            }
            _ => {
                claims.insert(ns.to_string(), tenant.to_string());
                None
            }
        }
    }

    /// Whether namespace `ns` holds components or packages: a namespace a tenant no longer
    /// names (its `spec.namespace` changed) is not deleted while they are in it.
    pub fn holds_regie_objects(&self, ns: &str) -> bool {
        !self.components.in_namespace(ns).is_empty() || !self.packages.in_namespace(ns).is_empty()
    }

    /// The tenant that owns namespace `ns`, whole.
    pub fn tenant_of_namespace(&self, ns: &str) -> Option<Arc<Tenant>> {
        self.tenant(&self.tenant_name_of_namespace(ns)?)
    }

    /// The replica counts of a hosted component's Deployment, as last seen on the watch.
    pub fn deployment_replicas(&self, c: &HostingComponent) -> Option<children::ReplicaCounts> {
        self.index
            .get(&("Deployment".into(), c.namespace(), c.name_any()))
            .and_then(|k| k.replicas.map(|r| *r))
    }
}

/// How `regie run` tunes the controller.
#[derive(Clone, Debug)]
pub struct Options {
    pub concurrency: u16,
    pub settings: Settings,
    pub identity: String,
    /// Reconcile every tenant this often even when nothing changed (no writes unless drifted).
    pub resync: Duration,
    /// Which probe targets the SLA prober may contact (tests on loopback allow loopback); the
    /// same policy guards the packages' account sources.
    pub probe_policy: crate::sla::target::ProbePolicy,
    /// regie's own namespace: where the invoice number counter lives.
    pub namespace: String,
    /// Price every tenant's invoices this often even when nothing changed (no writes unless
    /// they differ); changes to usage, credits, prices or orders trigger a pass at once.
    pub invoice_interval: Duration,
    /// How many tenants a pass prices together when no cost pool shares its costs over all of
    /// them: what a pass holds at once (see `invoicing::Pricing::plan`).
    pub invoice_part: usize,
    /// Where usage and final invoices go; none delivers nothing.
    pub billing: Option<delivery::Config>,
    /// How the prober resolves host names; none is the system's resolver (tests play DNS).
    pub probe_lookup: Option<ProbeLookup>,
    /// A measured account count is taken up at most once per this time per package (see
    /// [`accounts::MEASURED_HOLD`], the default).
    pub measured_hold: Duration,
    /// How long a final daily or weekly SlaReport is kept after its period's end (see
    /// [`probing::REPORT_RETENTION`], the default); none keeps them for ever. Monthly reports,
    /// which billing reads, are always kept.
    pub report_retention: Option<Duration>,
    /// The record of reconciles in progress that the writes which wait for them consult; none
    /// is one of the controller's own. A program embedding the controller (a test) shares one
    /// to hold those writes back, as a reconcile that does not end would.
    pub activity: Option<Arc<activity::Activity>>,
}

/// A name lookup for the prober, in [`Options`].
#[derive(Clone)]
pub struct ProbeLookup(pub Arc<dyn crate::sla::target::Lookup>);

impl std::fmt::Debug for ProbeLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeLookup(..)")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 16,
            settings: Settings::default(),
            identity: "regie".into(),
            resync: Duration::from_secs(1800),
            probe_policy: crate::sla::target::ProbePolicy::default(),
            // In-process (tests, benchmarks) a namespace that always exists; `regie run` passes
            // its own.
            namespace: "default".into(),
            invoice_interval: Duration::from_secs(120),
            invoice_part: invoicing::TENANTS_PER_PART,
            billing: None,
            probe_lookup: None,
            measured_hold: accounts::MEASURED_HOLD,
            report_retention: Some(probing::REPORT_RETENTION),
            activity: None,
        }
    }
}

/// Strips what a cache never needs: managed fields and the last-applied annotation.
fn slim<K: kube::Resource>(o: &mut K) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        // A map emptied by that removal still holds its first node (over half a KiB).
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// `slim` for a [`Cache`]: the object without what no cache needs.
fn slimmed<K: kube::Resource>(mut o: K) -> K {
    slim(&mut o);
    o
}

/// A namespaced kind whose objects belong to the tenant of their namespace.
trait TenantKind:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Marks an object in a namespace of no tenant Stalled.
    fn mark_orphan<'a>(ctx: &'a Context, o: &'a Self) -> futures::future::BoxFuture<'a, ()>;
}

impl TenantKind for HostingComponent {
    fn mark_orphan<'a>(ctx: &'a Context, o: &'a Self) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(tenant::mark_orphan_component(ctx, o))
    }
}

impl TenantKind for WorkplacePackage {
    fn mark_orphan<'a>(ctx: &'a Context, o: &'a Self) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(tenant::mark_orphan_package(ctx, o))
    }
}

/// Keeps the tenant cache filled, and sends each tenant applied once reconciles have begun to
/// the queue (before that, the first pass over every tenant covers them). A relist's tenants
/// are sent once it is complete, when the cache holds them.
async fn follow_tenants(
    ctx: Arc<Context>,
    started: Arc<std::sync::atomic::AtomicBool>,
    trigger: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut events = std::pin::pin!(cache::watch_all::<Tenant>(ctx.client.clone()));
    let mut filler = cache::Filler::new(ctx.tenants.clone(), cache::differ);
    let mut relisted = Vec::new();
    while let Some(ev) = events.next().await {
        let running = started.load(std::sync::atomic::Ordering::Acquire);
        let applied = match &ev {
            Event::Apply(t) if running => Some(t.name_any()),
            Event::InitApply(t) if running => {
                relisted.push(t.name_any());
                None
            }
            _ => None,
        };
        // A tenant that goes, or moves to another namespace, frees its namespace for a tenant
        // that was Stalled naming it too.
        let left = match &ev {
            Event::Apply(t) | Event::Delete(t) if running => {
                let name = t.name_any();
                let gone = matches!(ev, Event::Delete(_));
                ctx.tenants
                    .named(&name)
                    .and_then(|old| old.spec_part::<Placement>())
                    .map(|p| p.namespace_of(&name))
                    .filter(|ns| gone || *ns != crate::inventory::tenant_namespace(t))
                    .map(|ns| (name, ns))
            }
            _ => None,
        };
        let done = matches!(ev, Event::InitDone);
        filler.handle(ev, |t, key| Kept::keyed(slimmed(t), key));
        if let Some(name) = applied {
            let _ = trigger.send(name);
        }
        if let Some((name, ns)) = left {
            for other in ctx.tenants_naming(&ns, &name) {
                let _ = trigger.send(other);
            }
        }
        if done {
            for name in std::mem::take(&mut relisted) {
                let _ = trigger.send(name);
            }
        }
    }
}

/// Keeps the cache of a tenant's kind filled, and sends each change to the tenant of the
/// object's namespace (after the cache holds it: the reconcile reads it there).
///
/// A re-list (the watch expired: an API server restarted, a long partition) fills the cache
/// only when it is done, and says nothing of the objects deleted meanwhile: its objects are
/// sent once it is done, with the namespaces that held objects before it, so that a component
/// created, changed or deleted while the watch was down is reconciled now, not at the resync.
async fn follow<K: TenantKind + Split>(
    ctx: Arc<Context>,
    cache: Arc<Cache<Kept<K>>>,
    started: Arc<std::sync::atomic::AtomicBool>,
    trigger: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut events = std::pin::pin!(cache::watch_all::<K>(ctx.client.clone()));
    let mut filler = cache::Filler::new(cache.clone(), cache::differ);
    let mut changes = Changes::default();
    while let Some(ev) = events.next().await {
        // Before the caches are synced the first full reconcile covers everything; after
        // that, a lookup in a half-filled tenant cache would call an object orphaned.
        let live = started.load(std::sync::atomic::Ordering::Acquire);
        changes.see(&ev, live, || cache.namespaces());
        filler.handle(ev, |o, key| Kept::keyed(slimmed(o), key));
        let (touched, looked_at) = changes.take(|| cache.namespaces());
        if touched.is_empty() && looked_at.is_empty() {
            continue;
        }
        ctx.tenants.wait_listed().await;
        for (o, deleted) in touched {
            let ns = o.namespace().unwrap_or_default();
            match ctx.tenant_name_of_namespace(&ns) {
                Some(name) => {
                    // The last of them gone from a namespace another tenant left: the first
                    // tenant naming it takes it over; the others naming it learn whose it is.
                    if deleted && ctx.namespace_label(&ns).is_some_and(|l| *l != *name) {
                        for other in ctx.tenants_naming(&ns, &name) {
                            let _ = trigger.send(other);
                        }
                    }
                    let _ = trigger.send(name);
                }
                None if !deleted => K::mark_orphan(&ctx, &o).await,
                // The last of them gone from a namespace its tenant left: that tenant deletes
                // it.
                None => {
                    if let Some(left) = ctx.namespace_label(&ns) {
                        let _ = trigger.send(left.to_string());
                    }
                }
            }
        }
        for ns in looked_at {
            let owner = ctx
                .tenant_name_of_namespace(&ns)
                .or_else(|| ctx.namespace_label(&ns).map(|t| t.to_string()));
            if let Some(name) = owner {
                // As for a deletion seen as it came: a namespace another tenant left may be
                // free now, and every tenant naming it learns whose it is.
                if ctx.namespace_label(&ns).is_some_and(|l| *l != *name) {
                    for other in ctx.tenants_naming(&ns, &name) {
                        let _ = trigger.send(other);
                    }
                }
                let _ = trigger.send(name);
            }
        }
    }
}

/// What one watch event of a tenant's kind asks to look at, once the cache holds it: objects
/// changed (and whether deleted), and namespaces whose objects may have gone unseen. See
/// [`follow`].
struct Changes<K> {
    touched: Vec<(K, bool)>,
    looked_at: std::collections::BTreeSet<String>,
    /// During a re-list: the namespaces the cache held before it, and what it listed so far —
    /// kept only when it began after the start.
    relist: Option<Relist<K>>,
    /// A re-list that began before the start ended after it: what it listed was not kept (the
    /// first list of all is such a re-list, before the first full reconcile), and that full
    /// reconcile read the cache from before it; every namespace the cache holds once it is
    /// filled is looked at.
    look_at_all: bool,
}

struct Relist<K> {
    before: std::collections::BTreeSet<String>,
    listed: Vec<K>,
    began_live: bool,
}

impl<K> Default for Changes<K> {
    fn default() -> Self {
        Changes {
            touched: Vec::new(),
            looked_at: Default::default(),
            relist: None,
            look_at_all: false,
        }
    }
}

impl<K: Clone> Changes<K> {
    /// Notes event `ev`; `live` once the caches were synced at the start, `cached_namespaces`
    /// the namespaces the cache holds objects in (asked when a re-list begins).
    fn see(
        &mut self,
        ev: &Event<K>,
        live: bool,
        cached_namespaces: impl FnOnce() -> std::collections::BTreeSet<String>,
    ) {
        match ev {
            Event::Init => {
                self.relist = Some(Relist {
                    before: cached_namespaces(),
                    listed: Vec::new(),
                    began_live: live,
                });
            }
            Event::InitApply(o) => {
                if let Some(relist) = self.relist.as_mut().filter(|r| r.began_live) {
                    relist.listed.push(o.clone());
                }
            }
            Event::InitDone => {
                if let Some(relist) = self.relist.take().filter(|_| live) {
                    self.looked_at = relist.before;
                    self.touched
                        .extend(relist.listed.into_iter().map(|o| (o, false)));
                    self.look_at_all |= !relist.began_live;
                }
            }
            _ if !live => {}
            Event::Apply(o) => self.touched.push((o.clone(), false)),
            Event::Delete(o) => self.touched.push((o.clone(), true)),
        }
    }

    /// What to look at now (see [`Changes`]), emptied; `cached_namespaces` the namespaces the
    /// cache holds objects in now (asked after a re-list that began before the start).
    fn take(
        &mut self,
        cached_namespaces: impl FnOnce() -> std::collections::BTreeSet<String>,
    ) -> (Vec<(K, bool)>, std::collections::BTreeSet<String>) {
        if std::mem::take(&mut self.look_at_all) {
            self.looked_at.extend(cached_namespaces());
        }
        (
            std::mem::take(&mut self.touched),
            std::mem::take(&mut self.looked_at),
        )
    }
}

/// Why the controllers stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Asked to (SIGTERM): the lease is still this process's, so what is owed a write of its
    /// own is written before the end (see [`probing::FLUSH_AT_STOP`]).
    Requested,
    /// The lease is lost: another process may be writing already, so nothing more is written.
    LeadershipLost,
}

/// Runs the controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Metrics,
    clock: Clock,
    shutdown: impl std::future::Future<Output = Stop> + Send + Sync + 'static,
) {
    let pdb = children::pdb_version(&client).await;
    let kinds = children::child_kinds(&pdb);
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (levels, levels_writer) = reflector::store();
    let (probes, probe_events) = match probing::Probes::start(
        options.probe_policy.clone(),
        options.probe_lookup.as_ref().map(|l| l.0.clone()),
        &metrics,
    ) {
        Ok((mut p, events)) => {
            p.retention = options.report_retention;
            (Some(p), Some(events))
        }
        Err(e) => {
            tracing::error!(error = %e, "the SLA prober did not start; nothing is probed");
            (None, None)
        }
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        &options,
        metrics.clone(),
        clock,
        kinds.clone(),
        levels.clone(),
        probes,
    ));
    let (index, tenants, components, packages) = (
        ctx.index.clone(),
        ctx.tenants.clone(),
        ctx.components.clone(),
        ctx.packages.clone(),
    );

    let probes = ctx.probes.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Apart from the other tasks: at a requested stop it is awaited while it writes what is owed.
    let mut consumer = tokio::task::JoinSet::new();
    if let Some(events) = probe_events {
        consumer.spawn(probing::consume(ctx.clone(), events, trigger_tx.clone()));
    }
    for kind in kinds {
        tasks.spawn(children::watch_kind(
            client.clone(),
            kind,
            index.clone(),
            trigger_tx.clone(),
        ));
    }

    // ServiceLevels: a change reaches every tenant that uses the level, directly or through a
    // component's override.
    {
        let ctx = ctx.clone();
        let tx = trigger_tx.clone();
        let started = started.clone();
        let stream = reflector::reflector(
            levels_writer,
            watcher::watcher(
                Api::<ServiceLevel>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(slim),
        );
        tasks.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let name = match ev {
                    Ok(Event::Apply(l) | Event::Delete(l)) => l.name_any(),
                    // A re-list after the start says nothing of what changed while the watch
                    // was down: every tenant looks at its levels again (a reconcile of an
                    // unchanged tenant writes nothing).
                    Ok(Event::InitDone) if started.load(std::sync::atomic::Ordering::Acquire) => {
                        for t in ctx.tenants.state() {
                            let _ = tx.send(t.name().to_string());
                        }
                        continue;
                    }
                    _ => continue,
                };
                for t in ctx.tenants.state() {
                    let Some(placement) = t.spec_part::<Placement>() else {
                        continue;
                    };
                    let uses = placement.service_level == name
                        || ctx
                            .components
                            .in_namespace(&placement.namespace_of(t.name()))
                            .iter()
                            .any(|c| {
                                c.spec().is_some_and(|s| {
                                    s.service_level.as_deref() == Some(name.as_str())
                                })
                            });
                    if uses {
                        let _ = tx.send(t.name().to_string());
                    }
                }
            }
        });
    }

    tasks.spawn(follow_tenants(
        ctx.clone(),
        started.clone(),
        trigger_tx.clone(),
    ));
    // Components and packages reach the tenant of their namespace; with no tenant there, they
    // are marked Stalled right here.
    tasks.spawn(follow(
        ctx.clone(),
        ctx.components.clone(),
        started.clone(),
        trigger_tx.clone(),
    ));
    tasks.spawn(follow(
        ctx.clone(),
        ctx.packages.clone(),
        started.clone(),
        trigger_tx.clone(),
    ));
    tasks.spawn(accounts::run(
        ctx.clone(),
        options.probe_policy.clone(),
        options.measured_hold,
        trigger_tx.clone(),
    ));
    if let Some(billing) = options.billing.clone() {
        tasks.spawn(delivery::run(ctx.clone(), billing));
    }
    // The resync starts with the reconciles: until the caches are synced nothing reads the
    // triggers, and a walk per period would pile every tenant's name up in the channel.
    let resync_trigger = trigger_tx.clone();
    drop(trigger_tx);
    tasks.spawn(housekeeping(ctx.clone()));

    // Reconcile only once every cache has seen the whole world: a tenant reconciled against a
    // half-filled cache would look as if its components were gone, and prune them.
    let child_kinds = ctx.kinds.len();
    let synced = async {
        let _ = levels.wait_until_ready().await;
        tenants.wait_listed().await;
        components.wait_listed().await;
        packages.wait_listed().await;
        index.wait_listed(child_kinds).await;
    };
    // A stop while the caches fill must not wait for them (nor reconcile half-synced). A cache
    // that never fills (missing RBAC, a CRD missing or an object that no longer reads) keeps
    // the operator waiting, and it says so every five minutes: reconciling against it would
    // prune every child it does not see.
    let shutdown = futures::FutureExt::shared(shutdown);
    let mut synced = std::pin::pin!(synced);
    let mut waited = Duration::ZERO;
    loop {
        tokio::select! {
            _ = &mut synced => break,
            _ = shutdown.clone() => {
                // Nothing is probed before the first reconcile: nothing is owed.
                if let Some(p) = &probes {
                    p.stop(false);
                }
                tasks.abort_all();
                return;
            }
            _ = tokio::time::sleep(Duration::from_secs(300)) => {
                waited += Duration::from_secs(300);
                tracing::error!(
                    waited_minutes = waited.as_secs() / 60,
                    "caches not synced (missing RBAC or CRDs? see the watches' warnings); not \
                     reconciling until they are"
                );
            }
        }
    }
    started.store(true, std::sync::atomic::Ordering::Release);
    tasks.spawn(resync(ctx.clone(), resync_trigger));
    invoicing::spawn(ctx.clone(), &mut tasks);
    // A component or package put in a namespace of no tenant while no regie ran has no watch
    // event to come; the first pass visits tenants only. Each such namespace is looked at once.
    let orphans = ctx.clone();
    tasks.spawn(async move {
        let mut namespaces = orphans.components.namespaces();
        namespaces.extend(orphans.packages.namespaces());
        for ns in namespaces {
            tenant::mark_orphans_in(&orphans, &ns).await;
        }
    });

    // Every tenant once, then whatever is triggered. A tenant applied from here on is also
    // triggered by its watch; the queue takes the two as one.
    let triggers = futures::stream::iter(ctx.tenant_names()).chain(tokio_stream_from(trigger_rx));
    let reconcile = |name: String| tenant::reconcile_named(name, ctx.clone());
    queue::run(
        triggers,
        usize::from(options.concurrency),
        reconcile,
        futures::FutureExt::map(shutdown.clone(), |_| ()),
    )
    .await;
    let stop = shutdown.await;
    if let Some(p) = &probes {
        p.stop(stop == Stop::Requested);
    }
    if stop == Stop::Requested {
        // The consumer ends by itself once it has written what it owes, within its bound.
        let bound = probing::FLUSH_AT_STOP + Duration::from_secs(1);
        let _ = tokio::time::timeout(bound, consumer.join_next()).await;
    }
    consumer.abort_all();
    tasks.abort_all();
}

/// Reconciles every tenant once per `ctx.resync`, spread evenly over it, so that drift nobody
/// was told about (a child edited while the operator was down, a lost watch event) is corrected.
/// One walk serves every tenant: a requeue per tenant would keep an entry for each in the
/// work queue (in kube-runtime's, about 1.7 KiB per tenant, measured), for nothing but a timer.
async fn resync(ctx: Arc<Context>, trigger: tokio::sync::mpsc::UnboundedSender<String>) {
    // A zero period (a test's, a typo's) would spin.
    let period = ctx.resync.max(Duration::from_secs(1));
    // Every tenant has just been reconciled on start; the first walk begins one period later.
    tokio::time::sleep(period).await;
    loop {
        let names = ctx.tenant_names();
        if names.is_empty() {
            tokio::time::sleep(period).await;
            continue;
        }
        let gap = period / u32::try_from(names.len()).unwrap_or(u32::MAX);
        for name in names {
            tokio::time::sleep(gap).await;
            // A tenant deleted meanwhile is not in the cache; the controller skips it.
            if trigger.send(name).is_err() {
                return;
            }
        }
    }
}

/// How often the inventory gauges are recomputed from the caches.
const GAUGE_REFRESH: Duration = Duration::from_secs(10);

/// What the controller does on a timer: the gauges, and forgetting the status writes that no
/// longer need remembering when no new write comes to do it.
async fn housekeeping(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    for round in 0u64.. {
        tick.tick().await;
        refresh_gauges(&ctx);
        // Counting stalls reads every object's conditions: once a minute is enough for an
        // alert that waits a quarter of an hour.
        if round % 6 == 0 {
            refresh_stalled(&ctx);
        }
        ctx.status_memo.prune(std::time::Instant::now());
    }
}

/// Keeps `regie_stalled_objects` (by kind and reason) current, from the caches: what the
/// `RegieStalledObjects` alert reads — a counter of stalls would show a stall that lasts only as
/// the moment it began.
fn refresh_stalled(ctx: &Context) {
    let mut stalled = BTreeMap::<(&str, String), i64>::new();
    let mut count = |kind: &'static str, reason: Option<String>| {
        if let Some(reason) = reason {
            *stalled.entry((kind, reason)).or_default() += 1;
        }
    };
    for t in ctx.tenants.state().iter() {
        count("Tenant", t.stalled_reason());
    }
    for c in ctx.components.state().iter() {
        count("HostingComponent", c.stalled_reason());
    }
    for p in ctx.packages.state().iter() {
        count("WorkplacePackage", p.stalled_reason());
    }
    ctx.metrics.stalled_objects.reset();
    for ((kind, reason), n) in stalled {
        ctx.metrics
            .stalled_objects
            .with_label_values(&[kind, &reason])
            .set(n);
    }
}

/// Keeps `regie_tenants` (by service level) and `regie_managed_objects` (by kind) current. They
/// are recomputed from the caches on a timer rather than in every reconcile, where counting the
/// whole index would make a cold start quadratic in the number of tenants.
fn refresh_gauges(ctx: &Context) {
    let mut by_level = BTreeMap::<String, i64>::new();
    for placement in ctx
        .tenants
        .state()
        .iter()
        .filter_map(|t| t.spec_part::<Placement>())
    {
        *by_level.entry(placement.service_level).or_default() += 1;
    }
    // Reset first so a level nobody uses any more drops to nothing instead of a stale count.
    ctx.metrics.tenants.reset();
    for (level, n) in by_level {
        ctx.metrics.tenants.with_label_values(&[&level]).set(n);
    }
    ctx.metrics.managed_objects.reset();
    for (kind, n) in ctx.index.counts() {
        ctx.metrics
            .managed_objects
            .with_label_values(&[&kind])
            .set(n);
    }
}

/// An mpsc receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_after_the_start_is_looked_at_once_the_cache_holds_it() {
        let mut changes: Changes<&'static str> = Changes::default();
        let before: std::collections::BTreeSet<String> =
            ["tenant-a".to_string(), "tenant-gone".to_string()].into();
        // Before the start: nothing (the first full reconcile covers it).
        changes.see(&Event::Apply("early"), false, Default::default);
        assert_eq!(changes.take(Default::default), (vec![], Default::default()));
        // A change as it comes.
        changes.see(&Event::Apply("web"), true, Default::default);
        changes.see(&Event::Delete("db"), true, Default::default);
        assert_eq!(
            changes.take(Default::default).0,
            vec![("web", false), ("db", true)]
        );
        // A re-list: nothing while it runs (the cache is not filled yet) ...
        changes.see(&Event::Init, true, || before.clone());
        changes.see(&Event::InitApply("web"), true, Default::default);
        changes.see(&Event::InitApply("new"), true, Default::default);
        assert_eq!(changes.take(Default::default), (vec![], Default::default()));
        // ... everything listed once it is done, and the namespaces held before it: an object
        // deleted meanwhile has no event of its own.
        changes.see(&Event::InitDone, true, Default::default);
        let (touched, looked_at) = changes.take(Default::default);
        assert_eq!(touched, vec![("web", false), ("new", false)]);
        assert_eq!(looked_at, before);
        assert_eq!(changes.take(Default::default), (vec![], Default::default()));
    }

    /// The watch fell back to a re-list just before the first full reconcile, which then read
    /// the cache from before it; the re-list ends after: every namespace is looked at.
    #[test]
    fn a_relist_across_the_start_looks_at_every_namespace() {
        let mut changes: Changes<&'static str> = Changes::default();
        let ns = |names: &[&str]| -> std::collections::BTreeSet<String> {
            names.iter().map(|n| n.to_string()).collect()
        };
        // The first list, all before the start: nothing.
        changes.see(&Event::Init, false, Default::default);
        changes.see(&Event::InitApply("web"), false, Default::default);
        changes.see(&Event::InitDone, false, Default::default);
        assert_eq!(changes.take(|| ns(&["tenant-a"])), (vec![], ns(&[])));
        // A re-list begun before the start, done after it.
        changes.see(&Event::Init, false, || ns(&["tenant-a", "tenant-gone"]));
        changes.see(&Event::InitApply("web"), true, Default::default);
        changes.see(&Event::InitDone, true, Default::default);
        let (touched, looked_at) = changes.take(|| ns(&["tenant-a", "tenant-new"]));
        assert_eq!(touched, vec![], "a half list: its namespaces stand for it");
        assert_eq!(looked_at, ns(&["tenant-a", "tenant-gone", "tenant-new"]));
        assert_eq!(changes.take(|| ns(&["tenant-a"])), (vec![], ns(&[])));
    }
}
