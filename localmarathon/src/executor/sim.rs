//! The simulated executor: tasks walk the same lifecycle without any process.
//!
//! A launched task reports STARTING and RUNNING straight away and then runs until it is killed
//! (it ends KILLED) or [`SimExecutor::exit`] makes it end with a chosen exit status, which is how
//! tests simulate crashes. No task is spawned per simulated task, so thousands cost nothing.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::{ExecutorUpdate, LaunchSpec};
use crate::task::{ExitStatus, TaskEvent, TaskId};

/// Simulates tasks.
#[derive(Debug)]
pub struct SimExecutor {
    updates: mpsc::UnboundedSender<ExecutorUpdate>,
    running: Mutex<HashSet<TaskId>>,
}

impl SimExecutor {
    /// A simulator reporting on `updates`.
    pub fn new(updates: mpsc::UnboundedSender<ExecutorUpdate>) -> Self {
        SimExecutor {
            updates,
            running: Mutex::default(),
        }
    }

    fn send(&self, task: &TaskId, event: TaskEvent, message: String) {
        let _ = self.updates.send(ExecutorUpdate {
            task_id: task.clone(),
            event,
            message,
            pid: None,
        });
    }

    /// "Starts" a task: it is running at once.
    pub fn launch(&self, spec: LaunchSpec) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.task_id.clone());
        self.send(&spec.task_id, TaskEvent::ExecutorStarted, String::new());
        self.send(&spec.task_id, TaskEvent::ProcessRunning, String::new());
    }

    /// Kills a task: it ends as if it had exited on SIGTERM.
    pub fn kill(&self, task: &TaskId) {
        if self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task)
        {
            let status = ExitStatus::Signal(15);
            self.send(task, TaskEvent::Exited(status), status.message());
        }
    }

    /// Ends a task with `status`; false if it is not running.
    pub fn exit(&self, task: &TaskId, status: ExitStatus) -> bool {
        let was_running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task);
        if was_running {
            self.send(task, TaskEvent::Exited(status), status.message());
        }
        was_running
    }

    /// Ends every simulated task.
    pub async fn shutdown(&self) {
        let tasks: Vec<TaskId> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for task in tasks {
            let status = ExitStatus::Signal(15);
            self.send(&task, TaskEvent::Exited(status), status.message());
        }
    }
}
