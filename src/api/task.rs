//! What discovery needs to know about one running task, at
//! `/observed/<service>/<name>/tasks/<task-id>`.
//!
//! Written only by the controller from Marathon's own snapshot; read by guestutils and
//! watchers. Ports are keyed by the names in the spec, paired with Marathon's host ports
//! through the app's port definitions, never guessed from their order alone.

use std::collections::BTreeMap;
use std::fmt;

use crate::marathon::task::TaskState;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether a task passes its health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Every health check passes.
    Healthy,
    /// A health check fails.
    Unhealthy,
    /// No result yet, or the app has no health checks.
    #[default]
    Unknown,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        })
    }
}

/// One named port of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortBinding {
    /// The port on the agent (`host`) that reaches the task.
    pub host: u16,
    /// The port the process listens on inside its container (equal to `host` for command
    /// apps, which share the agent's network).
    pub container: u16,
    /// `tcp` or `udp`.
    #[serde(default = "tcp")]
    pub protocol: String,
}

fn tcp() -> String {
    "tcp".to_owned()
}

/// A task of an owned app, as the observed tree records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRecord {
    /// The service, as in `/desired/<service>/...`.
    pub service: String,
    /// The deployment's name, as in `/desired/<service>/<name>`.
    pub deployment: String,
    /// Marathon's task id (the Mesos task id; the old guestutils' container name). Opaque.
    pub task_id: String,
    /// The Marathon app id, e.g. `/ingestor/dev`.
    pub app_id: String,
    /// The agent the task runs on: the address other tasks connect to.
    pub host: String,
    /// The Mesos agent's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The task's own IP addresses, where Mesos reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// Ports by the names of the spec.
    #[serde(default)]
    pub ports: BTreeMap<String, PortBinding>,
    /// The Mesos task state, e.g. `TASK_RUNNING`.
    pub state: TaskState,
    /// Health-check verdict.
    #[serde(default)]
    pub health: Health,
    /// Whether the app has health checks: then only a healthy task serves.
    #[serde(default)]
    pub health_checked: bool,
    /// When Mesos staged the task (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_at: Option<String>,
    /// When the task started running (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The app version the task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The deployment's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl TaskRecord {
    /// Whether the task is running.
    pub fn is_running(&self) -> bool {
        self.state == TaskState::Running
    }

    /// Whether the task should receive traffic: running, and healthy when its app has health
    /// checks. This is what `node_list` and watchers count.
    pub fn is_serving(&self) -> bool {
        self.is_running() && (!self.health_checked || self.health == Health::Healthy)
    }

    /// Whether the task carries every one of `labels`.
    pub fn has_labels<S: AsRef<str>>(&self, labels: &[S]) -> bool {
        labels
            .iter()
            .all(|wanted| self.labels.iter().any(|have| have == wanted.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TaskRecord {
        TaskRecord {
            service: "ingestor".into(),
            deployment: "dev".into(),
            task_id: "ingestor_dev.4f2c".into(),
            app_id: "/ingestor/dev".into(),
            host: "127.0.0.11".into(),
            agent_id: None,
            ip_addresses: vec![],
            ports: BTreeMap::from([(
                "api".to_owned(),
                PortBinding {
                    host: 31005,
                    container: 5000,
                    protocol: "tcp".into(),
                },
            )]),
            state: TaskState::Running,
            health: Health::Unknown,
            health_checked: false,
            staged_at: None,
            started_at: None,
            version: None,
            labels: vec!["dev".into(), "eu".into()],
        }
    }

    #[test]
    fn labels_match_as_a_subset() {
        let task = record();
        assert!(task.has_labels::<&str>(&[]));
        assert!(task.has_labels(&["dev"]));
        assert!(task.has_labels(&["eu", "dev"]));
        assert!(!task.has_labels(&["dev", "prod"]));
    }

    #[test]
    fn a_task_serves_when_running_and_healthy_if_checked() {
        let mut task = record();
        assert!(task.is_serving());
        task.health_checked = true;
        assert!(!task.is_serving(), "no result yet");
        task.health = Health::Healthy;
        assert!(task.is_serving());
        task.state = TaskState::Staging;
        assert!(!task.is_serving());
    }

    #[test]
    fn ports_serialise_by_name_with_host_and_container() {
        let json = serde_json::to_value(record()).unwrap();
        assert_eq!(
            json["ports"]["api"],
            serde_json::json!({"host": 31005, "container": 5000, "protocol": "tcp"})
        );
        assert_eq!(json["health"], "unknown");
    }
}
