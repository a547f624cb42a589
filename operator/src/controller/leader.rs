//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several `regie run`
//! processes exactly one writes. The holder renews the lease well inside its duration; a
//! standby takes it over once it has gone unrenewed for the whole duration. A leader that cannot
//! renew in time steps down (the process exits and restarts as a standby) rather than risk two
//! writers.
//!
//! Expiry is judged as client-go judges it: by how long this process has seen the lease record
//! unchanged, on its own monotonic clock — never by comparing the holder's `renewTime`, written
//! by another machine's clock, with this one's. A standby whose clock runs ahead would
//! otherwise take a lease that is still being renewed.

use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
    pub retry_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: "regie-leader".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What of a lease record tells a renewal: holder, renewal time, duration in seconds.
type Record = (Option<String>, Option<MicroTime>, i32);

/// The lease record as a standby last saw it change, and when (on this process's clock).
#[derive(Debug, Default)]
pub struct Observed {
    last: Option<(Record, Instant)>,
}

impl Observed {
    /// Whether the lease, read now as `spec`, is free to take: released (no holder or no
    /// renewal), or unchanged for its whole duration since this process first saw it so.
    fn expired(&mut self, spec: &LeaseSpec, now: Instant) -> bool {
        if spec.holder_identity.is_none() || spec.renew_time.is_none() {
            return true;
        }
        let secs = spec.lease_duration_seconds.unwrap_or(15);
        let record: Record = (spec.holder_identity.clone(), spec.renew_time.clone(), secs);
        let since = match &self.last {
            Some((seen, since)) if *seen == record => *since,
            _ => {
                self.last = Some((record, now));
                now
            }
        };
        now.saturating_duration_since(since)
            >= Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }
}

fn spec_for(cfg: &LeaseConfig, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
    let now = MicroTime(jiff::Timestamp::now());
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Tries once to become or stay the holder. Ok(true) when this process holds the lease now.
pub async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Observed,
    metrics: &Metrics,
) -> Result<bool, kube::Error> {
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec_for(cfg, 0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    metrics.write("create", "Lease");
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let mine = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
            if !mine && !observed.expired(&spec, Instant::now()) {
                return Ok(false);
            }
            let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
            let acquired = if mine {
                spec.acquire_time.clone()
            } else {
                None
            };
            lease.spec = Some(spec_for(cfg, transitions, acquired));
            // replace() carries the resourceVersion we read: two contenders cannot both win.
            match api
                .replace(&lease.name_any(), &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    metrics.write("update", "Lease");
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this process holds the lease.
pub async fn acquire(client: &Client, cfg: &LeaseConfig, metrics: &Metrics) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut observed = Observed::default();
    loop {
        match try_acquire(&api, cfg, &mut observed, metrics).await {
            Ok(true) => {
                tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
                metrics.leader.with_label_values(&[&cfg.identity]).set(1);
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
        }
        tokio::time::sleep(cfg.retry_every).await;
    }
}

/// How leadership was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Another process holds the lease: it may be writing already.
    Taken,
    /// Not renewed in time: stepped down before the lease can expire for others.
    NotRenewed,
}

/// Renews the lease while leading; returns when leadership is lost, and how.
pub async fn hold(client: &Client, cfg: &LeaseConfig, metrics: &Metrics) -> Loss {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut last_renewed = Instant::now();
    let mut observed = Observed::default();
    let loss = loop {
        tokio::time::sleep(cfg.renew_every).await;
        // A renewal that hangs (a dead connection, an API server that stopped answering) must
        // not keep this process leading past the moment it has to step down: by then a standby
        // may be about to take the lease.
        let left =
            (cfg.duration.saturating_sub(cfg.renew_every)).saturating_sub(last_renewed.elapsed());
        // A renewal counts from when it was sent, not from its answer: a standby may read the
        // new record (and start its count) as soon as the server stores it, and a late answer
        // would move this process's step-down past the standby's takeover.
        let sent = Instant::now();
        let renewal = tokio::time::timeout(left, try_acquire(&api, cfg, &mut observed, metrics))
            .await
            .unwrap_or_else(|_| Err(kube::Error::Service("renewal timed out".into())));
        match renewal {
            Ok(true) => last_renewed = sent,
            Ok(false) => {
                tracing::error!(identity = %cfg.identity, "lost the leader lease to another process");
                break Loss::Taken;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leader lease");
                // Step down before the lease can expire for others, so two never write at once.
                if last_renewed.elapsed() + cfg.renew_every >= cfg.duration {
                    tracing::error!("leader lease not renewed in time; stepping down");
                    break Loss::NotRenewed;
                }
            }
        }
    };
    metrics.leader.with_label_values(&[&cfg.identity]).set(0);
    loss
}

/// Hands leadership over on a clean shutdown: the next process need not wait for expiry.
pub async fn release(client: &Client, cfg: &LeaseConfig, metrics: &Metrics) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await
        && lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(cfg.identity.as_str())
    {
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
        }
        if api
            .replace(&cfg.name, &PostParams::default(), &lease)
            .await
            .is_ok()
        {
            metrics.write("update", "Lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_second: Option<i64>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: renewed_second
                .map(|s| MicroTime(jiff::Timestamp::from_second(s).expect("time"))),
            ..LeaseSpec::default()
        }
    }

    /// An API server that takes connections and never answers: the leader steps down when its
    /// renewal has not come back by the time it must (duration − renewal interval), not when
    /// the request gives up (minutes later).
    #[tokio::test]
    async fn a_renewal_that_hangs_steps_down_in_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                open.push(conn);
            }
        });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("url"));
        let client = crate::api_client::build(config, 2).expect("client");
        let cfg = LeaseConfig {
            duration: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
            ..LeaseConfig::new("default", "a")
        };
        let metrics = Metrics::new();
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), hold(&client, &cfg, &metrics))
            .await
            .expect("hold returns while the renewal still hangs");
        // Stepped down after at most the duration (2 s when on time), well before a request
        // timeout; the bound is loose because the machine is shared.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        held.abort();
    }

    #[test]
    fn a_lease_expires_after_its_duration_unchanged_on_the_local_clock() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut observed = Observed::default();
        // The holder's clock is far behind ours: its renewal time says nothing to us.
        let renewed = spec(Some("a"), Some(0));
        assert!(!observed.expired(&renewed, at(0)), "first seen now");
        assert!(!observed.expired(&renewed, at(14)));
        // Renewed: the wait starts again.
        let renewed_again = spec(Some("a"), Some(5));
        assert!(!observed.expired(&renewed_again, at(14)));
        assert!(!observed.expired(&renewed_again, at(28)));
        assert!(observed.expired(&renewed_again, at(29)));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let mut observed = Observed::default();
        let now = Instant::now();
        assert!(observed.expired(&spec(None, Some(0)), now));
        assert!(observed.expired(&spec(Some("a"), None), now));
    }
}
