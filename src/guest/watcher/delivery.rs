//! Delivering one service's endpoints to its hook: debounced, one run at a time, always
//! ending on the latest state.
//!
//! The watcher publishes a service's endpoints into a `tokio::sync::watch` channel, which
//! holds only the newest value. One delivery task per service:
//!
//! 1. waits for the first state and runs the hook with it at once (everything `added`);
//! 2. then, on each change, waits until the endpoints have been quiet for
//!    [`Debounce::quiet`], but never longer than [`Debounce::max_delay`] after the first
//!    change of the burst, and runs the hook with the newest state against the one it
//!    delivered last; a burst that ends where it started runs nothing;
//! 3. awaits the run before it looks again, so runs of one service never overlap, and a change
//!    during a run is delivered after it (the channel kept only the newest).
//!
//! A failed run is reported and counts as delivered: the next change runs the hook again,
//! with the change from the state the failed run was given.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::change::{Change, Endpoints};
use super::hook::{Hook, HookOutcome};
use crate::guest::Node;

/// Default [`Debounce::quiet`].
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// How changes of a service are gathered into one run of its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// A burst is over once its endpoints have not changed for this long.
    pub quiet: Duration,
    /// A burst that keeps changing is delivered this long after its first change.
    pub max_delay: Duration,
}

impl Debounce {
    /// Quiet period `quiet`, bounded at four times that.
    pub fn new(quiet: Duration) -> Debounce {
        Debounce {
            quiet,
            max_delay: quiet * 4,
        }
    }
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce::new(DEFAULT_DEBOUNCE)
    }
}

/// Runs `hook` for every change of `service`'s endpoints published on `states`, until
/// `shutdown` fires (terminating a run in progress) or the publisher is gone.
pub(crate) async fn deliver<H: Hook>(
    service: String,
    mut states: watch::Receiver<Option<Endpoints>>,
    hook: Arc<H>,
    debounce: Debounce,
    shutdown: CancellationToken,
) {
    let mut delivered: Option<Vec<Node>> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
        }
        // The first state is a consistent snapshot: no burst to wait out.
        if delivered.is_some() && !settle(&mut states, debounce, &shutdown).await {
            return;
        }
        let Some(current) = states.borrow_and_update().clone() else {
            continue;
        };
        if delivered.as_deref() == Some(current.nodes.as_slice()) {
            continue;
        }
        let change = Change::between(&service, delivered.as_deref(), &current);
        let started = Instant::now();
        let outcome = hook.run(&change, &shutdown).await;
        report(&change, &outcome, started.elapsed());
        if outcome == HookOutcome::Stopped || shutdown.is_cancelled() {
            return;
        }
        delivered = Some(current.nodes);
    }
}

/// Waits out a burst of changes; false when shutdown fired meanwhile.
async fn settle(
    states: &mut watch::Receiver<Option<Endpoints>>,
    debounce: Debounce,
    shutdown: &CancellationToken,
) -> bool {
    let first = Instant::now();
    let mut last = first;
    loop {
        let until = (last + debounce.quiet).min(first + debounce.max_delay);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            changed = states.changed() => match changed {
                Ok(()) => last = Instant::now(),
                // The publisher is gone: deliver what it left.
                Err(_) => return true,
            },
            () = tokio::time::sleep_until(until) => return true,
        }
    }
}

fn report(change: &Change, outcome: &HookOutcome, took: Duration) {
    let took = humantime::format_duration(Duration::from_millis(took.as_millis() as u64));
    let (service, revision, delta, nodes) = (
        change.service.as_str(),
        change.revision,
        change.delta,
        change.nodes.len(),
    );
    match outcome {
        HookOutcome::Succeeded => {
            tracing::info!(service, revision, delta, nodes, %took, "hook ran");
        }
        HookOutcome::Failed {
            status,
            stderr_tail,
        } => {
            tracing::error!(
                service,
                revision,
                delta,
                nodes,
                %took,
                %status,
                stderr = %stderr_tail,
                "hook failed ({status}); it runs again on the next change"
            );
        }
        HookOutcome::NotStarted { reason } => {
            tracing::error!(service, revision, delta, %reason, "hook could not start; it is tried again on the next change");
        }
        HookOutcome::Stopped => {
            tracing::warn!(service, revision, %took, "hook terminated: the watcher is shutting down");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// A hook that reports each run and, when told to, holds it until released.
    struct Recorder {
        runs: mpsc::UnboundedSender<(Change, Option<oneshot::Sender<()>>)>,
        hold: bool,
        running: Mutex<usize>,
        most_at_once: Mutex<usize>,
    }

    impl Hook for Recorder {
        async fn run(&self, change: &Change, shutdown: &CancellationToken) -> HookOutcome {
            {
                let mut running = self.running.lock().unwrap();
                *running += 1;
                let mut most = self.most_at_once.lock().unwrap();
                *most = (*most).max(*running);
            }
            let outcome = if self.hold {
                let (release, released) = oneshot::channel();
                self.runs.send((change.clone(), Some(release))).unwrap();
                tokio::select! {
                    _ = released => HookOutcome::Succeeded,
                    () = shutdown.cancelled() => HookOutcome::Stopped,
                }
            } else {
                self.runs.send((change.clone(), None)).unwrap();
                HookOutcome::Succeeded
            };
            *self.running.lock().unwrap() -= 1;
            outcome
        }
    }

    struct Harness {
        publish: watch::Sender<Option<Endpoints>>,
        runs: mpsc::UnboundedReceiver<(Change, Option<oneshot::Sender<()>>)>,
        hook: Arc<Recorder>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        revision: i64,
    }

    impl Harness {
        fn start(hold: bool, debounce: Debounce) -> Harness {
            let (publish, states) = watch::channel(None);
            let (runs_tx, runs) = mpsc::unbounded_channel();
            let hook = Arc::new(Recorder {
                runs: runs_tx,
                hold,
                running: Mutex::new(0),
                most_at_once: Mutex::new(0),
            });
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(deliver(
                "svc".into(),
                states,
                hook.clone(),
                debounce,
                shutdown.clone(),
            ));
            Harness {
                publish,
                runs,
                hook,
                shutdown,
                task,
                revision: 0,
            }
        }

        /// Publishes endpoints made of the tasks `ids`.
        fn publish(&mut self, ids: &[&str]) {
            self.revision += 1;
            let nodes = ids
                .iter()
                .map(|id| Node {
                    task_id: id.to_string(),
                    deployment: "dev".into(),
                    host: "10.0.0.1".into(),
                    ip_addresses: vec![],
                    ports: BTreeMap::new(),
                    labels: vec![],
                })
                .collect();
            self.publish.send_replace(Some(Endpoints {
                revision: self.revision,
                nodes,
            }));
        }

        async fn next_run(&mut self) -> (Change, Option<oneshot::Sender<()>>) {
            self.runs.recv().await.expect("the delivery task runs")
        }

        /// No run is pending once every timer has fired.
        async fn assert_no_run(&mut self) {
            // With the clock paused, sleeping past every deadline lets all timers fire.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert!(self.runs.try_recv().is_err(), "an unexpected run");
        }
    }

    fn ids(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|n| n.task_id.as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_state_is_delivered_at_once_with_everything_added() {
        let mut h = Harness::start(false, Debounce::new(Duration::from_millis(250)));
        let start = Instant::now();
        h.publish(&["a", "b"]);
        let (change, _) = h.next_run().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(ids(&change.added), ["a", "b"]);
        assert_eq!(change.delta, 2);
        h.assert_no_run().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_first_state_is_delivered_too() {
        let mut h = Harness::start(false, Debounce::default());
        h.publish(&[]);
        let (change, _) = h.next_run().await;
        assert_eq!(change.delta, 0);
        assert!(change.nodes.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_delivered_once_after_it_has_been_quiet() {
        let quiet = Duration::from_millis(250);
        let mut h = Harness::start(false, Debounce::new(quiet));
        h.publish(&["a"]);
        h.next_run().await;
        let start = Instant::now();
        h.publish(&["a", "b"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.publish(&["a", "b", "c"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.publish(&["b", "c", "d"]);
        let (change, _) = h.next_run().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200) + quiet);
        assert_eq!(ids(&change.added), ["b", "c", "d"]);
        assert_eq!(ids(&change.removed), ["a"]);
        assert_eq!(change.delta, 2);
        assert_eq!(change.revision, 4);
        h.assert_no_run().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_never_settles_is_delivered_at_the_maximum_delay() {
        let debounce = Debounce {
            quiet: Duration::from_millis(250),
            max_delay: Duration::from_secs(1),
        };
        let mut h = Harness::start(false, debounce);
        h.publish(&["a"]);
        h.next_run().await;
        let start = Instant::now();
        let mut n = 0;
        let run = loop {
            n += 1;
            let id = format!("t{n}");
            h.publish(&["a", &id]);
            tokio::select! {
                run = h.next_run() => break run,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        assert_eq!(start.elapsed(), debounce.max_delay);
        assert_eq!(run.0.nodes.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_ends_where_it_started_runs_nothing() {
        let mut h = Harness::start(false, Debounce::default());
        h.publish(&["a"]);
        h.next_run().await;
        h.publish(&["a", "b"]);
        h.publish(&["a"]);
        h.assert_no_run().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runs_never_overlap_and_the_latest_state_follows_a_slow_run() {
        let mut h = Harness::start(true, Debounce::new(Duration::from_millis(10)));
        h.publish(&["a"]);
        let (first, release) = h.next_run().await;
        assert_eq!(ids(&first.nodes), ["a"]);
        // While the first run is held, the endpoints change many times.
        for ids in [&["a", "b"][..], &["a", "b", "c"], &["c"], &["c", "d"]] {
            h.publish(ids);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        h.assert_no_run().await;
        release.unwrap().send(()).unwrap();
        let (second, release) = h.next_run().await;
        // One run for all of it, against what the first run was given.
        assert_eq!(ids(&second.nodes), ["c", "d"]);
        assert_eq!(ids(&second.added), ["c", "d"]);
        assert_eq!(ids(&second.removed), ["a"]);
        assert_eq!(second.delta, 1);
        release.unwrap().send(()).unwrap();
        h.assert_no_run().await;
        assert_eq!(*h.hook.most_at_once.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_a_run_in_progress_and_the_delivery() {
        let mut h = Harness::start(true, Debounce::default());
        h.publish(&["a"]);
        let (_, _release) = h.next_run().await;
        h.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), &mut h.task)
            .await
            .expect("the delivery ends on shutdown")
            .unwrap();
    }
}
