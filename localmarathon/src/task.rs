//! The task lifecycle: Mesos task states and the one function that moves between them.
//!
//! ```text
//!   Launched ─▶ TASK_STAGING ─ExecutorStarted▶ TASK_STARTING ─ProcessRunning▶ TASK_RUNNING
//!                   │                              │                              │
//!                   │ LaunchFailed ─▶ TASK_FAILED ◀┘ Exited(non-zero / signal) ◀──┤
//!                   │                                 Exited(0) ─▶ TASK_FINISHED ◀┘
//!                   └─ KillRequested (any live state) ─▶ TASK_KILLING ─Exited(any)▶ TASK_KILLED
//! ```
//!
//! Terminal states never change again. A kill always passes through TASK_KILLING; the executor
//! confirms the end (also for a task whose process never started), which makes it TASK_KILLED.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::app_id::AppId;

/// A Mesos task state, as Marathon reports it in `state` and `taskStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Accepted by the agent, not yet started.
    #[serde(rename = "TASK_STAGING")]
    Staging,
    /// The executor is starting the process.
    #[serde(rename = "TASK_STARTING")]
    Starting,
    /// The process runs.
    #[serde(rename = "TASK_RUNNING")]
    Running,
    /// A kill was requested; the process has been signalled.
    #[serde(rename = "TASK_KILLING")]
    Killing,
    /// The process exited with status 0.
    #[serde(rename = "TASK_FINISHED")]
    Finished,
    /// The process exited with another status, died of a signal, or could not start.
    #[serde(rename = "TASK_FAILED")]
    Failed,
    /// The task was killed on request.
    #[serde(rename = "TASK_KILLED")]
    Killed,
    /// The task description was invalid.
    #[serde(rename = "TASK_ERROR")]
    Error,
}

impl TaskState {
    /// The wire name (`TASK_RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Staging => "TASK_STAGING",
            TaskState::Starting => "TASK_STARTING",
            TaskState::Running => "TASK_RUNNING",
            TaskState::Killing => "TASK_KILLING",
            TaskState::Finished => "TASK_FINISHED",
            TaskState::Failed => "TASK_FAILED",
            TaskState::Killed => "TASK_KILLED",
            TaskState::Error => "TASK_ERROR",
        }
    }

    /// Whether the task is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished | TaskState::Failed | TaskState::Killed | TaskState::Error
        )
    }

    /// Whether Marathon records a `lastTaskFailure` for this state (not for kills or
    /// successful exits).
    pub fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::Error)
    }

    /// Marathon's instance condition for this state (`instance_changed_event.condition`).
    pub fn condition(self) -> &'static str {
        match self {
            TaskState::Staging => "Staging",
            TaskState::Starting => "Starting",
            TaskState::Running => "Running",
            TaskState::Killing => "Killing",
            TaskState::Finished => "Finished",
            TaskState::Failed => "Failed",
            TaskState::Killed => "Killed",
            TaskState::Error => "Error",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this status code.
    Code(i32),
    /// Died of this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Mesos' command executor message for this ending.
    pub fn message(self) -> String {
        match self {
            ExitStatus::Code(code) => format!("Command exited with status {code}"),
            ExitStatus::Signal(signal) => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(signal_description)
                    .unwrap_or("Unknown signal");
                format!("Command terminated with signal {name}")
            }
        }
    }
}

fn signal_description(signal: nix::sys::signal::Signal) -> &'static str {
    use nix::sys::signal::Signal::*;
    // strsignal(3) wording, which Mesos puts into the message.
    match signal {
        SIGTERM => "Terminated",
        SIGKILL => "Killed",
        SIGINT => "Interrupt",
        SIGHUP => "Hangup",
        SIGQUIT => "Quit",
        SIGABRT => "Aborted",
        SIGSEGV => "Segmentation fault",
        SIGPIPE => "Broken pipe",
        SIGUSR1 => "User defined signal 1",
        SIGUSR2 => "User defined signal 2",
        _ => "Unknown signal",
    }
}

/// Something that happens to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// The executor began starting the process.
    ExecutorStarted,
    /// The process is up.
    ProcessRunning,
    /// Someone asked for the task to end.
    KillRequested,
    /// The process ended.
    Exited(ExitStatus),
    /// The process could not be started.
    LaunchFailed,
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task in {from} cannot take event {event:?}; the update is ignored")]
pub struct InvalidTransition {
    /// State before.
    pub from: TaskState,
    /// The event.
    pub event: TaskEvent,
}

impl TaskState {
    /// The single transition function of the task lifecycle.
    pub fn on(self, event: &TaskEvent) -> Result<TaskState, InvalidTransition> {
        use TaskEvent as E;
        use TaskState as S;
        let next = match (self, event) {
            // The executor picked the task up.
            (S::Staging, E::ExecutorStarted) => S::Starting,
            // Process started; Mesos sends RUNNING once the command is forked.
            (S::Starting, E::ProcessRunning) => S::Running,
            (S::Staging | S::Starting | S::Running, E::KillRequested) => S::Killing,
            // A repeated kill changes nothing.
            (S::Killing, E::KillRequested) => S::Killing,
            // Whatever the exit status, a task we were killing is KILLED.
            (S::Killing, E::Exited(_) | E::LaunchFailed) => S::Killed,
            (S::Starting | S::Running, E::Exited(ExitStatus::Code(0))) => S::Finished,
            (S::Starting | S::Running, E::Exited(_)) => S::Failed,
            (S::Staging | S::Starting, E::LaunchFailed) => S::Failed,
            (from, event) => {
                return Err(InvalidTransition {
                    from,
                    event: event.clone(),
                });
            }
        };
        Ok(next)
    }
}

/// `<app>.instance-<uuid>`: one slot of an app, relaunched under new task ids. Clones share
/// the string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(Arc<str>);

/// `<instance>._app.<incarnation>`: one run of an instance. Clones share the string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(Arc<str>);

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl InstanceId {
    /// A fresh instance id for `app`.
    pub fn new(app: &AppId) -> Self {
        InstanceId(format!("{}.instance-{}", app.safe_path(), uuid::Uuid::new_v4()).into())
    }

    /// The id of this instance's `incarnation`-th task.
    pub fn task(&self, incarnation: u32) -> TaskId {
        TaskId(format!("{}._app.{incarnation}", self.0).into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TaskId {
    /// Wraps a task id from a request; ids are opaque.
    pub fn from_raw(raw: &str) -> Self {
        TaskId(raw.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instance part of the id, when it has Marathon's `._app.<n>` suffix.
    pub fn instance(&self) -> Option<InstanceId> {
        self.0
            .rsplit_once("._app.")
            .map(|(instance, _)| InstanceId(instance.into()))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_walks_staging_starting_running_finished() {
        let s = TaskState::Staging;
        let s = s.on(&TaskEvent::ExecutorStarted).unwrap();
        assert_eq!(s, TaskState::Starting);
        let s = s.on(&TaskEvent::ProcessRunning).unwrap();
        assert_eq!(s, TaskState::Running);
        assert_eq!(
            s.on(&TaskEvent::Exited(ExitStatus::Code(0))).unwrap(),
            TaskState::Finished
        );
        assert_eq!(
            s.on(&TaskEvent::Exited(ExitStatus::Code(3))).unwrap(),
            TaskState::Failed
        );
        assert_eq!(
            s.on(&TaskEvent::Exited(ExitStatus::Signal(9))).unwrap(),
            TaskState::Failed
        );
    }

    #[test]
    fn a_killed_task_ends_killed_whatever_its_exit_status() {
        let s = TaskState::Running.on(&TaskEvent::KillRequested).unwrap();
        assert_eq!(s, TaskState::Killing);
        for exit in [
            ExitStatus::Code(0),
            ExitStatus::Code(143),
            ExitStatus::Signal(15),
        ] {
            assert_eq!(s.on(&TaskEvent::Exited(exit)).unwrap(), TaskState::Killed);
        }
    }

    #[test]
    fn terminal_states_do_not_move() {
        for s in [
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Error,
        ] {
            assert!(s.is_terminal());
            assert!(s.on(&TaskEvent::KillRequested).is_err());
            assert!(s.on(&TaskEvent::ProcessRunning).is_err());
        }
        assert!(TaskState::Staging.on(&TaskEvent::ProcessRunning).is_err());
    }

    #[test]
    fn task_ids_follow_marathon_1_10() {
        let app = AppId::parse("/prod/web").unwrap();
        let instance = InstanceId::new(&app);
        assert!(instance.as_str().starts_with("prod_web.instance-"));
        let task = instance.task(2);
        assert!(task.as_str().ends_with("._app.2"));
        assert_eq!(task.instance(), Some(instance));
    }

    #[test]
    fn exit_messages_match_the_mesos_command_executor() {
        assert_eq!(
            ExitStatus::Code(1).message(),
            "Command exited with status 1"
        );
        assert_eq!(
            ExitStatus::Signal(15).message(),
            "Command terminated with signal Terminated"
        );
    }
}
