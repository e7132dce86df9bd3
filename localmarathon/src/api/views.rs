//! JSON views of the state as Marathon's API shows them: `AppInfo` and tasks.
//!
//! Counts follow Marathon: `tasksStaged` counts TASK_STAGING tasks (TASK_STARTING counts in
//! neither staged nor running), `tasksRunning` TASK_RUNNING ones, `tasksHealthy` tasks with health
//! results that are all alive, `tasksUnhealthy` tasks with a failing result. A task's `ports[i]`
//! pairs with the app's `portDefinitions[i]`/`portMappings[i]`; `startedAt` is absent until the
//! task runs.

use serde::Serialize;

use crate::agent::Agent;
use crate::app::AppDefinition;
use crate::app_id::AppId;
use crate::deployment::DeploymentId;
use crate::events::IpAddressJson;
use crate::health::HealthRecord;
use crate::state::{AppRecord, State, TaskFailure, TaskRecord};
use crate::task::TaskState;
use crate::timestamp::Timestamp;

/// Which optional parts of an app to include.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Embed {
    /// Task counts.
    pub counts: bool,
    /// Tasks.
    pub tasks: bool,
    /// Running deployment ids.
    pub deployments: bool,
    /// Last task failure.
    pub last_task_failure: bool,
    /// Readiness results.
    pub readiness: bool,
}

impl Embed {
    /// Reads `embed` values with the given prefix (`apps.`, `app.` or `group.apps.`).
    pub fn parse(values: &[String], prefix: &str) -> Embed {
        let mut e = Embed::default();
        for v in values {
            let Some(what) = v.strip_prefix(prefix) else {
                continue;
            };
            match what {
                "counts" | "count" => e.counts = true,
                "tasks" => {
                    e.tasks = true;
                    e.deployments = true;
                }
                "deployments" => e.deployments = true,
                "lastTaskFailure" => e.last_task_failure = true,
                "readiness" => e.readiness = true,
                "failures" => {
                    e.last_task_failure = true;
                    e.tasks = true;
                    e.counts = true;
                    e.deployments = true;
                }
                _ => {}
            }
        }
        e
    }
}

/// `{"id": ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct Identifiable<'a> {
    /// The id.
    pub id: &'a DeploymentId,
}

/// A task as `/v2/apps/{id}/tasks` and `/v2/tasks` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView<'a> {
    /// App id.
    pub app_id: &'a AppId,
    /// Health records.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_check_results: Vec<&'a HealthRecord>,
    /// Agent hostname.
    pub host: &'a str,
    /// Task id.
    pub id: &'a str,
    /// Addresses.
    pub ip_addresses: Vec<IpAddressJson>,
    /// Host ports.
    pub ports: &'a [u16],
    /// Service ports.
    pub service_ports: Vec<u16>,
    /// Agent id.
    pub slave_id: &'a str,
    /// Mesos state.
    pub state: TaskState,
    /// Launch time.
    pub staged_at: Timestamp,
    /// Start time, once running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// App version it runs.
    pub version: Timestamp,
    /// Mesos role.
    pub role: &'a str,
}

impl<'a> TaskView<'a> {
    /// The view of `task` of `app` on `agent`.
    pub fn new(app: &'a AppDefinition, agent: &'a Agent, task: &'a TaskRecord) -> Self {
        TaskView {
            app_id: &app.id,
            health_check_results: task.health.iter().flatten().collect(),
            host: &agent.hostname,
            id: task.id.as_str(),
            ip_addresses: vec![IpAddressJson::of(agent.spec.host)],
            ports: &task.ports,
            service_ports: app.service_ports(),
            slave_id: &agent.id,
            state: task.state,
            staged_at: task.staged_at,
            started_at: task.started_at,
            version: task.version,
            role: &app.role,
        }
    }
}

/// An app with the parts `Embed` asks for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo<'a> {
    /// The definition.
    #[serde(flatten)]
    pub app: &'a AppDefinition,
    /// Staged tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_staged: Option<usize>,
    /// Running tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_running: Option<usize>,
    /// Healthy tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_healthy: Option<usize>,
    /// Unhealthy tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_unhealthy: Option<usize>,
    /// Running deployments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Vec<Identifiable<'a>>>,
    /// Readiness results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_check_results: Option<Vec<()>>,
    /// Tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskView<'a>>>,
    /// Last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_task_failure: Option<&'a TaskFailure>,
}

/// Marathon's task counts of an app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// TASK_STAGING.
    pub staged: usize,
    /// TASK_RUNNING.
    pub running: usize,
    /// All health results alive.
    pub healthy: usize,
    /// Some health result not alive.
    pub unhealthy: usize,
}

impl Counts {
    /// Counts the tasks of `record`.
    pub fn of(record: &AppRecord) -> Counts {
        let mut c = Counts::default();
        for task in record.instances.values().filter_map(|i| i.task.as_ref()) {
            match task.state {
                TaskState::Staging => c.staged += 1,
                TaskState::Running => c.running += 1,
                _ => {}
            }
            let results: Vec<&HealthRecord> = task.health.iter().flatten().collect();
            if !results.is_empty() && results.iter().all(|h| h.alive) {
                c.healthy += 1;
            }
            if results.iter().any(|h| !h.alive) {
                c.unhealthy += 1;
            }
        }
        c
    }
}

/// The tasks of an app, oldest first.
pub fn tasks_of<'a>(st: &'a State, record: &'a AppRecord) -> Vec<TaskView<'a>> {
    let mut tasks: Vec<(u64, TaskView<'a>)> = record
        .instances
        .values()
        .filter_map(|i| {
            let t = i.task.as_ref()?;
            Some((i.seq, TaskView::new(&record.def, &st.agents[t.agent.0], t)))
        })
        .collect();
    tasks.sort_by_key(|(seq, _)| *seq);
    tasks.into_iter().map(|(_, t)| t).collect()
}

/// The `AppInfo` of `record`.
pub fn app_info<'a>(st: &'a State, record: &'a AppRecord, embed: Embed) -> AppInfo<'a> {
    let counts = embed.counts.then(|| Counts::of(record));
    AppInfo {
        app: &record.def,
        tasks_staged: counts.map(|c| c.staged),
        tasks_running: counts.map(|c| c.running),
        tasks_healthy: counts.map(|c| c.healthy),
        tasks_unhealthy: counts.map(|c| c.unhealthy),
        deployments: embed.deployments.then(|| {
            record
                .deployment
                .iter()
                .map(|id| Identifiable { id })
                .collect()
        }),
        readiness_check_results: embed.readiness.then(Vec::new),
        tasks: embed.tasks.then(|| tasks_of(st, record)),
        last_task_failure: if embed.last_task_failure {
            record.last_failure.as_ref()
        } else {
            None
        },
    }
}

/// `{"<key>": value}` serialised without building a JSON tree first (the lists are large).
pub struct Wrapped<'a, T: Serialize>(pub &'static str, pub &'a T);

impl<T: Serialize> Serialize for Wrapped<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}
