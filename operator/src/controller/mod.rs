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
//! its status can roll them up and name the root cause of anything not ready.

pub mod accounts;
pub mod activity;
pub mod cache;
pub mod children;
pub mod delivery;
pub mod invoicing;
pub mod kept;
pub mod leader;
pub mod memo;
pub mod metering;
pub mod probing;
pub mod tenant;
pub mod views;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use regie_crds::{HostingComponent, ServiceLevel, Tenant, WorkplacePackage};

use crate::desired::Settings;
use crate::inventory::{has_namespace, tenant_namespace};
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
    pub tenants: Store<Tenant>,
    pub levels: Store<ServiceLevel>,
    pub components: Arc<Cache<Kept<HostingComponent>>>,
    pub packages: Arc<Cache<Kept<WorkplacePackage>>>,
    pub recorder: Recorder,
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
    pub activity: activity::Activity,
    /// Resolves once the tenant cache holds the whole list. Await this, never
    /// `tenants.wait_until_ready()`: kube-runtime's store keeps only the last waiter's waker,
    /// and the controller's runner waits on it too, so of several tasks waiting at once all but
    /// one would hang.
    pub tenants_synced: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
}

impl Context {
    pub fn now(&self) -> jiff::Timestamp {
        (self.clock)()
    }

    /// The tenant that owns namespace `ns`, if any.
    pub fn tenant_of_namespace(&self, ns: &str) -> Option<Arc<Tenant>> {
        self.tenants.find(|t| has_namespace(t, ns))
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
    /// Where usage and final invoices go; none delivers nothing.
    pub billing: Option<delivery::Config>,
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
            billing: None,
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

/// A cached Tenant's lists without spare room: deserialising grows a vector to four slots
/// for its first element, and a Tenant has three conditions, one group, a few names.
fn fit_tenant(t: &mut Tenant) {
    t.spec.access.groups.shrink_to_fit();
    if let Some(s) = t.status.as_mut() {
        s.conditions.shrink_to_fit();
        for rollup in [s.components.as_mut(), s.packages.as_mut()]
            .into_iter()
            .flatten()
        {
            rollup.not_ready.shrink_to_fit();
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

/// Keeps the cache of a tenant's kind filled, and sends each change to the tenant of the
/// object's namespace (after the cache holds it: the reconcile reads it there).
async fn follow<K: TenantKind + Split>(
    ctx: Arc<Context>,
    cache: Arc<Cache<Kept<K>>>,
    started: Arc<std::sync::atomic::AtomicBool>,
    trigger: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut events = std::pin::pin!(cache::watch_all::<K>(ctx.client.clone()));
    let mut filler = cache::Filler::new(cache, cache::differ);
    while let Some(ev) = events.next().await {
        // Before the caches are synced the first full reconcile covers everything; after
        // that, a lookup in a half-filled tenant cache would call an object orphaned.
        let touched = match &ev {
            _ if !started.load(std::sync::atomic::Ordering::Acquire) => None,
            Event::Apply(o) | Event::InitApply(o) => Some((o.clone(), false)),
            Event::Delete(o) => Some((o.clone(), true)),
            Event::Init | Event::InitDone => None,
        };
        filler.handle(ev, |o| Kept::new(slimmed(o)));
        let Some((o, deleted)) = touched else {
            continue;
        };
        ctx.tenants_synced.clone().await;
        match ctx.tenant_of_namespace(&o.namespace().unwrap_or_default()) {
            Some(t) => {
                let _ = trigger.send(t.name_any());
            }
            None if !deleted => K::mark_orphan(&ctx, &o).await,
            None => {}
        }
    }
}

/// Runs the controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Metrics,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let pdb = children::pdb_version(&client).await;
    let kinds = children::child_kinds(&pdb);
    let index = ChildIndex::default();
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel::<String>();

    let tenants_api: Api<Tenant> = Api::all(client.clone());
    let (levels, levels_writer) = reflector::store();
    let components = Arc::new(Cache::default());
    let packages = Arc::new(Cache::default());

    // Every cache holds objects without managed fields: the reflector stores what its input
    // stream yields, so they are slimmed before it, not after.
    let (tenants, tenants_writer) = reflector::store();
    // Whether the tenant cache holds the whole list: told by the stream itself, because
    // `Store::wait_until_ready` wakes only the last of several waiters, and the controller's
    // own runner is one of them.
    let (tenants_listed, mut tenants_listed_rx) = tokio::sync::watch::channel(false);
    let tenant_events = reflector::reflector(
        tenants_writer,
        watcher::watcher(tenants_api, watcher::Config::default())
            .default_backoff()
            .modify(|t: &mut Tenant| {
                slim(t);
                fit_tenant(t);
            }),
    )
    .inspect(move |ev| {
        if matches!(ev, Ok(Event::InitDone)) {
            tenants_listed.send_replace(true);
        }
    })
    .applied_objects();
    let controller = Controller::for_stream(tenant_events, tenants.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency));

    let (probes, probe_events) =
        match probing::Probes::start(options.probe_policy.clone(), &metrics) {
            Ok((p, events)) => (Some(p), Some(events)),
            Err(e) => {
                tracing::error!(error = %e, "the SLA prober did not start; nothing is probed");
                (None, None)
            }
        };
    let invoicing = invoicing::Invoicing::new(options.namespace.clone(), options.invoice_interval);
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: options.settings.clone(),
        metrics: metrics.clone(),
        kinds: kinds.clone(),
        index: index.clone(),
        tenants: tenants.clone(),
        levels: levels.clone(),
        components: components.clone(),
        packages: packages.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "regie".into(),
                instance: Some(options.identity.clone()),
            },
        ),
        clock,
        resync: options.resync,
        probes,
        invoicing,
        measurements: accounts::Measurements::default(),
        metered: metering::Recorded::default(),
        status_memo: memo::StatusMemo::default(),
        activity: activity::Activity::default(),
        tenants_synced: futures::FutureExt::shared(futures::FutureExt::boxed(async move {
            let _ = tenants_listed_rx.wait_for(|listed| *listed).await;
        })),
    });

    let probes = ctx.probes.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(events) = probe_events {
        tasks.spawn(probing::consume(ctx.clone(), events));
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
                    _ => continue,
                };
                for t in ctx.tenants.state() {
                    let uses = t.spec.service_level == name
                        || ctx
                            .components
                            .in_namespace(&tenant_namespace(&t))
                            .iter()
                            .any(|c| {
                                c.spec().is_some_and(|s| {
                                    s.service_level.as_deref() == Some(name.as_str())
                                })
                            });
                    if uses {
                        let _ = tx.send(t.name_any());
                    }
                }
            }
        });
    }

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
        trigger_tx.clone(),
    ));
    if let Some(billing) = options.billing.clone() {
        tasks.spawn(delivery::run(ctx.clone(), billing));
    }
    tasks.spawn(resync(ctx.clone(), trigger_tx.clone()));
    drop(trigger_tx);
    tasks.spawn(refresh_gauges(ctx.clone()));

    // Reconcile only once every cache has seen the whole world: a tenant reconciled against a
    // half-filled cache would look as if its components were gone, and prune them.
    let child_kinds = ctx.kinds.len();
    let synced = async {
        let _ = levels.wait_until_ready().await;
        components.wait_listed().await;
        packages.wait_listed().await;
        index.wait_listed(child_kinds).await;
    };
    // A stop while the caches fill must not wait for them (nor reconcile half-synced).
    let shutdown = futures::FutureExt::shared(shutdown);
    tokio::select! {
        _ = synced => {},
        _ = shutdown.clone() => {
            if let Some(p) = &probes {
                p.shutdown();
            }
            tasks.abort_all();
            return;
        }
        _ = tokio::time::sleep(Duration::from_secs(300)) => {
            tracing::error!("caches not synced after 5 minutes (missing RBAC?); reconciling anyway");
        }
    }
    started.store(true, std::sync::atomic::Ordering::Release);
    invoicing::spawn(ctx.clone(), &mut tasks);

    let triggers = tokio_stream_from(trigger_rx).map(|name| ObjectRef::<Tenant>::new(&name));
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(tenant::reconcile, tenant::error_policy, ctx)
        .for_each(|_| std::future::ready(()))
        .await;
    if let Some(p) = &probes {
        p.shutdown();
    }
    tasks.abort_all();
}

/// Reconciles every tenant once per `ctx.resync`, spread evenly over it, so that drift nobody
/// was told about (a child edited while the operator was down, a lost watch event) is corrected.
/// One walk serves every tenant: a requeue per tenant would keep an entry for each in the
/// controller's queue (about 1.7 KiB per tenant, measured), for nothing but a timer.
async fn resync(ctx: Arc<Context>, trigger: tokio::sync::mpsc::UnboundedSender<String>) {
    // A zero period (a test's, a typo's) would spin.
    let period = ctx.resync.max(Duration::from_secs(1));
    // Every tenant has just been reconciled on start; the first walk begins one period later.
    tokio::time::sleep(period).await;
    loop {
        let names: Vec<String> = ctx.tenants.state().iter().map(|t| t.name_any()).collect();
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

/// Keeps `regie_tenants` (by service level) and `regie_managed_objects` (by kind) current. They
/// are recomputed from the caches on a timer rather than in every reconcile, where counting the
/// whole index would make a cold start quadratic in the number of tenants.
async fn refresh_gauges(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    loop {
        tick.tick().await;
        let mut by_level = BTreeMap::<String, i64>::new();
        for t in ctx.tenants.state() {
            *by_level.entry(t.spec.service_level.clone()).or_default() += 1;
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
}

/// An mpsc receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
