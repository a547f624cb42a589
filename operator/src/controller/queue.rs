//! The tenant controller's work queue: which tenant is reconciled next, how many at once, and
//! when one is looked at again.
//!
//! kube-runtime's `Controller` does this over a store of whole objects that it must own (2 KiB
//! per Tenant, measured: the object, its key's copies of name, uid and resourceVersion). regie
//! keeps Tenants in a cache of its own compact form instead, so the queue is driven by names.
//! The rules are the ones that controller keeps: a name is reconciled by one task at a time; a
//! trigger that comes while it runs makes it run once more afterwards (it may have read the
//! object before the change); triggers for a queued name are one; a later run that is asked
//! for (a requeue) is kept only until something triggers the name sooner; at most
//! `concurrency` run at once; on shutdown nothing new starts and what runs finishes.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing until something changes (or the periodic resync comes round).
    AwaitChange,
    /// Run again after this long, unless triggered sooner.
    After(Duration),
}

/// Names waiting, running and asked to run again; the pure part of the queue.
#[derive(Default)]
struct Book {
    queued: VecDeque<String>,
    is_queued: HashSet<String>,
    running: HashSet<String>,
    /// Triggered while running: run again when done.
    again: HashSet<String>,
    /// Requeues: when each name is due, and the same in due order. Every tenant has one (the
    /// resync), so the two share one copy of its name.
    due: HashMap<Arc<str>, Instant>,
    by_due: BTreeSet<(Instant, Arc<str>)>,
}

impl Book {
    /// A trigger: run `name` as soon as a slot is free (or after its current run).
    fn trigger(&mut self, name: String) {
        self.cancel_due(&name);
        if self.running.contains(&name) {
            self.again.insert(name);
        } else if self.is_queued.insert(name.clone()) {
            self.queued.push_back(name);
        }
    }

    /// A requeue: run `name` at `at`, unless something triggers it sooner.
    fn requeue(&mut self, name: String, at: Instant) {
        if self.is_queued.contains(&name) || self.again.contains(&name) {
            return;
        }
        match self.due.get(name.as_str()) {
            Some(existing) if *existing <= at => {}
            _ => {
                self.cancel_due(&name);
                let name: Arc<str> = name.into();
                self.by_due.insert((at, name.clone()));
                self.due.insert(name, at);
            }
        }
    }

    fn cancel_due(&mut self, name: &str) {
        if let Some((name, at)) = self.due.remove_entry(name) {
            self.by_due.remove(&(at, name));
        }
    }

    /// Moves every requeue due by `now` to the queue.
    fn release_due(&mut self, now: Instant) {
        while self.by_due.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, name)) = self.by_due.pop_first() else {
                break;
            };
            self.due.remove(&name);
            self.trigger(name.to_string());
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.by_due.first().map(|(at, _)| *at)
    }

    /// The next name to start, marked running.
    fn start(&mut self) -> Option<String> {
        let name = self.queued.pop_front()?;
        self.is_queued.remove(&name);
        self.running.insert(name.clone());
        if self.queued.is_empty() {
            self.release_spare();
        }
        Some(name)
    }

    /// Gives back the room a wave of triggers left (a start queues every tenant at once; see
    /// [`crate::room`]), once the wave has passed.
    fn release_spare(&mut self) {
        crate::room::give_back(&mut self.queued);
        crate::room::give_back(&mut self.is_queued);
        crate::room::give_back(&mut self.again);
    }

    /// A run of `name` ended asking for `next`.
    fn finish(&mut self, name: String, next: Next, now: Instant) {
        self.running.remove(&name);
        if self.again.remove(&name) {
            self.trigger(name);
        } else if let Next::After(delay) = next {
            self.requeue(name, now + delay);
        }
    }
}

/// Runs `reconcile` for the names `triggers` yields, by the rules above, until `shutdown`
/// resolves (then waits for the runs in progress) or the triggers end and nothing is left.
pub async fn run<F, Fut>(
    triggers: impl Stream<Item = String>,
    concurrency: usize,
    reconcile: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Next>,
{
    let concurrency = concurrency.max(1);
    let mut book = Book::default();
    let mut running = FuturesUnordered::new();
    let mut triggers = std::pin::pin!(triggers.fuse());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut open = true;
    loop {
        while running.len() < concurrency
            && let Some(name) = book.start()
        {
            let run = reconcile(name.clone());
            running.push(async move { (name, run.await) });
        }
        if !open && book.queued.is_empty() && book.by_due.is_empty() && running.is_empty() {
            return;
        }
        let due = book.next_due();
        tokio::select! {
            () = &mut shutdown => break,
            name = triggers.next(), if open => match name {
                Some(name) => book.trigger(name),
                None => open = false,
            },
            Some((name, next)) = running.next(), if !running.is_empty() => {
                book.finish(name, next, Instant::now());
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                book.release_due(Instant::now());
            }
        }
    }
    // Shutting down: what runs finishes (a reconcile cut off between two writes would leave a
    // half-applied tenant for the next leader to find); nothing new starts.
    while running.next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn at(secs: u64) -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    fn started(book: &mut Book) -> Vec<String> {
        std::iter::from_fn(|| book.start()).collect()
    }

    #[test]
    fn triggers_for_a_queued_name_are_one() {
        let mut book = Book::default();
        for n in ["a", "b", "a", "a"] {
            book.trigger(n.into());
        }
        assert_eq!(started(&mut book), ["a", "b"]);
    }

    #[test]
    fn a_trigger_while_running_runs_it_once_more_afterwards() {
        let mut book = Book::default();
        book.trigger("a".into());
        assert_eq!(started(&mut book), ["a"]);
        book.trigger("a".into());
        book.trigger("a".into());
        assert!(started(&mut book).is_empty(), "never twice at once");
        book.finish("a".into(), Next::AwaitChange, at(0));
        assert_eq!(started(&mut book), ["a"]);
        book.finish("a".into(), Next::AwaitChange, at(0));
        assert!(started(&mut book).is_empty());
    }

    #[test]
    fn the_room_of_a_wave_is_given_back_once_it_has_passed() {
        let mut book = Book::default();
        for n in 0..1000 {
            book.trigger(format!("t{n}"));
        }
        assert!(book.is_queued.capacity() >= 1000);
        assert_eq!(started(&mut book).len(), 1000);
        assert!(book.queued.capacity() <= 64 && book.is_queued.capacity() <= 64);
        // Room for a few stays: a single trigger does not allocate again.
        book.trigger("a".into());
        let room = book.is_queued.capacity();
        assert_eq!(started(&mut book), ["a"]);
        assert_eq!(book.is_queued.capacity(), room);
    }

    #[test]
    fn a_requeue_waits_until_due_and_a_sooner_trigger_replaces_it() {
        let mut book = Book::default();
        book.trigger("a".into());
        book.trigger("b".into());
        started(&mut book);
        book.finish("a".into(), Next::After(Duration::from_secs(5)), at(0));
        book.finish("b".into(), Next::After(Duration::from_secs(2)), at(0));
        assert_eq!(book.next_due(), Some(at(2)));
        book.release_due(at(1));
        assert!(started(&mut book).is_empty());
        book.release_due(at(2));
        assert_eq!(started(&mut book), ["b"]);
        book.finish("b".into(), Next::AwaitChange, at(2));
        // A trigger for a before its requeue is due: it runs now, and not again at 5.
        book.trigger("a".into());
        assert_eq!(book.next_due(), None);
        assert_eq!(started(&mut book), ["a"]);
    }

    #[test]
    fn of_two_requeues_the_sooner_holds() {
        let mut book = Book::default();
        book.requeue("a".into(), at(5));
        book.requeue("a".into(), at(9));
        assert_eq!(book.next_due(), Some(at(5)));
        book.requeue("a".into(), at(3));
        assert_eq!(book.next_due(), Some(at(3)));
        assert_eq!(book.by_due.len(), 1);
    }

    #[test]
    fn a_run_triggered_meanwhile_is_not_also_requeued() {
        let mut book = Book::default();
        book.trigger("a".into());
        started(&mut book);
        book.trigger("a".into());
        book.finish("a".into(), Next::After(Duration::from_secs(30)), at(0));
        assert_eq!(book.next_due(), None);
        assert_eq!(started(&mut book), ["a"]);
    }

    /// The loop: never more than `concurrency` at once, every name run, and a shutdown lets the
    /// runs in progress finish.
    #[tokio::test]
    async fn runs_at_most_concurrency_at_once_and_finishes_what_runs_on_shutdown() {
        // (running now, most at once, done)
        let state = Arc::new(Mutex::new((0usize, 0usize, Vec::<String>::new())));
        let reconcile = {
            let state = state.clone();
            move |name: String| {
                let state = state.clone();
                async move {
                    {
                        let mut s = state.lock().unwrap();
                        s.0 += 1;
                        s.1 = s.1.max(s.0);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let mut s = state.lock().unwrap();
                    s.0 -= 1;
                    s.2.push(name);
                    Next::AwaitChange
                }
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for i in 0..10 {
            tx.send(format!("t{i}")).unwrap();
        }
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let looped = tokio::spawn(run(stream, 3, reconcile, async {
            let _ = stop_rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(state.lock().unwrap().2.len(), 10);
        tx.send("late".into()).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = stop_tx.send(());
        looped.await.unwrap();
        let s = state.lock().unwrap();
        assert_eq!(s.1, 3, "at most three at once");
        assert_eq!(s.0, 0, "the run in progress finished");
        assert_eq!(s.2.len(), 11);
    }
}
