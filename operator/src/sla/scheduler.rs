//! The probe scheduler: keeps thousands of targets on time. It owns the set of targets, each
//! on a fixed grid of due times, and one loop that starts every probe when it is due.
//!
//! ```text
//!  upsert/remove ──► commands ─┐
//!                              ▼
//!  BinaryHeap of due times ─► loop ──spawn──► probe task (permit ─► GET ─► outcome)
//!                              ▲                              │
//!                              └──────── JoinSet ◄────────────┘
//!                              │
//!                              └──► ProbeEvent channel ─► the operator (metrics, compliance,
//!                                                          the component's Available condition)
//! ```
//!
//! - **Phase**: a target's grid is anchored in wall time at a stable hash of its key, so
//!   targets spread evenly over their interval and a restart keeps every target's phase.
//! - **No drift**: the next due time is the previous due time plus the interval, never "when
//!   the last probe ended"; ticks missed while the process stalled are skipped, not bunched.
//! - **Isolation**: every probe is its own task bounded by its timeout, so a hanging target only
//!   holds its own slot. Concurrency is bounded by a semaphore; a probe that cannot get a slot
//!   before its timeout is reported `Skipped`, not down.
//! - **Ordering**: the loop alone forwards events, so once it has sent `Retired` for a target's
//!   labels, no late result for them follows and the metrics can drop their series for good.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use super::prober::{ProbeOutcome, ProbeResult, ProbeRunner, SkipReason};
use super::target::{ProbeTarget, Refused, TargetLabels};

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Probes in flight at once, at most.
    pub max_concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> SchedulerConfig {
        SchedulerConfig {
            max_concurrency: 1024,
        }
    }
}

/// How early the loop wakes and starts probes. Tokio's timer counts whole milliseconds and
/// rounds every deadline up, so waking on time would make every probe 0 to 1 ms late; waking a
/// millisecond early centres the start error on zero instead. Nothing in an SLA hangs on a
/// probe starting one millisecond before its slot.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Commands taken per batch of due probes, so an overloaded loop still applies them.
const COMMAND_BATCH: usize = 256;

/// The shortest interval the scheduler accepts; shorter would be a denial of service.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// What the scheduler tells its consumer.
#[derive(Clone, Debug)]
pub enum ProbeEvent {
    /// One probe's result (or why it was skipped or refused).
    Probed(ProbeReport),
    /// No more results will come with these labels for this key: the target was removed, or it
    /// changed its labels (e.g. a new service level). Drop the series.
    Retired { key: Arc<str>, labels: TargetLabels },
}

/// One probe, as scheduled and as found.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub key: Arc<str>,
    pub target: Arc<ProbeTarget>,
    /// Actual start minus scheduled start: how far from its slot the scheduler started the
    /// probe. Negative when it started early, by at most [`TIMER_SLACK`].
    pub start_error: SignedDuration,
    pub result: ProbeResult,
}

/// Why an upsert was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// The target is not allowed; any earlier schedule for the key was removed.
    Refused(Refused),
    /// The interval or timeout is unusable.
    Invalid(String),
    /// The scheduler has stopped.
    Stopped,
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleError::Refused(r) => write!(f, "{r}"),
            ScheduleError::Invalid(m) => write!(f, "probe target not scheduled: {m}"),
            ScheduleError::Stopped => f.write_str("the probe scheduler has stopped"),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// Counters of the scheduler's own health since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub targets: u64,
    /// Probes started.
    pub started: u64,
    /// Probes whose result was forwarded.
    pub reported: u64,
    /// Due probes skipped because the target's previous probe was still running.
    pub skipped_busy: u64,
    /// Due probes skipped because no concurrency slot freed up before their timeout.
    pub skipped_saturated: u64,
    /// Grid ticks that passed entirely while the loop could not run (a stalled process).
    pub missed_ticks: u64,
}

#[derive(Default)]
struct Counters {
    targets: AtomicU64,
    started: AtomicU64,
    reported: AtomicU64,
    skipped_busy: AtomicU64,
    skipped_saturated: AtomicU64,
    missed_ticks: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

enum Command {
    Upsert(Arc<str>, Arc<ProbeTarget>),
    Remove(Arc<str>),
    Stop,
}

/// A handle to a running scheduler; clones share it. The loop stops on [`Scheduler::shutdown`]
/// or when the last handle is dropped, aborting probes in flight and closing the event channel.
#[derive(Clone)]
pub struct Scheduler {
    commands: mpsc::UnboundedSender<Command>,
    runner: Arc<dyn ProbeRunner>,
    counters: Arc<Counters>,
}

impl Scheduler {
    /// Starts the loop on the current tokio runtime. Events arrive on the returned channel; it
    /// is unbounded so the loop never waits for the consumer, which must keep up (at most one
    /// event per probe).
    pub fn spawn(
        runner: Arc<dyn ProbeRunner>,
        config: SchedulerConfig,
    ) -> (Scheduler, mpsc::UnboundedReceiver<ProbeEvent>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, event_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let state = Loop {
            runner: runner.clone(),
            semaphore: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            targets: HashMap::new(),
            heap: BinaryHeap::new(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            events,
            counters: counters.clone(),
            next_generation: 0,
        };
        tokio::spawn(state.run(command_rx));
        (
            Scheduler {
                commands,
                runner,
                counters,
            },
            event_rx,
        )
    }

    /// Adds a target or changes it. An unchanged target keeps its schedule; a changed interval
    /// moves it to the new interval's grid. A refused target is not scheduled and any earlier
    /// schedule under the key is removed, so a URL edited into a refused one stops at once.
    pub fn upsert(
        &self,
        key: impl Into<Arc<str>>,
        target: ProbeTarget,
    ) -> Result<(), ScheduleError> {
        let key = key.into();
        if let Err(refused) = self.runner.check(&target) {
            self.send(Command::Remove(key))?;
            return Err(ScheduleError::Refused(refused));
        }
        if target.interval < MIN_INTERVAL {
            return Err(ScheduleError::Invalid(format!(
                "interval {:?} is shorter than {:?}",
                target.interval, MIN_INTERVAL
            )));
        }
        if target.timeout.is_zero() {
            return Err(ScheduleError::Invalid("timeout is zero".into()));
        }
        self.send(Command::Upsert(key, Arc::new(target)))
    }

    /// Stops probing a target. Unknown keys are ignored.
    pub fn remove(&self, key: impl Into<Arc<str>>) -> Result<(), ScheduleError> {
        self.send(Command::Remove(key.into()))
    }

    /// Stops the loop; probes in flight are aborted and the event channel closes.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    pub fn stats(&self) -> SchedulerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SchedulerStats {
            targets: get(&c.targets),
            started: get(&c.started),
            reported: get(&c.reported),
            skipped_busy: get(&c.skipped_busy),
            skipped_saturated: get(&c.skipped_saturated),
            missed_ticks: get(&c.missed_ticks),
        }
    }

    fn send(&self, command: Command) -> Result<(), ScheduleError> {
        self.commands
            .send(command)
            .map_err(|_| ScheduleError::Stopped)
    }
}

/// Where a target sits in its schedule.
fn phase(key: &str, interval: Duration) -> u128 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher, so restarts and upgrades
    // keep each target's phase.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    u128::from(h) % interval.as_nanos().max(1)
}

/// The first due time on a key's grid at or after `now`: the grid is every `interval` from
/// the Unix epoch, shifted by the key's phase.
fn first_due(key: &str, interval: Duration, wall_now_ns: i128, now: Instant) -> Instant {
    let i = interval.as_nanos().max(1) as i128;
    let p = phase(key, interval) as i128;
    let wait = (p - wall_now_ns).rem_euclid(i);
    now + Duration::from_nanos(wait as u64)
}

struct Entry {
    target: Arc<ProbeTarget>,
    /// Unique over the scheduler's life; changes with every change of the target.
    generation: u64,
    next_due: Instant,
    /// The task probing this target now, if any.
    running: Option<Id>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    generation: u64,
    key: Arc<str>,
}

struct Done {
    key: Arc<str>,
    generation: u64,
    target: Arc<ProbeTarget>,
    start_error: SignedDuration,
    result: ProbeResult,
}

struct Loop {
    runner: Arc<dyn ProbeRunner>,
    semaphore: Arc<Semaphore>,
    targets: HashMap<Arc<str>, Entry>,
    /// Due times, earliest first; entries whose generation or time no longer match are stale
    /// and skipped when they surface (cheaper than removing from the middle of a heap).
    heap: BinaryHeap<Reverse<Due>>,
    running: HashMap<Id, Arc<str>>,
    tasks: JoinSet<Done>,
    events: mpsc::UnboundedSender<ProbeEvent>,
    counters: Arc<Counters>,
    next_generation: u64,
}

impl Loop {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        loop {
            if let Some(Reverse(top)) = self.heap.peek() {
                let wake = top.at.checked_sub(TIMER_SLACK).unwrap_or(top.at);
                if sleep.deadline() != wake {
                    sleep.as_mut().reset(wake);
                }
            }
            tokio::select! {
                // Starting due probes comes first: it is what the schedule promises. When the
                // loop is overloaded that branch is always ready, so it also reaps finished
                // probes and takes a bounded batch of commands, lest both starve.
                biased;
                () = &mut sleep, if !self.heap.is_empty() => {
                    self.reap();
                    self.start_due();
                    if self.heap.is_empty() {
                        sleep.as_mut().reset(far());
                    }
                    for _ in 0..COMMAND_BATCH {
                        match commands.try_recv() {
                            Ok(command) => {
                                if !self.apply(command) {
                                    return self.stop();
                                }
                            }
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => return self.stop(),
                        }
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => {
                        if !self.apply(command) {
                            return self.stop();
                        }
                    }
                    None => return self.stop(),
                },
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finish(joined);
                }
            }
        }
    }

    /// Applies a command; false when the loop must stop.
    fn apply(&mut self, command: Command) -> bool {
        match command {
            Command::Upsert(key, target) => self.upsert(key, target),
            Command::Remove(key) => self.remove(&key),
            Command::Stop => return false,
        }
        true
    }

    fn stop(&mut self) {
        self.tasks.abort_all();
    }

    /// Takes in every probe that has finished, without waiting.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            self.finish(joined);
        }
    }

    fn wall_now_ns(&self) -> i128 {
        self.runner.now().as_nanosecond()
    }

    fn upsert(&mut self, key: Arc<str>, target: Arc<ProbeTarget>) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let now = Instant::now();
        let next_due = match self.targets.get(&key) {
            Some(old) if old.target == target => return,
            Some(old) if old.target.interval == target.interval => old.next_due,
            _ => first_due(&key, target.interval, self.wall_now_ns(), now),
        };
        let running = match self.targets.remove(&key) {
            Some(old) => {
                if old.target.labels != target.labels {
                    let _ = self.events.send(ProbeEvent::Retired {
                        key: key.clone(),
                        labels: old.target.labels.clone(),
                    });
                }
                old.running
            }
            None => {
                bump(&self.counters.targets, 1);
                None
            }
        };
        self.heap.push(Reverse(Due {
            at: next_due,
            generation,
            key: key.clone(),
        }));
        self.targets.insert(
            key,
            Entry {
                target,
                generation,
                next_due,
                running,
            },
        );
    }

    fn remove(&mut self, key: &Arc<str>) {
        if let Some(old) = self.targets.remove(key) {
            self.counters.targets.fetch_sub(1, Ordering::Relaxed);
            let _ = self.events.send(ProbeEvent::Retired {
                key: key.clone(),
                labels: old.target.labels.clone(),
            });
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        let horizon = now + TIMER_SLACK;
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.at > horizon {
                break;
            }
            let Some(Reverse(due)) = self.heap.pop() else {
                break;
            };
            let Some(entry) = self.targets.get_mut(&due.key) else {
                continue;
            };
            if entry.generation != due.generation || entry.next_due != due.at {
                continue;
            }
            let interval = entry.target.interval;
            let mut next = due.at + interval;
            if next <= now {
                // The loop could not run for a whole interval or more: skip to the first tick
                // still ahead instead of firing the missed ones in a burst.
                let behind = now.duration_since(due.at).as_nanos() / interval.as_nanos();
                bump(&self.counters.missed_ticks, behind as u64);
                next = due.at + Duration::from_nanos((interval.as_nanos() * (behind + 1)) as u64);
            }
            entry.next_due = next;
            self.heap.push(Reverse(Due {
                at: next,
                generation: due.generation,
                key: due.key.clone(),
            }));
            if entry.running.is_some() {
                bump(&self.counters.skipped_busy, 1);
                let report = ProbeReport {
                    key: due.key,
                    target: entry.target.clone(),
                    start_error: SignedDuration::ZERO,
                    result: ProbeResult::Skipped(SkipReason::Busy),
                };
                bump(&self.counters.reported, 1);
                let _ = self.events.send(ProbeEvent::Probed(report));
                continue;
            }
            let task = probe_task(
                self.runner.clone(),
                self.semaphore.clone(),
                due.key.clone(),
                due.generation,
                entry.target.clone(),
                due.at,
            );
            let handle = self.tasks.spawn(task);
            entry.running = Some(handle.id());
            self.running.insert(handle.id(), due.key);
        }
        // A burst of changes (a start upserts every target, a tier change many) leaves stale
        // entries that surface within an interval; once they have, their room is given back.
        crate::room::give_back(&mut self.heap);
    }

    fn finish(&mut self, joined: Result<(Id, Done), tokio::task::JoinError>) {
        let (id, done) = match joined {
            Ok((id, done)) => (id, Some(done)),
            // A probe task panicked; its target must not stay marked as running forever.
            Err(e) => (e.id(), None),
        };
        let Some(key) = self.running.remove(&id) else {
            return;
        };
        let Some(entry) = self.targets.get_mut(&key) else {
            return;
        };
        if entry.running == Some(id) {
            entry.running = None;
        }
        let Some(done) = done else { return };
        if matches!(done.result, ProbeResult::Skipped(_)) {
            bump(&self.counters.skipped_saturated, 1);
        } else {
            bump(&self.counters.started, 1);
        }
        // A result for an older version of the target (changed or re-added meanwhile) is stale.
        if entry.generation != done.generation {
            return;
        }
        bump(&self.counters.reported, 1);
        let _ = self.events.send(ProbeEvent::Probed(ProbeReport {
            key: done.key,
            target: done.target,
            start_error: done.start_error,
            result: done.result,
        }));
    }
}

/// One probe as its own task: wait for a slot (no longer than the timeout), probe, report.
async fn probe_task(
    runner: Arc<dyn ProbeRunner>,
    semaphore: Arc<Semaphore>,
    key: Arc<str>,
    generation: u64,
    target: Arc<ProbeTarget>,
    due: Instant,
) -> Done {
    let done = |start_error, result| Done {
        key: key.clone(),
        generation,
        target: target.clone(),
        start_error,
        result,
    };
    let permit = match semaphore.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            match tokio::time::timeout_at(due + target.timeout, semaphore.acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    let waited =
                        SignedDuration::try_from(target.timeout).unwrap_or(SignedDuration::MAX);
                    return done(waited, ProbeResult::Skipped(SkipReason::Saturated));
                }
            }
        }
    };
    let started = Instant::now();
    let start_error = signed_between(due, started);
    let at = runner.now();
    // The runner bounds itself by the timeout; this is the backstop for one that does not.
    let backstop = target.timeout + Duration::from_secs(1);
    let result = match tokio::time::timeout(backstop, runner.run(target.clone())).await {
        Ok(result) => result,
        Err(_) => ProbeResult::Probed(ProbeOutcome {
            at,
            success: false,
            duration: started.elapsed(),
            status: None,
            error: Some("the probe did not finish within its timeout".into()),
        }),
    };
    drop(permit);
    done(start_error, result)
}

/// `to - from`, negative when `to` is earlier.
fn signed_between(from: Instant, to: Instant) -> SignedDuration {
    let (d, negative) = match to.checked_duration_since(from) {
        Some(d) => (d, false),
        None => (from.duration_since(to), true),
    };
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    if negative { -d } else { d }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use jiff::Timestamp;

    use super::*;
    use crate::sla::prober::{Clock, TokioClock};

    /// A runner that records when each URL was probed and answers after a set delay.
    struct Fake {
        clock: TokioClock,
        origin: Instant,
        calls: Mutex<Vec<(String, Duration)>>,
        delay: HashMap<String, Duration>,
    }

    impl Fake {
        fn new(delay: &[(&str, Duration)]) -> Arc<Fake> {
            Arc::new(Fake {
                clock: TokioClock::starting_at("2026-03-02T08:00:00Z".parse().unwrap()),
                origin: Instant::now(),
                calls: Mutex::new(Vec::new()),
                delay: delay.iter().map(|(u, d)| (u.to_string(), *d)).collect(),
            })
        }

        fn calls(&self, url: &str) -> Vec<Duration> {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(u, _)| u == url)
                .map(|(_, t)| *t)
                .collect()
        }
    }

    impl ProbeRunner for Fake {
        fn check(&self, target: &ProbeTarget) -> Result<(), Refused> {
            if target.url()?.host_str() == Some("refused.example") {
                Err(Refused::new("refused by the fake"))
            } else {
                Ok(())
            }
        }

        fn run(self: &Fake, target: Arc<ProbeTarget>) -> BoxFuture<'static, ProbeResult> {
            let url = target.url_text().to_string();
            self.calls
                .lock()
                .unwrap()
                .push((url.clone(), self.origin.elapsed()));
            let delay = self.delay.get(&url).copied().unwrap_or_default();
            let at = self.clock.now();
            Box::pin(async move {
                let slept = delay.min(target.timeout);
                tokio::time::sleep(slept).await;
                let success = delay < target.timeout;
                ProbeResult::Probed(ProbeOutcome {
                    at,
                    success,
                    duration: slept,
                    status: success.then_some(200),
                    error: (!success).then(|| "timeout".to_string()),
                })
            })
        }

        fn now(&self) -> Timestamp {
            self.clock.now()
        }
    }

    fn target(url: &str, interval_ms: u64) -> ProbeTarget {
        ProbeTarget::new(
            url,
            Duration::from_millis(interval_ms),
            Duration::from_millis(interval_ms / 2),
        )
        .unwrap()
    }

    async fn drain(rx: &mut mpsc::UnboundedReceiver<ProbeEvent>) -> Vec<ProbeEvent> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    #[test]
    fn phases_are_stable_and_spread() {
        let i = Duration::from_secs(10);
        assert_eq!(phase("tenant-a/app", i), phase("tenant-a/app", i));
        let mut buckets = [0u32; 10];
        for n in 0..10_000 {
            let p = phase(&format!("tenant-{n}/app"), i);
            buckets[(p / 1_000_000_000) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "uneven spread: {buckets:?}");
        }
    }

    #[test]
    fn the_grid_is_anchored_in_wall_time() {
        let i = Duration::from_secs(10);
        let now = Instant::now();
        let p = phase("k", i) as i128;
        // Two processes started at different wall times land on the same grid.
        for wall in [0i128, 3_000_000_000, 1_700_000_000_123_456_789] {
            let due = first_due("k", i, wall, now);
            let wall_due = wall + due.duration_since(now).as_nanos() as i128;
            assert_eq!((wall_due - p).rem_euclid(10_000_000_000), 0);
            assert!(due.duration_since(now) < i);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probes_follow_the_grid_without_drift() {
        let fake = Fake::new(&[("http://slow.example/", Duration::from_millis(300))]);
        let (s, mut rx) = Scheduler::spawn(fake.clone(), SchedulerConfig::default());
        s.upsert("slow", target("http://slow.example/", 1000))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        let calls = fake.calls("http://slow.example/");
        assert!(calls.len() >= 10, "{calls:?}");
        // Each probe takes 300 ms, yet starts stay exactly one interval apart.
        for w in calls.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs(1), "{calls:?}");
        }
        let events = drain(&mut rx).await;
        // Tokio's timer ticks in whole milliseconds; waking one early keeps starts within it.
        assert!(events.iter().all(
            |e| matches!(e, ProbeEvent::Probed(r) if r.start_error.unsigned_abs() <= TIMER_SLACK)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_target_does_not_delay_the_others() {
        let fake = Fake::new(&[("http://hang.example/", Duration::from_secs(3600))]);
        let (s, mut rx) = Scheduler::spawn(fake.clone(), SchedulerConfig { max_concurrency: 4 });
        s.upsert("hang", target("http://hang.example/", 1000))
            .unwrap();
        s.upsert("ok", target("http://ok.example/", 1000)).unwrap();
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        let ok = fake.calls("http://ok.example/");
        assert!(ok.len() >= 5);
        for w in ok.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs(1));
        }
        let events = drain(&mut rx).await;
        let hang_failures = events
            .iter()
            .filter(|e| matches!(e, ProbeEvent::Probed(r) if &*r.key == "hang" && r.result.outcome().is_some_and(|o| !o.success)))
            .count();
        assert!(
            hang_failures >= 4,
            "the hanging target fails at its timeout each interval"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_targets_spread_over_the_interval() {
        let fake = Fake::new(&[]);
        let (s, _rx) = Scheduler::spawn(fake.clone(), SchedulerConfig::default());
        for n in 0..1000 {
            s.upsert(
                format!("t{n}"),
                target(&format!("http://t{n}.example/"), 1000),
            )
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1000, "each target once in its first interval");
        let mut per_100ms = [0u32; 10];
        for (_, t) in &calls {
            per_100ms[((t.as_millis() / 100) as usize).min(9)] += 1;
        }
        for b in per_100ms {
            assert!((50..150).contains(&b), "uneven: {per_100ms:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn removal_stops_probing_and_retires_the_labels() {
        let fake = Fake::new(&[]);
        let (s, mut rx) = Scheduler::spawn(fake.clone(), SchedulerConfig::default());
        let labels = TargetLabels::new("etten-leur", "zaken", "silver");
        s.upsert(
            "k",
            target("http://a.example/", 1000).with_labels(labels.clone()),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        s.remove("k").unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let before = fake.calls("http://a.example/").len();
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        assert_eq!(fake.calls("http://a.example/").len(), before);
        let events = drain(&mut rx).await;
        assert!(
            matches!(events.last(), Some(ProbeEvent::Retired { key, labels: l }) if &**key == "k" && *l == labels)
        );
        assert_eq!(s.stats().targets, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn changes_take_effect_and_retire_old_labels() {
        let fake = Fake::new(&[]);
        let (s, mut rx) = Scheduler::spawn(fake.clone(), SchedulerConfig::default());
        let silver = TargetLabels::new("t", "c", "silver");
        let gold = TargetLabels::new("t", "c", "gold");
        s.upsert(
            "k",
            target("http://a.example/", 1000).with_labels(silver.clone()),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        // Re-upserting the same target changes nothing, as a controller re-reconciling does.
        s.upsert(
            "k",
            target("http://a.example/", 1000).with_labels(silver.clone()),
        )
        .unwrap();
        s.upsert(
            "k",
            target("http://b.example/", 500).with_labels(gold.clone()),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        let events = drain(&mut rx).await;
        let retired: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, ProbeEvent::Retired { .. }))
            .collect();
        assert_eq!(retired.len(), 1);
        assert!(matches!(retired[0], ProbeEvent::Retired { labels, .. } if *labels == silver));
        let b = fake.calls("http://b.example/");
        assert!(
            (5..=7).contains(&b.len()),
            "the new interval applies: {b:?}"
        );
        for w in b.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_millis(500));
        }
        let after: Vec<_> = events
            .iter()
            .skip_while(|e| !matches!(e, ProbeEvent::Retired { .. }))
            .filter_map(|e| match e {
                ProbeEvent::Probed(r) => Some(r.target.labels.clone()),
                _ => None,
            })
            .collect();
        assert!(
            !after.is_empty() && after.iter().all(|l| *l == gold),
            "no silver result after retirement"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refused_targets_are_never_scheduled() {
        let fake = Fake::new(&[]);
        let (s, _rx) = Scheduler::spawn(fake.clone(), SchedulerConfig::default());
        s.upsert("k", target("http://a.example/", 1000)).unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let err = s
            .upsert("k", target("http://refused.example/", 1000))
            .unwrap_err();
        assert_eq!(
            err,
            ScheduleError::Refused(Refused::new("refused by the fake"))
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let a_before = fake.calls("http://a.example/").len();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert!(fake.calls("http://refused.example/").is_empty());
        assert_eq!(
            fake.calls("http://a.example/").len(),
            a_before,
            "the old URL stopped too"
        );
        assert!(matches!(
            s.upsert("x", target("http://a.example/", 1)),
            Err(ScheduleError::Invalid(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_never_overlaps_itself_and_saturation_skips() {
        // Timeout longer than the interval: the previous probe is still running when the next
        // is due, so that one is skipped rather than stacked.
        let fake = Fake::new(&[("http://slow.example/", Duration::from_millis(1500))]);
        let (s, mut rx) = Scheduler::spawn(fake.clone(), SchedulerConfig { max_concurrency: 1 });
        let slow = ProbeTarget::new(
            "http://slow.example/",
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
        .unwrap();
        s.upsert("slow", slow).unwrap();
        s.upsert("other", target("http://other.example/", 1000))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(6_000)).await;
        let events = drain(&mut rx).await;
        let skipped = |why: SkipReason| {
            events
                .iter()
                .filter(|e| matches!(e, ProbeEvent::Probed(ProbeReport { result: ProbeResult::Skipped(r), .. }) if *r == why))
                .count()
        };
        assert!(skipped(SkipReason::Busy) >= 2, "{events:?}");
        assert!(
            skipped(SkipReason::Saturated) >= 1,
            "one slot, held 1.5 s by the slow target"
        );
        let st = s.stats();
        assert!(st.skipped_busy >= 2 && st.skipped_saturated >= 1, "{st:?}");
    }

    /// A runner that holds the thread for a while on every probe, as a starved CPU would.
    struct Hog(Duration);

    impl ProbeRunner for Hog {
        fn check(&self, _: &ProbeTarget) -> Result<(), Refused> {
            Ok(())
        }

        fn run(&self, _: Arc<ProbeTarget>) -> BoxFuture<'static, ProbeResult> {
            std::thread::sleep(self.0);
            Box::pin(async { ProbeResult::Skipped(SkipReason::Busy) })
        }

        fn now(&self) -> Timestamp {
            Timestamp::now()
        }
    }

    #[tokio::test]
    async fn an_overloaded_loop_still_takes_commands_and_sheds_ticks() {
        // 300 targets every 100 ms, each probe holding the thread 0.5 ms: 1.5 s of work per
        // second. The loop must keep applying commands and skip ticks rather than pile up.
        let (s, _rx) = Scheduler::spawn(
            Arc::new(Hog(Duration::from_micros(500))),
            SchedulerConfig::default(),
        );
        for n in 0..300 {
            s.upsert(
                format!("t{n}"),
                target(&format!("http://t{n}.example/"), 100),
            )
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.upsert("late", target("http://late.example/", 100))
            .unwrap();
        s.remove("t0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while s.stats().targets != 300 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            s.stats().targets,
            300,
            "the upsert and the removal were applied under load"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let st = s.stats();
        assert!(
            st.missed_ticks > 0 || st.skipped_busy > 0,
            "overload sheds ticks: {st:?}"
        );
        s.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_the_channel() {
        let fake = Fake::new(&[]);
        let (s, mut rx) = Scheduler::spawn(fake.clone(), SchedulerConfig::default());
        s.upsert("k", target("http://a.example/", 1000)).unwrap();
        s.shutdown();
        while rx.recv().await.is_some() {}
        assert_eq!(
            s.upsert("k", target("http://a.example/", 1000)),
            Err(ScheduleError::Stopped)
        );
    }
}
