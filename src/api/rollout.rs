//! What the controller remembers of a deployment's rollouts, under its own `/observed` prefix:
//! one [`RevisionRecord`] per `/desired` revision it acted on
//! (`/observed/<service>/<name>/history/<revision>`), and a [`JournalEntry`] per decision it
//! made (`/observed/<service>/<name>/journal/<sequence>`).
//!
//! Written only by the controller, both bounded (the history by the spec's
//! `revision_history_limit`, the journal by a fixed length), and removed with the deployment.
//! `theseus rollout history` and `undo` read the history; `undo` writes a record's `spec` back
//! to `/desired` as a new revision.
//!
//! A record keeps its spec as JSON text ([`SpecText`]), not as a JSON tree: the controller
//! holds one or two records per deployment, and with 10,000 deployments the trees' maps and
//! strings cost megabytes where the text is one allocation each.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::spec::DeploymentSpec;
use super::validate::{ValidationErrors, parse_spec};

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
    pub spec: SpecText,
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

/// A deployment spec kept as compact JSON text in one allocation, as a [`RevisionRecord`]
/// holds it; `null` ([`SpecText::not_kept`]) when no spec is kept.
///
/// In a record's JSON (or YAML) it is the spec itself, inline, written exactly as the JSON
/// tree of the spec is: records read the same as when they held a tree, and a record written
/// then decodes. It decodes only from serde_json (text, bytes or a [`Value`]), which hands the
/// value's text over as it is.
#[derive(Clone, Default)]
pub struct SpecText(Box<RawValue>);

impl SpecText {
    /// No spec: `null`, what a record holds when the spec was too large to keep.
    pub fn not_kept() -> Self {
        Self::default()
    }

    /// The spec `value` as text, written as serde_json writes the tree (compact).
    pub fn from_value(value: &Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The spec in the JSON text `json` (a `/desired` value), rewritten as
    /// [`SpecText::from_value`] writes it whatever spacing and key order it came with, so a
    /// record reads the same however the spec was written; an error when it is not JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        Self::from_value(&serde_json::from_slice(json)?)
    }

    /// Whether a spec is kept: the text holds an object, not `null`.
    pub fn is_kept(&self) -> bool {
        self.0.get().starts_with('{')
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The spec as a JSON tree, for a caller that changes or walks it; an error only when
    /// the text is JSON that serde_json does not read into a tree (nested over 128 levels, a
    /// number out of range), which no record the controller writes holds.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The spec, validated as a `/desired` value is ([`parse_spec`]): what a rollback or an
    /// undo deploys. An error when none is kept.
    pub fn parse(&self) -> Result<DeploymentSpec, ValidationErrors> {
        parse_spec(self.0.get().as_bytes())
    }
}

impl PartialEq for SpecText {
    /// The same JSON value, as trees compare: equal texts are, and only texts that differ
    /// (in spacing or key order, read from elsewhere than the controller) are read as trees.
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            || matches!((self.to_value(), other.to_value()), (Ok(a), Ok(b)) if a == b)
    }
}

impl fmt::Debug for SpecText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpecText").field(&self.as_str()).finish()
    }
}

impl Serialize for SpecText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Through a tree, not as raw text: serde_json writes a `RawValue` verbatim (so
        // unindented in pretty output) and other formats (YAML) see a private marker struct.
        // Through the tree every output reads as it did when the record held the tree.
        self.to_value()
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SpecText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Self)
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
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> SpecText {
        SpecText::from_value(&value).unwrap()
    }

    #[test]
    fn a_record_round_trips_through_json_without_empty_fields() {
        let record = RevisionRecord {
            revision: 7,
            spec: spec(json!({"cmd": "sleep 100"})),
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

    /// The record as it was when it held its spec as a JSON tree, field for field.
    #[derive(Debug, Serialize, Deserialize)]
    struct TreeRecord {
        revision: i64,
        spec: Value,
        spec_hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change_cause: Option<String>,
        outcome: RevisionOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rolled_back_to: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_version: Option<String>,
        started_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ended_at: Option<DateTime<Utc>>,
    }

    fn tree_record(spec: Value) -> TreeRecord {
        TreeRecord {
            revision: 12,
            spec,
            spec_hash: "0f".repeat(32),
            change_cause: Some("release \"7\" – ünïcode".into()),
            outcome: RevisionOutcome::RolledBack,
            failure_reason: Some("CrashLooping".into()),
            failure_message: Some("exits\twith 3\n".into()),
            rolled_back_to: Some(9),
            app_version: None,
            started_at: DateTime::UNIX_EPOCH,
            running_at: None,
            ended_at: Some(DateTime::UNIX_EPOCH),
        }
    }

    /// A spec with what JSON text can vary on: key order, nesting, escapes, numbers.
    fn varied_spec() -> Value {
        json!({
            "instances": 3,
            "cmd": "echo \"a\\b\" \u{1F600} \u{7}",
            "environment": {"Z": "last", "A": "first", "EMPTY": ""},
            "labels": ["b", "a"],
            "cpus": 0.25,
            "mem": 1e3,
            "offset": -4,
            "big": u64::MAX,
            "health_checks": [],
            "constraints": {},
            "paused": false,
            "change_cause": null
        })
    }

    #[test]
    fn a_record_writes_the_bytes_it_wrote_when_it_held_a_tree() {
        for value in [varied_spec(), Value::Null] {
            let tree = tree_record(value);
            let old = serde_json::to_string(&tree).unwrap();
            let record: RevisionRecord = serde_json::from_str(&old).unwrap();
            assert_eq!(serde_json::to_string(&record).unwrap(), old);
            assert_eq!(
                serde_json::to_string_pretty(&record).unwrap(),
                serde_json::to_string_pretty(&tree).unwrap()
            );
            assert_eq!(
                serde_saphyr::to_string(&record).unwrap(),
                serde_saphyr::to_string(&tree).unwrap()
            );
            let built = RevisionRecord {
                spec: spec(tree.spec.clone()),
                ..record.clone()
            };
            assert_eq!(serde_json::to_string(&built).unwrap(), old);
        }
    }

    #[test]
    fn a_record_written_with_a_spec_tree_or_null_decodes() {
        let with_spec = serde_json::to_vec(&tree_record(varied_spec())).unwrap();
        let record: RevisionRecord = serde_json::from_slice(&with_spec).unwrap();
        assert!(record.spec.is_kept());
        assert_eq!(record.spec.to_value().unwrap(), varied_spec());
        assert_eq!(record.spec.to_value().unwrap()["environment"]["Z"], "last");
        assert_eq!(record.outcome, RevisionOutcome::RolledBack);
        assert_eq!(record.rolled_back_to, Some(9));

        let without = serde_json::to_vec(&tree_record(Value::Null)).unwrap();
        let record: RevisionRecord = serde_json::from_slice(&without).unwrap();
        assert!(!record.spec.is_kept());
        assert_eq!(record.spec, SpecText::not_kept());
        assert_eq!(record.spec.to_value().unwrap(), Value::Null);
        assert!(record.spec.parse().is_err(), "nothing to deploy again");

        let from_tree: RevisionRecord =
            serde_json::from_value(serde_json::to_value(tree_record(varied_spec())).unwrap())
                .unwrap();
        assert_eq!(from_tree.spec.to_value().unwrap(), varied_spec());
    }

    #[test]
    fn a_spec_read_as_written_by_people_is_kept_as_the_tree_would_write_it() {
        let written = br#"{ "instances" : 2,
            "cmd": "sleep 1" }"#;
        let text = SpecText::from_json(written).unwrap();
        assert_eq!(text.as_str(), r#"{"cmd":"sleep 1","instances":2}"#);
        assert_eq!(text.parse().unwrap().instances, 2);
        assert!(SpecText::from_json(b"{not json").is_err());
    }

    #[test]
    fn specs_are_equal_as_their_trees_are_whatever_their_spacing() {
        let record = RevisionRecord::from(tree_record(varied_spec()));
        let pretty = serde_json::to_string_pretty(&record).unwrap();
        let read: RevisionRecord = serde_json::from_str(&pretty).unwrap();
        assert_ne!(read.spec.as_str(), record.spec.as_str(), "kept as read");
        assert_eq!(read, record);
        assert_ne!(spec(json!({"cmd": "a"})), spec(json!({"cmd": "b"})));
    }

    impl From<TreeRecord> for RevisionRecord {
        fn from(tree: TreeRecord) -> Self {
            serde_json::from_str(&serde_json::to_string(&tree).unwrap()).unwrap()
        }
    }
}
