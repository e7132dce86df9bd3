//! What the controller remembers of a deployment's rollouts, under its own `/observed` prefix:
//! one [`RevisionRecord`] per `/desired` revision it acted on
//! (`/observed/<service>/<name>/history/<revision>`), and a [`JournalEntry`] per decision it
//! made (`/observed/<service>/<name>/journal/<sequence>`).
//!
//! Written only by the controller, both bounded (the history by the spec's
//! `revision_history_limit`, the journal by a fixed length), and removed with the deployment.
//! `theseus rollout history` and `undo` read the history; `undo` writes a record's `spec` back
//! to `/desired` as a new revision.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a revision stands, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevisionOutcome {
    /// The controller acts on it and it has not reached `Running` yet.
    Deploying,
    /// It reached `Running` and is still the revision in `/desired`.
    Running,
    /// It failed (deadline or crash loop) and nothing was rolled back: its app stays.
    Failed,
    /// It failed and the app was put back to an earlier revision that had reached `Running`.
    RolledBack,
    /// A later revision replaced it.
    Superseded,
}

impl RevisionOutcome {
    /// The name shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionOutcome::Deploying => "Deploying",
            RevisionOutcome::Running => "Running",
            RevisionOutcome::Failed => "Failed",
            RevisionOutcome::RolledBack => "RolledBack",
            RevisionOutcome::Superseded => "Superseded",
        }
    }
}

impl fmt::Display for RevisionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `/desired` revision the controller acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// The `/desired` key's mod_revision.
    pub revision: i64,
    /// The spec as it was read from `/desired` (valid), so it can be deployed again; `null`
    /// when it was too large to keep (over 512 KiB of JSON).
    pub spec: Value,
    /// The spec hash of the app it maps to (`THESEUS_SPEC_HASH`).
    pub spec_hash: String,
    /// The spec's `change_cause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    /// Where it stands, or how it ended.
    pub outcome: RevisionOutcome,
    /// Why it failed: a condition reason (`DeadlineExceeded`, `CrashLooping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Why it failed, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// The revision the app was put back to, when rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<i64>,
    /// The Marathon app version it produced, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// When the controller first acted on it.
    pub started_at: DateTime<Utc>,
    /// When it first reached `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at: Option<DateTime<Utc>>,
    /// When it failed or was superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

impl RevisionRecord {
    /// Whether it ever reached `Running`: only such a revision is rolled back to.
    pub fn reached_running(&self) -> bool {
        self.running_at.is_some()
    }
}

/// What the controller decided about a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// It started acting on a new revision.
    RevisionStarted,
    /// It created the Marathon app.
    AppCreated,
    /// It replaced the app's definition (Marathon restarts its tasks).
    AppUpdated,
    /// It changed the app's instance count only.
    AppScaled,
    /// The revision reached `Running`.
    RevisionRunning,
    /// The revision failed; nothing was rolled back.
    RevisionFailed,
    /// The revision failed and the app was put back to an earlier revision.
    RolledBack,
    /// It waits for a Marathon deployment it did not start.
    WaitingForDeployment,
    /// The deployment is paused: nothing goes to Marathon.
    Paused,
}

impl Decision {
    /// The name shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::RevisionStarted => "RevisionStarted",
            Decision::AppCreated => "AppCreated",
            Decision::AppUpdated => "AppUpdated",
            Decision::AppScaled => "AppScaled",
            Decision::RevisionRunning => "RevisionRunning",
            Decision::RevisionFailed => "RevisionFailed",
            Decision::RolledBack => "RolledBack",
            Decision::WaitingForDeployment => "WaitingForDeployment",
            Decision::Paused => "Paused",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision of the controller about a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The `/desired` revision it was made for (0 once the key is deleted).
    pub revision: i64,
    /// What was decided.
    pub decision: Decision,
    /// What and why, for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_json_without_empty_fields() {
        let record = RevisionRecord {
            revision: 7,
            spec: serde_json::json!({"cmd": "sleep 100"}),
            spec_hash: "ab".into(),
            change_cause: None,
            outcome: RevisionOutcome::Running,
            failure_reason: None,
            failure_message: None,
            rolled_back_to: None,
            app_version: Some("2026-01-01T00:00:00.000Z".into()),
            started_at: DateTime::UNIX_EPOCH,
            running_at: Some(DateTime::UNIX_EPOCH),
            ended_at: None,
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""outcome":"Running""#), "{text}");
        assert!(!text.contains("failure_reason"), "{text}");
        assert_eq!(
            serde_json::from_str::<RevisionRecord>(&text).unwrap(),
            record
        );
        assert!(record.reached_running());
    }
}
