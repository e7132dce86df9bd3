//! The one etcd watch behind every page: it keeps the [`Model`] current and tells the pages
//! what changed and whether they are live.
//!
//! A [`Link`] moves through three states:
//!
//! - `Connecting`: no store yet (etcd has not answered); retried with backoff.
//! - `Listing`: fresh watches of `<p>/desired/`, `<p>/observed/` and `<p>/theseus/leader/`
//!   are listing into a *new* model. The pages keep the old picture, marked as not current.
//!   Once all three are synced the new model replaces the old one in one step, and the pages
//!   are told to redraw everything.
//! - `Live`: changes are applied as they arrive, a batch at a time, and each batch names the
//!   deployments it touched.
//!
//! The first error of a live watch moves to `Listing` again, with the error shown: the store's
//! watch would resume by itself, but a resumed watch gives no sign of when it has caught up,
//! and a page must never show old data as current. A relist ends with a known revision.
//!
//! One feed serves every viewer: pages read the model under a lock and are pushed
//! [`Update`]s through a broadcast channel, so a viewer costs no etcd request. It runs only
//! while someone looks ([`crate::demand`]): between its runs the link is `Idle` and the
//! model empty, and the end of a run drops the model and the store ([`Picture::forget`]).
//!
//! Beside the watch, the feed asks etcd for its revision every [`PROBE_INTERVAL`] (a list
//! of the election keys, a handful of small values), however many pages are open: the
//! controller page shows from it whether etcd answers and how many revisions the watch is
//! behind ([`EtcdProbe`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use theseus::api::DeploymentKey;
use theseus::store::{EtcdConfig, Layout, Store, WatchEvent};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::model::{Changed, Model};

/// Most watch items applied under one lock before the pages are told.
const MAX_BATCH: usize = 4096;

/// How often the feed asks etcd for its revision.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What the last question to etcd found: whether it answered, and at which revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdProbe {
    /// When it was asked.
    pub at: DateTime<Utc>,
    /// etcd's revision then, when it answered.
    pub revision: Option<i64>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// Where the feed stands; shown on every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// Nobody looks: no watch, nothing held; what the pages show is not current.
    Idle,
    /// Not connected to etcd yet.
    Connecting,
    /// Reading everything afresh; what the pages show is not current.
    Listing,
    /// Watching: what the pages show is current.
    Live,
}

/// The feed's state as the pages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// Where the feed stands.
    pub link: Link,
    /// Since when.
    pub since: DateTime<Utc>,
    /// When the picture last changed (a change applied, or a relist swapped in).
    pub last_change: Option<DateTime<Utc>>,
    /// The last error of the watch or the connection, while not live.
    pub error: Option<String>,
    /// The highest etcd revision applied.
    pub revision: i64,
}

impl Connection {
    fn fresh(link: Link) -> Connection {
        Connection {
            link,
            since: Utc::now(),
            last_change: None,
            error: None,
            revision: 0,
        }
    }
}

/// What changed, as told to every open page.
#[derive(Debug, Clone)]
pub enum Update {
    /// These deployments changed, and the election if `leader`.
    Changed {
        /// The deployments touched.
        deployments: Arc<BTreeSet<DeploymentKey>>,
        /// Whether an election key changed.
        leader: bool,
    },
    /// The whole picture was replaced (after a relist).
    Replaced,
    /// Only the connection state changed.
    Connection,
}

/// The model, the connection state and the channel of updates: what the feed writes and the
/// pages read.
#[derive(Debug)]
pub struct Picture {
    model: RwLock<Arc<Model>>,
    connection: RwLock<Connection>,
    updates: broadcast::Sender<Update>,
    /// The feed's connection to etcd while a run of the feed has one; the dashboard's actions
    /// write through it.
    store: RwLock<Option<Store>>,
    /// Whether a run of the feed owns the picture: between runs the feed's last
    /// words (a relist that ends while it is stopped) must not mark it current.
    held: AtomicBool,
    /// The last answer to the feed's question for etcd's revision.
    probe: RwLock<Option<EtcdProbe>>,
}

impl Picture {
    /// An empty picture of `layout`, idle.
    pub fn new(layout: Layout) -> Picture {
        Picture {
            model: RwLock::new(Arc::new(Model::new(layout))),
            connection: RwLock::new(Connection::fresh(Link::Idle)),
            updates: broadcast::channel(1024).0,
            store: RwLock::new(None),
            held: AtomicBool::new(false),
            probe: RwLock::new(None),
        }
    }

    /// A run of the feed starts: the picture is connecting, and the feed may write it.
    pub(crate) fn begin(&self) {
        {
            let mut connection = self.connection.write().expect("no panic under the lock");
            self.held.store(true, Ordering::SeqCst);
            *connection = Connection::fresh(Link::Connecting);
        }
        let _ = self.updates.send(Update::Connection);
    }

    /// A run of the feed is ending: nothing shown is current from now on, whatever the feed still
    /// does before it stops.
    pub(crate) fn end(&self) {
        {
            let mut connection = self.connection.write().expect("no panic under the lock");
            self.held.store(false, Ordering::SeqCst);
            connection.link = Link::Idle;
            connection.since = Utc::now();
            connection.error = None;
        }
        let _ = self.updates.send(Update::Connection);
    }

    /// A run of the feed has ended: the model, the store and the probe are dropped (memory
    /// returned, the connection to etcd closed).
    pub(crate) fn forget(&self) {
        self.end();
        let layout = self.model().layout().clone();
        *self.model.write().expect("no panic under the lock") = Arc::new(Model::new(layout));
        *self.store.write().expect("no panic under the lock") = None;
        *self.probe.write().expect("no panic under the lock") = None;
        *self.connection.write().expect("no panic under the lock") = Connection::fresh(Link::Idle);
        let _ = self.updates.send(Update::Replaced);
    }

    /// What the feed's last question for etcd's revision found; `None` before the first.
    pub fn probe(&self) -> Option<EtcdProbe> {
        self.probe
            .read()
            .expect("no panic while holding the lock")
            .clone()
    }

    /// The feed's connection to etcd; `None` while no run of the feed has connected.
    pub fn store(&self) -> Option<Store> {
        self.store
            .read()
            .expect("no panic while holding the lock")
            .clone()
    }

    /// The model now. Cloning the `Arc` is cheap; the model behind it never changes while
    /// held, so a page renders from one consistent picture.
    pub fn model(&self) -> Arc<Model> {
        Arc::clone(&self.model.read().expect("no panic while holding the lock"))
    }

    /// The connection state now.
    pub fn connection(&self) -> Connection {
        self.connection
            .read()
            .expect("no panic while holding the lock")
            .clone()
    }

    /// Updates from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    fn set_link(&self, link: Link, error: Option<String>) {
        {
            let mut connection = self.connection.write().expect("no panic under the lock");
            if !self.held.load(Ordering::SeqCst) {
                return;
            }
            if connection.link != link {
                connection.since = Utc::now();
            }
            connection.link = link;
            connection.error = error;
        }
        // Nobody listening is fine.
        let _ = self.updates.send(Update::Connection);
    }

    fn changed(&self, revision: i64) {
        let mut connection = self.connection.write().expect("no panic under the lock");
        connection.last_change = Some(Utc::now());
        connection.revision = connection.revision.max(revision);
    }
}

/// Runs the feed until `stop`; see the module documentation.
pub async fn run(
    picture: Arc<Picture>,
    config: EtcdConfig,
    layout: Layout,
    stop: CancellationToken,
) {
    let Some(store) = connect(&picture, config, layout, &stop).await else {
        return;
    };
    *picture.store.write().expect("no panic under the lock") = Some(store.clone());
    let probing = tokio::spawn(probe(Arc::clone(&picture), store.clone(), stop.clone()));
    feed(&picture, &store, &stop).await;
    probing.abort();
    let _ = probing.await;
}

/// Lists and follows until `stop`.
async fn feed(picture: &Picture, store: &Store, stop: &CancellationToken) {
    loop {
        let Some(streams) = relist(picture, store, stop).await else {
            return;
        };
        if follow(picture, streams, stop).await.is_none() {
            return;
        }
    }
}

/// Asks etcd for its revision every [`PROBE_INTERVAL`] until `stop`.
async fn probe(picture: Arc<Picture>, store: Store, stop: CancellationToken) {
    let election = store.layout().leader_root();
    loop {
        let answer = tokio::select! {
            () = stop.cancelled() => return,
            answer = store.list(&election) => answer,
        };
        let probe = match answer {
            Ok(listing) => EtcdProbe {
                at: Utc::now(),
                revision: Some(listing.revision),
                error: None,
            },
            Err(error) => EtcdProbe {
                at: Utc::now(),
                revision: None,
                error: Some(error.to_string()),
            },
        };
        *picture.probe.write().expect("no panic under the lock") = Some(probe);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

/// Connects, retrying with backoff while etcd does not answer; `None` when stopped first.
async fn connect(
    picture: &Picture,
    config: EtcdConfig,
    layout: Layout,
    stop: &CancellationToken,
) -> Option<Store> {
    Store::connect_until(&config, &layout, Duration::from_secs(2), stop, |error| {
        picture.set_link(Link::Connecting, Some(error.to_string()));
    })
    .await
}

type Streams = SelectAll<BoxStream<'static, Result<WatchEvent, theseus::store::Error>>>;

/// Lists everything into a new model through fresh watches, swaps it in, and returns the
/// watches to follow; `None` when stopped first.
async fn relist(picture: &Picture, store: &Store, stop: &CancellationToken) -> Option<Streams> {
    let error = picture.connection().error;
    picture.set_link(Link::Listing, error);
    let layout = store.layout().clone();
    let prefixes = [
        layout.desired_root(),
        layout.observed_root(),
        layout.leader_root(),
    ];
    let mut streams: Streams =
        futures::stream::select_all(prefixes.iter().map(|prefix| store.watch(prefix).boxed()));
    let mut fresh = Model::new(layout);
    let mut synced = 0;
    let mut revision = 0;
    while synced < prefixes.len() {
        let item = tokio::select! {
            () = stop.cancelled() => return None,
            item = streams.next() => item?,
        };
        match item {
            Ok(WatchEvent::Synced { revision: at }) => {
                synced += 1;
                revision = revision.max(at);
            }
            Ok(event) => {
                fresh.apply(event, None);
            }
            Err(error) => {
                warn!(%error, "the dashboard's watch failed while listing; retrying");
                picture.set_link(Link::Listing, Some(error.to_string()));
            }
        }
    }
    if stop.is_cancelled() {
        return None;
    }
    {
        let mut model = picture.model.write().expect("no panic under the lock");
        fresh.carry_times_from(&model);
        *model = Arc::new(fresh);
    }
    picture.changed(revision);
    info!(revision, "the dashboard's picture of etcd is current");
    picture.set_link(Link::Live, None);
    let _ = picture.updates.send(Update::Replaced);
    Some(streams)
}

/// Applies changes until the watch fails (`Some`) or `stop` (`None`).
async fn follow(picture: &Picture, mut streams: Streams, stop: &CancellationToken) -> Option<()> {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return None,
            item = streams.next() => item?,
        };
        let mut items = vec![first];
        while items.len() < MAX_BATCH {
            match streams.next().now_or_never() {
                Some(Some(item)) => items.push(item),
                _ => break,
            }
        }
        let mut deployments = BTreeSet::new();
        let mut leader = false;
        let mut revision = 0;
        let mut failure = None;
        {
            let mut guard = picture.model.write().expect("no panic under the lock");
            let model = Arc::make_mut(&mut guard);
            let now = Utc::now();
            for item in items {
                match item {
                    Ok(event) => {
                        revision = revision.max(event_revision(&event));
                        match model.apply(event, Some(now)) {
                            Changed::Deployment(key) => {
                                deployments.insert(key);
                            }
                            Changed::Leader => leader = true,
                            Changed::Nothing => {}
                        }
                    }
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
        }
        if !deployments.is_empty() || leader {
            picture.changed(revision);
            let _ = picture.updates.send(Update::Changed {
                deployments: Arc::new(deployments),
                leader,
            });
        }
        if let Some(error) = failure {
            warn!(%error, "the dashboard's watch failed; listing again");
            picture.set_link(Link::Listing, Some(error.to_string()));
            return Some(());
        }
    }
}

fn event_revision(event: &WatchEvent) -> i64 {
    match event {
        WatchEvent::Put { entry, .. } => entry.mod_revision,
        WatchEvent::Delete { revision, .. } | WatchEvent::Synced { revision } => *revision,
    }
}
