//! One synthetic probe: an HTTP GET of a target, judged against its expected status, bounded by
//! its tier's timeout. This module owns the single shared `reqwest` client (keep-alive pool, no
//! cookies, no proxy, `regie-prober/<version>`), the redirect walk (every hop checked against the
//! [`ProbePolicy`] before it is requested), and the outcome types the scheduler passes on.
//!
//! Redirects are followed here rather than by reqwest so that each hop is checked before any
//! byte is sent to it and so a refusal can say which hop was refused. Names are resolved through
//! [`GuardedResolver`], so the address connected to is the address checked.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::time::Instant;
use url::Url;

use super::compliance::Sample;
use super::target::{GuardedResolver, Lookup, ProbePolicy, ProbeTarget, Refused, SystemLookup};

/// Wall-clock time, injectable so that tests are deterministic.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Wall time that follows tokio's clock from a fixed start: with tokio's paused time in tests,
/// timestamps advance exactly as the scheduler's instants do.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start: Timestamp,
    origin: Instant,
}

impl TokioClock {
    pub fn starting_at(start: Timestamp) -> TokioClock {
        TokioClock {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.origin.elapsed())
            .unwrap_or(jiff::SignedDuration::MAX);
        self.start.saturating_add(elapsed).unwrap_or(self.start)
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// When the probe started.
    pub at: Timestamp,
    pub success: bool,
    /// From the first byte sent to the final answer (or the failure).
    pub duration: Duration,
    /// The final HTTP status, after redirects; none when no answer came.
    pub status: Option<u16>,
    /// Why the probe failed, for people: timeout, connection refused, unexpected status, ….
    pub error: Option<String>,
}

/// Why a target known to have nothing behind it is down (see [`ProbeTarget::without_endpoints`]).
pub const NO_ENDPOINTS: &str =
    "no replica is available, so the Service has no endpoint to answer (not requested)";

/// The result of one scheduled probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The target was probed; `success` says whether it was up.
    Probed(ProbeOutcome),
    /// The target itself is not allowed (its host, or what its name resolves to): nothing was
    /// sent. The controller makes the component `Stalled` with the reason. Refused as written
    /// it is not downtime (it is never probed); refused when its name resolved at probe time
    /// (`at` set) it is: see [`ProbeResult::sla_sample`].
    Refused(Refused),
    /// The scheduler did not run this probe (the previous one still ran, or every probe slot
    /// stayed busy until the timeout). Not downtime either: the previous sample stands.
    Skipped(SkipReason),
}

impl ProbeResult {
    /// What this result counts as for the SLA: a probe's outcome; a failure at the probe's start
    /// when the target's name resolved to a refused address — the DNS answer (say 127.0.0.1 or
    /// 0.0.0.0 from a parked or blocked name) makes the service unreachable to everyone who
    /// uses it, so the time must not be covered by the last success before it; nothing for a
    /// target refused as written (never probed) or a skipped probe (the previous sample stands).
    pub fn sla_sample(&self) -> Option<Sample> {
        match self {
            ProbeResult::Probed(o) => Some(Sample {
                at: o.at,
                success: o.success,
            }),
            ProbeResult::Refused(r) => r.at.map(|at| Sample { at, success: false }),
            ProbeResult::Skipped(_) => None,
        }
    }
}

/// Why the scheduler did not run a due probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The target's previous probe was still running.
    Busy,
    /// Every concurrency slot stayed taken until the probe's timeout.
    Saturated,
}

impl SkipReason {
    /// The value of the `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Busy => "busy",
            SkipReason::Saturated => "saturated",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Busy => "the previous probe of this target was still running",
            SkipReason::Saturated => "every probe slot stayed busy until the timeout",
        })
    }
}

impl ProbeResult {
    /// The outcome when the target was probed.
    pub fn outcome(&self) -> Option<&ProbeOutcome> {
        match self {
            ProbeResult::Probed(o) => Some(o),
            _ => None,
        }
    }
}

/// How the probe client behaves.
#[derive(Clone, Debug)]
pub struct ProberConfig {
    pub policy: ProbePolicy,
    /// Redirect hops followed before the probe fails.
    pub max_redirects: usize,
    /// Idle keep-alive connections kept per host (scheme, host and port).
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept; longer than the longest probe interval keeps every
    /// target on a warm connection.
    pub pool_idle_timeout: Duration,
    /// Body bytes read (and discarded) so that the connection can be reused; a larger body is
    /// cut off and its connection closed.
    pub max_body_bytes: usize,
}

impl Default for ProberConfig {
    fn default() -> ProberConfig {
        ProberConfig {
            policy: ProbePolicy::default(),
            max_redirects: 5,
            pool_max_idle_per_host: 32,
            pool_idle_timeout: Duration::from_secs(120),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The User-Agent every probe sends.
pub const USER_AGENT: &str = concat!("regie-prober/", env!("CARGO_PKG_VERSION"));

/// A client and the policy its resolver enforces. Connections are pooled per client, so a
/// connection made under one policy never serves a request judged by the other.
struct Route {
    client: reqwest::Client,
    policy: Arc<ProbePolicy>,
}

struct Inner {
    /// For URLs someone typed, and redirects away from a component's own Service.
    typed: Route,
    /// For the URLs regie builds for hosted components' own Services.
    own_service: Route,
    clock: Arc<dyn Clock>,
    max_redirects: usize,
    max_body_bytes: usize,
}

/// Probes targets over two shared clients (typed URLs, own Services); cheap to clone.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

/// Why a probe stopped short of a final status.
enum Stop {
    /// The target's own host resolved to a refused address.
    Refused(Refused),
    /// A failure, described for people.
    Failed(String),
}

impl Prober {
    /// A prober with the system resolver and clock.
    pub fn new(config: ProberConfig) -> Result<Prober, reqwest::Error> {
        Prober::with_parts(config, Arc::new(SystemClock), Arc::new(SystemLookup))
    }

    /// A prober with an injected clock and name lookup (tests play DNS with the latter).
    pub fn with_parts(
        config: ProberConfig,
        clock: Arc<dyn Clock>,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Prober, reqwest::Error> {
        let route = |policy: ProbePolicy| -> Result<Route, reqwest::Error> {
            let policy = Arc::new(policy);
            let client = reqwest::Client::builder()
                .user_agent(USER_AGENT)
                // A proxy would connect on our behalf to addresses we never checked.
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .referer(false)
                .dns_resolver(Arc::new(GuardedResolver::new(
                    policy.clone(),
                    lookup.clone(),
                )))
                .pool_max_idle_per_host(config.pool_max_idle_per_host)
                .pool_idle_timeout(config.pool_idle_timeout)
                .tcp_nodelay(true)
                .tcp_keepalive(Duration::from_secs(60))
                .build()?;
            Ok(Route { client, policy })
        };
        Ok(Prober {
            inner: Arc::new(Inner {
                own_service: route(config.policy.for_own_services())?,
                typed: route(config.policy)?,
                clock,
                max_redirects: config.max_redirects,
                max_body_bytes: config.max_body_bytes,
            }),
        })
    }

    /// The policy typed URLs are judged by, as configured.
    pub fn policy(&self) -> &ProbePolicy {
        &self.inner.typed.policy
    }

    fn route(&self, own_service: bool) -> &Route {
        if own_service {
            &self.inner.own_service
        } else {
            &self.inner.typed
        }
    }

    /// The checks that need no network, as the scheduler runs them on every upsert.
    pub fn check(&self, target: &ProbeTarget) -> Result<(), Refused> {
        self.route(target.own_service)
            .policy
            .check_url(&target.url()?)
    }

    /// Probes once: GET, follow checked redirects, compare the final status, all within the
    /// target's timeout.
    pub async fn probe(&self, target: &ProbeTarget) -> ProbeResult {
        let at = self.inner.clock.now();
        if let Err(refused) = self.check(target) {
            return ProbeResult::Refused(refused);
        }
        if target.without_endpoints {
            return ProbeResult::Probed(ProbeOutcome {
                at,
                success: false,
                duration: Duration::ZERO,
                status: None,
                error: Some(NO_ENDPOINTS.to_string()),
            });
        }
        let started = Instant::now();
        let walked = tokio::time::timeout(target.timeout, self.walk(target)).await;
        let duration = started.elapsed();
        let (status, error) = match walked {
            Ok(Ok(status)) if target.is_success(status) => (Some(status), None),
            Ok(Ok(status)) => (Some(status), Some(unexpected(status, target.expect_status))),
            // `check` above passed, so the URL as written is allowed: what `walk` refuses is
            // the address its name resolved to at this probe.
            Ok(Err(Stop::Refused(refused))) => {
                return ProbeResult::Refused(refused.when_probed(at));
            }
            Ok(Err(Stop::Failed(message))) => (None, Some(message)),
            Err(_) => (
                None,
                Some(format!(
                    "no answer within the timeout of {}",
                    human(target.timeout)
                )),
            ),
        };
        ProbeResult::Probed(ProbeOutcome {
            at,
            success: error.is_none(),
            duration,
            status,
            error,
        })
    }

    /// Requests the target and each redirect it leads to; returns the final status.
    async fn walk(&self, target: &ProbeTarget) -> Result<u16, Stop> {
        let mut url = target.url().map_err(Stop::Refused)?;
        // A component's own Service may send the probe elsewhere on itself; anywhere else is
        // judged like a URL someone typed.
        let own_origin = target.own_service.then(|| url.origin());
        let on_own_service = |u: &Url| own_origin.as_ref().is_some_and(|o| *o == u.origin());
        let mut hop = 0;
        loop {
            let route = self.route(on_own_service(&url));
            let mut response = match route.client.get(url.clone()).send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(match refusal_in(&e) {
                        Some(r) if hop == 0 => Stop::Refused(r.clone()),
                        Some(r) => Stop::Failed(format!(
                            "redirect to {} refused: {}",
                            host_of(&url),
                            r.reason
                        )),
                        None => Stop::Failed(describe(&e)),
                    });
                }
            };
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            let follow = matches!(status, 301 | 302 | 303 | 307 | 308)
                && target.expect_status != Some(status);
            let (true, Some(location)) = (follow, location) else {
                self.drain(&mut response).await.map_err(|e| {
                    Stop::Failed(format!("reading the answer failed: {}", describe(&e)))
                })?;
                return Ok(status);
            };
            if hop >= self.inner.max_redirects {
                return Err(Stop::Failed(format!(
                    "more than {} redirects",
                    self.inner.max_redirects
                )));
            }
            let next = url.join(&location).map_err(|e| {
                Stop::Failed(format!(
                    "redirect (status {status}) to an invalid location: {e}"
                ))
            })?;
            let next_route = self.route(on_own_service(&next));
            if let Err(r) = next_route.policy.check_url(&next) {
                return Err(Stop::Failed(format!(
                    "redirect (status {status}) from {} to {} refused: {}",
                    host_of(&url),
                    host_of(&next),
                    r.reason
                )));
            }
            // Reading the small redirect body to its end returns the connection to the pool.
            let _ = self.drain(&mut response).await;
            url = next;
            hop += 1;
        }
    }

    /// Reads the body to its end (so keep-alive can reuse the connection), up to the limit.
    async fn drain(&self, response: &mut reqwest::Response) -> Result<(), reqwest::Error> {
        let mut read = 0usize;
        while let Some(chunk) = response.chunk().await? {
            read += chunk.len();
            if read > self.inner.max_body_bytes {
                break;
            }
        }
        Ok(())
    }
}

/// The runner interface the scheduler drives; [`Prober`] is the real one, tests plug in fakes.
pub trait ProbeRunner: Send + Sync + 'static {
    /// Checks that need no network; a refused target is never scheduled.
    fn check(&self, target: &ProbeTarget) -> Result<(), Refused>;
    /// Runs one probe, bounded by the target's timeout.
    fn run(&self, target: Arc<ProbeTarget>) -> BoxFuture<'static, ProbeResult>;
    /// Wall-clock time, for outcomes the scheduler makes itself.
    fn now(&self) -> Timestamp;
}

impl ProbeRunner for Prober {
    fn check(&self, target: &ProbeTarget) -> Result<(), Refused> {
        Prober::check(self, target)
    }

    fn run(&self, target: Arc<ProbeTarget>) -> BoxFuture<'static, ProbeResult> {
        let prober = self.clone();
        Box::pin(async move { prober.probe(&target).await })
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}

/// The host and port of a URL, for messages that must not echo paths or queries.
fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "(no host)".to_string(),
    }
}

fn unexpected(status: u16, expected: Option<u16>) -> String {
    match expected {
        Some(e) => format!("status {status}, expected {e}"),
        None => format!("status {status}, expected 2xx"),
    }
}

/// A refusal by the guarded resolver, somewhere in the error's cause chain.
fn refusal_in(e: &reqwest::Error) -> Option<&Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

/// A reqwest error as one line: its kind, then each distinct cause, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "bad answer"
    } else {
        "request failed"
    };
    let mut parts: Vec<String> = vec![kind.to_string()];
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// A duration as people write it: `3s`, `500ms`, `1.5s`.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(3)), "3s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn user_agent_names_the_version() {
        assert!(USER_AGENT.starts_with("regie-prober/0."));
    }

    #[test]
    fn messages_never_echo_paths_or_queries() {
        let u = Url::parse("https://app.example.nl:8443/x?token=secret").unwrap();
        assert_eq!(host_of(&u), "app.example.nl:8443");
    }

    /// Last success 08:59:30 local, then the name resolves to 127.0.0.1 from 09:00 to 13:00
    /// (every probe refused), then a success: four hours down in service hours, not 0 s.
    #[test]
    fn a_refusal_when_resolved_is_a_failed_sample() {
        use crate::sla::history::History;
        use crate::tier::Tier;
        use crate::tier::tests::level;
        let tier = std::sync::Arc::new(Tier::from_level(&level(
            "bronze",
            "  rank: 1\n  serviceHours: [\"Mon-Fri 08:00-17:00\"]\n  responseTimes: {urgent: 60m, other: 48h}\n  kpiReport: monthly\n  availability: {target: \"99.0\"}\n  probe: {interval: 60s, timeout: 10s}\n  workload: {minReplicas: 1}\n  credits: [{below: \"99.0\", percent: 5}]\n",
        ))
        .unwrap());
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let probed = |t: &str, success: bool| {
            ProbeResult::Probed(ProbeOutcome {
                at: at(t),
                success,
                duration: Duration::from_millis(5),
                status: Some(200),
                error: None,
            })
        };
        let refused = Refused::new("\"shop.example\" resolves to a refused address: 127.0.0.1");
        // Monday 2 March 2026, CET (UTC+1): 08:59:30 local is 07:59:30Z.
        let mut results = vec![probed("2026-03-02T07:59:30Z", true)];
        let start = at("2026-03-02T08:00:00Z");
        for minute in 0..240 {
            let t = start + jiff::SignedDuration::from_mins(minute);
            results.push(ProbeResult::Refused(refused.clone().when_probed(t)));
        }
        results.push(probed("2026-03-02T12:00:00Z", true));
        // A refusal as written and a skip are no samples.
        assert_eq!(ProbeResult::Refused(refused.clone()).sla_sample(), None);
        assert_eq!(ProbeResult::Skipped(SkipReason::Busy).sla_sample(), None);
        let mut h = History::new();
        for r in &results {
            if let Some(s) = r.sla_sample() {
                h.observe(&tier, s);
            }
        }
        let (_, parts) = h
            .figures(
                &tier,
                crate::sla::calendar::Period::month(2026, 3).unwrap(),
                at("2026-03-02T13:00:00Z"),
            )
            .unwrap();
        let result = &parts[0].result;
        assert_eq!(result.down_seconds, 14_400);
        assert_eq!(result.incidents.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let start: Timestamp = "2026-03-29T00:59:00Z".parse().unwrap();
        let clock = TokioClock::starting_at(start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(
            clock.now(),
            "2026-03-29T01:00:30Z".parse::<Timestamp>().unwrap()
        );
    }
}
