//! The runner: takes keys from a [`WorkQueue`] and reconciles them on a bounded number of
//! workers (the shape of kube-runtime's `controller::runner` and its error policy).
//!
//! What it promises:
//! - At most `workers` reconciles run at once, and never two of one key (the queue's promise,
//!   kept because a key is handed back only when its reconcile has finished).
//! - Every reconcile's end is told to the queue: success resets the key's backoff (and
//!   requeues it if the reconciler asked), an error or a panic backs the key off. Each end is
//!   counted in [`Metrics`] with the error's [`MetricLabel`].
//! - When `stop` is cancelled, no new key is taken; reconciles in flight get `drain` to finish
//!   and are then dropped (abandoned at their next await point). Dropping the runner's future
//!   abandons them at once: that is how a replica that lost leadership stops acting.
//!
//! What it does not do: decide what a reconcile does, or retry inside one.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::metrics::{MetricLabel, Metrics};
use super::queue::{Outcome, QueueKey, WorkQueue};

/// What a successful reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: come back when something changes (or at the next resync).
    Done,
    /// Come back after this long even if nothing changes (e.g. waiting for a lock).
    RequeueAfter(Duration),
}

/// How a runner works.
#[derive(Debug, Clone, Copy)]
pub struct RunnerConfig {
    /// The controller's name in metrics and logs, e.g. `deployments`.
    pub controller: &'static str,
    /// Reconciles that may run at once (at least 1).
    pub workers: usize,
    /// How long reconciles in flight may take to finish once `stop` is cancelled.
    pub drain: Duration,
}

/// How a reconcile ended, as its task returns it.
struct Finished<E> {
    result: Result<Action, E>,
    took: Duration,
}

/// Runs reconciles of the keys `queue` hands out until `stop` is cancelled or the queue is
/// closed; see the module documentation.
pub async fn run<K, F, Fut, E>(
    queue: WorkQueue<K>,
    config: RunnerConfig,
    metrics: Arc<Metrics>,
    reconcile: F,
    stop: CancellationToken,
) where
    K: QueueKey,
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + MetricLabel + Send + 'static,
{
    let workers = config.workers.max(1);
    let mut in_flight: JoinSet<Finished<E>> = JoinSet::new();
    let mut keys: HashMap<Id, K> = HashMap::new();
    loop {
        let depth = queue.depth();
        metrics.queue_depth(config.controller, depth.waiting, depth.running);
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(joined) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                finish(&queue, &config, &metrics, &mut keys, joined);
            }
            key = queue.next(), if in_flight.len() < workers => {
                let Some(key) = key else { break };
                let span = info_span!("reconcile", controller = config.controller, key = %key);
                let work = reconcile(key.clone());
                let handle = in_flight.spawn(
                    async move {
                        let started = Instant::now();
                        let result = work.await;
                        Finished { result, took: started.elapsed() }
                    }
                    .instrument(span),
                );
                keys.insert(handle.id(), key);
            }
        }
    }

    // Stop taking work; give what runs `drain` to finish, then abandon it.
    let deadline = Instant::now() + config.drain;
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, in_flight.join_next_with_id()).await {
            Ok(Some(joined)) => finish(&queue, &config, &metrics, &mut keys, joined),
            Ok(None) => break,
            Err(_) => {
                warn!(
                    controller = config.controller,
                    abandoned = in_flight.len(),
                    "reconciles did not finish within the drain period; abandoning them"
                );
                in_flight.abort_all();
                // Aborted tasks end at their next poll; hand their keys back.
                while let Some(joined) = in_flight.join_next_with_id().await {
                    finish(&queue, &config, &metrics, &mut keys, joined);
                }
                break;
            }
        }
    }
    let depth = queue.depth();
    metrics.queue_depth(config.controller, depth.waiting, depth.running);
}

fn finish<K, E>(
    queue: &WorkQueue<K>,
    config: &RunnerConfig,
    metrics: &Metrics,
    keys: &mut HashMap<Id, K>,
    joined: Result<(Id, Finished<E>), tokio::task::JoinError>,
) where
    K: QueueKey,
    E: std::error::Error + MetricLabel,
{
    let (id, finished) = match joined {
        Ok((id, finished)) => (id, Ok(finished)),
        Err(error) => (error.id(), Err(error)),
    };
    let Some(key) = keys.remove(&id) else {
        return;
    };
    match finished {
        Ok(Finished {
            result: Ok(action),
            took,
        }) => {
            metrics.reconciled(config.controller, None, took);
            let requeue_after = match action {
                Action::Done => None,
                Action::RequeueAfter(after) => Some(after),
            };
            queue.done(&key, Outcome::Succeeded { requeue_after });
        }
        Ok(Finished {
            result: Err(error),
            took,
        }) => {
            metrics.reconciled(config.controller, Some(error.metric_label()), took);
            let retry_in = queue.done(&key, Outcome::Failed);
            warn!(
                controller = config.controller,
                key = %key,
                error = %ErrorChain(&error),
                retry_in = ?retry_in,
                "reconcile failed"
            );
        }
        Err(join_error) if join_error.is_cancelled() => {
            // Aborted while draining; the key is retried by whoever runs next.
            debug!(controller = config.controller, key = %key, "reconcile abandoned");
            queue.done(&key, Outcome::Failed);
        }
        Err(join_error) => {
            metrics.reconciled(config.controller, Some("panic"), Duration::ZERO);
            let retry_in = queue.done(&key, Outcome::Failed);
            warn!(
                controller = config.controller,
                key = %key,
                error = %join_error,
                retry_in = ?retry_in,
                "reconcile panicked"
            );
        }
    }
}

/// An error with its sources, `a: b: c`, for one-line logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // thiserror messages often embed their source already; do not repeat it.
            if !self.0.to_string().contains(&text) {
                write!(f, ": {text}")?;
            }
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::runtime::queue::Backoff;

    #[derive(Debug, thiserror::Error)]
    #[error("it failed")]
    struct ReconcileFailure;

    impl MetricLabel for ReconcileFailure {
        fn metric_label(&self) -> &'static str {
            "failure"
        }
    }

    fn queue() -> WorkQueue<u32> {
        WorkQueue::new(Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: false,
        })
    }

    /// Counts reconciles running at once, overall and per key.
    #[derive(Default)]
    struct Concurrency {
        running: Mutex<HashSet<u32>>,
        now: AtomicUsize,
        most: AtomicUsize,
        twice: AtomicUsize,
        done: AtomicUsize,
    }

    impl Concurrency {
        fn enter(&self, key: u32) {
            if !self.running.lock().unwrap().insert(key) {
                self.twice.fetch_add(1, Ordering::SeqCst);
            }
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
        }

        fn leave(&self, key: u32) {
            self.running.lock().unwrap().remove(&key);
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn config(workers: usize) -> RunnerConfig {
        RunnerConfig {
            controller: "test",
            workers,
            drain: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_n_keys_run_at_once_and_never_one_key_twice() {
        let queue = queue();
        let seen = Arc::new(Concurrency::default());
        let stop = CancellationToken::new();
        let runner = tokio::spawn(run(
            queue.clone(),
            config(3),
            Arc::new(Metrics::new()),
            {
                let seen = Arc::clone(&seen);
                move |key: u32| {
                    let seen = Arc::clone(&seen);
                    async move {
                        seen.enter(key);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        seen.leave(key);
                        Ok::<_, ReconcileFailure>(Action::Done)
                    }
                }
            },
            stop.clone(),
        ));
        // Ten keys, each triggered again while it runs.
        for round in 0..5 {
            for key in 0..10 {
                queue.trigger(key);
            }
            tokio::time::sleep(Duration::from_millis(3 + round)).await;
        }
        while queue.depth() != Default::default() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        runner.await.unwrap();
        assert_eq!(
            seen.twice.load(Ordering::SeqCst),
            0,
            "one key ran twice at once"
        );
        assert_eq!(
            seen.most.load(Ordering::SeqCst),
            3,
            "the worker bound was not used or not kept"
        );
        assert!(seen.done.load(Ordering::SeqCst) >= 10);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_panics_are_retried_with_backoff_and_counted() {
        let queue = queue();
        let attempts = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(Metrics::new());
        let stop = CancellationToken::new();
        let runner = tokio::spawn(run(
            queue.clone(),
            config(2),
            Arc::clone(&metrics),
            {
                let attempts = Arc::clone(&attempts);
                move |_key: u32| {
                    let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        match attempt {
                            0 => Err(ReconcileFailure),
                            1 => panic!("a reconcile bug"),
                            _ => Ok(Action::Done),
                        }
                    }
                }
            },
            stop.clone(),
        ));
        let start = Instant::now();
        queue.trigger(7);
        while attempts.load(Ordering::SeqCst) < 3 || queue.depth().running > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The first retry waits 1 s, the second 2 s.
        assert!(start.elapsed() >= Duration::from_secs(3));
        stop.cancel();
        runner.await.unwrap();
        let text = metrics.encode();
        assert!(text.contains("error=\"failure\"} 1"), "{text}");
        assert!(text.contains("error=\"panic\"} 1"), "{text}");
        assert!(text.contains("result=\"success\"} 1"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_lets_reconciles_in_flight_finish_and_takes_no_new_key() {
        let queue = queue();
        let finished = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let runner = tokio::spawn(run(
            queue.clone(),
            config(1),
            Arc::new(Metrics::new()),
            {
                let finished = Arc::clone(&finished);
                let started = Arc::clone(&started);
                move |_key: u32| {
                    let finished = Arc::clone(&finished);
                    started.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ReconcileFailure>(Action::Done)
                    }
                }
            },
            stop.clone(),
        ));
        queue.trigger(1);
        queue.trigger(2);
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        stop.cancel();
        runner.await.unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_outlives_the_drain_period_is_abandoned() {
        let queue = queue();
        let finished = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let runner = tokio::spawn(run(
            queue.clone(),
            config(1),
            Arc::new(Metrics::new()),
            {
                let finished = Arc::clone(&finished);
                move |_key: u32| {
                    let finished = Arc::clone(&finished);
                    async move {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ReconcileFailure>(Action::Done)
                    }
                }
            },
            stop.clone(),
        ));
        queue.trigger(1);
        while queue.depth().running == 0 {
            tokio::task::yield_now().await;
        }
        stop.cancel();
        runner.await.unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert_eq!(
            queue.depth().running,
            0,
            "the abandoned key was handed back"
        );
    }
}
