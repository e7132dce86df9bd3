//! Keeping the snapshot fresh from Marathon's event stream: events name the apps to re-read,
//! and every (re)connection relists, since Marathon does not replay what was missed.
//!
//! What it promises: a task or health event is applied in place when the snapshot embeds
//! tasks (see [`task_events`](super::task_events)); any other event about an app in scope
//! marks it dirty, as does a task event the picture cannot take; dirty apps are re-read
//! one `GET /v2/apps/{id}` each, or by one relist when many are dirty at once; a re-read that
//! fails is retried after a pause even if no further event comes, or, while Marathon is
//! unreachable, once it is reachable again. The stream is reconnected with a backoff capped
//! at [`PROBE_MAX_DELAY`], and Marathon is reported unreachable while it cannot be: during an
//! outage those connection attempts are the only requests, however many apps or keys wait,
//! and Marathon's return is noticed within about that delay.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, stream};
use theseus::marathon::{AppId, Event, EventKind};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::task_events::{self, Applied};
use super::{Change, MarathonSnapshot, Reachability, RelistReason};

/// Above this many dirty apps, one relist is cheaper than reading each.
const RELIST_ABOVE_DIRTY: usize = 16;
/// Apps re-read at once after events.
const CONCURRENT_REFRESHES: usize = 8;
/// Pause before re-reading apps whose re-read failed while Marathon was reachable.
const REFRESH_RETRY: Duration = Duration::from_millis(500);
/// The longest pause between attempts to reconnect the event stream: while Marathon is
/// down, about one request a second, and its return is seen within about a second.
pub(super) const PROBE_MAX_DELAY: Duration = Duration::from_secs(1);

/// The event types that can change what the snapshot holds.
const EVENT_KINDS: &[EventKind] = &[
    EventKind::StatusUpdate,
    EventKind::InstanceChanged,
    EventKind::HealthStatusChanged,
    EventKind::InstanceHealthChanged,
    EventKind::FailedHealthCheck,
    EventKind::UnhealthyTaskKill,
    EventKind::UnhealthyInstanceKill,
    EventKind::DeploymentInfo,
    EventKind::DeploymentStepSuccess,
    EventKind::DeploymentStepFailure,
    EventKind::DeploymentSuccess,
    EventKind::DeploymentFailed,
    EventKind::ApiPost,
    EventKind::AppTerminated,
];

impl MarathonSnapshot {
    /// Follows Marathon's event stream until `stop`: relists on every (re)connect, marks the
    /// apps events name as dirty, and re-reads dirty apps. Reconnects with backoff; marks
    /// Marathon unreachable while it cannot connect.
    pub async fn follow_events(&self, stop: CancellationToken) {
        tokio::join!(
            self.read_events(stop.clone()),
            self.refresh_dirty(stop.clone()),
            self.probe(stop)
        );
    }

    /// While Marathon is unreachable and the event stream stays connected (a Marathon whose
    /// API fails while its open stream lingers), relists with a backoff capped at
    /// [`PROBE_MAX_DELAY`] until one succeeds. With the stream disconnected, its own
    /// reconnection attempts are the probe.
    async fn probe(&self, stop: CancellationToken) {
        let mut reachable = self.reachable.subscribe();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                unreachable = reachable.wait_for(|reachable| !*reachable) => {
                    if unreachable.is_err() {
                        return;
                    }
                }
            }
            let mut delays = ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(PROBE_MAX_DELAY)
                .without_max_times()
                .build();
            while self.reachability() != Reachability::Reachable {
                let delay = delays.next().unwrap_or(PROBE_MAX_DELAY);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                if self
                    .stream_connected
                    .load(std::sync::atomic::Ordering::SeqCst)
                    && self.reachability() != Reachability::Reachable
                    && let Err(error) = self.relist(RelistReason::Probe).await
                {
                    debug!(%error, ?delay, "Marathon still does not answer");
                }
            }
        }
    }

    async fn read_events(&self, stop: CancellationToken) {
        let backoff_policy = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(PROBE_MAX_DELAY)
            .without_max_times();
        let mut backoff = backoff_policy.build();
        loop {
            let connected = tokio::select! {
                () = stop.cancelled() => return,
                // Light plans (the client's default): full ones carry every app twice, in
                // every deployment event.
                connected = self.client.events(EVENT_KINDS) => connected,
            };
            let mut events = match connected {
                Ok(events) => events,
                Err(error) => {
                    self.set_reachability(Reachability::Unreachable(error.to_string()));
                    let delay = backoff.next().unwrap_or(PROBE_MAX_DELAY);
                    debug!(%error, ?delay, "cannot connect to Marathon's event stream");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            info!(url = %events.url(), "following Marathon's event stream");
            self.stream_connected
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // Events before this point are lost for good: only a fresh list tells the truth.
            if let Err(error) = self.relist(RelistReason::Reconnect).await {
                warn!(%error, "cannot list Marathon's apps after connecting to its events");
            } else {
                backoff = backoff_policy.build();
            }
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = events.next() => next,
                };
                match next {
                    Some(Ok(event)) => self.on_event(&event),
                    Some(Err(error)) => {
                        warn!(%error, "Marathon's event stream failed; reconnecting");
                        break;
                    }
                    None => {
                        info!("Marathon's event stream ended; reconnecting");
                        break;
                    }
                }
            }
            self.stream_connected
                .store(false, std::sync::atomic::Ordering::SeqCst);
            let delay = backoff.next().unwrap_or(PROBE_MAX_DELAY);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    pub(super) fn on_event(&self, event: &Event) {
        self.metrics.marathon_event();
        if self.tracks_tasks()
            && let Some(app) = task_events::task_event_app(event)
        {
            if !(self.config.in_scope)(app) {
                return;
            }
            let applied = task_events::apply(&mut self.state(), event);
            if let Some(applied) = applied {
                self.metrics.snapshot_task_event(applied.label());
                match applied {
                    Applied::Changed(app) => self.publish(Change::Apps(vec![app])),
                    Applied::Unchanged => {}
                    Applied::Reread(app) => {
                        self.state().dirty.insert(app);
                        self.dirty_added.notify_one();
                    }
                }
                return;
            }
        }
        let mut apps: Vec<AppId> = event
            .affected_apps()
            .into_iter()
            .filter(|id| (self.config.in_scope)(id))
            .cloned()
            .collect();
        let mut state = self.state();
        if apps.is_empty()
            && let Some(deployment) = event.deployment_id()
        {
            // A deployment event without its plan: the apps that deployment was changing.
            apps = state
                .entries
                .iter()
                .filter(|(_, entry)| {
                    entry
                        .app
                        .as_ref()
                        .is_some_and(|app| app.deployment_ids().any(|d| d == deployment))
                })
                .map(|(id, _)| id.clone())
                .collect();
        }
        if apps.is_empty() {
            return;
        }
        state.dirty.extend(apps);
        drop(state);
        self.dirty_added.notify_one();
    }

    async fn refresh_dirty(&self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.dirty_added.notified() => {}
            }
            // Events that arrive while this round reads are batched into the next one.
            let dirty: Vec<AppId> = std::mem::take(&mut self.state().dirty)
                .into_iter()
                .collect();
            if dirty.is_empty() {
                continue;
            }
            if dirty.len() > RELIST_ABOVE_DIRTY {
                if let Err(error) = self.relist(RelistReason::Events).await {
                    warn!(%error, "cannot relist Marathon after events");
                    self.retry_later(dirty, &stop).await;
                }
                continue;
            }
            let failed: Vec<AppId> = stream::iter(dirty)
                .map(|id| async move {
                    match self.refresh(&id).await {
                        Ok(_) => None,
                        Err(error) => {
                            debug!(app = %id, %error, "cannot re-read an app after an event");
                            self.note_failure(&error);
                            Some(id)
                        }
                    }
                })
                .buffer_unordered(CONCURRENT_REFRESHES)
                .filter_map(|failed| async move { failed })
                .collect()
                .await;
            if !failed.is_empty() {
                self.retry_later(failed, &stop).await;
            }
        }
    }

    /// Keeps `apps` dirty and reads them again after a pause, whether or not more events
    /// come (no event may come again for them); while Marathon is unreachable, only once it
    /// is reachable again, so an outage costs no re-read per app.
    async fn retry_later(&self, apps: Vec<AppId>, stop: &CancellationToken) {
        self.state().dirty.extend(apps);
        let unreachable = self.reachability() != Reachability::Reachable;
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.wait_reachable(), if unreachable => self.dirty_added.notify_one(),
            () = tokio::time::sleep(REFRESH_RETRY), if !unreachable => self.dirty_added.notify_one(),
        }
    }
}
