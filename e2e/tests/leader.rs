//! High availability and least privilege, against a real control plane: two operators that
//! run with nothing but the ServiceAccount token and the RBAC `regie rbac` prints; exactly one
//! leads and writes, and when it dies the other takes over within the lease duration. The API
//! server refuses none of their requests, through a tenant's creation and its deletion — the
//! RBAC is enough, which is the half of "least privilege" a test can check.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use regie::controller::{Options, leader::LeaseConfig};
use regie_e2e::cluster::{Cluster, TestCluster, regie_files, repo_root};
use regie_e2e::operator::{RunningOperator, eventually, tenants_ready};

const NS: &str = "regie-system";

/// A client that authenticates as the operator's ServiceAccount, with the RBAC of `regie rbac`.
async fn service_account_client(cluster: &Cluster, admin: &Client) -> Client {
    cluster
        .kubectl_ok(&["create", "namespace", NS])
        .expect("namespace");
    cluster
        .kubectl_ok(&["-n", NS, "create", "serviceaccount", "regie"])
        .expect("service account");
    // The very manifests `regie rbac` prints.
    let rbac: String = regie::rbac::manifests(NS, "regie", "edit", None)
        .iter()
        .map(|m| format!("---\n{}", serde_yaml::to_string(m).expect("serializes")))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("rbac.yaml");
    std::fs::write(&f, rbac).expect("write");
    // The admin may grant `bind` on `edit` only because it holds it; that is what the chart does.
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", &f.to_string_lossy()])
        .expect("rbac applies");
    // v1.20 creates a token Secret for every ServiceAccount.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let mut token = None;
    for _ in 0..300 {
        for s in secrets
            .list(&Default::default())
            .await
            .expect("list secrets")
        {
            let is_sa = s.type_.as_deref() == Some("kubernetes.io/service-account-token")
                && s.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/service-account.name"))
                    .map(String::as_str)
                    == Some("regie");
            if let Some(t) = s
                .data
                .as_ref()
                .and_then(|d| d.get("token"))
                .filter(|_| is_sa)
            {
                token = Some(String::from_utf8_lossy(&t.0).into_owned());
            }
        }
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin_kc = Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig");
    let server = admin_kc.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server");
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\", insecure-skip-tls-verify: true}}}}]\nusers: [{{name: regie, user: {{token: \"{}\"}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: regie}}}}]\ncurrent-context: c\n",
        token.expect("token")
    );
    let kc: Kubeconfig = serde_yaml::from_str(&kc).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    regie::api_client::build(config, 16).expect("client")
}

fn lease(identity: &str) -> LeaseConfig {
    LeaseConfig {
        duration: Duration::from_secs(4),
        renew_every: Duration::from_secs(1),
        retry_every: Duration::from_millis(500),
        ..LeaseConfig::new(NS, identity)
    }
}

/// The API server's count of requests it answered 403, by verb, resource and subresource. In
/// this test only the operators can be refused: the admin holds every right.
async fn refused(admin: &Client) -> std::collections::BTreeMap<String, u64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = admin
        .request_text(request)
        .await
        .expect("the API server's metrics");
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.contains("code=\"403\"") {
            continue;
        }
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let key = format!(
            "{} {}/{}/{}",
            label("verb"),
            label("group"),
            label("resource"),
            label("subresource")
        );
        *counts.entry(key).or_insert(0) += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
    }
    counts
}

/// The refusals counted in `after` but not in `before`, of the keys `counted` accepts.
fn new_refusals(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    counted: impl Fn(&str) -> bool,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, n)| before.get(*k).copied().unwrap_or(0) < **n && counted(k))
        .map(|(k, n)| format!("{k}: {n}"))
        .collect()
}

async fn holder(admin: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NS);
    leases
        .get_opt("regie-leader")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn one_leader_writes_with_least_privilege_and_fails_over() {
    let cluster = TestCluster::start().expect("control plane");
    let admin = cluster.client().await.expect("admin client");
    let sa = service_account_client(&cluster, &admin).await;
    let refused_before = refused(&admin).await;
    // Invoice numbers are counted in regie's own namespace, as `regie run` does.
    let options = || Options {
        namespace: NS.into(),
        ..Options::default()
    };

    let a = RunningOperator::start(sa.clone(), options(), Some(lease("regie-a")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = RunningOperator::start(sa.clone(), options(), Some(lease("regie-b")));
    let examples = repo_root().join("examples");
    cluster
        .apply_files(&regie_files(&examples.join("catalogue")), &[])
        .expect("catalogue");
    cluster
        .apply_files(&[examples.join("tenants/tholen/tenant.yaml")], &[])
        .expect("tenant");
    tenants_ready(&admin, &["tholen"], Duration::from_secs(60))
        .await
        .expect("the leader, with only its RBAC, makes tholen Ready");
    // Its packages and components (something to bill when it leaves) in its new namespace.
    cluster
        .apply_files(&regie_files(&examples.join("tenants/tholen")), &[])
        .expect("packages and components");
    tenants_ready(&admin, &["tholen"], Duration::from_secs(60))
        .await
        .expect("tholen Ready with its packages and components");
    let (leader, standby, standby_name) = match holder(&admin).await.as_deref() {
        Some("regie-a") => (a, b, "regie-b"),
        Some("regie-b") => (b, a, "regie-a"),
        other => panic!("no leader holds the lease: {other:?}"),
    };
    assert!(leader.metrics.total_writes() > 0, "the leader writes");
    assert_eq!(
        standby.metrics.total_writes(),
        0,
        "the standby writes nothing:\n{}",
        standby.metrics.render()
    );

    // The leader dies without a word; the standby takes over within the lease duration.
    let killed = Instant::now();
    leader.kill();
    eventually(
        "the standby to take the lease",
        Duration::from_secs(15),
        || {
            let admin = admin.clone();
            async move { Ok(holder(&admin).await.as_deref() == Some(standby_name)) }
        },
    )
    .await
    .expect("failover");
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(4 + 2),
        "failover took {took:?}, lease duration is 4 s"
    );
    cluster
        .apply_files(&[examples.join("tenants/werkplein/tenant.yaml")], &[])
        .expect("tenant");
    tenants_ready(&admin, &["werkplein"], Duration::from_secs(60))
        .await
        .expect("the new leader reconciles");
    assert!(standby.metrics.total_writes() > 0, "the new leader writes");
    let refused_now = refused(&admin).await;
    assert_eq!(
        new_refusals(&refused_before, &refused_now, |_| true),
        Vec::<String>::new(),
        "the API server refused the operators (verb resource/subresource: count)"
    );

    // Offboarding with the same rights: the final invoice, the namespace, the finalizer.
    cluster
        .kubectl_ok(&["delete", "tenant", "tholen", "--wait=false"])
        .expect("delete");
    eventually(
        "tholen's deletion to complete",
        Duration::from_secs(120),
        || {
            let api: Api<regie_crds::Tenant> = Api::all(admin.clone());
            async move { Ok(api.get_opt("tholen").await?.is_none()) }
        },
    )
    .await
    .expect("the finalizer is released");
    // While a namespace terminates, the controller-manager keeps creating in it — its token
    // Secret, root-CA ConfigMap, the Deployments' ReplicaSets and Pods, EndpointSlices, Events
    // — and the namespace lifecycle admission refuses that with a 403 too: creations of other
    // kinds than regie's own and its Events are not counted here. The one regie creates, the
    // invoice numbers' counter, must exist; its other writes (deletions, patches, updates)
    // count.
    let counters: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), NS);
    assert!(
        counters
            .get_opt("regie-invoice-numbers")
            .await
            .expect("read")
            .is_some(),
        "tholen's final invoice was numbered with the counter regie created"
    );
    assert_eq!(
        new_refusals(
            &refused_now,
            &refused(&admin).await,
            // Any creation but of regie's own kinds and events.k8s.io Events (the
            // controller-manager records core Events).
            |k| !k.starts_with("POST ")
                || k.starts_with("POST regie.dev/")
                || k.starts_with("POST events.k8s.io/")
        ),
        Vec::<String>::new(),
        "the API server refused the operators (verb resource/subresource: count)"
    );
    standby
        .stop()
        .await
        .expect("graceful stop releases the lease");
    assert_eq!(
        holder(&admin).await,
        None,
        "a clean stop hands the lease back"
    );
}
