//! `regie run` as the process a Deployment runs, against a real control plane of its own: what
//! the kubelet, Prometheus and a log collector see of it — `/healthz` and `/readyz`, a
//! `/metrics` page that `promtool check metrics` accepts, JSON log lines that name the tenant
//! they are about — and that SIGTERM (what the kubelet sends on a rollout) ends it cleanly:
//! exit code 0 and its leader Lease released, so that the next replica leads at once instead of
//! after the lease duration.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use regie_e2e::cluster::{TestCluster, regie_bin, repo_root};
use regie_e2e::operator::{eventually, tenants_ready};
use serde_json::Value;

const NS: &str = "regie-system";
const IDENTITY: &str = "regie-process-test";

/// The process, killed if the test fails before it ends it.
struct Regie(Child);

impl Drop for Regie {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The JSON log lines written so far.
fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Whether `v` holds `key` with the string value `value` at any depth (a log line's own fields,
/// or those of the spans it was written in).
fn holds(v: &Value, key: &str, value: &str) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| (k == key && v == value) || holds(v, key, value)),
        Value::Array(a) => a.iter().any(|v| holds(v, key, value)),
        _ => false,
    }
}

/// Polls `f` every 100 ms until it gives something, for at most 30 s; the log is shown if not.
async fn polled<T>(what: &str, log: &Path, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}; regie's log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes to `to` the kubeconfig `from` with the line holding `key` replaced by
/// `rewrite(indent, line)`.
fn kubeconfig_with(from: &Path, to: &Path, key: &str, rewrite: impl Fn(&str, &str) -> String) {
    let config = std::fs::read_to_string(from).expect("kubeconfig");
    let config: Vec<String> = config
        .lines()
        .map(|l| match l.find(key) {
            Some(at) => rewrite(&l[..at], l),
            None => l.to_string(),
        })
        .collect();
    std::fs::write(to, config.join("\n")).expect("write kubeconfig");
}

/// Starts `regie run` against the cluster of `kubeconfig`, logging JSON to `log`.
fn start(kubeconfig: &Path, log: &Path, identity: &str) -> Regie {
    Regie(
        Command::new(regie_bin())
            .args([
                "run",
                "--metrics-addr=127.0.0.1:0",
                "--log-json",
                "--lease-duration=15",
                &format!("--leader-election-namespace={NS}"),
                &format!("--identity={identity}"),
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start regie run"),
    )
}

/// The address the process serves on, from its own log: port 0 lets the system choose.
async fn served_at(log: &Path) -> String {
    polled("the address logged", log, || {
        log_lines(log).into_iter().find_map(|l| {
            (l["fields"]["message"] == "serving /metrics, /healthz and /readyz")
                .then(|| l["fields"]["addr"].as_str().map(String::from))
                .flatten()
        })
    })
    .await
}

async fn holder(leases: &Api<Lease>) -> anyhow::Result<Option<String>> {
    Ok(leases
        .get_opt("regie-leader")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

#[tokio::test]
async fn regie_run_serves_probes_and_metrics_logs_json_and_stops_cleanly_on_sigterm() {
    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    cluster
        .kubectl_ok(&["create", "namespace", NS])
        .expect("regie's namespace");
    let work = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::new();
    let get_from = |addr: &str, path: &str| {
        let (http, url) = (http.clone(), format!("http://{addr}{path}"));
        async move {
            let r = http.get(url).send().await.expect("request");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };

    // A replica that cannot reach the API server is alive but not ready, and says why: a
    // rollout waits for it rather than replace a replica that works.
    let unreachable = work.path().join("unreachable.kubeconfig");
    kubeconfig_with(&cluster.kubeconfig, &unreachable, "server:", |indent, _| {
        format!("{indent}server: https://127.0.0.1:9")
    });
    let stray_log = work.path().join("unreachable.log");
    let stray = start(&unreachable, &stray_log, "regie-unreachable");
    let stray_addr = served_at(&stray_log).await;
    assert_eq!(
        get_from(&stray_addr, "/healthz").await,
        (200, "ok".to_string())
    );
    let (code, why) = get_from(&stray_addr, "/readyz").await;
    assert_eq!(code, 503, "{why}");
    assert!(why.starts_with("not ready: "), "{why}");
    drop(stray);

    // One that may list Tenants but not the components: the leader it would become waits for
    // ever for its caches, so it is not ready either, and names what it cannot read.
    cluster
        .kubectl_ok(&[
            "create",
            "clusterrole",
            "tenants-only",
            "--verb=list",
            "--resource=tenants.regie.dev",
        ])
        .expect("a role that reads Tenants only");
    cluster
        .kubectl_ok(&[
            "create",
            "clusterrolebinding",
            "tenants-only",
            "--clusterrole=tenants-only",
            "--user=regie-half",
        ])
        .expect("bound to a user of its own");
    let half = work.path().join("half.kubeconfig");
    kubeconfig_with(&cluster.kubeconfig, &half, "token:", |indent, line| {
        format!("{line}\n{indent}as: regie-half")
    });
    let half_log = work.path().join("half.log");
    let half_rbac = start(&half, &half_log, "regie-half");
    let half_addr = served_at(&half_log).await;
    eventually(
        "/readyz to name the kind it cannot list",
        Duration::from_secs(30),
        || {
            let get = get_from(&half_addr, "/readyz");
            async move {
                let (code, why) = get.await;
                Ok(code == 503 && why.contains("cannot list hostingcomponents.regie.dev"))
            }
        },
    )
    .await
    .expect("a replica without RBAC for a kind it watches is not ready");
    drop(half_rbac);

    let log = work.path().join("regie.log");
    let mut regie = start(&cluster.kubeconfig, &log, IDENTITY);
    let addr = served_at(&log).await;
    let get = |path: &str| get_from(&addr, path);
    assert_eq!(get("/healthz").await, (200, "ok".to_string()));
    // Ready once it has listed Tenants with its credentials.
    eventually("/readyz", Duration::from_secs(30), || async {
        Ok(get("/readyz").await == (200, "ok".to_string()))
    })
    .await
    .expect("ready once the API server answers");

    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    eventually("regie to lead", Duration::from_secs(30), || {
        let leases = leases.clone();
        async move { Ok(holder(&leases).await?.as_deref() == Some(IDENTITY)) }
    })
    .await
    .expect("the only replica takes the lease");
    let examples = repo_root().join("examples");
    cluster
        .apply_files(
            &[
                examples.join("catalogue/service-levels.yaml"),
                examples.join("catalogue/pricelist-2026.yaml"),
                examples.join("catalogue/cost-pools.yaml"),
                examples.join("tenants/tholen/tenant.yaml"),
            ],
            &[],
        )
        .expect("catalogue and a tenant");
    tenants_ready(&client, &["tholen"], Duration::from_secs(60))
        .await
        .expect("the tenant reconciled");

    // What Prometheus scrapes: regie's own series (the inventory gauges are recounted every
    // 10 s), in an exposition promtool finds no fault in.
    let wanted = [
        "regie_reconcile_total{kind=\"Tenant\",result=\"ok\"}".to_string(),
        "regie_api_writes_total{kind=\"Namespace\",verb=\"apply\"} 1".to_string(),
        "regie_managed_objects{kind=\"Namespace\"} 1".to_string(),
        "regie_tenants{service_level=\"bronze\"} 1".to_string(),
        format!("regie_leader{{identity=\"{IDENTITY}\"}} 1"),
    ];
    let page = std::cell::RefCell::new(String::new());
    let scraped = eventually(
        "regie's series on /metrics",
        Duration::from_secs(30),
        || {
            let (get, page, wanted) = (&get, &page, &wanted);
            async move {
                let (code, text) = get("/metrics").await;
                let found = wanted.iter().all(|w| text.contains(w.as_str()));
                *page.borrow_mut() = text;
                Ok(code == 200 && found)
            }
        },
    )
    .await;
    if let Err(e) = scraped {
        panic!("{e}: {wanted:#?} not all on the page:\n{}", page.borrow());
    }
    let page = page.into_inner();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (installed by e2e/install-deps)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write the page");
    let checked = promtool.wait_with_output().expect("promtool");
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // What a log collector reads: a reconcile's lines carry the tenant as a field (at the
    // default level a reconcile that changes nothing much logs nothing; offboarding does).
    cluster
        .kubectl_ok(&["delete", "tenant", "tholen", "--wait=false"])
        .expect("delete the tenant");
    let tenants: Api<regie_crds::Tenant> = Api::all(client.clone());
    eventually("tholen offboarded", Duration::from_secs(60), || {
        let tenants = tenants.clone();
        async move { Ok(tenants.get_opt("tholen").await?.is_none()) }
    })
    .await
    .expect("the tenant's finalizer released");
    // The line that says so is written once the API server has answered the finalizer's
    // release, which this test can see first.
    let named = eventually(
        "a log line naming tholen",
        Duration::from_secs(10),
        || async { Ok(log_lines(&log).iter().any(|l| holds(l, "tenant", "tholen"))) },
    )
    .await;
    assert!(
        named.is_ok(),
        "no log line names tenant tholen as a field:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // SIGTERM: in-flight work finishes, the lease is handed back, exit 0.
    let pid = regie.0.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success(), "SIGTERM sent");
    let status = polled("regie to exit after SIGTERM", &log, || {
        regie.0.try_wait().expect("wait")
    })
    .await;
    assert!(
        status.success(),
        "regie ended with {status} on SIGTERM:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        holder(&leases).await.expect("lease"),
        None,
        "the lease is released for the next replica"
    );
}
