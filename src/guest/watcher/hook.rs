//! Running a hook for one change: `sh -c CMD` with the change in its environment and on its
//! stdin, its stderr passed through and its tail kept for the report, terminated on shutdown.
//!
//! The hook runs in a process group of its own, so that on shutdown SIGTERM reaches every
//! process it started (and, after the grace period, SIGKILL). Its stdout is the watcher's;
//! each stderr line is copied to the watcher's stderr prefixed with `hook <service>: `.

use std::collections::VecDeque;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::Change;

/// How long a hook may take to exit after SIGTERM on shutdown before it gets SIGKILL.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// How many of the last stderr lines a failure report quotes.
const TAIL_LINES: usize = 20;
/// How many bytes of the last stderr lines a failure report quotes at most.
const TAIL_BYTES: usize = 4096;
/// How long to keep reading stderr after the hook exited: a process it left in the
/// background may hold the pipe open, and the next run must not wait for it.
const STDERR_DRAIN: Duration = Duration::from_millis(100);

/// How one run of a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// It exited with status 0.
    Succeeded,
    /// It exited with another status or was killed by a signal.
    Failed {
        /// `exit status 3`, `killed by signal SIGKILL`.
        status: String,
        /// The last lines it wrote to stderr.
        stderr_tail: String,
    },
    /// It could not be started.
    NotStarted {
        /// Why.
        reason: String,
    },
    /// The watcher shut down while it ran; it was terminated.
    Stopped,
}

/// Something run for each change of a service. One run per service at a time: the watcher
/// awaits a run before it starts the next for the same service.
pub trait Hook: Send + Sync + 'static {
    /// Runs for `change`; returns once the run is over, promptly after `shutdown` fires
    /// (then with [`HookOutcome::Stopped`]).
    fn run(
        &self,
        change: &Change,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = HookOutcome> + Send;
}

/// A shell command run as `sh -c CMD` with `THESEUS_SERVICE`, `THESEUS_DELTA` and
/// `THESEUS_REVISION` set and the [`Change`] as JSON on stdin.
#[derive(Debug, Clone)]
pub struct ShellHook {
    command: String,
    stop_grace: Duration,
}

impl ShellHook {
    /// Runs `command` with `sh -c`.
    pub fn new(command: impl Into<String>) -> ShellHook {
        ShellHook {
            command: command.into(),
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }

    /// How long a running hook gets between SIGTERM and SIGKILL on shutdown.
    pub fn with_stop_grace(mut self, grace: Duration) -> ShellHook {
        self.stop_grace = grace;
        self
    }

    /// The command.
    pub fn command(&self) -> &str {
        &self.command
    }
}

impl Hook for ShellHook {
    async fn run(&self, change: &Change, shutdown: &CancellationToken) -> HookOutcome {
        let mut document = match serde_json::to_vec(change) {
            Ok(document) => document,
            Err(error) => {
                return HookOutcome::NotStarted {
                    reason: format!("cannot encode the change as JSON: {error}"),
                };
            }
        };
        document.push(b'\n');
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .env("THESEUS_SERVICE", &change.service)
            .env("THESEUS_DELTA", change.delta.to_string())
            .env("THESEUS_REVISION", change.revision.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                return HookOutcome::NotStarted {
                    reason: format!("cannot run `sh -c {}`: {error}", self.command),
                };
            }
        };
        let tail = Arc::new(Mutex::new(Tail::default()));
        let stderr_copy = child.stderr.take().map(|stderr| {
            let tail = tail.clone();
            let prefix = format!("hook {}: ", change.service);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{prefix}{line}");
                    tail.lock().expect("tail lock").push(line);
                }
            })
        });
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A hook that does not read its stdin closes the pipe: that is its right.
                let _ = stdin.write_all(&document).await;
            }
        };
        let status = tokio::select! {
            (_, status) = futures::future::join(feed, child.wait()) => Some(status),
            () = shutdown.cancelled() => None,
        };
        let outcome = match status {
            None => {
                self.terminate(&mut child).await;
                HookOutcome::Stopped
            }
            Some(Err(error)) => HookOutcome::Failed {
                status: format!("cannot wait for it: {error}"),
                stderr_tail: String::new(),
            },
            Some(Ok(status)) if status.success() => HookOutcome::Succeeded,
            Some(Ok(status)) => HookOutcome::Failed {
                status: describe(status),
                stderr_tail: String::new(),
            },
        };
        if let Some(copy) = stderr_copy {
            let abort = copy.abort_handle();
            if tokio::time::timeout(STDERR_DRAIN, copy).await.is_err() {
                abort.abort();
            }
        }
        match outcome {
            HookOutcome::Failed { status, .. } => HookOutcome::Failed {
                status,
                stderr_tail: tail.lock().expect("tail lock").text(),
            },
            other => other,
        }
    }
}

impl ShellHook {
    /// SIGTERM to the hook's process group, SIGKILL after the grace period.
    async fn terminate(&self, child: &mut Child) {
        let Some(pid) = child.id() else {
            return; // Already reaped.
        };
        let group = Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(self.stop_grace, child.wait())
            .await
            .is_err()
        {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
}

/// `exit status 3` or `killed by signal SIGTERM`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by signal {signal}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// The last lines of a stream, bounded in lines and bytes.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES || (self.bytes > TAIL_BYTES && self.lines.len() > 1) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
            }
        }
    }

    fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> Change {
        Change {
            service: "ingestor".into(),
            revision: 42,
            delta: -1,
            added: vec![],
            removed: vec![],
            nodes: vec![],
        }
    }

    #[tokio::test]
    async fn a_hook_gets_the_service_the_delta_and_the_change_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = ShellHook::new(format!(
            "echo \"$THESEUS_SERVICE $THESEUS_DELTA $THESEUS_REVISION\" > {0}; cat >> {0}",
            out.display()
        ));
        let outcome = hook.run(&change(), &CancellationToken::new()).await;
        assert_eq!(outcome, HookOutcome::Succeeded);
        let text = std::fs::read_to_string(&out).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, "ingestor -1 42");
        let document: Change = serde_json::from_str(rest.trim_end()).unwrap();
        assert_eq!(document, change());
    }

    #[tokio::test]
    async fn a_failing_hook_reports_its_status_and_the_tail_of_its_stderr() {
        let hook = ShellHook::new("echo first >&2; echo boom >&2; exit 3");
        let outcome = hook.run(&change(), &CancellationToken::new()).await;
        assert_eq!(
            outcome,
            HookOutcome::Failed {
                status: "exit status 3".into(),
                stderr_tail: "first | boom".into()
            }
        );
        let killed = ShellHook::new("kill -9 $$")
            .run(&change(), &CancellationToken::new())
            .await;
        assert!(
            matches!(&killed, HookOutcome::Failed { status, .. } if status == "killed by signal SIGKILL"),
            "{killed:?}"
        );
    }

    #[tokio::test]
    async fn a_hook_that_ignores_its_stdin_still_succeeds() {
        // Far more than a pipe's buffer, so that writing it blocks until the hook exits.
        let mut big = change();
        big.nodes = (0..5000)
            .map(|i| crate::guest::Node {
                task_id: format!("ingestor_dev.{i:040}"),
                deployment: "dev".into(),
                host: "10.0.0.1".into(),
                ip_addresses: vec![],
                ports: Default::default(),
                labels: vec![],
            })
            .collect();
        let outcome = ShellHook::new("exit 0")
            .run(&big, &CancellationToken::new())
            .await;
        assert_eq!(outcome, HookOutcome::Succeeded);
    }

    #[tokio::test]
    async fn shutdown_terminates_a_running_hook_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let hook = ShellHook::new(format!(
            "sleep 600 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait",
            pids.display()
        ));
        let shutdown = CancellationToken::new();
        let run = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { hook.run(&change(), &shutdown).await })
        };
        theseus_testkit::wait_until_async(Duration::from_secs(10), "the hook started", || {
            let exists = pids.exists();
            async move { exists }
        })
        .await;
        let sleeper: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        shutdown.cancel();
        assert_eq!(run.await.unwrap(), HookOutcome::Stopped);
        theseus_testkit::wait_until_async(Duration::from_secs(10), "the child is gone", || {
            // Signal 0 checks existence; a zombie still exists until its parent reaps it, so
            // look at its state too.
            let gone = nix::sys::signal::kill(Pid::from_raw(sleeper), None).is_err()
                || std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                    .map(|stat| stat.contains(") Z "))
                    .unwrap_or(true);
            async move { gone }
        })
        .await;
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_bounds() {
        let mut tail = Tail::default();
        for i in 0..100 {
            tail.push(format!("line {i}"));
        }
        assert_eq!(tail.lines.len(), TAIL_LINES);
        assert!(tail.text().ends_with("line 99"));
        tail.push("x".repeat(10_000));
        assert_eq!(tail.lines.len(), 1, "one long line is kept alone");
    }
}
