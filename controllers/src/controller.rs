//! The controller process: HTTP endpoints and metrics for its whole life, leader election,
//! and in every term won the deployments and observed reconcilers with their caches.
//!
//! What it promises:
//! - [`Controller::start`] returns once the HTTP endpoints listen; etcd and Marathon may still
//!   be down (the controller waits for them and `/readyz` says so).
//! - A term builds everything afresh: the `/desired` reflector, the copy of `/observed` (one
//!   watch, which also keeps the statuses current, whoever writes them), the Marathon snapshot with tasks (one
//!   list, then its event stream), a work queue per reconciler; reconciles start only once
//!   `/desired` and `/observed` are listed, so a key missing from an incomplete picture is
//!   never taken for a deleted one. Every long-lived task belongs to the term and
//!   ends with it: dropped at once when leadership is lost, drained on shutdown.
//! - Every resync relists Marathon once and queues every key of both reconcilers; converged
//!   keys then cost neither a Marathon call nor an etcd write.
//! - [`Controller::shutdown`] stops taking work, lets reconciles in flight finish (within the
//!   drain period), gives up the leadership, and stops the endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use std::time::Duration;

use theseus::api::{DeploymentKey, JournalEntry, RevisionRecord};
use theseus::marathon::{self, Embed, MarathonClient, MarathonConfig};
use theseus::store::{self, EtcdConfig, Layout, Store};
use theseus_dashboard::demand::DEFAULT_IDLE_TIMEOUT;
use theseus_dashboard::{Actions, Dashboard};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::deployments::lists::KeptList;
use crate::deployments::reconcile::Deployments;
use crate::deployments::records::Records;
use crate::deployments::statuses::Statuses;
use crate::http::{HttpError, HttpServer, MarathonSeen, ReplicaReport};
use crate::marathon_snapshot::{
    MarathonSnapshot, Reachability, RelistReason, SnapshotChange, SnapshotConfig,
};
use crate::observed::reconcile::Observed;
use crate::observed::tree::{ListKind, ObservedTree, TreeChange};
use crate::runtime::fence::FencedStore;
use crate::runtime::health::{ReplicaHealth, Role};
use crate::runtime::leader::{ElectionConfig, Term, run_elections};
use crate::runtime::metrics::{DashboardDemandMetrics, MarathonRequestMetrics, Metrics};
use crate::runtime::queue::{Backoff, WorkQueue};
use crate::runtime::reflector::{Reflection, Reflector};
use crate::runtime::runner::{self, RunnerConfig};
use crate::runtime::trigger::{self, Triggered};
use crate::triggers;
use theseus::mapping::ownership::MANAGED_SELECTOR;
use theseus::mapping::{Mapping, MappingError};

/// The name of the deployments reconciler in metrics and logs.
const DEPLOYMENTS: &str = "deployments";
/// The name of the observed reconciler in metrics and logs.
const OBSERVED: &str = "observed";

/// Reconciles that may run at once unless configured otherwise. A reconcile spends most of
/// its time waiting: for Marathon's answer, then for etcd to apply the transaction its writes
/// go in. The writes of reconciles that wait together share a transaction, so more of them at
/// once make fewer, larger transactions. At 10,000 new deployments, 64 workers converged in
/// about 85 % of the time 32 took, with half the transactions; 96 in about 91 % of the time
/// 64 took, with 30 % fewer transactions, for about 2 MiB more memory. 128 gained little
/// more and cost as much memory again. It also bounds the reconciles' Marathon calls in
/// flight at once.
pub const DEFAULT_WORKERS: u16 = 96;

/// Everything the controller is configured with.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How to reach etcd.
    pub etcd: EtcdConfig,
    /// The root prefix of theseus's keys.
    pub prefix: String,
    /// How to reach Marathon.
    pub marathon: MarathonConfig,
    /// The Marathon group apps live under (`None`: the root group).
    pub marathon_group: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Reconciles that may run at once.
    pub workers: usize,
    /// How often every key is reconciled and Marathon relisted regardless of events.
    pub resync: Duration,
    /// The TTL of the leadership lease.
    pub lease_ttl: Duration,
    /// How long reconciles in flight may take to finish on shutdown.
    pub drain: Duration,
    /// How failed keys back off.
    pub backoff: Backoff,
    /// This replica's name in the election.
    pub identity: String,
    /// Whether the dashboard's deployment pages may scale, pause, resume and undo.
    pub dashboard_actions: Actions,
    /// How long the dashboard goes on watching etcd once its last page has closed.
    pub dashboard_idle_timeout: Duration,
}

impl ControllerConfig {
    /// A configuration with the command line's defaults for everything but where etcd and
    /// Marathon are.
    pub fn new(etcd: EtcdConfig, marathon: MarathonConfig) -> Self {
        Self {
            etcd,
            prefix: String::new(),
            marathon,
            marathon_group: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            workers: usize::from(DEFAULT_WORKERS),
            resync: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(10),
            drain: Duration::from_secs(10),
            backoff: Backoff::default(),
            identity: format!("theseus-controller-{}", std::process::id()),
            dashboard_actions: Actions::Disabled,
            dashboard_idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why the controller cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The HTTP endpoints cannot listen.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The Marathon group is not a Marathon path.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The Marathon client cannot be configured.
    #[error("cannot set up the Marathon client: {0}")]
    Marathon(#[from] marathon::Error),
    /// The etcd configuration or prefix is unusable.
    #[error("cannot set up the etcd store: {0}")]
    Store(#[from] store::Error),
}

/// The replica: what it keeps from one term to the next (configuration, Marathon client,
/// metrics, health).
struct Replica {
    config: ControllerConfig,
    layout: Layout,
    mapping: Mapping,
    client: MarathonClient,
    metrics: Arc<Metrics>,
    health: Arc<ReplicaHealth>,
    /// Whether Marathon answers the current term, for the dashboard's controller page.
    marathon_seen: Arc<MarathonSeen>,
}

/// A running controller; see the module documentation.
#[derive(Debug)]
pub struct Controller {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    metrics: Arc<Metrics>,
    health: Arc<ReplicaHealth>,
    http_addr: SocketAddr,
}

impl Controller {
    /// Starts the controller: binds the endpoints, then (in the background) connects to
    /// etcd, campaigns, and reconciles while it leads.
    pub async fn start(config: ControllerConfig) -> Result<Controller, ControllerError> {
        let layout = Layout::new(&config.prefix)?;
        let mapping = Mapping::new(
            config.marathon_group.as_deref(),
            config.etcd.endpoints.clone(),
            layout.prefix(),
        )?;
        let metrics = Arc::new(Metrics::new());
        let client = MarathonClient::new(config.marathon.clone())?
            .with_observer(Arc::new(MarathonRequestMetrics(Arc::clone(&metrics))));
        let health = Arc::new(ReplicaHealth::default());
        let marathon_seen = Arc::new(MarathonSeen::default());
        let http = HttpServer::bind(config.listen).await?;
        let http_addr = http.local_addr();
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // The dashboard keeps its own watch, whether this replica leads or not, while a page
        // is open (the endpoints beside it start nothing); it lives as long as the HTTP
        // endpoints.
        let dashboard = Dashboard::start(
            config.etcd.clone(),
            layout.clone(),
            Some(Arc::new(ReplicaReport {
                health: Arc::clone(&health),
                metrics: Arc::clone(&metrics),
                marathon: Arc::clone(&marathon_seen),
                reconcilers: [DEPLOYMENTS, OBSERVED],
            })),
            stop.child_token(),
        )
        .with_actions(config.dashboard_actions)
        .with_idle_timeout(config.dashboard_idle_timeout)
        .with_demand_observer(Arc::new(DashboardDemandMetrics(Arc::clone(&metrics))));
        tasks.spawn({
            let pages = dashboard.router();
            let serving = http.serve(
                Arc::clone(&metrics),
                Arc::clone(&health),
                pages,
                stop.clone(),
            );
            async move {
                if let Err(error) = serving.await {
                    warn!(%error, "the HTTP endpoints stopped");
                }
                dashboard.shutdown().await;
            }
        });
        let replica = Arc::new(Replica {
            config,
            layout,
            mapping,
            client,
            metrics: Arc::clone(&metrics),
            health: Arc::clone(&health),
            marathon_seen,
        });
        tasks.spawn(elect(replica, stop.clone()));
        info!(listen = %http_addr, "theseus-controller started");
        Ok(Controller {
            stop,
            tasks,
            metrics,
            health,
            http_addr,
        })
    }

    /// Where the HTTP endpoints listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The replica's role.
    pub fn role(&self) -> Role {
        self.health.role()
    }

    /// Stops the controller (see the module documentation) and waits until it has.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Connects to etcd (waiting for it), then runs elections until `stop`.
async fn elect(replica: Arc<Replica>, stop: CancellationToken) {
    let Some(store) = connect(&replica, &stop).await else {
        return;
    };
    let election = ElectionConfig {
        name: format!("{}controller", replica.layout.leader_root()),
        identity: replica.config.identity.clone(),
        lease_ttl: replica.config.lease_ttl,
    };
    run_elections(
        store.clone(),
        election,
        Arc::clone(&replica.health),
        Arc::clone(&replica.metrics),
        stop,
        |term| lead(Arc::clone(&replica), store.clone(), term),
    )
    .await;
}

async fn connect(replica: &Replica, stop: &CancellationToken) -> Option<Store> {
    Store::connect_until(
        &replica.config.etcd,
        &replica.layout,
        Duration::from_secs(10),
        stop,
        |error| {
            warn!(%error, "cannot connect to etcd; retrying");
            replica.health.set(Role::Degraded {
                reason: error.to_string(),
            });
        },
    )
    .await
}

/// One term: follow `/observed/`, assemble the reconcilers, list Marathon and follow its
/// events, then reconcile once `/desired` is listed, until the term stops.
async fn lead(replica: Arc<Replica>, store: Store, term: Term) {
    let fenced = FencedStore::new(
        store.clone(),
        term.fence.clone(),
        Arc::clone(&replica.metrics),
    );
    let mut tasks = JoinSet::new();
    let queues = Queues::new(replica.config.backoff);
    let copy = follow_observed(&replica, &store, &fenced, &queues, &term, &mut tasks);
    // Until reconciles run, a shutdown need not wait for anything.
    if !until_stopped(&term, copy.tree.wait_synced())
        .await
        .unwrap_or(false)
    {
        return;
    }

    let snapshot = marathon_snapshot(&replica);
    let (reconcilers, desired) =
        Reconcilers::assemble(&replica, fenced, copy, queues, &snapshot, &term, &mut tasks);
    let _seen = TermSeesMarathon::follow(&replica.marathon_seen, &snapshot, &mut tasks);

    // One list of Marathon, then its events; reconciles wait for /desired's first list.
    match until_stopped(&term, snapshot.relist(RelistReason::Initial)).await {
        None => return,
        Some(Err(error)) => {
            warn!(%error, "cannot list Marathon's apps; statuses will say so until it answers");
        }
        Some(Ok(())) => {}
    }
    tasks.spawn({
        let snapshot = Arc::clone(&snapshot);
        let stop = term.stop.clone();
        async move { snapshot.follow_events(stop).await }
    });
    if !until_stopped(&term, desired.wait_synced())
        .await
        .unwrap_or(false)
    {
        return;
    }
    replica.health.set(Role::Leader { synced: true });
    info!(
        desired = desired.len(),
        apps = snapshot.apps().len(),
        records = reconcilers.observed.keys().len(),
        "caches synced; reconciling"
    );
    reconcilers.queue_every_key();
    tasks.spawn(resync(
        Arc::clone(&snapshot),
        reconcilers.clone(),
        replica.config.resync,
        term.stop.clone(),
    ));
    reconcilers.run(&replica, &term).await;
    tasks.shutdown().await;
}

/// `future`'s output, or `None` once the term stops.
async fn until_stopped<T>(term: &Term, future: impl std::future::Future<Output = T>) -> Option<T> {
    until_cancelled(&term.stop, future).await
}

/// `future`'s output, or `None` once `stop` is cancelled.
async fn until_cancelled<T>(
    stop: &CancellationToken,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        () = stop.cancelled() => None,
        output = future => Some(output),
    }
}

/// The term's two work queues.
#[derive(Clone)]
struct Queues {
    deployments: WorkQueue<DeploymentKey>,
    observed: WorkQueue<DeploymentKey>,
}

impl Queues {
    fn new(backoff: Backoff) -> Queues {
        Queues {
            deployments: WorkQueue::new(backoff),
            observed: WorkQueue::new(backoff),
        }
    }
}

/// What the watch of `/observed/` keeps for the reconcilers.
struct ObservedCopy {
    tree: ObservedTree,
    statuses: Arc<Statuses>,
    history: Arc<KeptList<RevisionRecord>>,
    journal: Arc<KeptList<JournalEntry>>,
}

/// Starts the term's one watch of `/observed/`: the task records for the observed
/// reconciler, and every status, history record and journal entry from its first list on.
/// A record or status someone else changed triggers the reconciler that puts it right.
fn follow_observed(
    replica: &Replica,
    store: &Store,
    fenced: &FencedStore,
    queues: &Queues,
    term: &Term,
    tasks: &mut JoinSet<()>,
) -> ObservedCopy {
    let copy = ObservedCopy {
        tree: ObservedTree::new(replica.layout.clone()),
        statuses: Arc::new(Statuses::new(fenced.clone(), Arc::clone(&replica.metrics))),
        history: Arc::new(KeptList::new(fenced.clone(), ListKind::History)),
        journal: Arc::new(KeptList::new(fenced.clone(), ListKind::Journal)),
    };
    let changes = copy.tree.changes(
        store.watch(&replica.layout.observed_root()),
        Arc::clone(&replica.metrics),
    );
    let (statuses, history, journal) = (
        Arc::clone(&copy.statuses),
        Arc::clone(&copy.history),
        Arc::clone(&copy.journal),
    );
    let queues = queues.clone();
    let stop = term.stop.clone();
    tasks.spawn(async move {
        let mut changes = std::pin::pin!(changes);
        while let Some(change) = until_cancelled(&stop, changes.next()).await.flatten() {
            match change {
                TreeChange::Records(key) => queues.observed.trigger(key),
                // A status someone else changed is put right by its deployment's reconcile.
                TreeChange::Status(change) => {
                    if let Some(key) = statuses.observe(change) {
                        queues.deployments.trigger(key);
                    }
                }
                TreeChange::List(change) => match change.list {
                    ListKind::History => history.observe(change),
                    ListKind::Journal => journal.observe(change),
                },
            }
        }
    });
    copy
}

/// The term's picture of Marathon, shared by both reconcilers.
fn marathon_snapshot(replica: &Replica) -> Arc<MarathonSnapshot> {
    let mapping = replica.mapping.clone();
    Arc::new(MarathonSnapshot::new(
        replica.client.clone(),
        SnapshotConfig {
            selector: MANAGED_SELECTOR.to_owned(),
            // One list serves both reconcilers: counts, deployments and failures for the
            // statuses, tasks for the observed tree.
            embeds: vec![
                Embed::Counts,
                Embed::Deployments,
                Embed::LastTaskFailure,
                Embed::Tasks,
            ],
            in_scope: Arc::new(move |id| mapping.key_of(id).is_some()),
        },
        Arc::clone(&replica.metrics),
    ))
}

/// The term's two reconcilers with their queues.
#[derive(Clone)]
struct Reconcilers {
    deployments: Arc<Deployments>,
    observed: Arc<Observed>,
    queues: Queues,
}

impl Reconcilers {
    /// Builds the term's reconcilers over the copy of `/observed/`, the snapshot and a new
    /// reflector of `/desired`, and starts what triggers them as the term's tasks (the
    /// snapshot's changes, the reflector's); with the reflector's readers' handle, to wait
    /// for its first list.
    fn assemble(
        replica: &Replica,
        fenced: FencedStore,
        copy: ObservedCopy,
        queues: Queues,
        snapshot: &Arc<MarathonSnapshot>,
        term: &Term,
        tasks: &mut JoinSet<()>,
    ) -> (Reconcilers, Reflection<DeploymentKey>) {
        let layout = replica.layout.clone();
        let (reflector, desired) = Reflector::new("desired", move |key| layout.desired_key(key));
        let watch = fenced.store().watch(&replica.layout.desired_root());
        let deployments = Arc::new(Deployments::new(
            replica.mapping.clone(),
            desired.clone(),
            Arc::clone(snapshot),
            Records {
                statuses: copy.statuses,
                history: copy.history,
                journal: copy.journal,
                fenced: fenced.clone(),
            },
            term.fence.clone(),
        ));
        let observed = Arc::new(Observed::new(
            replica.mapping.installation().clone(),
            Arc::clone(snapshot),
            copy.tree,
            fenced,
            Arc::clone(&replica.metrics),
        ));
        let reconcilers = Reconcilers {
            deployments,
            observed,
            queues,
        };
        reconcilers.spawn_triggers(replica, snapshot, term, tasks);
        tasks.spawn(trigger::run(
            reflector.changes(watch, Arc::clone(&replica.metrics)),
            reconcilers.queues.deployments.clone(),
            |key| Triggered::key(Some(key)),
            Vec::new,
            term.stop.clone(),
        ));
        (reconcilers, desired)
    }

    /// The snapshot's changes trigger both reconcilers ([`triggers`]); the triggers belong
    /// to the term.
    fn spawn_triggers(
        &self,
        replica: &Replica,
        snapshot: &MarathonSnapshot,
        term: &Term,
        tasks: &mut JoinSet<()>,
    ) {
        let installation = replica.mapping.installation().clone();
        tasks.spawn(trigger::run(
            snapshot.changes(),
            self.queues.deployments.clone(),
            {
                let installation = installation.clone();
                move |change| triggers::deployments(&installation, change)
            },
            {
                let deployments = Arc::clone(&self.deployments);
                move || deployments.keys()
            },
            term.stop.clone(),
        ));
        tasks.spawn(trigger::run(
            snapshot.changes(),
            self.queues.observed.clone(),
            move |change| triggers::observed(&installation, change),
            {
                let observed = Arc::clone(&self.observed);
                move || observed.keys()
            },
            term.stop.clone(),
        ));
    }

    /// Queues every key of both reconcilers (converged keys cost neither a Marathon call nor
    /// an etcd write).
    fn queue_every_key(&self) {
        self.queues.deployments.resync(self.deployments.keys());
        self.queues.observed.resync(self.observed.keys());
    }

    /// Runs both reconcilers until the term stops; then closes their queues.
    async fn run(self, replica: &Replica, term: &Term) {
        let runner = |controller| RunnerConfig {
            controller,
            workers: replica.config.workers,
            drain: replica.config.drain,
        };
        let Reconcilers {
            deployments,
            observed,
            queues,
        } = self;
        tokio::join!(
            runner::run(
                queues.deployments.clone(),
                runner(DEPLOYMENTS),
                Arc::clone(&replica.metrics),
                move |key| {
                    let deployments = Arc::clone(&deployments);
                    async move { deployments.reconcile(key).await }
                },
                term.stop.clone(),
            ),
            runner::run(
                queues.observed.clone(),
                runner(OBSERVED),
                Arc::clone(&replica.metrics),
                move |key| {
                    let observed = Arc::clone(&observed);
                    async move { observed.reconcile(key).await }
                },
                term.stop.clone(),
            ),
        );
        queues.deployments.close();
        queues.observed.close();
    }
}

/// Marathon's reachability as a term sees it: not listed yet when the term begins, unknown
/// again once it ends (however it ends).
struct TermSeesMarathon(Arc<MarathonSeen>);

impl TermSeesMarathon {
    /// Follows the snapshot's reachability into `seen` for as long as the term's tasks run.
    fn follow(
        seen: &Arc<MarathonSeen>,
        snapshot: &MarathonSnapshot,
        tasks: &mut JoinSet<()>,
    ) -> TermSeesMarathon {
        seen.set(Some(Reachability::Unknown));
        let changes = snapshot.changes();
        tasks.spawn({
            let seen = Arc::clone(seen);
            async move {
                let mut changes = std::pin::pin!(changes);
                while let Some(change) = changes.next().await {
                    if let SnapshotChange::Reachability(reachability) = change {
                        seen.set(Some(reachability));
                    }
                }
            }
        });
        TermSeesMarathon(Arc::clone(seen))
    }
}

impl Drop for TermSeesMarathon {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

/// Every `interval`: relist Marathon (one call), re-read foreign apps, queue every key of
/// both reconcilers (converged keys cost neither a Marathon call nor an etcd write).
async fn resync(
    snapshot: Arc<MarathonSnapshot>,
    reconcilers: Reconcilers,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(error) = snapshot.relist(RelistReason::Resync).await {
            warn!(%error, "cannot relist Marathon for the resync");
        }
        snapshot.refresh_foreign().await;
        reconcilers.queue_every_key();
    }
}

#[cfg(test)]
mod tests {
    use theseus_testkit::{EtcdServer, free_port, wait_until_async};

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(30);

    async fn get(addr: SocketAddr, path: &str) -> String {
        reqwest::get(format!("http://{addr}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn gauge(metrics: &str, name: &str) -> i64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} is in /metrics"))
            .parse()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dashboard_watches_etcd_only_once_a_page_is_asked_for() {
        let etcd = EtcdServer::start();
        // Nobody answers Marathon: this test is about the endpoints and the dashboard.
        let marathon = format!("http://127.0.0.1:{}", free_port());
        let mut config = ControllerConfig::new(
            EtcdConfig::new(etcd.endpoints()),
            MarathonConfig::new(vec![marathon.parse().unwrap()]),
        );
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.lease_ttl = Duration::from_secs(2);
        config.drain = Duration::from_secs(1);
        config.dashboard_idle_timeout = Duration::from_millis(300);
        let controller = Controller::start(config).await.unwrap();
        let addr = controller.http_addr();

        // Probes and scrapes start nothing.
        for path in ["/healthz", "/readyz", "/metrics", "/healthz", "/readyz"] {
            get(addr, path).await;
        }
        let metrics = get(addr, "/metrics").await;
        assert_eq!(
            gauge(&metrics, "theseus_controller_dashboard_watching"),
            0,
            "{metrics}"
        );
        assert_eq!(gauge(&metrics, "theseus_controller_dashboard_viewers"), 0);

        // An open page does; once it has gone, the dashboard stops again.
        let page = reqwest::get(format!("http://{addr}/api/events?view=fleet"))
            .await
            .unwrap();
        let metrics = get(addr, "/metrics").await;
        assert_eq!(gauge(&metrics, "theseus_controller_dashboard_watching"), 1);
        assert_eq!(gauge(&metrics, "theseus_controller_dashboard_viewers"), 1);
        drop(page);
        wait_until_async(DEADLINE, "the dashboard stops watching", || async {
            let metrics = get(addr, "/metrics").await;
            gauge(&metrics, "theseus_controller_dashboard_watching") == 0
        })
        .await;
        controller.shutdown().await;
    }
}
