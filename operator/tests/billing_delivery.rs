//! Delivery against a real HTTP receiver on 127.0.0.1 that fails (HTTP 500), stalls (accepts an
//! event, then never answers: the sender times out and must retry) and recovers. The receiver
//! deduplicates by event id, as OpenMeter does; every event must be counted exactly once, each
//! tenant's events in the order they were made, across a "restart" (the outbox saved as JSON
//! and read back mid-way). Also the measured-accounts fetch against a loopback endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use regie::billing::accounts::fetch_measured;
use regie::billing::delivery::{Sender, deliver_due};
use regie::billing::events::{Backoff, CloudEvent, Outbox, SplitMix64, USAGE_TYPE, event_id};
use serde_json::{Value, json};

#[derive(Default)]
struct Receiver {
    requests: usize,
    /// Ids in the order they were first accepted.
    accepted: Vec<(String, String)>,
    seen: BTreeSet<String>,
    duplicates: usize,
    bad_requests: Vec<String>,
}

type Shared = Arc<Mutex<Receiver>>;

/// Requests 1-3 fail with 500; request 4 is accepted but never answered (a stall); requests 5
/// and 6 fail again; after that everything is accepted.
async fn ingest(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (n, event) = {
        let mut r = s.lock().unwrap();
        r.requests += 1;
        let n = r.requests;
        if headers.get("content-type").and_then(|v| v.to_str().ok())
            != Some("application/cloudevents+json")
        {
            r.bad_requests.push("content-type".into());
        }
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
            r.bad_requests.push("authorization".into());
        }
        let event: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                r.bad_requests.push("body".into());
                return StatusCode::BAD_REQUEST;
            }
        };
        (n, event)
    };
    if n <= 3 || n == 5 || n == 6 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    {
        let mut r = s.lock().unwrap();
        let id = event["id"].as_str().unwrap_or("").to_string();
        if r.seen.insert(id.clone()) {
            let subject = event["subject"].as_str().unwrap_or("").to_string();
            r.accepted.push((subject, id));
        } else {
            r.duplicates += 1;
        }
    }
    if n == 4 {
        // Accepted, but the answer never comes before the sender's timeout.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    StatusCode::ACCEPTED
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn event(tenant: &str, n: u32) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".into(),
        id: event_id(
            tenant,
            "accounts-standard-bronze",
            &format!("2026-{n:02}"),
            1,
        ),
        source: "regie/test".into(),
        kind: USAGE_TYPE.into(),
        subject: tenant.into(),
        time: "2026-04-01T00:00:00Z".into(),
        datacontenttype: "application/json".into(),
        data: json!({"n": n}),
    }
}

#[tokio::test]
async fn outage_stall_and_recovery_deliver_every_event_once_in_order() {
    let state: Shared = Arc::default();
    let base = serve(
        Router::new()
            .route("/api/v1/events", post(ingest))
            .with_state(state.clone()),
    )
    .await;
    let sender = Sender::new(&base, Some("s3cret".into()), Duration::from_millis(300)).unwrap();
    let backoff = Backoff {
        base_seconds: 5,
        max_seconds: 600,
    };
    let mut rng = SplitMix64(2026);
    let mut now: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
    let tenants = ["etten-leur", "moerdijk", "tholen"];
    let mut outbox = Outbox::default();
    let mut made: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for n in 1..=4 {
        for t in tenants {
            let e = event(t, n);
            made.entry(t).or_default().push(e.id.clone());
            assert!(outbox.enqueue(e, now));
        }
    }
    // Enqueueing the same events again (a controller that re-derives them after a restart) adds nothing.
    assert!(!outbox.enqueue(event("tholen", 1), now));

    let mut rounds = 0;
    while !outbox.is_empty() {
        rounds += 1;
        assert!(
            rounds < 50,
            "delivery did not converge: {:?}",
            outbox
                .entries
                .iter()
                .map(|e| &e.last_error)
                .collect::<Vec<_>>()
        );
        let report = deliver_due(&mut outbox, &sender, now, &backoff, &mut rng).await;
        for (_, why) in &report.failed {
            assert!(
                why.contains("HTTP 500") || why.contains("did not answer"),
                "{why}"
            );
        }
        // The controller saves the outbox after each round; a restart reads it back.
        outbox = Outbox::from_json(&outbox.to_json().unwrap()).unwrap();
        now = now.checked_add(SignedDuration::from_secs(700)).unwrap();
    }

    let r = state.lock().unwrap();
    assert!(r.bad_requests.is_empty(), "{:?}", r.bad_requests);
    assert_eq!(r.seen.len(), 12, "every event arrived");
    assert_eq!(r.accepted.len(), 12, "each id counted once");
    assert!(
        r.duplicates >= 1,
        "the stalled request was retried and deduplicated by id"
    );
    assert!(
        r.requests >= 12 + 6,
        "the failures were retried: {} requests",
        r.requests
    );
    for t in tenants {
        let order: Vec<&String> = r
            .accepted
            .iter()
            .filter(|(s, _)| s == t)
            .map(|(_, id)| id)
            .collect();
        let want: Vec<&String> = made[t].iter().collect();
        assert_eq!(
            order, want,
            "{t}'s events arrived in the order they were made"
        );
    }
    assert_eq!(outbox.delivered.len(), 12);
}

#[tokio::test]
async fn a_receiver_that_is_down_keeps_events_waiting_with_growing_backoff() {
    // Nothing listens on this port once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let sender = Sender::new(&base, None, Duration::from_millis(200)).unwrap();
    let mut outbox = Outbox::default();
    let t0: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
    outbox.enqueue(event("tholen", 1), t0);
    let backoff = Backoff::default();
    let mut rng = SplitMix64(1);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let report = deliver_due(&mut outbox, &sender, now, &backoff, &mut rng).await;
        assert_eq!(report.failed.len(), 1);
        let next: Timestamp = outbox.entries[0].next_attempt_at.parse().unwrap();
        waits.push(next.as_second() - now.as_second());
        assert!(
            deliver_due(&mut outbox, &sender, now, &backoff, &mut rng)
                .await
                .failed
                .is_empty(),
            "not due before its time"
        );
        now = next;
    }
    assert_eq!(outbox.entries[0].attempts, 4);
    // Equal jitter: after n failures the wait lies in [d/2, d] for d = 5 s × 2^(n-1).
    for (i, w) in waits.iter().enumerate() {
        let d = 5i64 << i;
        assert!(
            *w >= d / 2 && *w <= d,
            "wait {i}: {w}s not in [{}, {d}]",
            d / 2
        );
    }
}

/// A JSON answer (the workspace's axum has no `json` feature).
fn js(v: Value) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
}

async fn accounts_app() -> String {
    let app = Router::new()
        .route("/ok", get(|| async { js(json!({"accounts": 312})) }))
        .route(
            "/nested",
            get(|| async { js(json!({"data": {"count": 7}})) }),
        )
        .route("/float", get(|| async { js(json!({"accounts": 3.5})) }))
        .route("/negative", get(|| async { js(json!({"accounts": -4})) }))
        .route("/text", get(|| async { "not json" }))
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                js(json!({"accounts": 1}))
            }),
        )
        .route(
            "/secured",
            get(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer t0ken")
                {
                    Ok(js(json!({"accounts": 99})))
                } else {
                    Err(StatusCode::UNAUTHORIZED)
                }
            }),
        );
    serve(app).await
}

#[tokio::test]
async fn measured_accounts_from_a_loopback_endpoint() {
    let base = accounts_app().await;
    let client = reqwest::Client::new();
    let t = Duration::from_millis(500);
    let get = |path: &str, pointer: Option<&'static str>, token: Option<&'static str>| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move { fetch_measured(&client, &url, pointer, token, t).await }
    };
    assert_eq!(get("/ok", None, None).await.unwrap(), 312);
    assert_eq!(get("/nested", Some("/data/count"), None).await.unwrap(), 7);
    assert_eq!(get("/secured", None, Some("t0ken")).await.unwrap(), 99);
    for (path, needle) in [
        ("/float", "not a whole number"),
        ("/negative", "cannot be negative"),
        ("/text", "no JSON"),
        ("/fail", "HTTP 503"),
        ("/slow", "did not answer within"),
        ("/secured", "HTTP 401"),
        ("/nested", "nothing at JSON pointer /accounts"),
    ] {
        let e = get(path, None, None).await.unwrap_err().to_string();
        assert!(e.contains(needle), "{path}: {e}");
        assert!(e.contains(&base), "the message names the URL: {e}");
    }
}

/// A receiver behind a redirect: followed, the POST would become a GET without its body, and a
/// 200 to that (the receiver's list of events) would count as delivered. The redirect is a
/// failure, retried; nothing reaches the events list.
#[tokio::test]
async fn a_redirect_is_a_failure_not_a_delivery() {
    let listed = Arc::new(Mutex::new(0usize));
    let seen = listed.clone();
    let app = Router::new()
        .route(
            "/api/v1/events",
            post(|| async {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/api/v1/events/")],
                )
            }),
        )
        .route(
            "/api/v1/events/",
            get(move || {
                let seen = seen.clone();
                async move {
                    *seen.lock().unwrap() += 1;
                    js(json!({"items": []}))
                }
            }),
        );
    let base = serve(app).await;
    let sender = Sender::new(&base, Some("s3cret".into()), Duration::from_millis(500)).unwrap();
    let e = sender.send(&event("tholen", 1)).await.unwrap_err();
    assert!(e.contains("HTTP 302"), "{e}");
    assert_eq!(*listed.lock().unwrap(), 0, "the redirect is not followed");
}

#[test]
fn a_billing_url_with_credentials_is_refused() {
    let Err(e) = Sender::new(
        "https://user:pw@billing.example",
        None,
        Duration::from_secs(1),
    ) else {
        panic!("refused")
    };
    let e = e.to_string();
    assert!(e.contains("user name or password"), "{e}");
    assert!(!e.contains("pw"), "{e}");
}

/// reqwest's error names the URL in its normalised form (a slash before the query here), which
/// the controller's redaction of the URL as written would not find: the message names only
/// the URL as written, so that redaction takes the query out.
#[tokio::test]
async fn a_failed_fetch_names_the_url_only_as_written() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}?key=s3cret", listener.local_addr().unwrap());
    drop(listener);
    let client = reqwest::Client::new();
    let e = fetch_measured(&client, &url, None, None, Duration::from_millis(500))
        .await
        .unwrap_err()
        .to_string();
    let shown = e.replace(&url, "SHOWN");
    assert!(!shown.contains("s3cret"), "{e}");
}
