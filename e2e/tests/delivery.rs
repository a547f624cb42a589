//! Delivery of usage and final invoices to a billing system from `regie run`, end to end: a
//! control plane of its own, `Usage` ledgers and `Invoice` objects in it, and a real HTTP
//! receiver on loopback that ingests CloudEvents the way OpenMeter does (deduplicating on
//! `source` + `id`) and can fail (503), stall (take the event, then hang past the client's
//! timeout) and recover. The receiver is down for a while, the operator crashes mid-outage and
//! a new one starts: once the receiver is back every event has arrived, each exactly once as
//! counted, in order per tenant, and the objects say they were delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use regie::billing::events::event_id;
use regie::controller::Options;
use regie::controller::delivery::{Config, SecretRef};
use regie_crds::generated::{InvoiceSpec, InvoiceState, UsageSpec};
use regie_crds::status::find;
use regie_crds::{Invoice, Usage};
use regie_e2e::cluster::TestCluster;
use regie_e2e::operator::{RunningOperator, eventually};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
const TOKEN: &str = "s3cret-billing-token";

const UP: u8 = 0;
const FAILING: u8 = 1;
const STALLING: u8 = 2;

/// An OpenMeter-like ingest endpoint.
#[derive(Default)]
struct Receiver {
    mode: AtomicU8,
    log: Mutex<Log>,
}

#[derive(Default, Debug)]
struct Log {
    requests: usize,
    failed: usize,
    stalled: usize,
    /// (tenant, id) in the order first ingested: what the billing system counts.
    counted: Vec<(String, String)>,
    seen: BTreeSet<(String, String)>,
    duplicates: usize,
    problems: Vec<String>,
}

async fn ingest(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mode = r.mode.load(Ordering::SeqCst);
    {
        let mut log = r.log.lock().unwrap();
        log.requests += 1;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("content-type") != Some("application/cloudevents+json") {
            log.problems
                .push(format!("content-type {:?}", header("content-type")));
        }
        if header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            log.problems.push("authorization".into());
        }
        if mode == FAILING {
            log.failed += 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let Ok(event) = serde_json::from_slice::<Value>(&body) else {
            log.problems.push("body".into());
            return StatusCode::BAD_REQUEST;
        };
        let source = event["source"].as_str().unwrap_or("").to_string();
        let id = event["id"].as_str().unwrap_or("").to_string();
        if event["specversion"] != "1.0" || id.is_empty() || source.is_empty() {
            log.problems.push(format!("not a CloudEvent: {event}"));
        }
        if log.seen.insert((source, id.clone())) {
            let tenant = event["subject"].as_str().unwrap_or("").to_string();
            log.counted.push((tenant, id));
        } else {
            log.duplicates += 1;
        }
        if mode == STALLING {
            log.stalled += 1;
        }
    }
    if mode == STALLING {
        // Ingested, but the answer comes long after the sender has given up.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    StatusCode::ACCEPTED
}

async fn receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/api/v1/events", post(ingest))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, format!("http://{addr}"))
}

fn options(endpoint: &str) -> Options {
    Options {
        billing: Some(Config {
            token_secret: Some(SecretRef {
                namespace: "regie-system".into(),
                name: "regie-billing".into(),
            }),
            installation: "e2e".into(),
            timeout: Duration::from_secs(1),
            scan_every: Duration::from_secs(1),
            backoff: regie::billing::events::Backoff {
                base_seconds: 1,
                max_seconds: 2,
            },
            ..Config::new(endpoint)
        }),
        ..Options::default()
    }
}

/// A month's ledger: `accounts` standard accounts and one silver application all month.
async fn usage(client: &Client, tenant: &str, month: &str, next: &str, closed: bool) {
    let api: Api<Usage> = Api::all(client.clone());
    let name = format!("{tenant}-{month}");
    api.create(
        &PostParams::default(),
        &Usage::new(
            &name,
            UsageSpec {
                tenant: tenant.into(),
                period: month.into(),
            },
        ),
    )
    .await
    .expect("create usage");
    let to = closed.then(|| format!("{next}-01T00:00:00+01:00"));
    let status = json!({"status": {
        "segments": [{
            "from": format!("{month}-01T00:00:00+01:00"),
            "to": to,
            "serviceLevel": "silver",
            "accounts": {"standard": 250},
            "components": [{"name": "zaak", "class": "applicationHosting", "serviceLevel": "silver"}],
        }],
        "segmentCount": 1,
        "closed": closed,
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("usage status");
}

async fn invoice(client: &Client, tenant: &str, period: &str, state: InvoiceState) {
    let api: Api<Invoice> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &Invoice::new(
            &format!("{tenant}-{period}"),
            InvoiceSpec {
                tenant: tenant.into(),
                period: period.into(),
                number: Some(format!("2026-{tenant}")),
                state,
                currency: "EUR".into(),
                lines: vec![],
                subtotal: "1000.00".into(),
                vat: "0.00".into(),
                total: "1000.00".into(),
            },
        ),
    )
    .await
    .expect("create invoice");
}

fn usage_ids(tenant: &str, month: &str) -> Vec<String> {
    vec![
        event_id(tenant, "accounts-standard-silver", month, 1),
        event_id(tenant, "component-applicationHosting-silver", month, 1),
    ]
}

fn invoice_id(tenant: &str, period: &str) -> String {
    event_id(tenant, "invoice", period, 1)
}

async fn delivered_usage(client: &Client, name: &str) -> anyhow::Result<Option<(String, String)>> {
    let u = Api::<Usage>::all(client.clone()).get(name).await?;
    Ok(find(&u.status.unwrap_or_default().conditions, "Delivered")
        .map(|c| (c.status.to_string(), format!("{}: {}", c.reason, c.message))))
}

async fn delivered_at(client: &Client, name: &str) -> anyhow::Result<Option<String>> {
    let i = Api::<Invoice>::all(client.clone()).get(name).await?;
    Ok(i.status.and_then(|s| s.delivered_at))
}

async fn until(what: &str, check: impl Fn(&Log) -> bool, r: &Arc<Receiver>) {
    eventually(what, WAIT, || {
        let ok = check(&r.log.lock().unwrap());
        async move { Ok(ok) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", r.log.lock().unwrap()));
}

#[tokio::test]
async fn usage_and_invoices_survive_an_outage_a_stall_and_a_crash() {
    let (rx, endpoint) = receiver().await;
    rx.mode.store(FAILING, Ordering::SeqCst);
    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret.yaml");
    std::fs::write(
        &secret,
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: regie-system}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: regie-billing, namespace: regie-system}}\n\
             stringData: {{token: {TOKEN}}}\n"
        ),
    )
    .expect("write");
    cluster
        .kubectl_ok(&["apply", "-f", &secret.to_string_lossy()])
        .expect("secret");

    // Two finished months for alpha and beta, one for gamma; alpha's current month is still
    // running and must not be sent. Final invoices for alpha and beta; gamma's is a draft.
    for t in ["alpha", "beta"] {
        usage(&client, t, "2026-01", "2026-02", true).await;
        usage(&client, t, "2026-02", "2026-03", true).await;
        invoice(&client, t, "2026-01", InvoiceState::Final).await;
    }
    usage(&client, "gamma", "2026-01", "2026-02", false).await; // over, though not closed
    invoice(&client, "gamma", "2026-02", InvoiceState::Draft).await;
    let running = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tz"))
        .strftime("%Y-%m")
        .to_string();
    usage(&client, "alpha", &running, "9999-01", false).await;

    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in ["alpha", "beta"] {
        let mut ids = usage_ids(t, "2026-01");
        ids.push(invoice_id(t, "2026-01"));
        ids.extend(usage_ids(t, "2026-02"));
        expected.insert(t.into(), ids);
    }
    expected.insert("gamma".into(), usage_ids("gamma", "2026-01"));

    // The billing system is down: attempts fail, nothing is counted, the ledger says why.
    let op = RunningOperator::start(client.clone(), options(&endpoint), None);
    until("three failed attempts", |l| l.failed >= 3, &rx).await;
    assert!(rx.log.lock().unwrap().counted.is_empty());
    eventually("alpha-2026-01: Delivered=False", WAIT, || {
        let client = client.clone();
        async move {
            let c = delivered_usage(&client, "alpha-2026-01").await?;
            match &c {
                Some((s, m)) if s == "False" && m.contains("DeliveryFailed") => {
                    assert!(m.contains("503"), "{m}");
                    assert!(!m.contains(TOKEN), "the token is never shown");
                    Ok(true)
                }
                _ => anyhow::bail!("now {c:?}"),
            }
        }
    })
    .await
    .expect("failure shown");

    // It stalls: events are taken but never answered; the sender times out and will retry.
    rx.mode.store(STALLING, Ordering::SeqCst);
    until("two stalled attempts", |l| l.stalled >= 2, &rx).await;
    // The operator crashes mid-outage, and a new one starts while the receiver still fails.
    op.kill();
    rx.mode.store(FAILING, Ordering::SeqCst);
    let failed = rx.log.lock().unwrap().failed;
    let op = RunningOperator::start(client.clone(), options(&endpoint), None);
    until("the new operator retrying", |l| l.failed >= failed + 2, &rx).await;

    // Back up: everything arrives, each exactly once as counted, in order per tenant.
    rx.mode.store(UP, Ordering::SeqCst);
    let all: usize = expected.values().map(Vec::len).sum();
    until("every event counted", |l| l.counted.len() >= all, &rx).await;
    for name in [
        "alpha-2026-01",
        "alpha-2026-02",
        "beta-2026-01",
        "beta-2026-02",
        "gamma-2026-01",
    ] {
        eventually(&format!("{name}: Delivered=True"), WAIT, || {
            let client = client.clone();
            async move {
                let c = delivered_usage(&client, name).await?;
                match &c {
                    Some((s, _)) if s == "True" => Ok(true),
                    _ => anyhow::bail!("now {c:?}"),
                }
            }
        })
        .await
        .expect("usage delivered");
    }
    for name in ["alpha-2026-01", "beta-2026-01"] {
        eventually(&format!("{name}: deliveredAt"), WAIT, || {
            let client = client.clone();
            async move { Ok(delivered_at(&client, name).await?.is_some()) }
        })
        .await
        .expect("invoice delivered");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let log = rx.log.lock().unwrap();
        assert!(log.problems.is_empty(), "{:?}", log.problems);
        let mut per_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (t, id) in &log.counted {
            per_tenant.entry(t.clone()).or_default().push(id.clone());
        }
        assert_eq!(
            per_tenant, expected,
            "exactly the finished usage and final invoices, each once, in order per tenant"
        );
        assert!(
            log.duplicates >= 1,
            "the stalled events were sent again and deduplicated by id: {log:?}"
        );
    }
    assert_eq!(
        delivered_usage(&client, &format!("alpha-{running}"))
            .await
            .expect("read"),
        None,
        "the running month is not sent"
    );
    assert_eq!(
        delivered_at(&client, "gamma-2026-02").await.expect("read"),
        None,
        "a draft is not sent"
    );

    // Nothing more is sent for what was delivered; a new final invoice goes at once.
    let requests = rx.log.lock().unwrap().requests;
    invoice(&client, "gamma", "2026-01", InvoiceState::Final).await;
    eventually("gamma-2026-01: deliveredAt", WAIT, || {
        let client = client.clone();
        async move { Ok(delivered_at(&client, "gamma-2026-01").await?.is_some()) }
    })
    .await
    .expect("new invoice delivered");
    {
        let log = rx.log.lock().unwrap();
        assert_eq!(
            log.requests,
            requests + 1,
            "one request, for the new invoice"
        );
        assert_eq!(
            log.counted.last().map(|(_, id)| id.clone()),
            Some(invoice_id("gamma", "2026-01"))
        );
    }

    // A segment added to a delivered month (its tenant made again within it) goes on its own,
    // as version 2. Its first attempt fails: the mark that says so keeps the count of segments
    // delivered, so that a new operator still sends version 2 — sent again as version 1, the
    // receiver would drop it as seen and the segment would never be billed.
    rx.mode.store(FAILING, Ordering::SeqCst);
    let failed = rx.log.lock().unwrap().failed;
    let usages: Api<Usage> = Api::all(client.clone());
    let segment = |from: &str, to: &str| {
        json!({"from": from, "to": to, "serviceLevel": "silver", "accounts": {"standard": 250},
               "components": [{"name": "zaak", "class": "applicationHosting", "serviceLevel": "silver"}]})
    };
    usages
        .patch_status(
            "beta-2026-02",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {
                "segments": [
                    segment("2026-02-01T00:00:00+01:00", "2026-02-15T00:00:00+01:00"),
                    segment("2026-02-20T00:00:00+01:00", "2026-03-01T00:00:00+01:00"),
                ],
                "segmentCount": 2,
            }})),
        )
        .await
        .expect("a segment added");
    until("the added segment failing", |l| l.failed > failed, &rx).await;
    eventually("beta-2026-02: Delivered=False", WAIT, || {
        let client = client.clone();
        async move {
            let c = delivered_usage(&client, "beta-2026-02").await?;
            Ok(c.is_some_and(|(s, m)| s == "False" && m.contains("DeliveryFailed")))
        }
    })
    .await
    .expect("failure shown");
    let kept = usages
        .get("beta-2026-02")
        .await
        .expect("read")
        .status
        .and_then(|s| s.delivered_segments);
    assert_eq!(kept, Some(1), "the failure keeps the count delivered");
    op.kill();
    rx.mode.store(UP, Ordering::SeqCst);
    let op = RunningOperator::start(client.clone(), options(&endpoint), None);
    let version_2 = [
        event_id("beta", "accounts-standard-silver", "2026-02", 2),
        event_id("beta", "component-applicationHosting-silver", "2026-02", 2),
    ];
    until(
        "the added segment counted as version 2",
        |l| {
            version_2
                .iter()
                .all(|id| l.counted.iter().any(|(_, c)| c == id))
        },
        &rx,
    )
    .await;
    eventually("beta-2026-02: two segments delivered", WAIT, || {
        let usages = usages.clone();
        async move {
            let st = usages.get("beta-2026-02").await?.status.unwrap_or_default();
            Ok(st.delivered_segments == Some(2))
        }
    })
    .await
    .expect("delivered");
    op.stop().await.expect("stop");
}
