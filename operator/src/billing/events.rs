//! Usage and final invoices as CloudEvents 1.0 (JSON), the way OpenMeter ingests them
//! (`POST {base}/api/v1/events`, `Content-Type: application/cloudevents+json`), and the outbox
//! that delivers them: a pure state machine that serializes to JSON, so the controller can keep
//! it in the cluster (a ConfigMap or a status) and resume after a restart.
//!
//! Every event id is deterministic — the SHA-256 of `tenant/meter/period/version` — so sending an
//! event twice (a retry after a timeout, a restart before the outbox was saved) can never count
//! twice at a receiver that deduplicates on `source` + `id`, as OpenMeter does. A corrected
//! usage or invoice is a new `version`, hence a new id.
//!
//! Delivery is in order per tenant: only the oldest pending event of a tenant is ever due, so a
//! receiver that was down for hours gets each tenant's events in the order they were made.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use regie_crds::generated::Segment;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::export::invoice_json;
use super::invoice::{Invoice, State};
use super::ledger::spans;
use super::period::Month;
use super::proration::Calendar;
use super::{BillingError, decimal_text};

/// `type` of a usage event: one meter of one tenant for one month.
pub const USAGE_TYPE: &str = "dev.regie.usage";
/// `type` of a final invoice.
pub const INVOICE_FINAL_TYPE: &str = "dev.regie.invoice.final";
/// The media type OpenMeter wants for a single event.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// A CloudEvents 1.0 event in its JSON format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    /// `regie/<installation>`.
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant.
    pub subject: String,
    /// RFC 3339.
    pub time: String,
    pub datacontenttype: String,
    pub data: Value,
}

/// The `source` of every event of one installation.
pub fn source(installation: &str) -> String {
    format!("regie/{installation}")
}

/// The deterministic id: lower-case hex SHA-256 of `tenant/meter/period/version`.
pub fn event_id(tenant: &str, meter: &str, period: &str, version: u32) -> String {
    let digest = sha256(format!("{tenant}/{meter}/{period}/{version}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn event(
    installation: &str,
    kind: &str,
    tenant: &str,
    id: String,
    time: Timestamp,
    data: Value,
) -> CloudEvent {
    CloudEvent {
        specversion: "1.0".into(),
        id,
        source: source(installation),
        kind: kind.into(),
        subject: tenant.into(),
        time: time.to_string(),
        datacontenttype: "application/json".into(),
        data,
    }
}

/// One usage event per meter of a tenant's month: `accounts-<profile>-<level>` in account-months
/// and `component-<class>-<level>` in component-months (each time-weighted to the second over
/// the calendar month), so a billing system can price them itself.
pub fn usage_events(
    installation: &str,
    tenant: &str,
    month: Month,
    segments: &[Segment],
    version: u32,
    time: Timestamp,
    cal: &Calendar,
) -> Result<Vec<CloudEvent>, BillingError> {
    let (ms, me) = cal.month_bounds(month)?;
    let month_secs = Decimal::from(me.as_second() - ms.as_second());
    let mut meters: BTreeMap<String, (Decimal, &'static str)> = BTreeMap::new();
    for s in spans(segments, &format!("Usage/{tenant}-{month}"))? {
        let (a, b) = (s.from.max(ms), s.to.unwrap_or(me).min(me));
        if a >= b {
            continue;
        }
        let share = Decimal::from(b.as_second() - a.as_second()) / month_secs;
        for (profile, n) in &s.state.accounts {
            let e = meters
                .entry(format!("accounts-{profile}-{}", s.state.service_level))
                .or_insert((Decimal::ZERO, "account-month"));
            e.0 += Decimal::from(*n) * share;
        }
        for c in &s.state.components {
            let e = meters
                .entry(format!(
                    "component-{}-{}",
                    c.class.as_str(),
                    c.service_level
                ))
                .or_insert((Decimal::ZERO, "component-month"));
            e.0 += share;
        }
    }
    let period = month.to_string();
    Ok(meters
        .into_iter()
        .map(|(meter, (value, unit))| {
            let data = json!({
                "tenant": tenant,
                "period": period,
                "meter": meter,
                "value": decimal_text(value, 0, 6),
                "unit": unit,
                "version": version,
            });
            event(
                installation,
                USAGE_TYPE,
                tenant,
                event_id(tenant, &meter, &period, version),
                time,
                data,
            )
        })
        .collect())
}

/// A final invoice as an event. A final invoice never changes (corrections go on the next one),
/// so its id is that of meter `invoice` for its tenant and period, version 1.
pub fn invoice_event(
    installation: &str,
    inv: &Invoice,
    time: Timestamp,
    cal: &Calendar,
) -> Result<CloudEvent, BillingError> {
    if inv.state != State::Final {
        return Err(BillingError::input(format!(
            "the invoice of {} for {} is a draft: only final invoices are sent",
            inv.tenant, inv.period
        )));
    }
    Ok(event(
        installation,
        INVOICE_FINAL_TYPE,
        &inv.tenant,
        event_id(&inv.tenant, "invoice", &inv.period, 1),
        time,
        invoice_json(inv, cal.tz()),
    ))
}

/// A final `Invoice` object as regie writes it in the cluster, as an event. The period's own
/// invoice (`version` 1) has the id [`invoice_event`] gives the same tenant and period, so the
/// controller and the offline path can never send one invoice under two ids; a leaving
/// tenant's closing invoices of the same period (`<tenant>-<period>-c<n>`) are versions n + 1,
/// each an event of its own.
pub fn invoice_object_event(
    installation: &str,
    spec: &regie_crds::generated::InvoiceSpec,
    version: u32,
    time: Timestamp,
) -> Result<CloudEvent, BillingError> {
    if spec.state != regie_crds::generated::InvoiceState::Final {
        return Err(BillingError::input(format!(
            "the invoice of {} for {} is a draft: only final invoices are sent",
            spec.tenant, spec.period
        )));
    }
    let data = serde_json::to_value(spec)
        .map_err(|e| BillingError::input(format!("cannot encode the invoice: {e}")))?;
    Ok(event(
        installation,
        INVOICE_FINAL_TYPE,
        &spec.tenant,
        event_id(&spec.tenant, "invoice", &spec.period, version),
        time,
        data,
    ))
}

/// A source of randomness for backoff jitter, injected so tests are deterministic.
pub trait Jitter {
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64: a tiny, well-mixed generator; seed it from the clock in production.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

impl Jitter for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Exponential backoff: after the n-th failure wait `base × 2^(n-1)`, at most `max`, of which
/// a random half ("equal jitter"), so many tenants do not retry in lock-step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    pub base_seconds: i64,
    pub max_seconds: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_seconds: 5,
            max_seconds: 3600,
        }
    }
}

impl Backoff {
    /// Seconds to wait after `attempts` failures.
    pub fn delay(&self, attempts: u32, rng: &mut dyn Jitter) -> i64 {
        let exp = attempts.saturating_sub(1).min(40);
        let full = self
            .base_seconds
            .max(1)
            .saturating_mul(1i64 << exp)
            .min(self.max_seconds.max(1));
        let half = full / 2;
        let spread = u64::try_from(full - half + 1).unwrap_or(1);
        half + i64::try_from(rng.next_u64() % spread).unwrap_or(0)
    }
}

/// One event still to deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    pub id: String,
    pub tenant: String,
    pub event: CloudEvent,
    pub enqueued_at: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How many delivered ids the outbox remembers, so re-enqueueing a delivered event is a no-op.
pub const REMEMBER_DELIVERED: usize = 10_000;

/// Events still to deliver, oldest first, and the ids recently delivered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outbox {
    #[serde(default)]
    pub entries: Vec<OutboxEntry>,
    #[serde(default)]
    pub delivered: Vec<String>,
}

impl Outbox {
    /// Adds an event unless its id is pending or was delivered; returns whether it was added.
    pub fn enqueue(&mut self, event: CloudEvent, now: Timestamp) -> bool {
        if self.entries.iter().any(|e| e.id == event.id) || self.delivered.contains(&event.id) {
            return false;
        }
        self.entries.push(OutboxEntry {
            id: event.id.clone(),
            tenant: event.subject.clone(),
            enqueued_at: now.to_string(),
            attempts: 0,
            next_attempt_at: now.to_string(),
            last_error: None,
            event,
        });
        true
    }

    /// The events to send now: per tenant only its oldest pending one, and only when due.
    pub fn due(&self, now: Timestamp) -> Vec<OutboxEntry> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for e in &self.entries {
            if !seen.insert(e.tenant.as_str()) {
                continue;
            }
            let at: Timestamp = e.next_attempt_at.parse().unwrap_or(now);
            if at <= now {
                out.push(e.clone());
            }
        }
        out
    }

    /// The receiver accepted `id`: it leaves the outbox and is remembered.
    pub fn mark_delivered(&mut self, id: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        if self.entries.len() == before {
            return false;
        }
        self.delivered.push(id.to_string());
        if self.delivered.len() > REMEMBER_DELIVERED {
            let cut = self.delivered.len() - REMEMBER_DELIVERED;
            self.delivered.drain(..cut);
        }
        true
    }

    /// Sending `id` failed: count the attempt and schedule the next with backoff and jitter.
    pub fn mark_failed(
        &mut self,
        id: &str,
        error: &str,
        now: Timestamp,
        backoff: &Backoff,
        rng: &mut dyn Jitter,
    ) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.attempts = e.attempts.saturating_add(1);
            let wait = backoff.delay(e.attempts, rng);
            e.next_attempt_at = now
                .checked_add(SignedDuration::from_secs(wait))
                .unwrap_or(now)
                .to_string();
            e.last_error = Some(error.chars().take(500).collect());
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The outbox as JSON, for a ConfigMap or a status field.
    pub fn to_json(&self) -> Result<String, BillingError> {
        serde_json::to_string(self).map_err(|e| BillingError::input(format!("outbox: {e}")))
    }

    pub fn from_json(s: &str) -> Result<Outbox, BillingError> {
        serde_json::from_str(s)
            .map_err(|e| BillingError::input(format!("outbox is not valid JSON: {e}")))
    }
}

/// SHA-256 (FIPS 180-4). Only used to derive event ids; kept here to need no crate for it.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regie_crds::generated::SegmentComponent;
    use regie_crds::tenancy::ComponentClass;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(&sha256(&[b'a'; 1000])),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = event_id("tholen", "accounts-standard-bronze", "2026-03", 1);
        assert_eq!(
            a,
            event_id("tholen", "accounts-standard-bronze", "2026-03", 1)
        );
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            event_id("tholen", "accounts-standard-bronze", "2026-03", 2)
        );
        assert_ne!(
            a,
            event_id("tholen", "accounts-standard-bronze", "2026-04", 1)
        );
        assert_ne!(
            a,
            event_id("moerdijk", "accounts-standard-bronze", "2026-03", 1)
        );
    }

    #[test]
    fn usage_events_weigh_each_meter_by_the_second() {
        let cal = Calendar::amsterdam().unwrap();
        let comp = SegmentComponent {
            name: "zaak".into(),
            class: ComponentClass::ApplicationHosting,
            service_level: "silver".into(),
        };
        let seg = |from: &str, to: &str, n: i64| Segment {
            from: from.into(),
            to: Some(to.into()),
            service_level: "silver".into(),
            accounts: [("standard".to_string(), n)].into(),
            measured_accounts: BTreeMap::new(),
            components: vec![comp.clone()],
        };
        // 600 accounts for 360 of March's 743 hours, 743 for the other 383.
        let segs = vec![
            seg(
                "2026-03-01T00:00:00+01:00",
                "2026-03-16T00:00:00+01:00",
                600,
            ),
            seg(
                "2026-03-16T00:00:00+01:00",
                "2026-04-01T00:00:00+02:00",
                743,
            ),
        ];
        let t: Timestamp = "2026-04-01T01:00:00Z".parse().unwrap();
        let ev = usage_events("wbw", "roosendaal", Month::new(2026, 3), &segs, 1, t, &cal).unwrap();
        assert_eq!(ev.len(), 2);
        let acc = ev
            .iter()
            .find(|e| e.data["meter"] == "accounts-standard-silver")
            .unwrap();
        // (600 × 360 + 743 × 383) / 743 = 500 569 / 743 = 673.713324…
        assert_eq!(acc.data["value"], "673.713324");
        assert_eq!(acc.kind, USAGE_TYPE);
        assert_eq!(acc.subject, "roosendaal");
        assert_eq!(acc.source, "regie/wbw");
        assert_eq!(
            acc.id,
            event_id("roosendaal", "accounts-standard-silver", "2026-03", 1)
        );
        let c = ev
            .iter()
            .find(|e| e.data["meter"] == "component-applicationHosting-silver")
            .unwrap();
        assert_eq!(c.data["value"], "1");
        let json: Value = serde_json::to_value(acc).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "dev.regie.usage");
    }

    fn ev(tenant: &str, n: u32) -> CloudEvent {
        event(
            "t",
            USAGE_TYPE,
            tenant,
            event_id(tenant, "m", "2026-03", n),
            Timestamp::UNIX_EPOCH,
            json!({"n": n}),
        )
    }

    #[test]
    fn the_outbox_is_idempotent_ordered_per_tenant_and_survives_json() {
        let now: Timestamp = "2026-04-01T00:00:00Z".parse().unwrap();
        let mut o = Outbox::default();
        assert!(o.enqueue(ev("a", 1), now));
        assert!(o.enqueue(ev("a", 2), now));
        assert!(o.enqueue(ev("b", 1), now));
        assert!(!o.enqueue(ev("a", 1), now), "same id twice is one event");
        let due = o.due(now);
        assert_eq!(due.len(), 2, "one per tenant: a's first, b's first");
        assert_eq!(due[0].event.data["n"], 1);
        let mut rng = SplitMix64(7);
        o.mark_failed(&due[0].id, "HTTP 500", now, &Backoff::default(), &mut rng);
        assert!(o.mark_delivered(&due[1].id));
        // a's head failed and waits; a's second event must not overtake it.
        assert!(o.due(now).is_empty());
        let restored = Outbox::from_json(&o.to_json().unwrap()).unwrap();
        assert_eq!(restored, o);
        let later = now.checked_add(SignedDuration::from_secs(3600)).unwrap();
        let due = restored.due(later);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempts, 1);
        assert_eq!(due[0].last_error.as_deref(), Some("HTTP 500"));
        assert!(
            !o.enqueue(ev("b", 1), now),
            "a delivered id is not sent again"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let b = Backoff {
            base_seconds: 10,
            max_seconds: 300,
        };
        let mut rng = SplitMix64(42);
        for attempts in 1..12u32 {
            let full = (10i64 << (attempts - 1).min(40)).min(300);
            for _ in 0..50 {
                let d = b.delay(attempts, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempts}: {d} not in [{}, {full}]",
                    full / 2
                );
            }
        }
        let mut r1 = SplitMix64(1);
        let mut r2 = SplitMix64(1);
        assert_eq!(
            b.delay(3, &mut r1),
            b.delay(3, &mut r2),
            "a seeded RNG gives the same schedule"
        );
    }
}
