//! The dashboard's picture of etcd: every deployment's desired spec, status, task records,
//! history and journal entries, and the election keys, as one watch delivered them.
//!
//! What it promises: [`Model::apply`] is the only way in, and it says which deployment (or
//! the election) an event changed, so the pages can be told exactly what to redraw. Values are
//! parsed once, when they arrive; a value that does not parse is kept raw and shown as such,
//! never dropped. It does not read etcd itself: the [`feed`](crate::feed) does.
//!
//! Each deployment's records sit behind an `Arc` of their own, so cloning a model (what the
//! feed does when a page still holds the picture it changes) copies the map of 10,000
//! pointers, not 10,000 deployments' specs and tasks; a change copies only the records of the
//! deployment it touches, and only when a page holds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use theseus::api::{
    DeploymentKey, DeploymentSpec, DeploymentStatus, TaskRecord, ValidationErrors, parse_spec,
};
use theseus::store::{self, Entry, KeyPath, Layout, Revision, WatchEvent};

/// The sub-trees under a deployment's `/observed` prefix that hold a list of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordList {
    /// `/observed/<service>/<name>/history/<revision>`.
    History,
    /// `/observed/<service>/<name>/journal/<entry>`.
    Journal,
}

/// What an applied event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Something of this deployment.
    Deployment(DeploymentKey),
    /// The election keys.
    Leader,
    /// A key the dashboard does not show.
    Nothing,
}

/// The spec under `/desired`, validated once. The value is kept as the bytes stored (with
/// the labels read out for the fleet's rows) rather than as a JSON tree: with 10,000
/// deployments the trees' maps cost tens of MiB, and only a deployment's own page needs one.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The value as stored.
    pub text: Box<[u8]>,
    /// The spec's labels as text, whatever they hold (also when the spec is not valid).
    pub labels: Vec<String>,
    /// The validated spec, or why it is not one.
    pub spec: Result<DeploymentSpec, ValidationErrors>,
    /// The key's mod revision.
    pub revision: Revision,
}

impl Desired {
    /// The value as JSON (a JSON string holding the text when it is not JSON).
    pub fn raw(&self) -> Value {
        json_or_text(&self.text)
    }
}

/// A value that does not decode as what its key holds (a status, a task record): kept, not
/// dropped, with the text as stored and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct Unreadable {
    /// The value as stored, as text.
    pub text: String,
    /// Why: the key, the type it should hold and the decoder's message. Shared, so that the
    /// records stay cheap to clone.
    #[source]
    pub error: Arc<store::Error>,
}

impl Unreadable {
    /// `entry`'s value as a `T`, or why not.
    fn decode<T: serde::de::DeserializeOwned>(entry: &Entry) -> Result<T, Unreadable> {
        entry.json::<T>().map_err(|error| Unreadable {
            text: String::from_utf8_lossy(&entry.value).into_owned(),
            error: Arc::new(error),
        })
    }
}

/// The labels of a raw spec, as text, whatever they hold.
fn labels_of(raw: &Value) -> Vec<String> {
    match raw.get("labels") {
        Some(Value::Array(labels)) => labels
            .iter()
            .map(|label| match label {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Everything the dashboard knows of one deployment.
#[derive(Debug, Clone, Default)]
pub struct DeploymentRecords {
    /// The desired spec, if the key exists.
    pub desired: Option<Desired>,
    /// The status, or why it does not parse.
    pub status: Option<Result<DeploymentStatus, Unreadable>>,
    /// Task records by task id; a record that does not parse is kept as its text. Boxed: a
    /// map's node holds room for eleven values inline, and a task record is large, so
    /// unboxed a deployment with two tasks would carry nine empty records' worth of memory.
    pub tasks: BTreeMap<String, Box<Result<TaskRecord, Unreadable>>>,
    /// History entries by the rest of their key.
    pub history: BTreeMap<String, Value>,
    /// Journal entries by the rest of their key.
    pub journal: BTreeMap<String, Value>,
    /// When the dashboard saw the last change (or, at its first list, when the status was
    /// written).
    pub changed_at: Option<DateTime<Utc>>,
}

impl DeploymentRecords {
    fn is_empty(&self) -> bool {
        self.desired.is_none()
            && self.status.is_none()
            && self.tasks.is_empty()
            && self.history.is_empty()
            && self.journal.is_empty()
    }
}

/// The whole picture; see the module documentation.
#[derive(Debug, Clone)]
pub struct Model {
    layout: Layout,
    deployments: BTreeMap<DeploymentKey, Arc<DeploymentRecords>>,
    /// Election keys under `<p>/theseus/leader/`, by key.
    election: BTreeMap<String, Entry>,
    /// When each leader key was first seen by this process.
    election_seen: BTreeMap<String, DateTime<Utc>>,
}

impl Model {
    /// An empty picture of the keys under `layout`.
    pub fn new(layout: Layout) -> Model {
        Model {
            layout,
            deployments: BTreeMap::new(),
            election: BTreeMap::new(),
            election_seen: BTreeMap::new(),
        }
    }

    /// The key layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every deployment with any key, in key order.
    pub fn deployments(&self) -> &BTreeMap<DeploymentKey, Arc<DeploymentRecords>> {
        &self.deployments
    }

    /// The election keys, by key.
    pub fn election(&self) -> &BTreeMap<String, Entry> {
        &self.election
    }

    /// When this process first saw an election key.
    pub fn election_seen(&self, key: &str) -> Option<DateTime<Utc>> {
        self.election_seen.get(key).copied()
    }

    /// Applies one change of the watch; says what it changed. `now` is when it happened, or
    /// `None` for entries of a first list, whose time of change is unknown (a status then
    /// stands for its deployment's time with its own `updated_at`).
    pub fn apply(&mut self, event: WatchEvent, now: Option<DateTime<Utc>>) -> Changed {
        match event {
            WatchEvent::Put { entry, .. } => self.put(entry, now),
            WatchEvent::Delete { key, .. } => self.delete(&key, now),
            WatchEvent::Synced { .. } => Changed::Nothing,
        }
    }

    fn put(&mut self, entry: Entry, now: Option<DateTime<Utc>>) -> Changed {
        if entry.key.starts_with(&self.layout.leader_root()) {
            if let Some(now) = now {
                self.election_seen.entry(entry.key.clone()).or_insert(now);
            }
            self.election.insert(entry.key.clone(), entry);
            return Changed::Leader;
        }
        let Some((key, place)) = self.place(&entry.key) else {
            return Changed::Nothing;
        };
        let records = Arc::make_mut(self.deployments.entry(key.clone()).or_default());
        match place {
            Place::Desired => {
                let spec = parse_spec(&entry.value);
                records.desired = Some(Desired {
                    labels: labels_of(&json_or_text(&entry.value)),
                    text: entry.value.into_boxed_slice(),
                    spec,
                    revision: entry.mod_revision,
                });
            }
            Place::Status => {
                let status = Unreadable::decode::<DeploymentStatus>(&entry);
                if now.is_none()
                    && let Ok(status) = &status
                {
                    records.changed_at = records.changed_at.max(Some(status.updated_at));
                }
                records.status = Some(status);
            }
            Place::Task(id) => {
                let record = Unreadable::decode::<TaskRecord>(&entry);
                records.tasks.insert(id, Box::new(record));
            }
            Place::List(list, rest) => {
                let value = json_or_text(&entry.value);
                match list {
                    RecordList::History => records.history.insert(rest, value),
                    RecordList::Journal => records.journal.insert(rest, value),
                };
            }
        }
        if now.is_some() {
            records.changed_at = now;
        }
        Changed::Deployment(key)
    }

    /// Keeps what this model knows of when things changed for what `earlier` knew too: a
    /// relist after a lost connection does not make everything look just changed.
    pub fn carry_times_from(&mut self, earlier: &Model) {
        for (key, records) in &mut self.deployments {
            if let Some(before) = earlier.deployments.get(key) {
                let changed_at = records.changed_at.max(before.changed_at);
                Arc::make_mut(records).changed_at = changed_at;
            }
        }
        for (key, seen) in &earlier.election_seen {
            if self.election.contains_key(key) {
                self.election_seen.insert(key.clone(), *seen);
            }
        }
    }

    fn delete(&mut self, key: &str, now: Option<DateTime<Utc>>) -> Changed {
        if key.starts_with(&self.layout.leader_root()) {
            self.election.remove(key);
            self.election_seen.remove(key);
            return Changed::Leader;
        }
        let Some((deployment, place)) = self.place(key) else {
            return Changed::Nothing;
        };
        let Some(records) = self.deployments.get_mut(&deployment).map(Arc::make_mut) else {
            return Changed::Nothing;
        };
        match place {
            Place::Desired => records.desired = None,
            Place::Status => records.status = None,
            Place::Task(id) => {
                records.tasks.remove(&id);
            }
            Place::List(RecordList::History, rest) => {
                records.history.remove(&rest);
            }
            Place::List(RecordList::Journal, rest) => {
                records.journal.remove(&rest);
            }
        }
        records.changed_at = now.or(records.changed_at);
        if records.is_empty() {
            self.deployments.remove(&deployment);
        }
        Changed::Deployment(deployment)
    }

    /// Which deployment a key belongs to and where in it.
    fn place(&self, key: &str) -> Option<(DeploymentKey, Place)> {
        match self.layout.parse(key) {
            Some(KeyPath::Desired(key)) => return Some((key, Place::Desired)),
            Some(KeyPath::Status(key)) => return Some((key, Place::Status)),
            Some(KeyPath::Task { key, task_id }) => return Some((key, Place::Task(task_id))),
            Some(KeyPath::History { .. } | KeyPath::Journal { .. }) | None => {}
        }
        // History and journal keys are not part of the store's layout (yet): read them here,
        // as `<observed root><service>/<name>/(history|journal)/<rest>`.
        let rest = key.strip_prefix(&self.layout.observed_root())?;
        let mut parts = rest.splitn(4, '/');
        let (service, name, list, rest) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let list = match list {
            "history" => RecordList::History,
            "journal" => RecordList::Journal,
            _ => return None,
        };
        if rest.is_empty() {
            return None;
        }
        let key = DeploymentKey::new(service, name).ok()?;
        Some((key, Place::List(list, rest.to_owned())))
    }
}

enum Place {
    Desired,
    Status,
    Task(String),
    List(RecordList, String),
}

/// A value as JSON, or the text as a JSON string when it is not JSON.
fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, revision: Revision) -> Entry {
        Entry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    fn put(model: &mut Model, key: &str, value: &str, revision: Revision) -> Changed {
        let event = WatchEvent::Put {
            entry: entry(key, value, revision),
            prev: None,
        };
        model.apply(event, Some(Utc::now()))
    }

    #[test]
    fn every_key_of_a_deployment_lands_in_its_records_and_says_so() {
        let mut model = Model::new(Layout::new("/p").unwrap());
        let key: DeploymentKey = "web/blue".parse().unwrap();
        let changed = Changed::Deployment(key.clone());
        assert_eq!(
            put(&mut model, "/p/desired/web/blue", r#"{"cmd":"run"}"#, 2),
            changed
        );
        assert_eq!(
            put(&mut model, "/p/observed/web/blue/tasks/t1", "garbled", 3),
            changed
        );
        assert_eq!(
            put(
                &mut model,
                "/p/observed/web/blue/history/2",
                r#"{"a":1}"#,
                4
            ),
            changed
        );
        assert_eq!(
            put(&mut model, "/p/observed/web/blue/journal/0001", "text", 5),
            changed
        );
        assert_eq!(
            put(&mut model, "/p/theseus/leader/controller/1", "me", 6),
            Changed::Leader
        );
        assert_eq!(put(&mut model, "/p/other", "x", 7), Changed::Nothing);
        assert_eq!(
            put(&mut model, "/desired/web/blue", "{}", 8),
            Changed::Nothing
        );

        let records = &model.deployments()[&key];
        assert_eq!(records.desired.as_ref().unwrap().revision, 2);
        assert!(records.desired.as_ref().unwrap().spec.is_ok());
        assert_eq!(
            records.tasks["t1"]
                .as_ref()
                .as_ref()
                .map_err(|u| u.text.as_str()),
            Err("garbled")
        );
        assert_eq!(records.history["2"], serde_json::json!({"a": 1}));
        assert_eq!(records.journal["0001"], Value::String("text".into()));
        assert_eq!(model.election().len(), 1);
    }

    #[test]
    fn a_deployment_whose_last_key_is_deleted_is_gone() {
        let mut model = Model::new(Layout::default());
        put(&mut model, "/desired/web/blue", r#"{"cmd":"run"}"#, 2);
        put(&mut model, "/observed/web/blue/tasks/t1", "{}", 3);
        for key in ["/desired/web/blue", "/observed/web/blue/tasks/t1"] {
            let event = WatchEvent::Delete {
                key: key.into(),
                revision: 9,
                prev: None,
            };
            model.apply(event, Some(Utc::now()));
        }
        assert!(model.deployments().is_empty());
    }

    #[test]
    fn a_change_to_a_held_model_copies_only_the_deployment_it_touches() {
        let mut model = Model::new(Layout::default());
        put(&mut model, "/desired/web/blue", r#"{"cmd":"run"}"#, 2);
        put(&mut model, "/desired/web/green", r#"{"cmd":"run"}"#, 3);
        let held = model.clone();
        put(
            &mut model,
            "/desired/web/blue",
            r#"{"cmd":"run","instances":2}"#,
            4,
        );
        let (blue, green) = ("web/blue".parse().unwrap(), "web/green".parse().unwrap());
        assert!(Arc::ptr_eq(
            &held.deployments()[&green],
            &model.deployments()[&green]
        ));
        assert!(!Arc::ptr_eq(
            &held.deployments()[&blue],
            &model.deployments()[&blue]
        ));
        assert_eq!(
            held.deployments()[&blue].desired.as_ref().unwrap().revision,
            2
        );
        assert_eq!(
            model.deployments()[&blue]
                .desired
                .as_ref()
                .unwrap()
                .revision,
            4
        );
    }

    #[test]
    fn an_invalid_spec_is_kept_raw_with_the_reason() {
        let mut model = Model::new(Layout::default());
        put(
            &mut model,
            "/desired/web/blue",
            r#"{"cmd":"run","instnaces":2}"#,
            2,
        );
        let desired = model
            .deployments()
            .values()
            .next()
            .unwrap()
            .desired
            .clone()
            .unwrap();
        assert!(
            desired
                .spec
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("instnaces")
        );
        assert_eq!(desired.raw()["instnaces"], 2);
    }
}
