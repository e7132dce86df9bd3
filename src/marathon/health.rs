//! Health and readiness: the checks an app declares and the results Marathon reports per task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::task::{InstanceId, TaskId};

wire_enum! {
    /// How a health check probes a task.
    pub enum HealthCheckProtocol {
        /// HTTP GET by Marathon.
        Http => "HTTP",
        /// HTTPS GET by Marathon.
        Https => "HTTPS",
        /// TCP connect by Marathon.
        Tcp => "TCP",
        /// A command run by the executor.
        Command => "COMMAND",
        /// HTTP GET by the Mesos executor.
        MesosHttp => "MESOS_HTTP",
        /// HTTPS GET by the Mesos executor.
        MesosHttps => "MESOS_HTTPS",
        /// TCP connect by the Mesos executor.
        MesosTcp => "MESOS_TCP",
    }
}

/// A health check of an app.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// The protocol (Marathon's default is `HTTP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<HealthCheckProtocol>,
    /// The HTTP path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the app's ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// A fixed port instead of `portIndex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The command of a `COMMAND` check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures are ignored for this long after the task starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    /// A check slower than this fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Failures in a row before the task is killed (0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consecutive_failures: Option<u32>,
    /// Treat 1xx answers as neither success nor failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_http1xx: Option<bool>,
    /// Delay before the first check (Mesos checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The command of a `COMMAND` health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCheck {
    /// The shell command; exit status 0 means healthy.
    pub value: String,
}

/// A readiness check consulted during deployments.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheck {
    /// The check's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `HTTP` or `HTTPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The HTTP path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The name of the port to probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    /// A check slower than this fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Status codes that mean ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status_codes_for_ready: Option<Vec<u16>>,
    /// Keep the last response in the deployment's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_last_response: Option<bool>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The result of one health check of one task (the RAML `Health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    /// Whether the last check succeeded.
    pub alive: bool,
    /// Failures in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// The first success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_success: Option<DateTime<Utc>>,
    /// The last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<DateTime<Utc>>,
    /// Why the last check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_cause: Option<String>,
    /// The instance checked (Marathon 1.4+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The task checked (before Marathon 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// Fields this client does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
