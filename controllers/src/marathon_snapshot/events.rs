//! Keeping the snapshot fresh from Marathon's event stream: events name the apps to re-read,
//! and every (re)connection relists, since Marathon does not replay what was missed.
//!
//! What it promises: the stream is read on a thread of its own that only hands the parts it
//! reads to a second thread, which decodes them and queues the events in a
//! [`Backlog`](super::backlog::Backlog) bounded by app, so reading never waits on decoding
//! or applying (nor on a relist, a re-read or a subscriber) and Marathon never cuts the
//! stream for falling behind because the controller was slow. An app's events are applied in the order
//! they came. A task or health event is applied in place when the snapshot embeds
//! tasks (see [`task_events`](super::task_events)); any other event about an app in scope
//! marks it dirty, as does a task event the picture cannot take, unless it tells nothing new
//! (see [`deployment_events`](super::deployment_events)); events about an app the controller
//! is creating that the picture cannot take yet wait for the create's answer and are applied
//! after it, in order (see [`Parked`](super::picture::Parked)); dirty apps are re-read one
//! `GET /v2/apps/{id}` each, at most [`REFRESH_BATCH`] per round and
//! [`CONCURRENT_REFRESHES`] at once, never by a full list, so however many apps change at
//! once the number of full lists stays that of (re)connections and resyncs; a re-read that
//! fails is retried after a pause even if no further event comes, or, while Marathon is
//! unreachable, once it is reachable again. The stream is reconnected with a backoff capped
//! at [`PROBE_MAX_DELAY`], and Marathon is reported unreachable while it cannot be: during an
//! outage those connection attempts are the only requests, however many apps or keys wait,
//! and Marathon's return is noticed within about that delay.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, stream};
use theseus::marathon::{AppId, Embed, Event, EventDecoder, EventKind};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::backlog::{AppBacklog, Batch};
use super::deployment_events;
use super::task_events::{self, Applied};
use super::{
    APPLIED_EVENTS, MarathonPicture, MarathonSnapshot, Reachability, RelistReason, SnapshotChange,
};

/// The most dirty apps taken for one round of re-reads: events about the rest (and new
/// ones about these) are batched into the next round.
const REFRESH_BATCH: usize = 256;
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

/// Bytes of the stream read and not decoded yet, at most: past it, the reader waits. About
/// 40,000 events, more than a rollout of 10,000 tasks sends; held only while the decoder is
/// behind.
const UNDECODED_BYTES: usize = 16 << 20;

/// What the reader hands the decoder, in the order it happened.
enum Undecoded {
    /// A new connection: what follows is decoded from its start. `broken` ends it.
    Connected {
        url: reqwest::Url,
        broken: CancellationToken,
    },
    /// A part of the body, with the snapshot's clock when it was read.
    Part { read: u64, part: Vec<u8> },
}

impl MarathonSnapshot {
    /// Follows Marathon's event stream until `stop`: relists on every (re)connect, applies
    /// task events in place, marks the apps other events name as dirty, and re-reads dirty
    /// apps. Reconnects with backoff; marks Marathon unreachable while it cannot connect.
    ///
    /// The stream is read on a thread of its own, with a runtime of its own, that only hands
    /// what it reads to a thread that decodes it into the [`Backlog`]: decoding, applying
    /// (and every Marathon request) happen elsewhere, and however busy the workers are, the
    /// reader is not queued behind them, so a slow controller never makes Marathon cut the
    /// stream.
    pub async fn follow_events(self: Arc<Self>, stop: CancellationToken) {
        // The reader stops with `stop`, and also when this future is dropped (a term lost).
        let reader_stop = stop.child_token();
        let _stop_reader = reader_stop.clone().drop_guard();
        let reader = tokio::task::spawn_blocking({
            let snapshot = Arc::clone(&self);
            move || match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("marathon-events")
                .build()
            {
                Ok(runtime) => runtime.block_on(Arc::clone(&snapshot).read_events(reader_stop)),
                // No thread to spare: read on the shared runtime rather than not at all.
                Err(error) => {
                    warn!(%error, "cannot start the event stream's own runtime");
                    tokio::runtime::Handle::current().block_on(snapshot.read_events(reader_stop))
                }
            }
        });
        tokio::join!(
            self.apply_events(stop.clone()),
            self.refresh_dirty(stop.clone()),
            self.probe(stop)
        );
        if let Err(error) = reader.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
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

    /// Reads the stream and hands its parts, as they arrive, to a thread that decodes them
    /// into the backlog ([`MarathonSnapshot::decode_events`]): no decoding, no lock of the
    /// picture, no Marathon request, no subscriber runs here, so reading keeps up with
    /// Marathon however little CPU is left to decode and apply. Each part is stamped as read:
    /// the events it completes are stamped with it.
    async fn read_events(self: Arc<Self>, stop: CancellationToken) {
        // Connections of its own, made and driven on the reader's runtime.
        let client = self.client.with_own_connections().unwrap_or_else(|error| {
            warn!(%error, "cannot build a client of its own for the event stream");
            self.client.clone()
        });
        let (parts, read) = tokio::sync::mpsc::unbounded_channel();
        // One permit per byte read and not decoded yet.
        let room = Arc::new(tokio::sync::Semaphore::new(UNDECODED_BYTES));
        let decoder = tokio::task::spawn_blocking({
            let snapshot = Arc::clone(&self);
            let room = Arc::clone(&room);
            move || snapshot.decode_events(read, &room)
        });
        let backoff_policy = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(PROBE_MAX_DELAY)
            .without_max_times();
        let mut backoff = backoff_policy.build();
        'connecting: loop {
            let connected = tokio::select! {
                () = stop.cancelled() => break,
                // Light plans (the client's default): full ones carry every app twice, in
                // every deployment event.
                connected = client.event_body(EVENT_KINDS) => connected,
            };
            let mut body = match connected {
                Ok(body) => body,
                Err(error) => {
                    let error = Arc::new(error);
                    self.set_reachability(Reachability::Unreachable(Arc::clone(&error)));
                    let delay = backoff.next().unwrap_or(PROBE_MAX_DELAY);
                    debug!(%error, ?delay, "cannot connect to Marathon's event stream");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            info!(url = %body.url(), "following Marathon's event stream");
            self.stream_connected
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // Events before this point are lost for good: only a fresh list tells the truth.
            // The decoder marks it in its turn, after what the last connection brought.
            let broken = CancellationToken::new();
            if parts
                .send(Undecoded::Connected {
                    url: body.url().clone(),
                    broken: broken.clone(),
                })
                .is_err()
            {
                break;
            }
            let mut delivered = false;
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => break 'connecting,
                    () = broken.cancelled() => break,
                    next = body.next_part() => next,
                };
                match next {
                    Ok(Some(part)) => {
                        if !delivered {
                            delivered = true;
                            backoff = backoff_policy.build();
                        }
                        let read = self.clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        let bytes = part.len().min(UNDECODED_BYTES);
                        match room
                            .acquire_many(u32::try_from(bytes).unwrap_or(u32::MAX))
                            .await
                        {
                            // Given back by the decoder once it decoded the part.
                            Ok(permits) => permits.forget(),
                            Err(_) => break 'connecting,
                        }
                        if parts.send(Undecoded::Part { read, part }).is_err() {
                            break 'connecting;
                        }
                    }
                    Err(error) => {
                        warn!(%error, "Marathon's event stream failed; reconnecting");
                        break;
                    }
                    Ok(None) => {
                        info!("Marathon's event stream ended; reconnecting");
                        break;
                    }
                }
            }
            self.stream_connected
                .store(false, std::sync::atomic::Ordering::SeqCst);
            let delay = backoff.next().unwrap_or(PROBE_MAX_DELAY);
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        drop(parts);
        if let Err(error) = decoder.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    /// Decodes what [`MarathonSnapshot::read_events`] read, in the order it was read, into
    /// the backlog, until the reader stops; gives back `room` for each part taken, and
    /// closes it when it stops (so a reader never waits on a decoder that is gone). A part
    /// that does not decode (the stream's framing broke) ends its connection: the reader
    /// reconnects.
    fn decode_events(
        &self,
        mut read: tokio::sync::mpsc::UnboundedReceiver<Undecoded>,
        room: &tokio::sync::Semaphore,
    ) {
        struct Close<'a>(&'a tokio::sync::Semaphore);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = Close(room);
        let mut decoder: Option<(EventDecoder, CancellationToken)> = None;
        while let Some(undecoded) = read.blocking_recv() {
            match undecoded {
                Undecoded::Connected { url, broken } => {
                    decoder = Some((EventDecoder::new(url), broken));
                    self.backlog.relist();
                }
                Undecoded::Part { read, part } => {
                    room.add_permits(part.len().min(UNDECODED_BYTES));
                    let Some((decoder, broken)) = decoder.as_mut() else {
                        continue;
                    };
                    decoder.push(&part);
                    while let Some(decoded) = decoder.next_event() {
                        match decoded {
                            Ok(event) => self.queue_read_event(read, event),
                            Err(error) => {
                                warn!(%error, "Marathon's event stream failed; reconnecting");
                                broken.cancel();
                            }
                        }
                    }
                }
            }
        }
    }

    /// Hands an event to the backlog, by the apps in scope it is about, stamped now.
    #[cfg(test)]
    pub(super) fn queue_event(&self, event: Event) {
        let received = self.clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.queue_read_event(received, event);
    }

    /// Hands an event to the backlog, by the apps in scope it is about, stamped `received`:
    /// when it was read from the stream, so that a read of the app that begins after it
    /// shows what it says.
    fn queue_read_event(&self, received: u64, event: Event) {
        self.metrics.marathon_event();
        let apps: Vec<AppId> = event
            .affected_apps()
            .into_iter()
            .filter(|id| (self.config.in_scope)(id))
            .cloned()
            .collect();
        match apps.as_slice() {
            [] => {
                if event.affected_apps().is_empty()
                    && let Some(deployment) = event.deployment_id()
                {
                    // A deployment event without its plan: the apps that deployment was
                    // changing are found in the picture when it is applied.
                    self.backlog.push_deployment(deployment.clone());
                }
            }
            [app] => self.backlog.push(app, received, event),
            [rest @ .., last] => {
                for app in rest {
                    self.backlog.push(app, received, event.clone());
                }
                self.backlog.push(last, received, event);
            }
        }
        self.metrics
            .marathon_event_backlog_peak(self.backlog.peak());
    }

    /// Applies what the reader queued, a batch at a time: relists first if the stream
    /// (re)connected, then every app's events in order.
    async fn apply_events(&self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.backlog.ready() => {}
            }
            let batch = self.backlog.take();
            if batch.is_empty() {
                continue;
            }
            if batch.relist
                && let Err(error) = self.relist(RelistReason::Reconnect).await
            {
                // The probe relists once Marathon answers again.
                warn!(%error, "cannot list Marathon's apps after connecting to its events");
            }
            self.apply_batch(batch);
        }
    }

    /// Applies one batch of events to the picture; tells listeners which apps changed.
    pub(super) fn apply_batch(&self, batch: Batch) {
        let mut changed = Vec::new();
        let mut dirty = Vec::new();
        for (app, pending) in batch.apps {
            let events = match pending {
                AppBacklog::Reread => {
                    dirty.push(app);
                    continue;
                }
                AppBacklog::Events(events) => events,
            };
            let mut state = self.state();
            // Events about an app being created wait, in order, for the create's answer.
            if let Some(parked) = state
                .creating
                .get_mut(&app)
                .filter(|parked| !parked.is_empty())
            {
                parked.park(events);
                continue;
            }
            let (app_changed, rest) = self.apply_in_order(&mut state, &app, events);
            if let Some(rest) = rest {
                match state.creating.get_mut(&app) {
                    Some(parked) => parked.park(rest),
                    // The re-read shows what the rest of its events say.
                    None => dirty.push(app.clone()),
                }
            }
            if app_changed {
                changed.push(app);
            }
        }
        if !batch.deployments.is_empty() {
            let state = self.state();
            for deployment in &batch.deployments {
                dirty.extend(
                    state
                        .entries
                        .iter()
                        .filter(|(_, entry)| {
                            entry
                                .app
                                .as_ref()
                                .is_some_and(|app| app.deployment_ids().any(|d| d == deployment))
                        })
                        .map(|(id, _)| id.clone()),
                );
            }
        }
        if !changed.is_empty() {
            fail::fail_point!(APPLIED_EVENTS);
        }
        self.publish(SnapshotChange::Apps(changed));
        if !dirty.is_empty() {
            let mut state = self.state();
            self.reread(&mut state, dirty);
        }
    }

    /// Applies `events` about `app` in order, skipping those a read that began later already
    /// shows; whether the picture changed, and the events from the first the picture could
    /// not take on (`None` when it took them all).
    pub(super) fn apply_in_order(
        &self,
        state: &mut MarathonPicture,
        app: &AppId,
        events: Vec<(u64, Event)>,
    ) -> (bool, Option<Vec<(u64, Event)>>) {
        let mut changed = false;
        let mut events = events.into_iter();
        while let Some((received, event)) = events.next() {
            // A read that began after the event was read from the stream already shows
            // it, or something newer: applying it now would take the picture back.
            if state
                .entries
                .get(app)
                .is_some_and(|entry| entry.read_began > received)
            {
                self.metrics.snapshot_task_event("overtaken");
                continue;
            }
            match self.apply_event(state, app, &event, received) {
                Applied::Changed(_) => changed = true,
                Applied::Unchanged => {}
                Applied::Reread(_) => {
                    let rest = std::iter::once((received, event)).chain(events).collect();
                    return (changed, Some(rest));
                }
            }
        }
        (changed, None)
    }

    /// What one event, read from the stream at clock `received`, does to `app`'s picture:
    /// task events change it in place when the snapshot embeds tasks, deployment and API
    /// events when it embeds deployments (see [`deployment_events`]); any other event asks
    /// for the app to be re-read.
    fn apply_event(
        &self,
        state: &mut MarathonPicture,
        app: &AppId,
        event: &Event,
        received: u64,
    ) -> Applied {
        if self.tracks_tasks()
            && task_events::task_event_app(event).is_some()
            && let Some(applied) = task_events::apply(state, event, received)
        {
            self.metrics.snapshot_task_event(applied.label());
            return applied;
        }
        if self.config.embeds.contains(&Embed::Deployments)
            && let Some(applied) = deployment_events::apply(state, app, event, received)
        {
            self.metrics.snapshot_deployment_event(applied.label());
            return applied;
        }
        Applied::Reread(app.clone())
    }

    /// Applies one event at once, as the reader and applier together would.
    #[cfg(test)]
    pub(super) fn on_event(&self, event: &Event) {
        self.queue_event(event.clone());
        self.apply_batch(self.backlog.take());
    }

    async fn refresh_dirty(&self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.dirty_added.notified() => {}
            }
            // Events that arrive while this round reads are batched into the next one.
            let dirty: Vec<AppId> = {
                let mut state = self.state();
                let round: Vec<AppId> = state.dirty.iter().take(REFRESH_BATCH).cloned().collect();
                for id in &round {
                    state.dirty.remove(id);
                }
                state.rereading += round.len();
                self.count_rereads(&state);
                if !state.dirty.is_empty() {
                    self.dirty_added.notify_one();
                }
                round
            };
            if dirty.is_empty() {
                continue;
            }
            let failed: Vec<AppId> = stream::iter(dirty)
                .map(|id| async move {
                    let refreshed = self.refresh(&id).await;
                    {
                        let mut state = self.state();
                        state.rereading = state.rereading.saturating_sub(1);
                        self.count_rereads(&state);
                    }
                    match refreshed {
                        Ok(_) => None,
                        Err(error) => {
                            debug!(app = %id, %error, "cannot re-read an app after an event");
                            self.note_failure(&Arc::new(error));
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

    /// Publishes how many re-reads events asked for are not finished.
    /// Marks `apps` to be re-read, and wakes the re-reader.
    pub(super) fn reread(
        &self,
        state: &mut MarathonPicture,
        apps: impl IntoIterator<Item = AppId>,
    ) {
        state.dirty.extend(apps);
        self.count_rereads(state);
        self.dirty_added.notify_one();
    }

    fn count_rereads(&self, state: &MarathonPicture) {
        self.metrics
            .snapshot_rereads_pending(state.dirty.len() + state.rereading);
    }

    /// Keeps `apps` dirty and reads them again after a pause, whether or not more events
    /// come (no event may come again for them); while Marathon is unreachable, only once it
    /// is reachable again, so an outage costs no re-read per app.
    async fn retry_later(&self, apps: Vec<AppId>, stop: &CancellationToken) {
        {
            let mut state = self.state();
            state.dirty.extend(apps);
            self.count_rereads(&state);
        }
        let unreachable = self.reachability() != Reachability::Reachable;
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.wait_reachable(), if unreachable => self.dirty_added.notify_one(),
            () = tokio::time::sleep(REFRESH_RETRY), if !unreachable => self.dirty_added.notify_one(),
        }
    }
}
