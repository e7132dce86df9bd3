//! What the controller reports about a deployment, at `/observed/<service>/<name>/status`.
//!
//! Written only by the controller, only when something in it changed; read by `theseus get`
//! and `theseus rollout status`. The `observed_revision` ties a status to the `/desired`
//! revision it acted on, so a reader can tell a current status from a stale one.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Reason;

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Seen, not acted on yet.
    Pending,
    /// Marathon is creating, changing or scaling the app.
    Deploying,
    /// Every desired instance runs (and is healthy, where the spec has health checks).
    Running,
    /// The app is not deploying but fewer instances run or are healthy than desired.
    Degraded,
    /// The controller cannot make Marathon match the spec (rejected by Marathon, an id held by
    /// an app theseus does not own, a deployment that failed).
    Failed,
    /// The spec is not valid; nothing was done and a running app was left as it was.
    Invalid,
    /// The spec was removed; the app is being deleted.
    Deleting,
}

impl Phase {
    /// The name shown in tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Deploying => "Deploying",
            Phase::Running => "Running",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Invalid => "Invalid",
            Phase::Deleting => "Deleting",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a condition is about: the kinds the controller writes. [`Condition::kind`] holds the
/// word as text, so that a reader accepts a kind a newer controller added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionKind {
    /// Whether the spec is valid.
    Valid,
    /// Whether the Marathon app is this deployment's to manage.
    Owned,
    /// Whether the current revision is rolling out, or why it is stuck or failed.
    Progressing,
    /// Whether the desired instances are running (and healthy, with health checks).
    Available,
}

impl ConditionKind {
    /// The word written in conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Valid => "Valid",
            ConditionKind::Owned => "Owned",
            ConditionKind::Progressing => "Progressing",
            ConditionKind::Available => "Available",
        }
    }
}

impl fmt::Display for ConditionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation about a deployment, with the reason in one word and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Condition {
    /// What the condition is about, e.g. `Valid`, `Available`, `Progressing`, `Owned`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds.
    pub status: bool,
    /// A CamelCase word for programs from the fixed vocabulary of [`Reason`], e.g.
    /// `SpecInvalid`, `MarathonUnavailable`; kept as text so that a reader accepts a word a
    /// newer controller added.
    pub reason: String,
    /// What happened, for people; validation errors name the JSON pointer of the bad field.
    pub message: String,
}

impl Condition {
    /// A condition that holds.
    pub fn holds(kind: ConditionKind, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            status: true,
            reason: reason.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn fails(kind: ConditionKind, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            status: false,
            reason: reason.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// Whether its reason is `reason`.
    pub fn is(&self, reason: Reason) -> bool {
        self.reason == reason.as_str()
    }

    /// Whether it is about `kind`.
    pub fn is_about(&self, kind: ConditionKind) -> bool {
        self.kind == kind.as_str()
    }
}

/// How many instances are where, as Marathon counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceCounts {
    /// Instances the spec asks for.
    pub desired: u32,
    /// Tasks staged (no status yet, or TASK_STAGING).
    pub staged: u32,
    /// Tasks running.
    pub running: u32,
    /// Running tasks whose every health check passes.
    pub healthy: u32,
    /// Running tasks with a failing health check.
    pub unhealthy: u32,
}

/// The last task of the app that ended badly, as Marathon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TaskFailure")]
pub struct LastTaskFailure {
    /// The task's id.
    pub task_id: String,
    /// Its final Mesos state, e.g. `TASK_FAILED`.
    pub state: String,
    /// Why, as Mesos said it.
    pub message: String,
    /// The agent it ran on.
    pub host: String,
    /// When it ended (Marathon's timestamp, RFC 3339).
    pub timestamp: String,
}

/// The controller's report on one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeploymentStatus {
    /// The `/desired` key's mod_revision this status describes; 0 after the key was deleted.
    pub observed_revision: i64,
    /// Where the deployment stands.
    pub phase: Phase,
    /// Observations with reasons; every validation error appears here with its JSON pointer.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Instance counts.
    #[serde(default)]
    pub instances: InstanceCounts,
    /// The Marathon app id, e.g. `/ingestor/dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The Marathon app version running or being deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Marathon deployments in progress for the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployment_ids: Vec<String>,
    /// The last task failure Marathon reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_task_failure: Option<LastTaskFailure>,
    /// When the controller first acted on `observed_revision`: its progress deadline counts
    /// from here (absent while the deployment is paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_started_at: Option<DateTime<Utc>>,
    /// When `observed_revision` first reached `Running`; once it has, the deadline is met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_running_at: Option<DateTime<Utc>>,
    /// Task failures of `observed_revision`'s app version seen before it ran or within its
    /// progress deadline; past the spec's `crash_loop_limit` the revision has failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision_task_failures: u32,
    /// When the controller wrote this status.
    pub updated_at: DateTime<Utc>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl DeploymentStatus {
    /// Whether two statuses say the same thing, ignoring when they were written: the
    /// controller writes a status only when this is false.
    pub fn same_report(&self, other: &DeploymentStatus) -> bool {
        let DeploymentStatus {
            observed_revision,
            phase,
            conditions,
            instances,
            app_id,
            app_version,
            deployment_ids,
            last_task_failure,
            revision_started_at,
            revision_running_at,
            revision_task_failures,
            updated_at: _,
        } = self;
        *observed_revision == other.observed_revision
            && *phase == other.phase
            && *conditions == other.conditions
            && *instances == other.instances
            && *app_id == other.app_id
            && *app_version == other.app_version
            && *deployment_ids == other.deployment_ids
            && *last_task_failure == other.last_task_failure
            && *revision_started_at == other.revision_started_at
            && *revision_running_at == other.revision_running_at
            && *revision_task_failures == other.revision_task_failures
    }

    /// The condition of a kind, if reported.
    pub fn condition(&self, kind: ConditionKind) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.is_about(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: Phase) -> DeploymentStatus {
        DeploymentStatus {
            observed_revision: 7,
            phase,
            conditions: vec![Condition::holds(
                ConditionKind::Valid,
                Reason::SpecValid,
                "ok",
            )],
            instances: InstanceCounts {
                desired: 2,
                running: 2,
                ..Default::default()
            },
            app_id: Some("/ingestor/dev".into()),
            app_version: None,
            deployment_ids: vec![],
            last_task_failure: None,
            revision_started_at: None,
            revision_running_at: None,
            revision_task_failures: 0,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_same_report_ignores_the_time_it_was_written() {
        let a = status(Phase::Running);
        let mut b = a.clone();
        b.updated_at = a.updated_at + chrono::Duration::seconds(5);
        assert!(a.same_report(&b));
        b.phase = Phase::Degraded;
        assert!(!a.same_report(&b));
    }

    #[test]
    fn status_round_trips_through_json() {
        let a = status(Phase::Invalid);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains(r#""phase":"Invalid""#));
        assert!(json.contains(r#""type":"Valid""#));
        let b: DeploymentStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(a, b);
    }
}
