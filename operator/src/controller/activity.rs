//! Which writes go first. A reconcile (a new tenant, a tier change someone waits for) is work a
//! person or a GitOps tool is waiting on; an SLA report's figures and an invoice draft are
//! not. Both end at the same API server, which on a busy cluster is the bottleneck, so the
//! writers that can wait ask [`Activity`] first: they write while no reconcile is in progress,
//! and defer while one is — but never longer than a bound of their own, so a cluster that
//! reconciles without pause still gets its reports and drafts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The reconciles in progress.
#[derive(Debug, Default)]
pub struct Activity {
    in_progress: AtomicUsize,
    quiet: Notify,
}

/// One reconcile in progress; dropping it (however the reconcile ends) ends it.
pub struct Reconciling<'a>(&'a Activity);

impl Drop for Reconciling<'_> {
    fn drop(&mut self) {
        if self.0.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

impl Activity {
    /// Marks a reconcile in progress until the returned guard is dropped.
    pub fn reconciling(&self) -> Reconciling<'_> {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        Reconciling(self)
    }

    /// True when no reconcile is in progress.
    pub fn is_quiet(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) == 0
    }

    /// Waits until no reconcile is in progress or `deadline` has come, whichever is first.
    /// True when it is quiet.
    pub async fn quiet_or(&self, deadline: Instant) -> bool {
        loop {
            // Registered before the check, so an end between the check and the wait is seen.
            let ended = self.quiet.notified();
            if self.is_quiet() {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.is_quiet();
            }
        }
    }
}

/// How long deferrable writes wait for a quiet moment at most: the period of the SLA reports'
/// steady refresh, so under reconciles without pause a report is at most that much behind.
pub const DEFER_AT_MOST: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quiet_when_the_last_reconcile_ends() {
        let activity = std::sync::Arc::new(Activity::default());
        assert!(activity.is_quiet());
        let a = activity.clone();
        let waiter = tokio::spawn(async move {
            let started = Instant::now();
            let quiet = a.quiet_or(Instant::now() + Duration::from_secs(60)).await;
            (quiet, started.elapsed())
        });
        {
            let _one = activity.reconciling();
            let _two = activity.reconciling();
            assert!(!activity.is_quiet());
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(_one);
            assert!(!activity.is_quiet(), "one still in progress");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (quiet, waited) = waiter.await.expect("joins");
        assert!(quiet);
        assert_eq!(waited, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn never_defers_past_the_deadline() {
        let activity = Activity::default();
        let _busy = activity.reconciling();
        let started = Instant::now();
        let quiet = activity
            .quiet_or(Instant::now() + Duration::from_secs(5))
            .await;
        assert!(!quiet);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
