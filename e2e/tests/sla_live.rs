//! The SLA prober inside `regie run`, end to end: a control plane of its own, a ServiceLevel
//! probing every second around the clock with daily KPI reports, one tenant with SaaS components
//! on a loopback target server (healthy, failing, two flapping, hanging), one whose URL is a
//! cloud-metadata address and one whose name resolves to it until it moves to the server. The outcomes must reach the components' conditions, `/metrics`, the
//! tenant's month-to-date `SlaReport` and its day's `SlaReport`; flapping targets must not write
//! on every probe; a restarted operator goes on from the stored reports.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use kube::Client;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use regie::controller::{Options, ProbeLookup};
use regie::sla::target::{Lookup, ProbePolicy, SystemLookup};
use regie_crds::generated::{ComponentCompliance, SlaReportSpec, SlaReportStatus};
use regie_crds::status::{AVAILABLE, STALLED, find};
use regie_crds::{HostingComponent, SlaReport};
use regie_e2e::cluster::TestCluster;
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
  kpiReport: daily
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

/// The one host name this test plays DNS for; its address is the test's to move.
const MOVED: &str = "moved.example";

/// The system's resolver, but for [`MOVED`], which resolves wherever the test says.
struct MovingLookup(Arc<Mutex<Vec<IpAddr>>>);

impl Lookup for MovingLookup {
    fn lookup(&self, name: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        if name == MOVED {
            let ips = self.0.lock().expect("lock").clone();
            return Box::pin(async move { Ok(ips) });
        }
        SystemLookup.lookup(name)
    }
}

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

async fn condition(
    api: &Api<HostingComponent>,
    name: &str,
    type_: &str,
) -> anyhow::Result<Option<(String, String, String)>> {
    let c = api.get(name).await?;
    let conds = c.status.unwrap_or_default().conditions;
    Ok(find(&conds, type_).map(|c| {
        (
            c.status.to_string(),
            c.reason.to_string(),
            c.message.to_string(),
        )
    }))
}

/// The tenant's latest report whose period has `len` characters: 7 for the month, 10 for a day.
async fn report_of(client: &Client, len: usize) -> anyhow::Result<Option<SlaReport>> {
    let api: Api<SlaReport> = Api::all(client.clone());
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.tenant == TENANT && r.spec.period.len() == len)
        .max_by(|a, b| a.spec.period.cmp(&b.spec.period)))
}

/// A report of `tenant` for a period that ended, as a process left it: figures measured up to
/// an hour before the end, `Final=False`.
async fn left_report(
    client: &Client,
    tenant: &str,
    period: &str,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> anyhow::Result<String> {
    stored_report(client, tenant, period, (from, to), false).await
}

/// A report of `tenant` for a period that ended, with figures measured up to an hour before
/// its end, final or not.
async fn stored_report(
    client: &Client,
    tenant: &str,
    period: &str,
    (from, to): (jiff::Timestamp, jiff::Timestamp),
    final_: bool,
) -> anyhow::Result<String> {
    let api: Api<SlaReport> = Api::all(client.clone());
    let name = format!("{tenant}-{}", period.to_lowercase());
    let spec = SlaReportSpec {
        tenant: tenant.into(),
        period: period.into(),
        from: from.to_string(),
        to: to.to_string(),
    };
    api.create(&PostParams::default(), &SlaReport::new(&name, spec))
        .await?;
    let measured = to - jiff::SignedDuration::from_hours(1);
    let status = SlaReportStatus {
        conditions: vec![regie_crds::status::condition(
            "Final",
            final_,
            if final_ { "PeriodClosed" } else { "PeriodOpen" },
            format!("measured up to {measured}; the period ends at {to}"),
            None,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(from),
        )],
        components: vec![ComponentCompliance {
            component: "healthy".into(),
            service_level: "live".into(),
            window_seconds: 3600,
            availability: "100".into(),
            target: "99.0".into(),
            met: true,
            ..ComponentCompliance::default()
        }],
        met: Some(true),
        measured_until: Some(measured.to_string()),
        ..SlaReportStatus::default()
    };
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await?;
    Ok(name)
}

async fn report(client: &Client) -> anyhow::Result<Option<SlaReport>> {
    report_of(client, 7).await
}

fn final_condition(r: &SlaReport) -> Option<(String, String, String)> {
    let conds = &r.status.as_ref()?.conditions;
    find(conds, "Final").map(|c| {
        (
            c.status.to_string(),
            c.reason.to_string(),
            c.message.to_string(),
        )
    })
}

/// How many times the object `name` is modified during `window`, by anyone.
async fn modifications<K>(api: &Api<K>, name: &str, window: Duration) -> anyhow::Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let current = api.get(name).await?;
    let from = current.meta().resource_version.clone().unwrap_or_default();
    let mut stream = api.watch(&params, &from).await?.boxed();
    let deadline = tokio::time::Instant::now() + window;
    let mut n = 0;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, stream.next()).await {
        if matches!(ev?, WatchEvent::Modified(_)) {
            n += 1;
        }
    }
    Ok(n)
}

/// The month's report once it has been written again (its `measuredUntil` moved on).
async fn written_again(client: &Client, round: &str) -> SlaReport {
    let before = report(client)
        .await
        .expect("read")
        .and_then(|r| r.status.and_then(|s| s.measured_until))
        .unwrap_or_default();
    eventually(round, WAIT, || {
        let client = client.clone();
        let before = before.clone();
        async move {
            let Some(r) = report(&client).await? else {
                return Ok(false);
            };
            let until = r.status.and_then(|s| s.measured_until).unwrap_or_default();
            Ok(until > before)
        }
    })
    .await
    .expect("the report is written again");
    report(client).await.expect("read").expect("report")
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
    let metadata: IpAddr = "169.254.169.254".parse().expect("address");
    let moved_to = Arc::new(Mutex::new(vec![metadata]));
    let lookup = ProbeLookup(Arc::new(MovingLookup(moved_to.clone())));
    let options = || Options {
        probe_policy: ProbePolicy {
            allow_loopback: true,
            ..ProbePolicy::default()
        },
        probe_lookup: Some(lookup.clone()),
        ..Options::default()
    };
    // Final reports of long ago, left by an earlier process: the day's past the retention
    // (400 days) goes, the month's (billing reads months) and a recent day's stay.
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("time zone");
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    let midnight = |d: jiff::civil::Date| d.to_zoned(tz.clone()).expect("midnight").timestamp();
    let day_of = |days: i64| {
        let day = today
            .checked_sub(jiff::Span::new().days(days))
            .expect("a day");
        (
            day.to_string(),
            (midnight(day), midnight(day.tomorrow().expect("a day"))),
        )
    };
    let long_ago = today
        .checked_sub(jiff::Span::new().days(500))
        .expect("a day")
        .first_of_month();
    let old_month = (
        format!("{:04}-{:02}", long_ago.year(), long_ago.month()),
        (
            midnight(long_ago),
            midnight(long_ago.last_of_month().tomorrow().expect("a day")),
        ),
    );
    let mut retired = Vec::new();
    for (period, bounds) in [day_of(500), old_month, day_of(30)] {
        retired.push(
            stored_report(&client, TENANT, &period, bounds, true)
                .await
                .expect("an old report"),
        );
    }
    // Shared with the first operator: the test holds back the writes that wait for reconciles.
    let activity = Arc::new(regie::controller::activity::Activity::default());
    let op = RunningOperator::start(
        client.clone(),
        Options {
            activity: Some(activity.clone()),
            ..options()
        },
        None,
    );

    cluster
        .apply_yaml(dir.path(), "tenant.yaml", LEVEL_AND_TENANT)
        .expect("manifest applies");
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
        component("flapping-too", &targets.url("/flapping?pattern=10&too")),
        component("hanging", &targets.url("/hanging")),
        component("refused", "http://169.254.169.254/latest/meta-data"),
        component(
            "moved",
            &format!("http://{MOVED}:{}/healthy", targets.addr().port()),
        ),
    ]
    .concat();
    cluster
        .apply_yaml(dir.path(), "components.yaml", &components)
        .expect("manifest applies");

    // Conditions: the prober owns Available of SaaS components; a refused target is Stalled.
    let api: Api<HostingComponent> = Api::namespaced(client.clone(), NS);
    let expect = [
        ("healthy", AVAILABLE, "True", "ProbeSucceeded"),
        ("failing", AVAILABLE, "False", "ProbeFailed"),
        ("hanging", AVAILABLE, "False", "ProbeFailed"),
        ("refused", STALLED, "True", "ProbeTargetRefused"),
        // Never probed, and saying so (not left without an Available).
        ("refused", AVAILABLE, "False", "NotProbedYet"),
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

    // The prober's Available write replaces the conditions list whole (a merge patch), so it is
    // made conditional on the version its cache read: the API server refuses it on any other,
    // and a reconcile's conditions written in between are not put back as they were.
    let read = api.get("failing").await.expect("read failing");
    api.patch(
        "failing",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"metadata": {"annotations": {"e2e.regie.dev/touched": "1"}}}),
        ),
    )
    .await
    .expect("a change of another writer");
    let stale = api
        .patch_status(
            "failing",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"resourceVersion": read.metadata.resource_version},
                "status": {"conditions": read.status.map(|s| s.conditions).unwrap_or_default()},
            })),
        )
        .await;
    assert!(
        matches!(&stale, Err(kube::Error::Api(e)) if e.code == 409),
        "a status patch on an older version is refused: {stale:?}"
    );

    // A name that resolves to a refused address stalls its component, and is looked up again
    // at every probe: once it resolves to the target server, the component is probed.
    eventually(
        "moved: Stalled while its name resolves to 169.254.169.254",
        WAIT,
        || {
            let api = api.clone();
            async move {
                let got = condition(&api, "moved", STALLED).await?;
                Ok(got.is_some_and(|(status, reason, message)| {
                    status == "True"
                        && reason == "ProbeTargetRefused"
                        && message.contains("\"moved.example\" resolves to a refused address")
                }))
            }
        },
    )
    .await
    .expect("a name resolving to a refused address stalls the component");
    *moved_to.lock().expect("lock") = vec![IpAddr::from([127, 0, 0, 1])];
    eventually("moved: probed once its name moved", WAIT, || {
        let api = api.clone();
        async move {
            let stalled = condition(&api, "moved", STALLED).await?;
            let available = condition(&api, "moved", AVAILABLE).await?;
            Ok(stalled.is_none_or(|s| s.0 == "False")
                && available.is_some_and(|a| a.0 == "True" && a.1 == "ProbeSucceeded"))
        }
    })
    .await
    .expect("the component is freed and probed");

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

    // Past its retention, the old day's report is gone; the old month's and the recent day's
    // are kept.
    let reports: Api<SlaReport> = Api::all(client.clone());
    eventually("the day's report past its retention deleted", WAIT, || {
        let reports = reports.clone();
        let name = retired[0].clone();
        async move { Ok(reports.get_opt(&name).await?.is_none()) }
    })
    .await
    .expect("an old day's report goes");
    for name in &retired[1..] {
        assert!(
            reports.get_opt(name).await.expect("read").is_some(),
            "{name} is kept"
        );
    }

    // Reports that nothing will write again are made final as they stand: a day two days ago
    // that none of the tenant's components measures, and last month's of a tenant that left.
    let day = today.checked_sub(jiff::Span::new().days(2)).expect("a day");
    let month = today
        .first_of_month()
        .checked_sub(jiff::Span::new().months(1))
        .expect("a month");
    let left = [
        left_report(
            &client,
            TENANT,
            &day.to_string(),
            midnight(day),
            midnight(day.tomorrow().expect("a day")),
        )
        .await
        .expect("a day's report left open"),
        left_report(
            &client,
            "departed",
            &format!("{:04}-{:02}", month.year(), month.month()),
            midnight(month),
            midnight(today.first_of_month()),
        )
        .await
        .expect("a month's report left open"),
    ];
    for name in &left {
        eventually(&format!("{name}: Final=True"), WAIT, || {
            let reports = reports.clone();
            async move {
                let r = reports.get(name).await?;
                Ok(
                    final_condition(&r).is_some_and(|(status, reason, message)| {
                        status == "True"
                            && reason == "PeriodClosed"
                            && message.contains("none of its components was measured")
                    }),
                )
            }
        })
        .await
        .expect("a report nothing writes is closed");
        let r = reports.get(name).await.expect("read");
        assert!(figures(&r, "healthy").is_some(), "its figures stand: {r:?}");
    }

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

    let (status, reason, message) = final_condition(&r).expect("Final condition");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PeriodOpen"));
    assert!(message.contains("measured up to"), "{message}");

    // The day's report, besides the month's: the same components, measured since local
    // midnight, without credits (those are monthly).
    eventually("the day's SlaReport", WAIT, || {
        let client = client.clone();
        async move {
            let Some(d) = report_of(&client, 10).await? else {
                anyhow::bail!("no daily SlaReport yet")
            };
            Ok(figures(&d, "failing").is_some_and(|f| f.down_seconds > 0))
        }
    })
    .await
    .expect("daily report");
    let d = report_of(&client, 10).await.expect("read").expect("day");
    let day_name = d.metadata.name.clone().unwrap_or_default();
    assert_eq!(
        day_name,
        format!("{TENANT}-{}", d.spec.period),
        "named <tenant>-<yyyy-mm-dd>"
    );
    assert!(
        d.spec.period.starts_with(&r.spec.period),
        "the day {} lies in the month {}",
        d.spec.period,
        r.spec.period
    );
    for c in ["healthy", "failing", "flapping", "flapping-too", "hanging"] {
        let f = figures(&d, c).unwrap_or_else(|| panic!("{c} in the day's report"));
        assert_eq!(f.credit_percent, 0, "{f:?}");
    }
    assert_eq!(
        final_condition(&d).map(|c| c.1).as_deref(),
        Some("PeriodOpen")
    );

    // Write storms: two targets flapping on every probe (one probe a second each) write the
    // tenant's reports at most once a second, and a flapping Available at most once per 30 s.
    let window = Duration::from_secs(12);
    let reports: Api<SlaReport> = Api::all(client.clone());
    let month_name = r.metadata.name.clone().unwrap_or_default();
    let (report_writes, available_writes) = tokio::join!(
        modifications(&reports, &month_name, window),
        modifications(&api, "flapping", window)
    );
    let report_writes = report_writes.expect("watch report");
    let available_writes = available_writes.expect("watch component");
    let flips = figures(
        &report(&client).await.expect("read").expect("report"),
        "flapping",
    )
    .expect("flapping")
    .incidents
    .len();
    assert!(flips >= 5, "the target does flap: {flips} incidents");
    assert!(
        (1..=15).contains(&report_writes),
        "{report_writes} writes of {month_name} in {window:?}"
    );
    assert!(
        available_writes <= 2,
        "{available_writes} writes of the flapping component in {window:?}"
    );

    // A restart goes on from the stored report: the failing component's incident stays one
    // incident with the same start, not a new one.
    let started = failing.incidents[0].start.clone();
    // A stop asked for writes what is owed first. With the writes that wait for reconciles held
    // back, as a reconcile that does not end holds them, the flapping component's run-state
    // changes of the last seconds are written by the stop itself, not lost with the process.
    let held = activity.reconciling();
    let held_at = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    op.stop().await.expect("operator stops");
    drop(held);
    let stopped = report(&client).await.expect("read").expect("report");
    let last = figures(&stopped, "flapping")
        .and_then(|f| f.last_sample)
        .map(|s| s.time.parse::<jiff::Timestamp>().expect("a time"));
    assert!(
        last.is_some_and(|l| l > held_at),
        "the last sample written at the stop ({last:?}) was taken while the writes were held (from {held_at})"
    );
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
    // Stop only once the restarted operator reconciles (its caches have synced): a stop while
    // they sync waits for them.
    eventually("the restarted operator reconciling", WAIT, || {
        let rendered = op.metrics.render();
        async move {
            Ok(rendered
                .lines()
                .any(|l| l.starts_with("regie_tenants{") && !l.ends_with(" 0")))
        }
    })
    .await
    .expect("reconciling after the restart");
    let r = report(&client).await.expect("read").expect("report");
    let failing = figures(&r, "failing").expect("failing");
    assert_eq!(failing.incidents.len(), 1, "{failing:?}");
    assert_eq!(failing.incidents[0].start, started, "{failing:?}");
    assert!(failing.incidents[0].end.is_none());
    assert_eq!(figures(&r, "healthy").expect("healthy").down_seconds, 0);

    // A component that stalls (its URL edited to a refused address) is no longer probed but
    // keeps its place in the month's report with what was measured — invoicing reads its credit
    // there: through the write with its figures up to the stall and the writes after it, which
    // carry its stored entry over.
    cluster
        .apply_yaml(
            dir.path(),
            "failing.yaml",
            &component("failing", "http://169.254.169.254/latest/meta-data"),
        )
        .expect("manifest applies");
    eventually("failing: Stalled once its URL is refused", WAIT, || {
        let api = api.clone();
        async move {
            let got = condition(&api, "failing", STALLED).await?;
            Ok(got.is_some_and(|(status, reason, _)| {
                status == "True" && reason == "ProbeTargetRefused"
            }))
        }
    })
    .await
    .expect("the edited component stalls");
    for round in ["the write after the stall", "a later write"] {
        let r = written_again(&client, round).await;
        let stalled = figures(&r, "failing").expect("a stalled component stays in the report");
        assert!(stalled.down_seconds > 0, "{stalled:?}");
        assert_eq!(stalled.incidents[0].start, started, "{stalled:?}");
    }

    // Deleted components (the stalled one and one probed) keep their entries in the month's
    // report — they were billed for part of it, and a credit they earned stands — through the
    // write with their last figures and the writes after it.
    for name in ["failing", "flapping-too"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("component deleted");
    }
    for round in ["the write after the deletions", "a later write"] {
        let r = written_again(&client, round).await;
        let failing = figures(&r, "failing").expect("a deleted component stays in the report");
        assert!(failing.down_seconds > 0, "{failing:?}");
        assert_eq!(failing.incidents[0].start, started, "{failing:?}");
        assert!(figures(&r, "flapping-too").is_some(), "{r:?}");
    }
    let deleted = report(&client).await.expect("read").expect("report");

    // A change of level (a pull request moving the hanging component to a stricter level)
    // splits its periods at the first sample under the new level: the month's and the day's
    // reports hold an entry per level, the old one ending where the new one begins, each with
    // its own target; the outage going on is cut there. A restart keeps both parts.
    cluster
        .apply_yaml(dir.path(), "stricter.yaml", STRICTER)
        .expect("manifest applies");
    let moved = component("hanging", &targets.url("/hanging")).replace(
        "  class: applicationHosting\n",
        "  class: applicationHosting\n  serviceLevel: live-plus\n",
    );
    cluster
        .apply_yaml(dir.path(), "hanging.yaml", &moved)
        .expect("manifest applies");
    let split = |r: &SlaReport| -> Option<(ComponentCompliance, ComponentCompliance)> {
        let parts: Vec<ComponentCompliance> = r
            .status
            .as_ref()?
            .components
            .iter()
            .filter(|c| c.component == "hanging")
            .cloned()
            .collect();
        match parts.as_slice() {
            [before, now] => Some((before.clone(), now.clone())),
            _ => None,
        }
    };
    for len in [7, 10] {
        eventually(
            &format!("hanging split in the report of period length {len}"),
            WAIT,
            || {
                let client = client.clone();
                async move {
                    let Some(r) = report_of(&client, len).await? else {
                        return Ok(false);
                    };
                    Ok(split(&r).is_some())
                }
            },
        )
        .await
        .expect("two parts");
    }
    let month_report = report(&client).await.expect("read").expect("report");
    let (before, now) = split(&month_report).expect("two parts");
    assert_eq!(
        (before.service_level.as_str(), now.service_level.as_str()),
        ("live", "live-plus")
    );
    assert_eq!(
        (before.target.as_str(), now.target.as_str()),
        ("99.0", "99.5")
    );
    let at = before.to.clone().expect("the old part ends");
    assert_eq!(
        before.from, None,
        "the old part runs from the month's start"
    );
    assert_eq!(now.from.as_deref(), Some(at.as_str()), "{now:?}");
    assert_eq!(now.to, None);
    assert!(before.last_sample.is_none() && now.last_sample.is_some());
    let cut = before.incidents.last().expect("hanging was down");
    assert_eq!(
        cut.end.as_deref(),
        Some(at.as_str()),
        "cut at the split: {before:?}"
    );
    assert!(
        now.incidents
            .first()
            .is_some_and(|i| i.start == at && i.end.is_none()),
        "goes on from the split: {now:?}"
    );
    op.stop().await.expect("operator stops");
    let op = RunningOperator::start(client.clone(), options(), None);
    let written = month_report
        .status
        .as_ref()
        .and_then(|s| s.measured_until.clone())
        .unwrap_or_default();
    eventually("a report written after the second restart", WAIT, || {
        let client = client.clone();
        let written = written.clone();
        async move {
            let Some(r) = report(&client).await? else {
                return Ok(false);
            };
            let until = r.status.as_ref().and_then(|s| s.measured_until.clone());
            Ok(until.is_some_and(|u| u > written) && split(&r).is_some())
        }
    })
    .await
    .expect("report after restart");
    let (again, now_again) = split(&report(&client).await.expect("read").expect("report"))
        .expect("both parts after the restart");
    assert_eq!(again, before, "the old part as it was written");
    assert_eq!(now_again.from, now.from);
    assert!(now_again.window_seconds >= now.window_seconds);

    // Moved back while no regie ran: the restarted operator reads the level of the last stored
    // sample from its entry and splits at its first sample under the level held now.
    op.stop().await.expect("operator stops");
    cluster
        .apply_yaml(
            dir.path(),
            "hanging.yaml",
            &component("hanging", &targets.url("/hanging")),
        )
        .expect("manifest applies");
    let op = RunningOperator::start(client.clone(), options(), None);
    let thrice = |r: &SlaReport| -> Vec<ComponentCompliance> {
        r.status
            .iter()
            .flat_map(|s| &s.components)
            .filter(|c| c.component == "hanging")
            .cloned()
            .collect()
    };
    eventually("hanging in three parts", WAIT, || {
        let client = client.clone();
        async move {
            let Some(r) = report(&client).await? else {
                return Ok(false);
            };
            Ok(thrice(&r).len() == 3)
        }
    })
    .await
    .expect("a change while no regie ran splits the month too");
    let parts = thrice(&report(&client).await.expect("read").expect("report"));
    let levels: Vec<&str> = parts.iter().map(|p| p.service_level.as_str()).collect();
    assert_eq!(levels, ["live", "live-plus", "live"]);
    assert_eq!(parts[0], before, "the first part as it was written");
    assert_eq!(parts[1].from, now.from);
    assert!(
        parts[1].to.is_some() && parts[1].to == parts[2].from,
        "{parts:#?}"
    );
    // The components deleted before these restarts are still there, as they were written: the
    // processes since found them in the reports they resumed from.
    let r = report(&client).await.expect("read").expect("report");
    for name in ["failing", "flapping-too"] {
        assert_eq!(figures(&r, name), figures(&deleted, name), "{name}");
    }
    op.stop().await.expect("operator stops");
}

/// A stricter level for the change-of-level step: the same hours and probes, a higher target.
const STRICTER: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: ServiceLevel
metadata:
  name: live-plus
spec:
  rank: 2
  timeZone: Europe/Amsterdam
  serviceHours: ["Mon-Sun 00:00-24:00"]
  responseTimes: {urgent: 30m, other: 24h}
  kpiReport: daily
  localSupport: digital
  securityManagement: basic
  supplierManagement: none
  monitoring: 24x7
  availability: {target: "99.5"}
  probe: {interval: 1s, timeout: 1s}
  workload: {minReplicas: 1, minAvailable: 0}
  credits:
    - {below: "99.5", percent: 10}
"#;
