//! The observed reconcile: the task records of one deployment, `/observed/<service>/<name>/
//! tasks/*`, made to say what Marathon's snapshot says about the tasks of its app.
//!
//! What it promises, for one key (never reconciled twice at once):
//! - the records are exactly the tasks of the owned app that have one
//!   ([`has_record`](super::record::has_record)): new and changed records are put, records
//!   of tasks that are gone (ended, lost, their app deleted, or the app not theseus's) are
//!   deleted, and equal records (compared as records, not as text) are left alone; so a
//!   reconcile with nothing changed writes nothing;
//! - the writes of one reconcile are fenced transactions of at most
//!   [`MAX_TXN_OPERATIONS`] operations, new records before removals;
//! - an app that is not theseus's (no ownership labels for the key, another installation's
//!   prefix) never gets records;
//! - while Marathon cannot be trusted (never listed, unreachable, or the app's state unknown
//!   after a write whose outcome is unknown and that cannot be re-read), nothing is written
//!   or deleted and the key backs off; so an outage never empties the tree;
//! - a task launched from a definition other than the snapshot's has its ports named by that
//!   definition, read once ([`AppVersions`]); if it cannot be read, that task's record is
//!   left as it is and the key backs off, while the other tasks' records are written.
//!
//! Decisions come from the shared [`MarathonSnapshot`] and the [`ObservedTree`]: a task event
//! costs one etcd transaction and no Marathon call.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use theseus::api::{DeploymentKey, TaskRecord};
use theseus::marathon::{self, App, AppId, Version};
use theseus::store::{Layout, Txn};
use tracing::debug;

use super::record::{LaunchedFrom, TaskTemplate, launched_from};
use super::tree::ObservedTree;
use super::versions::AppVersions;
use crate::marathon_snapshot::{MarathonSnapshot, PictureError};
use crate::runtime::fence::{FenceError, FencedStore, MAX_TXN_OPERATIONS};
use crate::runtime::metrics::{MetricLabel, Metrics};
use crate::runtime::runner::Action;
use theseus::mapping::{Installation, Ownership};

/// Why a reconcile of the task records failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ObservedError {
    /// Marathon's picture cannot be trusted; the records were left as they are.
    #[error(
        "Marathon is unavailable, so the task records of {key} are left as they are: \
         {source}; retrying with backoff"
    )]
    MarathonUnavailable {
        /// The deployment.
        key: DeploymentKey,
        /// Why.
        #[source]
        source: PictureError,
    },
    /// A definition some tasks were launched from could not be read.
    #[error(
        "cannot read version {version} of app `{app}` to name the ports of its tasks, so \
         their records under {key} are left as they are: {source}; retrying with backoff"
    )]
    Version {
        /// The deployment.
        key: DeploymentKey,
        /// The app.
        app: AppId,
        /// The version its tasks run.
        version: Version,
        /// Marathon's answer.
        #[source]
        source: Box<marathon::Error>,
    },
    /// The records could not be written (etcd failed, or the leadership is gone).
    #[error("cannot write the task records of {key}: {source}")]
    Write {
        /// The deployment.
        key: DeploymentKey,
        /// Why.
        #[source]
        source: Box<FenceError>,
    },
}

impl MetricLabel for ObservedError {
    fn metric_label(&self) -> &'static str {
        match self {
            ObservedError::MarathonUnavailable { source, .. } => source.metric_label(),
            ObservedError::Version { source, .. } => source.metric_label(),
            ObservedError::Write { source, .. } => source.metric_label(),
        }
    }
}

/// One change to the records of a deployment.
enum RecordChange {
    Put(String, Box<TaskRecord>),
    Delete(String),
}

/// The records a deployment should have, and what kept some from being known.
struct Wanted {
    records: BTreeMap<String, TaskRecord>,
    /// Tasks whose record cannot be made now: theirs stay as they are.
    unresolved: HashSet<String>,
    failure: Option<ObservedError>,
}

/// The observed reconciler of one leadership term.
#[derive(Debug)]
pub struct Observed {
    installation: Installation,
    layout: Layout,
    snapshot: Arc<MarathonSnapshot>,
    tree: ObservedTree,
    versions: AppVersions,
    fenced: FencedStore,
    metrics: Arc<Metrics>,
}

impl Observed {
    /// A reconciler over the snapshot (which must embed tasks) and the tree, writing through
    /// `fenced`.
    pub fn new(
        installation: Installation,
        snapshot: Arc<MarathonSnapshot>,
        tree: ObservedTree,
        fenced: FencedStore,
        metrics: Arc<Metrics>,
    ) -> Self {
        debug_assert!(
            snapshot.tracks_tasks(),
            "the observed reconciler needs tasks"
        );
        Self {
            installation,
            layout: fenced.store().layout().clone(),
            versions: AppVersions::new(snapshot.client().clone()),
            snapshot,
            tree,
            fenced,
            metrics,
        }
    }

    /// The installation whose apps it records.
    pub fn installation(&self) -> &Installation {
        &self.installation
    }

    /// Every key there may be records for: those with records, and those with an app.
    pub fn keys(&self) -> BTreeSet<DeploymentKey> {
        let mut keys: BTreeSet<DeploymentKey> = self.tree.keys().into_iter().collect();
        keys.extend(
            self.snapshot
                .apps()
                .iter()
                .filter_map(|app| self.installation.key_of(&app.id)),
        );
        keys
    }

    /// Reconciles the records of `key`; see the module documentation.
    pub async fn reconcile(&self, key: DeploymentKey) -> Result<Action, ObservedError> {
        let app_id = self.installation.app_id(&key);
        let app = self
            .snapshot
            .current_app(&app_id)
            .await
            .map_err(|source| ObservedError::MarathonUnavailable {
                key: key.clone(),
                source,
            })?
            .filter(|app| self.installation.ownership(&key, app) == Ownership::Owned);
        let wanted = match app.as_deref() {
            Some(app) => match &app.tasks {
                Some(_) => self.wanted(&key, app).await,
                // Read without its tasks (never, with the snapshot's embeds): nothing is
                // known about them, so nothing is changed.
                None => return Ok(Action::Done),
            },
            None => {
                self.versions.retain(&app_id, &HashSet::new());
                Wanted {
                    records: BTreeMap::new(),
                    unresolved: HashSet::new(),
                    failure: None,
                }
            }
        };
        let have = self.tree.records(&key);
        // Removals after the new records: a reader between two transactions sees more
        // endpoints, not fewer.
        let removals: Vec<RecordChange> = have
            .keys()
            .filter(|id| !wanted.records.contains_key(*id) && !wanted.unresolved.contains(*id))
            .map(|id| RecordChange::Delete(id.clone()))
            .collect();
        let mut changes: Vec<RecordChange> = wanted
            .records
            .into_iter()
            .filter(|(id, record)| {
                have.get(id)
                    .is_none_or(|have| !have.is_some_and(|have| have.says(record)))
            })
            .map(|(id, record)| RecordChange::Put(id, Box::new(record)))
            .collect();
        changes.extend(removals);
        self.write(&key, changes).await?;
        match wanted.failure {
            Some(failure) => Err(failure),
            None => Ok(Action::Done),
        }
    }

    /// The records the tasks of `app` (owned by `key`) call for.
    async fn wanted(&self, key: &DeploymentKey, app: &App) -> Wanted {
        let current = TaskTemplate::of(app);
        let mut wanted = Wanted {
            records: BTreeMap::new(),
            unresolved: HashSet::new(),
            failure: None,
        };
        let mut older: HashMap<Version, Arc<TaskTemplate>> = HashMap::new();
        let tasks = app.tasks.as_deref().unwrap_or_default();
        for task in tasks {
            if !super::record::has_record(&task.state) {
                continue;
            }
            let template = match launched_from(app, task) {
                LaunchedFrom::Current => &current,
                LaunchedFrom::Version(version) => {
                    if !older.contains_key(&version) {
                        match self.versions.template(&app.id, &version, &current).await {
                            Ok(template) => {
                                older.insert(version.clone(), template);
                            }
                            Err(error) => {
                                debug!(app = %app.id, %version, %error, "cannot read a version");
                                wanted.unresolved.insert(task.id.as_str().to_owned());
                                wanted.failure.get_or_insert(ObservedError::Version {
                                    key: key.clone(),
                                    app: app.id.clone(),
                                    version,
                                    source: Box::new(error),
                                });
                                continue;
                            }
                        }
                    }
                    &*older[&version]
                }
            };
            if let Some(record) = template.record(key, task) {
                wanted.records.insert(task.id.as_str().to_owned(), record);
            }
        }
        let running: HashSet<&Version> = older.keys().collect();
        self.versions.retain(&app.id, &running);
        wanted
    }

    /// Applies `changes` in fenced transactions, recording each in the tree.
    async fn write(
        &self,
        key: &DeploymentKey,
        changes: Vec<RecordChange>,
    ) -> Result<(), ObservedError> {
        let failed = |source: FenceError| ObservedError::Write {
            key: key.clone(),
            source: Box::new(source),
        };
        let prefix = self.layout.tasks(key);
        for chunk in changes.chunks(MAX_TXN_OPERATIONS) {
            let mut txn = Txn::new();
            for change in chunk {
                txn = match change {
                    RecordChange::Put(id, record) => txn.put(
                        &self.layout.task(key, id),
                        serde_json::to_vec(record).expect("a task record serialises"),
                    ),
                    RecordChange::Delete(id) => txn.delete(&self.layout.task(key, id)),
                };
            }
            let revision = self.fenced.txn(&prefix, txn).await.map_err(failed)?;
            for change in chunk {
                match change {
                    RecordChange::Put(id, record) => {
                        self.tree.written(key, id, record, revision);
                        self.metrics.observed_record_written("put");
                    }
                    RecordChange::Delete(id) => {
                        self.tree.removed(key, id, revision);
                        self.metrics.observed_record_written("delete");
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use theseus::api::Health;
    use theseus::marathon::task::TaskState;

    use super::*;
    use crate::observed::tree::HeldRecord;

    fn record(started_at: Option<&str>, host: &str) -> TaskRecord {
        TaskRecord {
            service: "web".into(),
            deployment: "dev".into(),
            task_id: "t1".into(),
            app_id: "/web/dev".into(),
            host: host.into(),
            agent_id: None,
            ip_addresses: vec![],
            ports: BTreeMap::new(),
            state: TaskState::Running,
            health: Health::Unknown,
            health_checked: false,
            staged_at: None,
            started_at: started_at.map(str::to_owned),
            version: None,
            labels: vec![],
        }
    }

    fn same_record(written: &TaskRecord, wanted: &TaskRecord) -> bool {
        HeldRecord::of(written).says(wanted)
    }

    #[test]
    fn a_written_time_stands_but_a_missing_one_or_any_other_change_is_written() {
        let written = record(Some("2026-01-02T03:04:07.000Z"), "a");
        assert!(same_record(
            &written,
            &record(Some("2026-01-02T03:04:07.004Z"), "a")
        ));
        assert!(!same_record(
            &written,
            &record(Some("2026-01-02T03:04:07.004Z"), "b")
        ));
        assert!(
            !same_record(&record(None, "a"), &written),
            "a time learnt is written"
        );
        assert!(!same_record(&written, &record(None, "a")));
    }

    #[test]
    fn every_field_but_the_times_is_compared() {
        let written = record(Some("2026-01-02T03:04:07.000Z"), "a");
        type Edit = fn(&mut TaskRecord);
        let edits: [Edit; 14] = [
            |r| r.service = "api".into(),
            |r| r.deployment = "prod".into(),
            |r| r.task_id = "t2".into(),
            |r| r.app_id = "/web/prod".into(),
            |r| r.host = "b".into(),
            |r| r.agent_id = Some("agent".into()),
            |r| r.ip_addresses = vec!["10.0.0.1".into()],
            |r| {
                r.ports.insert(
                    "http".into(),
                    theseus::api::PortBinding {
                        host: 31000,
                        container: 80,
                        protocol: "tcp".into(),
                    },
                );
            },
            |r| r.state = TaskState::Staging,
            |r| r.health = Health::Healthy,
            |r| r.health_checked = true,
            |r| r.version = Some("2026-01-02T03:04:05.000Z".into()),
            |r| r.labels = vec!["canary".into()],
            |r| r.staged_at = Some("2026-01-02T03:04:06.000Z".into()),
        ];
        for (index, edit) in edits.into_iter().enumerate() {
            let mut wanted = written.clone();
            edit(&mut wanted);
            assert!(!same_record(&written, &wanted), "edit {index} went unseen");
        }
        let mut ports = written.clone();
        ports.ports.insert(
            "http".into(),
            theseus::api::PortBinding {
                host: 31000,
                container: 80,
                protocol: "tcp".into(),
            },
        );
        let mut other_port = ports.clone();
        other_port.ports.get_mut("http").unwrap().container = 8080;
        assert!(!same_record(&ports, &other_port));
        assert!(same_record(&ports, &ports.clone()));
    }
}
