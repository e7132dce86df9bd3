//! The statuses under `/observed/<service>/<name>/status`: what etcd holds, and the only way
//! the controller writes them.
//!
//! What it promises:
//! - [`Statuses::observe`] is fed every change of a status the watch of `/observed/`
//!   delivers, from its first list on (see [`ObservedTree`](crate::observed::tree::ObservedTree)),
//!   so the copy is what etcd holds, whoever wrote it. Changes are ordered by revision: the
//!   echo of an older write never turns a newer one back.
//! - A status somebody else wrote during the term (a foreign put, a value that does not
//!   decode, a deletion) is reported once (unless this replica's lease has run out, when the
//!   writer is its successor), with its key, in the log and in the
//!   `status_repairs_total` metric, and `observe` names its key so that it is reconciled: the
//!   reconcile writes the status it should be, or removes a status whose deployment has no
//!   `/desired` key. Statuses left by earlier terms are loaded, not reported.
//! - [`Statuses::write`] puts a status only when it says something new
//!   ([`DeploymentStatus::same_report`] is false), so an idle resync writes nothing. A status
//!   that does not decode differs from every status and is replaced.
//! - The controller's own write in flight is recognised when its echo arrives before the
//!   write returns, so it is never taken for somebody else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use theseus::api::{DeploymentKey, DeploymentStatus};
use theseus::store::{Layout, Revision, Txn};
use tracing::warn;

use crate::observed::tree::StatusChange;
use crate::runtime::fence::{FenceError, FencedStore};
use crate::runtime::metrics::Metrics;

/// A status as etcd holds it.
#[derive(Debug, Clone)]
enum HeldStatus {
    /// A status that decodes; shared, so a reconcile reads it without copying it.
    Status(Arc<DeploymentStatus>),
    /// A value that does not decode as a status.
    Unreadable,
}

/// A write of this replica that has not returned yet.
#[derive(Debug, Clone)]
enum Pending {
    Put(Box<DeploymentStatus>),
    Delete,
}

/// What the copy knows of one key.
#[derive(Debug, Clone)]
struct Known {
    /// `None`: no status (deleted, or never written).
    held: Option<HeldStatus>,
    /// The revision of the last change applied.
    revision: Revision,
    pending: Option<Pending>,
}

impl Known {
    fn pending_matches(&self, held: Option<&HeldStatus>) -> bool {
        match (&self.pending, held) {
            (Some(Pending::Put(ours)), Some(HeldStatus::Status(theirs))) => {
                ours.same_report(theirs)
            }
            (Some(Pending::Delete), None) => true,
            _ => false,
        }
    }
}

/// What a status change by someone else was, for the log and the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// A status that decodes but is not the one this replica wrote.
    Foreign,
    /// A value that does not decode as a status.
    Unreadable,
    /// The status was deleted.
    Deleted,
}

impl Repair {
    fn metric_label(self) -> &'static str {
        match self {
            Repair::Foreign => "foreign_write",
            Repair::Unreadable => "unreadable",
            Repair::Deleted => "deleted",
        }
    }
}

/// The pure part: what etcd holds for each key, and the write in flight.
#[derive(Debug, Default)]
struct Copy {
    known: HashMap<DeploymentKey, Known>,
}

impl Copy {
    fn entry(&mut self, key: &DeploymentKey) -> &mut Known {
        self.known.entry(key.clone()).or_insert(Known {
            held: None,
            revision: 0,
            pending: None,
        })
    }

    /// Whether the change of `key` at `revision` is applied already, or overwritten since.
    fn applied(&self, key: &DeploymentKey, revision: Revision) -> bool {
        self.known
            .get(key)
            .is_some_and(|known| known.revision >= revision)
    }

    /// Applies a change at `revision`; what somebody else did, if it needs repair.
    fn observe(
        &mut self,
        key: &DeploymentKey,
        held: Option<HeldStatus>,
        revision: Revision,
        listed: bool,
    ) -> Option<Repair> {
        if self.applied(key, revision) {
            // The echo of a change already applied, or of one this replica overwrote since.
            return None;
        }
        let current = self.entry(key);
        let ours = current.pending_matches(held.as_ref());
        let unchanged = match (&current.held, &held) {
            (Some(HeldStatus::Status(before)), Some(HeldStatus::Status(after))) => {
                before.same_report(after)
            }
            (None, None) => true,
            _ => false,
        };
        current.held = held;
        current.revision = revision;
        if listed || ours || unchanged {
            return None;
        }
        Some(match &current.held {
            Some(HeldStatus::Status(_)) => Repair::Foreign,
            Some(HeldStatus::Unreadable) => Repair::Unreadable,
            None => Repair::Deleted,
        })
    }

    /// Starts a put of `status`; `false` when the held status already says the same.
    fn begin_put(&mut self, key: &DeploymentKey, status: &DeploymentStatus) -> bool {
        let current = self.entry(key);
        if let Some(HeldStatus::Status(held)) = &current.held
            && held.same_report(status)
        {
            return false;
        }
        current.pending = Some(Pending::Put(Box::new(status.clone())));
        true
    }

    /// Starts a delete; `false` when there is no status.
    fn begin_delete(&mut self, key: &DeploymentKey) -> bool {
        match self.known.get_mut(key) {
            Some(current) if current.held.is_some() => {
                current.pending = Some(Pending::Delete);
                true
            }
            _ => false,
        }
    }

    /// Ends the write in flight for `key`: applies `held` at `revision` if the write
    /// succeeded and nothing newer is known.
    fn settle(
        &mut self,
        key: &DeploymentKey,
        revision: Option<Revision>,
        held: Option<HeldStatus>,
    ) {
        let Some(current) = self.known.get_mut(key) else {
            return;
        };
        current.pending = None;
        if let Some(revision) = revision
            && revision > current.revision
        {
            current.held = held;
            current.revision = revision;
        }
    }

    fn get(&self, key: &DeploymentKey) -> Option<Arc<DeploymentStatus>> {
        match self.known.get(key)?.held.as_ref()? {
            HeldStatus::Status(status) => Some(Arc::clone(status)),
            HeldStatus::Unreadable => None,
        }
    }

    fn keys(&self) -> Vec<DeploymentKey> {
        self.known
            .iter()
            .filter(|(_, known)| known.held.is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// A status put begun by [`Statuses::stage`].
#[derive(Debug)]
pub struct StagedStatus {
    key: DeploymentKey,
    status_key: String,
    bytes: Vec<u8>,
    status: DeploymentStatus,
}

impl StagedStatus {
    /// The put, as a transaction of its own or to join another.
    pub fn txn(&self) -> Txn {
        Txn::new().put(&self.status_key, self.bytes.clone())
    }

    /// The bytes it puts.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// The statuses of one term.
#[derive(Debug)]
pub struct Statuses {
    fenced: FencedStore,
    layout: Layout,
    copy: Mutex<Copy>,
    metrics: Arc<Metrics>,
}

impl Statuses {
    /// An empty copy; fill it with [`Statuses::observe`].
    pub fn new(fenced: FencedStore, metrics: Arc<Metrics>) -> Self {
        let layout = fenced.store().layout().clone();
        Self {
            fenced,
            layout,
            copy: Mutex::default(),
            metrics,
        }
    }

    fn copy(&self) -> MutexGuard<'_, Copy> {
        self.copy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one change the watch delivered; the key to reconcile when somebody else made
    /// it during the term.
    pub fn observe(&self, change: StatusChange) -> Option<DeploymentKey> {
        let StatusChange {
            key,
            entry,
            revision,
            listed,
        } = change;
        // The echo of this replica's own put, once recorded, is not decoded again.
        if self.copy().applied(&key, revision) {
            return None;
        }
        let held = entry.map(|entry| match entry.json::<DeploymentStatus>() {
            Ok(status) => HeldStatus::Status(Arc::new(status)),
            Err(error) => {
                if listed {
                    warn!(%key, %error, "a status does not decode; it will be rewritten");
                }
                HeldStatus::Unreadable
            }
        });
        let repair = self.copy().observe(&key, held, revision, listed)?;
        // A replica whose lease ran out (paused past it, say) sees its successor's writes
        // before it notices: they are not foreign, and it may not repair anything anyway.
        if self
            .fenced
            .fence()
            .check(&self.layout.status(&key))
            .is_err()
        {
            return None;
        }
        warn!(
            %key,
            revision,
            repair = repair.metric_label(),
            "a status was changed by someone else; the controller will put it right"
        );
        self.metrics.status_repaired(repair.metric_label());
        Some(key)
    }

    /// The status etcd holds for `key`, if it decodes.
    pub fn get(&self, key: &DeploymentKey) -> Option<Arc<DeploymentStatus>> {
        self.copy().get(key)
    }

    /// Every key with a status (readable or not).
    pub fn keys(&self) -> Vec<DeploymentKey> {
        self.copy().keys()
    }

    /// Whether `key` has a status (readable or not).
    pub fn contains(&self, key: &DeploymentKey) -> bool {
        self.copy()
            .known
            .get(key)
            .is_some_and(|known| known.held.is_some())
    }

    /// Writes `status` for `key` unless the held one says the same; whether it wrote.
    /// Callers never write one key concurrently (the work queue's promise).
    pub async fn write(
        &self,
        key: &DeploymentKey,
        status: DeploymentStatus,
    ) -> Result<bool, FenceError> {
        let Some(staged) = self.stage(key, status)? else {
            return Ok(false);
        };
        let written = self
            .fenced
            .txn(&self.layout.status(key), staged.txn())
            .await;
        self.settle(staged, written.as_ref().ok().copied());
        written?;
        Ok(true)
    }

    /// Begins a write of `status` for `key` to be sent in a transaction of the caller's
    /// ([`StagedStatus::txn`]): `None` when the held status already says the same. Every
    /// staged write is ended with [`Statuses::settle`], whether etcd accepted it or not.
    pub fn stage(
        &self,
        key: &DeploymentKey,
        status: DeploymentStatus,
    ) -> Result<Option<StagedStatus>, FenceError> {
        let status_key = self.layout.status(key);
        let bytes = serde_json::to_vec(&status).map_err(|error| FenceError::Encode {
            key: status_key.clone(),
            reason: error.to_string(),
        })?;
        if !self.copy().begin_put(key, &status) {
            return Ok(None);
        }
        Ok(Some(StagedStatus {
            key: key.clone(),
            status_key,
            bytes,
            status,
        }))
    }

    /// Ends a staged write: `revision` is where etcd accepted it, `None` if it did not.
    pub fn settle(&self, staged: StagedStatus, revision: Option<Revision>) {
        self.copy().settle(
            &staged.key,
            revision,
            Some(HeldStatus::Status(Arc::new(staged.status))),
        );
        if revision.is_some() {
            self.metrics.status_written("put");
        }
    }

    /// Removes the status of `key`, if there is one; whether it removed one.
    pub async fn remove(&self, key: &DeploymentKey) -> Result<bool, FenceError> {
        if !self.copy().begin_delete(key) {
            return Ok(false);
        }
        let deleted = self.fenced.delete(&self.layout.status(key)).await;
        self.copy()
            .settle(key, deleted.as_ref().ok().copied(), None);
        deleted?;
        self.metrics.status_written("delete");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use theseus::api::{InstanceCounts, Phase};

    use super::*;

    fn key() -> DeploymentKey {
        "web/dev".parse().unwrap()
    }

    fn status(revision: i64) -> DeploymentStatus {
        DeploymentStatus {
            observed_revision: revision,
            phase: Phase::Running,
            conditions: vec![],
            instances: InstanceCounts::default(),
            app_id: None,
            app_version: None,
            deployment_ids: vec![],
            last_task_failure: None,
            revision_started_at: None,
            revision_running_at: None,
            revision_task_failures: 0,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn held(revision: i64) -> Option<HeldStatus> {
        Some(HeldStatus::Status(Arc::new(status(revision))))
    }

    #[test]
    fn statuses_left_by_earlier_terms_load_without_a_repair() {
        let mut copy = Copy::default();
        assert_eq!(copy.observe(&key(), held(3), 10, true), None);
        assert_eq!(
            copy.observe(&key(), Some(HeldStatus::Unreadable), 11, true),
            None
        );
        assert_eq!(copy.keys(), [key()], "an unreadable status is still there");
        assert_eq!(copy.get(&key()), None);
    }

    #[test]
    fn a_foreign_put_an_unreadable_value_and_a_deletion_are_each_repaired() {
        let mut copy = Copy::default();
        copy.observe(&key(), held(3), 10, true);
        assert_eq!(
            copy.observe(&key(), held(2), 11, false),
            Some(Repair::Foreign)
        );
        assert_eq!(
            copy.get(&key()).as_deref(),
            Some(&status(2)),
            "the copy holds etcd's value"
        );
        assert_eq!(
            copy.observe(&key(), Some(HeldStatus::Unreadable), 12, false),
            Some(Repair::Unreadable)
        );
        assert_eq!(copy.observe(&key(), None, 13, false), Some(Repair::Deleted));
        assert!(copy.keys().is_empty());
        assert_eq!(
            copy.observe(&"other/key".parse().unwrap(), held(1), 14, false),
            Some(Repair::Foreign),
            "a status nobody asked for"
        );
    }

    #[test]
    fn the_echo_of_a_write_in_flight_is_not_taken_for_someone_elses() {
        let mut copy = Copy::default();
        copy.observe(&key(), held(3), 10, true);
        assert!(copy.begin_put(&key(), &status(4)));
        // The watch delivers the write before the put returns.
        assert_eq!(copy.observe(&key(), held(4), 12, false), None);
        copy.settle(&key(), Some(12), held(4));
        assert_eq!(copy.get(&key()).as_deref(), Some(&status(4)));
        assert!(!copy.begin_put(&key(), &status(4)), "nothing new to say");

        assert!(copy.begin_delete(&key()));
        assert_eq!(copy.observe(&key(), None, 13, false), None);
        copy.settle(&key(), Some(13), None);
        assert!(!copy.begin_delete(&key()), "nothing left to delete");
    }

    #[test]
    fn an_older_echo_never_turns_a_newer_write_back() {
        let mut copy = Copy::default();
        assert!(copy.begin_put(&key(), &status(4)));
        copy.settle(&key(), Some(20), held(4));
        assert_eq!(copy.observe(&key(), held(1), 15, false), None);
        assert_eq!(copy.observe(&key(), held(4), 20, false), None);
        assert_eq!(copy.get(&key()).as_deref(), Some(&status(4)));
    }

    #[test]
    fn a_failed_write_changes_nothing_but_ends_the_write_in_flight() {
        let mut copy = Copy::default();
        copy.observe(&key(), held(3), 10, true);
        assert!(copy.begin_put(&key(), &status(4)));
        copy.settle(&key(), None, held(4));
        assert_eq!(copy.get(&key()).as_deref(), Some(&status(3)));
        assert_eq!(
            copy.observe(&key(), held(4), 11, false),
            Some(Repair::Foreign),
            "no write is in flight any more"
        );
    }
}
