//! Benchmark of `regie run` against a real control plane (see docs/performance.md, "Operator"):
//! cold convergence of N tenants against the floor of a bare client applying the same objects,
//! tier-change latency on a watch, idle writes, the operator's memory per tenant, and the cold
//! convergence against a bare client making all of the operator's writes (the floor of the
//! same writes).
//!
//! Run: `cargo run --release -p regie-e2e --bin bench-operator -- [TENANTS] [CONCURRENCY]`
//! (`REGIE_BIN=path` measures a `regie` binary built beforehand). The operator runs with the
//! allocator settings the chart deploys (`operator.mallocTunables`) unless `--malloc-defaults`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child as Process, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use regie::desired::{self, Settings};
use regie::tier::Tier;
use regie_crds::status::{READY, is_true};
use regie_crds::{
    HostingComponent, Invoice, PriceList, ServiceLevel, Tenant, Usage, WorkplacePackage,
};
use regie_e2e::cluster::{TestCluster, repo_root};

const LEVELS: [&str; 3] = ["bronze", "silver", "gold"];

fn tenant(name: &str, level: &str) -> Tenant {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "regie.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
        "spec": {"displayName": format!("Gemeente {name}"), "serviceLevel": level, "inhabitants": 40000,
                 "membership": {"joined": "2026-01-01"}, "access": {"groups": [format!("{name}:ict")]}}
    }))
    .expect("static tenant")
}

fn package(ns: &str) -> WorkplacePackage {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "regie.dev/v1alpha1", "kind": "WorkplacePackage", "metadata": {"name": "standard", "namespace": ns},
        "spec": {"profile": "standard", "accounts": 250}
    }))
    .expect("static package")
}

fn component(ns: &str, name: &str) -> HostingComponent {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "regie.dev/v1alpha1", "kind": "HostingComponent", "metadata": {"name": name, "namespace": ns},
        "spec": {"class": "applicationHosting", "hosted": {"image": "registry.example/app:1.0", "port": 8080, "healthPath": "/healthz"}}
    }))
    .expect("static component")
}

fn levels() -> Vec<ServiceLevel> {
    examples("examples/catalogue/service-levels.yaml")
}

/// The example price lists, so that invoicing prices every tenant as it would in production.
fn price_lists() -> Vec<PriceList> {
    let mut lists = examples("examples/catalogue/pricelist-2026.yaml");
    lists.extend(examples(
        "examples/catalogue/pricelist-2026-07-interim.yaml",
    ));
    lists
}

fn examples<K: serde::de::DeserializeOwned>(path: &str) -> Vec<K> {
    let text = std::fs::read_to_string(repo_root().join(path)).expect("examples");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("examples parse"))
        .collect()
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("bench").force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

/// Creates the inputs of tenants `range` (namespace pre-created so that inputs can exist before
/// the operator runs; regie takes the namespace over).
async fn create_inputs(client: &Client, names: &[String], concurrency: usize) -> Result<()> {
    stream::iter(names.iter().enumerate())
        .map(|(i, name)| {
            let client = client.clone();
            async move {
                let ns = format!("tenant-{name}");
                let nss: Api<Namespace> = Api::all(client.clone());
                let _ = nss
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
                    )
                    .await;
                apply(
                    &Api::<Tenant>::all(client.clone()),
                    &tenant(name, LEVELS[i % 3]),
                )
                .await?;
                apply(
                    &Api::<WorkplacePackage>::namespaced(client.clone(), &ns),
                    &package(&ns),
                )
                .await?;
                for c in ["portal", "archive"] {
                    apply(
                        &Api::<HostingComponent>::namespaced(client.clone(), &ns),
                        &component(&ns, c),
                    )
                    .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// The floor: a bare client server-side-applies the objects regie would create for `names`.
async fn floor(
    client: &Client,
    names: &[String],
    concurrency: usize,
    pdb_version: &str,
) -> Result<(Duration, usize)> {
    let tiers: BTreeMap<String, Tier> = levels()
        .iter()
        .map(|l| (l.name_any(), Tier::from_level(l).expect("valid")))
        .collect();
    let mut objects = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let t = tenant(name, LEVELS[i % 3]);
        let tier = &tiers[LEVELS[i % 3]];
        objects.extend(desired::tenant_children(&t, tier, &Settings::default()));
        for c in ["portal", "archive"] {
            objects.extend(desired::component_children(
                &t,
                &component(&format!("tenant-{name}"), c),
                tier,
            ));
        }
    }
    let count = objects.len();
    let start = Instant::now();
    // Namespaces first, as regie does, then the rest at the same concurrency.
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        objects.into_iter().partition(|o| o.kind == "Namespace");
    for batch in [namespaces, rest] {
        stream::iter(batch)
            .map(|o| {
                let client = client.clone();
                let pdb_version = pdb_version.to_string();
                async move {
                    let (group, version) = match o.api_version.split_once('/') {
                        Some((g, _)) if o.kind == "PodDisruptionBudget" => {
                            (g.to_string(), pdb_version)
                        }
                        Some((g, v)) => (g.to_string(), v.to_string()),
                        None => (String::new(), o.api_version.clone()),
                    };
                    let ar =
                        ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, &o.kind));
                    let mut body = o.body.clone();
                    body["apiVersion"] = serde_json::Value::String(ar.api_version.clone());
                    let api: Api<DynamicObject> = match &o.namespace {
                        Some(ns) => Api::namespaced_with(client, ns, &ar),
                        None => Api::all_with(client, &ar),
                    };
                    api.patch(
                        &o.name,
                        &PatchParams::apply("bench-floor").force(),
                        &Patch::Apply(&body),
                    )
                    .await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<_>>()
            .await?;
    }
    Ok((start.elapsed(), count))
}

/// One write the operator makes for a tenant besides its children, as a bare client would make
/// it: the same body to the same place.
struct TenantWrite {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
    body: serde_json::Value,
    how: WriteHow,
}

#[derive(Clone, Copy)]
enum WriteHow {
    /// A JSON merge patch of the object (the Tenant's finalizer).
    Merge,
    /// A create (the month's Usage).
    Create,
    /// A server-side apply of the status subresource.
    ApplyStatus,
}

/// The writes beyond its children that the operator made for the converged tenant `model`,
/// read back from the cluster, in the order it makes them: the Tenant's finalizer, the month's
/// Usage (create, then its ledger), the statuses of the package, the two components and the
/// Tenant. Their text names `model`; [`TenantWrite::for_tenant`] puts another name in.
async fn writes_beyond_children(client: &Client, model: &str) -> Result<Vec<TenantWrite>> {
    let ns = format!("tenant-{model}");
    let tenant: Tenant = Api::all(client.clone()).get(model).await?;
    let mut usage = Api::<Usage>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|u| u.spec.tenant == model)
        .with_context(|| format!("no Usage of {model}"))?;
    // Its delivery to billing is marked later, in a write of its own: not one of the first.
    if let Some(ledger) = usage.status.as_mut() {
        ledger.conditions.clear();
    }
    let package: WorkplacePackage = Api::namespaced(client.clone(), &ns).get("standard").await?;
    let components: Api<HostingComponent> = Api::namespaced(client.clone(), &ns);
    let mut writes = vec![
        TenantWrite {
            resource: ApiResource::erase::<Tenant>(&()),
            namespace: None,
            name: model.into(),
            body: serde_json::json!({"metadata": {"finalizers": tenant.finalizers()}}),
            how: WriteHow::Merge,
        },
        TenantWrite {
            resource: ApiResource::erase::<Usage>(&()),
            namespace: None,
            name: usage.name_any(),
            body: serde_json::json!({"apiVersion": "regie.dev/v1alpha1", "kind": "Usage",
                "metadata": {"name": usage.name_any()}, "spec": usage.spec}),
            how: WriteHow::Create,
        },
        TenantWrite {
            resource: ApiResource::erase::<Usage>(&()),
            namespace: None,
            name: usage.name_any(),
            body: status_body("Usage", serde_json::to_value(&usage.status)?),
            how: WriteHow::ApplyStatus,
        },
        TenantWrite {
            resource: ApiResource::erase::<WorkplacePackage>(&()),
            namespace: Some(ns.clone()),
            name: "standard".into(),
            body: status_body("WorkplacePackage", serde_json::to_value(&package.status)?),
            how: WriteHow::ApplyStatus,
        },
    ];
    for c in ["portal", "archive"] {
        let component = components.get(c).await?;
        writes.push(TenantWrite {
            resource: ApiResource::erase::<HostingComponent>(&()),
            namespace: Some(ns.clone()),
            name: c.into(),
            body: status_body("HostingComponent", serde_json::to_value(&component.status)?),
            how: WriteHow::ApplyStatus,
        });
    }
    writes.push(TenantWrite {
        resource: ApiResource::erase::<Tenant>(&()),
        namespace: None,
        name: model.into(),
        body: status_body("Tenant", serde_json::to_value(&tenant.status)?),
        how: WriteHow::ApplyStatus,
    });
    Ok(writes)
}

/// The body of a server-side apply of a regie kind's status.
fn status_body(kind: &str, status: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "regie.dev/v1alpha1", "kind": kind, "status": status})
}

impl TenantWrite {
    /// The same write for tenant `name` instead of `model`.
    fn for_tenant(&self, model: &str, name: &str) -> Result<TenantWrite> {
        let swap = |text: &str| text.replace(model, name);
        Ok(TenantWrite {
            resource: self.resource.clone(),
            namespace: self.namespace.as_deref().map(swap),
            name: swap(&self.name),
            body: serde_json::from_str(&swap(&self.body.to_string()))?,
            how: self.how,
        })
    }

    async fn send(&self, client: Client) -> Result<()> {
        let api: Api<DynamicObject> = match &self.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &self.resource),
            None => Api::all_with(client, &self.resource),
        };
        match self.how {
            WriteHow::Merge => {
                api.patch(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Merge(&self.body),
                )
                .await?;
            }
            WriteHow::Create => {
                api.create(
                    &PostParams::default(),
                    &serde_json::from_value(self.body.clone())?,
                )
                .await?;
            }
            WriteHow::ApplyStatus => {
                api.patch_status(
                    &self.name,
                    &PatchParams::apply("bench-floor").force(),
                    &Patch::Apply(&self.body),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// The floor of the same writes: a bare client makes, for the tenants `names` (their inputs
/// present, no operator running), every write the operator made per tenant until all were
/// Ready — the children as [`floor`] applies them, then per tenant the writes of `model`
/// beyond them ([`writes_beyond_children`]) — at the same concurrency. Against this floor the
/// cold convergence shows what the operator adds to the API server's work of its writes (its
/// watches, its reads, its order), apart from how many writes the issues ask of it.
async fn floor_of_the_same_writes(
    client: &Client,
    names: &[String],
    model: &str,
    concurrency: usize,
    pdb_version: &str,
) -> Result<(Duration, usize)> {
    let beyond = writes_beyond_children(client, model).await?;
    let per_tenant: Vec<Vec<TenantWrite>> = names
        .iter()
        .map(|n| beyond.iter().map(|w| w.for_tenant(model, n)).collect())
        .collect::<Result<_>>()?;
    let (children_time, children) = floor(client, names, concurrency, pdb_version).await?;
    let start = Instant::now();
    stream::iter(&per_tenant)
        .map(|writes| {
            let client = client.clone();
            async move {
                for w in writes {
                    w.send(client.clone()).await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok((
        children_time + start.elapsed(),
        children + names.len() * beyond.len(),
    ))
}

async fn all_ready(client: &Client, count: usize, timeout: Duration) -> Result<Duration> {
    ready_on_watch(client, "bench-", count, Instant::now(), timeout).await
}

/// Waits until `count` Tenants named `prefix…` are Ready at their generation; the time since
/// `start`. It watches the Tenants (one list, then their changes) instead of listing them again
/// and again: until run 11 it listed every Tenant every 200 ms, and at 3,000 Tenants with their
/// statuses each list kept the API server — the bottleneck being measured — busy for 3.9 s.
async fn ready_on_watch(
    client: &Client,
    prefix: &str,
    count: usize,
    start: Instant,
    timeout: Duration,
) -> Result<Duration> {
    let api: Api<Tenant> = Api::all(client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut ready = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::from_std(start + timeout);
    loop {
        let event = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(e))) => {
                eprintln!("(tenant watch: {e}; resuming)");
                continue;
            }
            Ok(None) => bail!("the tenant watch ended"),
            Err(_) => bail!(
                "only {} of {count} tenants Ready after {timeout:?}",
                ready.len()
            ),
        };
        match event {
            Event::Apply(t) | Event::InitApply(t) if t.name_any().starts_with(prefix) => {
                let is_ready = t.status.as_ref().is_some_and(|s| {
                    is_true(&s.conditions, READY) && s.observed_generation == t.metadata.generation
                });
                if is_ready {
                    ready.insert(t.name_any());
                } else {
                    ready.remove(&t.name_any());
                }
            }
            Event::Delete(t) => {
                ready.remove(&t.name_any());
            }
            // A relist sends every object again.
            Event::Init => ready.clear(),
            _ => {}
        }
        if ready.len() >= count {
            return Ok(start.elapsed());
        }
    }
}

/// A number from `/proc/<pid>/status`, such as `VmRSS` (KiB) or `Threads`.
fn proc_status(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .with_context(|| format!("no {field}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("{field} value"))?
        .parse()?)
}

/// The control plane's server side: the processes a write costs, pinned to core 0.
const SERVER: [&str; 2] = ["kube-apiserver", "etcd"];

/// The pid of one of the control plane's processes, from the cluster's pid files.
fn pid_of(cluster: &TestCluster, component: &str) -> Option<u32> {
    std::fs::read_to_string(cluster.dir.join("pids").join(format!("{component}.pid")))
        .ok()
        .and_then(|p| p.trim().parse().ok())
}

/// CPU time the control plane's server side (kube-apiserver and etcd) has used so far, in
/// seconds: wall time moves with whatever else the shared machine runs, the server's work for a
/// phase much less, so the ratio of the two phases' CPU says what the operator costs the server.
struct ServerCpu {
    pids: Vec<u32>,
    ticks_per_second: f64,
}

impl ServerCpu {
    fn new(cluster: &TestCluster) -> ServerCpu {
        let pids = SERVER.iter().filter_map(|c| pid_of(cluster, c)).collect();
        // Linux reports CPU time in clock ticks; nearly always 100 a second.
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0);
        ServerCpu {
            pids,
            ticks_per_second,
        }
    }

    /// Seconds of CPU used so far by the server's processes (0 where none was found).
    fn used(&self) -> f64 {
        self.pids
            .iter()
            .filter_map(|&pid| cpu_ticks(pid).ok())
            .sum::<u64>() as f64
            / self.ticks_per_second
    }
}

/// User plus system CPU time of process `pid`, in clock ticks (`/proc/<pid>/stat`, fields 14
/// and 15; the fields are counted after the command name, which may hold spaces).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("no command name")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<u64>()?)
    };
    Ok(field(11)? + field(12)?)
}

/// How many sockets process `pid` holds open: its connections to the API server, each with
/// its own buffers and TLS state, and its listeners.
fn open_sockets(pid: u32) -> Result<usize> {
    let mut sockets = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        // A descriptor closed between the listing and the read is simply not counted.
        if let Ok(target) = std::fs::read_link(fd?.path()) {
            sockets += usize::from(target.to_string_lossy().starts_with("socket:"));
        }
    }
    Ok(sockets)
}

/// The operator's RSS once it has caught up (10 s without a reconcile write: deferred drafts
/// and reports are written by then), so that both sizes are measured in the same state: at
/// rest, the median of five readings over the second after [`AT_REST`] has passed since the
/// benchmark's last scrape of `/metrics` (from run 40). A reading taken right after that scrape
/// can find the scrape's own copy of the per-component numbers (about 160 bytes per component,
/// mapped apart from the heap above 128 KiB) not yet freed; that reading is printed beside.
async fn settled_rss(op: &Running, port: u16, tenants: usize, ready: Duration) -> Result<Settled> {
    let (caught_up, _) = wait_for_writes(port, Duration::from_secs(600), |reconcile, _| {
        reconcile == 0.0
    })
    .await?;
    let after_scrape = proc_status(op.id(), "VmRSS")?;
    tokio::time::sleep(AT_REST).await;
    let mut readings = Vec::new();
    for _ in 0..5 {
        readings.push(proc_status(op.id(), "VmRSS")?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    readings.sort_unstable();
    let rss = readings[readings.len() / 2];
    let anonymous = proc_status(op.id(), "RssAnon")?;
    eprintln!(
        "{tenants} tenants Ready in {:.1} s, caught up {:.0} s later; RSS {rss} KiB at rest \
         ({after_scrape} KiB right after a scrape; anonymous {} KiB, file-backed {} KiB), {} \
         threads, {} sockets",
        ready.as_secs_f64(),
        caught_up.as_secs_f64(),
        anonymous,
        proc_status(op.id(), "RssFile")?,
        proc_status(op.id(), "Threads")?,
        open_sockets(op.id())?
    );
    Ok(Settled {
        rss,
        after_scrape,
        anonymous,
    })
}

/// The operator's RSS in KiB, at rest and right after a scrape (see [`settled_rss`]).
#[derive(Clone, Copy, Default)]
struct Settled {
    rss: u64,
    after_scrape: u64,
    /// The anonymous part of the RSS at rest (heap, stacks): the operator's data. The rest is
    /// file-backed, the binary's code pages the process has touched (see run 40).
    anonymous: u64,
}

/// How long after its last scrape the operator's memory is read (see [`settled_rss`]).
const AT_REST: Duration = Duration::from_secs(2);

/// `regie_api_writes_total` by its `kind` label.
async fn scrape_writes(port: u16) -> Result<BTreeMap<String, f64>> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    let mut by_kind = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("regie_api_writes_total{"))
    {
        let kind = line
            .split("kind=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_string();
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *by_kind.entry(kind).or_insert(0.0) += v;
        }
    }
    Ok(by_kind)
}

/// etcd's WAL fsync histogram as scraped: the cumulative count at or under each bound (in
/// seconds, ascending), and the count of all. Fsyncs are where a disk shared with other
/// machines' work shows: one slow fsync holds every write behind it.
#[derive(Debug, Default)]
struct Fsyncs {
    buckets: Vec<(f64, f64)>,
    count: f64,
}

impl Fsyncs {
    async fn scrape(etcd_port: u16) -> Result<Fsyncs> {
        let text = reqwest::get(format!("http://127.0.0.1:{etcd_port}/metrics"))
            .await?
            .text()
            .await?;
        let mut fsyncs = Fsyncs::default();
        for line in text.lines() {
            let value = || line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let Some(rest) =
                line.strip_prefix("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"")
            {
                let bound = rest.split('"').next().and_then(|b| b.parse::<f64>().ok());
                if let (Some(bound), Some(v)) = (bound, value()) {
                    fsyncs.buckets.push((bound, v));
                }
            } else if line.starts_with("etcd_disk_wal_fsync_duration_seconds_count") {
                fsyncs.count = value().unwrap_or(0.0);
            }
        }
        fsyncs.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(fsyncs)
    }

    /// What etcd's WAL did between `self` and a later scrape.
    fn since(&self, later: &Fsyncs) -> FsyncsBetween {
        const SLOW: f64 = 0.128;
        let total = later.count - self.count;
        let at_or_under = |bound: f64| -> f64 {
            let of = |f: &Fsyncs| {
                f.buckets
                    .iter()
                    .find(|(b, _)| *b >= bound)
                    .map_or(f.count, |(_, v)| *v)
            };
            of(later) - of(self)
        };
        let slowest = later
            .buckets
            .iter()
            .map(|(b, _)| *b)
            .filter(|b| b.is_finite())
            .find(|b| at_or_under(*b) >= total);
        FsyncsBetween {
            total,
            slow: total - at_or_under(SLOW),
            slowest: slowest.filter(|_| total > 0.0),
        }
    }
}

/// Fsyncs between two scrapes: how many, how many over 128 ms (a bucket bound), and the bound
/// the slowest stayed under (None: none, or slower than the last finite bound).
struct FsyncsBetween {
    total: f64,
    slow: f64,
    slowest: Option<f64>,
}

impl std::fmt::Display for FsyncsBetween {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} WAL fsyncs, {:.0} over 128 ms, slowest ≤ {}",
            self.total,
            self.slow,
            self.slowest
                .map_or("—".to_string(), |b| format!("{:.0} ms", b * 1000.0))
        )
    }
}

/// etcd's client port, from the state the control-plane script writes.
fn etcd_port(cluster: &TestCluster) -> Option<u16> {
    std::fs::read_to_string(cluster.dir.join("cluster.env"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_PORT="))
        .and_then(|p| p.trim().parse().ok())
}

/// Where the scrapes around spaced tier changes go: etcd (when its port is known), the operator.
#[derive(Clone, Copy)]
struct Ports {
    etcd: Option<u16>,
    operator: u16,
}

/// What is scraped around spaced tier changes: etcd's fsyncs and the operator's writes.
struct Scrape {
    fsyncs: Option<Fsyncs>,
    writes: Option<BTreeMap<String, f64>>,
}

impl Scrape {
    async fn take(ports: Ports) -> Scrape {
        let fsyncs = match ports.etcd {
            Some(port) => Fsyncs::scrape(port).await.ok(),
            None => None,
        };
        Scrape {
            fsyncs,
            writes: scrape_writes(ports.operator).await.ok(),
        }
    }

    /// What happened between `self` and a later scrape: etcd's fsyncs, and the operator's
    /// writes that were not the change's own (SLA reports, invoices).
    fn until(&self, later: &Scrape) -> String {
        let fsyncs = match (&self.fsyncs, &later.fsyncs) {
            (Some(a), Some(b)) => a.since(b).to_string(),
            _ => "etcd not scraped".into(),
        };
        let writes = match (&self.writes, &later.writes) {
            (Some(a), Some(b)) => {
                let of = |kind: &str| {
                    b.get(kind).copied().unwrap_or(0.0) - a.get(kind).copied().unwrap_or(0.0)
                };
                format!(
                    "{:.0} SlaReport and {:.0} Invoice writes",
                    of("SlaReport"),
                    of("Invoice")
                )
            }
            _ => "operator not scraped".into(),
        };
        format!("{fsyncs}; {writes}")
    }
}

/// Scrapes the write counters every 10 s until `done(reconcile, sla)` holds for the writes per
/// second of the last 10 s, or `limit` has passed: how long that took, and that last SLA rate.
async fn wait_for_writes(
    port: u16,
    limit: Duration,
    done: impl Fn(f64, f64) -> bool,
) -> Result<(Duration, f64)> {
    let window = Duration::from_secs(10);
    let start = Instant::now();
    let mut before = scrape_writes(port).await?;
    loop {
        tokio::time::sleep(window).await;
        let after = scrape_writes(port).await?;
        let (reconcile, sla, _) = write_rates(&before, &after, window);
        if done(reconcile, sla) || start.elapsed() > limit {
            return Ok((start.elapsed(), sla));
        }
        before = after;
    }
}

/// Waits until the cluster holds at least `tenants` Invoices (each converged tenant gets a
/// draft for the month), or `limit` has passed.
async fn every_tenant_drafted(client: &Client, tenants: usize, limit: Duration) -> Result<()> {
    let api: Api<Invoice> = Api::all(client.clone());
    let start = Instant::now();
    loop {
        let drafted = api.list_metadata(&ListParams::default()).await?.items.len();
        if drafted >= tenants {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("{drafted} of {tenants} tenants have an invoice draft after {limit:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Writes per second between two scrapes: (reconcile writes, SLA measurement writes, by kind).
fn write_rates(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    window: Duration,
) -> (f64, f64, String) {
    let (mut reconcile, mut measured, mut detail) = (0.0, 0.0, Vec::new());
    for (kind, v) in after {
        let rate = (v - before.get(kind).copied().unwrap_or(0.0)) / window.as_secs_f64();
        if rate == 0.0 {
            continue;
        }
        // Month-to-date SLA figures are measurements that change as time passes, not drift.
        if kind == "SlaReport" {
            measured += rate;
        } else {
            reconcile += rate;
        }
        detail.push(format!("{kind} {rate:.3}/s"));
    }
    (reconcile, measured, detail.join(", "))
}

/// The `regie` binary to measure: `$REGIE_BIN` when set (a binary built beforehand, so that a
/// busy shared target directory cannot hold the benchmark up or swap the binary mid-run),
/// otherwise this checkout's release build, built now.
fn regie_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("REGIE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    eprintln!("building regie (release)…");
    let built = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "regie-operator",
            "--bin",
            "regie",
        ])
        .current_dir(repo_root())
        .status()?;
    if !built.success() {
        bail!("cargo build failed");
    }
    Ok(repo_root().join("target/release/regie"))
}

/// The allocator settings the chart gives the operator (`operator.mallocTunables` in
/// charts/regie/values.yaml), so that the benchmark measures what is deployed; empty there, or
/// `--malloc-defaults` here, measures glibc's defaults.
fn chart_malloc_tunables() -> Result<String> {
    let path = repo_root().join("charts/regie/values.yaml");
    let values: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{}", path.display()))?;
    Ok(values["operator"]["mallocTunables"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The operator process, killed when dropped: a benchmark that fails half-way must not leave
/// it running against a control plane that is going away.
struct Running(Process);

impl Running {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_operator(
    bin: &Path,
    kubeconfig: &Path,
    port: u16,
    concurrency: usize,
    malloc_tunables: &str,
) -> Result<Running> {
    // Read whole first, so that the binary is in the page cache however recently it was built:
    // the code pages a fault maps in with their cached neighbours count in the operator's
    // file-backed resident memory, which otherwise depends on the cache (run 40).
    std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    let mut cmd = if Command::new("taskset").arg("--version").output().is_ok() {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args([
        "run",
        "--leader-elect=false",
        &format!("--metrics-addr=127.0.0.1:{port}"),
        &format!("--concurrency={concurrency}"),
    ])
    .env("KUBECONFIG", kubeconfig)
    .env(
        "RUST_LOG",
        std::env::var("REGIE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .env_remove("GLIBC_TUNABLES")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if !malloc_tunables.is_empty() {
        cmd.env("GLIBC_TUNABLES", malloc_tunables);
    }
    Ok(Running(cmd.spawn()?))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Moves each of `names` (bronze) to gold and times the patch until the watch shows its
/// Deployment at three replicas; waits `settle` after each before the next.
async fn tier_changes(
    api: &Api<Tenant>,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, i32, Instant)>,
    names: &[String],
    settle: Duration,
    scraped: Option<Ports>,
) -> Result<(Vec<f64>, Vec<String>)> {
    let mut latencies = Vec::new();
    let mut during = Vec::new();
    for name in names {
        while rx.try_recv().is_ok() {}
        // Scraped outside the timed span, before the change and after it is seen.
        let before = match scraped {
            Some(ports) => Some(Scrape::take(ports).await),
            None => None,
        };
        let sent = Instant::now();
        let sent_wall = jiff::Timestamp::now();
        let patch = serde_json::json!({"spec": {"serviceLevel": "gold"}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let ns = format!("tenant-{name}");
        let deadline = sent + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((n, replicas, at))) if n == ns && replicas == 3 => {
                    let ms = at.duration_since(sent).as_secs_f64() * 1000.0;
                    latencies.push(ms);
                    if let (Some(ports), Some(before)) = (scraped, &before) {
                        during.push(before.until(&Scrape::take(ports).await));
                    }
                    if std::env::var_os("REGIE_BENCH_LOG").is_some() {
                        eprintln!(
                            "tier change of {name}: patched at {sent_wall}, seen after {ms:.0} ms"
                        );
                    }
                    break;
                }
                Ok(Some(_)) => {}
                _ => bail!("tier change of {name} not seen within 30 s"),
            }
        }
        tokio::time::sleep(settle).await;
    }
    Ok((latencies, during))
}

/// `--pause-controller-manager`: the controller-manager is stopped (SIGSTOP) while the floor and
/// the cold convergence are timed, and continued (SIGCONT) when each ends or this value is
/// dropped. Both then measure the API server serving one client alone: what the operator costs
/// beyond a bare client, without the controller-manager's reaction to either (pods, endpoints,
/// quota and budget statuses, events), which a bare client's clock mostly stops before and the
/// operator's does not. Nothing regie waits for comes from the controller-manager: a quota
/// without status restricts nothing, and Ready does not wait for a Deployment's status.
struct ControllerManagerPause {
    pid: Option<String>,
}

impl ControllerManagerPause {
    fn new(cluster: &TestCluster, wanted: bool) -> ControllerManagerPause {
        let pid = wanted
            .then(|| pid_of(cluster, "kube-controller-manager"))
            .flatten()
            .map(|p| p.to_string());
        if wanted && pid.is_none() {
            eprintln!("no controller-manager pid file: nothing to pause");
        }
        ControllerManagerPause { pid }
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = &self.pid {
            let _ = Command::new("kill").args([signal, pid]).output();
        }
    }

    fn stop(&self) {
        self.signal("-STOP");
    }

    fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for ControllerManagerPause {
    fn drop(&mut self) {
        self.resume();
    }
}

/// Runs a floor with the controller-manager paused (when asked to), and the CPU time the API
/// server and etcd spent meanwhile.
async fn with_server_cpu<T>(
    pause: &ControllerManagerPause,
    server_cpu: &ServerCpu,
    floor: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, f64)> {
    pause.stop();
    let before = server_cpu.used();
    let done = floor.await;
    let used = server_cpu.used() - before;
    pause.resume();
    Ok((done?, used))
}

/// A control plane of the benchmark's own with the examples' levels and price lists, its
/// API server and etcd pinned to core 0 (the operator gets core 1, where taskset exists).
async fn prepared_cluster() -> Result<(TestCluster, Client)> {
    let cluster = TestCluster::start()?;
    for pid in SERVER.iter().filter_map(|c| pid_of(&cluster, c)) {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &pid.to_string()])
            .output();
    }
    let client = cluster.client().await?;
    for l in levels() {
        apply(&Api::<ServiceLevel>::all(client.clone()), &l).await?;
    }
    for p in price_lists() {
        apply(&Api::<PriceList>::all(client.clone()), &p).await?;
    }
    Ok((cluster, client))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let first = (total / 4).max(1);
    let bin = regie_binary()?;
    // `--quick` measures cold convergence, idle writes and tier changes only: no floor, no
    // memory phase (for trying a change; the write-up needs the full run). `--skip-floor` keeps
    // the memory phase.
    let quick = args.iter().any(|a| a == "--quick");
    // `--memory-only` measures memory and nothing else (for trying a change of allocation).
    let memory_only = args.iter().any(|a| a == "--memory-only");
    let skip_floor = quick || memory_only || args.iter().any(|a| a == "--skip-floor");
    // The tier changes take 100 tenants that are still bronze: every third of the cold ones.
    if !memory_only && total < 300 {
        bail!(
            "the tier-change phase needs at least 300 tenants (got {total}); below that, use --memory-only"
        );
    }
    let port = 18090;
    let malloc_tunables = if args.iter().any(|a| a == "--malloc-defaults") {
        String::new()
    } else {
        chart_malloc_tunables()?
    };
    let launch =
        |kubeconfig: &Path| start_operator(&bin, kubeconfig, port, concurrency, &malloc_tunables);
    eprintln!(
        "operator allocator: {}",
        if malloc_tunables.is_empty() {
            "glibc's defaults"
        } else {
            &malloc_tunables
        }
    );

    // 1. Cold convergence of the first quarter, memory at that size, then the rest. On a
    // control plane of its own, stopped before the floor (from run 32): its tenants would
    // otherwise stay present through the tier changes, doubling the goal's 1,000.
    let (settled_first, settled_all) = if quick {
        (Settled::default(), Settled::default())
    } else {
        let (cluster, client) = prepared_cluster().await?;
        let names: Vec<String> = (0..total).map(|i| format!("bench-{i:04}")).collect();
        create_inputs(&client, &names[..first], concurrency).await?;
        let op = launch(&cluster.kubeconfig)?;
        let t_first = all_ready(&client, first, Duration::from_secs(1800)).await?;
        let settled_first = settled_rss(&op, port, first, t_first).await?;
        drop(op);
        create_inputs(&client, &names[first..], concurrency).await?;
        let op = launch(&cluster.kubeconfig)?;
        let t_all = all_ready(&client, total, Duration::from_secs(3600)).await?;
        eprintln!(
            "(a restart over {first} converged tenants and {} new)",
            total - first
        );
        let settled_all = settled_rss(&op, port, total, t_all).await?;
        drop(op);
        drop(cluster);
        (settled_first, settled_all)
    };
    let marginal =
        |first_kib: u64, all_kib: u64| (all_kib as f64 - first_kib as f64) / (total - first) as f64;
    let (rss_first, rss_all) = (settled_first.rss, settled_all.rss);
    let per_tenant = marginal(rss_first, rss_all);
    let per_tenant_after_scrape = marginal(settled_first.after_scrape, settled_all.after_scrape);
    let per_tenant_anonymous = marginal(settled_first.anonymous, settled_all.anonymous);
    if memory_only {
        println!("| operator RSS at {first} / {total} tenants | {rss_first} / {rss_all} KiB | — |");
        println!("| memory per tenant (marginal) | {per_tenant:.1} KiB | ≤ 6 KiB |");
        println!(
            "| the same, read right after a scrape (to run 39) | {per_tenant_after_scrape:.1} KiB | — |"
        );
        println!("| the same, anonymous memory alone | {per_tenant_anonymous:.1} KiB | — |");
        return Ok(());
    }

    // 2. The floor, on names of its own, on a fresh control plane. Not where memory is
    // measured (from run 20): the floor's children carry tenant labels, so the operator's
    // watches list them; present while memory was measured, they raised the first reading
    // (their list's transient stays in the allocator) and understated the marginal cost.
    let (cluster, client) = prepared_cluster().await?;
    let pdb_version = regie::controller::children::pdb_version(&client).await;
    let pause = ControllerManagerPause::new(
        &cluster,
        args.iter().any(|a| a == "--pause-controller-manager"),
    );
    let server_cpu = ServerCpu::new(&cluster);
    let (floor_time, floor_objects, floor_cpu) = if skip_floor {
        (Duration::ZERO, 0, 0.0)
    } else {
        let floor_names: Vec<String> = (0..total).map(|i| format!("floor-{i:04}")).collect();
        let ((floor_time, floor_objects), floor_cpu) = with_server_cpu(
            &pause,
            &server_cpu,
            floor(&client, &floor_names, concurrency, &pdb_version),
        )
        .await?;
        eprintln!(
            "floor: {floor_objects} objects in {:.1} s, server CPU {floor_cpu:.1} s",
            floor_time.as_secs_f64()
        );
        (floor_time, floor_objects, floor_cpu)
    };

    // Cold convergence proper: a fresh operator over all N tenants' inputs, none converged.
    let cold_names: Vec<String> = (0..total).map(|i| format!("cold-{i:04}")).collect();
    create_inputs(&client, &cold_names, concurrency).await?;
    pause.stop();
    let cpu_before = server_cpu.used();
    let start = Instant::now();
    let op = launch(&cluster.kubeconfig)?;
    let api: Api<Tenant> = Api::all(client.clone());
    let ready = ready_on_watch(&client, "cold-", total, start, Duration::from_secs(3600)).await;
    let cold = start.elapsed();
    let cold_cpu = server_cpu.used() - cpu_before;
    let operator_cpu = cpu_ticks(op.id()).map_or(0.0, |t| t as f64 / server_cpu.ticks_per_second);
    pause.resume();
    ready?;
    eprintln!(
        "cold convergence of {total} tenants: {:.1} s, server CPU {cold_cpu:.1} s, operator CPU {operator_cpu:.1} s",
        cold.as_secs_f64()
    );
    // Everything the operator wrote since it started, per tenant converged.
    let cold_writes = scrape_writes(port).await?;
    let cold_detail: Vec<String> = cold_writes
        .iter()
        .map(|(kind, n)| format!("{kind} {:.2}", n / total as f64))
        .collect();
    let cold_per_tenant = cold_writes.values().sum::<f64>() / total as f64;
    tokio::time::sleep(Duration::from_secs(5)).await;
    // The operator defers invoice drafts while reconciles are in progress, and drafts a
    // thousand tenants in waves with pauses between them: the idle window starts once every
    // tenant has its first draft (from run 35; before, a pause could start it, run 34) and then
    // 10 s have passed without a reconcile write.
    every_tenant_drafted(&client, total, Duration::from_secs(600)).await?;
    let (caught_up, _) = wait_for_writes(port, Duration::from_secs(600), |reconcile, _| {
        reconcile == 0.0
    })
    .await?;
    eprintln!(
        "caught up {:.0} s after all were Ready",
        caught_up.as_secs_f64() + 5.0
    );

    // 3. Idle: writes per second with nothing changing.
    let w0 = scrape_writes(port).await?;
    let idle_window = Duration::from_secs(60);
    tokio::time::sleep(idle_window).await;
    let w1 = scrape_writes(port).await?;
    let (idle, idle_measured, idle_detail) = write_rates(&w0, &w1, idle_window);

    // `--settle`: the tier changes wait until the SLA report writes of the components that
    // just started (each opens an incident: they never run here) have passed, so that they
    // measure a settled API server rather than that wave.
    let settled_after = if args.iter().any(|a| a == "--settle") {
        let (waited, sla) =
            wait_for_writes(port, Duration::from_secs(900), |_, sla| sla < 2.0).await?;
        eprintln!(
            "SLA report writes at {sla:.1}/s after {:.0} s",
            waited.as_secs_f64()
        );
        Some(waited)
    } else {
        None
    };

    // 4. Tier change → updated Deployment, observed on a watch.
    let deployments: Api<Deployment> = Api::all(client.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i32, Instant)>();
    let watch = tokio::spawn(async move {
        let stream = watcher::watcher(
            deployments,
            watcher::Config::default().labels("regie.dev/component=portal"),
        );
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            if let Event::Apply(d) = ev {
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                let _ = tx.send((d.namespace().unwrap_or_default(), replicas, Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    while rx.try_recv().is_ok() {}
    // Spaced: each change lands on a settled system (the previous one's statuses, ledger,
    // invoice and the controller-manager's reaction done) — the latency a member's pull request
    // sees. Back to back: the next change is sent the moment the previous one is seen, so each
    // also waits for the tail of the one before (a burst of changes).
    // A p99 of 50 samples is their slowest (the nearest rank): one outlier decides it. With
    // enough bronze tenants (every third cold one) the spaced changes are 200, whose p99 is the
    // third slowest; the burst stays at 50.
    let samples = 50;
    let spaced_samples = if total >= 3 * (200 + samples) {
        200
    } else {
        samples
    };
    let bronze = |i: usize| cold_names[(i * 3) % total].clone();
    let spaced: Vec<String> = (0..spaced_samples).map(bronze).collect();
    let burst: Vec<String> = (spaced_samples..spaced_samples + samples)
        .map(bronze)
        .collect();
    let ports = Ports {
        etcd: etcd_port(&cluster),
        operator: port,
    };
    // Printed beside the figures: until run 31 a full run kept the memory phase's tenants,
    // so its tier changes ran with twice the tenants the goal names.
    let present = api.list_metadata(&ListParams::default()).await?.items.len();
    let phase_start = Scrape::take(ports).await;
    let (mut latencies, during) =
        tier_changes(&api, &mut rx, &spaced, Duration::from_secs(2), Some(ports)).await?;
    let phase = phase_start.until(&Scrape::take(ports).await);
    let (mut burst_latencies, _) =
        tier_changes(&api, &mut rx, &burst, Duration::ZERO, None).await?;
    // The slowest spaced changes beside what etcd's disk and the operator's other writers did
    // meanwhile.
    let mut slowest: Vec<(f64, &String)> = latencies.iter().copied().zip(&during).collect();
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    let slowest_detail: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|(ms, d)| format!("{ms:.0} ms ({d})"))
        .collect();
    watch.abort();
    let p50 = percentile(&mut latencies.clone(), 0.5);
    let p99 = percentile(&mut latencies.clone(), 0.99);
    let burst_p50 = percentile(&mut burst_latencies.clone(), 0.5);
    let burst_p99 = percentile(&mut burst_latencies, 0.99);
    drop(op);

    // 5. The floor of the same writes (from run 41), the operator stopped: a bare client makes
    // every write the operator made per tenant until all were Ready, modelled on a silver
    // tenant no tier change touched.
    let same = if skip_floor {
        None
    } else {
        let same_names: Vec<String> = (0..total).map(|i| format!("same-{i:04}")).collect();
        create_inputs(&client, &same_names, concurrency).await?;
        let ((time, writes), cpu) = with_server_cpu(
            &pause,
            &server_cpu,
            floor_of_the_same_writes(
                &client,
                &same_names,
                &cold_names[1],
                concurrency,
                &pdb_version,
            ),
        )
        .await?;
        eprintln!(
            "floor of the same writes: {writes} writes in {:.1} s, server CPU {cpu:.1} s",
            time.as_secs_f64()
        );
        Some((time, writes, cpu))
    };

    let ratio = cold.as_secs_f64() / floor_time.as_secs_f64();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## Operator benchmark ({total} tenants, concurrency {concurrency}, {cpus} cores)");
    println!("(load average at the end: {})", load.trim());
    println!("| measure | result | goal |");
    println!("|---|---|---|");
    println!(
        "| floor: bare client SSA of {floor_objects} objects | {:.1} s | — |",
        floor_time.as_secs_f64()
    );
    println!(
        "| cold convergence of {total} tenants (all Ready) | {:.1} s | — |",
        cold.as_secs_f64()
    );
    println!("| cold convergence / floor | {ratio:.2}× | ≤ 1.2× |");
    if skip_floor {
        println!(
            "(server CPU, kube-apiserver + etcd: cold convergence {cold_cpu:.1} s; the operator's own {operator_cpu:.1} s on its core)"
        );
    } else {
        println!(
            "(server CPU, kube-apiserver + etcd: floor {floor_cpu:.1} s, cold convergence {cold_cpu:.1} s = {:.2}×; the operator's own {operator_cpu:.1} s on its core)",
            cold_cpu / floor_cpu
        );
    }
    println!(
        "(writes per tenant until all were Ready: {cold_per_tenant:.1} — {})",
        cold_detail.join(", ")
    );
    if let Some((time, writes, cpu)) = same {
        println!(
            "| floor of the same writes: bare client, {writes} writes ({:.2} per tenant) | {:.1} s | — |",
            writes as f64 / total as f64,
            time.as_secs_f64()
        );
        println!(
            "| cold convergence / floor of the same writes | {:.2}× | — |",
            cold.as_secs_f64() / time.as_secs_f64()
        );
        println!(
            "(server CPU of the floor of the same writes {cpu:.1} s; cold convergence / it {:.2}×)",
            cold_cpu / cpu
        );
    }
    println!(
        "| tier change → Deployment updated (watch, {spaced_samples} spaced, {present} tenants present), p50 | {p50:.0} ms | ≤ 50 ms |"
    );
    println!(
        "| tier change → Deployment updated (watch, {spaced_samples} spaced, {present} tenants present), p99 | {p99:.0} ms | ≤ 250 ms |"
    );
    println!(
        "| tier changes back to back (burst of {samples}), p50 / p99 | {burst_p50:.0} / {burst_p99:.0} ms | — |"
    );
    println!(
        "(during the spaced changes: {phase}; the slowest three: {})",
        slowest_detail.join(", ")
    );
    if let Some(waited) = settled_after {
        println!(
            "(tier changes measured after waiting {:.0} s for the SLA report writes to settle)",
            waited.as_secs_f64()
        );
    }
    println!(
        "(the idle window began {:.0} s after all were Ready, once no reconcile write had come for 10 s)",
        caught_up.as_secs_f64() + 5.0
    );
    println!("| idle writes per second (60 s window), reconcile | {idle:.3} | 0 |");
    println!(
        "| idle writes per second (60 s window), SLA month-to-date figures | {idle_measured:.3} | — |"
    );
    println!("(idle writes by kind: {idle_detail})");
    println!("| operator RSS at {first} tenants | {rss_first} KiB | — |");
    println!("| operator RSS at {total} tenants | {rss_all} KiB | — |");
    println!("| marginal memory per tenant | {per_tenant:.1} KiB | ≤ 6 KiB |");
    println!(
        "| the same, read right after a scrape (to run 39) | {per_tenant_after_scrape:.1} KiB | — |"
    );
    println!("| the same, anonymous memory alone | {per_tenant_anonymous:.1} KiB | — |");
    println!(
        "(median tier-change latency over {spaced_samples} changes: {:.0} ms)",
        median(&mut latencies)
    );
    drop(Arc::new(()));
    Ok(())
}
