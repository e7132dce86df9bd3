//! Fencing: every write the controller makes holds only while its leadership does.
//!
//! What it promises:
//! - [`FencedStore`] is the only way the controller writes to etcd. Every write goes in a
//!   transaction (alone, or with other writes waiting at the same time:
//!   [`write_batch`](super::write_batch)) that also requires the leader key's create revision
//!   to be the fencing token of this term ([`Fence`]); a deposed leader's write therefore
//!   changes nothing, even if it arrives late.
//! - A write whose fence fails marks the leadership lost ([`Fence::lost`] is cancelled) and
//!   returns [`FenceError::LeadershipLost`]; the election loop then stops everything at once.
//! - [`Fence::check`] says whether this term may still act, from the local lease deadline: call
//!   it right before each write outside etcd (Marathon), which no transaction can fence.
//!
//! What it does not do: retry (callers back off), or cache reads.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use theseus::store::{Error as StoreError, Revision, Store, Txn};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::{MetricLabel, Metrics};
use super::write_batch::WriteBatcher;

/// The most operations one transaction may hold: etcd's default `--max-txn-ops` (128). The
/// fence adds a compare, which counts against a separate limit of the same size.
pub const MAX_TXN_OPERATIONS: usize = 128;

/// Why a fenced write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The leadership this write was fenced on is gone (the leader key was deleted or
    /// recreated, the lease expired, or the term ended); nothing was written.
    #[error(
        "leadership lost ({reason}); the write to `{key}` was not made and this replica stops \
         acting until it is elected again"
    )]
    LeadershipLost {
        /// The key that was to be written.
        key: String,
        /// How the loss was noticed.
        reason: &'static str,
    },
    /// etcd failed; the write may or may not have happened (a retry is safe). Shared by
    /// the writes one transaction carried.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The term's sender of writes stopped before it answered: the write to `key` may or may
    /// not have happened (a retry is safe).
    #[error(
        "the write to `{key}` may or may not have happened: the controller's etcd writer stopped"
    )]
    WriterStopped {
        /// The key that was to be written.
        key: String,
    },
    /// The value could not be encoded as JSON.
    #[error("cannot encode the value for `{key}` as JSON: {reason}")]
    Encode {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl MetricLabel for FenceError {
    fn metric_label(&self) -> &'static str {
        match self {
            FenceError::LeadershipLost { .. } => "leadership_lost",
            FenceError::Store(error) => error.metric_label(),
            FenceError::Encode { .. } => "encode",
            FenceError::WriterStopped { .. } => "writer_stopped",
        }
    }
}

impl From<StoreError> for FenceError {
    fn from(error: StoreError) -> Self {
        FenceError::Store(Arc::new(error))
    }
}

/// When the lease of this term expires at the latest, by the local clock; kept current by
/// the lease keeper.
#[derive(Debug)]
pub struct LeaseDeadline(Mutex<Instant>);

impl LeaseDeadline {
    /// A deadline at `at`.
    pub fn new(at: Instant) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the deadline to `at` (never backwards).
    pub fn extend(&self, at: Instant) {
        let mut deadline = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if at > *deadline {
            *deadline = at;
        }
    }

    /// The deadline.
    pub fn get(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fencing token of one leadership term and the means to end the term.
#[derive(Clone)]
pub struct Fence {
    leader_key: Arc<str>,
    token: Revision,
    deadline: Arc<LeaseDeadline>,
    /// Safety margin before the lease deadline after which the term no longer acts.
    margin: Duration,
    lost: CancellationToken,
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("leader_key", &self.leader_key)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Fence {
    /// The fence of the term whose leader key `leader_key` was created at revision `token`,
    /// held while the lease lives (`deadline`, minus `margin`) and `lost` is not cancelled.
    pub fn new(
        leader_key: &str,
        token: Revision,
        deadline: Arc<LeaseDeadline>,
        margin: Duration,
        lost: CancellationToken,
    ) -> Self {
        Self {
            leader_key: leader_key.into(),
            token,
            deadline,
            margin,
            lost,
        }
    }

    /// The leader key.
    pub fn leader_key(&self) -> &str {
        &self.leader_key
    }

    /// The fencing token: the leader key's create revision.
    pub fn token(&self) -> Revision {
        self.token
    }

    /// Cancelled when the term ends for any reason.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Whether this term may still act; `key` names what was about to be written, for the
    /// error. Ends the term when the lease deadline has (nearly) passed.
    pub fn check(&self, key: &str) -> Result<(), FenceError> {
        if self.lost.is_cancelled() {
            return Err(FenceError::LeadershipLost {
                key: key.to_owned(),
                reason: "the term ended",
            });
        }
        if Instant::now() + self.margin >= self.deadline.get() {
            self.lost.cancel();
            return Err(FenceError::LeadershipLost {
                key: key.to_owned(),
                reason: "the lease was not renewed in time",
            });
        }
        Ok(())
    }

    /// `txn` with the fence's compare added.
    pub fn guard(&self, txn: Txn) -> Txn {
        txn.require_create_revision(&self.leader_key, self.token)
    }
}

/// The controller's only way to write to etcd; see the module documentation.
#[derive(Clone)]
pub struct FencedStore {
    store: Store,
    fence: Fence,
    writes: WriteBatcher,
}

impl fmt::Debug for FencedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FencedStore")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl FencedStore {
    /// Writes through `store`, fenced by `fence`, counted in `metrics`, sending concurrent
    /// writes together ([`WriteBatcher`]); call it on a Tokio runtime.
    pub fn new(store: Store, fence: Fence, metrics: Arc<Metrics>) -> Self {
        let writes = WriteBatcher::start(store.clone(), fence.clone(), metrics);
        Self {
            store,
            fence,
            writes,
        }
    }

    /// The store, for reads (which need no fence).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The fence.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Writes `value` as JSON at `key`; returns the revision of the write.
    pub async fn put_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<Revision, FenceError> {
        let bytes = serde_json::to_vec(value).map_err(|error| FenceError::Encode {
            key: key.to_owned(),
            reason: error.to_string(),
        })?;
        self.run(key, "put", Txn::new().put(key, bytes)).await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<Revision, FenceError> {
        self.run(key, "delete", Txn::new().delete(key)).await
    }

    /// Deletes every key under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<Revision, FenceError> {
        self.run(prefix, "delete", Txn::new().delete_prefix(prefix))
            .await
    }

    /// Applies `txn` (puts and deletes, at most [`MAX_TXN_OPERATIONS`]) atomically, fenced;
    /// `what` names its keys for errors (e.g. a prefix). Returns the revision of the write.
    pub async fn txn(&self, what: &str, txn: Txn) -> Result<Revision, FenceError> {
        self.run(what, "txn", txn).await
    }

    async fn run(
        &self,
        key: &str,
        operation: &'static str,
        txn: Txn,
    ) -> Result<Revision, FenceError> {
        self.fence.check(key)?;
        match self.writes.write(operation, txn).await {
            Some(Ok(outcome)) if outcome.succeeded => Ok(outcome.revision),
            // Only the fence is compared: the sender has ended the term.
            Some(Ok(_)) => Err(FenceError::LeadershipLost {
                key: key.to_owned(),
                reason: "the leader key changed",
            }),
            Some(Err(error)) => Err(FenceError::Store(error)),
            None => Err(FenceError::WriterStopped {
                key: key.to_owned(),
            }),
        }
    }
}
