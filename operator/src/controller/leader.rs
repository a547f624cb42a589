//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several `regie run`
//! processes exactly one writes. The holder renews the lease well inside its duration; a
//! standby takes it over once it has gone unrenewed for the whole duration. A leader that cannot
//! renew in time steps down (the process exits and restarts as a standby) rather than risk two
//! writers.

use std::time::Duration;

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

fn expired(lease: &Lease, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    now.as_second() > renewed.as_second() + secs
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
            if !mine && !expired(&lease, jiff::Timestamp::now()) {
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
    loop {
        match try_acquire(&api, cfg, metrics).await {
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

/// Renews the lease while leading; returns when leadership is lost (not renewed in time).
pub async fn hold(client: &Client, cfg: &LeaseConfig, metrics: &Metrics) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_acquire(&api, cfg, metrics).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(identity = %cfg.identity, "lost the leader lease to another process");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leader lease");
                // Step down before the lease can expire for others, so two never write at once.
                if last_renewed.elapsed() + cfg.renew_every >= cfg.duration {
                    tracing::error!("leader lease not renewed in time; stepping down");
                    break;
                }
            }
        }
    }
    metrics.leader.with_label_values(&[&cfg.identity]).set(0);
}

/// Hands leadership over on a clean shutdown: the next process need not wait for expiry.
pub async fn release(client: &Client, cfg: &LeaseConfig) {
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
        let _ = api.replace(&cfg.name, &PostParams::default(), &lease).await;
    }
}
