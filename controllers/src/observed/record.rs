//! From a Marathon task, and the app definition it was launched from, to the [`TaskRecord`]
//! at `/observed/<service>/<name>/tasks/<task-id>`.
//!
//! What it promises:
//! - Ports are named only through the definition the task was launched from: the task's
//!   `ports[i]` is the host port of the i-th port definition (host networking), or of the
//!   i-th port mapping that has a host port (bridge and container networks; on a bridge every
//!   mapping has one). A port without a name gets no entry, and a task whose port count does
//!   not match its definition gets no named port at all: a missing port is an error a peer
//!   can read, a guessed one sends it to the wrong process.
//! - A task has a record while it is staging, starting, running, being killed or unreachable
//!   (only a running one serves, see [`TaskRecord::is_serving`]); finished, failed, killed,
//!   lost, errored, dropped, gone and unknown tasks have none.
//! - `health` is healthy when every health result is alive, unhealthy when one is not, and
//!   unknown without results; `health_checked` says whether the definition has health checks.
//! - [`launched_from`] says which definition a task runs: the app's current one when the
//!   task's version is the app's, or lies between the app's last configuration change and
//!   the app's version (a scale changes the version, not the configuration); else the
//!   task's own version, which must be read.
//!
//! What it does not do: read Marathon. Everything here is a pure function of its inputs.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use theseus::api::{DeploymentKey, Health, PortBinding, TaskRecord};
use theseus::marathon::app::Version;
use theseus::marathon::container::{DockerNetwork, NetworkMode, PortProtocol};
use theseus::marathon::{App, Task, TaskState};
use tracing::debug;

/// The environment variable in which the mapping tells every task its deployment's labels.
const LABELS_VARIABLE: &str = "LABELS";

/// Whether a task in `state` has a record.
pub fn has_record(state: &TaskState) -> bool {
    matches!(
        state,
        TaskState::Staging
            | TaskState::Starting
            | TaskState::Running
            | TaskState::Killing
            | TaskState::Unreachable
    )
}

/// What every task launched from one app definition has in common: its named ports, whether
/// it is health-checked, and its deployment's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTemplate {
    ports: Vec<PortSlot>,
    health_checked: bool,
    labels: Vec<String>,
}

/// One port of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortSlot {
    name: Option<String>,
    /// The port inside the container; `None` when it is the host port (host networking, or
    /// a mapping without a container port).
    container: Option<u16>,
    protocol: String,
    /// Whether the task gets a host port for it (and so an entry in its `ports`).
    on_host: bool,
}

/// How an app's tasks reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Networking {
    /// The agent's network: `portDefinitions`.
    Host,
    /// A bridge: `portMappings`, each with a host port.
    Bridge,
    /// A container network: `portMappings`, host ports only where asked for.
    Container,
}

fn networking(definition: &App) -> Networking {
    if let Some(network) = definition.networks.as_ref().and_then(|n| n.first()) {
        // Marathon's default mode of a `networks` entry is `container`.
        return match &network.mode {
            Some(NetworkMode::Host) => Networking::Host,
            Some(NetworkMode::ContainerBridge) => Networking::Bridge,
            Some(NetworkMode::Container) | None => Networking::Container,
            Some(NetworkMode::Other(_)) => Networking::Host,
        };
    }
    // The pre-1.5 API: the Docker network decides; without one the app is on the host.
    match definition
        .container
        .as_ref()
        .and_then(|c| c.docker.as_ref())
        .and_then(|d| d.network.as_ref())
    {
        Some(DockerNetwork::Bridge) => Networking::Bridge,
        Some(DockerNetwork::User) => Networking::Container,
        _ => Networking::Host,
    }
}

fn protocol(protocol: Option<&PortProtocol>) -> String {
    protocol.map_or("tcp", PortProtocol::as_str).to_owned()
}

impl TaskTemplate {
    /// The template of tasks launched from `definition`.
    pub fn of(definition: &App) -> TaskTemplate {
        let mappings = definition
            .container
            .as_ref()
            .and_then(|c| c.port_mappings())
            .unwrap_or_default();
        let ports = match networking(definition) {
            Networking::Host => match &definition.port_definitions {
                Some(definitions) => definitions
                    .iter()
                    .map(|port| PortSlot {
                        name: port.name.clone(),
                        container: None,
                        protocol: protocol(port.protocol.as_ref()),
                        on_host: true,
                    })
                    .collect(),
                // Marathon before 1.0 listed bare ports: unnamed.
                None => definition
                    .ports
                    .iter()
                    .flatten()
                    .map(|_| PortSlot {
                        name: None,
                        container: None,
                        protocol: protocol(None),
                        on_host: true,
                    })
                    .collect(),
            },
            mode @ (Networking::Bridge | Networking::Container) => mappings
                .iter()
                .map(|mapping| PortSlot {
                    name: mapping.name.clone(),
                    container: mapping.container_port.filter(|port| *port != 0),
                    protocol: protocol(mapping.protocol.as_ref()),
                    on_host: mode == Networking::Bridge || mapping.host_port.is_some(),
                })
                .collect(),
        };
        let labels = match definition
            .env
            .as_ref()
            .and_then(|env| env.value(LABELS_VARIABLE))
        {
            Some(labels) => labels
                .split(',')
                .map(str::trim)
                .filter(|label| !label.is_empty())
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        TaskTemplate {
            ports,
            health_checked: definition
                .health_checks
                .as_ref()
                .is_some_and(|checks| !checks.is_empty()),
            labels,
        }
    }

    /// This template with no port at all: for tasks of a definition that cannot be read.
    pub fn without_ports(&self) -> TaskTemplate {
        TaskTemplate {
            ports: Vec::new(),
            ..self.clone()
        }
    }

    /// The record of `task` of the deployment `key`, or `None` when a task in its state has
    /// none.
    pub fn record(&self, key: &DeploymentKey, task: &Task) -> Option<TaskRecord> {
        if !has_record(&task.state) {
            return None;
        }
        Some(TaskRecord {
            service: key.service.to_string(),
            deployment: key.name.to_string(),
            task_id: task.id.as_str().to_owned(),
            app_id: task.app_id.as_str().to_owned(),
            host: task.host.clone(),
            agent_id: task.agent().map(str::to_owned),
            ip_addresses: task
                .ip_addresses
                .iter()
                .flatten()
                .map(|address| address.ip_address.clone())
                .collect(),
            ports: self.ports(task),
            state: task.state.clone(),
            health: match task.healthy() {
                Some(true) => Health::Healthy,
                Some(false) => Health::Unhealthy,
                None => Health::Unknown,
            },
            health_checked: self.health_checked,
            staged_at: task.staged_at.as_ref().map(timestamp),
            started_at: task.started_at.as_ref().map(timestamp),
            version: task.version.as_ref().map(|v| v.as_str().to_owned()),
            labels: self.labels.clone(),
        })
    }

    /// The task's host ports by the names of its definition.
    fn ports(&self, task: &Task) -> BTreeMap<String, PortBinding> {
        let host_ports = task.ports.as_deref().unwrap_or_default();
        let slots: Vec<&PortSlot> = self.ports.iter().filter(|slot| slot.on_host).collect();
        if host_ports.len() != slots.len() {
            if !host_ports.is_empty() {
                debug!(
                    task = %task.id,
                    ports = host_ports.len(),
                    expected = slots.len(),
                    "the task's ports do not match its definition; recording none"
                );
            }
            return BTreeMap::new();
        }
        slots
            .into_iter()
            .zip(host_ports)
            .filter_map(|(slot, &host)| {
                let name = slot.name.clone()?;
                let binding = PortBinding {
                    host,
                    container: slot.container.unwrap_or(host),
                    protocol: slot.protocol.clone(),
                };
                Some((name, binding))
            })
            .collect()
    }
}

/// Marathon's own spelling of a time: RFC 3339 in UTC with milliseconds.
fn timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Which definition a task was launched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchedFrom {
    /// The app's current definition.
    Current,
    /// An older (or a newer, not yet seen) version of the app: read it.
    Version(Version),
}

/// Which definition `task` of `app` (as the snapshot holds it) was launched from; see the
/// module documentation.
pub fn launched_from(app: &App, task: &Task) -> LaunchedFrom {
    let (Some(version), Some(current)) = (&task.version, &app.version) else {
        // Without versions to compare there is only the current definition to go by.
        return LaunchedFrom::Current;
    };
    if version == current {
        return LaunchedFrom::Current;
    }
    let configured = app
        .version_info
        .as_ref()
        .and_then(|info| info.last_config_change_at.as_ref());
    match configured {
        Some(configured) if !before(version, configured) && !before(current, version) => {
            LaunchedFrom::Current
        }
        _ => LaunchedFrom::Version(version.clone()),
    }
}

/// Whether Marathon version `a` is older than `b` (RFC 3339 timestamps; compared as text if
/// one does not parse, which sorts the same for Marathon's fixed format).
fn before(a: &Version, b: &Version) -> bool {
    let parse = |v: &Version| DateTime::parse_from_rfc3339(v.as_str()).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => a.as_str() < b.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use theseus::api::parse_spec;

    use super::*;
    use theseus::mapping::Mapping;

    fn key() -> DeploymentKey {
        "web/dev".parse().unwrap()
    }

    /// The app the controller creates for `spec`, as Marathon would show it.
    fn mapped(spec: Value) -> App {
        let spec = parse_spec(spec.to_string().as_bytes()).unwrap();
        let mapping = Mapping::new(None, vec!["http://127.0.0.1:2379".into()], "").unwrap();
        let mut app = mapping.desired_app(&key(), &spec).app;
        app.version = Some(Version::from("2026-01-01T00:00:02.000Z"));
        app
    }

    fn task(fields: Value) -> Task {
        let mut task = json!({
            "id": "web_dev.instance-1._app.1", "appId": "/web/dev", "host": "10.0.0.5",
            "state": "TASK_RUNNING", "version": "2026-01-01T00:00:02.000Z",
            "slaveId": "agent-1", "ipAddresses": [{"ipAddress": "10.0.0.5", "protocol": "IPv4"}],
            "stagedAt": "2026-01-01T00:00:03.000Z", "startedAt": "2026-01-01T00:00:04.250Z"
        });
        for (name, value) in fields.as_object().unwrap() {
            task[name] = value.clone();
        }
        serde_json::from_value(task).unwrap()
    }

    fn binding(host: u16, container: u16) -> PortBinding {
        PortBinding {
            host,
            container,
            protocol: "tcp".into(),
        }
    }

    #[test]
    fn a_command_apps_ports_are_named_by_its_port_definitions_in_order() {
        let app = mapped(
            json!({"cmd": "serve", "ports": {"http": 8080, "admin": 9090},
                                "labels": ["eu", "canary"]}),
        );
        let template = TaskTemplate::of(&app);
        // The mapping orders ports by name: admin, then http.
        let record = template
            .record(&key(), &task(json!({"ports": [31001, 31002]})))
            .unwrap();
        assert_eq!(
            record.ports,
            BTreeMap::from([
                ("admin".to_owned(), binding(31001, 31001)),
                ("http".to_owned(), binding(31002, 31002)),
            ])
        );
        assert_eq!(record.service, "web");
        assert_eq!(record.deployment, "dev");
        assert_eq!(record.app_id, "/web/dev");
        assert_eq!(record.host, "10.0.0.5");
        assert_eq!(record.agent_id.as_deref(), Some("agent-1"));
        assert_eq!(record.ip_addresses, ["10.0.0.5"]);
        assert_eq!(record.labels, ["eu", "canary"]);
        assert_eq!(record.state, TaskState::Running);
        assert_eq!(
            record.staged_at.as_deref(),
            Some("2026-01-01T00:00:03.000Z")
        );
        assert_eq!(
            record.started_at.as_deref(),
            Some("2026-01-01T00:00:04.250Z")
        );
        assert_eq!(record.version.as_deref(), Some("2026-01-01T00:00:02.000Z"));
        assert!(!record.health_checked);
        assert_eq!(record.health, Health::Unknown);
        assert!(record.is_serving());
    }

    #[test]
    fn a_docker_apps_ports_pair_host_and_container_ports_through_its_mappings() {
        let app = mapped(json!({"image": "registry.local/api", "ports": {"ssh": 22, "api": 5000}}));
        let record = TaskTemplate::of(&app)
            .record(&key(), &task(json!({"ports": [31005, 31006]})))
            .unwrap();
        assert_eq!(
            record.ports,
            BTreeMap::from([
                ("api".to_owned(), binding(31005, 5000)),
                ("ssh".to_owned(), binding(31006, 22)),
            ])
        );
    }

    #[test]
    fn only_mappings_with_a_host_port_take_a_task_port_on_a_container_network() {
        let app: App = serde_json::from_value(json!({
            "id": "/web/dev", "networks": [{"mode": "container", "name": "overlay"}],
            "container": {"type": "MESOS", "portMappings": [
                {"containerPort": 7000, "name": "gossip"},
                {"containerPort": 8080, "hostPort": 0, "name": "http", "protocol": "udp"}
            ]}
        }))
        .unwrap();
        let record = TaskTemplate::of(&app)
            .record(&key(), &task(json!({"ports": [31010]})))
            .unwrap();
        assert_eq!(
            record.ports,
            BTreeMap::from([(
                "http".to_owned(),
                PortBinding {
                    host: 31010,
                    container: 8080,
                    protocol: "udp".into()
                }
            )])
        );
    }

    #[test]
    fn unnamed_or_mismatched_ports_are_left_out_rather_than_guessed() {
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/marathon/sysapp-docker-http-server.json"
        ))
        .unwrap();
        // Pre-1.5 bridge networking with one unnamed mapping: nothing to name it by.
        let unnamed: App = serde_json::from_str(&fixture).unwrap();
        let record = TaskTemplate::of(&unnamed)
            .record(&key(), &task(json!({"ports": [31005]})))
            .unwrap();
        assert!(record.ports.is_empty());

        let app = mapped(json!({"cmd": "serve", "ports": {"http": 8080, "admin": 9090}}));
        let record = TaskTemplate::of(&app)
            .record(&key(), &task(json!({"ports": [31001]})))
            .unwrap();
        assert!(record.ports.is_empty(), "one port for two names");
    }

    #[test]
    fn only_live_states_have_a_record() {
        let template = TaskTemplate::of(&mapped(json!({"cmd": "serve"})));
        for state in [
            "TASK_STAGING",
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_KILLING",
            "TASK_UNREACHABLE",
        ] {
            let record = template.record(&key(), &task(json!({"state": state})));
            assert_eq!(record.map(|r| r.state.to_string()).as_deref(), Some(state));
        }
        for state in [
            "TASK_FINISHED",
            "TASK_FAILED",
            "TASK_KILLED",
            "TASK_LOST",
            "TASK_ERROR",
            "TASK_DROPPED",
            "TASK_GONE",
            "TASK_GONE_BY_OPERATOR",
            "TASK_UNKNOWN",
            "TASK_SOMETHING_NEW",
        ] {
            assert_eq!(
                template.record(&key(), &task(json!({"state": state}))),
                None,
                "{state}"
            );
        }
    }

    #[test]
    fn health_is_the_verdict_of_every_result() {
        let app = mapped(json!({"cmd": "serve", "ports": {"http": 8080},
            "health_checks": [{"protocol": "HTTP", "port": "http"}]}));
        let template = TaskTemplate::of(&app);
        let health = |results: Value| {
            let record = template
                .record(
                    &key(),
                    &task(json!({"ports": [31001], "healthCheckResults": results})),
                )
                .unwrap();
            assert!(record.health_checked);
            (record.health, record.is_serving())
        };
        assert_eq!(health(json!([])), (Health::Unknown, false));
        assert_eq!(
            health(json!([{"alive": true}, {"alive": true}])),
            (Health::Healthy, true)
        );
        assert_eq!(
            health(json!([{"alive": true}, {"alive": false}])),
            (Health::Unhealthy, false)
        );
    }

    #[test]
    fn a_task_runs_the_current_definition_unless_launched_from_another_configuration() {
        let mut app = mapped(json!({"cmd": "serve"}));
        app.version = Some(Version::from("2026-01-01T00:00:05.000Z"));
        app.version_info = serde_json::from_value(json!({
            "lastScalingAt": "2026-01-01T00:00:05.000Z",
            "lastConfigChangeAt": "2026-01-01T00:00:02.000Z"
        }))
        .unwrap();
        let at = |version: &str| launched_from(&app, &task(json!({"version": version})));
        assert_eq!(at("2026-01-01T00:00:05.000Z"), LaunchedFrom::Current);
        // Launched after the configuration changed, before a scale: same configuration.
        assert_eq!(at("2026-01-01T00:00:02.000Z"), LaunchedFrom::Current);
        assert_eq!(at("2026-01-01T00:00:03.000Z"), LaunchedFrom::Current);
        assert_eq!(
            at("2026-01-01T00:00:01.000Z"),
            LaunchedFrom::Version(Version::from("2026-01-01T00:00:01.000Z")),
            "an older configuration"
        );
        assert_eq!(
            at("2026-01-01T00:00:09.000Z"),
            LaunchedFrom::Version(Version::from("2026-01-01T00:00:09.000Z")),
            "a version the snapshot has not seen"
        );
        app.version_info = None;
        let at = |version: &str| launched_from(&app, &task(json!({"version": version})));
        assert_eq!(
            at("2026-01-01T00:00:03.000Z"),
            LaunchedFrom::Version(Version::from("2026-01-01T00:00:03.000Z"))
        );
    }
}
