//! A hook that prints each change as one line of JSON (`theseus watch --json-lines`), for a
//! program that reads the watcher's output instead of being started for every change (the
//! shipped `watcher.py` keeps the image's `watch_methods` module loaded this way).
//!
//! Each run writes the [`Change`] document and a newline in one piece under a lock, so lines
//! of different services never interleave; a run returns once its line is flushed, so a slow
//! reader holds back the next change of that service, which is then gathered with the ones
//! after it. A write that fails (the reader is gone: a closed pipe) ends the watcher: the
//! hook cancels the token it was given and [`JsonLinesHook::closed`] fires.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{Change, Hook, HookOutcome};

/// Writes each change as a line of JSON to `W`.
#[derive(Debug)]
pub struct JsonLinesHook<W> {
    out: Mutex<W>,
    stop_on_failure: CancellationToken,
    closed: CancellationToken,
}

impl<W> JsonLinesHook<W> {
    /// Prints to `out`; cancels `stop_on_failure` (the watcher's shutdown) when a write fails.
    pub fn new(out: W, stop_on_failure: CancellationToken) -> JsonLinesHook<W> {
        JsonLinesHook {
            out: Mutex::new(out),
            stop_on_failure,
            closed: CancellationToken::new(),
        }
    }

    /// A token cancelled once a write has failed: the output is gone.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }
}

impl<W> Hook for JsonLinesHook<W>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    async fn run(&self, change: &Change, shutdown: &CancellationToken) -> HookOutcome {
        let mut line = match serde_json::to_vec(change) {
            Ok(line) => line,
            Err(error) => {
                return HookOutcome::NotStarted {
                    reason: format!("cannot encode the change as JSON: {error}"),
                };
            }
        };
        line.push(b'\n');
        let written = async {
            let mut out = self.out.lock().await;
            out.write_all(&line).await?;
            out.flush().await
        };
        let result = tokio::select! {
            result = written => result,
            () = shutdown.cancelled() => return HookOutcome::Stopped,
        };
        match result {
            Ok(()) => HookOutcome::Succeeded,
            Err(error) => {
                self.closed.cancel();
                self.stop_on_failure.cancel();
                HookOutcome::NotStarted {
                    reason: format!("cannot write the change to the output, stopping: {error}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(service: &str, delta: i64) -> Change {
        Change {
            service: service.into(),
            revision: 7,
            delta,
            added: vec![],
            removed: vec![],
            nodes: vec![],
        }
    }

    #[tokio::test]
    async fn each_change_is_one_line_of_json() {
        let (writer, mut reader) = tokio::io::duplex(64 * 1024);
        let hook = JsonLinesHook::new(writer, CancellationToken::new());
        let shutdown = CancellationToken::new();
        assert_eq!(
            hook.run(&change("web", 2), &shutdown).await,
            HookOutcome::Succeeded
        );
        assert_eq!(
            hook.run(&change("db", -1), &shutdown).await,
            HookOutcome::Succeeded
        );
        drop(hook);
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut text)
            .await
            .unwrap();
        let lines: Vec<Change> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines, [change("web", 2), change("db", -1)]);
    }

    #[tokio::test]
    async fn a_closed_output_stops_the_watcher() {
        let (writer, reader) = tokio::io::duplex(64);
        drop(reader);
        let stop = CancellationToken::new();
        let hook = JsonLinesHook::new(writer, stop.clone());
        let outcome = hook.run(&change("web", 1), &CancellationToken::new()).await;
        assert!(
            matches!(&outcome, HookOutcome::NotStarted { reason } if reason.contains("cannot write")),
            "{outcome:?}"
        );
        assert!(stop.is_cancelled() && hook.closed().is_cancelled());
    }
}
