//! `regie run`: wires the operator together — logging, the client, the metrics and health
//! server, leader election, the controller — and shuts it down gracefully on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use kube::Client;

use crate::controller::{self, Options, leader};
use crate::desired::Settings;
use crate::metrics::Metrics;
use crate::sla::target::{Cidr, ProbePolicy};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader among replicas; off only for a single process (tests, benchmarks).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (regie's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "regie-system")]
    pub leader_election_namespace: String,
    #[arg(long, default_value = "regie-leader")]
    pub lease_name: String,
    /// Seconds a lease lasts unrenewed before a standby takes over.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// This process's name in the lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Tenants reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// What every tenant gets: the namespaces admitted to it, the role its groups get.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Seconds in which every tenant is reconciled once even when nothing changed, spread
    /// evenly over the period (they write nothing unless something drifted).
    #[arg(long, default_value_t = 1800)]
    pub resync_seconds: u64,
    /// Seconds between invoice passes over an unchanged world (they write nothing); a change
    /// to usage, credits, prices or orders starts one at once.
    #[arg(long, default_value_t = 120)]
    pub invoice_interval_seconds: u64,
    /// Seconds for which a measured account count, once taken up, is held: a package's count
    /// changes at most once per this time (a flapping source would otherwise grow the month's
    /// Usage by a segment at every read).
    #[arg(long, default_value_t = 3600)]
    pub measured_hold_seconds: u64,
    /// Days a final daily or weekly SlaReport is kept after its period ended (0: for ever).
    /// Monthly reports, which billing reads, are always kept.
    #[arg(long, default_value_t = 400)]
    pub sla_report_retention_days: u64,
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Which addresses probes and account sources may reach.
    #[command(flatten)]
    pub probes: ProbeArgs,
    /// Delivery of usage and final invoices to a billing system.
    #[command(flatten)]
    pub billing: Box<BillingArgs>,
}

/// The installation's choices that shape every tenant's objects (`regie run`), taken by
/// `regie render` and `regie diff` too with the same names and defaults, so that what they show
/// is what the cluster gets.
#[derive(Args, Debug, Clone)]
pub struct SettingsArgs {
    /// Namespaces whose pods may reach every tenant (monitoring, ingress, regie itself).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "regie-system,monitoring,ingress-nginx",
        value_parser = regie_crds::validate::namespace_name
    )]
    pub allowed_namespaces: Vec<String>,
    /// ClusterRole bound to each tenant's groups in its namespace; never
    /// cluster-admin, admin or system:*.
    #[arg(long, default_value = "edit", value_parser = crate::rbac::tenant_role)]
    pub tenant_role: String,
}

impl SettingsArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            allowed_namespaces: self.allowed_namespaces.clone(),
            tenant_cluster_role: self.tenant_role.clone(),
            ..Settings::default()
        }
    }
}

/// Where usage and final invoices go (`regie run --billing-*`).
#[derive(Args, Debug, Clone)]
pub struct BillingArgs {
    /// Billing system (OpenMeter-style) that receives usage and final invoices as CloudEvents
    /// at `{URL}/api/v1/events`; without it nothing is delivered.
    #[arg(long, value_name = "URL")]
    pub billing_endpoint: Option<String>,
    /// Secret with the billing system's bearer token under the key `token`.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub billing_token_secret: Option<controller::delivery::SecretRef>,
    /// Names this installation in each event's source (`regie/<NAME>`).
    #[arg(long, value_name = "NAME", default_value = "regie")]
    pub billing_installation: String,
    /// Seconds one delivery request may take before it is retried later.
    #[arg(long, default_value_t = 10)]
    pub billing_timeout_seconds: u64,
    /// Seconds between looks for newly finished usage and final invoices.
    #[arg(long, default_value_t = 30)]
    pub billing_scan_seconds: u64,
}

/// The probe policy for URLs someone typed (`regie run --probe-*`): SaaS URLs, the redirects
/// they lead to, account sources. Hosted components' own Services are always probed.
#[derive(Args, Debug, Clone, Default)]
pub struct ProbeArgs {
    /// Let typed URLs reach private ranges (RFC 1918, 100.64.0.0/10, fc00::/7); prefer
    /// --probe-allow-cidrs for the ranges an internal SaaS lives in.
    #[arg(long)]
    pub probe_allow_private: bool,
    /// Ranges typed URLs may reach although private or loopback (comma-separated CIDRs); the
    /// longest matching prefix of this and --probe-deny-cidrs decides.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    pub probe_allow_cidrs: Vec<Cidr>,
    /// Ranges no probe or account source reaches, a hosted component's own Service included.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    pub probe_deny_cidrs: Vec<Cidr>,
}

impl ProbeArgs {
    pub fn policy(&self) -> ProbePolicy {
        ProbePolicy {
            allow_private: self.probe_allow_private,
            allow_cidrs: self.probe_allow_cidrs.clone(),
            deny_cidrs: self.probe_deny_cidrs.clone(),
            ..ProbePolicy::default()
        }
    }
}

/// The states of [`Health::ready`].
const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

#[derive(Clone)]
struct Health {
    metrics: Metrics,
    /// [`STARTING`], [`READY`] or [`STOPPING`]: once stopping, a check that passes late does not
    /// make the process ready again.
    ready: Arc<AtomicU8>,
    /// Why it is not ready yet (the last failed check), for `/readyz`'s body.
    waiting: Arc<std::sync::Mutex<String>>,
}

/// A scrape, sent a page at a time as the client reads it: at thousands of components the
/// whole text is megabytes, which the operator would otherwise hold for every scrape.
async fn metrics_handler(
    State(h): State<Health>,
) -> (
    StatusCode,
    [(&'static str, &'static str); 1],
    axum::body::Body,
) {
    let pages = h.metrics.scrape().map(Ok::<_, std::convert::Infallible>);
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        axum::body::Body::from_stream(futures::stream::iter(pages)),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> (StatusCode, String) {
    if h.ready.load(Ordering::Acquire) == READY {
        (StatusCode::OK, "ok".into())
    } else {
        let why = h.waiting.lock().map(|w| w.clone()).unwrap_or_default();
        (StatusCode::SERVICE_UNAVAILABLE, why)
    }
}

/// Marks the process ready once it can read all it works from with its credentials: one object
/// (metadata only) of every kind it watches — its own and the children it makes — and the leader
/// Lease. That proves the connection, the RBAC and the CRDs, which a standby needs as much as a
/// leader to take over. A rollout waits for it, so a replica that cannot work (a bad
/// ServiceAccount, a ClusterRole missing a kind, a missing CRD, no route to the API server)
/// never replaces one that can: a leader that cannot list a kind waits for ever before its first
/// reconcile. Tried every second, then ever less often, at most every 30 s.
async fn ready_when_able(client: Client, lease: Option<(String, String)>, health: Health) {
    let mut pause = Duration::from_secs(1);
    loop {
        match unreadable(&client, lease.as_ref()).await {
            None => {
                let _ = health.ready.compare_exchange(
                    STARTING,
                    READY,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return;
            }
            Some(why) => {
                tracing::warn!(reason = %why, "not ready");
                if let Ok(mut w) = health.waiting.lock()
                    && health.ready.load(Ordering::Acquire) == STARTING
                {
                    *w = format!("not ready: {why}");
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// What this process cannot read of what it needs (see [`ready_when_able`]), or None. `lease`:
/// the leader Lease's namespace and name, when it elects a leader.
async fn unreadable(client: &Client, lease: Option<&(String, String)>) -> Option<String> {
    use kube::api::{Api, ApiResource, DynamicObject, ListParams};
    use regie_crds::{
        CostPool, HostingComponent, Invoice, PriceList, ServiceLevel, ServiceOrder, SlaReport,
        Tenant, Usage, WorkplacePackage,
    };
    let mut kinds = vec![
        ApiResource::erase::<Tenant>(&()),
        ApiResource::erase::<HostingComponent>(&()),
        ApiResource::erase::<WorkplacePackage>(&()),
        ApiResource::erase::<ServiceLevel>(&()),
        ApiResource::erase::<Usage>(&()),
        ApiResource::erase::<Invoice>(&()),
        ApiResource::erase::<SlaReport>(&()),
        ApiResource::erase::<PriceList>(&()),
        ApiResource::erase::<ServiceOrder>(&()),
        ApiResource::erase::<CostPool>(&()),
    ];
    let pdb = controller::children::pdb_version(client).await;
    kinds.extend(
        controller::children::child_kinds(&pdb)
            .into_iter()
            .map(|k| k.resource),
    );
    for kind in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind);
        if let Err(e) = api.list_metadata(&ListParams::default().limit(1)).await {
            return Some(format!("cannot list {}.{}: {e}", kind.plural, kind.group));
        }
    }
    if let Some((namespace, name)) = lease {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(client.clone(), namespace);
        if let Err(e) = leases.get_opt(name).await {
            return Some(format!("cannot read Lease {namespace}/{name}: {e}"));
        }
    }
    None
}

/// Logs to stderr, filtered by `RUST_LOG` (info by default); JSON lines when `json`.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// Runs the operator until SIGTERM or SIGINT; an error when it cannot start or lost the lease.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    // Two idle connections for each reconcile that may run at once: the next request of a busy
    // operator finds one open; what a burst opened beyond that is closed when it ends.
    let client = crate::api_client::build(
        kube::Config::infer().await?,
        2 * usize::from(args.concurrency.max(1)),
    )?;
    let metrics = Metrics::new();
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("regie-{}", std::process::id()));
    let health = Health {
        metrics: metrics.clone(),
        ready: Arc::new(AtomicU8::new(STARTING)),
        waiting: Arc::new(std::sync::Mutex::new(
            "not ready: the API server has not answered yet".into(),
        )),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health.clone());
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopping = health.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        // Stopping: no new traffic is routed here (the metrics stay served until the end).
        // Marked first: a check that finishes meanwhile then writes no reason over this one.
        stopping.ready.store(STOPPING, Ordering::Release);
        if let Ok(mut w) = stopping.waiting.lock() {
            *w = "not ready: shutting down".into();
        }
        let _ = stop_tx.send(true);
    });
    let lease = args.leader_elect.then(|| leader::LeaseConfig {
        name: args.lease_name.clone(),
        duration: Duration::from_secs(args.lease_duration),
        renew_every: Duration::from_secs((args.lease_duration / 3).max(1)),
        ..leader::LeaseConfig::new(&args.leader_election_namespace, &identity)
    });
    // A standby is as ready as the leader once it can read what it needs: readiness is about
    // the process, not the lease.
    let reachable = AbortOnDrop(tokio::spawn(ready_when_able(
        client.clone(),
        lease
            .as_ref()
            .map(|l| (l.namespace.clone(), l.name.clone())),
        health.clone(),
    )));
    let billing = match &args.billing.billing_endpoint {
        None => None,
        Some(url) => {
            regie_crds::validate::check_http_url(url)
                .map_err(|m| anyhow::anyhow!("--billing-endpoint {url:?}: {m}"))?;
            Some(controller::delivery::Config {
                token_secret: args.billing.billing_token_secret.clone(),
                installation: args.billing.billing_installation.clone(),
                timeout: Duration::from_secs(args.billing.billing_timeout_seconds.max(1)),
                scan_every: Duration::from_secs(args.billing.billing_scan_seconds.max(1)),
                ..controller::delivery::Config::new(url)
            })
        }
    };
    if billing.is_none() && args.billing.billing_token_secret.is_some() {
        anyhow::bail!("--billing-token-secret needs --billing-endpoint");
    }
    let options = Options {
        billing,
        concurrency: args.concurrency,
        identity: identity.clone(),
        resync: Duration::from_secs(args.resync_seconds),
        namespace: args.leader_election_namespace.clone(),
        invoice_interval: Duration::from_secs(args.invoice_interval_seconds.max(1)),
        measured_hold: Duration::from_secs(args.measured_hold_seconds),
        report_retention: (args.sla_report_retention_days > 0)
            .then(|| Duration::from_secs(args.sla_report_retention_days.saturating_mul(86_400))),
        probe_policy: args.probes.policy(),
        settings: args.settings.settings(),
        ..Options::default()
    };
    let mut stop = stop_rx;
    operate(
        client,
        options,
        lease,
        metrics,
        Arc::new(jiff::Timestamp::now),
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    )
    .await?;
    drop(reachable);
    tracing::info!("stopped");
    Ok(())
}

/// Leader election (when `lease` is given) and the controller, until `shutdown` resolves.
/// An error when leadership was lost: the caller exits so a fresh process can stand by.
pub async fn operate(
    client: Client,
    options: Options,
    lease: Option<leader::LeaseConfig>,
    metrics: Metrics,
    clock: controller::Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    if let Some(lease) = &lease {
        tokio::select! {
            _ = leader::acquire(&client, lease, &metrics) => {},
            _ = stopped() => return Ok(()),
        }
    }
    let (lost_tx, lost_rx) = tokio::sync::watch::channel(None::<leader::Loss>);
    let when_lost = move || {
        let mut rx = lost_rx.clone();
        async move {
            // A sender dropped without a loss (no lease) never resolves.
            let seen = rx
                .wait_for(Option::is_some)
                .await
                .map(|l| *l)
                .ok()
                .flatten();
            match seen {
                Some(loss) => loss,
                None => std::future::pending().await,
            }
        }
    };
    // If this future is dropped (the process is going away), renewal must stop with it.
    let holder = lease.clone().map(|lease| {
        let client = client.clone();
        let metrics = metrics.clone();
        AbortOnDrop(tokio::spawn(async move {
            let loss = leader::hold(&client, &lease, &metrics).await;
            // Seen by receivers after the sender is gone too: they look at the value first.
            let _ = lost_tx.send(Some(loss));
        }))
    });
    let lost = Arc::new(AtomicBool::new(false));
    let controller_shutdown = {
        let lost = lost.clone();
        let stop = stopped();
        let lost_now = when_lost();
        async move {
            tokio::select! {
                _ = stop => controller::Stop::Requested,
                _ = lost_now => {
                    lost.store(true, Ordering::Relaxed);
                    controller::Stop::LeadershipLost
                }
            }
        }
    };
    // A lease not renewed in time may be another's within the renewal interval that remained:
    // reconciles still running then are cut off, not finished, so that two processes never
    // write at once. A lease another process holds already is theirs now: cut off at once.
    let cut_off = |loss| match (&lease, loss) {
        (Some(l), leader::Loss::NotRenewed) => l.renew_every / 2,
        _ => Duration::ZERO,
    };
    let controller = controller::run(
        client.clone(),
        options,
        metrics.clone(),
        clock,
        controller_shutdown,
    );
    tokio::select! {
        () = controller => {},
        () = async {
            let loss = when_lost().await;
            tokio::time::sleep(cut_off(loss)).await;
        } => {
            tracing::error!("reconciles still running when the lease was lost; cut off");
            lost.store(true, Ordering::Relaxed);
        }
    }
    drop(holder);
    if lost.load(Ordering::Relaxed) {
        anyhow::bail!("lost the leader lease; exiting so a fresh process can stand by");
    }
    if let Some(lease) = &lease {
        leader::release(&client, lease, &metrics).await;
    }
    Ok(())
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
