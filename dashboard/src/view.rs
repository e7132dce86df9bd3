//! What the pages show, computed from the [`Model`] alone: one fleet row per deployment, a
//! deployment's detail, the services' node lists and the election.
//!
//! Every view is plain data serialised as JSON; the pages put it into the document as text,
//! never as markup. Specs pass through [`mask_spec`] here, so a secret never reaches a page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use theseus::api::{
    Condition, ConditionKind, DeploymentKey, InstanceCounts, LastTaskFailure, Phase, TaskRecord,
};
use theseus::guest::{NodeQuery, ServiceTasks};

use crate::diff::{DiffLine, line_diff};
use crate::mask::mask_spec;
use crate::model::{DeploymentRecords, Model, Unreadable};

/// One row of the fleet page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRow {
    /// `<service>/<name>`.
    pub id: String,
    /// The service.
    pub service: String,
    /// The deployment's name.
    pub name: String,
    /// The spec's labels, as written (also when the spec is not valid).
    pub labels: Vec<String>,
    /// The `/desired` key's mod revision.
    pub desired_revision: Option<i64>,
    /// The revision the controller's status describes.
    pub observed_revision: Option<i64>,
    /// Instances asked for.
    pub desired: Option<u32>,
    /// Instances running, as last reported.
    pub running: Option<u32>,
    /// Instances healthy, as last reported.
    pub healthy: Option<u32>,
    /// The phase of the current spec (see [`phase`]).
    pub phase: String,
    /// What holds the deployment up, when something does.
    pub blocking: Option<String>,
    /// When the dashboard last saw it change.
    pub changed_at: Option<DateTime<Utc>>,
}

/// The fleet row of one deployment.
pub fn fleet_row(key: &DeploymentKey, records: &DeploymentRecords) -> FleetRow {
    let status = records
        .status
        .as_ref()
        .and_then(|status| status.as_ref().ok());
    let desired = records.desired.as_ref();
    let spec_instances = desired
        .and_then(|d| d.spec.as_ref().ok())
        .map(|spec| spec.instances);
    let counts = status.map(|status| status.instances);
    FleetRow {
        id: key.to_string(),
        service: key.service.to_string(),
        name: key.name.to_string(),
        labels: desired.map(|d| d.labels.clone()).unwrap_or_default(),
        desired_revision: desired.map(|d| d.revision),
        observed_revision: status.map(|s| s.observed_revision),
        desired: spec_instances.or(counts.map(|c| c.desired)),
        running: counts.map(|c| c.running),
        healthy: counts.map(|c| c.healthy),
        phase: phase(records),
        blocking: blocking(records),
        changed_at: records.changed_at,
    }
}

/// Every fleet row, in key order.
pub fn fleet(model: &Model) -> Vec<FleetRow> {
    model
        .deployments()
        .iter()
        .map(|(key, records)| fleet_row(key, records))
        .collect()
}

/// The phase to show, as `theseus get` shows it: `Invalid` for a spec that does not
/// validate, `Pending` while the status describes another revision than the current spec,
/// otherwise the status's phase; `Deleting` (or the status's) once the spec is gone.
pub fn phase(records: &DeploymentRecords) -> String {
    let status = records
        .status
        .as_ref()
        .and_then(|status| status.as_ref().ok());
    match (&records.desired, status) {
        (Some(desired), _) if desired.spec.is_err() => Phase::Invalid.to_string(),
        (Some(_), None) => Phase::Pending.to_string(),
        (Some(desired), Some(status)) if status.observed_revision != desired.revision => {
            Phase::Pending.to_string()
        }
        (_, Some(status)) => status.phase.to_string(),
        (None, None) => "-".to_owned(),
    }
}

/// What holds the deployment up: the validation errors of an invalid spec, the controller
/// not having acted yet, or the status's failing conditions (as `theseus rollout status`
/// names them).
pub fn blocking(records: &DeploymentRecords) -> Option<String> {
    let status = records
        .status
        .as_ref()
        .and_then(|status| status.as_ref().ok());
    if let Some(desired) = &records.desired {
        if let Err(errors) = &desired.spec {
            return Some(errors.to_string());
        }
        if status.is_none_or(|status| status.observed_revision != desired.revision) {
            return Some(format!(
                "waiting for the controller to act on revision {}",
                desired.revision
            ));
        }
    }
    if let Some(Err(error)) = &records.status {
        return Some(format!("the status cannot be read: {error}"));
    }
    let failing: Vec<String> = status?
        .conditions
        .iter()
        .filter(|condition| !condition.status && !condition.is_about(ConditionKind::Available))
        .map(|condition| format!("{}: {}", condition.reason, condition.message))
        .collect();
    (!failing.is_empty()).then(|| failing.join("; "))
}

/// A port of a task, with the address to open it at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortView {
    /// The port's name in the spec.
    pub name: String,
    /// The host port peers connect to.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `http://<host>:<host port>/`.
    pub url: String,
}

/// One task of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    /// The Mesos task id.
    pub task_id: String,
    /// The agent's address.
    pub host: String,
    /// Its ports, by name.
    pub ports: Vec<PortView>,
    /// Mesos state, e.g. `TASK_RUNNING`.
    pub state: String,
    /// `healthy`, `unhealthy` or `unknown`.
    pub health: String,
    /// Whether it serves (counts in `theseus guest node-list`).
    pub serving: bool,
    /// When it started (Marathon's timestamp).
    pub started_at: Option<String>,
    /// When it was staged.
    pub staged_at: Option<String>,
    /// The app version it runs.
    pub version: Option<String>,
    /// The raw record, when it is not a valid task record.
    pub unreadable: Option<String>,
}

fn task_view(task_id: &str, record: &Result<TaskRecord, Unreadable>) -> TaskView {
    match record {
        Ok(record) => TaskView {
            task_id: task_id.to_owned(),
            host: record.host.clone(),
            ports: record
                .ports
                .iter()
                .map(|(name, port)| PortView {
                    name: name.clone(),
                    host_port: port.host,
                    container_port: port.container,
                    protocol: port.protocol.clone(),
                    url: format!("http://{}:{}/", record.host, port.host),
                })
                .collect(),
            state: record.state.to_string(),
            health: record.health.to_string(),
            serving: record.is_serving(),
            started_at: record.started_at.clone(),
            staged_at: record.staged_at.clone(),
            version: record.version.clone(),
            unreadable: None,
        },
        Err(unreadable) => TaskView {
            task_id: task_id.to_owned(),
            host: String::new(),
            ports: Vec::new(),
            state: "unreadable".to_owned(),
            health: "unknown".to_owned(),
            serving: false,
            started_at: None,
            staged_at: None,
            version: None,
            unreadable: Some(unreadable.text.clone()),
        },
    }
}

/// One history or journal entry: the rest of its key and its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    /// The key below `history/` or `journal/`.
    pub key: String,
    /// The value (JSON, or its text).
    pub value: Value,
}

/// The deployment page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentView {
    /// The fleet row of the deployment (counts, phase, what blocks).
    pub row: FleetRow,
    /// Whether any key of the deployment exists.
    pub exists: bool,
    /// The spec as stored, secrets masked; `null` without one.
    pub spec: Value,
    /// Why the spec is not valid, when it is not.
    pub spec_errors: Option<String>,
    /// The status's conditions.
    pub conditions: Vec<Condition>,
    /// Instance counts as the status reports them.
    pub instances: Option<InstanceCounts>,
    /// The Marathon app id and version.
    pub app_id: Option<String>,
    /// The Marathon app version.
    pub app_version: Option<String>,
    /// When the controller wrote the status.
    pub status_updated_at: Option<DateTime<Utc>>,
    /// The last task failure Marathon reported.
    pub last_task_failure: Option<LastTaskFailure>,
    /// The tasks, by task id.
    pub tasks: Vec<TaskView>,
    /// History entries, when the controller records them.
    pub history: Vec<RecordView>,
    /// Journal entries, when the controller records them.
    pub journal: Vec<RecordView>,
}

/// The deployment page of `key` (an empty page with `exists: false` when nothing is known).
pub fn deployment(model: &Model, key: &DeploymentKey) -> DeploymentView {
    let empty = DeploymentRecords::default();
    let records = model.deployments().get(key).map(AsRef::as_ref);
    let exists = records.is_some();
    let records = records.unwrap_or(&empty);
    let status = records
        .status
        .as_ref()
        .and_then(|status| status.as_ref().ok());
    let list = |entries: &std::collections::BTreeMap<String, Value>| {
        entries
            .iter()
            .map(|(key, value)| RecordView {
                key: key.clone(),
                value: mask_record(value.clone()),
            })
            .collect()
    };
    DeploymentView {
        row: fleet_row(key, records),
        exists,
        spec: records
            .desired
            .as_ref()
            .map_or(Value::Null, |desired| mask_spec(desired.raw())),
        spec_errors: records
            .desired
            .as_ref()
            .and_then(|desired| desired.spec.as_ref().err().map(ToString::to_string)),
        conditions: status.map(|s| s.conditions.clone()).unwrap_or_default(),
        instances: status.map(|s| s.instances),
        app_id: status.and_then(|s| s.app_id.clone()),
        app_version: status.and_then(|s| s.app_version.clone()),
        status_updated_at: status.map(|s| s.updated_at),
        last_task_failure: status.and_then(|s| s.last_task_failure.clone()),
        tasks: records
            .tasks
            .iter()
            .map(|(id, record)| task_view(id, record))
            .collect(),
        history: list(&records.history),
        journal: list(&records.journal),
    }
}

/// A history record (or any record) with the secrets of the spec it holds masked.
fn mask_record(mut value: Value) -> Value {
    if let Some(spec) = value.get_mut("spec") {
        *spec = mask_spec(spec.take());
    }
    value
}

/// Why a diff of two specs cannot be shown (the page shows the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// Nothing is known of the deployment.
    #[error("no deployment {0}")]
    NoDeployment(DeploymentKey),
    /// `desired` was asked for and the key does not exist.
    #[error("there is no spec under /desired")]
    NoDesiredSpec,
    /// The revision asked for is not in the history.
    #[error("revision {0} is not in the history")]
    NotInHistory(String),
    /// The revision's record does not hold its spec.
    #[error("revision {0} was recorded without its spec")]
    SpecNotRecorded(String),
}

/// Which spec of a deployment a diff compares: `desired` (the spec in `/desired` now) or a
/// revision recorded in its history.
fn spec_text(records: &DeploymentRecords, which: &str) -> Result<String, DiffError> {
    let spec = if which == "desired" {
        records
            .desired
            .as_ref()
            .map(|desired| desired.raw())
            .ok_or(DiffError::NoDesiredSpec)?
    } else {
        let record = records
            .history
            .get(which)
            .ok_or_else(|| DiffError::NotInHistory(which.to_owned()))?;
        match record.get("spec") {
            Some(spec) if !spec.is_null() => spec.clone(),
            _ => return Err(DiffError::SpecNotRecorded(which.to_owned())),
        }
    };
    Ok(serde_json::to_string_pretty(&mask_spec(spec)).unwrap_or_default())
}

/// The line diff of two specs of `key` (`desired` or a history revision each), secrets
/// masked before they are compared; why not, when one of them is not known.
pub fn revision_diff(
    model: &Model,
    key: &DeploymentKey,
    from: &str,
    to: &str,
) -> Result<Vec<DiffLine>, DiffError> {
    let records = model
        .deployments()
        .get(key)
        .ok_or_else(|| DiffError::NoDeployment(key.clone()))?;
    Ok(line_diff(
        &spec_text(records, from)?,
        &spec_text(records, to)?,
    ))
}

/// One line of a service's node list, with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeLine {
    /// The line `theseus guest node-list` prints.
    pub address: String,
    /// The task.
    pub task_id: String,
    /// The deployment it belongs to.
    pub deployment: String,
    /// The deployment's labels.
    pub labels: Vec<String>,
}

/// One service on the services page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// The service.
    pub service: String,
    /// The command whose answer `lines` is.
    pub command: String,
    /// Its answer: the serving endpoints.
    pub lines: Vec<NodeLine>,
    /// The command's error, when it fails (no serving task, a port a task lacks).
    pub error: Option<String>,
    /// Every deployment of the service.
    pub deployments: Vec<String>,
}

/// The services page: per service, the node list `theseus guest node-list` answers, asked
/// for every port name its tasks have, through the same library call.
pub fn services(model: &Model) -> Vec<ServiceView> {
    let mut views: Vec<ServiceView> = Vec::new();
    let mut current: Option<(theseus::api::DnsLabel, Vec<String>, Vec<TaskRecord>)> = None;
    let mut finish = |current: Option<(theseus::api::DnsLabel, Vec<String>, Vec<TaskRecord>)>| {
        if let Some((service, deployments, records)) = current {
            views.push(service_view(model, service, deployments, records));
        }
    };
    for (key, records) in model.deployments() {
        if current
            .as_ref()
            .is_none_or(|(service, ..)| *service != key.service)
        {
            finish(current.take());
            current = Some((key.service.clone(), Vec::new(), Vec::new()));
        }
        let (_, deployments, tasks) = current.as_mut().expect("set above");
        deployments.push(key.name.to_string());
        tasks.extend(
            records
                .tasks
                .values()
                .filter_map(|r| r.as_ref().as_ref().ok())
                .cloned(),
        );
    }
    finish(current.take());
    views
}

fn service_view(
    model: &Model,
    service: theseus::api::DnsLabel,
    deployments: Vec<String>,
    records: Vec<TaskRecord>,
) -> ServiceView {
    let mut ports: Vec<String> = records
        .iter()
        .filter(|record| record.is_serving())
        .flat_map(|record| record.ports.keys().cloned())
        .collect();
    ports.sort();
    ports.dedup();
    let key = model.layout().observed_service(&service);
    let tasks = ServiceTasks::new(service.clone(), key, 0, records);
    let mut command = format!("theseus guest node-list {service}");
    if !ports.is_empty() {
        command.push_str(&format!(" --ports {}", ports.join(",")));
    }
    let query = NodeQuery {
        ports,
        ..NodeQuery::default()
    };
    let (lines, error) = match tasks.node_list(&query) {
        Ok(listed) => (
            listed
                .into_iter()
                .map(|listed| NodeLine {
                    address: listed.address,
                    task_id: listed.node.task_id,
                    deployment: listed.node.deployment,
                    labels: listed.node.labels,
                })
                .collect(),
            None,
        ),
        Err(error) => (Vec::new(), Some(error.to_string())),
    };
    ServiceView {
        service: service.to_string(),
        command,
        lines,
        error,
        deployments,
    }
}

/// One controller replica in the election.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaigner {
    /// Its identity (the election key's value).
    pub identity: String,
    /// The election key.
    pub key: String,
    /// The revision that created its key: the lowest leads.
    pub since_revision: i64,
    /// Whether it leads.
    pub leading: bool,
    /// When this dashboard first saw its key.
    pub seen_at: Option<DateTime<Utc>>,
}

/// The replicas campaigning, the leader first (etcd's election: the key created first leads).
pub fn replicas(model: &Model) -> Vec<Campaigner> {
    let mut replicas: Vec<Campaigner> = model
        .election()
        .values()
        .map(|entry| Campaigner {
            identity: String::from_utf8_lossy(&entry.value).into_owned(),
            key: entry.key.clone(),
            since_revision: entry.create_revision,
            leading: false,
            seen_at: model.election_seen(&entry.key),
        })
        .collect();
    replicas.sort_by_key(|replica| replica.since_revision);
    if let Some(first) = replicas.first_mut() {
        first.leading = true;
    }
    replicas
}

#[cfg(test)]
mod tests {
    use theseus::store::{Entry, Layout, WatchEvent};

    use super::*;

    fn put(model: &mut Model, key: &str, value: &str, revision: i64) {
        let entry = Entry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        };
        model.apply(WatchEvent::Put { entry, prev: None }, Some(Utc::now()));
    }

    fn status(revision: i64, phase: &str, conditions: &str) -> String {
        format!(
            r#"{{"observed_revision":{revision},"phase":"{phase}","conditions":{conditions},
               "instances":{{"desired":2,"staged":0,"running":1,"healthy":1,"unhealthy":0}},
               "updated_at":"2024-01-01T00:00:00Z"}}"#
        )
    }

    #[test]
    fn a_row_is_pending_until_the_status_describes_the_current_revision() {
        let mut model = Model::new(Layout::default());
        put(
            &mut model,
            "/desired/web/blue",
            r#"{"cmd":"run","instances":2,"labels":["blue"]}"#,
            5,
        );
        put(
            &mut model,
            "/observed/web/blue/status",
            &status(4, "Running", "[]"),
            6,
        );
        let row = fleet(&model).remove(0);
        assert_eq!(row.phase, "Pending");
        assert_eq!(
            row.blocking.as_deref(),
            Some("waiting for the controller to act on revision 5")
        );
        assert_eq!(
            (row.desired, row.running, row.healthy),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!(row.labels, vec!["blue".to_owned()]);

        let failing = r#"[{"type":"Progressing","status":false,"reason":"WaitingForDeployment","message":"locked"}]"#;
        put(
            &mut model,
            "/observed/web/blue/status",
            &status(5, "Deploying", failing),
            7,
        );
        let row = fleet(&model).remove(0);
        assert_eq!(row.phase, "Deploying");
        assert_eq!(
            row.blocking.as_deref(),
            Some("WaitingForDeployment: locked")
        );
    }

    #[test]
    fn an_invalid_spec_shows_its_labels_as_written_and_why() {
        let mut model = Model::new(Layout::default());
        put(
            &mut model,
            "/desired/web/x",
            r#"{"cmd":"run","labels":["<script>"]}"#,
            5,
        );
        let row = fleet(&model).remove(0);
        assert_eq!(row.phase, "Invalid");
        assert_eq!(row.labels, vec!["<script>".to_owned()]);
        assert!(row.blocking.unwrap().contains("labels"));
    }

    #[test]
    fn the_deployment_page_masks_secrets_in_the_spec() {
        let mut model = Model::new(Layout::default());
        put(
            &mut model,
            "/desired/web/blue",
            r#"{"cmd":"run","environment":{"DB_PASSWORD":"hunter2","MODE":"fast"}}"#,
            5,
        );
        let view = deployment(&model, &"web/blue".parse().unwrap());
        assert!(view.exists);
        assert_eq!(view.spec["environment"]["MODE"], "fast");
        assert_ne!(view.spec["environment"]["DB_PASSWORD"], "hunter2");
        assert!(!serde_json::to_string(&view).unwrap().contains("hunter2"));
    }

    #[test]
    fn history_records_and_their_diff_mask_secrets_and_show_the_changed_line() {
        let mut model = Model::new(Layout::default());
        let record = |instances: u32| {
            format!(
                r#"{{"revision":{instances},"spec":{{"cmd":"run","instances":{instances},
                   "environment":{{"API_TOKEN":"hunter2"}}}}}}"#
            )
        };
        put(&mut model, "/observed/web/blue/history/2", &record(2), 6);
        put(&mut model, "/observed/web/blue/history/3", &record(3), 7);
        let key = "web/blue".parse().unwrap();
        let view = deployment(&model, &key);
        assert!(!serde_json::to_string(&view).unwrap().contains("hunter2"));
        let lines = revision_diff(&model, &key, "2", "3").unwrap();
        assert!(!serde_json::to_string(&lines).unwrap().contains("hunter2"));
        let changed: Vec<String> = lines
            .iter()
            .filter(|line| line.change != crate::diff::LineChange::Kept)
            .map(|line| line.text.trim().trim_end_matches(',').to_owned())
            .collect();
        assert_eq!(changed, ["\"instances\": 2", "\"instances\": 3"]);
        assert!(revision_diff(&model, &key, "2", "9").is_err());
        assert!(revision_diff(&model, &key, "2", "desired").is_err());
    }

    #[test]
    fn services_answer_what_node_list_answers() {
        let mut model = Model::new(Layout::default());
        let task = |id: &str, host: &str, port: u16, state: &str| {
            format!(
                r#"{{"service":"web","deployment":"blue","task_id":"{id}","app_id":"/web/blue",
                   "host":"{host}","ports":{{"http":{{"host":{port},"container":80,"protocol":"tcp"}}}},
                   "state":"{state}","health":"unknown","labels":["blue"]}}"#
            )
        };
        put(
            &mut model,
            "/observed/web/blue/tasks/b",
            &task("b", "10.0.0.2", 31002, "TASK_RUNNING"),
            5,
        );
        put(
            &mut model,
            "/observed/web/blue/tasks/a",
            &task("a", "10.0.0.1", 31001, "TASK_RUNNING"),
            6,
        );
        put(
            &mut model,
            "/observed/web/blue/tasks/c",
            &task("c", "10.0.0.3", 31003, "TASK_STAGING"),
            7,
        );
        put(&mut model, "/desired/db/main", r#"{"cmd":"run"}"#, 8);
        let views = services(&model);
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].service, "db");
        assert!(
            views[0].error.is_some(),
            "no serving task is node-list's error"
        );
        let web = &views[1];
        assert_eq!(web.command, "theseus guest node-list web --ports http");
        let lines: Vec<&str> = web.lines.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(lines, ["10.0.0.1:31001", "10.0.0.2:31002"]);
        assert_eq!(web.deployments, ["blue"]);
    }

    #[test]
    fn the_replica_whose_key_was_created_first_leads() {
        let mut model = Model::new(Layout::default());
        put(&mut model, "/theseus/leader/controller/b", "second", 9);
        put(&mut model, "/theseus/leader/controller/a", "first", 4);
        let replicas = replicas(&model);
        assert_eq!(replicas[0].identity, "first");
        assert!(replicas[0].leading && !replicas[1].leading);
    }
}
