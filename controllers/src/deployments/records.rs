//! Everything the deployments reconciler writes under a deployment's `/observed` prefix (its
//! status, revision history and journal), and what one reconcile gathers to write there.
//!
//! What it promises: [`Records::write`] puts what one reconcile recorded (revision records,
//! journal entries and the status) in one fenced transaction whenever it fits in one request,
//! so a reconcile costs one etcd round trip however many of the three it changed; what the
//! copies already hold is not written again, so an idle resync writes nothing. When it does
//! not fit (a large history), the lists go first and the status last, each as
//! [`KeptList::write`] and [`Statuses::write`] would, so a stop in between never leaves a
//! status that claims more than the lists hold.

use std::collections::BTreeMap;
use std::sync::Arc;

use theseus::api::{DeploymentKey, DeploymentStatus, JournalEntry, RevisionRecord};
use theseus::store::{Revision, Txn};

use super::journal::{JOURNAL_LENGTH, Journal};
use super::lists::{KeptList, StagedTxn, TXN_BYTES};
use super::statuses::{StagedStatus, Statuses};
use crate::runtime::fence::{FenceError, FencedStore, MAX_TXN_OPERATIONS};

/// Why recording failed; nothing after it was asked of Marathon.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The history or the journal could not be written.
    #[error("cannot record the rollout: {0}")]
    Lists(#[source] FenceError),
    /// The status could not be written (alone, or with the lists).
    #[error("cannot record the status: {0}")]
    Status(#[source] FenceError),
}

/// The revision records and journal entries one reconcile decided, not written yet.
#[derive(Debug)]
pub struct Recording {
    /// Revision records by revision; a later one for the same revision replaces the
    /// earlier.
    history: BTreeMap<u64, RevisionRecord>,
    /// The decisions, in order.
    pub journal: Journal,
}

impl Recording {
    /// Nothing recorded yet about `revision`.
    pub fn new(revision: i64) -> Self {
        Self {
            history: BTreeMap::new(),
            journal: Journal::new(revision),
        }
    }

    /// Adds revision records.
    pub fn history(&mut self, records: impl IntoIterator<Item = RevisionRecord>) {
        for record in records {
            self.history
                .insert(u64::try_from(record.revision).unwrap_or_default(), record);
        }
    }

    /// What is recorded so far, leaving nothing.
    pub fn take(&mut self) -> Recording {
        Recording {
            history: std::mem::take(&mut self.history),
            journal: self.journal.take(),
        }
    }
}

/// The statuses, revision histories and journals of one term, as the reconciler writes them.
#[derive(Debug)]
pub struct Records {
    /// `/observed/<service>/<name>/status`.
    pub statuses: Arc<Statuses>,
    /// `/observed/<service>/<name>/history/<revision>`.
    pub history: Arc<KeptList<RevisionRecord>>,
    /// `/observed/<service>/<name>/journal/<sequence>`.
    pub journal: Arc<KeptList<JournalEntry>>,
    /// Writes them.
    pub fenced: FencedStore,
}

/// One list's part of a write: joined to the transaction, or written alone first.
enum Part<T> {
    None,
    Joined(StagedTxn<T>),
    Alone(Vec<StagedTxn<T>>),
}

impl<T> Part<T> {
    fn size(&self) -> (usize, usize) {
        match self {
            Part::Joined(part) => (part.txn.len(), part.bytes),
            _ => (0, 0),
        }
    }

    /// The operations joined to the transaction.
    fn txn(&self) -> Txn {
        match self {
            Part::Joined(part) => part.txn.clone(),
            _ => Txn::new(),
        }
    }
}

impl Records {
    /// Writes what `recording` holds and `status` (if given) for `key`, keeping `keep_history`
    /// revision records; see the module documentation.
    pub async fn write(
        &self,
        key: &DeploymentKey,
        recording: Recording,
        keep_history: usize,
        status: Option<DeploymentStatus>,
    ) -> Result<(), RecordsError> {
        let Recording { history, journal } = recording;
        let history = self
            .history
            .stage(key, history.into_iter().collect(), keep_history)
            .map_err(RecordsError::Lists)?;
        let journal = if journal.entries.is_empty() {
            None
        } else {
            let first = self.journal.last_index(key) + 1;
            self.journal
                .stage(
                    key,
                    (first..).zip(journal.entries).collect(),
                    JOURNAL_LENGTH,
                )
                .map_err(RecordsError::Lists)?
        };
        let status = match status {
            Some(status) => self
                .statuses
                .stage(key, status)
                .map_err(RecordsError::Status)?,
            None => None,
        };
        let mut history = part(history.map(|staged| staged.into_txns()));
        let mut journal = part(journal.map(|staged| staged.into_txns()));
        let status_size = status.as_ref().map_or((0, 0), |status| (1, status.bytes()));
        let (operations, bytes) = [history.size(), journal.size(), status_size]
            .into_iter()
            .fold((0, 0), |(o, b), (po, pb)| (o + po, b + pb));
        if operations > MAX_TXN_OPERATIONS || bytes > TXN_BYTES {
            history = alone(history);
            journal = alone(journal);
        }
        // What does not fit in one request goes first, on its own.
        write_alone(&self.fenced, key, &self.history, &mut history).await?;
        write_alone(&self.fenced, key, &self.journal, &mut journal).await?;
        let txn = history
            .txn()
            .and(journal.txn())
            .and(status.as_ref().map(StagedStatus::txn).unwrap_or_default());
        if txn.is_empty() {
            return Ok(());
        }
        let written = self.fenced.txn(&self.observed(key), txn).await;
        let revision = written.as_ref().ok().copied();
        if let Some(status) = status {
            self.statuses.settle(status, revision);
            let revision = written.map_err(RecordsError::Status)?;
            settle(&self.history, history, revision);
            settle(&self.journal, journal, revision);
            return Ok(());
        }
        let revision = written.map_err(RecordsError::Lists)?;
        settle(&self.history, history, revision);
        settle(&self.journal, journal, revision);
        Ok(())
    }

    fn observed(&self, key: &DeploymentKey) -> String {
        self.fenced.store().layout().observed(key)
    }
}

fn part<T>(txns: Option<Vec<StagedTxn<T>>>) -> Part<T> {
    match txns {
        None => Part::None,
        Some(mut txns) if txns.len() == 1 => Part::Joined(txns.pop().expect("one")),
        Some(txns) => Part::Alone(txns),
    }
}

fn alone<T>(part: Part<T>) -> Part<T> {
    match part {
        Part::Joined(txn) => Part::Alone(vec![txn]),
        other => other,
    }
}

async fn write_alone<T>(
    fenced: &FencedStore,
    key: &DeploymentKey,
    list: &KeptList<T>,
    part: &mut Part<T>,
) -> Result<(), RecordsError>
where
    T: Clone + PartialEq + serde::Serialize + serde::de::DeserializeOwned,
{
    let txns = match std::mem::replace(part, Part::None) {
        Part::Alone(txns) => txns,
        joined_or_none => {
            *part = joined_or_none;
            return Ok(());
        }
    };
    for txn in txns {
        let revision = fenced
            .txn(&list.prefix(key), txn.txn.clone())
            .await
            .map_err(RecordsError::Lists)?;
        list.settle(txn, revision);
    }
    Ok(())
}

fn settle<T>(list: &KeptList<T>, part: Part<T>, revision: Revision)
where
    T: Clone + PartialEq + serde::Serialize + serde::de::DeserializeOwned,
{
    if let Part::Joined(txn) = part {
        list.settle(txn, revision);
    }
}
