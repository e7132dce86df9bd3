//! Executors: what turns a launched task into a running (or simulated) process.
//!
//! The scheduler decides; an executor acts and reports. Every report is an [`ExecutorUpdate`]
//! carrying a [`TaskEvent`] for the task lifecycle, sent on the scheduler's channel. Executors own
//! everything they spawn (a `TaskTracker` plus a cancellation token), so [`Executor::shutdown`]
//! returns only when every task has ended.

mod container;
pub mod docker;
pub mod guardian;
pub mod process;
pub mod sim;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::app_id::AppId;
use crate::task::{ExitStatus, TaskEvent, TaskId};

/// Which executor runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Real child processes (`sh -c cmd`), Docker images through a local Docker engine.
    #[default]
    Process,
    /// State transitions only; no process is started.
    Sim,
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskCommand {
    /// `sh -c <cmd>`.
    Shell(String),
    /// An argument vector, run directly.
    Argv(Vec<String>),
    /// A Docker image.
    Docker(docker::DockerRun),
}

/// Everything an executor needs to start one task.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The task.
    pub task_id: TaskId,
    /// Its app.
    pub app_id: AppId,
    /// What to run.
    pub command: TaskCommand,
    /// The full environment Marathon and Mesos give the task.
    pub env: Arc<[(String, String)]>,
    /// The sandbox directory (created by the executor).
    pub sandbox: PathBuf,
    /// The agent's address.
    pub host: IpAddr,
    /// SIGTERM to SIGKILL delay.
    pub kill_grace: Duration,
}

/// A report from an executor about one task.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorUpdate {
    /// The task.
    pub task_id: TaskId,
    /// What happened.
    pub event: TaskEvent,
    /// Mesos status message.
    pub message: String,
    /// The process id, once there is one.
    pub pid: Option<u32>,
}

impl ExecutorUpdate {
    /// An update with an empty message.
    pub fn new(task_id: TaskId, event: TaskEvent) -> Self {
        ExecutorUpdate {
            task_id,
            event,
            message: String::new(),
            pid: None,
        }
    }
}

/// Errors of the executors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process guardian could not be started.
    #[error(
        "could not start the process guardian (sh) that kills tasks if localmarathon dies: {0}; is /bin/sh installed?"
    )]
    Guardian(#[source] std::io::Error),
}

/// The executor a localmarathon uses.
#[derive(Debug)]
pub enum Executor {
    /// Real processes.
    Process(process::ProcessExecutor),
    /// Simulation.
    Sim(sim::SimExecutor),
}

impl Executor {
    /// Starts an executor of `kind` reporting on `updates`.
    /// `docker` says which engine Docker-image tasks use and which network bridge tasks join.
    pub fn start(
        kind: ExecutorKind,
        docker: docker::DockerConfig,
        updates: mpsc::UnboundedSender<ExecutorUpdate>,
    ) -> Result<Executor, Error> {
        Ok(match kind {
            ExecutorKind::Process => {
                Executor::Process(process::ProcessExecutor::start(docker, updates)?)
            }
            ExecutorKind::Sim => Executor::Sim(sim::SimExecutor::new(updates)),
        })
    }

    /// Which kind this is.
    pub fn kind(&self) -> ExecutorKind {
        match self {
            Executor::Process(_) => ExecutorKind::Process,
            Executor::Sim(_) => ExecutorKind::Sim,
        }
    }

    /// Starts a task; progress arrives as updates.
    pub fn launch(&self, spec: LaunchSpec) {
        match self {
            Executor::Process(e) => e.launch(spec),
            Executor::Sim(e) => e.launch(spec),
        }
    }

    /// Asks a task to end: SIGTERM to its process group, SIGKILL after its grace period.
    pub fn kill(&self, task: &TaskId) {
        match self {
            Executor::Process(e) => e.kill(task),
            Executor::Sim(e) => e.kill(task),
        }
    }

    /// Ends a simulated task as if its process had exited (sim executor only; a real process
    /// is ended by signalling it).
    pub fn simulate_exit(&self, task: &TaskId, status: ExitStatus) -> bool {
        match self {
            Executor::Process(_) => false,
            Executor::Sim(e) => e.exit(task, status),
        }
    }

    /// Ends every task and waits until all are gone.
    pub async fn shutdown(&self) {
        match self {
            Executor::Process(e) => e.shutdown().await,
            Executor::Sim(e) => e.shutdown().await,
        }
    }

    /// Kills every process at once without waiting (for `Drop`).
    pub fn kill_all_now(&self) {
        if let Executor::Process(e) = self {
            e.kill_all_now();
        }
    }
}
