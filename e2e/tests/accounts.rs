//! Measured accounts inside `regie run`, end to end: a control plane of its own and a loopback
//! HTTP endpoint that reports a number of accounts, which the test changes, breaks and mends.
//! The package status must show the count read, when it was read and the billed count; a changed
//! billed count must start a new segment of the tenant's `Usage`; a failing source must become
//! a condition with its reason (the last good count stays billed); a cloud-metadata URL is never
//! contacted; and an unchanged count writes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use regie::controller::Options;
use regie::sla::target::ProbePolicy;
use regie_crds::generated::Segment;
use regie_crds::status::find;
use regie_crds::{Usage, WorkplacePackage};
use regie_e2e::cluster::TestCluster;
use regie_e2e::operator::{RunningOperator, eventually};

const TENANT: &str = "measured";
const NS: &str = "tenant-measured";
const WAIT: Duration = Duration::from_secs(90);

const LEVEL_AND_TENANT: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: ServiceLevel
metadata:
  name: measured
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
  probe: {interval: 60s, timeout: 5s}
  workload: {minReplicas: 1, minAvailable: 0}
  credits:
    - {below: "99.0", percent: 5}
---
apiVersion: regie.dev/v1alpha1
kind: Tenant
metadata:
  name: measured
spec:
  displayName: Measured accounts
  serviceLevel: measured
  membership:
    joined: "2024-01-01"
"#;

/// The directory service of a participant: `GET /count` answers `{"data": {"accounts": N}}`,
/// or the status the test sets.
#[derive(Default)]
struct Directory {
    accounts: AtomicI64,
    status: AtomicU16,
    hits: AtomicU64,
}

async fn count(State(d): State<Arc<Directory>>) -> (StatusCode, String) {
    d.hits.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(d.status.load(Ordering::Relaxed)).unwrap_or(StatusCode::OK);
    if status != StatusCode::OK {
        return (status, "unavailable".into());
    }
    let n = d.accounts.load(Ordering::Relaxed);
    (
        StatusCode::OK,
        format!(r#"{{"data": {{"accounts": {n}}}, "source": "idm"}}"#),
    )
}

async fn directory() -> (Arc<Directory>, String) {
    let d = Arc::new(Directory::default());
    d.status.store(200, Ordering::Relaxed);
    let app = Router::new()
        .route("/count", get(count))
        .with_state(d.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (d, format!("http://{addr}"))
}

fn packages(base: &str) -> String {
    format!(
        r#"
apiVersion: regie.dev/v1alpha1
kind: WorkplacePackage
metadata:
  name: standard
  namespace: {NS}
spec:
  profile: standard
  accounts: 100
  accountSource:
    url: "{base}/count?apiKey=s3cret"
    jsonPointer: /data/accounts
    interval: 1s
    timeout: 1s
    basis: measured
---
apiVersion: regie.dev/v1alpha1
kind: WorkplacePackage
metadata:
  name: metadata
  namespace: {NS}
spec:
  profile: flex
  accounts: 5
  accountSource:
    url: "http://169.254.169.254/latest/meta-data/count"
    interval: 1s
    basis: max
"#
    )
}

/// (measured, measuredAt, billed, AccountsMeasured (status, reason, message), resourceVersion)
type Shown = (
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<(String, String, String)>,
    String,
);

async fn shown(api: &Api<WorkplacePackage>, name: &str) -> anyhow::Result<Shown> {
    let p = api.get(name).await?;
    let rv = p.metadata.resource_version.clone().unwrap_or_default();
    let st = p.status.unwrap_or_default();
    let c = find(&st.conditions, "AccountsMeasured").map(|c| {
        (
            c.status.to_string(),
            c.reason.to_string(),
            c.message.to_string(),
        )
    });
    Ok((
        st.measured_accounts,
        st.measured_at,
        st.billed_accounts,
        c,
        rv,
    ))
}

/// The segments of the tenant's current Usage.
async fn segments(client: &Client) -> anyhow::Result<Vec<Segment>> {
    let api: Api<Usage> = Api::all(client.clone());
    let mut mine: Vec<Usage> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|u| u.spec.tenant == TENANT)
        .collect();
    mine.sort_by(|a, b| a.spec.period.cmp(&b.spec.period));
    Ok(mine
        .pop()
        .and_then(|u| u.status)
        .map(|s| s.segments)
        .unwrap_or_default())
}

fn standard(s: &Segment) -> Option<i64> {
    s.accounts.get("standard").copied()
}

/// How long a count taken up is held here: long enough to see a flap held back, short enough
/// not to slow the test down much (`regie run` holds an hour).
const HOLD: Duration = Duration::from_secs(8);

fn options() -> Options {
    Options {
        probe_policy: ProbePolicy {
            allow_loopback: true,
            ..ProbePolicy::default()
        },
        measured_hold: HOLD,
        ..Options::default()
    }
}

#[tokio::test]
async fn measured_accounts_reach_status_and_the_usage_ledger() {
    let (dir_service, base) = directory().await;
    dir_service.accounts.store(120, Ordering::Relaxed);
    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let tmp = tempfile::tempdir().expect("tempdir");
    let op = RunningOperator::start(client.clone(), options(), None);
    cluster
        .apply_yaml(tmp.path(), "tenant.yaml", LEVEL_AND_TENANT)
        .expect("manifest applies");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    eventually("the tenant namespace", WAIT, || {
        let namespaces = namespaces.clone();
        async move { Ok(namespaces.get_opt(NS).await?.is_some()) }
    })
    .await
    .expect("namespace");
    cluster
        .apply_yaml(tmp.path(), "packages.yaml", &packages(&base))
        .expect("manifest applies");
    let api: Api<WorkplacePackage> = Api::namespaced(client.clone(), NS);

    // The count read is shown, with when and what is billed (basis measured: 120, not 100).
    eventually("120 measured and billed", WAIT, || {
        let api = api.clone();
        async move {
            let s = shown(&api, "standard").await?;
            if s.0 == Some(120) && s.2 == Some(120) && s.1.is_some() {
                return Ok(true);
            }
            anyhow::bail!("now {s:?}")
        }
    })
    .await
    .expect("measured");
    let first = shown(&api, "standard").await.expect("status");
    let (ok, reason, message) = first.3.clone().expect("AccountsMeasured");
    assert_eq!((ok.as_str(), reason.as_str()), ("True", "Measured"));
    assert!(message.contains("120 accounts"), "{message}");
    assert!(
        !message.contains("s3cret"),
        "the query string (an API key) is never shown: {message}"
    );
    eventually("a Usage segment billing 120", WAIT, || {
        let client = client.clone();
        async move {
            let segs = segments(&client).await?;
            Ok(segs.last().and_then(standard) == Some(120))
        }
    })
    .await
    .expect("usage 120");
    let before = segments(&client).await.expect("segments");

    // Unchanged: the source is read every second, yet nothing is written.
    let hits = dir_service.hits.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        dir_service.hits.load(Ordering::Relaxed) >= hits + 2,
        "the source is read on its interval"
    );
    let still = shown(&api, "standard").await.expect("status");
    assert_eq!(still.4, first.4, "no write while the count is unchanged");
    assert_eq!(
        segments(&client).await.expect("segments"),
        before,
        "no new segment"
    );

    // A new count: status and a new Usage segment, the old one closed.
    dir_service.accounts.store(150, Ordering::Relaxed);
    eventually("150 measured and billed", WAIT, || {
        let api = api.clone();
        async move {
            let s = shown(&api, "standard").await?;
            Ok(s.0 == Some(150) && s.2 == Some(150))
        }
    })
    .await
    .expect("measured 150");
    let after = segments(&client).await.expect("segments");
    assert_eq!(after.len(), before.len() + 1, "one new segment: {after:#?}");
    let (prev, last) = (&after[after.len() - 2], &after[after.len() - 1]);
    assert_eq!(standard(prev), Some(120));
    assert!(prev.to.is_some(), "the 120 segment is closed");
    assert_eq!(standard(last), Some(150));
    assert_eq!(last.to, None);
    assert_eq!(last.measured_accounts.get("standard"), Some(&150));
    let at_150 = shown(&api, "standard").await.expect("status");
    assert_ne!(at_150.1, first.1, "measuredAt moves with the count");

    // A flap within the hold is not taken up: no status write, no segment. (Back to 150
    // before the hold ends, so nothing is owed.)
    dir_service.accounts.store(151, Ordering::Relaxed);
    tokio::time::sleep(HOLD / 2).await;
    dir_service.accounts.store(150, Ordering::Relaxed);
    assert_eq!(
        shown(&api, "standard").await.expect("status").4,
        at_150.4,
        "a count read within the hold writes nothing"
    );
    assert_eq!(
        segments(&client).await.expect("segments"),
        after,
        "a count read within the hold is no segment"
    );

    // The source fails: a condition says why; the last good count stays billed.
    dir_service.status.store(503, Ordering::Relaxed);
    eventually("AccountsMeasured=False FetchFailed", WAIT, || {
        let api = api.clone();
        async move {
            let s = shown(&api, "standard").await?;
            match &s.3 {
                Some((st, reason, msg)) if st == "False" && reason == "FetchFailed" => {
                    assert!(msg.contains("503"), "names the status: {msg}");
                    assert_eq!(s.2, Some(150), "still billing the last count read");
                    Ok(true)
                }
                _ => anyhow::bail!("now {s:?}"),
            }
        }
    })
    .await
    .expect("failure shown");
    let failing = shown(&api, "standard").await.expect("status");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        shown(&api, "standard").await.expect("status").4,
        failing.4,
        "a source that keeps failing the same way writes nothing more"
    );
    assert_eq!(
        segments(&client).await.expect("segments").len(),
        after.len(),
        "a failure is no change in billing"
    );

    // A metadata address is refused, never contacted, and the declared count is billed.
    eventually(
        "metadata: AccountsMeasured=False TargetRefused",
        WAIT,
        || {
            let api = api.clone();
            async move {
                let s = shown(&api, "metadata").await?;
                match &s.3 {
                    Some((st, reason, msg)) if st == "False" && reason == "TargetRefused" => {
                        assert!(msg.contains("169.254"), "says what: {msg}");
                        assert_eq!((s.0, s.2), (None, Some(5)));
                        Ok(true)
                    }
                    _ => anyhow::bail!("now {s:?}"),
                }
            }
        },
    )
    .await
    .expect("refused");

    // Mended, after a restart of the operator: the new count is read and billed again.
    op.stop().await.expect("stop");
    dir_service.status.store(200, Ordering::Relaxed);
    dir_service.accounts.store(140, Ordering::Relaxed);
    let op = RunningOperator::start(client.clone(), options(), None);
    eventually("140 after the restart", WAIT, || {
        let api = api.clone();
        async move {
            let s = shown(&api, "standard").await?;
            Ok(s.0 == Some(140) && s.2 == Some(140) && s.3.as_ref().is_some_and(|c| c.0 == "True"))
        }
    })
    .await
    .expect("measured after restart");
    let segs = segments(&client).await.expect("segments");
    assert_eq!(segs.len(), after.len() + 1, "{segs:#?}");
    assert_eq!(segs.last().and_then(standard), Some(140));

    // An edit that makes the package invalid: Stalled, the field named, and billed as its
    // status last recorded — the status and the ledger still agree, and nothing changes in
    // billing until it is mended.
    let point = |pointer: &str| {
        let api = api.clone();
        let pointer = pointer.to_string();
        async move {
            api.patch(
                "standard",
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"spec": {"accountSource": {"jsonPointer": pointer}}}),
                ),
            )
            .await
            .expect("patched");
        }
    };
    point("data/accounts").await;
    eventually("standard Stalled InvalidSpec", WAIT, || {
        let api = api.clone();
        async move {
            let p = api.get("standard").await?;
            let st = p.status.unwrap_or_default();
            Ok(find(&st.conditions, "Stalled").is_some_and(|c| {
                c.status == "True"
                    && c.reason == "InvalidSpec"
                    && c.message.contains("spec.accountSource.jsonPointer")
            }) && st.billed_accounts == Some(140))
        }
    })
    .await
    .expect("an invalid package is Stalled and keeps its billed accounts");
    assert_eq!(
        segments(&client).await.expect("segments"),
        segs,
        "an invalid package is billed as last recorded"
    );
    point("/data/accounts").await;
    eventually("standard mended", WAIT, || {
        let api = api.clone();
        async move {
            let s = shown(&api, "standard").await?;
            let p = api.get("standard").await?;
            let ready = find(&p.status.unwrap_or_default().conditions, "Ready")
                .is_some_and(|c| c.status == "True");
            Ok(ready && s.2 == Some(140))
        }
    })
    .await
    .expect("mended, the package is Ready again");

    // A ledger edited by hand into one that cannot be read: regie writes nothing over it and a
    // Warning event on the tenant says why; repaired, the next change is recorded.
    let usages: Api<Usage> = Api::all(client.clone());
    let usage = usages
        .list(&ListParams::default())
        .await
        .expect("usages")
        .items
        .into_iter()
        .filter(|u| u.spec.tenant == TENANT)
        .max_by(|a, b| a.spec.period.cmp(&b.spec.period))
        .expect("the tenant's Usage");
    let name = usage.metadata.name.clone().expect("name");
    let mut broken = segs.clone();
    broken[0].to = Some("2000-01-01T00:00:00+01:00".into());
    let set_segments = |segments: Vec<Segment>| {
        let usages = usages.clone();
        let name = name.clone();
        async move {
            usages
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"status": {"segments": segments}})),
                )
                .await
                .expect("status patched");
        }
    };
    set_segments(broken.clone()).await;
    dir_service.accounts.store(160, Ordering::Relaxed);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let about = format!("Usage {name}");
    eventually(
        "a UsageLedgerUnreadable Warning on the tenant",
        WAIT,
        || {
            let events = events.clone();
            let about = about.clone();
            async move {
                Ok(events
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("UsageLedgerUnreadable")
                            && e.type_.as_deref() == Some("Warning")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(TENANT)
                            && e.note
                                .as_deref()
                                .is_some_and(|n| n.contains(&about) && n.contains("ends ("))
                    }))
            }
        },
    )
    .await
    .expect("the unreadable ledger is reported");
    assert_eq!(
        segments(&client).await.expect("segments"),
        broken,
        "nothing is written over a ledger regie cannot read"
    );
    set_segments(segs.clone()).await;
    dir_service.accounts.store(170, Ordering::Relaxed);
    eventually("170 recorded in the repaired ledger", WAIT, || {
        let client = client.clone();
        async move {
            let now = segments(&client).await?;
            Ok(now.last().and_then(standard) == Some(170))
        }
    })
    .await
    .expect("recorded after the repair");
    op.stop().await.expect("stop");
}
