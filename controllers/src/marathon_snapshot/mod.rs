//! The controller's picture of Marathon's apps: one list call fills it, Marathon's event
//! stream says which apps to re-read, and the controller's own writes update it at once.
//!
//! What it promises:
//! - [`MarathonSnapshot::relist`] makes exactly one `GET /v2/apps?label=…&embed=…` call. A
//!   periodic resync of converged deployments therefore costs one Marathon call in all, not
//!   one per app.
//! - Events about apps (deployments, API changes, terminations) mark the app dirty unless
//!   the picture already knows what they say ([`deployment_events`]), and
//!   [`MarathonSnapshot::follow_events`] re-reads dirty apps, one `GET /v2/apps/{id}` each,
//!   however many there are: a full list happens only when the picture is unknown (the first
//!   list of a term, every (re)connection of the stream, since Marathon does not replay
//!   events, the periodic resync, and the probe of a Marathon that stopped answering).
//! - When the snapshot embeds tasks, task and health events are applied in place
//!   ([`task_events`]): a task starting, running, failing or turning healthy costs no
//!   Marathon call. A list or read that began before such an event keeps what the event
//!   said about its task; an event the picture cannot take makes the app dirty instead.
//! - The controller's own writes are applied from Marathon's answers ([`record_created`],
//!   [`record_updated`], …) before the write's reconcile ends. Reads are applied in the order
//!   they began, and one that began before such a write replaces what the write recorded only
//!   if it shows the write's app version or a newer one; so the next reconcile of that app
//!   never acts on a picture older than its own last write, and a deployment Marathon finished
//!   before the write's answer arrived is not missed. After a write whose outcome is unknown
//!   (a timeout), the app is marked stale and must be re-read first.
//! - Apps outside the label selector (an app someone else created with a deployment's id) are
//!   kept once read individually, survive relists, and are re-read at each resync.
//! - Its [`changes`] stream tells which apps changed, and when Marathon became reachable or
//!   unreachable, in order; a listener far behind hears that it missed changes.
//!   The embeds are configurable, so the observed-tasks reconciler can share one snapshot
//!   (with `Embed::Tasks`) with the deployments reconciler.
//!
//! [`record_created`]: MarathonSnapshot::record_created
//! [`record_updated`]: MarathonSnapshot::record_updated

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};

use theseus::marathon::app::{DeploymentRef, Version};
use theseus::marathon::task::InstanceId;
use theseus::marathon::{
    App, AppCreated, AppId, AppQuery, DeploymentId, DeploymentResult, Embed, Error, MarathonClient,
    TaskId,
};
use tokio::sync::{Notify, broadcast};
use tracing::{debug, info, warn};

use crate::runtime::metrics::Metrics;

mod backlog;
mod deployment_events;
mod events;
mod task_events;

/// Whether Marathon answered the last attempt to list its apps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reachability {
    /// Never listed yet.
    #[default]
    Unknown,
    /// The last list succeeded.
    Reachable,
    /// The last list (or event stream connection) failed with this error.
    Unreachable(String),
}

/// What changed in the snapshot, as its [`MarathonSnapshot::changes`] tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These apps appeared, changed or disappeared.
    Apps(Vec<AppId>),
    /// Marathon became reachable or unreachable: everything may read differently.
    Reachability(Reachability),
    /// The controller itself created, updated, scaled or deleted this app, and the picture
    /// now says what the write did. Whoever made the write knows; others (the task records
    /// of a deleted app, say) may have work to do.
    Written(AppId),
    /// The listener fell so far behind that changes were dropped before it heard them: any
    /// app may have changed.
    Missed,
}

/// Why a relist happened, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelistReason {
    /// The first list of a leadership term.
    Initial,
    /// The periodic resync.
    Resync,
    /// The event stream (re)connected; events in between may be lost.
    Reconnect,
    /// A request failed as if Marathon were down while the event stream stayed connected:
    /// a probe of whether it answers.
    Probe,
}

impl RelistReason {
    fn label(self) -> &'static str {
        match self {
            RelistReason::Initial => "initial",
            RelistReason::Resync => "resync",
            RelistReason::Reconnect => "reconnect",
            RelistReason::Probe => "probe",
        }
    }
}

/// What the snapshot lists and which apps it cares about.
#[derive(Clone)]
pub struct SnapshotConfig {
    /// The label selector of the list, e.g. `THESEUS_MANAGED==true`.
    pub selector: String,
    /// Nested resources to embed in every app read.
    pub embeds: Vec<Embed>,
    /// Whether an app id is one the controller manages (events about others are ignored).
    pub in_scope: Arc<dyn Fn(&AppId) -> bool + Send + Sync>,
}

impl fmt::Debug for SnapshotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotConfig")
            .field("selector", &self.selector)
            .field("embeds", &self.embeds)
            .finish_non_exhaustive()
    }
}

/// The failpoint after a batch of events changed the picture, before the change is told:
/// where a test holds the applier (the stream's reader goes on).
pub const APPLIED_EVENTS: &str = "marathon_snapshot::applied_events";

/// Changes published and not yet heard by every listener; a listener further behind hears
/// [`Change::Missed`] instead of what it missed.
const CHANGES_HELD: usize = 4096;

/// One app as the snapshot knows it.
#[derive(Debug, Clone)]
struct Entry {
    /// `None`: the controller deleted it (or its state is unknown, see `State::stale`).
    app: Option<Arc<App>>,
    /// The clock when what is here was learnt: the start of the read, or the write.
    stamp: u64,
    /// The start of the latest read that replaced what is here: an event read from the
    /// stream before it is already in the picture (or overtaken), and is not applied again.
    read_began: u64,
    /// Set when what is here is the controller's own write: the app version that write made,
    /// if Marathon said.
    written: Option<Option<Version>>,
    /// Read individually although the selector does not match it (someone else's app).
    foreign: bool,
    /// Tasks changed in place by events, with the clock when each was: a read that began
    /// earlier shows them as they were before.
    task_marks: HashMap<TaskId, u64>,
    /// When an event last set the app's last task failure.
    failure_mark: Option<u64>,
    /// Deployments events said ended, with the clock when each did: a read that began
    /// earlier, or a write recorded later, does not list them.
    ended: HashMap<DeploymentId, u64>,
    /// Instances Marathon said it launched (`Provisioned`) whose task the picture does not
    /// hold yet: when, and the clock when the event was applied. Their first status update
    /// takes that time as the task's `stagedAt`, as Marathon's own list shows it.
    provisioned: HashMap<InstanceId, (chrono::DateTime<chrono::Utc>, u64)>,
}

impl Entry {
    /// Whether a read that began at `started` and found `read` (`None`: no such app) may
    /// replace this entry. Reads are applied in the order they began, except that a read
    /// that began before the controller's write was recorded but already shows that write's
    /// version (or a newer one) is newer than the write: Marathon may finish a whole
    /// deployment, and send every event about it, before the write's answer arrives.
    fn accepts(&self, started: u64, read: Option<&App>) -> bool {
        if started > self.stamp {
            return true;
        }
        match (&self.written, read.and_then(|app| app.version.as_ref())) {
            (Some(Some(written)), Some(read)) => !version_before(read, written),
            _ => false,
        }
    }
}

/// Whether Marathon version `a` is older than `b`. Versions are RFC 3339 timestamps; ones
/// that do not parse are compared as text (Marathon's fixed format sorts as text too).
fn version_before(a: &Version, b: &Version) -> bool {
    let parse = |v: &Version| chrono::DateTime::parse_from_rfc3339(v.as_str()).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => a.as_str() < b.as_str(),
    }
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<AppId, Entry>,
    /// Ticks at the start of every read, at every recorded write and at every event read
    /// from the stream; orders them. Shared with the stream's reader, which stamps events
    /// without taking the picture's lock.
    clock: Arc<AtomicU64>,
    /// Apps whose state is unknown after a write whose outcome is unknown.
    stale: HashSet<AppId>,
    /// Apps named by events since they were last re-read.
    dirty: HashSet<AppId>,
    /// Apps of `dirty` being re-read now.
    rereading: usize,
    reachability: Reachability,
}

/// The shared snapshot; see the module documentation. Share it as `Arc<MarathonSnapshot>`.
pub struct MarathonSnapshot {
    client: MarathonClient,
    config: SnapshotConfig,
    state: Mutex<State>,
    dirty_added: Notify,
    /// Whether the last list succeeded, for those who wait until Marathon is back.
    reachable: tokio::sync::watch::Sender<bool>,
    /// Whether the event stream is connected now (its reconnection attempts are then not
    /// the probe of a Marathon that stopped answering requests).
    stream_connected: std::sync::atomic::AtomicBool,
    changes: broadcast::Sender<Change>,
    /// Events read from the stream and not applied yet.
    backlog: backlog::Backlog,
    /// The picture's clock (`State::clock`), for stamping events as they are read.
    clock: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for MarathonSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarathonSnapshot")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MarathonSnapshot {
    /// An empty snapshot, not listed yet.
    pub fn new(client: MarathonClient, config: SnapshotConfig, metrics: Arc<Metrics>) -> Self {
        let clock = Arc::new(AtomicU64::new(0));
        Self {
            client,
            config,
            state: Mutex::new(State {
                clock: Arc::clone(&clock),
                ..State::default()
            }),
            clock,
            dirty_added: Notify::new(),
            reachable: tokio::sync::watch::Sender::new(false),
            stream_connected: std::sync::atomic::AtomicBool::new(false),
            changes: broadcast::Sender::new(CHANGES_HELD),
            backlog: backlog::Backlog::default(),
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The snapshot's changes from now on, in the order they happened: which apps changed,
    /// and when Marathon became reachable or unreachable. A listener that falls more than
    /// [`CHANGES_HELD`] changes behind hears [`Change::Missed`] once in their place. The
    /// stream ends with the snapshot.
    pub fn changes(&self) -> impl futures::Stream<Item = Change> + Send + 'static {
        futures::stream::unfold(self.changes.subscribe(), |mut changes| async move {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => Change::Missed,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((change, changes))
        })
    }

    fn publish(&self, change: Change) {
        if matches!(&change, Change::Apps(apps) if apps.is_empty()) {
            return;
        }
        // Nobody listening is no error: a change matters only to those who listen.
        let _ = self.changes.send(change);
    }

    fn set_reachability(&self, reachability: Reachability) {
        let changed = {
            let mut state = self.state();
            let changed = state.reachability != reachability
                && !matches!(
                    (&state.reachability, &reachability),
                    (Reachability::Unreachable(_), Reachability::Unreachable(_))
                );
            state.reachability = reachability.clone();
            changed
        };
        if changed {
            match &reachability {
                Reachability::Unreachable(error) => warn!(%error, "Marathon is unreachable"),
                _ => info!("Marathon is reachable"),
            }
            self.reachable
                .send_replace(reachability == Reachability::Reachable);
            self.publish(Change::Reachability(reachability));
        }
    }

    /// Whether the snapshot holds every app's tasks (its embeds include `Embed::Tasks`).
    pub fn tracks_tasks(&self) -> bool {
        self.config.embeds.contains(&Embed::Tasks)
    }

    /// The client the snapshot reads with.
    pub fn client(&self) -> &MarathonClient {
        &self.client
    }

    /// Whether Marathon answered the last list.
    pub fn reachability(&self) -> Reachability {
        self.state().reachability.clone()
    }

    /// Takes note of a request that failed: one that did not reach Marathon or found it
    /// unable to answer marks it unreachable, so every reconcile waits for its return instead
    /// of sending requests of its own; whether it was such a failure.
    pub fn note_failure(&self, error: &Error) -> bool {
        let unreachable = matches!(
            error,
            Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::Transport { .. }
                | Error::Unavailable { .. }
        );
        if unreachable {
            self.set_reachability(Reachability::Unreachable(error.to_string()));
        }
        unreachable
    }

    /// Waits until Marathon answers a list (at once if the last one succeeded).
    pub async fn wait_reachable(&self) {
        let mut reachable = self.reachable.subscribe();
        // The sender lives as long as the snapshot, which outlives this borrow.
        let _ = reachable.wait_for(|reachable| *reachable).await;
    }

    /// The app with this id, as last read or written; `None` if it does not exist (or was
    /// never seen).
    pub fn app(&self, id: &AppId) -> Option<Arc<App>> {
        self.state().entries.get(id)?.app.clone()
    }

    /// Whether the app's state is unknown after a write whose outcome is unknown; re-read it
    /// with [`MarathonSnapshot::refresh`] before acting on it.
    pub fn is_stale(&self, id: &AppId) -> bool {
        self.state().stale.contains(id)
    }

    /// Every app the snapshot holds (owned or not).
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.state()
            .entries
            .values()
            .filter_map(|entry| entry.app.clone())
            .collect()
    }

    /// Lists Marathon's apps (one call) and replaces the picture, keeping what the
    /// controller wrote after the list began. Tells listeners which apps changed.
    pub async fn relist(&self, reason: RelistReason) -> Result<(), Error> {
        let began = self.state().tick();
        let query = AppQuery {
            id: None,
            label: Some(self.config.selector.clone()),
            embed: self.config.embeds.clone(),
        };
        let listed = self.client.list_apps(&query).await;
        self.metrics.snapshot_relisted(reason.label());
        let listed = match listed {
            Ok(apps) => apps,
            Err(error) => {
                self.set_reachability(Reachability::Unreachable(error.to_string()));
                return Err(error);
            }
        };
        let changed = {
            let mut state = self.state();
            let mut changed = Vec::new();
            let mut seen = HashSet::with_capacity(listed.len());
            for app in listed {
                if !(self.config.in_scope)(&app.id) {
                    continue;
                }
                seen.insert(app.id.clone());
                if let Some(id) = replace(&mut state, began, app, false) {
                    changed.push(id);
                }
            }
            // Not listed: gone, unless learnt after the list began (or someone else's).
            let gone: Vec<AppId> = state
                .entries
                .iter()
                .filter(|(id, entry)| !seen.contains(*id) && !entry.foreign && entry.stamp < began)
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                if state.entries.remove(&id).is_some_and(|e| e.app.is_some()) {
                    changed.push(id);
                }
            }
            // A stale app marked before the list began is now known from the list.
            let entries = &state.entries;
            let still_stale: HashSet<AppId> = state
                .stale
                .iter()
                .filter(|id| entries.get(*id).is_some_and(|e| e.stamp > began))
                .cloned()
                .collect();
            state.stale = still_stale;
            changed
        };
        debug!(
            reason = reason.label(),
            changed = changed.len(),
            "relisted Marathon"
        );
        self.set_reachability(Reachability::Reachable);
        self.publish(Change::Apps(changed));
        Ok(())
    }

    /// The app as the snapshot has it, re-read first if it is stale; the error text when
    /// Marathon's picture cannot be trusted (never listed yet, or unreachable).
    pub async fn current_app(&self, id: &AppId) -> Result<Option<Arc<App>>, String> {
        match self.reachability() {
            Reachability::Reachable => {}
            Reachability::Unknown => {
                return Err("Marathon has not answered the controller's first list yet".into());
            }
            Reachability::Unreachable(error) => return Err(error),
        }
        if self.is_stale(id) {
            return self.refresh(id).await.map_err(|error| {
                self.note_failure(&error);
                error.to_string()
            });
        }
        Ok(self.app(id))
    }

    /// Re-reads one app (one call), whether or not the selector matches it. Tells
    /// listeners if it changed; returns it.
    pub async fn refresh(&self, id: &AppId) -> Result<Option<Arc<App>>, Error> {
        let began = self.state().tick();
        self.metrics.snapshot_refreshed();
        let read = match self.client.get_app(id, &self.config.embeds).await {
            Ok(app) => Some(app),
            Err(Error::NotFound { .. }) => None,
            Err(error) => return Err(error),
        };
        let (changed, now) = {
            let mut state = self.state();
            let changed = match read {
                Some(app) => {
                    let foreign = !matches_selector(&app, &self.config.selector);
                    replace(&mut state, began, app, foreign)
                }
                None => match state.entries.get(id) {
                    Some(entry) if entry.accepts(began, None) => state
                        .entries
                        .remove(id)
                        .and_then(|e| e.app)
                        .map(|_| id.clone()),
                    _ => None,
                },
            };
            if state
                .entries
                .get(id)
                .is_none_or(|e| e.stamp <= began || e.written.is_none())
            {
                state.stale.remove(id);
            }
            (changed, state.entries.get(id).and_then(|e| e.app.clone()))
        };
        if let Some(changed) = changed {
            self.publish(Change::Apps(vec![changed]));
        }
        Ok(now)
    }

    /// Re-reads every app that was read individually although the selector does not match
    /// it, so a removed foreign app is noticed at the next resync.
    pub async fn refresh_foreign(&self) {
        let foreign: Vec<AppId> = self
            .state()
            .entries
            .iter()
            .filter(|(_, entry)| entry.foreign)
            .map(|(id, _)| id.clone())
            .collect();
        for id in foreign {
            if let Err(error) = self.refresh(&id).await {
                debug!(app = %id, %error, "cannot re-read a foreign app");
            }
        }
    }

    /// Records an app the controller created.
    pub fn record_created(&self, created: &AppCreated) {
        let mut app = created.app.clone();
        if self.tracks_tasks() && app.tasks.is_none() {
            // A new app has no task yet; its first events can then be applied in place.
            app.tasks = Some(Vec::new());
        }
        if let Some(id) = &created.deployment_id {
            add_deployment(&mut app, id);
        }
        let version = app.version.clone();
        self.record(app.id.clone(), version, |_| Some(Some(app)));
    }

    /// Records that the controller replaced an app's definition with `definition` and
    /// Marathon started `result`'s deployment.
    pub fn record_updated(&self, definition: &App, result: &DeploymentResult) {
        self.record(
            definition.id.clone(),
            Some(result.version.clone()),
            |previous| Some(Some(updated(previous, definition, result))),
        );
    }

    /// Records that the controller scaled an app to `instances`.
    pub fn record_scaled(&self, id: &AppId, instances: u32, result: &DeploymentResult) {
        self.record(id.clone(), Some(result.version.clone()), |previous| {
            previous.map(|previous| Some(scaled(previous, instances, result)))
        });
    }

    /// Records that the controller deleted an app (Marathon removes it from its group at
    /// once, while the deployment stops its tasks).
    pub fn record_deleted(&self, id: &AppId) {
        self.record(id.clone(), None, |_| Some(None));
    }

    /// Marks an app stale after a write whose outcome is unknown. Counts as a write: a list
    /// or read that began before it does not clear it.
    pub fn mark_stale(&self, id: &AppId) {
        let mut state = self.state();
        let stamp = state.tick();
        state.stale.insert(id.clone());
        let entry = state.entries.entry(id.clone()).or_insert(Entry {
            app: None,
            stamp,
            read_began: 0,
            written: None,
            foreign: false,
            task_marks: HashMap::new(),
            failure_mark: None,
            ended: HashMap::new(),
            provisioned: HashMap::new(),
        });
        entry.stamp = stamp;
        entry.written = Some(None);
    }

    /// Records a write of app `id` that made `version`: `build` turns what the picture holds
    /// then into what the write left (`Some(None)`: no app; `None`: the picture holds nothing
    /// the write could change, and nothing is recorded). It runs under the picture's lock, so
    /// an event applied while the write's answer was on its way is part of what it builds on.
    fn record(
        &self,
        id: AppId,
        version: Option<Version>,
        build: impl FnOnce(Option<&App>) -> Option<Option<App>>,
    ) {
        if self.record_locked(id.clone(), version, build) {
            self.publish(Change::Written(id));
        }
    }

    /// [`MarathonSnapshot::record`] under the lock; whether the write was recorded.
    fn record_locked(
        &self,
        id: AppId,
        version: Option<Version>,
        build: impl FnOnce(Option<&App>) -> Option<Option<App>>,
    ) -> bool {
        let mut state = self.state();
        let Some(app) = build(
            state
                .entries
                .get(&id)
                .and_then(|entry| entry.app.as_deref()),
        ) else {
            return false;
        };
        let stamp = state.tick();
        state.stale.remove(&id);
        // Events can beat a write's answer: an app read since then that already shows the
        // write's version (or a newer one) is newer than what the answer says.
        let read_newer = state
            .entries
            .get(&id)
            .and_then(|entry| entry.app.as_ref()?.version.as_ref())
            .zip(version.as_ref())
            .is_some_and(|(read, written)| !version_before(read, written));
        if read_newer {
            return true;
        }
        // What events said about tasks stays newer than any read that began before them.
        let (read_began, task_marks, failure_mark, mut ended, provisioned) = state
            .entries
            .remove(&id)
            .map(|entry| {
                (
                    entry.read_began,
                    entry.task_marks,
                    entry.failure_mark,
                    entry.ended,
                    entry.provisioned,
                )
            })
            .unwrap_or_default();
        // A deployment that ended before its write's answer came does not run again.
        let mut app = app;
        if let Some(app) = app.as_mut() {
            keep_what_is_read(app);
            deployment_events::drop_ended(app, &mut ended, 0);
        }
        state.entries.insert(
            id,
            Entry {
                app: app.map(Arc::new),
                stamp,
                read_began,
                written: Some(version),
                foreign: false,
                task_marks,
                failure_mark,
                ended,
                provisioned,
            },
        );
        true
    }
}

impl State {
    /// Advances the clock; the new time.
    fn tick(&mut self) -> u64 {
        self.clock.fetch_add(1, AtomicOrdering::SeqCst) + 1
    }
}

/// Puts `app`, found by a list or read that began at `started`, into the picture if the
/// entry there accepts it ([`Entry::accepts`]); the app's id if that changed what the
/// picture says.
fn replace(state: &mut State, started: u64, mut app: App, foreign: bool) -> Option<AppId> {
    keep_what_is_read(&mut app);
    let id = app.id.clone();
    match state.entries.get_mut(&id) {
        Some(entry) if !entry.accepts(started, Some(&app)) => None,
        Some(entry) => {
            task_events::merge_marked(
                &mut app,
                entry.app.as_deref(),
                &mut entry.task_marks,
                &mut entry.failure_mark,
                started,
            );
            deployment_events::drop_ended(&mut app, &mut entry.ended, started);
            // The read shows the tasks of instances provisioned before it began.
            entry.provisioned.retain(|_, (_, stamp)| *stamp > started);
            entry.foreign = foreign;
            entry.stamp = entry.stamp.max(started);
            entry.read_began = entry.read_began.max(started);
            entry.written = None;
            let changed = entry.app.as_deref() != Some(&app);
            if changed {
                entry.app = Some(Arc::new(app));
            }
            changed.then_some(id)
        }
        None => {
            state.entries.insert(
                id.clone(),
                Entry {
                    app: Some(Arc::new(app)),
                    stamp: started,
                    read_began: started,
                    written: None,
                    foreign,
                    task_marks: HashMap::new(),
                    failure_mark: None,
                    ended: HashMap::new(),
                    provisioned: HashMap::new(),
                },
            );
            Some(id)
        }
    }
}

/// Drops from `app` what no reconciler reads: the fields this client does not model, which
/// Marathon sends with every app and task (strategies, roles, secrets, …) and which are never
/// written back from the picture. At thousands of apps they are most of its memory.
fn keep_what_is_read(app: &mut App) {
    app.extra = Default::default();
    if let Some(container) = app.container.as_mut() {
        container.extra = Default::default();
    }
    if let Some(info) = app.version_info.as_mut() {
        info.extra = Default::default();
    }
    if let Some(failure) = app.last_task_failure.as_mut() {
        failure.extra = Default::default();
    }
    for task in app.tasks.iter_mut().flatten() {
        task.extra = Default::default();
    }
}

/// What an update of `previous` to `definition` leaves: the new definition, with the tasks,
/// counts, last failure and deployments the picture held (the update changes none of them
/// by itself), and the update's version and deployment.
fn updated(previous: Option<&App>, definition: &App, result: &DeploymentResult) -> App {
    let mut app = definition.clone();
    if let Some(previous) = previous {
        app.tasks_staged = previous.tasks_staged;
        app.tasks_running = previous.tasks_running;
        app.tasks_healthy = previous.tasks_healthy;
        app.tasks_unhealthy = previous.tasks_unhealthy;
        app.tasks = previous.tasks.clone();
        app.last_task_failure = previous.last_task_failure.clone();
        app.deployments = previous.deployments.clone();
    }
    app.version = Some(result.version.clone());
    add_deployment(&mut app, &result.deployment_id);
    app
}

/// What scaling `previous` to `instances` leaves.
fn scaled(previous: &App, instances: u32, result: &DeploymentResult) -> App {
    let mut app = previous.clone();
    app.instances = Some(instances);
    app.version = Some(result.version.clone());
    add_deployment(&mut app, &result.deployment_id);
    app
}

fn add_deployment(app: &mut App, id: &DeploymentId) {
    let deployments = app.deployments.get_or_insert_with(Vec::new);
    if !deployments.iter().any(|d| &d.id == id) {
        deployments.push(DeploymentRef { id: id.clone() });
    }
}

/// Whether `app` matches a selector of `KEY==value` terms (the only form the controller
/// uses); an app that does not was read individually and is foreign.
fn matches_selector(app: &App, selector: &str) -> bool {
    selector.split(',').all(|term| match term.split_once("==") {
        Some((key, value)) => app.label(key.trim()) == Some(value.trim()),
        None => app.label(term.trim()).is_some(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use futures::{FutureExt, StreamExt};
    use serde_json::{Value, json};
    use theseus::marathon::MarathonConfig;
    use tokio::sync::Semaphore;

    use super::*;

    /// A scripted Marathon: `GET /v2/apps` answers `listed` once `gate` lets it through;
    /// `GET /v2/apps/{id}` answers `single[id]` or 404.
    struct Scripted {
        listed: Mutex<Vec<Value>>,
        single: Mutex<HashMap<String, Value>>,
        gate: Semaphore,
        lists: AtomicUsize,
    }

    impl Default for Scripted {
        fn default() -> Self {
            Self {
                listed: Mutex::default(),
                single: Mutex::default(),
                gate: Semaphore::new(0),
                lists: AtomicUsize::new(0),
            }
        }
    }

    async fn list(State(marathon): State<Arc<Scripted>>) -> impl IntoResponse {
        marathon.lists.fetch_add(1, Ordering::SeqCst);
        marathon.gate.acquire().await.unwrap().forget();
        axum::Json(json!({"apps": *marathon.listed.lock().unwrap()}))
    }

    async fn one(
        State(marathon): State<Arc<Scripted>>,
        Path(id): Path<String>,
    ) -> axum::response::Response {
        match marathon.single.lock().unwrap().get(&format!("/{id}")) {
            Some(app) => axum::Json(json!({"app": app})).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": format!("App '/{id}' does not exist")})),
            )
                .into_response(),
        }
    }

    async fn start(marathon: Arc<Scripted>) -> MarathonClient {
        let app = Router::new()
            .route("/v2/apps", get(list))
            .route("/v2/apps/{*id}", get(one))
            .with_state(marathon);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MarathonClient::new(MarathonConfig::new(vec![url.parse().unwrap()])).unwrap()
    }

    fn snapshot(client: MarathonClient) -> Arc<MarathonSnapshot> {
        Arc::new(MarathonSnapshot::new(
            client,
            SnapshotConfig {
                selector: "THESEUS_MANAGED==true".into(),
                embeds: vec![Embed::Counts, Embed::Deployments],
                in_scope: Arc::new(|_| true),
            },
            Arc::new(Metrics::new()),
        ))
    }

    /// A snapshot that embeds tasks, as the controller's does.
    fn tasks_snapshot(client: MarathonClient) -> Arc<MarathonSnapshot> {
        Arc::new(MarathonSnapshot::new(
            client,
            SnapshotConfig {
                selector: "THESEUS_MANAGED==true".into(),
                embeds: vec![Embed::Counts, Embed::Tasks],
                in_scope: Arc::new(|_| true),
            },
            Arc::new(Metrics::new()),
        ))
    }

    fn managed(id: &str, hash: &str) -> Value {
        json!({"id": id, "instances": 1, "labels": {"THESEUS_MANAGED": "true", "THESEUS_SPEC_HASH": hash}})
    }

    fn id(text: &str) -> AppId {
        AppId::parse(text).unwrap()
    }

    /// What a listener has heard and not taken yet.
    fn heard(changes: &mut (impl futures::Stream<Item = Change> + Unpin)) -> Vec<Change> {
        let mut heard = Vec::new();
        while let Some(Some(change)) = changes.next().now_or_never() {
            heard.push(change);
        }
        heard
    }

    #[tokio::test]
    async fn a_listener_far_behind_hears_that_it_missed_changes() {
        let snapshot = snapshot(start(Arc::new(Scripted::default())).await);
        let mut changes = Box::pin(snapshot.changes());
        for _ in 0..=CHANGES_HELD {
            snapshot.publish(Change::Apps(vec![id("/a/x")]));
        }
        snapshot.publish(Change::Written(id("/a/y")));
        assert_eq!(changes.next().await, Some(Change::Missed));
        // What is still held follows the news of a miss, up to the latest change.
        let mut held = 0;
        loop {
            match changes.next().await.unwrap() {
                Change::Apps(apps) => assert_eq!(apps, [id("/a/x")]),
                Change::Written(app) => break assert_eq!(app, id("/a/y")),
                other => panic!("{other:?}"),
            }
            held += 1;
        }
        assert!(held < CHANGES_HELD, "{held} changes were held");
    }

    fn hash_of(snapshot: &MarathonSnapshot, app: &str) -> Option<String> {
        snapshot
            .app(&id(app))
            .and_then(|app| app.label("THESEUS_SPEC_HASH").map(str::to_owned))
    }

    #[tokio::test]
    async fn a_list_that_began_before_a_write_does_not_overwrite_it() {
        let marathon = Arc::new(Scripted::default());
        *marathon.listed.lock().unwrap() = vec![managed("/a/x", "old"), managed("/a/y", "old")];
        let snapshot = snapshot(start(Arc::clone(&marathon)).await);

        let listing = tokio::spawn({
            let snapshot = Arc::clone(&snapshot);
            async move { snapshot.relist(RelistReason::Resync).await }
        });
        while marathon.lists.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The list is in flight; the controller writes /a/x meanwhile.
        let written: App = serde_json::from_value(managed("/a/x", "new")).unwrap();
        snapshot.record_updated(
            &written,
            &DeploymentResult {
                deployment_id: DeploymentId::from("d1"),
                version: "2026-01-01T00:00:00.000Z".into(),
            },
        );
        marathon.gate.add_permits(1);
        listing.await.unwrap().unwrap();

        assert_eq!(hash_of(&snapshot, "/a/x").as_deref(), Some("new"));
        assert_eq!(hash_of(&snapshot, "/a/y").as_deref(), Some("old"));
        let x = snapshot.app(&id("/a/x")).unwrap();
        assert_eq!(
            x.deployment_ids().map(|d| d.as_str()).collect::<Vec<_>>(),
            ["d1"]
        );

        // A list that begins after the write tells the truth again.
        marathon.gate.add_permits(1);
        snapshot.relist(RelistReason::Resync).await.unwrap();
        assert_eq!(hash_of(&snapshot, "/a/x").as_deref(), Some("old"));
    }

    #[tokio::test]
    async fn a_read_that_began_before_a_write_but_shows_its_version_is_kept() {
        let marathon = Arc::new(Scripted::default());
        let mut finished = managed("/a/x", "new");
        finished["version"] = json!("2026-01-01T00:00:02.000Z");
        finished["deployments"] = json!([]);
        *marathon.listed.lock().unwrap() = vec![finished];
        let snapshot = snapshot(start(Arc::clone(&marathon)).await);

        let listing = tokio::spawn({
            let snapshot = Arc::clone(&snapshot);
            async move { snapshot.relist(RelistReason::Resync).await }
        });
        while marathon.lists.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Marathon finished the write's deployment before the write's answer was recorded.
        let written: App = serde_json::from_value(managed("/a/x", "new")).unwrap();
        snapshot.record_updated(
            &written,
            &DeploymentResult {
                deployment_id: DeploymentId::from("d1"),
                version: "2026-01-01T00:00:02.000Z".into(),
            },
        );
        assert_eq!(
            snapshot.app(&id("/a/x")).unwrap().deployment_ids().count(),
            1
        );
        marathon.gate.add_permits(1);
        listing.await.unwrap().unwrap();
        assert_eq!(
            snapshot.app(&id("/a/x")).unwrap().deployment_ids().count(),
            0,
            "the finished deployment was missed"
        );
    }

    #[tokio::test]
    async fn a_writes_answer_does_not_turn_back_a_read_that_already_shows_it() {
        let marathon = Arc::new(Scripted::default());
        let mut finished = managed("/a/x", "new");
        finished["version"] = json!("2026-01-01T00:00:02.000Z");
        finished["deployments"] = json!([]);
        marathon
            .single
            .lock()
            .unwrap()
            .insert("/a/x".into(), finished);
        let snapshot = snapshot(start(Arc::clone(&marathon)).await);

        // Events about the finished deployment were read before the write's answer came.
        snapshot.refresh(&id("/a/x")).await.unwrap();
        let written: App = serde_json::from_value(managed("/a/x", "new")).unwrap();
        snapshot.record_updated(
            &written,
            &DeploymentResult {
                deployment_id: DeploymentId::from("d1"),
                version: "2026-01-01T00:00:02.000Z".into(),
            },
        );
        assert_eq!(
            snapshot.app(&id("/a/x")).unwrap().deployment_ids().count(),
            0
        );
        // An answer for an older version than what was read is older still.
        snapshot.record_updated(
            &written,
            &DeploymentResult {
                deployment_id: DeploymentId::from("d0"),
                version: "2026-01-01T00:00:01.000Z".into(),
            },
        );
        assert_eq!(
            snapshot.app(&id("/a/x")).unwrap().deployment_ids().count(),
            0
        );
        // A newer one is news.
        snapshot.record_updated(
            &written,
            &DeploymentResult {
                deployment_id: DeploymentId::from("d3"),
                version: "2026-01-01T00:00:03.000Z".into(),
            },
        );
        assert_eq!(
            snapshot.app(&id("/a/x")).unwrap().deployment_ids().count(),
            1
        );
    }

    #[tokio::test]
    async fn an_updates_answer_keeps_what_events_said_before_it_came() {
        let marathon = Arc::new(Scripted::default());
        let snapshot = Arc::new(MarathonSnapshot::new(
            start(Arc::clone(&marathon)).await,
            SnapshotConfig {
                selector: "THESEUS_MANAGED==true".into(),
                embeds: vec![Embed::Counts, Embed::Deployments, Embed::Tasks],
                in_scope: Arc::new(|_| true),
            },
            Arc::new(Metrics::new()),
        ));
        let mut created = managed("/a/x", "one");
        created["tasksRunning"] = json!(0);
        created["tasksStaged"] = json!(0);
        let mut created: App = serde_json::from_value(created).unwrap();
        created.version = Some("2026-01-01T00:00:01.000Z".into());
        snapshot.record_created(&AppCreated {
            app: created,
            deployment_id: Some(DeploymentId::from("d1")),
        });

        // Marathon runs the update's whole deployment before its answer arrives.
        snapshot.on_event(&theseus::marathon::Event::from_json(json!({
            "eventType": "status_update_event", "appId": "/a/x", "taskId": "a_x.1",
            "taskStatus": "TASK_RUNNING", "host": "10.0.0.1", "ports": [31000],
            "version": "2026-01-01T00:00:02.000Z"
        })));
        snapshot.on_event(&theseus::marathon::Event::from_json(json!({
            "eventType": "deployment_success", "id": "d2",
            "plan": {"id": "d2", "version": "2026-01-01T00:00:02.000Z",
                "steps": [{"actions": [{"action": "RestartApplication", "app": "/a/x"}]}]}
        })));
        let mut written: App = serde_json::from_value(managed("/a/x", "two")).unwrap();
        written.instances = Some(1);
        snapshot.record_updated(
            &written,
            &DeploymentResult {
                deployment_id: DeploymentId::from("d2"),
                version: "2026-01-01T00:00:02.000Z".into(),
            },
        );
        let x = snapshot.app(&id("/a/x")).unwrap();
        assert_eq!(x.label("THESEUS_SPEC_HASH"), Some("two"));
        assert_eq!(x.tasks_running, Some(1), "the running task was lost");
        assert!(
            !x.deployment_ids().any(|d| d.as_str() == "d2"),
            "the finished deployment runs again"
        );
    }

    #[tokio::test]
    async fn an_app_is_stale_after_an_unknown_outcome_until_read_again() {
        let marathon = Arc::new(Scripted::default());
        let snapshot = snapshot(start(Arc::clone(&marathon)).await);
        let listing = tokio::spawn({
            let snapshot = Arc::clone(&snapshot);
            async move { snapshot.relist(RelistReason::Resync).await }
        });
        while marathon.lists.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        snapshot.mark_stale(&id("/a/x"));
        marathon.gate.add_permits(1);
        listing.await.unwrap().unwrap();
        assert!(
            snapshot.is_stale(&id("/a/x")),
            "a list that began earlier cleared it"
        );

        marathon
            .single
            .lock()
            .unwrap()
            .insert("/a/x".into(), managed("/a/x", "h"));
        let read = snapshot.refresh(&id("/a/x")).await.unwrap();
        assert!(read.is_some());
        assert!(!snapshot.is_stale(&id("/a/x")));
    }

    #[tokio::test]
    async fn an_app_outside_the_selector_survives_relists_until_it_is_gone() {
        let marathon = Arc::new(Scripted::default());
        marathon.gate.add_permits(10);
        marathon.single.lock().unwrap().insert(
            "/a/x".into(),
            json!({"id": "/a/x", "cmd": "someone else's"}),
        );
        let snapshot = snapshot(start(Arc::clone(&marathon)).await);
        snapshot.refresh(&id("/a/x")).await.unwrap();
        snapshot.relist(RelistReason::Resync).await.unwrap();
        assert!(snapshot.app(&id("/a/x")).is_some());

        marathon.single.lock().unwrap().clear();
        snapshot.refresh_foreign().await;
        assert!(snapshot.app(&id("/a/x")).is_none());
    }

    #[tokio::test]
    async fn listeners_hear_changed_apps_and_reachability_once() {
        let marathon = Arc::new(Scripted::default());
        marathon.gate.add_permits(10);
        *marathon.listed.lock().unwrap() = vec![managed("/a/x", "1"), managed("/a/y", "1")];
        let snapshot = snapshot(start(Arc::clone(&marathon)).await);
        let mut changes = Box::pin(snapshot.changes());

        snapshot.relist(RelistReason::Initial).await.unwrap();
        *marathon.listed.lock().unwrap() = vec![managed("/a/x", "2"), managed("/a/y", "1")];
        snapshot.relist(RelistReason::Resync).await.unwrap();
        snapshot.relist(RelistReason::Resync).await.unwrap();
        *marathon.listed.lock().unwrap() = vec![managed("/a/y", "1")];
        snapshot.relist(RelistReason::Resync).await.unwrap();

        let heard = heard(&mut changes);
        let mut first = match &heard[1] {
            Change::Apps(apps) => apps.clone(),
            other => panic!("{other:?}"),
        };
        first.sort();
        assert_eq!(heard[0], Change::Reachability(Reachability::Reachable));
        assert_eq!(first, [id("/a/x"), id("/a/y")]);
        assert_eq!(
            heard[2],
            Change::Apps(vec![id("/a/x")]),
            "only what changed"
        );
        assert_eq!(
            heard[3],
            Change::Apps(vec![id("/a/x")]),
            "a removed app is a change"
        );
        assert_eq!(heard.len(), 4, "an unchanged relist is silent: {heard:?}");
        assert_eq!(
            marathon.lists.load(Ordering::SeqCst),
            4,
            "one call per relist"
        );
    }

    #[tokio::test]
    async fn a_list_that_began_before_a_task_event_keeps_what_the_event_said() {
        let marathon = Arc::new(Scripted::default());
        let mut app = managed("/a/x", "h");
        app["tasks"] = json!([]);
        app["tasksRunning"] = json!(0);
        app["tasksStaged"] = json!(0);
        *marathon.listed.lock().unwrap() = vec![app];
        let client = start(Arc::clone(&marathon)).await;
        let snapshot = tasks_snapshot(client);
        marathon.gate.add_permits(1);
        snapshot.relist(RelistReason::Initial).await.unwrap();
        let mut changes = Box::pin(snapshot.changes());

        let listing = tokio::spawn({
            let snapshot = Arc::clone(&snapshot);
            async move { snapshot.relist(RelistReason::Resync).await }
        });
        while marathon.lists.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // The task starts while the list is in flight; the list will not show it.
        snapshot.on_event(&theseus::marathon::Event::from_json(json!({
            "eventType": "status_update_event", "appId": "/a/x", "taskId": "a_x.1",
            "taskStatus": "TASK_RUNNING", "host": "10.0.0.1", "ports": [31000]
        })));
        assert_eq!(heard(&mut changes), [Change::Apps(vec![id("/a/x")])]);
        marathon.gate.add_permits(1);
        listing.await.unwrap().unwrap();
        let x = snapshot.app(&id("/a/x")).unwrap();
        assert_eq!(
            x.tasks.as_ref().unwrap().len(),
            1,
            "the list turned the task back"
        );
        assert_eq!(x.tasks_running, Some(1));

        // A list that begins after the event is the truth again.
        marathon.gate.add_permits(1);
        snapshot.relist(RelistReason::Resync).await.unwrap();
        let x = snapshot.app(&id("/a/x")).unwrap();
        assert!(x.tasks.as_ref().unwrap().is_empty());
        assert_eq!(x.tasks_running, Some(0));
    }

    #[tokio::test]
    async fn an_event_read_before_a_list_began_does_not_turn_the_list_back() {
        let marathon = Arc::new(Scripted::default());
        let mut app = managed("/a/x", "h");
        app["tasks"] = json!([{
            "id": "a_x.1", "appId": "/a/x", "host": "10.0.0.1", "ports": [31000],
            "state": "TASK_RUNNING", "startedAt": "2026-01-01T00:00:01.000Z"
        }]);
        app["tasksRunning"] = json!(1);
        app["tasksStaged"] = json!(0);
        *marathon.listed.lock().unwrap() = vec![app];
        let client = start(Arc::clone(&marathon)).await;
        let snapshot = tasks_snapshot(client);
        // The task's earlier state is read from the stream, but its applier is behind...
        snapshot.queue_event(theseus::marathon::Event::from_json(json!({
            "eventType": "status_update_event", "appId": "/a/x", "taskId": "a_x.1",
            "taskStatus": "TASK_STARTING", "host": "10.0.0.1", "ports": [31000]
        })));
        // ...while a list that begins later already shows the task running.
        marathon.gate.add_permits(1);
        snapshot.relist(RelistReason::Initial).await.unwrap();
        snapshot.apply_batch(snapshot.backlog.take());
        let x = snapshot.app(&id("/a/x")).unwrap();
        let task = &x.tasks.as_ref().unwrap()[0];
        assert_eq!(task.state, theseus::marathon::TaskState::Running);
        assert_eq!(x.tasks_running, Some(1));
    }

    #[tokio::test]
    async fn an_unanswered_list_makes_marathon_unreachable() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}").parse().unwrap();
        let client = MarathonClient::new(MarathonConfig::new(vec![url])).unwrap();
        let snapshot = snapshot(client);
        assert_eq!(snapshot.reachability(), Reachability::Unknown);
        assert!(snapshot.relist(RelistReason::Initial).await.is_err());
        assert!(matches!(
            snapshot.reachability(),
            Reachability::Unreachable(error) if error.contains("cannot connect")
        ));
    }
}
