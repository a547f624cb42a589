//! The statuses this process wrote a moment ago, so that a reconcile which runs before the
//! cache has seen its predecessor's write does not write the same status again.
//!
//! A tenant is reconciled again right after its first reconcile (its finalizer and its status
//! are both changes to it), usually before the watch has delivered the status just written; the
//! cached object then still shows the old status and the same new one would be written twice.
//! An entry counts only while the cache shows a version other than the one the write produced,
//! and only for [`WINDOW`]: longer than a watch lags, short enough that someone else's status
//! write is corrected by the next reconcile after it.
//!
//! It also tells when the cached status is older than one this process wrote: a change and its
//! revert in quick succession must write the reverted status although the cache shows it.
//!
//! Only the last moments of writes are held: expired entries are dropped at most once per
//! window (and by the controller's housekeeping when no write comes), and the table gives back
//! its room after a burst (see [`crate::room`]: a cold start writes thousands of statuses in a
//! minute).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a written status may be ahead of the cache.
pub const WINDOW: Duration = Duration::from_secs(5);

/// See the module documentation.
#[derive(Default)]
pub struct StatusMemo {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_uid: HashMap<Box<str>, Written>,
    /// When expired entries were last dropped.
    pruned: Option<Instant>,
}

impl Table {
    fn prune(&mut self, now: Instant) {
        self.by_uid
            .retain(|_, w| now.saturating_duration_since(w.at) < WINDOW);
        crate::room::give_back(&mut self.by_uid);
        self.pruned = Some(now);
    }
}

struct Written {
    digest: u64,
    resource_version: Option<Box<str>>,
    at: Instant,
}

impl StatusMemo {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a reconcile about to write the status of digest `digest` should compare it with to
    /// tell what is new in it (the Warnings of a stall that began): the cached status `cached`
    /// (`unchanged` when it equals the new one), or `None` when there is nothing to write.
    ///
    /// Nothing to write either when this process wrote the same status a moment ago and the
    /// cache has not caught up: that write published its news, and a reconcile comparing with
    /// the older cached status published them twice (a Warning counted a repeat the user never
    /// made). Nothing to compare with when the cache is behind another write of this process's
    /// (a change and its revert in quick succession, A, B, A: the
    /// third reconcile reads A from a cache that has not seen B's status): everything in the new status is news then.
    pub fn compare_with<'a, T>(
        &self,
        uid: &str,
        cached_version: Option<&str>,
        digest: u64,
        now: Instant,
        cached: &'a [T],
        unchanged: bool,
    ) -> Option<&'a [T]> {
        match self.unseen_write(uid, cached_version, now) {
            Some(written) if written == digest => None,
            Some(_) => Some(&[]),
            None if unchanged => None,
            None => Some(cached),
        }
    }

    /// The digest of the status this process wrote for `uid` less than [`WINDOW`] before `now`,
    /// when the cache, at `cached_version`, has not seen that write yet.
    fn unseen_write(&self, uid: &str, cached_version: Option<&str>, now: Instant) -> Option<u64> {
        self.lock()
            .by_uid
            .get(uid)
            .filter(|w| {
                now.saturating_duration_since(w.at) < WINDOW
                    && behind(cached_version, w.resource_version.as_deref())
            })
            .map(|w| w.digest)
    }

    /// Notes that this process wrote the status of digest `digest` for `uid` at `now`, and the
    /// write produced `resource_version`.
    pub fn record(&self, uid: &str, digest: u64, resource_version: Option<&str>, now: Instant) {
        let mut table = self.lock();
        if table
            .pruned
            .is_none_or(|at| now.saturating_duration_since(at) >= WINDOW)
        {
            table.prune(now);
        }
        table.by_uid.insert(
            uid.into(),
            Written {
                digest,
                resource_version: resource_version.map(Into::into),
                at: now,
            },
        );
    }

    /// Drops the entries expired at `now`. Writes prune as they come; this is for a process
    /// that has stopped writing, which would otherwise hold its last burst's entries for good.
    pub fn prune(&self, now: Instant) {
        self.lock().prune(now);
    }

    /// How many writes are held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_uid.len()
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.lock().by_uid.capacity()
    }
}

/// Whether a cache at version `cached` has not seen the write that produced `written`. Versions
/// are opaque to clients, but the API server's are etcd revisions: when both read as numbers, a
/// cache past the write (someone else wrote after it, the prober say) has seen it.
fn behind(cached: Option<&str>, written: Option<&str>) -> bool {
    let number = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok());
    match (number(cached), number(written)) {
        (Some(c), Some(w)) => c < w,
        _ => cached != written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl StatusMemo {
        /// Whether `digest` was written a moment ago, unseen by a cache at `cached_version`.
        fn just_wrote(
            &self,
            uid: &str,
            cached_version: Option<&str>,
            digest: u64,
            now: Instant,
        ) -> bool {
            self.compare_with(uid, cached_version, digest, now, &[()], false)
                .is_none()
        }

        /// Whether another status than `digest` was written a moment ago, unseen by the cache.
        fn wrote_another(
            &self,
            uid: &str,
            cached_version: Option<&str>,
            digest: u64,
            now: Instant,
        ) -> bool {
            self.compare_with(uid, cached_version, digest, now, &[()], true) == Some(&[])
        }
    }

    #[test]
    fn a_status_just_written_is_not_written_again_until_the_cache_shows_it() {
        let memo = StatusMemo::default();
        let t0 = Instant::now();
        let digest = 7;
        assert!(!memo.just_wrote("uid-1", Some("10"), digest, t0));
        memo.record("uid-1", digest, Some("12"), t0);
        // The cache still shows version 10 (or 11, the finalizer): the write is ahead of it.
        assert!(memo.just_wrote("uid-1", Some("10"), digest, t0));
        assert!(memo.just_wrote("uid-1", Some("11"), digest, t0));
        // Another status is another write.
        assert!(!memo.just_wrote("uid-1", Some("11"), 8, t0));
        // Once the cache holds the written version, the cache decides alone.
        assert!(!memo.just_wrote("uid-1", Some("12"), digest, t0));
        // And once it is past it: someone wrote another status after regie's (the component
        // marked as of no tenant by a racing pass), which regie's must replace.
        assert!(!memo.just_wrote("uid-1", Some("13"), digest, t0));
        // Other objects are unaffected.
        assert!(!memo.just_wrote("uid-2", Some("10"), digest, t0));
        // After the window the cache decides alone too: someone else may have written since.
        assert!(!memo.just_wrote("uid-1", Some("10"), digest, t0 + WINDOW));
    }

    /// A, B, A in quick succession: the third reconcile reads A from a cache that has not seen
    /// B's status, and must write A all the same.
    #[test]
    fn a_status_the_cache_has_not_seen_makes_the_cached_one_out_of_date() {
        let memo = StatusMemo::default();
        let t0 = Instant::now();
        let (a, b) = (7, 8);
        memo.record("uid-1", b, Some("12"), t0);
        assert!(
            memo.wrote_another("uid-1", Some("11"), a, t0),
            "cache at 11 shows A, B is out"
        );
        assert!(
            !memo.wrote_another("uid-1", Some("11"), b, t0),
            "B itself: just_wrote's case"
        );
        assert!(
            !memo.wrote_another("uid-1", Some("12"), a, t0),
            "the cache shows B: it decides"
        );
        assert!(
            !memo.wrote_another("uid-1", Some("13"), a, t0),
            "and past B (the prober's write after it)"
        );
        assert!(!memo.wrote_another("uid-2", Some("11"), a, t0));
        assert!(!memo.wrote_another("uid-1", Some("11"), a, t0 + WINDOW));
    }

    /// A reconcile that runs before the watch brings back its predecessor's write compares with
    /// what it is told: nothing for the status just written (its Warning went out with it), the
    /// cached conditions when the cache is current, none when the cache is behind another write.
    #[test]
    fn a_status_is_compared_with_what_the_api_server_holds() {
        let memo = StatusMemo::default();
        let t0 = Instant::now();
        let (ready, stalled) = (7, 8);
        let cached = ["Ready"];
        assert_eq!(
            memo.compare_with("uid-1", Some("10"), stalled, t0, &cached, false),
            Some(&cached[..])
        );
        assert_eq!(
            memo.compare_with("uid-1", Some("10"), ready, t0, &cached, true),
            None,
            "the cache shows it"
        );
        memo.record("uid-1", stalled, Some("12"), t0);
        assert_eq!(
            memo.compare_with("uid-1", Some("11"), stalled, t0, &cached, false),
            None,
            "written a moment ago, the cache still at 11: announced then"
        );
        assert_eq!(
            memo.compare_with("uid-1", Some("11"), ready, t0, &cached, true),
            Some(&[][..]),
            "the cache shows Ready, the server the stall: Ready again is news"
        );
        assert_eq!(
            memo.compare_with("uid-1", Some("12"), stalled, t0, &["Stalled"], true),
            None
        );
        assert_eq!(
            memo.compare_with("uid-1", Some("11"), stalled, t0 + WINDOW, &cached, false),
            Some(&cached[..]),
            "after the window the cache decides"
        );
    }

    #[test]
    fn a_burst_of_writes_is_forgotten_and_its_room_given_back() {
        let memo = StatusMemo::default();
        let t0 = Instant::now();
        for i in 0..5_000 {
            memo.record(&format!("uid-{i}"), 1, Some("1"), t0);
        }
        assert_eq!(memo.len(), 5_000);
        let burst = memo.capacity();
        // The first write a window later drops the burst and shrinks the table.
        memo.record("uid-late", 1, Some("2"), t0 + WINDOW);
        assert_eq!(memo.len(), 1);
        assert!(
            memo.capacity() < burst / 10,
            "{} of {burst}",
            memo.capacity()
        );
        // Entries younger than the window survive a pruning.
        let t1 = t0 + 2 * WINDOW;
        memo.record("uid-a", 1, Some("3"), t1);
        memo.record(
            "uid-b",
            1,
            Some("4"),
            t1 + WINDOW - Duration::from_millis(1),
        );
        memo.record("uid-c", 1, Some("5"), t1 + WINDOW);
        assert!(memo.just_wrote("uid-b", Some("3"), 1, t1 + WINDOW));
        assert!(!memo.just_wrote("uid-a", Some("2"), 1, t1 + WINDOW));
        // A process that stops writing after a burst ends empty, the burst's room given back.
        let t2 = t1 + 3 * WINDOW;
        for i in 0..5_000 {
            memo.record(&format!("uid-{i}"), 1, Some("6"), t2);
        }
        memo.prune(t2 + WINDOW);
        assert_eq!(memo.len(), 0);
        assert!(memo.capacity() <= 64);
    }
}
