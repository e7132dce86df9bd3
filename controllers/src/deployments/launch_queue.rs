//! Marathon's launch queue (`GET /v2/queue`) as the deployments reconciler reads it: why a
//! revision's instances are not launched (no agent fits them, or their launches are held back).
//!
//! What it promises: the queue is read only when a reconcile asks for it, which the reconciler
//! does only for a deployment that waits (see [`super::waiting`]): a converged or idle
//! controller never reads it. Reads are shared: one read at a time, and its answer (or its
//! failure) serves every reconcile that asks within [`FRESH_FOR`], so any number of waiting
//! deployments cost at most one Marathon request per [`FRESH_FOR`].
//!
//! What it does not do: retry. A failed read is reported to the caller, which goes on without
//! the queue's answer; it never changes what is asked of Marathon.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use theseus::marathon::{self, AppId, MarathonClient, QueueEntry};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long one read of the queue serves every reconcile.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Why the queue's answer about an app is not known.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaunchQueueError {
    /// Marathon did not answer the read, or answered something that is not a queue.
    #[error("cannot read Marathon's launch queue for app `{app}`: {source}")]
    Unreadable {
        /// The app asked about.
        app: AppId,
        /// What failed (shared by every reconcile the failed read serves).
        #[source]
        source: Arc<marathon::Error>,
    },
}

impl LaunchQueueError {
    /// A short, stable name of the error kind for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            LaunchQueueError::Unreadable { .. } => "launch_queue_unreadable",
        }
    }
}

/// One read of the queue: the entries of apps, by id, or why the read failed.
type Read = Arc<Result<HashMap<AppId, QueueEntry>, Arc<marathon::Error>>>;

/// The shared reader of the launch queue; see the module documentation.
#[derive(Debug)]
pub struct LaunchQueue {
    client: MarathonClient,
    /// The last read and when it began. The lock is held across a read, so that reconciles
    /// asking meanwhile wait for its answer instead of reading again.
    last: Mutex<Option<(Instant, Read)>>,
}

impl LaunchQueue {
    /// A reader that has read nothing yet.
    pub fn new(client: MarathonClient) -> Self {
        Self {
            client,
            last: Mutex::new(None),
        }
    }

    /// The queue's entry of `app` (`None`: no instance of it waits), from a read no older
    /// than [`FRESH_FOR`].
    pub async fn entry(&self, app: &AppId) -> Result<Option<QueueEntry>, LaunchQueueError> {
        let read = {
            let mut last = self.last.lock().await;
            match last.as_ref() {
                Some((at, read)) if at.elapsed() < FRESH_FOR => Arc::clone(read),
                _ => {
                    let at = Instant::now();
                    let read: Read = Arc::new(
                        self.client
                            .queue()
                            .await
                            .map(|entries| {
                                entries
                                    .into_iter()
                                    .filter_map(|entry| Some((entry.app_id()?.clone(), entry)))
                                    .collect()
                            })
                            .map_err(Arc::new),
                    );
                    *last = Some((at, Arc::clone(&read)));
                    read
                }
            }
        };
        match &*read {
            Ok(entries) => Ok(entries.get(app).cloned()),
            Err(error) => Err(LaunchQueueError::Unreadable {
                app: app.clone(),
                source: Arc::clone(error),
            }),
        }
    }
}
