//! The environment Marathon (and Mesos) give a task.
//!
//! Follows Marathon's `EnvironmentHelper` and `TaskBuilder`: `MESOS_TASK_ID`, `MARATHON_APP_ID`,
//! `MARATHON_APP_VERSION`, `MARATHON_APP_RESOURCE_*` (printed as Java doubles, `128.0`),
//! `MARATHON_APP_LABELS` and `MARATHON_APP_LABEL_<NAME>`, `MARATHON_APP_DOCKER_IMAGE`, then the
//! port variables and `HOST`, then the app's own `env`, which wins. Port variables: `PORT0..N`
//! are the host ports (for a mapping without host port, its container port), `PORT` the first,
//! `PORTS` all, `PORT_<NAME>` for named ports and `PORT_<declared>` for each non-zero declared
//! port (service port on host networking, container port on bridge networking). Mesos adds
//! `MESOS_SANDBOX` and `MESOS_DIRECTORY`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::app::{AppDefinition, EnvValue, NetworkMode};
use crate::task::TaskId;

/// Longest environment variable Marathon sets for a label.
const MAX_ENV_LENGTH: usize = 512;
const LABEL_PREFIX: &str = "MARATHON_APP_LABEL_";

/// Java's `Double.toString` for the values Marathon prints (`1.0`, `0.1`, `128.0`).
pub fn java_double(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e7 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// Marathon's env key form of a label name: runs of other characters become `_`, uppercased.
pub fn env_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_uppercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The port variables for host ports `effective` (None: no host port, fall back to the
/// declared one), `declared` ports and port `names`.
pub fn ports_env(
    declared: &[u16],
    effective: &[Option<u16>],
    names: &[Option<String>],
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut all = Vec::new();
    for (i, port) in effective.iter().enumerate() {
        let declared_port = declared.get(i).copied().unwrap_or(0);
        let value = match port {
            Some(p) => *p,
            None if declared_port != 0 => declared_port,
            None => continue,
        };
        all.push(value);
        env.insert(format!("PORT{i}"), value.to_string());
        if declared_port != 0 {
            env.insert(format!("PORT_{declared_port}"), value.to_string());
        }
        if let Some(Some(name)) = names.get(i) {
            env.insert(format!("PORT_{}", env_key(name)), value.to_string());
        }
    }
    if let Some(first) = all.first() {
        env.insert("PORT".to_string(), first.to_string());
    }
    if !all.is_empty() {
        env.insert(
            "PORTS".to_string(),
            all.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
        );
    }
    env
}

/// The full environment of one task of `app` with `host_ports` on `host`.
pub fn task_env(
    app: &AppDefinition,
    task: &TaskId,
    host: &str,
    host_ports: &[u16],
    sandbox: &Path,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("MESOS_TASK_ID".into(), task.as_str().into());
    env.insert("MESOS_SANDBOX".into(), sandbox.display().to_string());
    env.insert("MESOS_DIRECTORY".into(), sandbox.display().to_string());
    env.insert("MARATHON_APP_ID".into(), app.id.to_string());
    env.insert("MARATHON_APP_VERSION".into(), app.version.to_string());
    env.insert("MARATHON_APP_RESOURCE_CPUS".into(), java_double(app.cpus));
    env.insert("MARATHON_APP_RESOURCE_MEM".into(), java_double(app.mem));
    env.insert("MARATHON_APP_RESOURCE_DISK".into(), java_double(app.disk));
    env.insert("MARATHON_APP_RESOURCE_GPUS".into(), app.gpus.to_string());
    if let Some(image) = app.docker_image() {
        env.insert("MARATHON_APP_DOCKER_IMAGE".into(), image.into());
    }
    let max_name = MAX_ENV_LENGTH - LABEL_PREFIX.len();
    let labels: Vec<(String, &String)> = app
        .labels
        .iter()
        .filter(|(k, v)| k.len() < max_name && v.len() < MAX_ENV_LENGTH)
        .map(|(k, v)| (env_key(k), v))
        .collect();
    env.insert(
        "MARATHON_APP_LABELS".into(),
        labels
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    );
    for (k, v) in labels {
        env.insert(format!("{LABEL_PREFIX}{k}"), v.clone());
    }

    let (declared, effective, names): (Vec<u16>, Vec<Option<u16>>, Vec<Option<String>>) =
        match app.network_mode() {
            NetworkMode::Host => {
                let defs = app.port_definitions.clone().unwrap_or_default();
                (
                    defs.iter().map(|d| d.port).collect(),
                    host_ports.iter().copied().map(Some).collect(),
                    defs.iter().map(|d| d.name.clone()).collect(),
                )
            }
            _ => {
                let mappings = app
                    .container
                    .as_ref()
                    .and_then(|c| c.port_mappings.clone())
                    .unwrap_or_default();
                let mut host_iter = host_ports.iter().copied();
                let effective = mappings
                    .iter()
                    .map(|m| m.host_port.and_then(|_| host_iter.next()))
                    .collect();
                (
                    mappings.iter().map(|m| m.container_port).collect(),
                    effective,
                    mappings.iter().map(|m| m.name.clone()).collect(),
                )
            }
        };
    env.extend(ports_env(&declared, &effective, &names));
    env.insert("HOST".into(), host.into());
    for (k, v) in &app.env {
        // Secrets have no store here; a variable referring to one is left out.
        if let EnvValue::Plain(v) = v {
            env.insert(k.clone(), v.clone());
        }
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_update::{AppUpdate, create_id};
    use crate::timestamp::Timestamp;
    use serde_json::json;

    fn app(body: serde_json::Value) -> AppDefinition {
        let u = AppUpdate::from_value(&body).unwrap();
        let id = create_id(&u).unwrap();
        u.apply(None, id, Timestamp::from_millis(0)).unwrap()
    }

    #[test]
    fn host_networking_ports_and_marathon_variables() {
        let mut a = app(json!({
            "id": "/prod/api", "cmd": "x", "cpus": 0.5, "mem": 64,
            "labels": {"team": "core", "a.b-c": "v"},
            "env": {"MINE": "1", "PORT": "user-wins"},
            "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0}]
        }));
        a.port_definitions.as_mut().unwrap()[0].port = 10000;
        a.port_definitions.as_mut().unwrap()[1].port = 10001;
        let task = TaskId::from_raw("prod_api.instance-x._app.1");
        let env: BTreeMap<_, _> =
            task_env(&a, &task, "127.0.0.11", &[31000, 31001], Path::new("/sb"))
                .into_iter()
                .collect();
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("HOST"), Some("127.0.0.11"));
        assert_eq!(get("PORT0"), Some("31000"));
        assert_eq!(get("PORT1"), Some("31001"));
        assert_eq!(get("PORTS"), Some("31000,31001"));
        assert_eq!(get("PORT_HTTP"), Some("31000"));
        assert_eq!(get("PORT_10000"), Some("31000"));
        assert_eq!(get("PORT_10001"), Some("31001"));
        assert_eq!(get("PORT"), Some("user-wins"));
        assert_eq!(get("MINE"), Some("1"));
        assert_eq!(get("MARATHON_APP_ID"), Some("/prod/api"));
        assert_eq!(
            get("MARATHON_APP_VERSION"),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(get("MARATHON_APP_RESOURCE_CPUS"), Some("0.5"));
        assert_eq!(get("MARATHON_APP_RESOURCE_MEM"), Some("64.0"));
        assert_eq!(get("MARATHON_APP_RESOURCE_DISK"), Some("0.0"));
        assert_eq!(get("MARATHON_APP_LABELS"), Some("A_B_C TEAM"));
        assert_eq!(get("MARATHON_APP_LABEL_TEAM"), Some("core"));
        assert_eq!(get("MARATHON_APP_LABEL_A_B_C"), Some("v"));
        assert_eq!(get("MESOS_TASK_ID"), Some(task.as_str()));
    }

    #[test]
    fn bridge_networking_names_container_ports() {
        let a = app(json!({
            "id": "/web", "container": {"type": "DOCKER", "docker": {"image": "nginx"},
              "portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"}]},
            "networks": [{"mode": "container/bridge"}]
        }));
        let env: BTreeMap<_, _> = task_env(
            &a,
            &TaskId::from_raw("t"),
            "127.0.0.12",
            &[31005],
            Path::new("/sb"),
        )
        .into_iter()
        .collect();
        assert_eq!(env["PORT0"], "31005");
        assert_eq!(env["PORT_80"], "31005");
        assert_eq!(env["PORT_HTTP"], "31005");
        assert_eq!(env["MARATHON_APP_DOCKER_IMAGE"], "nginx");
    }
}
