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
//! - The controller writes to Marathon only through the snapshot ([`MarathonSnapshot::writes`],
//!   see [`writes`]), so its own writes are in the picture, from Marathon's answers, before
//!   the write returns: no caller has to remember to record them. Reads are applied in the
//!   order they began, and one that began before such a write replaces what the write
//!   recorded only if it shows the write's app version or a newer one; so the next reconcile
//!   of that app never acts on a picture older than its own last write, and a deployment
//!   Marathon finished before the write's answer arrived is not missed. After a write whose
//!   outcome is unknown (a timeout), the app is marked stale, and
//!   [`MarathonSnapshot::current_app`] re-reads it before anyone acts on it again. These
//!   ordering rules live in the picture (`picture.rs`), a value tested without Marathon.
//! - When the picture cannot be trusted, [`MarathonSnapshot::current_app`] says why, as a
//!   [`PictureError`] that keeps Marathon's error and names its cause for metrics.
//! - Apps outside the label selector (an app someone else created with a deployment's id) are
//!   kept once read individually, survive relists, and are re-read at each resync.
//! - Its [`changes`] stream tells which apps changed, and when Marathon became reachable or
//!   unreachable, in order; a listener far behind hears that it missed changes.
//!   The embeds are configurable, so the observed-tasks reconciler can share one snapshot
//!   (with `Embed::Tasks`) with the deployments reconciler.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use theseus::marathon::{App, AppId, AppQuery, Embed, Error, MarathonClient};
use tokio::sync::{Notify, broadcast};
use tracing::{debug, info, warn};

use crate::runtime::metrics::Metrics;

mod backlog;
mod deployment_events;
mod events;
mod picture;
mod task_events;
pub mod writes;

use picture::{KnownApp, MarathonPicture, add_deployment};

pub use writes::{WriteError, Writes, Written};

/// Whether Marathon answered the last attempt to list its apps.
#[derive(Debug, Clone, Default)]
pub enum Reachability {
    /// Never listed yet.
    #[default]
    Unknown,
    /// The last list succeeded.
    Reachable,
    /// The last list (or event stream connection, or a request that found Marathon unable
    /// to answer) failed with this error.
    Unreachable(Arc<Error>),
}

/// Two unreachable states are the same when their errors say the same: an error is not
/// comparable, and what is shown of it is its text.
impl PartialEq for Reachability {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Reachability::Unknown, Reachability::Unknown)
            | (Reachability::Reachable, Reachability::Reachable) => true,
            (Reachability::Unreachable(a), Reachability::Unreachable(b)) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for Reachability {}

/// Why the picture cannot be acted on now ([`MarathonSnapshot::current_app`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PictureError {
    /// The first list of the term has not been answered yet: nothing is known.
    #[error("Marathon has not answered the controller's first list yet")]
    NotListed,
    /// Marathon did not answer the last list, or a request found it unable to answer, or
    /// a stale app could not be re-read.
    #[error("{0}")]
    Unreachable(#[source] Arc<Error>),
}

impl PictureError {
    /// A short, stable name of why, for metrics and logs: a refused connection (the label
    /// every such failure had before causes were told apart), a timeout, a Marathon without
    /// a leader (502/503) and a connection lost mid-request are told apart.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PictureError::NotListed => "marathon_not_listed",
            PictureError::Unreachable(error) => match &**error {
                Error::Connect { .. } => "marathon_unavailable",
                Error::Timeout { .. } => "marathon_timeout",
                Error::Unavailable { .. } => "marathon_no_leader",
                Error::Transport { .. } | Error::EventStream { .. } => "marathon_connection_lost",
                Error::Unauthorized { .. } | Error::Forbidden { .. } => "marathon_refused",
                Error::Config { .. } | Error::CaFile { .. } => "marathon_config",
                Error::AppExists { .. }
                | Error::Locked { .. }
                | Error::NotFound { .. }
                | Error::Invalid { .. }
                | Error::UnexpectedStatus { .. }
                | Error::Decode { .. } => "marathon_unexpected_answer",
            },
        }
    }
}

/// What changed in the snapshot, as its [`MarathonSnapshot::changes`] tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotChange {
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
/// [`SnapshotChange::Missed`] instead of what it missed.
const CHANGES_HELD: usize = 4096;

/// The shared snapshot; see the module documentation. Share it as `Arc<MarathonSnapshot>`.
pub struct MarathonSnapshot {
    client: MarathonClient,
    config: SnapshotConfig,
    state: Mutex<MarathonPicture>,
    dirty_added: Notify,
    /// Whether the last list succeeded, for those who wait until Marathon is back.
    reachable: tokio::sync::watch::Sender<bool>,
    /// Whether the event stream is connected now (its reconnection attempts are then not
    /// the probe of a Marathon that stopped answering requests).
    stream_connected: std::sync::atomic::AtomicBool,
    changes: broadcast::Sender<SnapshotChange>,
    /// Events read from the stream and not applied yet.
    backlog: backlog::Backlog,
    /// The picture's clock (`MarathonPicture::clock`), for stamping events as they are read.
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
            state: Mutex::new(MarathonPicture {
                clock: Arc::clone(&clock),
                ..MarathonPicture::default()
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

    fn state(&self) -> MutexGuard<'_, MarathonPicture> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The snapshot's changes from now on, in the order they happened: which apps changed,
    /// and when Marathon became reachable or unreachable. A listener that falls more than
    /// [`CHANGES_HELD`] changes behind hears [`SnapshotChange::Missed`] once in their place. The
    /// stream ends with the snapshot.
    pub fn changes(&self) -> impl futures::Stream<Item = SnapshotChange> + Send + 'static {
        futures::stream::unfold(self.changes.subscribe(), |mut changes| async move {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => SnapshotChange::Missed,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((change, changes))
        })
    }

    fn publish(&self, change: SnapshotChange) {
        if matches!(&change, SnapshotChange::Apps(apps) if apps.is_empty()) {
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
            self.publish(SnapshotChange::Reachability(reachability));
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
    pub fn note_failure(&self, error: &Arc<Error>) -> bool {
        let unreachable = matches!(
            **error,
            Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::Transport { .. }
                | Error::Unavailable { .. }
        );
        if unreachable {
            self.set_reachability(Reachability::Unreachable(Arc::clone(error)));
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
    /// controller wrote after the list began. Tells listeners which apps changed. The
    /// error of a failed list is the one [`Reachability::Unreachable`] now holds.
    pub async fn relist(&self, reason: RelistReason) -> Result<(), Arc<Error>> {
        let began = self.state().tick();
        let query = AppQuery {
            id: None,
            label: Some(self.config.selector.clone()),
            embed: self.config.embeds.clone(),
        };
        // Each app trimmed to what the picture keeps as it is read, and applied a part at a
        // time: at 30,000 tasks the apps as Marathon sends them are tens of megabytes, and
        // even trimmed the list is as large as the picture it replaces.
        let in_scope = &self.config.in_scope;
        let mut list = picture::ListApplied::began(began);
        let listed = self
            .client
            .list_apps_in_parts(&query, picture::keep_what_is_read, |apps| {
                let mut state = self.state();
                for app in apps.into_iter().filter(|app| in_scope(&app.id)) {
                    list.apply(&mut state, app);
                }
            })
            .await;
        self.metrics.snapshot_relisted(reason.label());
        if let Err(error) = listed {
            let error = Arc::new(error);
            self.set_reachability(Reachability::Unreachable(Arc::clone(&error)));
            // What the list showed before it broke off is in the picture.
            self.publish(SnapshotChange::Apps(list.abandon()));
            return Err(error);
        }
        let changed = list.finish(&mut self.state());
        debug!(
            reason = reason.label(),
            changed = changed.len(),
            "relisted Marathon"
        );
        self.set_reachability(Reachability::Reachable);
        self.publish(SnapshotChange::Apps(changed));
        Ok(())
    }

    /// The app as the snapshot has it, re-read first if it is stale; why not when Marathon's
    /// picture cannot be trusted (never listed yet, or unreachable, or the stale app cannot
    /// be re-read).
    pub async fn current_app(&self, id: &AppId) -> Result<Option<Arc<App>>, PictureError> {
        match self.reachability() {
            Reachability::Reachable => {}
            Reachability::Unknown => return Err(PictureError::NotListed),
            Reachability::Unreachable(error) => return Err(PictureError::Unreachable(error)),
        }
        if self.is_stale(id) {
            return self.refresh(id).await.map_err(|error| {
                let error = Arc::new(error);
                self.note_failure(&error);
                PictureError::Unreachable(error)
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
        let read = read.map(|app| {
            let foreign = !matches_selector(&app, &self.config.selector);
            (app, foreign)
        });
        let (changed, now) = self.state().apply_read(began, id, read);
        if let Some(changed) = changed {
            self.publish(SnapshotChange::Apps(vec![changed]));
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
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use futures::{FutureExt, StreamExt};
    use serde_json::{Value, json};
    use theseus::marathon::{AppCreated, DeploymentId, DeploymentResult, MarathonConfig};
    use tokio::sync::Semaphore;

    use super::writes::Creating;
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
    fn heard(
        changes: &mut (impl futures::Stream<Item = SnapshotChange> + Unpin),
    ) -> Vec<SnapshotChange> {
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
            snapshot.publish(SnapshotChange::Apps(vec![id("/a/x")]));
        }
        snapshot.publish(SnapshotChange::Written(id("/a/y")));
        assert_eq!(changes.next().await, Some(SnapshotChange::Missed));
        // What is still held follows the news of a miss, up to the latest change.
        let mut held = 0;
        loop {
            match changes.next().await.unwrap() {
                SnapshotChange::Apps(apps) => assert_eq!(apps, [id("/a/x")]),
                SnapshotChange::Written(app) => break assert_eq!(app, id("/a/y")),
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
        let (snapshot, created) = creating_a_x(&marathon).await;
        snapshot.record_created(&created);

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

    /// A snapshot that embeds tasks, and the answer to creating `/a/x`.
    async fn creating_a_x(marathon: &Arc<Scripted>) -> (Arc<MarathonSnapshot>, AppCreated) {
        let snapshot = Arc::new(MarathonSnapshot::new(
            start(Arc::clone(marathon)).await,
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
        let created = AppCreated {
            app: created,
            deployment_id: Some(DeploymentId::from("d1")),
        };
        (snapshot, created)
    }

    /// Marathon launches `/a/x`'s instance and its task starts running.
    fn launch_a_x(snapshot: &MarathonSnapshot) {
        snapshot.on_event(&theseus::marathon::Event::from_json(json!({
            "eventType": "instance_changed_event", "instanceId": "a_x.instance-1",
            "runSpecId": "/a/x", "condition": "Provisioned", "agentId": "s1", "host": "h",
            "runSpecVersion": "2026-01-01T00:00:01.000Z",
            "timestamp": "2026-01-01T00:00:02.000Z"
        })));
        snapshot.on_event(&theseus::marathon::Event::from_json(json!({
            "eventType": "status_update_event", "appId": "/a/x",
            "taskId": "a_x.instance-1._app.1", "taskStatus": "TASK_RUNNING", "host": "h",
            "ports": [], "version": "2026-01-01T00:00:01.000Z",
            "timestamp": "2026-01-01T00:00:03.000Z"
        })));
    }

    #[tokio::test]
    async fn a_new_apps_events_that_beat_the_creates_answer_are_applied_after_it() {
        let marathon = Arc::new(Scripted::default());
        let (snapshot, created) = creating_a_x(&marathon).await;
        let creating = Creating::begin(&snapshot, &id("/a/x"));
        launch_a_x(&snapshot);
        assert!(snapshot.state().dirty.is_empty(), "nothing is re-read");
        assert!(snapshot.app(&id("/a/x")).is_none(), "not created yet");

        creating.created(&created);
        let x = snapshot.app(&id("/a/x")).unwrap();
        let task = &x.tasks.as_ref().unwrap()[0];
        let time = |text: &str| Some(text.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(task.state, theseus::marathon::TaskState::Running);
        assert_eq!(
            task.staged_at,
            time("2026-01-01T00:00:02Z"),
            "from the launch"
        );
        assert_eq!(task.started_at, time("2026-01-01T00:00:03Z"));
        assert_eq!(x.tasks_running, Some(1));
        assert!(snapshot.state().dirty.is_empty(), "nothing is re-read");
        assert!(snapshot.state().creating.is_empty());
    }

    #[tokio::test]
    async fn an_app_whose_create_failed_after_events_about_it_came_is_reread() {
        let marathon = Arc::new(Scripted::default());
        let (snapshot, _) = creating_a_x(&marathon).await;
        let creating = Creating::begin(&snapshot, &id("/a/x"));
        launch_a_x(&snapshot);
        drop(creating);
        assert!(snapshot.state().dirty.contains(&id("/a/x")));
        assert!(snapshot.state().creating.is_empty());

        // Without events, a failed create asks for nothing.
        let creating = Creating::begin(&snapshot, &id("/a/y"));
        drop(creating);
        assert!(!snapshot.state().dirty.contains(&id("/a/y")));
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
            SnapshotChange::Apps(apps) => apps.clone(),
            other => panic!("{other:?}"),
        };
        first.sort();
        assert_eq!(
            heard[0],
            SnapshotChange::Reachability(Reachability::Reachable)
        );
        assert_eq!(first, [id("/a/x"), id("/a/y")]);
        assert_eq!(
            heard[2],
            SnapshotChange::Apps(vec![id("/a/x")]),
            "only what changed"
        );
        assert_eq!(
            heard[3],
            SnapshotChange::Apps(vec![id("/a/x")]),
            "a removed app is a change"
        );
        assert_eq!(heard.len(), 4, "an unchanged relist is silent: {heard:?}");
        assert_eq!(
            marathon.lists.load(Ordering::SeqCst),
            4,
            "one call per relist"
        );
    }

    /// A snapshot that embeds tasks, listed once from a Marathon holding `/a/x` with no task
    /// yet; that Marathon, and the app as it lists it.
    async fn listed_without_tasks() -> (Arc<Scripted>, Arc<MarathonSnapshot>, Value) {
        let marathon = Arc::new(Scripted::default());
        let mut app = managed("/a/x", "h");
        app["tasks"] = json!([]);
        app["tasksRunning"] = json!(0);
        app["tasksStaged"] = json!(0);
        *marathon.listed.lock().unwrap() = vec![app.clone()];
        let client = start(Arc::clone(&marathon)).await;
        let snapshot = tasks_snapshot(client);
        marathon.gate.add_permits(1);
        snapshot.relist(RelistReason::Initial).await.unwrap();
        (marathon, snapshot, app)
    }

    #[tokio::test]
    async fn a_list_that_began_before_a_task_event_keeps_what_the_event_said() {
        let (marathon, snapshot, _) = listed_without_tasks().await;
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
        assert_eq!(
            heard(&mut changes),
            [SnapshotChange::Apps(vec![id("/a/x")])]
        );
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
    async fn an_event_applied_while_a_later_list_is_in_flight_does_not_turn_the_list_back() {
        let (marathon, snapshot, mut app) = listed_without_tasks().await;

        // The task's start is read from the stream; its applier is behind...
        snapshot.queue_event(theseus::marathon::Event::from_json(json!({
            "eventType": "status_update_event", "appId": "/a/x", "taskId": "a_x.1",
            "taskStatus": "TASK_STARTING", "host": "10.0.0.1", "ports": [31000]
        })));
        // ...a list begins after it was read, and will show the task already running...
        app["tasks"] = json!([{
            "id": "a_x.1", "appId": "/a/x", "host": "10.0.0.1", "ports": [31000],
            "state": "TASK_RUNNING", "startedAt": "2026-01-01T00:00:01.000Z"
        }]);
        app["tasksRunning"] = json!(1);
        *marathon.listed.lock().unwrap() = vec![app];
        let listing = tokio::spawn({
            let snapshot = Arc::clone(&snapshot);
            async move { snapshot.relist(RelistReason::Resync).await }
        });
        while marathon.lists.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // ...and the event is applied while that list is in flight.
        snapshot.apply_batch(snapshot.backlog.take());
        assert_eq!(
            snapshot.app(&id("/a/x")).unwrap().tasks_running,
            Some(0),
            "the task is starting as far as the events go"
        );
        marathon.gate.add_permits(1);
        listing.await.unwrap().unwrap();
        let x = snapshot.app(&id("/a/x")).unwrap();
        let task = &x.tasks.as_ref().unwrap()[0];
        assert_eq!(
            task.state,
            theseus::marathon::TaskState::Running,
            "the list began after the event was read: it shows what followed"
        );
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
            Reachability::Unreachable(error) if error.to_string().contains("cannot connect")
        ));
    }

    #[tokio::test]
    async fn a_refused_connection_a_timeout_and_a_marathon_without_a_leader_are_told_apart() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}").parse().unwrap();
        let client = MarathonClient::new(MarathonConfig::new(vec![url])).unwrap();
        let snapshot = snapshot(client);
        let not_listed = snapshot.current_app(&id("/a/x")).await.unwrap_err();
        let _ = snapshot.relist(RelistReason::Initial).await;
        let refused = snapshot.current_app(&id("/a/x")).await.unwrap_err();
        let timeout = PictureError::Unreachable(Arc::new(Error::Timeout {
            url: "http://marathon/v2/apps".into(),
        }));
        let no_leader = PictureError::Unreachable(Arc::new(Error::Unavailable {
            url: "http://marathon/v2/apps".into(),
            status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            message: "no leader".into(),
        }));
        let labels: HashSet<&str> = [&not_listed, &refused, &timeout, &no_leader]
            .iter()
            .map(|error| error.metric_label())
            .collect();
        assert_eq!(labels.len(), 4, "{labels:?}");
        // What users read is Marathon's own message, and the error is kept as the source.
        assert!(refused.to_string().contains("cannot connect"), "{refused}");
        let source = std::error::Error::source(&refused).unwrap();
        assert_eq!(source.to_string(), refused.to_string());
        assert_eq!(
            not_listed.to_string(),
            "Marathon has not answered the controller's first list yet"
        );
    }
}
