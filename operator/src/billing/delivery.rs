//! The thin sender of the outbox: POSTs each due CloudEvent to `{base}/api/v1/events` with
//! `Content-Type: application/cloudevents+json` and a bearer token, as OpenMeter ingests them.
//! A 2xx answer (or 409, "already have it") counts as delivered; anything else, a timeout or a
//! refused connection is retried later with backoff. The caller keeps the outbox durable: it
//! saves it after each round, and because event ids are deterministic, an event sent again after
//! a crash before that save is deduplicated by the receiver, never counted twice.

use std::time::Duration;

use jiff::Timestamp;

use super::BillingError;
use super::events::{Backoff, CONTENT_TYPE, CloudEvent, Jitter, Outbox};

/// Where events go and how.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Sender {
    /// `base` is the billing system's root, e.g. `https://openmeter.example`; `timeout` bounds
    /// each request, so a receiver that stalls cannot stall the controller.
    pub fn new(
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Sender, BillingError> {
        regie_crds::validate::check_http_url(base)
            .map_err(|m| BillingError::input(format!("billing system URL: {m}")))?;
        // The URL is shown in conditions and logs: credentials go in the token's Secret.
        if url::Url::parse(base).is_ok_and(|u| !u.username().is_empty() || u.password().is_some()) {
            return Err(BillingError::input(
                "billing system URL: user name or password in the URL; give the token in --billing-token-secret",
            ));
        }
        // No redirects: a 301 or 302 turns the POST into a GET without its body, and a 200 to
        // that (the receiver's list of events) would count as delivered. An answer that is not
        // 2xx or 409 to the POST itself is a failure, retried.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BillingError::Remote(format!("cannot build the HTTP client: {e}")))?;
        Ok(Sender {
            client,
            url: format!("{}/api/v1/events", base.trim_end_matches('/')),
            token,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one event; the error says why it was not accepted.
    pub async fn send(&self, event: &CloudEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event)
            .map_err(|e| format!("cannot encode event {}: {e}", event.id))?;
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(resp)
                if resp.status().is_success() || resp.status() == reqwest::StatusCode::CONFLICT =>
            {
                Ok(())
            }
            Ok(resp) => Err(format!(
                "{} answered HTTP {}",
                self.url,
                resp.status().as_u16()
            )),
            Err(e) if e.is_timeout() => Err(format!("{} did not answer in time", self.url)),
            Err(e) => Err(format!("{}: {e}", self.url)),
        }
    }
}

/// What one delivery round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub delivered: Vec<String>,
    /// (id, why)
    pub failed: Vec<(String, String)>,
}

/// Sends what is due, tenant by tenant in order: after a success the tenant's next event goes
/// at once; after a failure the tenant waits for its backoff and nothing of it overtakes.
pub async fn deliver_due(
    outbox: &mut Outbox,
    sender: &Sender,
    now: Timestamp,
    backoff: &Backoff,
    rng: &mut dyn Jitter,
) -> Report {
    let mut report = Report::default();
    loop {
        let due = outbox.due(now);
        if due.is_empty() {
            break;
        }
        for entry in due {
            match sender.send(&entry.event).await {
                Ok(()) => {
                    outbox.mark_delivered(&entry.id);
                    report.delivered.push(entry.id);
                }
                Err(why) => {
                    outbox.mark_failed(&entry.id, &why, now, backoff, rng);
                    report.failed.push((entry.id, why));
                }
            }
        }
    }
    report
}
