//! The statuses the controller has written, and the only way it writes them.
//!
//! What it promises: [`Statuses::new`] takes every `/observed/<service>/<name>/status` from
//! the list of `/observed/` made at the start of a leadership term (the one the task records
//! are loaded from, see [`ObservedTree`](crate::observed::tree::ObservedTree)); from then on
//! this replica is the only writer (its writes are fenced), so the copy stays exact without a
//! watch. [`Statuses::write`] puts a status only when it says something new
//! ([`DeploymentStatus::same_report`] is false), so an idle resync writes nothing. A status
//! that does not decode counts as absent and is replaced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use theseus::api::{DeploymentKey, DeploymentStatus};
use theseus::store::{Entry, KeyPath, Layout};
use tracing::warn;

use crate::runtime::fence::{FenceError, FencedStore};
use crate::runtime::metrics::Metrics;

/// The written statuses of one term.
#[derive(Debug)]
pub struct Statuses {
    fenced: FencedStore,
    layout: Layout,
    written: Mutex<HashMap<DeploymentKey, DeploymentStatus>>,
    metrics: Arc<Metrics>,
}

impl Statuses {
    /// The statuses in `entries` (the status entries of one list of the layout's
    /// `/observed/`); other entries are ignored.
    pub fn new(fenced: FencedStore, entries: Vec<Entry>, metrics: Arc<Metrics>) -> Self {
        let layout = fenced.store().layout().clone();
        let mut written = HashMap::new();
        for entry in entries {
            let Some(KeyPath::Status(key)) = layout.parse(&entry.key) else {
                continue;
            };
            match entry.json::<DeploymentStatus>() {
                Ok(status) => {
                    written.insert(key, status);
                }
                Err(error) => {
                    warn!(%error, "ignoring a status that does not decode; it will be rewritten")
                }
            }
        }
        Self {
            fenced,
            layout,
            written: Mutex::new(written),
            metrics,
        }
    }

    fn written(&self) -> MutexGuard<'_, HashMap<DeploymentKey, DeploymentStatus>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status last written for `key`.
    pub fn get(&self, key: &DeploymentKey) -> Option<DeploymentStatus> {
        self.written().get(key).cloned()
    }

    /// Every key with a status.
    pub fn keys(&self) -> Vec<DeploymentKey> {
        self.written().keys().cloned().collect()
    }

    /// Writes `status` for `key` unless the written one says the same; whether it wrote.
    /// Callers never write one key concurrently (the work queue's promise).
    pub async fn write(
        &self,
        key: &DeploymentKey,
        status: DeploymentStatus,
    ) -> Result<bool, FenceError> {
        if self
            .written()
            .get(key)
            .is_some_and(|written| written.same_report(&status))
        {
            return Ok(false);
        }
        self.fenced
            .put_json(&self.layout.status(key), &status)
            .await?;
        self.metrics.status_written("put");
        self.written().insert(key.clone(), status);
        Ok(true)
    }

    /// Removes the status of `key`, if there is one; whether it removed one.
    pub async fn remove(&self, key: &DeploymentKey) -> Result<bool, FenceError> {
        if !self.written().contains_key(key) {
            return Ok(false);
        }
        self.fenced.delete(&self.layout.status(key)).await?;
        self.metrics.status_written("delete");
        self.written().remove(key);
        Ok(true)
    }
}
