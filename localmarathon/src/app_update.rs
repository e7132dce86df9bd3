//! Request bodies (`POST`/`PUT`/`PATCH` of apps) turned into normalised [`AppDefinition`]s.
//!
//! [`AppUpdate::parse`] reads a JSON body leniently (unknown and read-only fields are ignored,
//! `null` means absent) and reports wrong JSON types as Marathon's `400 Invalid JSON`.
//! [`AppUpdate::apply`] merges it onto an existing definition (partial update) or onto Marathon's
//! defaults (create, full replace), normalises legacy forms (`ports`, `uris`,
//! `container.docker.portMappings`, `container.docker.network`) and reports rule violations as
//! `422 Object is not valid`. Service ports are assigned later by the scheduler, which sees all
//! apps.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::app::{
    AppDefinition, CommandCheck, Container, ContainerKind, DEFAULT_ROLE, Disabled, Docker,
    DockerParameter, EnvValue, HealthCheck, HealthProtocol, KillSelection, Network, NetworkMode,
    PortDefinition, PortMapping, UnreachableStrategy, UpgradeStrategy, VersionInfo,
};
use crate::app_id::{AppId, AppIdError};
use crate::placement::Constraint;
use crate::timestamp::Timestamp;
use crate::validation::{Reader, Violations};

/// Why a body could not become an app.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppBodyError {
    /// Not JSON, or fields of the wrong JSON type (HTTP 400).
    #[error("Invalid JSON")]
    InvalidJson(Violations),
    /// Well-formed but breaking a rule (HTTP 422).
    #[error("Object is not valid")]
    Invalid(Violations),
}

/// Every writable field of an app, each optional; what a body says.
#[derive(Debug, Clone, Default)]
pub struct AppUpdate {
    /// Raw `id`.
    pub id: Option<String>,
    /// `version`: a rollback target when present.
    pub version: Option<String>,
    accepted_resource_roles: Option<Vec<String>>,
    args: Option<Vec<String>>,
    backoff_factor: Option<f64>,
    backoff_seconds: Option<u32>,
    cmd: Option<String>,
    constraints: Option<Vec<Constraint>>,
    container: Option<Container>,
    legacy_docker_network: Option<String>,
    cpus: Option<f64>,
    dependencies: Option<Vec<String>>,
    disk: Option<f64>,
    env: Option<BTreeMap<String, EnvValue>>,
    executor: Option<String>,
    fetch: Option<Vec<Value>>,
    health_checks: Option<Vec<HealthCheck>>,
    /// `instances`, the only field of a scale request.
    pub instances: Option<u32>,
    labels: Option<BTreeMap<String, String>>,
    max_launch_delay_seconds: Option<u32>,
    mem: Option<f64>,
    gpus: Option<u32>,
    ip_address: Option<Value>,
    networks: Option<Vec<Network>>,
    port_definitions: Option<Vec<PortDefinition>>,
    readiness_checks: Option<Vec<Value>>,
    residency: Option<Value>,
    require_ports: Option<bool>,
    secrets: Option<BTreeMap<String, Value>>,
    task_kill_grace_period_seconds: Option<u32>,
    upgrade_strategy: Option<UpgradeStrategy>,
    user: Option<String>,
    kill_selection: Option<KillSelection>,
    unreachable_strategy: Option<UnreachableStrategy>,
    tty: Option<bool>,
    role: Option<String>,
    /// Number of fields given, to tell a rollback (`{"version": ...}` alone) from an update.
    written: usize,
}

fn non_negative(r: &mut Reader<'_>, key: &str, rules: &mut Violations) -> Option<u32> {
    let v = r.integer(key)?;
    if v < 0 {
        rules.add(r.path(key), "is less than 0");
        return None;
    }
    Some(u32::try_from(v).unwrap_or(u32::MAX))
}

fn bounded_number(
    r: &mut Reader<'_>,
    key: &str,
    min: f64,
    max: Option<f64>,
    rules: &mut Violations,
) -> Option<f64> {
    let v = r.number(key)?;
    let path = r.path(key);
    rules.at_least(&path, v, min);
    if let Some(max) = max {
        rules.at_most(&path, v, max);
    }
    Some(v)
}

fn port_number(r: &mut Reader<'_>, key: &str, rules: &mut Violations) -> Option<u16> {
    let v = r.integer(key)?;
    match u16::try_from(v) {
        Ok(p) => Some(p),
        Err(_) => {
            rules.add(r.path(key), "is not a port number between 0 and 65535");
            None
        }
    }
}

fn valid_port_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn read_port_name(r: &mut Reader<'_>, rules: &mut Violations) -> Option<String> {
    let name = r.string("name")?;
    if !valid_port_name(&name) {
        rules.add(
            r.path("name"),
            "must fully match regular expression '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        );
    }
    Some(name)
}

fn read_protocol(r: &mut Reader<'_>, rules: &mut Violations) -> String {
    let p = r.string("protocol").unwrap_or_else(|| "tcp".to_string());
    if !matches!(p.as_str(), "tcp" | "udp" | "udp,tcp") {
        rules.add(r.path("protocol"), "error.expected.validenumvalue");
    }
    p
}

fn read_health_check(r: &mut Reader<'_>, rules: &mut Violations) -> HealthCheck {
    let protocol = match r.string("protocol").as_deref() {
        None | Some("HTTP") => HealthProtocol::Http,
        Some("HTTPS") => HealthProtocol::Https,
        Some("TCP") => HealthProtocol::Tcp,
        Some("COMMAND") => HealthProtocol::Command,
        Some("MESOS_HTTP") => HealthProtocol::MesosHttp,
        Some("MESOS_HTTPS") => HealthProtocol::MesosHttps,
        Some("MESOS_TCP") => HealthProtocol::MesosTcp,
        Some(_) => {
            rules.add(r.path("protocol"), "error.expected.validenumvalue");
            HealthProtocol::Http
        }
    };
    let command = r
        .nested("command", |c| c.string("value"))
        .flatten()
        .map(|value| CommandCheck { value });
    let is_http = matches!(
        protocol,
        HealthProtocol::Http
            | HealthProtocol::Https
            | HealthProtocol::MesosHttp
            | HealthProtocol::MesosHttps
    );
    let port = port_number(r, "port", rules);
    let mut port_index = non_negative(r, "portIndex", rules);
    if protocol == HealthProtocol::Command {
        if command.is_none() {
            rules.add(
                r.path("command"),
                "Health check protocol COMMAND requires a command",
            );
        }
    } else if port.is_none() && port_index.is_none() {
        port_index = Some(0);
    }
    HealthCheck {
        command,
        grace_period_seconds: non_negative(r, "gracePeriodSeconds", rules).unwrap_or(300),
        ignore_http1xx: r.boolean("ignoreHttp1xx").or(matches!(
            protocol,
            HealthProtocol::Http | HealthProtocol::Https
        )
        .then_some(false)),
        interval_seconds: non_negative(r, "intervalSeconds", rules).unwrap_or(60),
        max_consecutive_failures: non_negative(r, "maxConsecutiveFailures", rules).unwrap_or(3),
        path: r
            .string("path")
            .or(is_http.then(|| "/".to_string()))
            .filter(|_| is_http),
        port_index,
        port,
        protocol,
        ip_protocol: r.string("ipProtocol"),
        timeout_seconds: non_negative(r, "timeoutSeconds", rules).unwrap_or(20),
        delay_seconds: non_negative(r, "delaySeconds", rules).unwrap_or(15),
    }
}

fn read_port_mapping(r: &mut Reader<'_>, rules: &mut Violations) -> PortMapping {
    PortMapping {
        container_port: port_number(r, "containerPort", rules).unwrap_or(0),
        host_port: port_number(r, "hostPort", rules),
        labels: r.string_map("labels").unwrap_or_default(),
        name: read_port_name(r, rules),
        protocol: read_protocol(r, rules),
        service_port: port_number(r, "servicePort", rules).unwrap_or(0),
        network_names: r.strings("networkNames").unwrap_or_default(),
    }
}

/// Reads `container`; returns it and the legacy `docker.network` if given.
fn read_container(r: &mut Reader<'_>, rules: &mut Violations) -> (Container, Option<String>) {
    let kind = match r.string("type").as_deref() {
        None | Some("DOCKER") => ContainerKind::Docker,
        Some("MESOS") => ContainerKind::Mesos,
        Some(_) => {
            rules.add(r.path("type"), "error.expected.validenumvalue");
            ContainerKind::Docker
        }
    };
    let mut legacy_network = None;
    let mut legacy_mappings = None;
    let docker = r.nested("docker", |d| {
        legacy_network = d.string("network");
        legacy_mappings = d.each("portMappings", |m| read_port_mapping(m, rules));
        let image = d.string("image");
        if image.as_deref().is_none_or(str::is_empty) {
            rules.add(d.path("image"), "must not be empty");
        }
        Docker {
            credential: d.raw("credential").cloned(),
            force_pull_image: d.boolean("forcePullImage").unwrap_or(false),
            image: image.unwrap_or_default(),
            parameters: d
                .each("parameters", |p| DockerParameter {
                    key: p.string("key").unwrap_or_default(),
                    value: p.string("value").unwrap_or_default(),
                })
                .unwrap_or_default(),
            privileged: d.boolean("privileged").unwrap_or(false),
            pull_config: d.raw("pullConfig").cloned(),
        }
    });
    if kind == ContainerKind::Docker && docker.is_none() {
        rules.add(
            r.path("docker"),
            "must be defined for containers of type DOCKER",
        );
    }
    let mappings = r
        .each("portMappings", |m| read_port_mapping(m, rules))
        .or(legacy_mappings);
    let container = Container {
        kind,
        docker,
        volumes: r.array("volumes").cloned().unwrap_or_default(),
        port_mappings: mappings,
        linux_info: r.raw("linuxInfo").cloned(),
    };
    (container, legacy_network)
}

fn read_env(r: &mut Reader<'_>) -> Option<BTreeMap<String, EnvValue>> {
    let object = r.object("env")?;
    let base = r.path("env");
    let mut out = BTreeMap::new();
    for (k, v) in object {
        match v {
            Value::String(s) => {
                out.insert(k.clone(), EnvValue::Plain(s.clone()));
            }
            Value::Object(o) => match o.get("secret") {
                Some(Value::String(s)) => {
                    out.insert(k.clone(), EnvValue::Secret { secret: s.clone() });
                }
                _ => r
                    .errors()
                    .add(format!("{base}/{k}/secret"), "error.path.missing"),
            },
            _ => r
                .errors()
                .add(format!("{base}/{k}"), "error.expected.jsstring"),
        }
    }
    Some(out)
}

fn normalise_fetch(item: &Value) -> Value {
    let mut out = Map::new();
    if let Some(o) = item.as_object() {
        out.extend(o.clone());
    }
    out.entry("extract").or_insert(json!(true));
    out.entry("executable").or_insert(json!(false));
    out.entry("cache").or_insert(json!(false));
    Value::Object(out)
}

impl AppUpdate {
    /// Reads a request body. Wrong JSON types are `InvalidJson`; range violations found while
    /// reading are `Invalid`.
    pub fn parse(body: &[u8]) -> Result<AppUpdate, AppBodyError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let mut v = Violations::default();
            v.add("/", format!("Unexpected JSON: {e}"));
            AppBodyError::InvalidJson(v)
        })?;
        Self::from_value(&value)
    }

    /// Reads an already parsed body.
    pub fn from_value(value: &Value) -> Result<AppUpdate, AppBodyError> {
        let Some(object) = value.as_object() else {
            let mut v = Violations::default();
            v.add("/", "error.expected.jsobject");
            return Err(AppBodyError::InvalidJson(v));
        };
        let mut types = Violations::default();
        let mut rules = Violations::default();
        let update = {
            let mut r = Reader::new(object, "", &mut types);
            Self::read(&mut r, &mut rules)
        };
        if !types.is_empty() {
            return Err(AppBodyError::InvalidJson(types));
        }
        if !rules.is_empty() {
            return Err(AppBodyError::Invalid(rules));
        }
        Ok(update)
    }

    fn read(r: &mut Reader<'_>, rules: &mut Violations) -> AppUpdate {
        let constraints = r.array("constraints").map(|items| {
            let base = r.path("constraints");
            items
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let path = format!("{base}({i})");
                    let Some(parts) = c.as_array() else {
                        r.errors().add(path, "error.expected.jsarray");
                        return None;
                    };
                    let parts: Vec<String> = parts
                        .iter()
                        .map(|p| p.as_str().map(str::to_string).unwrap_or_default())
                        .collect();
                    Constraint::parse(&parts, &path, rules)
                })
                .collect()
        });
        let mut legacy_docker_network = None;
        let container = r.nested("container", |c| {
            let (container, network) = read_container(c, rules);
            legacy_docker_network = network;
            container
        });
        let networks = r.each("networks", |n| Network {
            name: n.string("name"),
            mode: match n.string("mode").as_deref() {
                Some("host") => NetworkMode::Host,
                Some("container/bridge") => NetworkMode::ContainerBridge,
                None | Some("container") => NetworkMode::Container,
                Some(_) => {
                    rules.add(n.path("mode"), "error.expected.validenumvalue");
                    NetworkMode::Host
                }
            },
            labels: n.string_map("labels").unwrap_or_default(),
        });
        let port_definitions = r
            .each("portDefinitions", |p| PortDefinition {
                port: port_number(p, "port", rules).unwrap_or(0),
                protocol: read_protocol(p, rules),
                name: read_port_name(p, rules),
                labels: p.string_map("labels").unwrap_or_default(),
            })
            .or_else(|| {
                let ports = r.array("ports")?;
                let base = r.path("ports");
                Some(
                    ports
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let port = p.as_u64().and_then(|p| u16::try_from(p).ok());
                            if port.is_none() {
                                rules.add(format!("{base}({i})"), "is not a port number");
                            }
                            PortDefinition {
                                port: port.unwrap_or(0),
                                protocol: "tcp".to_string(),
                                name: None,
                                labels: BTreeMap::new(),
                            }
                        })
                        .collect(),
                )
            });
        let upgrade_strategy = r.nested("upgradeStrategy", |u| UpgradeStrategy {
            maximum_over_capacity: bounded_number(u, "maximumOverCapacity", 0.0, Some(1.0), rules)
                .unwrap_or(1.0),
            minimum_health_capacity: bounded_number(
                u,
                "minimumHealthCapacity",
                0.0,
                Some(1.0),
                rules,
            )
            .unwrap_or(1.0),
        });
        let unreachable_strategy = match r.raw("unreachableStrategy") {
            None => None,
            Some(Value::String(s)) if s == "disabled" => {
                Some(UnreachableStrategy::Disabled(Disabled::Disabled))
            }
            Some(Value::Object(_)) => r.nested("unreachableStrategy", |u| {
                let inactive = u.integer("inactiveAfterSeconds").unwrap_or(0).max(0) as u64;
                let expunge = u.integer("expungeAfterSeconds").unwrap_or(0).max(0) as u64;
                if inactive > expunge {
                    rules.add(
                        u.path("inactiveAfterSeconds"),
                        "inactiveAfterSeconds must be less or equal to expungeAfterSeconds",
                    );
                }
                UnreachableStrategy::Enabled {
                    inactive_after_seconds: inactive,
                    expunge_after_seconds: expunge,
                }
            }),
            Some(_) => {
                rules.add(
                    r.path("unreachableStrategy"),
                    "error.expected.validenumvalue",
                );
                None
            }
        };
        let kill_selection = match r.string("killSelection").as_deref() {
            None => None,
            Some("YOUNGEST_FIRST") => Some(KillSelection::YoungestFirst),
            Some("OLDEST_FIRST") => Some(KillSelection::OldestFirst),
            Some(_) => {
                rules.add(r.path("killSelection"), "error.expected.validenumvalue");
                None
            }
        };
        let fetch = r
            .array("fetch")
            .map(|f| f.iter().map(normalise_fetch).collect())
            .or_else(|| {
                r.strings("uris").map(|uris| {
                    uris.iter()
                        .map(|u| normalise_fetch(&json!({ "uri": u })))
                        .collect()
                })
            });
        let cmd = r.string("cmd");
        if cmd.as_deref() == Some("") {
            rules.add(r.path("cmd"), "must not be empty");
        }
        let executor = r.string("executor");
        if let Some(e) = &executor
            && !(e.is_empty() || e == "//cmd" || !e.contains("//"))
        {
            rules.add(r.path("executor"), "must be empty, //cmd or a path");
        }
        let written = [
            "id",
            "version",
            "acceptedResourceRoles",
            "args",
            "backoffFactor",
            "backoffSeconds",
            "cmd",
            "constraints",
            "container",
            "cpus",
            "dependencies",
            "disk",
            "env",
            "executor",
            "fetch",
            "uris",
            "healthChecks",
            "instances",
            "labels",
            "maxLaunchDelaySeconds",
            "mem",
            "gpus",
            "ipAddress",
            "networks",
            "ports",
            "portDefinitions",
            "readinessChecks",
            "residency",
            "requirePorts",
            "secrets",
            "taskKillGracePeriodSeconds",
            "upgradeStrategy",
            "user",
            "killSelection",
            "unreachableStrategy",
            "tty",
            "role",
        ]
        .iter()
        .filter(|k| r.has(k))
        .count();
        AppUpdate {
            id: r.string("id"),
            version: r.string("version"),
            accepted_resource_roles: r.strings("acceptedResourceRoles"),
            args: r.strings("args"),
            backoff_factor: bounded_number(r, "backoffFactor", 1.0, None, rules),
            backoff_seconds: non_negative(r, "backoffSeconds", rules),
            cmd,
            constraints,
            container,
            legacy_docker_network,
            cpus: bounded_number(r, "cpus", 0.0, None, rules),
            dependencies: r.strings("dependencies"),
            disk: bounded_number(r, "disk", 0.0, None, rules),
            env: read_env(r),
            executor,
            fetch,
            health_checks: r.each("healthChecks", |h| read_health_check(h, rules)),
            instances: non_negative(r, "instances", rules),
            labels: r.string_map("labels"),
            max_launch_delay_seconds: non_negative(r, "maxLaunchDelaySeconds", rules),
            mem: bounded_number(r, "mem", 0.0, None, rules),
            gpus: non_negative(r, "gpus", rules),
            ip_address: r.raw("ipAddress").cloned(),
            networks,
            port_definitions,
            readiness_checks: r.array("readinessChecks").cloned(),
            residency: r.raw("residency").cloned(),
            require_ports: r.boolean("requirePorts"),
            secrets: r
                .object("secrets")
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            task_kill_grace_period_seconds: non_negative(r, "taskKillGracePeriodSeconds", rules),
            upgrade_strategy,
            user: r.string("user"),
            kill_selection,
            unreachable_strategy,
            tty: r.boolean("tty"),
            role: r.string("role"),
            written,
        }
    }

    /// Whether the body only names a version: Marathon's rollback request.
    pub fn is_rollback(&self) -> bool {
        self.version.is_some()
    }

    /// An update that only sets `instances` (scaling).
    pub fn scale(instances: u32) -> AppUpdate {
        AppUpdate {
            instances: Some(instances),
            written: 1,
            ..AppUpdate::default()
        }
    }

    /// Number of fields the body set.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Merges onto `base` (or Marathon's defaults when `None`), normalises and validates.
    /// `id` is the canonical id the result gets; `version` its new version.
    pub fn apply(
        self,
        base: Option<&AppDefinition>,
        id: AppId,
        version: Timestamp,
    ) -> Result<AppDefinition, AppBodyError> {
        let mut rules = Violations::default();
        let u = self;
        let networks = u
            .networks
            .or_else(|| {
                u.legacy_docker_network.as_deref().map(|n| {
                    vec![Network {
                        name: None,
                        mode: match n {
                            "BRIDGE" => NetworkMode::ContainerBridge,
                            "USER" => NetworkMode::Container,
                            _ => NetworkMode::Host,
                        },
                        labels: BTreeMap::new(),
                    }]
                })
            })
            .or_else(|| base.map(|b| b.networks.clone()))
            .unwrap_or_else(|| {
                vec![Network {
                    name: None,
                    mode: NetworkMode::Host,
                    labels: BTreeMap::new(),
                }]
            });
        let mode = networks
            .first()
            .map(|n| n.mode)
            .unwrap_or(NetworkMode::Host);
        let mut container = u
            .container
            .or_else(|| base.and_then(|b| b.container.clone()));
        let port_definitions = if mode == NetworkMode::Host {
            Some(
                u.port_definitions
                    .or_else(|| base.and_then(|b| b.port_definitions.clone()))
                    .unwrap_or_else(|| {
                        vec![PortDefinition {
                            port: 0,
                            protocol: "tcp".to_string(),
                            name: Some("default".to_string()),
                            labels: BTreeMap::new(),
                        }]
                    }),
            )
        } else {
            None
        };
        match (&mut container, mode) {
            (Some(c), NetworkMode::Host) => c.port_mappings = None,
            (Some(c), _) => {
                if c.port_mappings.is_none() {
                    c.port_mappings = Some(vec![PortMapping {
                        container_port: 0,
                        host_port: (mode == NetworkMode::ContainerBridge).then_some(0),
                        labels: BTreeMap::new(),
                        name: Some("default".to_string()),
                        protocol: "tcp".to_string(),
                        service_port: 0,
                        network_names: Vec::new(),
                    }]);
                }
                if mode == NetworkMode::ContainerBridge
                    && let Some(mappings) = &mut c.port_mappings
                {
                    for m in mappings.iter_mut() {
                        m.host_port.get_or_insert(0);
                    }
                }
            }
            (None, NetworkMode::Host) => {}
            (None, _) => rules.add(
                "/container",
                "container networking requires a container (DOCKER or MESOS)",
            ),
        }

        let (cmd, args) = match (&u.cmd, &u.args) {
            // A body that sets one of cmd/args replaces the other.
            (Some(_), _) | (_, Some(_)) => (u.cmd.clone(), u.args.clone().unwrap_or_default()),
            _ => (
                base.and_then(|b| b.cmd.clone()),
                base.map(|b| b.args.clone()).unwrap_or_default(),
            ),
        };
        let instances = pick(base, u.instances, |b| b.instances, 1);
        let app = AppDefinition {
            id,
            accepted_resource_roles: u
                .accepted_resource_roles
                .or_else(|| base.and_then(|b| b.accepted_resource_roles.clone())),
            args,
            backoff_factor: pick(base, u.backoff_factor, |b| b.backoff_factor, 1.15),
            backoff_seconds: pick(base, u.backoff_seconds, |b| b.backoff_seconds, 1),
            cmd,
            constraints: u
                .constraints
                .or_else(|| base.map(|b| b.constraints.clone()))
                .unwrap_or_default(),
            container,
            cpus: pick(base, u.cpus, |b| b.cpus, 1.0),
            dependencies: u
                .dependencies
                .or_else(|| base.map(|b| b.dependencies.clone()))
                .unwrap_or_default(),
            disk: pick(base, u.disk, |b| b.disk, 0.0),
            env: u
                .env
                .or_else(|| base.map(|b| b.env.clone()))
                .unwrap_or_default(),
            executor: u
                .executor
                .or_else(|| base.map(|b| b.executor.clone()))
                .unwrap_or_default(),
            fetch: u
                .fetch
                .or_else(|| base.map(|b| b.fetch.clone()))
                .unwrap_or_default(),
            health_checks: u
                .health_checks
                .or_else(|| base.map(|b| b.health_checks.clone()))
                .unwrap_or_default(),
            instances,
            labels: u
                .labels
                .or_else(|| base.map(|b| b.labels.clone()))
                .unwrap_or_default(),
            max_launch_delay_seconds: pick(
                base,
                u.max_launch_delay_seconds,
                |b| b.max_launch_delay_seconds,
                300,
            ),
            mem: pick(base, u.mem, |b| b.mem, 128.0),
            gpus: pick(base, u.gpus, |b| b.gpus, 0),
            ip_address: u
                .ip_address
                .or_else(|| base.and_then(|b| b.ip_address.clone())),
            networks,
            port_definitions,
            readiness_checks: u
                .readiness_checks
                .or_else(|| base.map(|b| b.readiness_checks.clone()))
                .unwrap_or_default(),
            residency: u
                .residency
                .or_else(|| base.and_then(|b| b.residency.clone())),
            require_ports: pick(base, u.require_ports, |b| b.require_ports, false),
            secrets: u
                .secrets
                .or_else(|| base.map(|b| b.secrets.clone()))
                .unwrap_or_default(),
            task_kill_grace_period_seconds: u
                .task_kill_grace_period_seconds
                .or_else(|| base.and_then(|b| b.task_kill_grace_period_seconds)),
            upgrade_strategy: pick(
                base,
                u.upgrade_strategy,
                |b| b.upgrade_strategy,
                UpgradeStrategy::default(),
            ),
            user: u.user.or_else(|| base.and_then(|b| b.user.clone())),
            version,
            version_info: VersionInfo {
                last_scaling_at: version,
                last_config_change_at: version,
            },
            kill_selection: pick(
                base,
                u.kill_selection,
                |b| b.kill_selection,
                KillSelection::default(),
            ),
            unreachable_strategy: pick(
                base,
                u.unreachable_strategy,
                |b| b.unreachable_strategy,
                UnreachableStrategy::default(),
            ),
            tty: u.tty.or_else(|| base.and_then(|b| b.tty)),
            role: u
                .role
                .or_else(|| base.map(|b| b.role.clone()))
                .unwrap_or_else(|| DEFAULT_ROLE.to_string()),
        };
        let app = match base {
            Some(b) if !b.is_upgrade(&app) => AppDefinition {
                version_info: VersionInfo {
                    last_scaling_at: version,
                    last_config_change_at: b.version_info.last_config_change_at,
                },
                ..app
            },
            _ => app,
        };
        validate(&app, &mut rules);
        if rules.is_empty() {
            Ok(app)
        } else {
            Err(AppBodyError::Invalid(rules))
        }
    }
}

/// The body's value, else the base's, else the default.
fn pick<T>(
    base: Option<&AppDefinition>,
    new: Option<T>,
    old: impl Fn(&AppDefinition) -> T,
    default: T,
) -> T {
    new.or_else(|| base.map(old)).unwrap_or(default)
}

/// Rules that involve more than one field.
fn validate(app: &AppDefinition, rules: &mut Violations) {
    let has_cmd = app.cmd.is_some();
    let has_args = !app.args.is_empty();
    if (has_cmd && has_args) || (!has_cmd && !has_args && app.container.is_none()) {
        rules.add(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
        );
    }
    if app.cpus < 0.001 {
        rules.add("/cpus", "is less than 0.001");
    }
    let port_count = match app.network_mode() {
        NetworkMode::Host => app.port_definitions.as_ref().map_or(0, Vec::len),
        _ => app
            .container
            .as_ref()
            .and_then(|c| c.port_mappings.as_ref())
            .map_or(0, Vec::len),
    };
    let names: Vec<&str> = match app.network_mode() {
        NetworkMode::Host => app
            .port_definitions
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect(),
        _ => app
            .container
            .iter()
            .flat_map(|c| c.port_mappings.iter().flatten())
            .filter_map(|p| p.name.as_deref())
            .collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        if !seen.insert(*name) {
            rules.add(
                "/portDefinitions",
                format!("Port names must be unique: '{name}' is used twice"),
            );
        }
    }
    if app.require_ports
        && app.network_mode() == NetworkMode::Host
        && app.port_definitions.iter().flatten().any(|p| p.port == 0)
    {
        rules.add(
            "/portDefinitions",
            "requirePorts needs every port definition to name a non-zero port",
        );
    }
    for (i, hc) in app.health_checks.iter().enumerate() {
        if let Some(index) = hc.port_index
            && index as usize >= port_count
        {
            rules.add(
                format!("/healthChecks({i})"),
                "Health check port indices must address an element of the ports array or container port mappings.",
            );
        }
    }
}

/// What `id` a create request names: the body's, canonicalised.
pub fn create_id(update: &AppUpdate) -> Result<AppId, AppBodyError> {
    let mut v = Violations::default();
    match update.id.as_deref() {
        None => {
            v.add("/id", "error.path.missing");
            Err(AppBodyError::Invalid(v))
        }
        Some(raw) => AppId::parse(raw).map_err(|e: AppIdError| {
            v.add("/id", e.to_string());
            AppBodyError::Invalid(v)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> Result<AppDefinition, AppBodyError> {
        let u = AppUpdate::from_value(&body)?;
        let id = create_id(&u)?;
        u.apply(None, id, Timestamp::from_millis(1_000))
    }

    #[test]
    fn a_minimal_app_gets_marathons_defaults() {
        let app = create(json!({"id": "foo", "cmd": "sleep 100"})).unwrap();
        let v = serde_json::to_value(&app).unwrap();
        assert_eq!(v["id"], "/foo");
        assert_eq!(v["instances"], 1);
        assert_eq!(v["cpus"], 1);
        assert_eq!(v["mem"], 128);
        assert_eq!(v["disk"], 0);
        assert_eq!(v["gpus"], 0);
        assert_eq!(v["backoffSeconds"], 1);
        assert_eq!(v["backoffFactor"], 1.15);
        assert_eq!(v["maxLaunchDelaySeconds"], 300);
        assert_eq!(
            v["upgradeStrategy"],
            json!({"maximumOverCapacity": 1, "minimumHealthCapacity": 1})
        );
        assert_eq!(
            v["portDefinitions"],
            json!([{"port": 0, "protocol": "tcp", "name": "default"}])
        );
        assert_eq!(v["requirePorts"], false);
        assert_eq!(v["killSelection"], "YOUNGEST_FIRST");
        assert_eq!(
            v["unreachableStrategy"],
            json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0})
        );
        assert_eq!(v["networks"], json!([{"mode": "host"}]));
        assert_eq!(v["labels"], json!({}));
        assert_eq!(v["executor"], "");
        assert_eq!(v["role"], "*");
        assert_eq!(v["version"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["versionInfo"]["lastConfigChangeAt"], v["version"]);
        assert!(v.get("env").is_none() && v.get("constraints").is_none());
    }

    #[test]
    fn wrong_types_are_invalid_json_and_rule_breaks_are_invalid_objects() {
        match create(json!({"id": "/a", "cmd": "x", "cpus": "lots"})) {
            Err(AppBodyError::InvalidJson(v)) => {
                assert_eq!(v.into_details()[0].path, "/cpus")
            }
            other => panic!("{other:?}"),
        }
        match create(
            json!({"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
        ) {
            Err(AppBodyError::Invalid(v)) => {
                let d = v.into_details();
                assert_eq!(d[0].path, "/upgradeStrategy/minimumHealthCapacity");
                assert_eq!(d[0].errors, ["is greater than 1"]);
            }
            other => panic!("{other:?}"),
        }
        match create(json!({"id": "/Bad_Id", "cmd": "x"})) {
            Err(AppBodyError::Invalid(v)) => assert_eq!(v.into_details()[0].path, "/id"),
            other => panic!("{other:?}"),
        }
        match create(json!({"id": "/a"})) {
            Err(AppBodyError::Invalid(v)) => assert_eq!(v.into_details()[0].path, "/"),
            other => panic!("{other:?}"),
        }
        assert!(create(json!({"id": "/a", "cmd": "x", "args": ["y"]})).is_err());
        assert!(create(json!({"id": "/a", "cmd": "x", "instances": -1})).is_err());
    }

    #[test]
    fn partial_updates_keep_unnamed_fields_and_scaling_keeps_the_config_version() {
        let base =
            create(json!({"id": "/a", "cmd": "x", "mem": 64, "labels": {"k": "v"}})).unwrap();
        let scaled = AppUpdate::scale(5)
            .apply(Some(&base), base.id.clone(), Timestamp::from_millis(2_000))
            .unwrap();
        assert_eq!(scaled.instances, 5);
        assert_eq!(scaled.mem, 64.0);
        assert_eq!(scaled.version_info.last_config_change_at, base.version);
        assert_eq!(scaled.version_info.last_scaling_at, scaled.version);
        assert!(!base.is_upgrade(&scaled));
        let changed = AppUpdate::from_value(&json!({"cmd": "y"}))
            .unwrap()
            .apply(Some(&base), base.id.clone(), Timestamp::from_millis(3_000))
            .unwrap();
        assert_eq!(changed.labels.get("k").map(String::as_str), Some("v"));
        assert!(base.is_upgrade(&changed));
        assert_eq!(changed.version_info.last_config_change_at, changed.version);
    }

    #[test]
    fn legacy_docker_bridge_apps_are_normalised() {
        let app = create(json!({
            "id": "/web", "container": {"type": "DOCKER", "docker": {
                "image": "nginx", "network": "BRIDGE",
                "portMappings": [{"containerPort": 80, "name": "http"}]}}
        }))
        .unwrap();
        assert_eq!(app.network_mode(), NetworkMode::ContainerBridge);
        assert!(app.port_definitions.is_none());
        let m = &app
            .container
            .as_ref()
            .unwrap()
            .port_mappings
            .as_ref()
            .unwrap()[0];
        assert_eq!((m.container_port, m.host_port), (80, Some(0)));
        assert_eq!(app.docker_image(), Some("nginx"));
    }

    #[test]
    fn health_checks_get_defaults_and_port_indices_are_checked() {
        let app = create(json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "HTTP"}]}))
            .unwrap();
        let hc = &app.health_checks[0];
        assert_eq!(hc.path.as_deref(), Some("/"));
        assert_eq!(hc.port_index, Some(0));
        assert_eq!(hc.grace_period_seconds, 300);
        assert_eq!(hc.interval_seconds, 60);
        assert_eq!(hc.max_consecutive_failures, 3);
        assert!(
            create(json!({"id": "/a", "cmd": "x", "healthChecks": [{"portIndex": 1}]})).is_err()
        );
        assert!(
            create(json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}]}))
                .is_err()
        );
    }
}
