//! Delivery of usage and final invoices to a billing system inside `regie run`, when it is
//! started with `--billing-endpoint`: every finished month of a `Usage` ledger becomes one
//! CloudEvent per meter, every `Invoice` with `spec.state: final` one event, sent in order per
//! tenant through the outbox of [`crate::billing::events`] with retries and backoff.
//!
//! What is still to send is kept in the cluster, on the objects themselves: a `Usage` is done
//! when its `Delivered` condition is True, an `Invoice` when it has `status.deliveredAt`. The
//! outbox in memory is rebuilt from them on every scan, so a restart (or a new leader) resumes
//! with exactly the objects not yet marked. Event ids are deterministic, so the few events a
//! crash may send again (those accepted after the last mark) are deduplicated by the receiver
//! and never counted twice. Only the leader runs this: it is part of the controller.
//!
//! The bearer token is read from one Secret (key `token`) and never logged or written anywhere.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use regie_crds::generated::InvoiceState;
use regie_crds::generated::UsageStatus;
use regie_crds::status::{self, is_true};
use regie_crds::{Invoice, Usage};
use serde_json::json;

use super::Context;
use crate::billing::delivery::Sender;
use crate::billing::events::{
    Backoff, CloudEvent, Outbox, SplitMix64, invoice_object_event, usage_events,
};
use crate::billing::period::Period;
use crate::billing::proration::Calendar;

/// The condition of a `Usage` whose events the billing system has accepted.
pub const DELIVERED: &str = "Delivered";
/// The field manager of what delivery writes (a Usage's conditions, an Invoice's deliveredAt),
/// apart from the metering and invoicing that own the rest of those statuses.
pub const FIELD_MANAGER: &str = "regie-delivery";
/// The key of the token in the Secret.
pub const TOKEN_KEY: &str = "token";
/// At most this many tenants' events are in flight at once.
const PARALLEL_TENANTS: usize = 8;

/// A Secret named on the command line as `NAMESPACE/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<SecretRef, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(SecretRef {
                    namespace: ns.into(),
                    name: name.into(),
                })
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

/// Where and how to deliver.
#[derive(Clone, Debug)]
pub struct Config {
    /// The billing system's root; events go to `{endpoint}/api/v1/events`.
    pub endpoint: String,
    /// The Secret holding the bearer token under `token`; none sends no token.
    pub token_secret: Option<SecretRef>,
    /// Names this installation in every event's `source` (`regie/<installation>`).
    pub installation: String,
    /// Bounds each request, so a stalled receiver cannot stall delivery.
    pub timeout: Duration,
    /// How often Usage and Invoice objects are looked at for new work.
    pub scan_every: Duration,
    pub backoff: Backoff,
}

impl Config {
    pub fn new(endpoint: &str) -> Config {
        Config {
            endpoint: endpoint.into(),
            token_secret: None,
            installation: "regie".into(),
            timeout: Duration::from_secs(10),
            scan_every: Duration::from_secs(30),
            backoff: Backoff::default(),
        }
    }
}

/// The object an event comes from, marked when the billing system accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Usage(String),
    Invoice(String),
}

/// An event due for delivery, with what orders it within its tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub origin: Origin,
    pub event: CloudEvent,
    /// End of the period it covers; an invoice follows the usage of the months it covers.
    period_end: Timestamp,
    rank: u8,
    /// Of a Usage's event: how many of its segments are delivered once its events are.
    segments: usize,
}

/// What a scan found: the events not yet delivered, in delivery order, the Usage objects that
/// turned out to have nothing to send, and the objects that cannot be turned into events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Work {
    pub pending: Vec<Pending>,
    /// With their segment count.
    pub empty_usages: Vec<(String, usize)>,
    pub broken: Vec<(Origin, String)>,
}

/// Whether a month's usage is finished: its ledger was closed (month over, or the tenant left)
/// or the month has ended.
fn usage_finished(u: &Usage, now: Timestamp, cal: &Calendar) -> Result<bool, String> {
    let month = match Period::parse(&u.spec.period).map_err(|e| e.to_string())? {
        Period::Month(m) => m,
        _ => return Err(format!("spec.period {:?} is not a month", u.spec.period)),
    };
    if u.status.as_ref().is_some_and(|s| s.closed) {
        return Ok(true);
    }
    Ok(month.end(cal.tz()).map_err(|e| e.to_string())? <= now)
}

/// How many of a Usage's segments were delivered: all of them for a Usage marked delivered
/// before the count was kept.
fn delivered_segments(st: &UsageStatus) -> usize {
    match st.delivered_segments {
        Some(n) => usize::try_from(n).unwrap_or(0),
        None if is_true(&st.conditions, DELIVERED) => st.segments.len(),
        None => 0,
    }
}

/// The work in `usages` and `invoices` (pure: the objects, the clock, the calendar).
pub fn work(
    usages: &[Usage],
    invoices: &[Invoice],
    installation: &str,
    now: Timestamp,
    cal: &Calendar,
) -> Work {
    let mut w = Work::default();
    for u in usages {
        let name = u.name_any();
        let st = u.status.clone().unwrap_or_default();
        let delivered = delivered_segments(&st);
        if delivered >= st.segments.len() && is_true(&st.conditions, DELIVERED) {
            continue;
        }
        let finished = match usage_finished(u, now, cal) {
            Ok(f) => f,
            Err(e) => {
                w.broken
                    .push((Origin::Usage(name), format!("Usage {}: {e}", u.name_any())));
                continue;
            }
        };
        if !finished {
            continue;
        }
        let Ok(Period::Month(month)) = Period::parse(&u.spec.period) else {
            continue;
        };
        let end = month.end(cal.tz()).unwrap_or(now);
        // Only the segments not delivered yet, as a version of their own: usage events add up
        // at the receiver, so the month's segments sent again would count twice. The first
        // delivery is version 1, as it always was.
        let delivered = delivered.min(st.segments.len());
        let version = u32::try_from(delivered).map_or(u32::MAX, |d| d.saturating_add(1));
        match usage_events(
            installation,
            &u.spec.tenant,
            month,
            &st.segments[delivered..],
            version,
            end,
            cal,
        ) {
            Ok(events) if events.is_empty() => w.empty_usages.push((name, st.segments.len())),
            Ok(events) => w.pending.extend(events.into_iter().map(|event| Pending {
                origin: Origin::Usage(name.clone()),
                event,
                period_end: end,
                rank: 0,
                segments: st.segments.len(),
            })),
            Err(e) => w.broken.push((Origin::Usage(name), e.to_string())),
        }
    }
    for inv in invoices {
        if inv.spec.state != InvoiceState::Final
            || inv
                .status
                .as_ref()
                .is_some_and(|s| s.delivered_at.is_some())
        {
            continue;
        }
        let name = inv.name_any();
        let end = match Period::parse(&inv.spec.period).and_then(|p| p.end(cal.tz())) {
            Ok(e) => e,
            Err(e) => {
                w.broken.push((
                    Origin::Invoice(name),
                    format!("Invoice {}: {e}", inv.name_any()),
                ));
                continue;
            }
        };
        let made = inv
            .meta()
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(end);
        let version = super::invoicing::event_version(&inv.name_any(), &inv.spec);
        match invoice_object_event(installation, &inv.spec, version, made) {
            Ok(event) => w.pending.push(Pending {
                origin: Origin::Invoice(name),
                event,
                period_end: end,
                rank: 1,
                segments: 0,
            }),
            Err(e) => w.broken.push((Origin::Invoice(name), e.to_string())),
        }
    }
    // Per tenant: period by period, usage before the invoice that bills it, meters by name.
    w.pending.sort_by(|a, b| {
        let key = |p: &Pending| {
            (
                p.event.subject.clone(),
                p.period_end,
                p.rank,
                p.event.data["meter"].as_str().unwrap_or("").to_string(),
                p.event.id.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    w
}

/// The delivery loop's memory: the outbox and where each event came from.
struct State {
    outbox: Outbox,
    origins: HashMap<String, Origin>,
    /// Event ids per Usage, to know when all of them were accepted, and how many of its
    /// segments they cover.
    usage_ids: HashMap<String, (Vec<String>, usize)>,
    /// The failure last written to each Usage's condition, so it is written once.
    failure_shown: HashMap<String, String>,
    token_problem: Option<String>,
}

/// Reads the token; its value is never logged.
async fn read_token(client: &kube::Client, r: &SecretRef) -> Result<String, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
    let secret = api
        .get_opt(&r.name)
        .await
        .map_err(|e| format!("cannot read Secret {}/{}: {e}", r.namespace, r.name))?
        .ok_or_else(|| format!("Secret {}/{} does not exist", r.namespace, r.name))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .ok_or_else(|| format!("Secret {}/{} has no key {TOKEN_KEY:?}", r.namespace, r.name))?;
    let token = String::from_utf8(bytes.0.clone())
        .map_err(|_| format!("Secret {}/{}: the token is not UTF-8", r.namespace, r.name))?;
    Ok(token.trim().to_string())
}

/// Writes a Usage's `Delivered` condition, and how many of its segments were delivered:
/// `segments`, or (None: a failure) the count it shows. The apply owns that count, so a mark
/// without it would delete it — and a month whose added segments failed to go would then send
/// all its segments again as its first version, which the receiver drops as seen.
async fn mark_usage(
    ctx: &Context,
    name: &str,
    ok: bool,
    reason: &str,
    message: String,
    segments: Option<usize>,
) {
    let api: Api<Usage> = Api::all(ctx.client.clone());
    let segments = match segments {
        Some(n) => Some(n),
        None => match api.get_opt(name).await {
            Ok(u) => u
                .and_then(|u| u.status)
                .map(|st| delivered_segments(&st))
                .filter(|n| *n > 0),
            Err(e) => {
                tracing::warn!(usage = name, error = %e, "cannot read the usage to mark its delivery");
                return;
            }
        },
    };
    let mut conditions = Vec::new();
    status::set_condition(
        &mut conditions,
        status::condition(
            DELIVERED,
            ok,
            reason,
            message,
            None,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ctx.now()),
        ),
    );
    let mut body = json!({"apiVersion": Usage::api_version(&()), "kind": "Usage",
                      "status": {"conditions": conditions}});
    if let Some(n) = segments {
        body["status"]["deliveredSegments"] = json!(n);
    }
    match api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => ctx.metrics.write("status", "Usage"),
        Err(e) => tracing::warn!(usage = name, error = %e, "cannot mark the usage's delivery"),
    }
}

async fn mark_invoice(ctx: &Context, name: &str) -> bool {
    let api: Api<Invoice> = Api::all(ctx.client.clone());
    let body = json!({"apiVersion": Invoice::api_version(&()), "kind": "Invoice",
                      "status": {"deliveredAt": ctx.now().to_string()}});
    match api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => {
            ctx.metrics.write("status", "Invoice");
            true
        }
        Err(e) => {
            tracing::warn!(invoice = name, error = %e, "cannot set the invoice's deliveredAt");
            false
        }
    }
}

/// Marks what is complete: an accepted invoice at once, a Usage when all its events are in.
async fn settle(ctx: &Context, st: &mut State, endpoint: &str, id: &str) {
    match st.origins.get(id).cloned() {
        Some(Origin::Invoice(name)) if mark_invoice(ctx, &name).await => {
            st.origins.remove(id);
        }
        Some(Origin::Invoice(_)) => {}
        Some(Origin::Usage(name)) => {
            let (ids, segments) = st.usage_ids.get(&name).cloned().unwrap_or_default();
            if ids.iter().all(|i| st.outbox.delivered.contains(i)) {
                mark_usage(
                    ctx,
                    &name,
                    true,
                    "Accepted",
                    format!("{} usage events accepted by {endpoint}", ids.len()),
                    Some(segments),
                )
                .await;
                st.failure_shown.remove(&name);
                for i in &ids {
                    st.origins.remove(i);
                }
                st.usage_ids.remove(&name);
            }
        }
        None => {}
    }
}

async fn scan(ctx: &Context, config: &Config, st: &mut State, cal: &Calendar, endpoint: &str) {
    let lp = ListParams::default();
    let usages = match Api::<Usage>::all(ctx.client.clone()).list(&lp).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list Usage objects; delivery waits");
            return;
        }
    };
    let invoices = match Api::<Invoice>::all(ctx.client.clone()).list(&lp).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list Invoice objects; delivery waits");
            return;
        }
    };
    let w = work(&usages, &invoices, &config.installation, ctx.now(), cal);
    for (name, segments) in w.empty_usages {
        mark_usage(
            ctx,
            &name,
            true,
            "NothingToDeliver",
            "the month has no billable usage".into(),
            Some(segments),
        )
        .await;
    }
    for (origin, why) in w.broken {
        if let Origin::Usage(name) = &origin
            && st.failure_shown.get(name) != Some(&why)
        {
            mark_usage(ctx, name, false, "InvalidLedger", why.clone(), None).await;
            st.failure_shown.insert(name.clone(), why.clone());
        }
        tracing::warn!(?origin, error = %why, "cannot turn this object into an event");
    }
    let mut ids_of: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut complete: Vec<String> = Vec::new();
    let now = ctx.now();
    for p in w.pending {
        let id = p.event.id.clone();
        if let Origin::Usage(name) = &p.origin {
            let (ids, segments) = ids_of.entry(name.clone()).or_default();
            ids.push(id.clone());
            *segments = p.segments;
        }
        st.origins.insert(id.clone(), p.origin.clone());
        if st.outbox.delivered.contains(&id) {
            // Accepted before, but the mark did not land: mark it now.
            complete.push(id);
        } else {
            st.outbox.enqueue(p.event, now);
        }
    }
    st.usage_ids.extend(ids_of);
    for id in complete {
        settle(ctx, st, endpoint, &id).await;
    }
}

/// Delivers until the task is aborted (when the controller stops or loses the lease).
pub async fn run(ctx: Arc<Context>, config: Config) {
    let cal = match Calendar::amsterdam() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Europe/Amsterdam calendar; nothing is delivered");
            return;
        }
    };
    let endpoint = config.endpoint.trim_end_matches('/').to_string();
    let mut rng = SplitMix64(
        u64::try_from(ctx.now().as_nanosecond().rem_euclid(i128::from(u64::MAX))).unwrap_or(1),
    );
    let mut st = State {
        outbox: Outbox::default(),
        origins: HashMap::new(),
        usage_ids: HashMap::new(),
        failure_shown: HashMap::new(),
        token_problem: None,
    };
    let mut sender: Option<(Option<String>, Sender)> = None;
    let mut next_scan = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_scan {
            next_scan = tokio::time::Instant::now() + config.scan_every;
            let token = match &config.token_secret {
                None => Ok(None),
                Some(r) => read_token(&ctx.client, r).await.map(Some),
            };
            match token {
                Ok(token) => {
                    if st.token_problem.take().is_some() {
                        tracing::info!("billing token readable again");
                    }
                    if sender.as_ref().map(|(t, _)| t) != Some(&token) {
                        match Sender::new(&endpoint, token.clone(), config.timeout) {
                            Ok(s) => sender = Some((token, s)),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot deliver to the billing endpoint");
                                return;
                            }
                        }
                    }
                }
                Err(why) => {
                    if st.token_problem.as_ref() != Some(&why) {
                        tracing::error!(error = %why, "no billing token; events wait in the outbox");
                        st.token_problem = Some(why);
                    }
                    sender = None;
                }
            }
            scan(&ctx, &config, &mut st, &cal, &endpoint).await;
        }
        if let Some((_, s)) = &sender {
            deliver_round(&ctx, &config, &mut st, s, &mut rng, &endpoint).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends what is due, each tenant's oldest event only, tenants side by side; a tenant whose
/// event was accepted goes on with its next at once.
async fn deliver_round(
    ctx: &Context,
    config: &Config,
    st: &mut State,
    sender: &Sender,
    rng: &mut SplitMix64,
    endpoint: &str,
) {
    loop {
        let now = ctx.now();
        let due = st.outbox.due(now);
        if due.is_empty() {
            return;
        }
        let results: Vec<(String, Result<(), String>)> = futures::stream::iter(due)
            .map(|e| async move {
                let r = sender.send(&e.event).await;
                (e.id, r)
            })
            .buffer_unordered(PARALLEL_TENANTS)
            .collect()
            .await;
        let now = ctx.now();
        for (id, result) in results {
            match result {
                Ok(()) => {
                    st.outbox.mark_delivered(&id);
                    ctx.metrics.write("deliver", "CloudEvent");
                    settle(ctx, st, endpoint, &id).await;
                }
                Err(why) => {
                    st.outbox.mark_failed(&id, &why, now, &config.backoff, rng);
                    if let Some(Origin::Usage(name)) = st.origins.get(&id).cloned() {
                        let shown = format!("not accepted yet: {why}; retrying with backoff");
                        if st.failure_shown.get(&name) != Some(&shown) {
                            tracing::warn!(usage = %name, error = %why, "delivery failed; retrying with backoff");
                            mark_usage(ctx, &name, false, "DeliveryFailed", shown.clone(), None)
                                .await;
                            st.failure_shown.insert(name, shown);
                        }
                    } else {
                        tracing::warn!(event = %id, error = %why, "delivery failed; retrying with backoff");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regie_crds::generated::{InvoiceSpec, InvoiceStatus, Segment, UsageSpec, UsageStatus};

    fn usage(tenant: &str, period: &str, closed: bool, delivered: bool) -> Usage {
        let mut u = Usage::new(
            &format!("{tenant}-{period}"),
            UsageSpec {
                tenant: tenant.into(),
                period: period.into(),
            },
        );
        let mut conditions = Vec::new();
        if delivered {
            conditions.push(status::condition(
                DELIVERED,
                true,
                "Accepted",
                "done",
                None,
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
            ));
        }
        u.status = Some(UsageStatus {
            segments: vec![Segment {
                from: format!("{period}-01T00:00:00+01:00"),
                to: None,
                service_level: "silver".into(),
                accounts: [("standard".to_string(), 10)].into(),
                measured_accounts: BTreeMap::new(),
                components: vec![],
            }],
            closed,
            conditions,
            ..UsageStatus::default()
        });
        u
    }

    fn invoice(tenant: &str, period: &str, state: InvoiceState, delivered: bool) -> Invoice {
        let mut i = Invoice::new(
            &format!("{tenant}-{period}"),
            InvoiceSpec {
                tenant: tenant.into(),
                period: period.into(),
                number: Some("2026-0001".into()),
                state,
                currency: "EUR".into(),
                lines: vec![],
                subtotal: "0.00".into(),
                vat: "0.00".into(),
                total: "0.00".into(),
            },
        );
        i.status = Some(InvoiceStatus {
            delivered_at: delivered.then(|| "2026-04-01T00:00:00Z".into()),
            ..InvoiceStatus::default()
        });
        i
    }

    #[test]
    fn only_finished_undelivered_months_and_final_undelivered_invoices_are_sent_in_order() {
        let cal = Calendar::amsterdam().unwrap();
        let now: Timestamp = "2026-03-15T12:00:00Z".parse().unwrap();
        let usages = vec![
            usage("b", "2026-02", false, false),
            usage("a", "2026-03", false, false), // still running
            usage("a", "2026-02", false, false), // over, not yet closed
            usage("a", "2026-01", true, false),
            usage("c", "2026-01", true, true), // already delivered
        ];
        let invoices = vec![
            invoice("a", "2026-01", InvoiceState::Final, false),
            invoice("a", "2026-02", InvoiceState::Draft, false),
            invoice("b", "2026-01", InvoiceState::Final, true),
        ];
        let w = work(&usages, &invoices, "wbw", now, &cal);
        let order: Vec<(String, String, String)> = w
            .pending
            .iter()
            .map(|p| {
                (
                    p.event.subject.clone(),
                    p.event.kind.clone(),
                    p.event.data["period"]
                        .as_str()
                        .unwrap_or_else(|| p.event.data["period"].as_str().unwrap_or(""))
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                ("a".into(), "dev.regie.usage".into(), "2026-01".into()),
                (
                    "a".into(),
                    "dev.regie.invoice.final".into(),
                    "2026-01".into()
                ),
                ("a".into(), "dev.regie.usage".into(), "2026-02".into()),
                ("b".into(), "dev.regie.usage".into(), "2026-02".into()),
            ]
        );
        assert_eq!(
            w.pending[0].event.id,
            crate::billing::events::event_id("a", "accounts-standard-silver", "2026-01", 1)
        );
        assert_eq!(
            w.pending[1].event.id,
            crate::billing::events::event_id("a", "invoice", "2026-01", 1)
        );
        // Deterministic: the same objects give the same events, whenever they are scanned.
        let later: Timestamp = "2026-03-20T00:00:00Z".parse().unwrap();
        assert_eq!(
            work(&usages, &invoices, "wbw", later, &cal).pending,
            w.pending
        );
    }

    /// A tenant deleted and made again in the month it left: the Usage delivered when it
    /// left gets segments after it, which are sent on their own, as a version of their own (the
    /// month's first segments sent again would count twice at the receiver).
    #[test]
    fn segments_added_after_a_delivery_are_delivered_alone() {
        let cal = Calendar::amsterdam().unwrap();
        let now: Timestamp = "2026-04-02T00:00:00Z".parse().unwrap();
        let segment = |from: &str, to: &str, accounts: i64| Segment {
            from: from.into(),
            to: Some(to.into()),
            service_level: "silver".into(),
            accounts: [("standard".to_string(), accounts)].into(),
            measured_accounts: BTreeMap::new(),
            components: vec![],
        };
        let mut u = usage("a", "2026-03", true, true);
        let st = u.status.as_mut().unwrap();
        st.segments = vec![
            segment("2026-03-01T00:00:00+01:00", "2026-03-10T00:00:00+01:00", 10),
            segment("2026-03-20T00:00:00+01:00", "2026-04-01T00:00:00+02:00", 30),
        ];
        st.delivered_segments = Some(1);
        let w = work(std::slice::from_ref(&u), &[], "wbw", now, &cal);
        assert_eq!(w.pending.len(), 1);
        let event = &w.pending[0].event;
        assert_eq!(
            event.id,
            crate::billing::events::event_id("a", "accounts-standard-silver", "2026-03", 2)
        );
        // 30 accounts over 287 of March's 743 hours (12 days and 31 days, less the hour the
        // clocks went forward on the 29th): the second stretch alone.
        assert_eq!(event.data["value"], "11.588156");
        assert_eq!(w.pending[0].segments, 2);
        // Both delivered: nothing.
        u.status.as_mut().unwrap().delivered_segments = Some(2);
        assert!(
            work(std::slice::from_ref(&u), &[], "wbw", now, &cal)
                .pending
                .is_empty()
        );
        // Marked delivered before the count was kept: all of it counts as delivered.
        u.status.as_mut().unwrap().delivered_segments = None;
        assert!(
            work(std::slice::from_ref(&u), &[], "wbw", now, &cal)
                .pending
                .is_empty()
        );
    }

    #[test]
    fn a_usage_with_a_bad_period_is_named_not_sent() {
        let cal = Calendar::amsterdam().unwrap();
        let w = work(
            &[usage("a", "2026-Q1", true, false)],
            &[],
            "wbw",
            Timestamp::UNIX_EPOCH,
            &cal,
        );
        assert!(w.pending.is_empty());
        assert_eq!(w.broken.len(), 1);
    }

    #[test]
    fn secret_refs_are_namespace_slash_name() {
        assert_eq!(
            "regie-system/regie-billing".parse::<SecretRef>().unwrap(),
            SecretRef {
                namespace: "regie-system".into(),
                name: "regie-billing".into()
            }
        );
        for bad in ["regie-billing", "/x", "x/", "a/b/c"] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad}");
        }
    }
}
