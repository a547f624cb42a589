//! High availability and least privilege, against a real control plane: two operators that
//! run with nothing but the ServiceAccount token and the RBAC `regie rbac` prints; exactly one
//! leads and writes, and when it dies the other takes over within the lease duration. The API
//! server refuses none of their requests, through a tenant's creation and its deletion — read
//! from its audit log of the operators' user, so no one else's refusal can blur it: the RBAC is
//! enough, which is the half of "least privilege" a test can check.

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

/// The user the operators authenticate as: their ServiceAccount.
const OPERATOR_USER: &str = "system:serviceaccount:regie-system:regie";

/// Every request of the operators' ServiceAccount the API server refused — not authenticated
/// (401) or not authorized (403) — from its audit log, which records that user's requests and
/// nobody else's: the controller-manager's refusals (it keeps creating in a terminating
/// namespace) cannot hide or pass for the operators'.
fn refusals(cluster: &Cluster) -> Vec<String> {
    let audited = cluster.audited().expect("the audit log");
    assert!(
        audited
            .iter()
            .any(|e| e.user.username == OPERATOR_USER
                && e.access() == "patch regie.dev/tenants/status"),
        "the audit log records the operators' requests ({} events)",
        audited.len()
    );
    audited
        .iter()
        .filter(|e| e.user.username == OPERATOR_USER && matches!(e.code(), 401 | 403))
        .map(|e| {
            format!(
                "{} {} → {}: {}",
                e.access(),
                e.request_u_r_i,
                e.code(),
                e.response_status
                    .as_ref()
                    .map_or("", |s| s.message.as_str())
            )
        })
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
    let cluster = TestCluster::start_auditing(&[OPERATOR_USER]).expect("control plane");
    let admin = cluster.client().await.expect("admin client");
    let sa = service_account_client(&cluster, &admin).await;
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
    eventually(
        "tholen's roll-up: 210 accounts, 2/2 components",
        Duration::from_secs(60),
        || {
            let api: Api<regie_crds::Tenant> = Api::all(admin.clone());
            async move {
                let st = api.get("tholen").await?.status.unwrap_or_default();
                Ok(st.accounts == Some(210) && st.components_summary.as_deref() == Some("2/2"))
            }
        },
    )
    .await
    .expect("tholen's status counts its packages and components");
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
    assert_eq!(
        refusals(&cluster),
        Vec::<String>::new(),
        "the API server refused the operators"
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
    // The final invoice was numbered with the counter regie creates in its own namespace.
    let counters: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), NS);
    assert!(
        counters
            .get_opt("regie-invoice-numbers")
            .await
            .expect("read")
            .is_some(),
        "tholen's final invoice was numbered with the counter regie created"
    );
    // Not one request of theirs refused, offboarding included (the controller-manager's
    // creations in the terminating namespace are refused too, but they are not in the log).
    assert_eq!(
        refusals(&cluster),
        Vec::<String>::new(),
        "the API server refused the operators"
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
    // The check above sees a refusal when there is one: the operators' identity may not read
    // Secrets across the cluster, and the audit log says so.
    let secrets: Api<Secret> = Api::all(sa.clone());
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("the operators' identity listed every Secret: {other:?}"),
    }
    let seen = eventually_value(|| {
        let refused = refusals(&cluster);
        (!refused.is_empty()).then_some(refused)
    })
    .await;
    assert!(
        seen.len() == 1 && seen[0].starts_with("list /secrets /api/v1/secrets"),
        "the audit log shows the one refusal: {seen:?}"
    );
}

/// The first `Some` of `probe` within 10 s (the audit log is written as requests complete).
async fn eventually_value<T>(probe: impl Fn() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = probe() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing within 10 s")
}
