//! Tasks as real processes: reachability, environment, failures and replacement, health-check
//! kills, rolling upgrades within their strategy, Docker without an engine, API outages, and
//! nothing left running after shutdown.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{DEADLINE, Lm, alive, start, wait_for};
use localmarathon::ExecutorKind;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const HTTP_SERVER: &str =
    "env > env.txt; echo ok > health; exec python3 -m http.server --bind \"$HOST\" \"$PORT0\"";

async fn create(lm: &Lm, body: Value) -> Value {
    let (status, app) = lm.post("/v2/apps", body).await;
    assert_eq!(status, 201, "{app:#}");
    app
}

/// Processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // fields[0] is the state, [2] the process group.
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

async fn get_text(lm: &Lm, url: &str) -> Option<String> {
    let r = lm.http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

#[tokio::test]
async fn a_task_serving_http_is_reachable_at_the_host_and_port_its_task_reports() {
    let lm = start(ExecutorKind::Process).await;
    create(
        &lm,
        json!({"id": "/web/server", "cmd": HTTP_SERVER, "cpus": 0.1, "mem": 32,
        "labels": {"team": "core"}, "env": {"GREETING": "hello"},
        "portDefinitions": [{"port": 0, "name": "http"}]}),
    )
    .await;
    let tasks = lm.wait_running("/web/server", 1).await;
    let task = &tasks[0];
    let host = task["host"].as_str().unwrap();
    let port = task["ports"][0].as_u64().unwrap();
    assert!(
        host.starts_with("127.0.0.1"),
        "agents own loopback addresses: {host}"
    );
    assert!((31000..=31999).contains(&port));
    let url = format!("http://{host}:{port}/env.txt");
    let env = wait_for(DEADLINE, || get_text(&lm, &url))
        .await
        .expect("task serves HTTP");
    let env: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let service_port = task["servicePorts"][0].as_u64().unwrap().to_string();
    assert_eq!(env["HOST"], host);
    assert_eq!(env["PORT0"], port.to_string());
    assert_eq!(env["PORT"], port.to_string());
    assert_eq!(env["PORTS"], port.to_string());
    assert_eq!(env["PORT_HTTP"], port.to_string());
    assert_eq!(
        env[format!("PORT_{service_port}").as_str()],
        port.to_string()
    );
    assert_eq!(env["MARATHON_APP_ID"], "/web/server");
    assert_eq!(
        env["MARATHON_APP_VERSION"],
        task["version"].as_str().unwrap()
    );
    assert_eq!(env["MARATHON_APP_LABELS"], "TEAM");
    assert_eq!(env["MARATHON_APP_LABEL_TEAM"], "core");
    assert_eq!(env["MARATHON_APP_RESOURCE_CPUS"], "0.1");
    assert_eq!(env["MARATHON_APP_RESOURCE_MEM"], "32.0");
    assert_eq!(env["MARATHON_APP_RESOURCE_DISK"], "0.0");
    assert_eq!(env["MESOS_TASK_ID"], task["id"].as_str().unwrap());
    assert_eq!(env["GREETING"], "hello");
    // The sandbox holds the task's stdout and stderr.
    let snapshot = lm.handle.tasks().into_iter().next().unwrap();
    assert!(snapshot.sandbox.join("stdout").exists());
    assert!(snapshot.sandbox.join("stderr").exists());
    assert_eq!(env["MESOS_SANDBOX"], snapshot.sandbox.display().to_string());
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_killed_process_fails_its_task_and_a_replacement_starts() {
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    create(
        &lm,
        json!({"id": "/victim", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16,
        "backoffSeconds": 0}),
    )
    .await;
    let tasks = lm.wait_running("/victim", 1).await;
    let id = tasks[0]["id"].as_str().unwrap().to_string();
    let pid = lm.handle.task_pid(&id).expect("pid known");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let failed = events
        .wait("TASK_FAILED", |t, d| {
            t == "status_update_event" && d["taskStatus"] == "TASK_FAILED"
        })
        .await;
    assert_eq!(failed["taskId"], id.as_str());
    assert_eq!(failed["message"], "Command terminated with signal Killed");
    assert_eq!(failed["appId"], "/victim");
    let replacement = wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/victim").await;
        tasks
            .into_iter()
            .find(|t| t["id"] != id.as_str() && t["state"] == "TASK_RUNNING")
    })
    .await
    .expect("replacement running");
    // The instance is relaunched: same instance id, next incarnation.
    let instance = id.rsplit_once("._app.").unwrap().0;
    assert_eq!(replacement["id"], format!("{instance}._app.2").as_str());
    let (_, app) = lm.get("/v2/apps/victim").await;
    assert_eq!(app["app"]["lastTaskFailure"]["taskId"], id.as_str());
    assert_eq!(app["app"]["lastTaskFailure"]["state"], "TASK_FAILED");
    assert!(!alive(pid));
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn an_unhealthy_task_is_killed_and_replaced() {
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    create(
        &lm,
        json!({"id": "/sick", "cmd": HTTP_SERVER, "cpus": 0.1, "mem": 32, "backoffSeconds": 0,
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
            "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 2,
            "maxConsecutiveFailures": 2}]}),
    )
    .await;
    let healthy = wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/sick").await;
        let t = tasks.first()?.clone();
        (t["healthCheckResults"][0]["alive"] == true).then_some(t)
    })
    .await
    .expect("task becomes healthy");
    assert!(healthy["healthCheckResults"][0]["firstSuccess"].is_string());
    let (_, app) = lm.get("/v2/apps/sick").await;
    assert_eq!(app["app"]["tasksHealthy"], 1);
    let id = healthy["id"].as_str().unwrap().to_string();
    // Make it unhealthy: the health page disappears.
    let snapshot = lm.handle.tasks().into_iter().find(|t| t.id == id).unwrap();
    std::fs::remove_file(snapshot.sandbox.join("health")).unwrap();
    let killed = events
        .wait("unhealthy kill", |t, d| {
            t == "unhealthy_instance_kill_event" && d["taskId"] == id.as_str()
        })
        .await;
    assert!(
        killed["reason"].as_str().unwrap().contains("404"),
        "{killed}"
    );
    events
        .wait("health_status_changed_event", |t, d| {
            t == "health_status_changed_event" && d["alive"] == false
        })
        .await;
    events
        .wait("TASK_KILLED", |t, d| {
            t == "status_update_event"
                && d["taskId"] == id.as_str()
                && d["taskStatus"] == "TASK_KILLED"
        })
        .await;
    let replacement = wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/sick").await;
        tasks
            .into_iter()
            .find(|t| t["id"] != id.as_str() && t["state"] == "TASK_RUNNING")
    })
    .await;
    assert!(replacement.is_some(), "replacement started");
    lm.handle.shutdown().await;
}

/// Instance conditions from `instance_changed_event`s, replayed in order, checking the upgrade
/// bounds after every event once the restart has begun.
fn check_rolling_bounds(
    events: &[(String, Value)],
    app: &str,
    min_healthy: usize,
    max_capacity: usize,
    from: usize,
) {
    let mut condition: BTreeMap<String, String> = BTreeMap::new();
    for (i, (kind, data)) in events.iter().enumerate() {
        if kind != "instance_changed_event" || data["runSpecId"] != app {
            continue;
        }
        let instance = data["instanceId"].as_str().unwrap().to_string();
        let c = data["condition"].as_str().unwrap().to_string();
        if matches!(c.as_str(), "Killed" | "Failed" | "Finished" | "Error") {
            condition.remove(&instance);
        } else {
            condition.insert(instance, c);
        }
        if i < from {
            continue;
        }
        let running = condition.values().filter(|c| *c == "Running").count();
        let live = condition.len();
        assert!(
            running >= min_healthy,
            "event {i}: {running} running < {min_healthy}: {condition:?}"
        );
        assert!(
            live <= max_capacity,
            "event {i}: {live} live > {max_capacity}: {condition:?}"
        );
    }
}

#[tokio::test]
async fn a_rolling_update_keeps_within_its_upgrade_strategy() {
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    create(
        &lm,
        json!({"id": "/roll", "cmd": "exec sleep 1000", "instances": 4, "cpus": 0.1, "mem": 16,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}}),
    )
    .await;
    let before: BTreeSet<String> = lm
        .wait_running("/roll", 4)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let start_index = events.snapshot().len();
    let (status, result) = lm
        .put("/v2/apps/roll", json!({"cmd": "exec sleep 2000"}))
        .await;
    assert_eq!(status, 200);
    let deployment = result["deploymentId"].as_str().unwrap().to_string();
    events
        .wait("deployment_success", |t, d| {
            t == "deployment_success" && d["id"] == deployment.as_str()
        })
        .await;
    let tasks = lm.wait_running("/roll", 4).await;
    for t in &tasks {
        assert!(
            !before.contains(t["id"].as_str().unwrap()),
            "every task replaced"
        );
        assert_eq!(t["version"], result["version"]);
    }
    // ceil(4 x 0.5) = 2 running at least; floor(4 x 1.25) = 5 instances at most.
    check_rolling_bounds(&events.snapshot(), "/roll", 2, 5, start_index);
    let steps = events.snapshot();
    let info = steps
        .iter()
        .find(|(t, d)| t == "deployment_info" && d["plan"]["id"] == deployment.as_str())
        .expect("deployment_info");
    assert_eq!(
        info.1["currentStep"]["actions"][0]["action"],
        "RestartApplication"
    );
    assert_eq!(
        info.1["plan"]["steps"][0]["actions"][0]["action"],
        "RestartApplication"
    );
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn an_upgrade_waits_for_new_tasks_to_pass_their_health_checks() {
    let lm = start(ExecutorKind::Process).await;
    create(
        &lm,
        json!({"id": "/gated", "cmd": HTTP_SERVER, "instances": 2, "cpus": 0.1, "mem": 32,
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5},
        "healthChecks": [{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 0,
            "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 0}]}),
    )
    .await;
    let ok = wait_for(DEADLINE, || async {
        let (_, app) = lm.get("/v2/apps/gated").await;
        (app["app"]["tasksHealthy"] == 2 && app["app"]["deployments"] == json!([])).then_some(())
    })
    .await;
    assert!(ok.is_some(), "v1 healthy");
    let old: BTreeSet<String> = lm
        .tasks("/gated")
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    // v2 listens nowhere: its TCP check can never pass.
    let (status, _) = lm
        .put("/v2/apps/gated", json!({"cmd": "exec sleep 1000"}))
        .await;
    assert_eq!(status, 200);
    let unhealthy_new = wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/gated").await;
        tasks.into_iter().find(|t| {
            !old.contains(t["id"].as_str().unwrap()) && t["healthCheckResults"][0]["alive"] == false
        })
    })
    .await;
    assert!(
        unhealthy_new.is_some(),
        "a new task runs and fails its check"
    );
    // Both old tasks still run and the deployment waits.
    let tasks = lm.tasks("/gated").await;
    let old_running = tasks
        .iter()
        .filter(|t| old.contains(t["id"].as_str().unwrap()) && t["state"] == "TASK_RUNNING")
        .count();
    assert_eq!(old_running, 2);
    assert_eq!(
        tasks.len(),
        3,
        "maximumOverCapacity 0.5 of 2 allows one extra"
    );
    let (_, deployments) = lm.get("/v2/deployments").await;
    assert_eq!(
        deployments[0]["currentActions"][0]["action"],
        "RestartApplication"
    );
    let (_, app) = lm.get("/v2/apps/gated").await;
    assert_eq!(app["app"]["tasksUnhealthy"], 1);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_docker_image_app_fails_with_a_clear_message_without_an_engine() {
    let lm = common::start_with(
        localmarathon::LocalMarathon::builder()
            .executor(ExecutorKind::Process)
            .docker_host("unix:///nonexistent/docker.sock"),
    )
    .await;
    let events = lm.events().await;
    create(
        &lm,
        json!({"id": "/img", "instances": 1, "cpus": 0.1, "mem": 16,
        "container": {"type": "DOCKER", "docker": {"image": "nginx:1.25"},
            "portMappings": [{"containerPort": 80, "hostPort": 0, "name": "http"}]},
        "networks": [{"mode": "container/bridge"}]}),
    )
    .await;
    let failed = events
        .wait("TASK_FAILED", |t, d| {
            t == "status_update_event" && d["taskStatus"] == "TASK_FAILED"
        })
        .await;
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("nginx:1.25") && message.contains("no Docker engine"),
        "{message}"
    );
    let (_, app) = lm.get("/v2/apps/img").await;
    assert_eq!(app["app"]["lastTaskFailure"]["message"], message);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn the_api_can_stop_and_come_back_while_tasks_keep_running() {
    let lm = start(ExecutorKind::Process).await;
    create(
        &lm,
        json!({"id": "/steady", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}),
    )
    .await;
    let tasks = lm.wait_running("/steady", 1).await;
    let id = tasks[0]["id"].as_str().unwrap().to_string();
    let pid = lm.handle.task_pid(&id).unwrap();
    lm.handle.stop_api().await;
    assert!(
        lm.http.get(lm.url("/ping")).send().await.is_err(),
        "API is down"
    );
    assert!(alive(pid), "the task survives the outage");
    lm.handle.start_api().await.unwrap();
    let tasks = lm.tasks("/steady").await;
    assert_eq!(tasks[0]["id"], id.as_str());
    assert_eq!(tasks[0]["state"], "TASK_RUNNING");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_no_process_behind_even_stubborn_ones() {
    let lm = start(ExecutorKind::Process).await;
    // A task that ignores SIGTERM and has children of its own.
    create(
        &lm,
        json!({"id": "/stubborn", "cmd": "trap '' TERM; sleep 1000 & sleep 1000 & wait",
        "instances": 2, "cpus": 0.1, "mem": 16, "taskKillGracePeriodSeconds": 1}),
    )
    .await;
    create(
        &lm,
        json!({"id": "/plain", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}),
    )
    .await;
    lm.wait_running("/stubborn", 2).await;
    lm.wait_running("/plain", 1).await;
    let groups: Vec<u32> = lm.handle.tasks().iter().filter_map(|t| t.pid).collect();
    assert_eq!(groups.len(), 3);
    let members = wait_for(DEADLINE, || async {
        let all: Vec<u32> = groups.iter().flat_map(|g| group_members(*g)).collect();
        (all.len() >= 7).then_some(all)
    })
    .await
    .expect("tasks and their children are up");
    lm.handle.shutdown().await;
    let survivors: Vec<u32> = members.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "still running after shutdown: {survivors:?}"
    );
}

#[tokio::test]
async fn a_dropped_handle_kills_its_tasks() {
    let lm = start(ExecutorKind::Process).await;
    create(
        &lm,
        json!({"id": "/dropped", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}),
    )
    .await;
    let tasks = lm.wait_running("/dropped", 1).await;
    let pid = lm
        .handle
        .task_pid(tasks[0]["id"].as_str().unwrap())
        .unwrap();
    drop(lm);
    let gone = wait_for(DEADLINE, || async { (!alive(pid)).then_some(()) }).await;
    assert!(gone.is_some(), "task {pid} outlived a dropped handle");
}

#[tokio::test]
async fn a_deleted_app_is_gone_at_once_while_its_tasks_are_killed() {
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    let body = json!({"id": "/slow", "cmd": "trap '' TERM; touch trapped; sleep 1000 & wait",
        "cpus": 0.1, "mem": 16, "taskKillGracePeriodSeconds": 3});
    create(&lm, body.clone()).await;
    lm.wait_running("/slow", 1).await;
    let sandbox = lm.handle.tasks()[0].sandbox.clone();
    let trapped = wait_for(DEADLINE, || async {
        sandbox.join("trapped").exists().then_some(())
    })
    .await;
    assert!(
        trapped.is_some(),
        "the task ignores SIGTERM before it is deleted"
    );
    let (status, _) = lm.delete("/v2/apps/slow").await;
    assert_eq!(status, 200);
    let (status, _) = lm.get("/v2/apps/slow").await;
    assert_eq!(status, 404, "the app leaves the group tree at once");
    let (_, list) = lm.get("/v2/apps").await;
    assert_eq!(list["apps"], json!([]));
    events
        .wait("TASK_KILLING", |t, d| {
            t == "status_update_event" && d["taskStatus"] == "TASK_KILLING"
        })
        .await;
    let (_, tasks) = lm.get("/v2/tasks").await;
    assert_eq!(
        tasks["tasks"][0]["state"], "TASK_KILLING",
        "the task is still being killed"
    );
    // The id is locked by the stop until forced.
    let (status, locked) = lm.post("/v2/apps", body.clone()).await;
    assert_eq!(status, 409, "{locked}");
    assert!(locked["deployments"][0]["id"].is_string());
    let (status, _) = lm.post("/v2/apps?force=true", body).await;
    assert_eq!(status, 201);
    lm.wait_running("/slow", 1).await;
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn command_health_checks_run_in_the_task_sandbox_and_environment() {
    let lm = start(ExecutorKind::Process).await;
    create(&lm, json!({"id": "/cmdcheck", "cmd": "touch ok; exec sleep 1000", "cpus": 0.1, "mem": 16,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f ok && test -n \"$MESOS_TASK_ID\""},
            "gracePeriodSeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 5, "maxConsecutiveFailures": 0}]}))
    .await;
    let healthy = wait_for(DEADLINE, || async {
        let (_, app) = lm.get("/v2/apps/cmdcheck").await;
        (app["app"]["tasksHealthy"] == 1).then_some(())
    })
    .await;
    assert!(healthy.is_some(), "COMMAND check passes");
    let sandbox = lm.handle.tasks()[0].sandbox.clone();
    std::fs::remove_file(sandbox.join("ok")).unwrap();
    let unhealthy = wait_for(DEADLINE, || async {
        let (_, app) = lm.get("/v2/apps/cmdcheck").await;
        let a = &app["app"];
        (a["tasksUnhealthy"] == 1 && a["tasksHealthy"] == 0).then(|| a["tasks"][0].clone())
    })
    .await
    .expect("COMMAND check fails once the file is gone");
    let result = &unhealthy["healthCheckResults"][0];
    assert_eq!(result["alive"], false);
    assert!(result["consecutiveFailures"].as_u64().unwrap() >= 1);
    assert!(result["lastFailureCause"].is_string());
    assert_eq!(
        unhealthy["state"], "TASK_RUNNING",
        "maxConsecutiveFailures 0 never kills"
    );
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_command_that_exits_at_once_is_relaunched_with_backoff_not_in_a_loop() {
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    create(
        &lm,
        json!({"id": "/oneshot", "cmd": "exit 0", "cpus": 0.1, "mem": 16,
        "backoffSeconds": 3600, "maxLaunchDelaySeconds": 3600}),
    )
    .await;
    events
        .wait("TASK_FINISHED", |t, d| {
            t == "status_update_event" && d["taskStatus"] == "TASK_FINISHED"
        })
        .await;
    let delayed = wait_for(DEADLINE, || async {
        let (_, queue) = lm.get("/v2/queue").await;
        let entry = queue["queue"].get(0)?.clone();
        (entry["delay"]["timeLeftSeconds"].as_u64()? > 3000).then_some(entry)
    })
    .await;
    assert!(delayed.is_some(), "the relaunch waits for the backoff");
    let finished = events
        .snapshot()
        .iter()
        .filter(|(t, d)| t == "status_update_event" && d["taskStatus"] == "TASK_FINISHED")
        .count();
    assert_eq!(finished, 1);
    let (_, app) = lm.get("/v2/apps/oneshot").await;
    assert!(
        app["app"].get("lastTaskFailure").is_none(),
        "finishing is not a failure"
    );
    lm.handle.shutdown().await;
}
