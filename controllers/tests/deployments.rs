//! The deployments reconciler end to end: real etcd, localmarathon running real processes,
//! the controller in process. Every test converges through events alone (the periodic resync
//! is off), and counts Marathon writes to show nothing was written twice.

mod support;

use serde_json::json;
use support::{Cluster, metric_sum, wait_until};
use theseus::api::{ConditionKind, Phase};
use theseus::marathon::{App, AppId};
use theseus_controllers::controller::Controller;

const KEY: &str = "web/dev";
const APP: &str = "/web/dev";

/// Marathon writes the controller made, by action (`create`, `update`, `scale`, `delete`);
/// `""` for all.
fn writes(controller: &Controller, action: &str) -> f64 {
    let labels = if action.is_empty() {
        String::new()
    } else {
        format!("action=\"{action}\"")
    };
    metric_sum(
        &controller.metrics().encode(),
        "theseus_controller_marathon_writes_total",
        &labels,
    )
}

/// The environment of a running process.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_put_with_etcdctl_becomes_a_running_app_mapped_as_designed() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let revision = cluster.etcdctl_put(
        KEY,
        &json!({"cmd": "sleep 1000", "instances": 2, "ports": {"http": 8080, "admin": 9090},
                "environment": {"GREETING": "hello"}, "labels": ["eu", "canary"]}),
    );

    let status = cluster.wait_running(KEY, revision).await;
    assert_eq!(status.instances.running, 2);
    assert_eq!(status.app_id.as_deref(), Some(APP));
    assert!(status.condition(ConditionKind::Valid).unwrap().status);
    assert!(status.condition(ConditionKind::Available).unwrap().status);

    let app = cluster.app(APP).await.unwrap();
    assert_eq!(app.label("THESEUS_MANAGED"), Some("true"));
    assert_eq!(app.label("THESEUS_SERVICE"), Some("web"));
    assert_eq!(app.label("THESEUS_DEPLOYMENT"), Some("dev"));
    assert_eq!(app.label("THESEUS_SPEC_HASH").map(str::len), Some(64));
    let names: Vec<String> = app
        .port_definitions
        .unwrap()
        .into_iter()
        .map(|p| p.name.unwrap())
        .collect();
    assert_eq!(names, ["admin", "http"], "ports in name order");

    let tasks = cluster.running_tasks(APP);
    assert_eq!(tasks.len(), 2);
    let env = environ(tasks[0].pid.unwrap());
    for expected in [
        "GREETING=hello".to_owned(),
        "SERVICE_NAME=web".to_owned(),
        "DEPLOYMENT_NAME=dev".to_owned(),
        "LABELS=eu,canary".to_owned(),
        format!("ETCD_ENDPOINTS={}", cluster.etcd.endpoint()),
        "THESEUS_PREFIX=".to_owned(),
    ] {
        assert!(env.contains(&expected), "{expected} missing from {env:?}");
    }
    assert_eq!(writes(&controller, "create"), 1.0);
    assert_eq!(writes(&controller, ""), 1.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_spec_rolls_the_app_and_the_new_version_runs() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let first = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    let before = cluster.wait_running(KEY, first).await;
    let old_tasks: Vec<String> = cluster
        .running_tasks(APP)
        .into_iter()
        .map(|t| t.id)
        .collect();

    let second = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 2000", "instances": 2}))
        .await;
    let after = cluster.wait_running(KEY, second).await;

    let app = cluster.app(APP).await.unwrap();
    assert_eq!(app.cmd.as_deref(), Some("sleep 2000"));
    assert_ne!(
        after.app_version, before.app_version,
        "a new version was deployed"
    );
    assert_eq!(after.app_version, app.version.map(|v| v.to_string()));
    let new_tasks = cluster.running_tasks(APP);
    assert_eq!(new_tasks.len(), 2);
    assert!(
        new_tasks.iter().all(|t| !old_tasks.contains(&t.id)),
        "every task was replaced"
    );
    assert_eq!(writes(&controller, "update"), 1.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instances_only_change_scales_without_restarting_tasks() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let first = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    cluster.wait_running(KEY, first).await;
    let original = cluster.running_tasks(APP).pop().unwrap();

    let second = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 3}))
        .await;
    let status = cluster.wait_running(KEY, second).await;
    assert_eq!(status.instances.running, 3);
    let tasks = cluster.running_tasks(APP);
    assert_eq!(tasks.len(), 3);
    let kept = tasks
        .iter()
        .find(|t| t.id == original.id)
        .expect("the first task still runs");
    assert_eq!(kept.pid, original.pid, "the same process, not a restart");
    assert_eq!(writes(&controller, "scale"), 1.0);
    assert_eq!(writes(&controller, "update"), 0.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_spec_deletes_the_app_and_its_status() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let revision = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    cluster.wait_running(KEY, revision).await;

    cluster.delete_spec(KEY).await;
    wait_until("the app is gone from Marathon", || async {
        cluster.app(APP).await.is_none()
    })
    .await;
    wait_until("the status is removed", || async {
        cluster.status(KEY).await.is_none()
    })
    .await;
    wait_until("the tasks have stopped", || async {
        cluster.running_tasks(APP).is_empty()
    })
    .await;
    assert_eq!(writes(&controller, "delete"), 1.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_by_hand_in_marathon_are_put_back() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let revision = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    cluster.wait_running(KEY, revision).await;
    let id = AppId::parse(APP).unwrap();

    // Someone scales the app in Marathon's UI.
    let mut scale = App::new(id.clone());
    scale.instances = Some(4);
    cluster.client.patch_app(&id, &scale, true).await.unwrap();
    wait_until("the instances are put back", || async {
        cluster.app(APP).await.unwrap().instances == Some(2)
            && cluster.running_tasks(APP).len() == 2
    })
    .await;

    // Someone edits the command, leaving theseus's labels as they were.
    let mut edit = App::new(id.clone());
    edit.cmd = Some("sleep 3000".into());
    cluster.client.patch_app(&id, &edit, true).await.unwrap();
    wait_until("the command is put back", || async {
        cluster.app(APP).await.unwrap().cmd.as_deref() == Some("sleep 1000")
    })
    .await;
    cluster.wait_running(KEY, revision).await;
    assert_eq!(writes(&controller, "scale"), 1.0);
    assert_eq!(writes(&controller, "update"), 1.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_is_reported_with_every_error_and_leaves_the_app_untouched() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let valid = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 2}))
        .await;
    let running = cluster.wait_running(KEY, valid).await;
    let app_before = cluster.app(APP).await.unwrap();
    let mut tasks_before: Vec<(String, Option<u32>)> = cluster
        .running_tasks(APP)
        .into_iter()
        .map(|t| (t.id, t.pid))
        .collect();
    tasks_before.sort();

    let invalid = cluster
        .put_spec(
            KEY,
            &json!({"cmd": "sleep 1", "instances": 5, "cpus": -1, "colour": "red"}),
        )
        .await;
    let status = cluster
        .wait_status(KEY, "is Invalid", |s| {
            s.observed_revision == invalid && s.phase == Phase::Invalid
        })
        .await;
    let valid_condition = status.condition(ConditionKind::Valid).unwrap();
    assert!(!valid_condition.status);
    for pointer in ["/cpus", "/colour"] {
        assert!(
            valid_condition.message.contains(pointer),
            "{}",
            valid_condition.message
        );
    }
    assert_eq!(status.app_version, running.app_version);
    assert_eq!(
        status.instances.running, 2,
        "the running app is still shown"
    );

    let app_after = cluster.app(APP).await.unwrap();
    assert_eq!(app_after.version, app_before.version);
    assert_eq!(app_after.cmd, app_before.cmd);
    assert_eq!(app_after.instances, Some(2));
    let mut tasks_after: Vec<(String, Option<u32>)> = cluster
        .running_tasks(APP)
        .into_iter()
        .map(|t| (t.id, t.pid))
        .collect();
    tasks_after.sort();
    assert_eq!(tasks_after, tasks_before);
    assert_eq!(writes(&controller, ""), 1.0, "only the first create");
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_theseus_does_not_own_is_never_changed_or_deleted() {
    let cluster = Cluster::start().await;
    let id = AppId::parse(APP).unwrap();
    let mut theirs = App::new(id.clone());
    theirs.cmd = Some("sleep 1000".into());
    theirs.instances = Some(1);
    cluster.client.create_app(&theirs).await.unwrap();
    wait_until("their app runs", || async {
        cluster.running_tasks(APP).len() == 1
    })
    .await;
    let before = cluster.app(APP).await.unwrap();

    let controller = cluster.controller().await;
    let revision = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 2000", "instances": 3}))
        .await;
    let status = cluster
        .wait_status(KEY, "is Failed", |s| {
            s.observed_revision == revision && s.phase == Phase::Failed
        })
        .await;
    let progressing = status.condition(ConditionKind::Progressing).unwrap();
    assert_eq!(progressing.reason, "AppNotOwned");
    assert!(progressing.message.contains(APP), "{}", progressing.message);

    cluster.delete_spec(KEY).await;
    wait_until("the status is removed", || async {
        cluster.status(KEY).await.is_none()
    })
    .await;
    let after = cluster.app(APP).await.expect("their app still exists");
    assert_eq!(after.version, before.version);
    assert_eq!(after.cmd.as_deref(), Some("sleep 1000"));
    assert_eq!(after.instances, Some(1));
    assert_eq!(cluster.running_tasks(APP).len(), 1);
    assert_eq!(writes(&controller, ""), 0.0);
    controller.shutdown().await;
}

/// A spec whose tasks are healthy only while `flag` exists (a COMMAND check every two seconds that
/// never kills), so a test can hold a deployment open by removing the file.
fn healthy_while(flag: &std::path::Path, environment: serde_json::Value) -> serde_json::Value {
    json!({
        "cmd": "sleep 1000", "instances": 1, "environment": environment,
        "health_checks": [{"protocol": "COMMAND", "command": format!("test -f {}", flag.display()),
            "grace_period_seconds": 0, "interval_seconds": 2, "timeout_seconds": 1,
            "max_consecutive_failures": 0}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_someone_elses_deployment_is_waited_out_and_reported() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let first = cluster
        .put_spec(KEY, &healthy_while(&flag, json!({"A": "0"})))
        .await;
    cluster.wait_running(KEY, first).await;

    // Someone restarts the app in Marathon, and its new task cannot become healthy.
    std::fs::remove_file(&flag).unwrap();
    let id = AppId::parse(APP).unwrap();
    let theirs = cluster.client.restart_app(&id, false).await.unwrap();

    let second = cluster
        .put_spec(KEY, &healthy_while(&flag, json!({"A": "1"})))
        .await;
    let status = cluster
        .wait_status(KEY, "waits for their deployment", |s| {
            s.observed_revision == second
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| c.reason == "WaitingForDeployment")
        })
        .await;
    let message = &status
        .condition(ConditionKind::Progressing)
        .unwrap()
        .message;
    assert!(message.contains(theirs.deployment_id.as_str()), "{message}");
    assert_eq!(
        writes(&controller, "update"),
        0.0,
        "their deployment was not overridden"
    );

    // Their deployment finishes; the spec goes in after it.
    std::fs::write(&flag, "").unwrap();
    cluster.wait_running(KEY, second).await;
    let env = cluster.app(APP).await.unwrap().env.unwrap();
    assert_eq!(env.value("A"), Some("1"));
    assert_eq!(writes(&controller, "update"), 1.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_spec_overrides_the_controllers_own_deployment_in_progress() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    let first = cluster
        .put_spec(KEY, &healthy_while(&flag, json!({"A": "0"})))
        .await;
    cluster.wait_running(KEY, first).await;

    // The controller's rolling update cannot finish: its new task stays unhealthy.
    std::fs::remove_file(&flag).unwrap();
    let second = cluster
        .put_spec(KEY, &healthy_while(&flag, json!({"A": "1"})))
        .await;
    let deploying = cluster
        .wait_status(KEY, "deploys revision two", |s| {
            s.observed_revision == second && s.phase == Phase::Deploying
        })
        .await;
    let ours = deploying.deployment_ids.clone();
    let in_marathon: Vec<String> = cluster
        .client
        .deployments()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert!(
        ours.iter().all(|d| in_marathon.contains(d)),
        "the controller's deployment {ours:?} must still hold the app: {in_marathon:?}"
    );

    let third = cluster
        .put_spec(KEY, &healthy_while(&flag, json!({"A": "2"})))
        .await;
    cluster
        .wait_status(KEY, "deploys revision three", |s| {
            s.observed_revision == third
                && s.phase == Phase::Deploying
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| c.status)
        })
        .await;
    std::fs::write(&flag, "").unwrap();
    cluster.wait_running(KEY, third).await;
    let env = cluster.app(APP).await.unwrap().env.unwrap();
    assert_eq!(env.value("A"), Some("2"));
    assert_eq!(
        writes(&controller, "update"),
        2.0,
        "one update per spec, the second forced"
    );
    controller.shutdown().await;
}

/// The status of `key` if it decodes (someone else may have written garbage there).
async fn readable_status(cluster: &Cluster, key: &str) -> Option<theseus::api::DeploymentStatus> {
    let entry = cluster
        .store
        .get(&format!("/observed/{key}/status"))
        .await
        .unwrap()?;
    entry.json().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_written_by_someone_else_are_put_right_within_the_term() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let revision = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    let running = cluster.wait_running(KEY, revision).await;
    let status_key = |key: &str| format!("/observed/{key}/status");

    // Garbage over the status: replaced by the status it should be.
    cluster
        .store
        .put(&status_key(KEY), "[1,2,3]")
        .await
        .unwrap();
    wait_until("the garbage is replaced", || async {
        readable_status(&cluster, KEY).await.is_some_and(|status| {
            status.observed_revision == running.observed_revision && status.phase == Phase::Running
        })
    })
    .await;

    // A plausible but wrong status: replaced too.
    let mut wrong = running.clone();
    wrong.phase = Phase::Failed;
    wrong.observed_revision = 1;
    cluster
        .store
        .put_json(&status_key(KEY), &wrong)
        .await
        .unwrap();
    cluster.wait_running(KEY, revision).await;

    // The status deleted: written again.
    cluster.store.delete(&status_key(KEY)).await.unwrap();
    cluster.wait_running(KEY, revision).await;

    // A status for a deployment that has no /desired key: removed.
    cluster
        .store
        .put_json(&status_key("ghost/dev"), &running)
        .await
        .unwrap();
    wait_until("the ghost's status is removed", || async {
        cluster.status("ghost/dev").await.is_none()
    })
    .await;

    let repairs = |reason: &str| {
        metric_sum(
            &controller.metrics().encode(),
            "theseus_controller_status_repairs_total",
            &format!("reason=\"{reason}\""),
        )
    };
    assert_eq!(repairs("unreadable"), 1.0);
    assert_eq!(
        repairs("foreign_write"),
        2.0,
        "the wrong status and the ghost's"
    );
    assert_eq!(repairs("deleted"), 1.0);
    assert_eq!(
        writes(&controller, ""),
        1.0,
        "only the create reached Marathon"
    );
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_under_desired_that_name_no_deployment_are_counted_and_change_nothing() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let spec = json!({"cmd": "sleep 1000"});
    for key in ["/desired/UPPER/x", "/desired/a/b/c", "/desired/a"] {
        cluster.store.put_json(key, &spec).await.unwrap();
    }
    let revision = cluster.put_spec(KEY, &spec).await;
    cluster.wait_running(KEY, revision).await;
    let invalid = || {
        support::metric(
            &controller.metrics().encode(),
            "theseus_controller_invalid_keys{reflector=\"desired\"}",
        )
    };
    wait_until("the three keys are counted", || async {
        invalid() == Some(3.0)
    })
    .await;
    cluster.store.delete("/desired/a").await.unwrap();
    wait_until("a deleted one is not", || async { invalid() == Some(2.0) }).await;
    assert_eq!(
        cluster.apps().await.len(),
        1,
        "only the valid key has an app"
    );
    assert_eq!(writes(&controller, ""), 1.0);
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_reaches_marathon_only_after_it_is_resumed() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let first = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    cluster.wait_running(KEY, first).await;
    let writes_before = writes(&controller, "");

    let paused = cluster
        .put_spec(
            KEY,
            &json!({"cmd": "sleep 2000", "instances": 3, "paused": true}),
        )
        .await;
    let status = cluster
        .wait_status(KEY, "says it is paused", |s| {
            s.observed_revision == paused
                && s.condition(ConditionKind::Progressing)
                    .is_some_and(|c| !c.status && c.reason == "Paused")
        })
        .await;
    assert!(
        status
            .condition(ConditionKind::Progressing)
            .unwrap()
            .message
            .contains("waits"),
        "{status:#?}"
    );
    let app = cluster.app(APP).await.unwrap();
    assert_eq!(app.instances, Some(1), "the app is left as it was");
    assert_eq!(app.cmd.as_deref(), Some("sleep 1000"));
    assert_eq!(
        writes(&controller, ""),
        writes_before,
        "nothing went to Marathon"
    );

    let resumed = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 2000", "instances": 3}))
        .await;
    cluster.wait_running(KEY, resumed).await;
    let app = cluster.app(APP).await.unwrap();
    assert_eq!(
        (app.instances, app.cmd.as_deref()),
        (Some(3), Some("sleep 2000"))
    );
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_does_not_run_within_its_deadline_fails_and_its_app_stays() {
    let cluster = Cluster::start().await;
    let controller = cluster.controller().await;
    let good = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    let running = cluster.wait_running(KEY, good).await;
    assert!(running.revision_running_at.is_some());

    // A revision that no agent can place never runs (a task that exits at once may be seen
    // running for a moment); nothing else happens after its deadline, so only the
    // controller's own clock can notice.
    let bad = cluster
        .put_spec(
            KEY,
            &json!({"cmd": "sleep 1000", "instances": 1, "cpus": 500,
                    "progress_deadline_seconds": 2, "auto_rollback": false}),
        )
        .await;
    let failed = cluster
        .wait_status(KEY, "fails its deadline", |s| {
            s.observed_revision == bad && s.phase == Phase::Failed
        })
        .await;
    let condition = failed.condition(ConditionKind::Progressing).unwrap();
    assert_eq!(condition.reason, "DeadlineExceeded");
    assert!(
        condition.message.contains(&format!("revision {bad}"))
            && condition.message.contains("within 2 s"),
        "{}",
        condition.message
    );
    assert!(failed.revision_running_at.is_none());
    assert!(
        cluster.app(APP).await.is_some(),
        "a failed revision's app is kept"
    );

    // The next revision starts a clock of its own.
    let fixed = cluster
        .put_spec(KEY, &json!({"cmd": "sleep 1000", "instances": 1}))
        .await;
    let recovered = cluster.wait_running(KEY, fixed).await;
    assert!(recovered.revision_started_at > failed.revision_started_at);
    controller.shutdown().await;
}
