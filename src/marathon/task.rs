//! Tasks as Marathon reports them (`/v2/tasks`, `/v2/apps/{id}/tasks`, embedded in apps) and
//! the last task failure of an app.
//!
//! Task ids are opaque: their format changed between Marathon versions
//! (`<app>.<uuid>`, `<app>.instance-<uuid>._app.<n>`), so nothing here parses an app id out of
//! them. A stopped task omits `ports`, `startedAt`, `stagedAt` and `version`; those are `None`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppId;
use super::app::Version;
use super::health::HealthCheckResult;

opaque_id! {
    /// A Mesos task id as Marathon reports it.
    TaskId
}

opaque_id! {
    /// A Marathon instance id (`<app>.instance-<uuid>`), the unit of Marathon 1.4+ bookkeeping.
    InstanceId
}

wire_enum! {
    /// A Mesos task state.
    pub enum TaskState {
        /// Accepted by an agent, not started yet.
        Staging => "TASK_STAGING",
        /// The executor is starting the task.
        Starting => "TASK_STARTING",
        /// Running.
        Running => "TASK_RUNNING",
        /// Being killed.
        Killing => "TASK_KILLING",
        /// Exited with status 0.
        Finished => "TASK_FINISHED",
        /// Exited with a failure.
        Failed => "TASK_FAILED",
        /// Killed.
        Killed => "TASK_KILLED",
        /// Could not be launched.
        Error => "TASK_ERROR",
        /// Lost (older Mesos; may come back).
        Lost => "TASK_LOST",
        /// Dropped before launch.
        Dropped => "TASK_DROPPED",
        /// The agent is unreachable; the task may come back.
        Unreachable => "TASK_UNREACHABLE",
        /// Gone with its agent.
        Gone => "TASK_GONE",
        /// Gone, as the operator declared.
        GoneByOperator => "TASK_GONE_BY_OPERATOR",
        /// Mesos does not know the task.
        Unknown => "TASK_UNKNOWN",
    }
}

impl schemars::JsonSchema for TaskState {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskState".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Open-ended: a state this client does not know is kept as Mesos spelled it.
        schemars::json_schema!({
            "type": "string",
            "description": "A Mesos task state, e.g. TASK_RUNNING",
        })
    }
}

impl TaskState {
    /// Whether the task has ended for good: finished, failed, killed, error, dropped or gone.
    /// `TASK_LOST`, `TASK_UNREACHABLE` and `TASK_UNKNOWN` are not terminal: the task may
    /// come back.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Finished
                | Self::Failed
                | Self::Killed
                | Self::Error
                | Self::Dropped
                | Self::Gone
                | Self::GoneByOperator
        )
    }
}

/// An IP address of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddress {
    /// The address.
    pub ip_address: String,
    /// `IPv4` or `IPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A task of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The task id (opaque).
    pub id: TaskId,
    /// The app the task belongs to.
    pub app_id: AppId,
    /// The agent's host name.
    pub host: String,
    /// The Mesos state.
    pub state: TaskState,
    /// The task's IP addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<Vec<IpAddress>>,
    /// Host ports, paired by index with the app's port definitions or port mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Service ports, paired by index the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ports: Option<Vec<u16>>,
    /// The Mesos agent id (named `slaveId` on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_id: Option<String>,
    /// The Mesos agent id, where a Marathon reports it as `agentId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// When the task was staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_at: Option<DateTime<Utc>>,
    /// When the task reached `TASK_RUNNING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// The app version the task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Results of the app's health checks, in the app's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_results: Option<Vec<HealthCheckResult>>,
    /// Local persistent volumes of the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_volumes: Option<Vec<Value>>,
    /// The agent's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The agent's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The Mesos role of the task's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Task {
    /// The Mesos agent id, whichever name Marathon used for it.
    pub fn agent(&self) -> Option<&str> {
        self.agent_id.as_deref().or(self.slave_id.as_deref())
    }

    /// Whether the task has health results and all of them are alive (`None` without any:
    /// the health is unknown, not bad).
    pub fn healthy(&self) -> Option<bool> {
        let results = self.health_check_results.as_ref()?;
        if results.is_empty() {
            return None;
        }
        Some(results.iter().all(|r| r.alive))
    }
}

/// The last task of an app that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// The app.
    pub app_id: AppId,
    /// The failed task.
    pub task_id: TaskId,
    /// The agent's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// What Mesos said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// The app version the task ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The Mesos agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_id: Option<String>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
