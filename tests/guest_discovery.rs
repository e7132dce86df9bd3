//! The guest library against a real etcd: discovery over all of a service's deployments, a
//! task finding its own record from its environment, and waiting for peers.

mod task_harness;

use std::time::Duration;

use task_harness::{DEADLINE, connect, put_task, task};
use theseus::api::DnsLabel;
use theseus::guest::{Discovery, Error, NodeQuery, TaskEnvironment, ThisTask};
use theseus_testkit::EtcdServer;

fn service(name: &str) -> DnsLabel {
    DnsLabel::parse("service", name).unwrap()
}

#[tokio::test]
async fn a_record_that_does_not_decode_is_skipped_and_the_others_are_listed() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    put_task(&store, &task("web", "a", "web_a.1", "10.0.0.1", &[], &[])).await;
    put_task(&store, &task("web", "b", "web_b.1", "10.0.0.2", &[], &[])).await;
    store
        .put("/observed/web/b/tasks/web_b.broken", "{not json")
        .await
        .unwrap();
    store.put("/observed/web/b/status", "{}").await.unwrap();
    let discovery = Discovery::new(store);
    let tasks = discovery.service(&service("web")).await.unwrap();
    let ids: Vec<&str> = tasks.records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["web_a.1", "web_b.1"]);
    let listed = discovery
        .node_list(&service("web"), &NodeQuery::default())
        .await
        .unwrap();
    let addresses: Vec<&str> = listed.iter().map(|l| l.address.as_str()).collect();
    assert_eq!(addresses, ["10.0.0.1", "10.0.0.2"]);
}

#[tokio::test]
async fn a_task_finds_its_own_record_from_its_environment_with_or_without_its_deployment() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "/staging").await;
    let own = task(
        "web",
        "canary",
        "web_canary.7",
        "10.0.0.3",
        &[("http", 31080, 80)],
        &[],
    );
    put_task(&store, &own).await;
    let endpoints = etcd.endpoint();
    let base = [
        ("ETCD_ENDPOINTS", endpoints.as_str()),
        ("THESEUS_PREFIX", "/staging"),
        ("SERVICE_NAME", "web"),
        ("MESOS_TASK_ID", "web_canary.7"),
    ];
    let without_deployment = ThisTask::connect(TaskEnvironment::from_vars(base))
        .await
        .unwrap();
    assert_eq!(
        without_deployment.record().await.unwrap(),
        Some(own.clone())
    );
    assert_eq!(without_deployment.port("http").await.unwrap(), 80);
    let with_deployment =
        ThisTask::connect(TaskEnvironment::from_vars(base).with_var("DEPLOYMENT_NAME", "canary"))
            .await
            .unwrap();
    assert_eq!(with_deployment.record().await.unwrap(), Some(own));
    assert_eq!(with_deployment.environment().environment_name(), "staging");
}

#[tokio::test]
async fn waiting_for_peers_fails_at_once_on_a_port_no_peer_has() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    put_task(
        &store,
        &task("db", "a", "db_a.1", "10.0.0.1", &[("pg", 31001, 5432)], &[]),
    )
    .await;
    let discovery = Discovery::new(store);
    let query = NodeQuery {
        ports: vec!["gossip".into()],
        ..NodeQuery::default()
    };
    // Waiting would not add the port: the error comes long before the hour is up.
    let answer = tokio::time::timeout(
        DEADLINE,
        discovery.wait_for_node_list(&service("db"), &query, Duration::from_secs(3600)),
    )
    .await
    .expect("answered without waiting");
    assert!(
        matches!(&answer, Err(Error::NoSuchPort { port, known, .. }) if port == "gossip" && known == &["pg"]),
        "{answer:?}"
    );
}

#[tokio::test]
async fn waiting_for_peers_sees_a_task_become_healthy() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    let mut checked = task("db", "a", "db_a.1", "10.0.0.1", &[], &[]);
    checked.health_checked = true;
    put_task(&store, &checked).await;
    let discovery = Discovery::new(store.clone());
    let waiting = tokio::spawn(async move {
        discovery
            .wait_for_node_list(&service("db"), &NodeQuery::default(), DEADLINE)
            .await
    });
    checked.health = theseus::api::Health::Healthy;
    put_task(&store, &checked).await;
    let listed = waiting.await.unwrap().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].node.task_id, "db_a.1");
}
