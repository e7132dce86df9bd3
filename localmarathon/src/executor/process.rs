//! The process executor: each task is a child process in its own process group.
//!
//! A task's command runs as `sh -c <cmd>` (or its argument vector) in its sandbox directory, with
//! `stdout` and `stderr` files there, the task environment, stdin from `/dev/null`, and
//! `PR_SET_PDEATHSIG=SIGKILL`. Killing a task sends SIGTERM to its process group and SIGKILL
//! after the app's `taskKillGracePeriodSeconds`; when the main process ends, whatever is left of
//! its group is killed too, as Mesos tears down a container. The [`Guardian`] kills every group
//! should localmarathon die without cleaning up. Docker-image tasks run as containers on the
//! local engine instead ([`super::container`]), under the same kill token and guardian.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::container::ContainerTask;
use super::docker::{DockerConfig, Engine};
use super::guardian::Guardian;
use super::{Error, ExecutorUpdate, LaunchSpec, TaskCommand};
use crate::task::{ExitStatus, TaskEvent, TaskId};

#[derive(Debug)]
struct Running {
    kill: CancellationToken,
    pgid: Option<u32>,
}

/// Runs tasks as child processes.
#[derive(Debug)]
pub struct ProcessExecutor {
    updates: mpsc::UnboundedSender<ExecutorUpdate>,
    running: Arc<Mutex<HashMap<TaskId, Running>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    guardian: Arc<Guardian>,
    engine: Arc<Engine>,
}

fn signal_group(pgid: u32, signal: Signal) {
    // ESRCH (group already gone) is the normal outcome of a race with the exit.
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
}

/// Whether a live (non-zombie) process of group `pgid` remains.
fn group_alive(pgid: u32) -> bool {
    // Fast path: no process at all, zombies included.
    if killpg(Pid::from_raw(pgid as i32), None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // After the command name: state, ppid, pgrp.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        fields.first().is_some_and(|state| *state != "Z")
            && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
    })
}

/// SIGKILLs what is left of a group and waits (bounded) until none of it runs.
async fn finish_group(pgid: u32) {
    signal_group(pgid, Signal::SIGKILL);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

impl ProcessExecutor {
    /// Starts the executor and its guardian.
    pub fn start(
        docker: DockerConfig,
        updates: mpsc::UnboundedSender<ExecutorUpdate>,
    ) -> Result<Self, Error> {
        Ok(ProcessExecutor {
            updates,
            running: Arc::default(),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            guardian: Arc::new(Guardian::start().map_err(Error::Guardian)?),
            // Unique per executor, so that this one only ever touches its own containers.
            engine: Arc::new(Engine::new(
                uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
                docker,
            )),
        })
    }

    /// Starts a task.
    pub fn launch(&self, spec: LaunchSpec) {
        let kill = self.shutdown.child_token();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                spec.task_id.clone(),
                Running {
                    kill: kill.clone(),
                    pgid: None,
                },
            );
        let supervisor = Supervisor {
            updates: self.updates.clone(),
            running: self.running.clone(),
            guardian: self.guardian.clone(),
            engine: self.engine.clone(),
            kill,
        };
        self.tracker.spawn(supervisor.run(spec));
    }

    /// Asks a task to end.
    pub fn kill(&self, task: &TaskId) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(task)
        {
            r.kill.cancel();
        }
    }

    /// Kills every task (SIGTERM, then SIGKILL after each grace period) and waits for all.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.guardian.stop();
    }

    /// SIGKILLs every process group at once, without waiting.
    pub fn kill_all_now(&self) {
        self.shutdown.cancel();
        for r in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            if let Some(pgid) = r.pgid {
                signal_group(pgid, Signal::SIGKILL);
            }
        }
        if self.guardian.runs_containers() {
            self.engine.remove_all_blocking();
        }
    }
}

struct Supervisor {
    updates: mpsc::UnboundedSender<ExecutorUpdate>,
    running: Arc<Mutex<HashMap<TaskId, Running>>>,
    guardian: Arc<Guardian>,
    engine: Arc<Engine>,
    kill: CancellationToken,
}

fn open_log(sandbox: &Path, name: &str) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sandbox.join(name))
}

impl Supervisor {
    fn report(&self, task: &TaskId, event: TaskEvent, message: String, pid: Option<u32>) {
        let _ = self.updates.send(ExecutorUpdate {
            task_id: task.clone(),
            event,
            message,
            pid,
        });
    }

    fn fail(&self, task: &TaskId, message: String) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task);
        self.report(task, TaskEvent::LaunchFailed, message, None);
    }

    async fn run(self, spec: LaunchSpec) {
        let task = spec.task_id.clone();
        self.report(&task, TaskEvent::ExecutorStarted, String::new(), None);
        if self.kill.is_cancelled() {
            return self.fail(&task, "Task killed before it was started".into());
        }
        if let Err(e) = std::fs::create_dir_all(&spec.sandbox) {
            return self.fail(
                &task,
                format!("Failed to create sandbox {}: {e}", spec.sandbox.display()),
            );
        }
        let argv: Vec<String> = match &spec.command {
            TaskCommand::Shell(cmd) => vec!["sh".into(), "-c".into(), cmd.clone()],
            TaskCommand::Argv(argv) => argv.clone(),
            TaskCommand::Docker(run) => {
                let run = run.clone();
                let container = ContainerTask {
                    updates: self.updates.clone(),
                    engine: self.engine.clone(),
                    guardian: self.guardian.clone(),
                    kill: self.kill.clone(),
                };
                container.run(spec, run).await;
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task);
                return;
            }
        };
        let (stdout, stderr) = match (
            open_log(&spec.sandbox, "stdout"),
            open_log(&spec.sandbox, "stderr"),
        ) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                return self.fail(&task, format!("Failed to open sandbox logs: {e}"));
            }
        };
        let Some((program, args)) = argv.split_first() else {
            return self.fail(&task, "Failed to launch command: empty args".into());
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&spec.sandbox)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        // SAFETY: the closure only calls prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                return self.fail(&task, format!("Failed to launch command '{program}': {e}"));
            }
        };
        let Some(pid) = child.id() else {
            return self.fail(&task, "Failed to launch command: no pid".into());
        };
        self.guardian.watch(pid);
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&task)
        {
            r.pgid = Some(pid);
        }
        self.report(&task, TaskEvent::ProcessRunning, String::new(), Some(pid));

        let status = tokio::select! {
            status = child.wait() => status,
            () = self.kill.cancelled() => {
                signal_group(pid, Signal::SIGTERM);
                match tokio::time::timeout(spec.kill_grace, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        signal_group(pid, Signal::SIGKILL);
                        child.wait().await
                    }
                }
            }
        };
        // The main process is gone; nothing of its group may outlive it.
        finish_group(pid).await;
        self.guardian.forget(pid);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task);
        let exit = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(signal)) => ExitStatus::Signal(signal),
                    (None, None) => ExitStatus::Code(-1),
                }
            }
            Err(e) => {
                tracing::warn!(task = %task, error = %e, "waiting for task process failed");
                ExitStatus::Code(-1)
            }
        };
        self.report(&task, TaskEvent::Exited(exit), exit.message(), Some(pid));
    }
}
