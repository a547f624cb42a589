//! Invoices inside `regie run`, end to end against a real control plane of its own, with the
//! operator's clock moved by the test: a tier change and an account change recorded in March
//! give a draft correct to the cent (by hand and by `regie::billing::engine` on the objects in
//! the cluster); an unchanged world writes nothing; March closes → final number 1; a late
//! correction of March's ledger goes on April as a correction line, March untouched; a restart
//! and May → April final number 2, carrying the correction once; another restart writes
//! nothing; deleting the tenant makes May final (up to the deletion instant) before its
//! namespace goes; two claimants of numbers never get the same one; a ledger created behind
//! the Usage cache's back (create → 409) is read and extended, never replaced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use regie::billing::engine::{Credits, bill, from_inventory};
use regie::billing::period::Period;
use regie::billing::proration::Calendar;
use regie::controller::invoicing::{COUNTER, claim_number};
use regie::controller::{Clock, Context, Options, children};
use regie::input::{Object, Source};
use regie::inventory::Inventory;
use regie::metrics::Metrics;
use regie_crds::generated::InvoiceState;
use regie_crds::{Invoice, PriceList, ServiceLevel, Tenant, Usage, WorkplacePackage};
use regie_e2e::cluster::TestCluster;
use regie_e2e::operator::eventually;

const TENANT: &str = "facturen";
const NS: &str = "tenant-facturen";
const WAIT: Duration = Duration::from_secs(90);

const CATALOGUE: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: ServiceLevel
metadata:
  name: bronze
spec:
  rank: 1
  timeZone: Europe/Amsterdam
  serviceHours: ["Mon-Fri 08:00-17:00"]
  responseTimes: {urgent: 60m, other: 48h}
  kpiReport: monthly
  localSupport: digital
  securityManagement: basic
  supplierManagement: none
  monitoring: none
  availability: {target: "99.0"}
  probe: {interval: 60s, timeout: 10s}
  workload: {minReplicas: 1, minAvailable: 0}
  credits:
    - {below: "99.0", percent: 5}
---
apiVersion: regie.dev/v1alpha1
kind: ServiceLevel
metadata:
  name: silver
spec:
  rank: 2
  timeZone: Europe/Amsterdam
  serviceHours: ["Mon-Fri 08:00-22:00"]
  responseTimes: {urgent: 30m, other: 24h}
  kpiReport: monthly
  localSupport: digital
  securityManagement: basic
  supplierManagement: none
  monitoring: none
  availability: {target: "99.5"}
  probe: {interval: 30s, timeout: 5s}
  workload: {minReplicas: 1, minAvailable: 0}
  credits:
    - {below: "99.5", percent: 5}
---
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata:
  name: prices-2026
spec:
  currency: EUR
  effectiveFrom: "2026-01-01"
  vat: {category: S, percent: "21"}
  rates:
    - {item: account, profile: standard, serviceLevel: bronze, per: month, amount: "30.00"}
    - {item: account, profile: standard, serviceLevel: silver, per: month, amount: "36.00"}
---
apiVersion: regie.dev/v1alpha1
kind: Tenant
metadata:
  name: facturen
spec:
  displayName: Gemeente Facturen
  inhabitants: 20000
  serviceLevel: bronze
  membership:
    joined: "2024-01-01"
  billing:
    invoicing: monthly
"#;

fn package(accounts: i64) -> String {
    format!(
        r#"apiVersion: regie.dev/v1alpha1
kind: WorkplacePackage
metadata:
  name: standard
  namespace: {NS}
spec:
  profile: standard
  accounts: {accounts}
"#
    )
}

/// A controller's shared state at `clock`, its caches empty and not listed: for the steps that
/// drive one function of the controller against the real API server.
fn bare_context(client: &Client, clock: Clock) -> Context {
    Context::new(
        client.clone(),
        &Options::default(),
        Metrics::new(),
        clock,
        children::child_kinds("v1"),
        kube::runtime::reflector::store().0,
        None,
    )
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// An operator in this process on the test's clock.
struct Op {
    metrics: Metrics,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(client: &Client, now: &Arc<Mutex<Timestamp>>) -> Op {
    start_pricing(client, now, Options::default().invoice_part)
}

/// [`start`], its passes pricing `part` tenants at a time.
fn start_pricing(client: &Client, now: &Arc<Mutex<Timestamp>>, part: usize) -> Op {
    // The operator's own logs, when asked for (RUST_LOG=info cargo test ...).
    if std::env::var_os("RUST_LOG").is_some() {
        regie::runtime::init_logging(false);
    }
    let metrics = Metrics::new();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().expect("clock"))
    };
    // Tenants are looked at every second too, so each month's ledger starts at its first
    // instant (metering carries the state over when a tenant is reconciled in a new month).
    let options = Options {
        invoice_interval: Duration::from_secs(1),
        resync: Duration::from_secs(1),
        invoice_part: part,
        ..Options::default()
    };
    let handle = tokio::spawn(regie::runtime::operate(
        client.clone(),
        options,
        None,
        metrics.clone(),
        clock,
        async move {
            let _ = rx.await;
        },
    ));
    Op {
        metrics,
        stop,
        handle,
    }
}

impl Op {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("stops within 30 s")
            .expect("joins")
            .expect("runs cleanly");
    }

    fn invoice_writes(&self) -> u64 {
        ["create", "update"]
            .iter()
            .map(|v| {
                self.metrics
                    .api_writes
                    .with_label_values(&[v, "Invoice"])
                    .get()
            })
            .sum()
    }

    /// Waits until this operator has written no invoice for a few seconds: the month's ledger
    /// is opened in two writes (the Usage, then its segments), and each may redraft.
    async fn settled(&self) {
        let quiet_for = Duration::from_secs(3);
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = self.invoice_writes();
        let mut since = std::time::Instant::now();
        while since.elapsed() < quiet_for {
            assert!(
                std::time::Instant::now() < deadline,
                "invoicing never settled"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.invoice_writes();
            if now != seen {
                seen = now;
                since = std::time::Instant::now();
            }
        }
    }
}

async fn segments(client: &Client, month: &str) -> Vec<regie_crds::generated::Segment> {
    segments_named(client, &format!("{TENANT}-{month}")).await
}

/// The segments of the Usage `name`; none when it is absent.
async fn segments_named(client: &Client, name: &str) -> Vec<regie_crds::generated::Segment> {
    let api: Api<Usage> = Api::all(client.clone());
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|u| u.status)
        .map(|s| s.segments)
        .unwrap_or_default()
}

async fn wait_segments(
    client: &Client,
    what: &str,
    check: impl Fn(&[regie_crds::generated::Segment]) -> bool,
) {
    wait_month_segments(client, "2026-03", what, check).await;
}

async fn wait_month_segments(
    client: &Client,
    month: &str,
    what: &str,
    check: impl Fn(&[regie_crds::generated::Segment]) -> bool,
) {
    let check = &check;
    eventually(what, WAIT, || async move {
        Ok(check(&segments(client, month).await))
    })
    .await
    .expect(what);
}

async fn invoice(client: &Client, name: &str) -> Option<Invoice> {
    let api: Api<Invoice> = Api::all(client.clone());
    api.get_opt(name).await.expect("get invoice")
}

async fn wait_invoice(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&Invoice) -> bool,
) -> Invoice {
    let check = &check;
    if let Err(e) = eventually(what, WAIT, || async move {
        Ok(invoice(client, name).await.is_some_and(|i| check(&i)))
    })
    .await
    {
        panic!("{e:#}\n{}", billing_state(client).await);
    }
    invoice(client, name).await.expect("invoice")
}

/// Every Invoice's lines and every Usage's ledger as they stand, for a failure's message: a
/// wait that times out says what the operator had written by then.
async fn billing_state(client: &Client) -> String {
    let mut out = String::new();
    for i in all::<Invoice>(client).await {
        out += &format!(
            "Invoice {} (resourceVersion {:?}): {:?} {:?}, lines {:?}\n",
            i.name_any(),
            i.resource_version(),
            i.spec.state,
            i.spec.number,
            i.spec
                .lines
                .iter()
                .map(|l| format!("{} {} {}", l.kind, l.amount, l.description))
                .collect::<Vec<_>>()
        );
    }
    for u in all::<Usage>(client).await {
        out += &format!(
            "Usage {} (resourceVersion {:?}): {:?}\n",
            u.name_any(),
            u.resource_version(),
            u.status.map(|s| s.segments)
        );
    }
    out
}

/// Every object of kind `K`, or none when they cannot be listed (for a failure's message).
async fn all<K>(client: &Client) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn versions(client: &Client) -> BTreeMap<String, String> {
    let api: Api<Invoice> = Api::all(client.clone());
    api.list(&Default::default())
        .await
        .expect("list invoices")
        .into_iter()
        .map(|i| (i.name_any(), i.resource_version().unwrap_or_default()))
        .collect()
}

/// The March invoice as `regie::billing::engine` prices the objects the cluster holds now.
async fn engine_march(client: &Client, now: Timestamp) -> regie_crds::generated::InvoiceSpec {
    let src = || Source {
        file: PathBuf::from("cluster"),
        document: 0,
    };
    let mut objects: Vec<(Source, Object)> = Vec::new();
    for l in Api::<ServiceLevel>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("levels")
    {
        objects.push((src(), Object::ServiceLevel(l)));
    }
    for x in Api::<Tenant>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("tenants")
    {
        objects.push((src(), Object::Tenant(x)));
    }
    for x in Api::<WorkplacePackage>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("packages")
    {
        objects.push((src(), Object::WorkplacePackage(x)));
    }
    for x in Api::<PriceList>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("prices")
    {
        objects.push((src(), Object::PriceList(x)));
    }
    for x in Api::<Usage>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("usages")
    {
        objects.push((src(), Object::Usage(x)));
    }
    let inv = Inventory::new(objects);
    let cal = Calendar::amsterdam().expect("calendar");
    let tz = cal.tz().clone();
    let (cat, tenants) = from_inventory(&inv, cal).expect("inputs");
    let period = Period::parse("2026-03").expect("period");
    let invoices = bill(&cat, &tenants, &Credits::new(), period, now).expect("bill");
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    invoices[0].to_spec(&tz)
}

#[tokio::test]
async fn invoices_end_to_end() {
    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let now = Arc::new(Mutex::new(t("2026-03-01T00:00:00+01:00")));
    let set = |s: &str| *now.lock().expect("clock") = t(s);

    // 1. March opens at bronze with 100 accounts.
    cluster
        .apply_yaml(dir, "catalogue.yaml", CATALOGUE)
        .expect("manifest applies");
    let op = start(&client, &now);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually("the tenant namespace", WAIT, || {
        let namespaces = namespaces.clone();
        async move { Ok(namespaces.get_opt(NS).await?.is_some()) }
    })
    .await
    .expect("namespace");
    cluster
        .apply_yaml(dir, "package.yaml", &package(100))
        .expect("manifest applies");
    wait_segments(&client, "March's ledger at bronze, 100 accounts", |s| {
        s.len() == 1 && s[0].accounts.get("standard") == Some(&100)
    })
    .await;

    // 2. Silver from 11 March, 3. 120 accounts from 21 March.
    set("2026-03-11T00:00:00+01:00");
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants
        .patch(
            TENANT,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"serviceLevel": "silver"}})),
        )
        .await
        .expect("tier change");
    wait_segments(&client, "the tier change in the ledger", |s| {
        s.len() == 2 && s[1].service_level == "silver"
    })
    .await;
    set("2026-03-21T00:00:00+01:00");
    cluster
        .apply_yaml(dir, "package.yaml", &package(120))
        .expect("manifest applies");
    wait_segments(&client, "the account change in the ledger", |s| {
        s.len() == 3 && s[2].accounts.get("standard") == Some(&120)
    })
    .await;

    // 4. The draft: by hand, March 2026 has 743 hours (summer time from the 29th):
    //    100 × 30.00 × 240/743 = 969.04; 100 × 36.00 × 240/743 = 1162.85;
    //    120 × 36.00 × 263/743 = 1529.15; subtotal 3661.04, VAT 21% 768.82, total 4429.86.
    let march = wait_invoice(&client, "facturen-2026-03", "the March draft", |i| {
        i.spec.subtotal == "3661.04"
    })
    .await;
    assert_eq!(march.spec.state, InvoiceState::Draft);
    assert_eq!(march.spec.number, None);
    assert_eq!(
        (march.spec.vat.as_str(), march.spec.total.as_str()),
        ("768.82", "4429.86")
    );
    let amounts: Vec<&str> = march.spec.lines.iter().map(|l| l.amount.as_str()).collect();
    assert_eq!(
        amounts,
        ["969.04", "1162.85", "1529.15"],
        "{:#?}",
        march.spec.lines
    );
    assert_eq!(
        march.spec,
        engine_march(&client, t("2026-03-21T00:00:00+01:00")).await,
        "the operator's draft is what the engine makes of the cluster's objects"
    );

    // 5. An unchanged world writes nothing (the loop runs every second).
    let before = (versions(&client).await, op.invoice_writes());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        (versions(&client).await, op.invoice_writes()),
        before,
        "passes over an unchanged world write nothing"
    );

    // 6. March closes: final, number 1; April opens as a draft.
    set("2026-04-01T00:00:05+02:00");
    let march = wait_invoice(&client, "facturen-2026-03", "March final", |i| {
        i.spec.state == InvoiceState::Final
    })
    .await;
    assert_eq!(march.spec.number.as_deref(), Some("RG-2026-000001"));
    assert_eq!(march.spec.subtotal, "3661.04", "final as drafted");
    wait_invoice(&client, "facturen-2026-04", "the April draft", |i| {
        i.spec.state == InvoiceState::Draft
    })
    .await;

    // 7. A late correction of March's ledger: 101 accounts in its first ten days. It goes on
    //    April (1 × 30.00 × 240/743 = 9.69); March is never rewritten.
    let usages: Api<Usage> = Api::all(client.clone());
    let mut segs = segments(&client, "2026-03").await;
    segs[0].accounts.insert("standard".into(), 101);
    usages
        .patch_status(
            &format!("{TENANT}-2026-03"),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"segments": segs}})),
        )
        .await
        .expect("correct the ledger");
    let april = wait_invoice(
        &client,
        "facturen-2026-04",
        "the correction on April",
        |i| i.spec.lines.iter().any(|l| l.kind == "correction"),
    )
    .await;
    let corrections: Vec<_> = april
        .spec
        .lines
        .iter()
        .filter(|l| l.kind == "correction")
        .collect();
    assert_eq!(corrections.len(), 1, "{corrections:#?}");
    assert_eq!(corrections[0].amount, "9.69");
    assert!(corrections[0].description.contains("RG-2026-000001"));
    // Every stored line, the correction's too, carries the VAT it was billed with.
    for l in march.spec.lines.iter().chain(&april.spec.lines) {
        assert_eq!(
            (l.vat_category.as_deref(), l.vat_percent.as_deref()),
            (Some("S"), Some("21")),
            "{l:?}"
        );
    }
    let march_again = invoice(&client, "facturen-2026-03").await.expect("march");
    assert_eq!(
        march_again.resource_version(),
        march.resource_version(),
        "a final invoice is never rewritten"
    );

    // 8. Restart in May: April final with number 2, carrying the correction; May without it.
    //    The stopped operator is left as one that died opening May: April's ledger closed at
    //    May's first instant, May's not written. April's state still carries into May. April's
    //    ledger is opened by the first reconcile in April (the resync comes every second),
    //    which the steps above need not have waited for.
    wait_month_segments(&client, "2026-04", "April's ledger opened", |s| {
        !s.is_empty()
    })
    .await;
    op.stop().await;
    let mut april_segments = segments(&client, "2026-04").await;
    april_segments.last_mut().expect("April has a segment").to =
        Some("2026-05-01T00:00:00+02:00".into());
    usages
        .patch_status(
            &format!("{TENANT}-2026-04"),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "status": {"segments": april_segments, "closed": true}
            })),
        )
        .await
        .expect("close April at the boundary");
    set("2026-05-01T00:00:05+02:00");
    let op = start(&client, &now);
    let april = wait_invoice(&client, "facturen-2026-04", "April final", |i| {
        i.spec.state == InvoiceState::Final
    })
    .await;
    assert_eq!(april.spec.number.as_deref(), Some("RG-2026-000002"));
    assert!(
        april
            .spec
            .lines
            .iter()
            .any(|l| l.kind == "correction" && l.amount == "9.69")
    );
    let may = wait_invoice(&client, "facturen-2026-05", "the May draft", |i| {
        i.spec.state == InvoiceState::Draft
    })
    .await;
    assert!(
        may.spec.lines.iter().all(|l| l.kind != "correction"),
        "a correction is carried once: {:#?}",
        may.spec.lines
    );

    // 9. Another restart at the same moment writes nothing and hands out no number. The first
    //    operator is stopped once May's ledger is open and its drafts follow it.
    eventually("the May ledger to open", WAIT, || async {
        Ok(!segments(&client, "2026-05").await.is_empty())
    })
    .await
    .expect("the May ledger");
    assert_eq!(
        segments(&client, "2026-05").await[0].from,
        "2026-05-01T00:00:00+02:00",
        "May begins at its first instant, with April's state"
    );
    op.settled().await;
    op.stop().await;
    let counters: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let counter_before = counters.get(COUNTER).await.expect("counter");
    let before = versions(&client).await;
    let op = start(&client, &now);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        versions(&client).await,
        before,
        "a restart rewrites nothing"
    );
    assert_eq!(op.invoice_writes(), 0);
    let counter = counters.get(COUNTER).await.expect("counter");
    assert_eq!(
        counter.resource_version(),
        counter_before.resource_version()
    );
    let data = counter.data.clone().unwrap_or_default();
    assert_eq!(data.get("RG-2026").map(String::as_str), Some("2"));
    assert!(
        !data.keys().any(|k| k.starts_with("claim.")),
        "claims are released once used: {data:?}"
    );

    // 10. Offboarding mid-May: the final invoice exists before the namespace goes.
    set("2026-05-15T12:00:00+02:00");
    tenants
        .delete(TENANT, &DeleteParams::default())
        .await
        .expect("delete tenant");
    let invoices: Api<Invoice> = Api::all(client.clone());
    eventually(
        "the namespace to go, never before May is final",
        Duration::from_secs(120),
        || {
            let namespaces = namespaces.clone();
            let invoices = invoices.clone();
            async move {
                let ns = namespaces.get_opt(NS).await?;
                let going = ns
                    .as_ref()
                    .is_none_or(|n| n.metadata.deletion_timestamp.is_some());
                if going {
                    let may = invoices.get_opt("facturen-2026-05").await?;
                    assert!(
                        may.is_some_and(|m| m.spec.state == InvoiceState::Final),
                        "the namespace goes only after the final invoice is written"
                    );
                }
                Ok(ns.is_none())
            }
        },
    )
    .await
    .expect("offboarding");
    let may = invoice(&client, "facturen-2026-05").await.expect("may");
    assert_eq!(may.spec.number.as_deref(), Some("RG-2026-000003"));
    let end = t("2026-05-15T12:00:00+02:00");
    let ends: Vec<Timestamp> = may.spec.lines.iter().map(|l| t(&l.to)).collect();
    assert!(
        !ends.is_empty() && ends.iter().all(|e| *e <= end) && ends.contains(&end),
        "May is billed up to the deletion instant: {:#?}",
        may.spec.lines
    );
    // 14.5 days of 744 h (348 h) at 120 silver accounts: 120 × 36.00 × 348/744 = 2020.65.
    assert_eq!(may.spec.subtotal, "2020.65", "{:#?}", may.spec.lines);
    let after = versions(&client).await;
    assert_eq!(
        after.get("facturen-2026-03"),
        before.get("facturen-2026-03")
    );
    assert_eq!(
        after.get("facturen-2026-04"),
        before.get("facturen-2026-04")
    );

    // 11. Back on 20 May under the same name, gone again on the 25th: May is final already,
    //     so the second stay goes on a closing invoice of its own (it went unbilled).
    set("2026-05-20T00:00:00+02:00");
    cluster
        .apply_yaml(
            dir,
            "tenant.yaml",
            &CATALOGUE[CATALOGUE.find("kind: Tenant").expect("tenant")..]
                .replace("serviceLevel: bronze", "serviceLevel: silver")
                .replace(
                    "kind: Tenant",
                    "apiVersion: regie.dev/v1alpha1\nkind: Tenant",
                ),
        )
        .expect("manifest applies");
    eventually("the tenant namespace again", WAIT, || {
        let namespaces = namespaces.clone();
        async move { Ok(namespaces.get_opt(NS).await?.is_some()) }
    })
    .await
    .expect("namespace");
    cluster
        .apply_yaml(dir, "package.yaml", &package(120))
        .expect("manifest applies");
    wait_month_segments(&client, "2026-05", "the second stay in May's ledger", |s| {
        s.len() == 2 && s[1].to.is_none() && s[1].accounts.get("standard") == Some(&120)
    })
    .await;
    set("2026-05-25T00:00:00+02:00");
    tenants
        .delete(TENANT, &DeleteParams::default())
        .await
        .expect("delete tenant");
    let closing = wait_invoice(
        &client,
        "facturen-2026-05-c1",
        "the closing invoice of the second stay",
        |i| i.spec.state == InvoiceState::Final,
    )
    .await;
    assert_eq!(closing.spec.number.as_deref(), Some("RG-2026-000004"));
    // 5 days of 744 h (120 h) at 120 silver accounts: 120 × 36.00 × 120/744 = 696.77.
    assert_eq!(closing.spec.subtotal, "696.77", "{:#?}", closing.spec.lines);
    assert_eq!(
        invoice(&client, "facturen-2026-05")
            .await
            .expect("may")
            .spec,
        may.spec,
        "a final invoice is never written again"
    );
    op.stop().await;

    // 12. Two replicas claiming at once never share a number; a claim is found again.
    let known: Vec<String> = Vec::new();
    let (a, b, a_again) = tokio::join!(
        claim_number(&counters, "x-2026-06", 2026, &known),
        claim_number(&counters, "y-2026-06", 2026, &known),
        claim_number(&counters, "x-2026-06", 2026, &known),
    );
    let (a, b, a_again) = (
        a.expect("a").0,
        b.expect("b").0,
        a_again.expect("a again").0,
    );
    assert_ne!(a, b);
    assert_eq!(a, a_again, "one invoice, one number");
    let mut got = [a, b];
    got.sort();
    assert_eq!(got, ["RG-2026-000005", "RG-2026-000006"]);
}

/// The ledger race: the Usage cache, fully listed, does not hold this month's ledger, yet the
/// server does (another writer — a former leader — created it after the list). regie takes the
/// cached absence, creates the ledger, gets 409, reads it and records onto it: the segments
/// already there stay, the new state closes the open one. Without the re-read, the status write
/// would replace March 2–10 at bronze with a ledger that starts on 10 March.
/// A pass that prices its tenants a part at a time (one here; 64 by default) writes every
/// tenant's draft, and when the month closes numbers the finals in the order a pass priced
/// all at once gives them: by period, then by tenant.
#[tokio::test]
async fn a_pass_in_parts_drafts_every_tenant_and_numbers_finals_in_order() {
    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let now = Arc::new(Mutex::new(t("2026-03-01T00:00:00+01:00")));
    let tenants = ["facturen", "facturen-b", "facturen-c"];
    let more: String = tenants[1..]
        .iter()
        .map(|name| {
            format!(
                r#"---
apiVersion: regie.dev/v1alpha1
kind: Tenant
metadata:
  name: {name}
spec:
  displayName: Gemeente {name}
  inhabitants: 10000
  serviceLevel: bronze
  membership:
    joined: "2024-01-01"
  billing:
    invoicing: monthly
"#
            )
        })
        .collect();
    cluster
        .apply_yaml(dir, "catalogue.yaml", &format!("{CATALOGUE}{more}"))
        .expect("manifest applies");
    let op = start_pricing(&client, &now, 1);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in tenants {
        let ns = format!("tenant-{name}");
        eventually("the tenant namespaces", WAIT, || {
            let (namespaces, ns) = (namespaces.clone(), ns.clone());
            async move { Ok(namespaces.get_opt(&ns).await?.is_some()) }
        })
        .await
        .expect("namespace");
        cluster
            .apply_yaml(
                dir,
                &format!("package-{name}.yaml"),
                &package(100).replace(NS, &ns),
            )
            .expect("manifest applies");
    }
    for name in tenants {
        wait_invoice(
            &client,
            &format!("{name}-2026-03"),
            "every tenant's March draft",
            |i| i.spec.state == InvoiceState::Draft && i.spec.subtotal != "0.00",
        )
        .await;
    }
    *now.lock().expect("clock") = t("2026-04-01T00:00:05+02:00");
    for (number, name) in tenants.iter().enumerate() {
        let march = wait_invoice(&client, &format!("{name}-2026-03"), "March final", |i| {
            i.spec.state == InvoiceState::Final
        })
        .await;
        assert_eq!(
            march.spec.number,
            Some(format!("RG-2026-{:06}", number + 1)),
            "{name}"
        );
        wait_invoice(
            &client,
            &format!("{name}-2026-04"),
            "the April drafts",
            |i| i.spec.state == InvoiceState::Draft,
        )
        .await;
    }
    op.stop().await;
}

#[tokio::test]
async fn a_ledger_created_behind_the_cache_is_read_and_extended() {
    use kube::api::PostParams;
    use kube::runtime::watcher::Event;
    use regie::billing::ledger::{self, BillableState};
    use regie::controller::cache::{Filler, differ};
    use regie::controller::invoicing::Ledger;
    use regie::controller::{children, metering};
    use regie_crds::generated::{UsageSpec, UsageStatus};

    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let cal = Calendar::amsterdam().expect("Europe/Amsterdam");
    let state = |level: &str, accounts: i64| BillableState {
        service_level: level.into(),
        accounts: BTreeMap::from([("standard".to_string(), accounts)]),
        measured_accounts: BTreeMap::new(),
        components: Vec::new(),
    };
    let (march_2, march_10) = (
        t("2026-03-02T09:00:00+01:00"),
        t("2026-03-10T12:00:00+01:00"),
    );

    // The other writer's ledger: bronze with 100 accounts since 2 March.
    let mut theirs = Vec::new();
    ledger::record(&mut theirs, &state("bronze", 100), march_2, &cal).expect("recorded");
    let usages: Api<Usage> = Api::all(client.clone());
    let name = "race-2026-03";
    let usage = Usage::new(
        name,
        UsageSpec {
            tenant: "race".into(),
            period: "2026-03".into(),
        },
    );
    usages
        .create(&PostParams::default(), &usage)
        .await
        .expect("created");
    let status = UsageStatus {
        segment_count: Some(theirs.len() as i32),
        segments: theirs.clone(),
        ..UsageStatus::default()
    };
    usages
        .patch_status(
            name,
            &PatchParams::apply("another-writer"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "regie.dev/v1alpha1", "kind": "Usage", "status": status,
            })),
        )
        .await
        .expect("their segments");

    // This process's view: every cache listed, none holding the ledger.
    let ctx = bare_context(&client, Arc::new(move || march_10));
    let mut filler = Filler::new(ctx.invoicing.usages.clone(), differ);
    let no_object = |_: Usage, _: &Arc<str>| -> Ledger { unreachable!("no object is listed") };
    filler.handle(Event::Init, no_object);
    filler.handle(Event::InitDone, no_object);
    assert!(ctx.invoicing.usages.lacks(name), "the cache says absent");

    let tenant: Tenant = serde_json::from_value(serde_json::json!({
        "apiVersion": "regie.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "race"},
        "spec": {"displayName": "Race", "serviceLevel": "silver", "membership": {"joined": "2026-01-01"}},
    }))
    .expect("tenant");
    metering::record(&ctx, &tenant, &state("silver", 100), &Default::default())
        .await
        .expect("recorded despite the race");

    let mut expected = theirs;
    ledger::record(&mut expected, &state("silver", 100), march_10, &cal).expect("recorded");
    assert_eq!(expected.len(), 2, "bronze closed on 10 March, silver open");
    assert_eq!(segments_named(&client, name).await, expected);
    let writes = |verb: &str| {
        ctx.metrics
            .api_writes
            .with_label_values(&[verb, "Usage"])
            .get()
    };
    assert_eq!(
        (writes("create"), writes("status")),
        (0, 1),
        "the refused create is not a write; the segments are written once"
    );

    // Recorded once, the same state costs nothing more.
    metering::record(&ctx, &tenant, &state("silver", 100), &Default::default())
        .await
        .expect("recorded");
    assert_eq!(writes("status"), 1);

    // regie writes a ledger over the version it read: the API server refuses that write once
    // someone has changed the ledger since (a correction is then read again, not overwritten).
    let read = usages.get(name).await.expect("ledger");
    let segments = read.status.clone().expect("status").segments;
    usages
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"segmentCount": 99}})),
        )
        .await
        .expect("someone's change");
    let over_read = usages
        .patch_status(
            name,
            &PatchParams::apply(children::FIELD_MANAGER).force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "regie.dev/v1alpha1", "kind": "Usage",
                "metadata": {"resourceVersion": read.resource_version()},
                "status": {"segments": segments},
            })),
        )
        .await;
    assert!(
        matches!(&over_read, Err(kube::Error::Api(s)) if s.code == 409),
        "a write over a stale version is refused: {over_read:?}"
    );
}

/// A tenant deleted minutes into April, before any reconcile of April opened its ledger: the
/// offboarding opens April from March's ledger as that reconcile would have — March closed at
/// its month's end, April holding the minutes up to the deletion, closed — instead of leaving
/// March open (a tenant made again under the name would then have carried March's state over
/// from 1 April, the time it did not exist billed as a correction). And a tenant deleted seconds
/// before a month's end, while a reconcile that read it before opened the next month: the
/// offboarding ends both ledgers at the deletion. And one deleted at a month's first instant and
/// back later in it: its stay begins when it came back. And a month whose Usage was created
/// while its ledger write failed: the next record writes the state carried over; a month that
/// opens later passes it over; an offboarding opens it as a reconcile would have.
#[tokio::test]
async fn a_tenant_deleted_across_a_months_start_leaves_no_month_open() {
    use kube::api::PostParams;
    use kube::runtime::watcher::Event;
    use regie::billing::ledger::{self, BillableState};
    use regie::controller::cache::{Filler, differ};
    use regie::controller::invoicing::Ledger;
    use regie::controller::{children, metering};
    use regie_crds::generated::{Segment, UsageSpec, UsageStatus};

    let cluster = TestCluster::start().expect("control plane");
    let client = cluster.client().await.expect("client");
    let cal = Calendar::amsterdam().expect("Europe/Amsterdam");
    let silver = BillableState {
        service_level: "silver".into(),
        accounts: BTreeMap::from([("standard".to_string(), 100)]),
        measured_accounts: BTreeMap::new(),
        components: Vec::new(),
    };
    let mut march = Vec::new();
    ledger::record(&mut march, &silver, t("2026-03-02T09:00:00+01:00"), &cal).expect("recorded");
    let usages: Api<Usage> = Api::all(client.clone());
    let put_ledger = |tenant: &'static str, period: &'static str, segments: Vec<Segment>| {
        let usages = usages.clone();
        async move {
            let name = format!("{tenant}-{period}");
            let spec = UsageSpec {
                tenant: tenant.into(),
                period: period.into(),
            };
            usages
                .create(&PostParams::default(), &Usage::new(&name, spec))
                .await
                .expect("created");
            let status = UsageStatus {
                segment_count: Some(segments.len() as i32),
                segments,
                ..UsageStatus::default()
            };
            usages
                .patch_status(
                    &name,
                    &PatchParams::apply(children::FIELD_MANAGER),
                    &Patch::Apply(serde_json::json!({
                        "apiVersion": "regie.dev/v1alpha1", "kind": "Usage", "status": status,
                    })),
                )
                .await
                .expect("its segments");
        }
    };
    // A ledger of `period`, silver from `from` on, left open.
    let open_ledger = |tenant: &'static str, period: &'static str, from: &str| {
        let mut segments = Vec::new();
        ledger::record(&mut segments, &silver, t(from), &cal).expect("recorded");
        put_ledger(tenant, period, segments)
    };
    // A Usage of `period` created, its segments never written (an error between metering's
    // two writes).
    let unwritten = |tenant: &'static str, period: &'static str| {
        let usages = usages.clone();
        async move {
            let spec = UsageSpec {
                tenant: tenant.into(),
                period: period.into(),
            };
            usages
                .create(
                    &PostParams::default(),
                    &Usage::new(&format!("{tenant}-{period}"), spec),
                )
                .await
                .expect("created");
        }
    };
    // The tenant `name` as the controller reads it, deleted at `deleted` when given.
    let tenant_named = |name: &str, deleted: Option<&str>| -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "regie.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name, "deletionTimestamp": deleted,
                         "finalizers": ["regie.dev/cleanup"]},
            "spec": {"displayName": name, "serviceLevel": "silver",
                     "membership": {"joined": "2026-01-01"}},
        }))
        .expect("tenant")
    };
    // The ledger `name`: closed, one silver segment from `from` to `to`.
    let closed_with_one = |name: &'static str, from: &'static str, to: &'static str| {
        let usages = usages.clone();
        async move {
            let status = usages.get(name).await.expect("ledger").status;
            let status = status.expect("status");
            assert!(status.closed, "{status:?}");
            assert_eq!(status.segments.len(), 1, "{status:?}");
            let segment = &status.segments[0];
            assert_eq!(
                (segment.from.as_str(), segment.to.as_deref()),
                (from, Some(to)),
                "{status:?}"
            );
            assert_eq!(segment.service_level, "silver");
        }
    };
    put_ledger("early", "2026-03", march).await;

    let ctx = bare_context(&client, Arc::new(|| t("2026-04-01T00:20:00+02:00")));
    let tenant = tenant_named("early", Some("2026-03-31T22:05:00Z"));
    metering::close(&ctx, &tenant).await.expect("closed");

    let march = segments_named(&client, "early-2026-03").await;
    assert_eq!(
        march.last().and_then(|s| s.to.clone()).as_deref(),
        Some("2026-04-01T00:00:00+02:00"),
        "March closed at its end: {march:?}"
    );
    closed_with_one(
        "early-2026-04",
        "2026-04-01T00:00:00+02:00",
        "2026-04-01T00:05:00+02:00",
    )
    .await;

    // Deleted at 23:59:50 on 30 April, while a reconcile that had read the tenant before its
    // deletion recorded at 00:00:05 on 1 May: April closed at its end, May opened with April's
    // state. The offboarding ends both at the deletion: April then, May empty (it was left
    // open, and billed the tenant on for May).
    open_ledger("late", "2026-04", "2026-04-01T00:00:00+02:00").await;
    let ctx = bare_context(&client, Arc::new(|| t("2026-05-01T00:00:05+02:00")));
    let late = |deleted| tenant_named("late", deleted);
    metering::record(&ctx, &late(None), &silver, &Default::default())
        .await
        .expect("recorded");
    let may = usages.get("late-2026-05").await.expect("May opened");
    assert_eq!(may.status.expect("status").segments.len(), 1);
    metering::close(&ctx, &late(Some("2026-04-30T21:59:50Z")))
        .await
        .expect("closed");
    let april = usages.get("late-2026-04").await.expect("April");
    let april = april.status.expect("status");
    assert!(april.closed, "{april:?}");
    assert_eq!(
        april.segments.last().and_then(|s| s.to.as_deref()),
        Some("2026-04-30T23:59:50+02:00"),
        "April ends at the deletion: {april:?}"
    );
    let may = usages.get("late-2026-05").await.expect("May");
    let may = may.status.expect("status");
    assert!(may.closed && may.segments.is_empty(), "{may:?}");

    // Deleted at May's first instant exactly, back on 10 May: May's ledger, closed with
    // nothing in it, carries nothing over from April — the stay begins on the 10th.
    open_ledger("first", "2026-04", "2026-04-01T00:00:00+02:00").await;
    let first = |deleted| tenant_named("first", deleted);
    let ctx = bare_context(&client, Arc::new(|| t("2026-05-01T00:00:00+02:00")));
    metering::close(&ctx, &first(Some("2026-04-30T22:00:00Z")))
        .await
        .expect("closed");
    let may = usages.get("first-2026-05").await.expect("May");
    let may = may.status.expect("status");
    assert!(may.closed && may.segments.is_empty(), "{may:?}");
    let ctx = bare_context(&client, Arc::new(|| t("2026-05-10T09:00:00+02:00")));
    metering::record(&ctx, &first(None), &silver, &Default::default())
        .await
        .expect("recorded");
    let may = segments_named(&client, "first-2026-05").await;
    assert_eq!(may.len(), 1, "{may:?}");
    assert_eq!(may[0].from, "2026-05-10T09:00:00+02:00", "{may:?}");

    // May's Usage created, its ledger not written (an error between the two writes): the next
    // record writes the state carried over from April, from May's first instant.
    open_ledger("halfway", "2026-04", "2026-04-01T00:00:00+02:00").await;
    unwritten("halfway", "2026-05").await;
    let halfway = tenant_named("halfway", None);
    let ctx = bare_context(&client, Arc::new(|| t("2026-05-01T00:10:00+02:00")));
    metering::record(&ctx, &halfway, &silver, &Default::default())
        .await
        .expect("recorded");
    let may = segments_named(&client, "halfway-2026-05").await;
    assert_eq!(may.len(), 1, "{may:?}");
    assert_eq!(may[0].from, "2026-05-01T00:00:00+02:00", "{may:?}");
    assert_eq!(may[0].to, None, "{may:?}");

    // The same on 1 April, and regie ran again only on 3 May: April's Usage, never written,
    // is passed over, and May opens from March's ledger (it opened from now, the state of
    // March's end not carried, and April's draft held back for good).
    open_ledger("skip", "2026-03", "2026-03-01T00:00:00+01:00").await;
    unwritten("skip", "2026-04").await;
    // As delivery marks a finished month's Usage it has nothing to send for: a status, no
    // segments, not closed.
    usages
        .patch_status(
            "skip-2026-04",
            &PatchParams::apply("regie-delivery"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "regie.dev/v1alpha1", "kind": "Usage",
                "status": {"deliveredSegments": 0},
            })),
        )
        .await
        .expect("marked");
    let skip = tenant_named("skip", None);
    let ctx = bare_context(&client, Arc::new(|| t("2026-05-03T10:00:00+02:00")));
    // The Usage cache, listed, holds the two ledgers (found through it, then read fresh).
    let mut filler = Filler::new(ctx.invoicing.usages.clone(), differ);
    filler.handle(Event::Init, Ledger::of);
    for name in ["skip-2026-03", "skip-2026-04"] {
        filler.handle(
            Event::InitApply(usages.get(name).await.expect("ledger")),
            Ledger::of,
        );
    }
    filler.handle(Event::InitDone, Ledger::of);
    metering::record(&ctx, &skip, &silver, &Default::default())
        .await
        .expect("recorded");
    let may = segments_named(&client, "skip-2026-05").await;
    assert_eq!(may.len(), 1, "{may:?}");
    assert_eq!(
        may[0].from, "2026-05-01T00:00:00+02:00",
        "carried from March: {may:?}"
    );
    let march = segments_named(&client, "skip-2026-03").await;
    assert_eq!(
        march.last().and_then(|s| s.to.as_deref()),
        Some("2026-04-01T00:00:00+02:00"),
        "March closed at its end: {march:?}"
    );

    // April's Usage created, its segments never written, and the tenant deleted on 10 April:
    // the offboarding opens April from March as a reconcile would have, and closes it at the
    // deletion (it closed it empty, which reads as a departure at April's first instant).
    open_ledger("gone", "2026-03", "2026-03-01T00:00:00+01:00").await;
    unwritten("gone", "2026-04").await;
    let gone = tenant_named("gone", Some("2026-04-10T10:00:00Z"));
    let ctx = bare_context(&client, Arc::new(|| t("2026-04-10T12:00:05+02:00")));
    metering::close(&ctx, &gone).await.expect("closed");
    closed_with_one(
        "gone-2026-04",
        "2026-04-01T00:00:00+02:00",
        "2026-04-10T12:00:00+02:00",
    )
    .await;
}
