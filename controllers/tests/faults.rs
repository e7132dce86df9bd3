//! The controller under faults: Marathon going away mid-run, etcd compacting the history its
//! watch needs, the controller killed between a Marathon write and the status write, and two
//! controllers of which the acting one is killed. Afterwards everything converges, with no
//! duplicate app and no orphan.

mod support;

use std::time::Duration;
use theseus::api::ConditionKind;

use localmarathon::ExecutorKind;
use serde_json::json;
use support::{Cluster, etcdctl, metric_sum, wait_until};

const KEY: &str = "web/dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marathon_stopped_and_restarted_mid_run_is_reported_then_converged_without_double_writes() {
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    let controller = cluster.controller().await;
    let first = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    cluster.wait_running(KEY, first).await;

    cluster.marathon.stop_api().await;
    let second = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 3}))
        .await;
    let status = cluster
        .wait_status(KEY, "says Marathon is unavailable", |s| {
            s.observed_revision == second
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| !c.status && c.reason == "MarathonUnavailable")
        })
        .await;
    assert_eq!(status.instances.desired, 3);

    cluster.marathon.start_api().await.unwrap();
    cluster.wait_running(KEY, second).await;
    let apps = cluster.apps().await;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].instances, Some(3));
    let metrics = controller.metrics().encode();
    assert_eq!(
        metric_sum(
            &metrics,
            "theseus_controller_marathon_writes_total",
            "action=\"scale\""
        ),
        1.0,
        "the scale was made once"
    );
    assert!(
        metric_sum(
            &metrics,
            "theseus_controller_reconcile_errors_total",
            "error=\"marathon_unavailable\""
        ) >= 1.0
    );
    controller.shutdown().await;
}

/// etcd's current revision.
fn revision(cluster: &Cluster) -> String {
    let out = etcdctl(
        &cluster.etcd,
        &["get", "/", "--prefix", "--keys-only", "-w", "json"],
    );
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["header"]["revision"].to_string()
}

// One thread: while the test restarts etcd and runs etcdctl (blocking calls) nothing in the
// controller runs, so its watch breaks and must resume from a revision the compaction removed.
#[tokio::test(flavor = "current_thread")]
async fn changes_hidden_by_an_etcd_compaction_still_reach_marathon() {
    let mut cluster = Cluster::start_with(ExecutorKind::Sim).await;
    let mut config = cluster.config();
    config.lease_ttl = Duration::from_secs(10);
    let controller = theseus_controllers::controller::Controller::start(config)
        .await
        .unwrap();
    for name in ["a", "b"] {
        let revision = cluster
            .put_spec(&format!("web/{name}"), &json!({"cmd": "sleep 1000"}))
            .await;
        cluster.wait_running(&format!("web/{name}"), revision).await;
    }

    cluster.etcd.kill();
    cluster.etcd.restart();
    etcdctl(
        &cluster.etcd,
        &[
            "put",
            "/desired/web/a",
            r#"{"cmd": "sleep 1000", "instances": 2}"#,
        ],
    );
    etcdctl(&cluster.etcd, &["del", "/desired/web/b"]);
    etcdctl(
        &cluster.etcd,
        &["put", "/desired/web/c", r#"{"cmd": "sleep 1000"}"#],
    );
    etcdctl(
        &cluster.etcd,
        &["compact", &revision(&cluster), "--physical"],
    );

    wait_until("every change reached Marathon", || async {
        let apps = cluster.apps().await;
        let mut ids: Vec<(String, Option<u32>)> = apps
            .iter()
            .map(|a| (a.id.to_string(), a.instances))
            .collect();
        ids.sort();
        ids == [
            ("/web/a".to_owned(), Some(2)),
            ("/web/c".to_owned(), Some(1)),
        ]
    })
    .await;
    let metrics = controller.metrics().encode();
    assert!(
        metrics.contains("operation=\"watch\",result=\"compacted\""),
        "the watch did not go through the compaction:\n{metrics}"
    );
    controller.shutdown().await;
}

// Needs the binary built with failpoints (the default feature).
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_between_marathon_and_the_status_write_converges_after_restart() {
    use theseus_controllers::deployments::reconcile::AFTER_MARATHON_WRITE;
    const APP: &str = "/web/dev";
    let cluster = Cluster::start().await;
    let failpoints = format!("{AFTER_MARATHON_WRITE}=pause");
    let mut first = cluster.spawn_controller("first", &[("FAILPOINTS", &failpoints)]);
    wait_until("the first controller leads", || first.leads()).await;

    let revision = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    wait_until("Marathon has the app", || async {
        cluster.app(APP).await.is_some()
    })
    .await;
    // Paused at the failpoint: Marathon acted, the status was never written.
    assert!(cluster.status(KEY).await.is_none());
    first.kill();

    let second = cluster.spawn_controller("second", &[]);
    let status = cluster.wait_running(KEY, revision).await;
    assert_eq!(status.instances.running, 2);
    let apps = cluster.apps().await;
    assert_eq!(apps.len(), 1, "no duplicate and no orphan: {apps:?}");
    assert_eq!(apps[0].id.as_str(), APP);
    assert_eq!(cluster.running_tasks(APP).len(), 2);
    assert_eq!(
        second
            .metric("theseus_controller_marathon_writes_total{action=\"create\"}")
            .await,
        None,
        "the restarted controller did not create the app again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_controllers_one_acts_and_the_other_takes_over_when_it_is_killed() {
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    let mut controllers = [
        cluster.spawn_controller("one", &[]),
        cluster.spawn_controller("two", &[]),
    ];
    wait_until("one controller leads", || async {
        let mut leading = 0;
        for controller in &controllers {
            leading += usize::from(controller.leads().await);
        }
        leading == 1
    })
    .await;
    let leader = if controllers[0].leads().await { 0 } else { 1 };
    let standby = 1 - leader;

    let first = cluster
        .put_spec("web/a", &json!({"cmd": "sleep 1000"}))
        .await;
    cluster.wait_running("web/a", first).await;
    let standby_metrics = controllers[standby].metrics().await.unwrap();
    assert_eq!(
        metric_sum(&standby_metrics, "theseus_controller_reconciles_total", ""),
        0.0,
        "the standby reconciled"
    );
    assert_eq!(
        metric_sum(
            &standby_metrics,
            "theseus_controller_marathon_requests_total",
            ""
        ),
        0.0,
        "the standby called Marathon"
    );

    controllers[leader].kill();
    wait_until("the standby takes over", || controllers[standby].leads()).await;
    let second = cluster
        .put_spec("web/b", &json!({"cmd": "sleep 1000"}))
        .await;
    cluster.wait_running("web/b", second).await;
    cluster.wait_running("web/a", first).await;
    assert_eq!(cluster.apps().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_stopped_with_sigterm_hands_leadership_over_without_waiting_for_its_lease() {
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    // Leases far longer than the test's deadline: only a released lease lets the other lead.
    let mut first = cluster.spawn_controller_with_lease("first", "600s");
    wait_until("the first controller leads", || first.leads()).await;
    let second = cluster.spawn_controller_with_lease("second", "600s");
    let revision = cluster.put_spec(KEY, &json!({"cmd": "sleep 1000"})).await;
    cluster.wait_running(KEY, revision).await;

    assert!(first.terminate().success(), "a clean shutdown exits 0");
    wait_until("the second controller leads", || second.leads()).await;
    let revision = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    cluster.wait_running(KEY, revision).await;
}

/// Marathon requests the controller made, by route template (`/v2/events`, ...).
fn requests_by_route(
    controller: &theseus_controllers::controller::Controller,
) -> Vec<(String, f64)> {
    let text = controller.metrics().encode();
    let mut routes: std::collections::BTreeMap<String, f64> = Default::default();
    for line in text
        .lines()
        .filter(|line| line.starts_with("theseus_controller_marathon_requests_total{"))
    {
        let Some(route) = line
            .split("route=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *routes.entry(route.to_owned()).or_default() += value;
    }
    routes.into_iter().collect()
}

fn minus(after: &[(String, f64)], before: &[(String, f64)]) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(route, count)| {
            let was = before
                .iter()
                .find(|(r, _)| r == route)
                .map_or(0.0, |(_, c)| *c);
            (route.clone(), count - was)
        })
        .filter(|(_, count)| *count > 0.0)
        .collect()
}

/// During an outage the only requests are the event stream's reconnection attempts, however
/// many keys wait; when Marathon answers again every waiting key converges at once, each
/// created once. (`THESEUS_OUTAGE_KEYS` sets how many keys change during the outage, and
/// `THESEUS_OUTAGE_SECONDS` how long it lasts at least, for measuring.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_costs_only_reconnection_attempts_and_every_waiting_key_converges_after_it() {
    let keys: usize = std::env::var("THESEUS_OUTAGE_KEYS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200);
    let cluster = Cluster::start_with(ExecutorKind::Sim).await;
    let controller = cluster.controller().await;
    let first = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    cluster.wait_running(KEY, first).await;

    cluster.marathon.stop_api().await;
    let canary = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    cluster
        .wait_status(KEY, "says Marathon is unavailable", |s| {
            s.observed_revision == canary
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| c.reason == "MarathonUnavailable")
        })
        .await;
    let outage_began = tokio::time::Instant::now();
    let before = requests_by_route(&controller);
    for i in 0..keys {
        cluster
            .put_spec(
                &format!("outage/n{i:04}"),
                &json!({"cmd": "sleep 1000", "instances": 1}),
            )
            .await;
    }
    wait_until("every changed key says Marathon is unavailable", || async {
        let listed = cluster.store.list("/observed/outage/").await.unwrap();
        listed
            .entries
            .iter()
            .filter_map(|entry| entry.json::<theseus::api::DeploymentStatus>().ok())
            .filter(|s| {
                s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| c.reason == "MarathonUnavailable")
            })
            .count()
            == keys
    })
    .await;
    // For measuring: hold the outage this long (`THESEUS_OUTAGE_SECONDS`, default 0).
    let hold = std::env::var("THESEUS_OUTAGE_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    tokio::time::sleep_until(outage_began + hold).await;
    let during = minus(&requests_by_route(&controller), &before);
    let outage = outage_began.elapsed();

    cluster.marathon.start_api().await.unwrap();
    let returned = tokio::time::Instant::now();
    cluster.wait_running(KEY, canary).await;
    wait_until("every changed key runs", || async {
        cluster.apps().await.len() == keys + 1
            && cluster
                .store
                .list("/observed/outage/")
                .await
                .unwrap()
                .entries
                .iter()
                .filter_map(|entry| entry.json::<theseus::api::DeploymentStatus>().ok())
                .filter(|s| s.phase == theseus::api::Phase::Running)
                .count()
                == keys
    })
    .await;
    eprintln!(
        "{keys} keys changed during a {outage:?} outage: requests {during:?}; \
         all converged {:?} after Marathon returned",
        returned.elapsed()
    );
    assert!(
        during.iter().all(|(route, _)| route == "/v2/events"),
        "only reconnection attempts while Marathon is down: {during:?}"
    );
    let metrics = controller.metrics().encode();
    assert_eq!(
        metric_sum(
            &metrics,
            "theseus_controller_marathon_writes_total",
            "action=\"create\""
        ),
        keys as f64 + 1.0,
        "each app created once"
    );
    controller.shutdown().await;
}
