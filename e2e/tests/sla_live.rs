//! The SLA prober inside `regie run`, end to end: a control plane of its own, a ServiceLevel
//! probing every second around the clock, one tenant with SaaS components on a loopback target
//! server (healthy, failing, flapping, hanging) and one whose URL is a cloud-metadata address.
//! The outcomes must reach the components' conditions, `/metrics` and the tenant's month-to-date
//! `SlaReport`; a restarted operator goes on from the stored report.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, ListParams};
use regie::controller::Options;
use regie::sla::target::ProbePolicy;
use regie_crds::generated::ComponentCompliance;
use regie_crds::status::{AVAILABLE, STALLED, find};
use regie_crds::{HostingComponent, SlaReport};
use regie_e2e::cluster::{Cluster, TestCluster};
use regie_e2e::operator::{RunningOperator, eventually};
use regie_e2e::targets::TargetServer;

const TENANT: &str = "sla-live";
const NS: &str = "tenant-sla-live";
const WAIT: Duration = Duration::from_secs(90);

const LEVEL_AND_TENANT: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: ServiceLevel
metadata:
  name: live
spec:
  rank: 1
  timeZone: Europe/Amsterdam
  serviceHours: ["Mon-Sun 00:00-24:00"]
  responseTimes: {urgent: 60m, other: 48h}
  kpiReport: monthly
  localSupport: digital
  securityManagement: basic
  supplierManagement: none
  monitoring: 24x7
  availability: {target: "99.0"}
  probe: {interval: 1s, timeout: 1s}
  workload: {minReplicas: 1, minAvailable: 0}
  credits:
    - {below: "99.0", percent: 5}
---
apiVersion: regie.dev/v1alpha1
kind: Tenant
metadata:
  name: sla-live
spec:
  displayName: SLA live
  serviceLevel: live
  membership:
    joined: "2024-01-01"
"#;

fn component(name: &str, url: &str) -> String {
    format!(
        r#"---
apiVersion: regie.dev/v1alpha1
kind: HostingComponent
metadata:
  name: {name}
  namespace: {NS}
spec:
  class: applicationHosting
  saas:
    url: "{url}"
  probe:
    expectStatus: 200
"#
    )
}

fn apply(cluster: &Cluster, dir: &std::path::Path, file: &str, yaml: &str) {
    let path = dir.join(file);
    std::fs::write(&path, yaml).expect("write manifest");
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", &path.to_string_lossy()])
        .expect("manifest applies");
}

async fn condition(
    api: &Api<HostingComponent>,
    name: &str,
    type_: &str,
) -> anyhow::Result<Option<(String, String, String)>> {
    let c = api.get(name).await?;
    let conds = c.status.unwrap_or_default().conditions;
    Ok(find(&conds, type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())))
}

async fn report(client: &Client) -> anyhow::Result<Option<SlaReport>> {
    let api: Api<SlaReport> = Api::all(client.clone());
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|r| r.spec.tenant == TENANT))
}

fn figures(r: &SlaReport, component: &str) -> Option<ComponentCompliance> {
    r.status
        .as_ref()?
        .components
        .iter()
        .find(|c| c.component == component)
        .cloned()
}

#[tokio::test]
async fn sla_prober_live() {
    let targets = TargetServer::start().await.expect("target server");
    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let options = || Options {
        probe_policy: ProbePolicy {
            allow_loopback: true,
            ..ProbePolicy::default()
        },
        ..Options::default()
    };
    let op = RunningOperator::start(client.clone(), options(), None);

    apply(&cluster, dir.path(), "tenant.yaml", LEVEL_AND_TENANT);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    eventually("the tenant namespace", WAIT, || {
        let namespaces = namespaces.clone();
        async move { Ok(namespaces.get_opt(NS).await?.is_some()) }
    })
    .await
    .expect("namespace");
    let components = [
        component("healthy", &targets.url("/healthy")),
        component("failing", &targets.url("/failing")),
        component("flapping", &targets.url("/flapping?pattern=10")),
        component("hanging", &targets.url("/hanging")),
        component("refused", "http://169.254.169.254/latest/meta-data"),
    ]
    .concat();
    apply(&cluster, dir.path(), "components.yaml", &components);

    // Conditions: the prober owns Available of SaaS components; a refused target is Stalled.
    let api: Api<HostingComponent> = Api::namespaced(client.clone(), NS);
    let expect = [
        ("healthy", AVAILABLE, "True", "ProbeSucceeded"),
        ("failing", AVAILABLE, "False", "ProbeFailed"),
        ("hanging", AVAILABLE, "False", "ProbeFailed"),
        ("refused", STALLED, "True", "ProbeTargetRefused"),
    ];
    for (name, type_, status, reason) in expect {
        eventually(
            &format!("{name}: {type_}={status} ({reason})"),
            WAIT,
            || {
                let api = api.clone();
                async move {
                    let got = condition(&api, name, type_).await?;
                    if let Some(g) = &got
                        && g.0 == status
                        && g.1 == reason
                    {
                        return Ok(true);
                    }
                    anyhow::bail!("now {got:?}")
                }
            },
        )
        .await
        .expect("condition");
    }
    let (_, _, message) = condition(&api, "failing", AVAILABLE)
        .await
        .expect("read")
        .expect("Available");
    assert!(message.contains("503"), "names the status: {message}");
    let (_, _, message) = condition(&api, "refused", STALLED)
        .await
        .expect("read")
        .expect("Stalled");
    assert!(
        message.contains("refused") && message.contains("169.254"),
        "says why: {message}"
    );
    assert_eq!(
        targets.hits_path("/latest/meta-data"),
        0,
        "the refused target is never contacted (and is not on this server anyway)"
    );

    // Metrics: a regie_probe_success series per probed component, none for the refused one.
    let metrics = op.metrics.render();
    let series = |component: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("regie_probe_success{")
                    && l.contains(&format!("component=\"{component}\""))
            })
            .map(str::to_string)
    };
    for (component, value) in [("healthy", " 1"), ("failing", " 0"), ("hanging", " 0")] {
        let line = series(component).unwrap_or_else(|| panic!("no series for {component}"));
        assert!(line.ends_with(value), "{line}");
        assert!(line.contains("tenant=\"sla-live\""), "{line}");
        assert!(line.contains("service_level=\"live\""), "{line}");
    }
    assert!(series("flapping").is_some(), "flapping is probed");
    assert!(series("refused").is_none(), "refused is never probed");

    // The month-to-date report: downtime for the failing component, none for the healthy one.
    eventually("the SlaReport with every probed component", WAIT, || {
        let client = client.clone();
        async move {
            let Some(r) = report(&client).await? else {
                anyhow::bail!("no SlaReport yet")
            };
            let all = ["healthy", "failing", "flapping", "hanging"]
                .iter()
                .all(|c| figures(&r, c).is_some());
            Ok(all && figures(&r, "failing").is_some_and(|f| f.down_seconds > 0))
        }
    })
    .await
    .expect("report");
    let r = report(&client).await.expect("read").expect("report");
    assert!(
        r.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("sla-live-20")),
        "named <tenant>-<yyyy-mm>: {:?}",
        r.metadata.name
    );
    assert_eq!(r.spec.period.len(), 7, "a month: {}", r.spec.period);
    let healthy = figures(&r, "healthy").expect("healthy");
    assert_eq!(healthy.down_seconds, 0, "{healthy:?}");
    assert!(healthy.incidents.is_empty(), "{healthy:?}");
    assert!(healthy.window_seconds > 0);
    let failing = figures(&r, "failing").expect("failing");
    assert!(failing.down_seconds > 0, "{failing:?}");
    assert_eq!(
        failing.incidents.len(),
        1,
        "one run of failures: {failing:?}"
    );
    assert!(
        failing.incidents[0].end.is_none(),
        "still going: {failing:?}"
    );
    assert!(failing.last_sample.as_ref().is_some_and(|s| !s.success));
    assert!(figures(&r, "refused").is_none(), "refused is not measured");

    // A restart goes on from the stored report: the failing component's incident stays one
    // incident with the same start, not a new one.
    let started = failing.incidents[0].start.clone();
    op.stop().await.expect("operator stops");
    let op = RunningOperator::start(client.clone(), options(), None);
    let before = r
        .status
        .as_ref()
        .and_then(|s| s.measured_until.clone())
        .unwrap_or_default();
    eventually("a report written after the restart", WAIT, || {
        let client = client.clone();
        let before = before.clone();
        async move {
            let Some(r) = report(&client).await? else {
                return Ok(false);
            };
            let until = r
                .status
                .as_ref()
                .and_then(|s| s.measured_until.clone())
                .unwrap_or_default();
            Ok(until > before && figures(&r, "healthy").is_some())
        }
    })
    .await
    .expect("report after restart");
    let r = report(&client).await.expect("read").expect("report");
    let failing = figures(&r, "failing").expect("failing");
    assert_eq!(failing.incidents.len(), 1, "{failing:?}");
    assert_eq!(failing.incidents[0].start, started, "{failing:?}");
    assert!(failing.incidents[0].end.is_none());
    assert_eq!(figures(&r, "healthy").expect("healthy").down_seconds, 0);
    op.stop().await.expect("operator stops");
}
