//! Request bodies (`POST`/`PUT`/`PATCH` of apps) read into an [`AppUpdate`].
//!
//! [`AppUpdate::parse`] reads a JSON body leniently (unknown and read-only fields are ignored,
//! `null` means absent). It follows Marathon 1.10, whose generated RAML readers check types,
//! `minimum`/`maximum`, `pattern`, `minLength` and enum values while reading: a body that is not
//! JSON is `400 Invalid JSON` with the parser's message as `details`; a reader failure is
//! `422 Invalid JSON` with Play-JSON keys (`error.expected.jsnumber`, `error.min`,
//! `error.pattern`) per path; rules the readers do not know are `422 Object is not valid`.
//! (Marathon's `MarathonExceptionMapper`: a Jackson parse error is 400, a Play `JsResultException`
//! 422.) Turning an update into a complete definition is `app_normalization.rs`; service ports are assigned when the change
//! is applied (`changes.rs`), where all apps are known.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::app::{
    CommandCheck, Container, ContainerKind, Disabled, Docker, DockerParameter, EnvValue,
    HealthCheck, HealthProtocol, KillSelection, Network, NetworkMode, PortDefinition, PortMapping,
    UnreachableStrategy, UpgradeStrategy,
};
use crate::app_id::{AppId, AppIdError};
use crate::placement::Constraint;
use crate::validation::{Reader, Violations};

/// Why a body could not become an app.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppBodyError {
    /// Not JSON at all (HTTP 400); the parser's message.
    #[error("Invalid JSON: {0}")]
    Malformed(String),
    /// JSON the readers reject: a wrong type, a value out of range, not matching its pattern or
    /// not one of its enum values (HTTP 422 `Invalid JSON`).
    #[error("Invalid JSON")]
    InvalidJson(Violations),
    /// Read, but breaking a rule (HTTP 422 `Object is not valid`).
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
    pub(crate) accepted_resource_roles: Option<Vec<String>>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) backoff_factor: Option<f64>,
    pub(crate) backoff_seconds: Option<u32>,
    pub(crate) cmd: Option<String>,
    pub(crate) constraints: Option<Vec<Constraint>>,
    pub(crate) container: Option<Container>,
    pub(crate) legacy_docker_network: Option<String>,
    pub(crate) cpus: Option<f64>,
    pub(crate) dependencies: Option<Vec<String>>,
    pub(crate) disk: Option<f64>,
    pub(crate) env: Option<BTreeMap<String, EnvValue>>,
    pub(crate) executor: Option<String>,
    pub(crate) fetch: Option<Vec<Value>>,
    pub(crate) health_checks: Option<Vec<HealthCheck>>,
    /// `instances`, the only field of a scale request.
    pub instances: Option<u32>,
    pub(crate) labels: Option<BTreeMap<String, String>>,
    pub(crate) max_launch_delay_seconds: Option<u32>,
    pub(crate) mem: Option<f64>,
    pub(crate) gpus: Option<u32>,
    pub(crate) ip_address: Option<Value>,
    pub(crate) networks: Option<Vec<Network>>,
    pub(crate) port_definitions: Option<Vec<PortDefinition>>,
    pub(crate) readiness_checks: Option<Vec<Value>>,
    pub(crate) residency: Option<Value>,
    pub(crate) require_ports: Option<bool>,
    pub(crate) secrets: Option<BTreeMap<String, Value>>,
    pub(crate) task_kill_grace_period_seconds: Option<u32>,
    pub(crate) upgrade_strategy: Option<UpgradeStrategy>,
    pub(crate) user: Option<String>,
    pub(crate) kill_selection: Option<KillSelection>,
    pub(crate) unreachable_strategy: Option<UnreachableStrategy>,
    pub(crate) tty: Option<bool>,
    pub(crate) role: Option<String>,
    /// Number of fields given, to tell a rollback (`{"version": ...}` alone) from an update.
    pub(crate) written: usize,
}

fn non_negative(r: &mut Reader<'_>, key: &str) -> Option<u32> {
    let v = r.integer(key)?;
    if v < 0 {
        let path = r.path(key);
        r.errors().add(path, "error.min");
        return None;
    }
    Some(u32::try_from(v).unwrap_or(u32::MAX))
}

/// A number with the RAML type's `minimum` (and `maximum`): Play's `error.min`/`error.max`.
fn bounded_number(r: &mut Reader<'_>, key: &str, min: f64, max: Option<f64>) -> Option<f64> {
    let v = r.number(key)?;
    let path = r.path(key);
    if v < min {
        r.errors().add(path, "error.min");
    } else if max.is_some_and(|max| v > max) {
        r.errors().add(path, "error.max");
    }
    Some(v)
}

fn port_number(r: &mut Reader<'_>, key: &str) -> Option<u16> {
    let v = r.integer(key)?;
    match u16::try_from(v) {
        Ok(p) => Some(p),
        Err(_) => {
            let path = r.path(key);
            r.errors()
                .add(path, if v < 0 { "error.min" } else { "error.max" });
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

fn read_port_name(r: &mut Reader<'_>) -> Option<String> {
    let name = r.string("name")?;
    if !valid_port_name(&name) {
        let path = r.path("name");
        r.errors().add(path, "error.pattern");
    }
    Some(name)
}

/// Records Play's key for a string that is none of its enum's values.
fn not_in_enum(r: &mut Reader<'_>, key: &str) {
    let path = r.path(key);
    r.errors().add(path, "error.expected.validenumvalue");
}

fn read_protocol(r: &mut Reader<'_>) -> String {
    let p = r.string("protocol").unwrap_or_else(|| "tcp".to_string());
    if !matches!(p.as_str(), "tcp" | "udp" | "udp,tcp") {
        not_in_enum(r, "protocol");
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
            not_in_enum(r, "protocol");
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
    let port = port_number(r, "port");
    let mut port_index = non_negative(r, "portIndex");
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
        grace_period_seconds: non_negative(r, "gracePeriodSeconds").unwrap_or(300),
        ignore_http1xx: r.boolean("ignoreHttp1xx").or(matches!(
            protocol,
            HealthProtocol::Http | HealthProtocol::Https
        )
        .then_some(false)),
        interval_seconds: non_negative(r, "intervalSeconds").unwrap_or(60),
        max_consecutive_failures: non_negative(r, "maxConsecutiveFailures").unwrap_or(3),
        path: r
            .string("path")
            .or(is_http.then(|| "/".to_string()))
            .filter(|_| is_http),
        port_index,
        port,
        protocol,
        ip_protocol: r.string("ipProtocol"),
        timeout_seconds: non_negative(r, "timeoutSeconds").unwrap_or(20),
        delay_seconds: non_negative(r, "delaySeconds").unwrap_or(15),
    }
}

fn read_port_mapping(r: &mut Reader<'_>) -> PortMapping {
    PortMapping {
        container_port: port_number(r, "containerPort").unwrap_or(0),
        host_port: port_number(r, "hostPort"),
        labels: r.string_map("labels").unwrap_or_default(),
        name: read_port_name(r),
        protocol: read_protocol(r),
        service_port: port_number(r, "servicePort").unwrap_or(0),
        network_names: r.strings("networkNames").unwrap_or_default(),
    }
}

/// Reads `container`; returns it and the legacy `docker.network` if given.
fn read_container(r: &mut Reader<'_>, rules: &mut Violations) -> (Container, Option<String>) {
    let kind = match r.string("type").as_deref() {
        None | Some("DOCKER") => ContainerKind::Docker,
        Some("MESOS") => ContainerKind::Mesos,
        Some(_) => {
            not_in_enum(r, "type");
            ContainerKind::Docker
        }
    };
    let mut legacy_network = None;
    let mut legacy_mappings = None;
    let docker = r.nested("docker", |d| {
        legacy_network = d.string("network");
        legacy_mappings = d.each("portMappings", read_port_mapping);
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
        .each("portMappings", read_port_mapping)
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
    /// Reads a request body: not JSON is `Malformed`; what the RAML readers reject is
    /// `InvalidJson`; other rule breaks found while reading are `Invalid`.
    pub fn parse(body: &[u8]) -> Result<AppUpdate, AppBodyError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| AppBodyError::Malformed(e.to_string()))?;
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
                    not_in_enum(n, "mode");
                    NetworkMode::Host
                }
            },
            labels: n.string_map("labels").unwrap_or_default(),
        });
        let port_definitions = r
            .each("portDefinitions", |p| PortDefinition {
                port: port_number(p, "port").unwrap_or(0),
                protocol: read_protocol(p),
                name: read_port_name(p),
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
            maximum_over_capacity: bounded_number(u, "maximumOverCapacity", 0.0, Some(1.0))
                .unwrap_or(1.0),
            minimum_health_capacity: bounded_number(u, "minimumHealthCapacity", 0.0, Some(1.0))
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
                not_in_enum(r, "unreachableStrategy");
                None
            }
        };
        let kill_selection = match r.string("killSelection").as_deref() {
            None => None,
            Some("YOUNGEST_FIRST") => Some(KillSelection::YoungestFirst),
            Some("OLDEST_FIRST") => Some(KillSelection::OldestFirst),
            Some(_) => {
                not_in_enum(r, "killSelection");
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
            let path = r.path("cmd");
            r.errors().add(path, "error.minLength");
        }
        let executor = r.string("executor");
        if let Some(e) = &executor
            && !(e.is_empty() || e == "//cmd" || !e.contains("//"))
        {
            let path = r.path("executor");
            r.errors().add(path, "error.pattern");
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
            backoff_factor: bounded_number(r, "backoffFactor", 1.0, None),
            backoff_seconds: non_negative(r, "backoffSeconds"),
            cmd,
            constraints,
            container,
            legacy_docker_network,
            cpus: bounded_number(r, "cpus", 0.001, None),
            dependencies: r.strings("dependencies"),
            disk: bounded_number(r, "disk", 0.0, None),
            env: read_env(r),
            executor,
            fetch,
            health_checks: r.each("healthChecks", |h| read_health_check(h, rules)),
            instances: non_negative(r, "instances"),
            labels: r.string_map("labels"),
            max_launch_delay_seconds: non_negative(r, "maxLaunchDelaySeconds"),
            mem: bounded_number(r, "mem", 0.0, None),
            gpus: non_negative(r, "gpus"),
            ip_address: r.raw("ipAddress").cloned(),
            networks,
            port_definitions,
            readiness_checks: r.array("readinessChecks").cloned(),
            residency: r.raw("residency").cloned(),
            require_ports: r.boolean("requirePorts"),
            secrets: r
                .object("secrets")
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            task_kill_grace_period_seconds: non_negative(r, "taskKillGracePeriodSeconds"),
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
}

/// What `id` a create request names: the body's, canonicalised.
pub fn create_id(update: &AppUpdate) -> Result<AppId, AppBodyError> {
    let mut v = Violations::default();
    match update.id.as_deref() {
        // `id` is a required `PathId` in the RAML `App` type: its reader rejects a missing id
        // and one off the pattern; the root group is refused later, by validation.
        None => {
            v.add("/id", "error.path.missing");
            Err(AppBodyError::InvalidJson(v))
        }
        Some(raw) => AppId::parse(raw).map_err(|e: AppIdError| match e {
            AppIdError::InvalidSegment { .. } => {
                v.add("/id", "error.pattern");
                AppBodyError::InvalidJson(v)
            }
            AppIdError::Root => {
                v.add("/id", e.to_string());
                AppBodyError::Invalid(v)
            }
        }),
    }
}
