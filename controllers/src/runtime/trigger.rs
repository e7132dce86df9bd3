//! Triggers: a source's stream of changes turned into keys of a work queue, the shape of
//! kube-runtime's `trigger_*` streams feeding its applier.
//!
//! What it promises:
//! - Every change the source yields is mapped, as it arrives, to the keys it concerns, and
//!   those keys are triggered in the queue (which coalesces them with keys already waiting).
//! - A change that may concern every key (the source missed changes, or everything may now
//!   read differently) triggers every key the reconciler knows at that moment.
//! - [`run`] ends when the stream ends or `stop` is cancelled; it is owned by whoever owns the
//!   reconciler (a leadership term), so the source never holds the reconciler alive.
//!
//! What it does not do: read the source's state, or decide what a reconcile does.

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::queue::{QueueKey, WorkQueue};

/// The keys one change concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triggered<K> {
    /// None: the change is nothing this reconciler acts on.
    Nothing,
    /// These keys.
    Keys(Vec<K>),
    /// Every key the reconciler knows.
    Every,
}

impl<K> Triggered<K> {
    /// One key, or nothing.
    pub fn key(key: Option<K>) -> Triggered<K> {
        match key {
            Some(key) => Triggered::Keys(vec![key]),
            None => Triggered::Nothing,
        }
    }
}

/// Triggers in `queue` the keys `map` finds in each change of `changes` ([`Triggered::Every`]:
/// the keys `every` gives then), until the stream ends or `stop` is cancelled.
pub async fn run<C, K, I>(
    changes: impl Stream<Item = C>,
    queue: WorkQueue<K>,
    map: impl Fn(C) -> Triggered<K>,
    every: impl Fn() -> I,
    stop: CancellationToken,
) where
    K: QueueKey,
    I: IntoIterator<Item = K>,
{
    let mut changes = std::pin::pin!(changes);
    loop {
        let change = tokio::select! {
            () = stop.cancelled() => return,
            change = changes.next() => match change {
                Some(change) => change,
                None => return,
            },
        };
        match map(change) {
            Triggered::Nothing => {}
            Triggered::Keys(keys) => keys.into_iter().for_each(|key| queue.trigger(key)),
            Triggered::Every => every().into_iter().for_each(|key| queue.trigger(key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::queue::Backoff;

    #[tokio::test]
    async fn each_change_triggers_the_keys_it_maps_to_and_every_key_when_it_says_so() {
        let queue: WorkQueue<String> = WorkQueue::new(Backoff::default());
        let changes = futures::stream::iter([
            Triggered::Keys(vec!["a".to_owned(), "b".to_owned()]),
            Triggered::Nothing,
            Triggered::Keys(vec!["a".to_owned()]),
        ]);
        run(
            changes,
            queue.clone(),
            |change| change,
            Vec::new,
            CancellationToken::new(),
        )
        .await;
        let mut taken = vec![queue.next().await.unwrap(), queue.next().await.unwrap()];
        taken.sort();
        assert_eq!(taken, ["a", "b"], "a change's keys, coalesced");
        assert_eq!(queue.depth().waiting, 0);

        let every = || vec!["x".to_owned(), "y".to_owned(), "z".to_owned()];
        run(
            futures::stream::iter([Triggered::Every]),
            queue.clone(),
            |change: Triggered<String>| change,
            every,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(queue.depth().waiting, 3, "every key the reconciler knows");
    }

    #[tokio::test]
    async fn it_ends_when_stopped_although_the_source_goes_on() {
        let queue: WorkQueue<String> = WorkQueue::new(Backoff::default());
        let stop = CancellationToken::new();
        stop.cancel();
        tokio::time::timeout(
            Duration::from_secs(30),
            run(
                futures::stream::pending::<Triggered<String>>(),
                queue,
                |change| change,
                Vec::new,
                stop,
            ),
        )
        .await
        .expect("the trigger ended");
    }
}
