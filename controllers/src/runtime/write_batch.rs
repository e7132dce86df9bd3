//! The fenced writes of many reconciles, sent to etcd together.
//!
//! What it promises:
//! - A write handed to [`WriteBatcher::write`] goes to etcd in one fenced transaction with the
//!   other writes waiting when it is sent: at most [`MAX_TXN_OPERATIONS`] operations and
//!   [`BATCH_BYTES`] of keys and values, never two writes to a common key (etcd refuses them in
//!   one transaction), never a write with compares of its own (it goes alone, so that its
//!   compares decide only its own fate). Thirty reconciles writing at once cost a few etcd
//!   round trips instead of thirty, and on etcd 3.4, which copies its write buffer for every
//!   transaction with a compare, a few copies instead of thirty.
//! - Each write gets the outcome of the transaction that carried it: they all happen, or
//!   none does. A fence that fails ends the term once ([`Fence::lost`]).
//! - With nothing else waiting a write goes at once, alone. At most [`IN_FLIGHT`]
//!   transactions are in flight; writes that arrive meanwhile wait for the next one.
//! - Each transaction is counted once in the `etcd_requests` metrics, with the caller's
//!   operation when it carries one write, `txn` when it carries more.
//!
//! What it does not do: order writes of different callers (each caller waits for its write
//! before it makes the next, so one caller's writes stay in order), or retry.

use std::sync::Arc;

use theseus::store::{Error as StoreError, Store, Txn, TxnOutcome};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::fence::{Fence, MAX_TXN_OPERATIONS};
use super::metrics::Metrics;

/// The most bytes of keys and values one transaction carries (etcd refuses requests over
/// 1.5 MiB); a single write larger than this still goes, alone.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// Transactions in flight at once: two, so that etcd applies one while the next gathers what
/// arrives meanwhile. More in flight makes more, smaller transactions, and etcd's cost is
/// mostly per transaction (a Raft entry, a WAL sync, and on etcd 3.4 a copy of its write
/// buffer): at 10,000 new deployments, four in flight sent about 3,600 transactions where two
/// send about 2,100, and etcd spent about a sixth more CPU.
pub const IN_FLIGHT: usize = 2;

/// What became of the transaction that carried a write.
pub type WriteOutcome = Result<TxnOutcome, Arc<StoreError>>;

/// A write waiting to be sent.
struct Waiting {
    operation: &'static str,
    txn: Txn,
    reply: oneshot::Sender<WriteOutcome>,
}

/// Hands writes to the term's sender task; cheap to clone.
#[derive(Debug, Clone)]
pub struct WriteBatcher {
    queue: mpsc::UnboundedSender<Waiting>,
}

impl WriteBatcher {
    /// Starts the sender task of a term (on the current Tokio runtime); it ends when the
    /// last clone is dropped.
    pub fn start(store: Store, fence: Fence, metrics: Arc<Metrics>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(send(store, fence, metrics, waiting));
        Self { queue }
    }

    /// Sends `txn` (`operation` names it in the metrics) with whatever else waits; `None`
    /// when the sender task is gone, so the outcome is unknown.
    pub async fn write(&self, operation: &'static str, txn: Txn) -> Option<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Waiting {
                operation,
                txn,
                reply,
            })
            .ok()?;
        outcome.await.ok()
    }
}

/// The writes to send with `first`, taken from `next` (what waits) while they fit, and the
/// first that did not fit, held back for the next transaction.
fn gather<W>(
    first: W,
    txn_of: impl Fn(&W) -> &Txn,
    mut next: impl FnMut() -> Option<W>,
) -> (Vec<W>, Option<W>) {
    if txn_of(&first).has_compares() {
        return (vec![first], None);
    }
    let mut operations = txn_of(&first).len();
    let mut bytes = txn_of(&first).value_bytes();
    let mut batch = vec![first];
    while let Some(write) = next() {
        let txn = txn_of(&write);
        let fits = !txn.has_compares()
            && operations + txn.len() <= MAX_TXN_OPERATIONS
            && bytes + txn.value_bytes() <= BATCH_BYTES
            && !batch.iter().any(|queued| txn_of(queued).touches(txn));
        if !fits {
            return (batch, Some(write));
        }
        operations += txn.len();
        bytes += txn.value_bytes();
        batch.push(write);
    }
    (batch, None)
}

/// The sender task: takes the waiting writes a transaction at a time.
async fn send(
    store: Store,
    fence: Fence,
    metrics: Arc<Metrics>,
    mut waiting: mpsc::UnboundedReceiver<Waiting>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut held_back: Option<Waiting> = None;
    loop {
        let first = match held_back.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Writes that arrived while every slot was busy join this one.
        let (batch, rest) = gather(first, |write| &write.txn, || waiting.try_recv().ok());
        held_back = rest;
        let store = store.clone();
        let fence = fence.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let operation = match batch.as_slice() {
                [only] => only.operation,
                _ => "txn",
            };
            let mut txn = Txn::new();
            let mut replies = Vec::with_capacity(batch.len());
            for write in batch {
                txn = txn.and(write.txn);
                replies.push(write.reply);
            }
            let started = Instant::now();
            let outcome = store.txn(fence.guard(txn)).await.map_err(Arc::new);
            let took = started.elapsed();
            drop(slot);
            let result = match &outcome {
                Ok(outcome) if outcome.succeeded => "ok",
                Ok(_) => {
                    // Only the fence is compared, so only the fence failed: another replica
                    // leads now, or our key is gone with our lease.
                    fence.lost().cancel();
                    "fence_failed"
                }
                Err(_) => "error",
            };
            metrics.etcd_request(operation, result, took);
            for reply in replies {
                let _ = reply.send(outcome.clone());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn gathered(txns: Vec<Txn>) -> (Vec<usize>, Option<usize>) {
        let mut queue: VecDeque<(usize, Txn)> = txns.into_iter().enumerate().collect();
        let first = queue.pop_front().unwrap();
        let (batch, held_back) = gather(first, |(_, txn)| txn, || queue.pop_front());
        (
            batch.into_iter().map(|(index, _)| index).collect(),
            held_back.map(|(index, _)| index),
        )
    }

    fn put(key: &str) -> Txn {
        Txn::new().put(key, "{}")
    }

    #[test]
    fn waiting_writes_go_together_until_one_touches_a_key_already_taken() {
        assert_eq!(
            gathered(vec![put("/a"), put("/b"), put("/c")]),
            (vec![0, 1, 2], None)
        );
        assert_eq!(
            gathered(vec![put("/a"), put("/b"), put("/a"), put("/c")]),
            (vec![0, 1], Some(2)),
            "a second write of /a waits for the next transaction"
        );
        assert_eq!(
            gathered(vec![put("/o/x/status"), Txn::new().delete_prefix("/o/x/")]),
            (vec![0], Some(1))
        );
    }

    #[test]
    fn a_write_with_compares_of_its_own_goes_alone() {
        let guarded = Txn::new().require_mod_revision("/d/x", 7).put("/d/x", "{}");
        assert_eq!(
            gathered(vec![guarded.clone(), put("/a")]),
            (vec![0], None),
            "nothing joins it"
        );
        assert_eq!(
            gathered(vec![put("/a"), guarded, put("/b")]),
            (vec![0], Some(1)),
            "it joins nothing"
        );
    }

    #[test]
    fn a_transaction_stays_within_etcds_limits_but_a_large_write_still_goes() {
        let many: Vec<Txn> = (0..MAX_TXN_OPERATIONS + 1)
            .map(|index| put(&format!("/k{index}")))
            .collect();
        let (batch, held_back) = gathered(many);
        assert_eq!(batch.len(), MAX_TXN_OPERATIONS);
        assert_eq!(held_back, Some(MAX_TXN_OPERATIONS));

        let half = "x".repeat(BATCH_BYTES / 2);
        let large = "x".repeat(BATCH_BYTES + 1);
        assert_eq!(
            gathered(vec![
                Txn::new().put("/a", half.clone()),
                Txn::new().put("/b", half)
            ]),
            (vec![0], Some(1))
        );
        assert_eq!(
            gathered(vec![Txn::new().put("/a", large), put("/b")]),
            (vec![0], Some(1)),
            "alone, but sent"
        );
    }
}
