//! The watcher (`theseus watch`, the old watcher.py): runs a hook each time the serving
//! endpoints of a watched service change.
//!
//! # What it promises
//!
//! - **One etcd watch per watcher**, on `<p>/observed/<service>/` for one service or on
//!   `<p>/observed/` for several, through the store's resumable watch: it survives etcd
//!   restarts, dead members and compactions, and after any of them the hook gets the state
//!   etcd holds (a relist delivers the difference). No polling.
//! - **Endpoints** of a service are its serving tasks ([`TaskRecord::is_serving`]: running,
//!   and healthy where the app has health checks) over all its deployments, keeping only
//!   tasks that carry every one of the watcher's labels, if it has any. A change of anything
//!   else (a staging task, a status) runs nothing.
//! - **On start**, once the first listing is in, the hook runs once per watched service with
//!   every endpoint in `added` and `THESEUS_DELTA` equal to the count, even when that is 0 (a
//!   service that does not exist yet is an empty one): a hook that writes a peer list starts
//!   from the truth, not from whatever was there before.
//! - **Debounced**: a burst of changes runs the hook once, after the endpoints have been
//!   quiet for the debounce period (250 ms by default), at most four periods after the
//!   burst's first change. A burst that ends where it started runs nothing.
//! - **One run at a time per service**, and the last run always has the latest state: changes
//!   during a run are delivered, gathered, after it. Hooks of different services may run at
//!   once.
//! - **Failures are reported**: a hook that exits non-zero, dies of a signal or cannot start
//!   is logged with its exit status or signal and the tail of its stderr; the next change
//!   runs it again (counting the failed run as delivered).
//! - **Shutdown** (the token given to [`Watcher::run`]; SIGINT or SIGTERM for the command):
//!   running hooks get SIGTERM on their process group, then SIGKILL after a grace period;
//!   pending changes are dropped; the watcher returns.
//!
//! # The hook's contract
//!
//! `sh -c CMD` with, in its environment, `THESEUS_SERVICE` (the service), `THESEUS_DELTA` (the
//! number of endpoints now minus before: the old `service_change(service, delta)`) and
//! `THESEUS_REVISION`, and on stdin one JSON object (see [`Change`] and [`Node`]):
//!
//! ```json
//! {"service": "ingestor", "revision": 1234, "delta": 1,
//!  "added": [{"task_id": "ingestor_dev.4f2c", "deployment": "dev", "host": "10.0.0.5",
//!             "ports": {"api": {"host": 31005, "container": 5000, "protocol": "tcp"}},
//!             "labels": ["dev"]}],
//!  "removed": [],
//!  "nodes": [{"task_id": "ingestor_dev.4f2c", "...": "..."},
//!            {"task_id": "ingestor_dev.9a01", "...": "..."}]}
//! ```
//!
//! `revision` is the etcd revision the state is current at; `nodes` is every endpoint,
//! sorted by host then task id.
//!
//! Instead of a command, [`JsonLinesHook`] prints the same document as one line on the
//! watcher's stdout (`theseus watch --json-lines`), for a program that reads the stream.
//!
//! [`TaskRecord::is_serving`]: crate::api::TaskRecord::is_serving

mod change;
mod delivery;
mod hook;
mod lines;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use change::{Change, Endpoints};
pub use delivery::{DEFAULT_DEBOUNCE, Debounce};
pub use hook::{DEFAULT_STOP_GRACE, Hook, HookOutcome, ShellHook};
pub use lines::JsonLinesHook;

use super::Error;
use super::observed::ObservedTasks;
use crate::api::DnsLabel;
use crate::guest::Node;
use crate::store::Store;

/// What a watcher watches and how it gathers changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherConfig {
    /// The services to watch.
    pub services: Vec<DnsLabel>,
    /// Labels an endpoint's deployment must carry (all of them); none: every endpoint.
    pub labels: Vec<String>,
    /// How bursts are gathered.
    pub debounce: Debounce,
}

/// Watches services' endpoints and runs a hook on their changes.
#[derive(Debug, Clone)]
pub struct Watcher {
    store: Store,
    config: WatcherConfig,
}

impl Watcher {
    /// A watcher of `config.services` through `store`; [`Error::NoServices`] when there are
    /// none.
    pub fn new(store: Store, mut config: WatcherConfig) -> Result<Watcher, Error> {
        config.services.sort();
        config.services.dedup();
        if config.services.is_empty() {
            return Err(Error::NoServices);
        }
        Ok(Watcher { store, config })
    }

    /// The configuration, services sorted and without repeats.
    pub fn config(&self) -> &WatcherConfig {
        &self.config
    }

    /// The endpoints of every watched service now, as the first run of the hook would get
    /// them (everything `added`), from one consistent read.
    pub async fn current(&self) -> Result<Vec<Change>, Error> {
        let mut observed = self.observed();
        observed.apply_listing(self.store.list(&observed.prefix()).await?);
        Ok(self
            .config
            .services
            .iter()
            .map(|service| {
                Change::between(service.as_str(), None, &self.endpoints(&observed, service))
            })
            .collect())
    }

    /// Runs `hook` for every change until `shutdown` fires, then terminates running hooks
    /// and returns. Errors of the etcd watch are logged; the watch recovers from them.
    pub async fn run<H: Hook>(self, hook: H, shutdown: CancellationToken) {
        let hook = Arc::new(hook);
        let mut observed = self.observed();
        let mut stream = observed.follow(self.store.watch(&observed.prefix()));
        let mut deliveries = JoinSet::new();
        let mut publishers: BTreeMap<DnsLabel, watch::Sender<Option<Endpoints>>> = BTreeMap::new();
        for service in &self.config.services {
            let (publisher, states) = watch::channel(None);
            publishers.insert(service.clone(), publisher);
            deliveries.spawn(delivery::deliver(
                service.to_string(),
                states,
                hook.clone(),
                self.config.debounce,
                shutdown.clone(),
            ));
        }
        tracing::info!(
            services = %self.config.services.iter().map(DnsLabel::as_str).collect::<Vec<_>>().join(","),
            prefix = %observed.prefix(),
            "watching"
        );
        let mut first_sync = true;
        loop {
            let batch = tokio::select! {
                biased;
                () = shutdown.cancelled() => None,
                errors = observed.next_batch(&mut stream) => Some(errors),
            };
            let Some(errors) = batch else { break };
            for error in errors {
                tracing::warn!(%error, "etcd watch interrupted; it resumes by itself");
            }
            if !observed.is_synced() {
                continue;
            }
            let changed = observed.take_changed();
            for (service, publisher) in &publishers {
                if !first_sync && !changed.contains(service) {
                    continue;
                }
                let now = self.endpoints(&observed, service);
                publisher.send_if_modified(|published| match published {
                    Some(published) if published.nodes == now.nodes => false,
                    _ => {
                        *published = Some(now);
                        true
                    }
                });
            }
            first_sync = false;
        }
        drop(publishers);
        while deliveries.join_next().await.is_some() {}
        tracing::info!("watcher stopped");
    }

    fn observed(&self) -> ObservedTasks {
        ObservedTasks::new(
            self.store.layout().clone(),
            self.config.services.iter().cloned(),
        )
    }

    fn endpoints(&self, observed: &ObservedTasks, service: &DnsLabel) -> Endpoints {
        let nodes: Vec<Node> = observed.service(service).serving(&self.config.labels);
        Endpoints {
            revision: observed.revision(),
            nodes,
        }
    }
}
