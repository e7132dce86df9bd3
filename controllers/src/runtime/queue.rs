//! The work queue: which keys to reconcile, and when.
//!
//! What it promises (the shape of kube-runtime's `scheduler`):
//! - A key waits in the queue at most once. Triggers for a key that already waits coalesce into
//!   one, due at the earliest of their times.
//! - A key is never handed out while an earlier hand-out of it is still being worked on. A
//!   trigger that arrives meanwhile is kept, and the key is handed out again once the work on it
//!   is [`WorkQueue::done`], so no change is missed and none is worked on twice at once.
//! - A key whose work failed comes back after a per-key exponential backoff (`backon`); a
//!   success resets that key's backoff.
//! - [`WorkQueue::resync`] queues every key given that is not already waiting, so a periodic
//!   resync never pulls forward a key that is waiting out its backoff.
//!
//! What it does not do: bound how many keys are worked on at once (the
//! [`runner`](super::runner) takes a key only when it has a free worker), or remember a key
//! that is neither waiting, running nor backing off.
//!
//! Time is tokio's, so tests drive backoff with a paused clock.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a queue key must be: cheap to clone, ordered (ties between keys due at the same
/// instant go by key order), hashable, and printable for logs.
pub trait QueueKey: Clone + Ord + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static {}

impl<T: Clone + Ord + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static> QueueKey for T {}

/// The per-key retry delays after failures: `min`, then doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Stretch each delay randomly by up to as much again, so keys that failed together do
    /// not retry in lockstep.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(200),
            max: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl Backoff {
    fn delays(&self) -> ExponentialBackoff {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times();
        if self.jitter {
            builder.with_jitter().build()
        } else {
            builder.build()
        }
    }
}

/// How the work on a key ended, as told to [`WorkQueue::done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded; come back after the delay, if one is given.
    Succeeded {
        /// When to work on the key again regardless of triggers.
        requeue_after: Option<Duration>,
    },
    /// It failed; come back after the key's next backoff delay.
    Failed,
}

/// How many keys are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Keys waiting to be handed out (due now or later).
    pub waiting: usize,
    /// Keys handed out and not yet done.
    pub running: usize,
}

/// The queue; cheap to clone, clones share it. See the module documentation.
pub struct WorkQueue<K> {
    core: Arc<Core<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<K> fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueue").finish_non_exhaustive()
    }
}

/// What the queue's handles and its consumer share: the keys and their timers, and the consumer's wake-up.
struct Core<K> {
    state: Mutex<Schedule<K>>,
    /// Wakes the consumer: a key became due earlier, finished, or the queue closed. One
    /// consumer, so `notify_one`'s stored permit closes the race between unlock and wait.
    wake: Notify,
    backoff: Backoff,
}

/// The keys and their timers: when each waiting key is due, which are running, which back off.
struct Schedule<K> {
    /// When each waiting key is due.
    due: HashMap<K, Instant>,
    /// The same, ordered by time.
    order: BTreeSet<(Instant, K)>,
    /// Keys handed out and not yet done.
    running: HashSet<K>,
    /// The backoff of each key whose last work failed.
    failures: HashMap<K, ExponentialBackoff>,
    closed: bool,
}

impl<K: QueueKey> Schedule<K> {
    /// Makes `key` due at `at`, unless it is already due earlier. Whether anything changed.
    fn schedule(&mut self, key: K, at: Instant) -> bool {
        match self.due.get(&key) {
            Some(&existing) if existing <= at => false,
            Some(&existing) => {
                self.order.remove(&(existing, key.clone()));
                self.order.insert((at, key.clone()));
                self.due.insert(key, at);
                true
            }
            None => {
                self.order.insert((at, key.clone()));
                self.due.insert(key, at);
                true
            }
        }
    }

    /// The earliest key due by `now` that is not running, marked running.
    fn take_due(&mut self, now: Instant) -> Option<K> {
        let (at, key) = self
            .order
            .iter()
            .take_while(|(at, _)| *at <= now)
            .find(|(_, key)| !self.running.contains(key))
            .cloned()?;
        self.order.remove(&(at, key.clone()));
        self.due.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// When the earliest key that could be handed out is due. Running keys are skipped; there
    /// are at most as many as workers.
    fn next_due(&self) -> Option<Instant> {
        self.order
            .iter()
            .find(|(_, key)| !self.running.contains(key))
            .map(|(at, _)| *at)
    }
}

impl<K: QueueKey> WorkQueue<K> {
    /// An empty queue whose failed keys back off as `backoff` says.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            core: Arc::new(Core {
                state: Mutex::new(Schedule {
                    due: HashMap::new(),
                    order: BTreeSet::new(),
                    running: HashSet::new(),
                    failures: HashMap::new(),
                    closed: false,
                }),
                wake: Notify::new(),
                backoff,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Schedule<K>> {
        // The lock is never held across an await or user code, so it cannot be poisoned by
        // a panic elsewhere; recover the guard anyway rather than spread a panic.
        self.core
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `key` now (something about it changed).
    pub fn trigger(&self, key: K) {
        self.trigger_at(key, Instant::now());
    }

    /// Queues `key` after `delay`, unless it is already due sooner.
    pub fn trigger_after(&self, key: K, delay: Duration) {
        self.trigger_at(key, Instant::now() + delay);
    }

    /// Queues `key` at `at`, unless it is already due sooner.
    pub fn trigger_at(&self, key: K, at: Instant) {
        let changed = {
            let mut state = self.state();
            !state.closed && state.schedule(key, at)
        };
        if changed {
            self.core.wake.notify_one();
        }
    }

    /// Queues now every key given that is not already waiting (a periodic resync).
    pub fn resync(&self, keys: impl IntoIterator<Item = K>) {
        let now = Instant::now();
        let mut changed = false;
        {
            let mut state = self.state();
            if state.closed {
                return;
            }
            for key in keys {
                if !state.due.contains_key(&key) {
                    changed |= state.schedule(key, now);
                }
            }
        }
        if changed {
            self.core.wake.notify_one();
        }
    }

    /// Waits for the next key that is due and not running, and marks it running; `None` once
    /// the queue is closed. Cancel-safe: a key is marked only when it is returned.
    pub async fn next(&self) -> Option<K> {
        loop {
            let wake_at = {
                let mut state = self.state();
                if state.closed {
                    return None;
                }
                if let Some(key) = state.take_due(Instant::now()) {
                    return Some(key);
                }
                state.next_due()
            };
            let notified = self.core.wake.notified();
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Records how the work on a handed-out `key` ended and queues it again as that says;
    /// returns the backoff delay after a failure.
    pub fn done(&self, key: &K, outcome: Outcome) -> Option<Duration> {
        let now = Instant::now();
        let delay = {
            let mut state = self.state();
            state.running.remove(key);
            match outcome {
                Outcome::Succeeded { requeue_after } => {
                    state.failures.remove(key);
                    if let Some(after) = requeue_after {
                        state.schedule(key.clone(), now + after);
                    }
                    None
                }
                Outcome::Failed => {
                    let backoff = self.core.backoff;
                    let delay = state
                        .failures
                        .entry(key.clone())
                        .or_insert_with(|| backoff.delays())
                        .next()
                        .unwrap_or(backoff.max);
                    state.schedule(key.clone(), now + delay);
                    Some(delay)
                }
            }
        };
        self.core.wake.notify_one();
        delay
    }

    /// Forgets `key`'s backoff and any pending trigger (the key no longer exists).
    pub fn forget(&self, key: &K) {
        let mut state = self.state();
        state.failures.remove(key);
        if let Some(at) = state.due.remove(key) {
            state.order.remove(&(at, key.clone()));
        }
    }

    /// How many keys wait and run.
    pub fn depth(&self) -> Depth {
        let state = self.state();
        Depth {
            waiting: state.due.len(),
            running: state.running.len(),
        }
    }

    /// Stops handing out keys: [`WorkQueue::next`] returns `None` from now on, and triggers
    /// are ignored.
    pub fn close(&self) {
        self.state().closed = true;
        self.core.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(8),
            jitter: false,
        })
    }

    /// The next key, or `None` if none comes within a minute of (paused) time.
    async fn next_within_a_minute(queue: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::from_secs(60), queue.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_triggers_coalesce_into_one_hand_out() {
        let queue = queue();
        queue.trigger("a");
        queue.trigger("a");
        queue.trigger_after("a", Duration::from_secs(5));
        assert_eq!(queue.depth().waiting, 1);
        assert_eq!(queue.next().await, Some("a"));
        queue.done(
            &"a",
            Outcome::Succeeded {
                requeue_after: None,
            },
        );
        assert_eq!(next_within_a_minute(&queue).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_again_until_done() {
        let queue = queue();
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.trigger("a");
        queue.trigger("b");
        assert_eq!(queue.next().await, Some("b"));
        assert_eq!(next_within_a_minute(&queue).await, None);
        queue.done(
            &"a",
            Outcome::Succeeded {
                requeue_after: None,
            },
        );
        assert_eq!(
            next_within_a_minute(&queue).await,
            Some("a"),
            "a trigger while running is kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_resets_the_backoff() {
        let queue = queue();
        queue.trigger("a");
        let mut delays = Vec::new();
        for _ in 0..5 {
            assert_eq!(queue.next().await, Some("a"));
            let failed_at = Instant::now();
            queue.done(&"a", Outcome::Failed);
            assert_eq!(queue.next().await, Some("a"));
            delays.push(failed_at.elapsed().as_secs());
            queue.done(&"a", Outcome::Failed);
            queue.trigger("a");
        }
        // Each round fails twice; the second wait of each round is the one measured, and a
        // trigger after a failure runs at once (a change may fix what failed).
        assert_eq!(delays, [1, 4, 8, 8, 8]);

        assert_eq!(queue.next().await, Some("a"));
        queue.done(
            &"a",
            Outcome::Succeeded {
                requeue_after: None,
            },
        );
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(
            queue.done(&"a", Outcome::Failed),
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn resync_does_not_pull_forward_a_key_waiting_out_its_backoff() {
        let queue = queue();
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.done(&"a", Outcome::Failed);
        queue.resync(["a", "b"]);
        assert_eq!(queue.next().await, Some("b"));
        let before = Instant::now();
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(before.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_after_brings_a_key_back_and_an_earlier_trigger_wins() {
        let queue = queue();
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.done(
            &"a",
            Outcome::Succeeded {
                requeue_after: Some(Duration::from_secs(30)),
            },
        );
        let start = Instant::now();
        queue.trigger_after("a", Duration::from_secs(2));
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        queue.done(
            &"a",
            Outcome::Succeeded {
                requeue_after: Some(Duration::from_secs(30)),
            },
        );
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_secs(32));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_out_in_the_order_they_became_due() {
        let queue = queue();
        queue.trigger_after("late", Duration::from_secs(3));
        queue.trigger_after("early", Duration::from_secs(1));
        queue.trigger_after("middle", Duration::from_secs(2));
        let mut order = Vec::new();
        for _ in 0..3 {
            let key = queue.next().await.unwrap();
            queue.done(
                &key,
                Outcome::Succeeded {
                    requeue_after: None,
                },
            );
            order.push(key);
        }
        assert_eq!(order, ["early", "middle", "late"]);
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_a_key_drops_its_trigger_and_backoff() {
        let queue = queue();
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.done(&"a", Outcome::Failed);
        queue.done(&"a", Outcome::Failed);
        queue.forget(&"a");
        assert_eq!(queue.depth().waiting, 0);
        assert_eq!(next_within_a_minute(&queue).await, None);
        queue.trigger("a");
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(
            queue.done(&"a", Outcome::Failed),
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_queue_hands_out_nothing_and_wakes_its_consumer() {
        let queue = queue();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(waiting.await.unwrap(), None);
        queue.trigger("a");
        assert_eq!(queue.next().await, None);
    }
}
