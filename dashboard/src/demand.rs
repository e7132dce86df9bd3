//! The feed runs while someone looks: the first page, API read or event stream starts the
//! one watch of etcd; once the last event stream has closed and no page was asked for
//! during the idle timeout, the watch stops and the picture is dropped.
//!
//! A [`Demand`] moves through four phases, each move under one lock:
//!
//! - `Idle`: no watch, no store, an empty model. A request ([`Demand::want`]) marks the
//!   picture as connecting (never current) before its handler reads it, and moves to
//!   `Wanted`.
//! - `Wanted`: the supervisor ([`supervise`]) is starting a run of the feed; it moves to
//!   `Watching`.
//! - `Watching`: the feed runs. Requests only note their time. With no open event stream
//!   ([`Viewer`]) and no request for the idle timeout, the supervisor ends the run: the
//!   pages are told the picture is no longer current, and it moves to `Stopping`.
//! - `Stopping`: the feed is being stopped; a request now only asks for a new run. Once
//!   the feed has ended, the model, the store and the probe are dropped, and the phase is
//!   `Idle`, or `Wanted` again when a request came meanwhile.
//!
//! What it promises: one run at a time (a new one starts only after the last has
//! ended, so one feed per process however many viewers); nothing is watched, held or asked
//! of etcd in `Idle`; a page never shows a picture as current that no running watch keeps
//! current. What it does not: count pages that are open but hold no event stream (a fleet
//! read once over `/api/fleet` counts for the idle timeout only).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use theseus::store::{EtcdConfig, Layout};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::feed::{self, Picture};

/// How long the feed goes on after the last page closed, unless configured otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the dashboard's demand stands, as [`DemandObserver`] and [`Demand::status`] tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemandStatus {
    /// Event streams open now (one per open page).
    pub viewers: usize,
    /// Whether a run of the feed runs (starting, watching or stopping).
    pub watching: bool,
}

/// Told each change of [`DemandStatus`] (a hosting process's metrics, for example); called
/// under the demand's lock, so it must only record.
pub trait DemandObserver: Send + Sync + 'static {
    /// The status now.
    fn demand_changed(&self, status: DemandStatus);
}

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DemandPhase {
    Idle,
    Wanted,
    Watching,
    Stopping { wanted_again: bool },
}

/// What the demand's lock guards.
struct DemandState {
    phase: DemandPhase,
    viewers: usize,
    /// The last request, or the last event stream's end.
    last_wanted: Instant,
    idle_timeout: Duration,
    observer: Option<Arc<dyn DemandObserver>>,
}

impl DemandState {
    fn status(&self) -> DemandStatus {
        DemandStatus {
            viewers: self.viewers,
            watching: self.phase != DemandPhase::Idle,
        }
    }
}

/// Who wants the feed, and whether it runs; see the module documentation.
pub struct Demand {
    picture: Arc<Picture>,
    state: Mutex<DemandState>,
    /// Wakes the supervisor: a first request, an event stream's end.
    wake: Notify,
}

impl std::fmt::Debug for Demand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demand")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Demand {
    /// Nobody looks yet: no run, `idle_timeout` after the last viewer.
    pub fn new(picture: Arc<Picture>, idle_timeout: Duration) -> Demand {
        Demand {
            picture,
            state: Mutex::new(DemandState {
                phase: DemandPhase::Idle,
                viewers: 0,
                last_wanted: Instant::now(),
                idle_timeout,
                observer: None,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DemandState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the feed goes on after the last viewer went.
    pub fn set_idle_timeout(&self, idle_timeout: Duration) {
        self.lock().idle_timeout = idle_timeout;
        self.wake.notify_one();
    }

    /// Tells `observer` every change from now on, starting with the status now.
    pub fn set_observer(&self, observer: Arc<dyn DemandObserver>) {
        let mut state = self.lock();
        observer.demand_changed(state.status());
        state.observer = Some(observer);
    }

    /// Viewers and whether the feed runs, now.
    pub fn status(&self) -> DemandStatus {
        self.lock().status()
    }

    /// A page, an API read or an action was asked for: the feed runs from now on for at
    /// least the idle timeout. When nothing ran, the picture says *connecting* before this
    /// returns, so the request's answer is never taken for current.
    pub fn want(&self) {
        let mut state = self.lock();
        state.last_wanted = Instant::now();
        match state.phase {
            DemandPhase::Idle => {
                // Idle → Wanted: the supervisor starts a run.
                self.picture.begin();
                state.phase = DemandPhase::Wanted;
                notify(&state);
                self.wake.notify_one();
            }
            DemandPhase::Stopping { .. } => {
                // Stopping → Stopping: start again once the old run has ended.
                state.phase = DemandPhase::Stopping { wanted_again: true };
            }
            DemandPhase::Wanted | DemandPhase::Watching => {}
        }
    }

    /// An event stream opens: the feed runs at least until it closes (and the idle timeout
    /// after). Call [`Demand::want`] first.
    pub fn viewer(self: &Arc<Self>) -> Viewer {
        let mut state = self.lock();
        state.viewers += 1;
        notify(&state);
        Viewer(Arc::clone(self))
    }
}

fn notify(state: &DemandState) {
    if let Some(observer) = &state.observer {
        observer.demand_changed(state.status());
    }
}

/// An open event stream; the feed runs while one is held.
#[derive(Debug)]
pub struct Viewer(Arc<Demand>);

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.viewers -= 1;
        state.last_wanted = Instant::now();
        notify(&state);
        drop(state);
        self.0.wake.notify_one();
    }
}

/// Starts one run of the feed, which ends when the token is cancelled.
pub trait FeedRun: Send + Sync + 'static {
    /// Runs the feed until `stop`.
    fn start(&self, stop: CancellationToken) -> JoinHandle<()>;
}

/// The feed of etcd under a layout: what every dashboard runs.
pub struct EtcdFeed {
    /// Where the feed writes.
    pub picture: Arc<Picture>,
    /// How to reach etcd.
    pub config: EtcdConfig,
    /// Which keys.
    pub layout: Layout,
}

impl FeedRun for EtcdFeed {
    fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(feed::run(
            Arc::clone(&self.picture),
            self.config.clone(),
            self.layout.clone(),
            stop,
        ))
    }
}

/// Starts and stops runs of the feed as `demand` wants them, until `stop`; see the
/// module documentation.
pub async fn supervise(demand: Arc<Demand>, feed_run: impl FeedRun, stop: CancellationToken) {
    loop {
        // Idle (or Wanted): wait for a first request.
        loop {
            let woken = demand.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if demand.lock().phase == DemandPhase::Wanted {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = woken => {}
            }
        }
        // Wanted → Watching.
        let ending = stop.child_token();
        let feed = feed_run.start(ending.clone());
        demand.lock().phase = DemandPhase::Watching;
        info!("a page is open: the dashboard watches etcd");
        let stopped = watch_while_wanted(&demand, &stop).await;
        // Watching → Stopping happened under the lock (or the dashboard stops).
        ending.cancel();
        let _ = feed.await;
        // Stopping → Idle, or Wanted when a request came meanwhile.
        let mut state = demand.lock();
        demand.picture.forget();
        state.phase = match state.phase {
            DemandPhase::Stopping { wanted_again: true } if !stopped => {
                demand.picture.begin();
                DemandPhase::Wanted
            }
            _ => DemandPhase::Idle,
        };
        notify(&state);
        drop(state);
        if stopped {
            return;
        }
        info!("no page is open: the dashboard stopped watching etcd and dropped its picture");
    }
}

/// Waits while the feed is wanted; `true` when `stop` ended it instead.
async fn watch_while_wanted(demand: &Demand, stop: &CancellationToken) -> bool {
    loop {
        let woken = demand.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let deadline = {
            let mut state = demand.lock();
            if state.viewers > 0 {
                None
            } else {
                let deadline = state.last_wanted + state.idle_timeout;
                if Instant::now() >= deadline {
                    // Watching → Stopping: from here on nothing shown is current.
                    state.phase = DemandPhase::Stopping {
                        wanted_again: false,
                    };
                    demand.picture.end();
                    return false;
                }
                Some(deadline)
            }
        };
        let idle = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return true,
            () = woken => {}
            () = idle => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts runs started and running, instead of watching etcd.
    #[derive(Default, Clone)]
    struct Counted {
        started: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
    }

    impl FeedRun for Counted {
        fn start(&self, stop: CancellationToken) -> JoinHandle<()> {
            self.started.fetch_add(1, Ordering::SeqCst);
            self.running.fetch_add(1, Ordering::SeqCst);
            let running = Arc::clone(&self.running);
            tokio::spawn(async move {
                stop.cancelled().await;
                running.fetch_sub(1, Ordering::SeqCst);
            })
        }
    }

    const IDLE: Duration = Duration::from_secs(300);

    fn setup() -> (Arc<Demand>, Counted, CancellationToken, JoinHandle<()>) {
        let picture = Arc::new(Picture::new(Layout::default()));
        let demand = Arc::new(Demand::new(picture, IDLE));
        let feed_run = Counted::default();
        let stop = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(
            Arc::clone(&demand),
            feed_run.clone(),
            stop.clone(),
        ));
        (demand, feed_run, stop, supervisor)
    }

    /// Lets the supervisor run what is due without moving the clock.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_runs_until_someone_looks() {
        let (demand, feed_run, stop, supervisor) = setup();
        tokio::time::sleep(IDLE * 10).await;
        assert_eq!(feed_run.started.load(Ordering::SeqCst), 0);
        assert!(!demand.status().watching);
        demand.want();
        settle().await;
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 1);
        stop.cancel();
        supervisor.await.unwrap();
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_feed_stops_an_idle_timeout_after_the_last_viewer_and_not_before() {
        let (demand, feed_run, _stop, _supervisor) = setup();
        demand.want();
        let first = demand.viewer();
        let second = demand.viewer();
        settle().await;
        // Open pages keep it running however long they stay.
        tokio::time::sleep(IDLE * 3).await;
        drop(first);
        tokio::time::sleep(IDLE * 3).await;
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 1);
        drop(second);
        tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
        // A read of the API moves the end on.
        demand.want();
        tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 1);
        assert!(demand.status().watching);
        tokio::time::sleep(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 0);
        assert_eq!(
            demand.status(),
            DemandStatus {
                viewers: 0,
                watching: false
            }
        );
        assert_eq!(feed_run.started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn many_viewers_share_one_run_of_the_feed_and_a_returning_one_starts_a_new_one() {
        let (demand, feed_run, _stop, _supervisor) = setup();
        let viewers: Vec<Viewer> = (0..20)
            .map(|_| {
                demand.want();
                demand.viewer()
            })
            .collect();
        settle().await;
        assert_eq!(feed_run.started.load(Ordering::SeqCst), 1);
        assert_eq!(demand.status().viewers, 20);
        drop(viewers);
        tokio::time::sleep(IDLE + Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 0);
        demand.want();
        let _back = demand.viewer();
        settle().await;
        assert_eq!(feed_run.started.load(Ordering::SeqCst), 2);
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_while_stopping_starts_again_once_the_old_run_ended() {
        let (demand, feed_run, _stop, _supervisor) = setup();
        demand.want();
        settle().await;
        {
            let mut state = demand.lock();
            state.last_wanted = Instant::now() - IDLE;
        }
        // The supervisor decides to stop; a request comes before the old run ended.
        demand.wake.notify_one();
        tokio::task::yield_now().await;
        demand.want();
        settle().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(feed_run.started.load(Ordering::SeqCst), 2);
        assert_eq!(feed_run.running.load(Ordering::SeqCst), 1);
        assert!(demand.status().watching);
    }
}
