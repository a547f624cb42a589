//! Running regie's controller in-process against a test control plane, and waiting for what it
//! should bring about — shared by the end-to-end tests, the benchmarks and the demo.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::Client;
use kube::api::Api;
use regie::controller::{Options, leader};
use regie::metrics::Metrics;
use regie_crds::Tenant;
use regie_crds::status::{READY, is_true};
use tokio::task::JoinHandle;

/// An operator running in this process; stopped (gracefully) by [`RunningOperator::stop`], or
/// killed without releasing anything by [`RunningOperator::kill`].
pub struct RunningOperator {
    pub metrics: Metrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl std::fmt::Debug for RunningOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunningOperator")
    }
}

impl RunningOperator {
    /// Starts an operator; with `lease`, it first has to win leader election.
    pub fn start(
        client: Client,
        options: Options,
        lease: Option<leader::LeaseConfig>,
    ) -> RunningOperator {
        let metrics = Metrics::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let m = metrics.clone();
        let handle = tokio::spawn(async move {
            regie::runtime::operate(
                client,
                options,
                lease,
                m,
                Arc::new(jiff::Timestamp::now),
                async move {
                    let _ = rx.await;
                },
            )
            .await
        });
        RunningOperator {
            metrics,
            stop: Some(tx),
            handle,
        }
    }

    /// Graceful stop: finishes in-flight reconciles, releases the lease.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.handle).await {
            Ok(joined) => joined?,
            Err(_) => bail!("operator did not stop within 30 s"),
        }
    }

    /// A crash: the task is dropped mid-flight; nothing is released.
    pub fn kill(self) {
        self.handle.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Polls `check` until it returns Ok(true), or fails after `timeout` with the last state.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what} {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every listed tenant reports Ready=True for its current generation.
pub async fn tenants_ready(client: &Client, names: &[&str], timeout: Duration) -> Result<()> {
    let api: Api<Tenant> = Api::all(client.clone());
    eventually(&format!("tenants {names:?} to be Ready"), timeout, || {
        let api = api.clone();
        async move {
            for n in names {
                let t = api.get(n).await?;
                let st = t.status.unwrap_or_default();
                if !is_true(&st.conditions, READY)
                    || st.observed_generation != t.metadata.generation
                {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
}
