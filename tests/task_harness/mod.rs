//! What the guest and watch tests share: task records written into a real etcd the way the
//! controller writes them. The `theseus-cli` package's tests reuse this file, and add the
//! binary run the way a task runs it.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::time::Duration;

use theseus::api::{DeploymentKey, Health, PortBinding, TaskRecord};
use theseus::marathon::task::TaskState;
use theseus::store::{EtcdConfig, Layout, Revision, Store};

/// How long a test waits for something before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A store on `endpoints` under `prefix`, with short timeouts for tests that stop etcd.
pub async fn connect(endpoints: Vec<String>, prefix: &str) -> Store {
    let mut config = EtcdConfig::new(endpoints);
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    Store::connect(config, Layout::new(prefix).unwrap())
        .await
        .unwrap()
}

/// A running, unchecked task of `service/deployment` on `host` with ports
/// `(name, host port, container port)`.
pub fn task(
    service: &str,
    deployment: &str,
    task_id: &str,
    host: &str,
    ports: &[(&str, u16, u16)],
    labels: &[&str],
) -> TaskRecord {
    TaskRecord {
        service: service.into(),
        deployment: deployment.into(),
        task_id: task_id.into(),
        app_id: format!("/{service}/{deployment}"),
        host: host.into(),
        agent_id: None,
        ip_addresses: vec![],
        ports: ports
            .iter()
            .map(|(name, host, container)| {
                (
                    name.to_string(),
                    PortBinding {
                        host: *host,
                        container: *container,
                        protocol: "tcp".into(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        state: TaskState::Running,
        health: Health::Unknown,
        health_checked: false,
        staged_at: None,
        started_at: None,
        version: None,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

/// Writes `record` where the controller would.
pub async fn put_task(store: &Store, record: &TaskRecord) -> Revision {
    let key = DeploymentKey::new(&record.service, &record.deployment).unwrap();
    store
        .put_json(&store.layout().task(&key, &record.task_id), record)
        .await
        .unwrap()
}

/// Deletes `record`'s key.
pub async fn delete_task(store: &Store, record: &TaskRecord) {
    let key = DeploymentKey::new(&record.service, &record.deployment).unwrap();
    store
        .delete(&store.layout().task(&key, &record.task_id))
        .await
        .unwrap();
}
