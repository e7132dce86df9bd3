//! localmarathon's answers compared with Marathon's wire format: RAML examples, the app JSON
//! schema, status codes, headers and error bodies. Uses the simulated executor (no processes).

mod common;

use std::collections::BTreeSet;

use common::{DEADLINE, Lm, fixture_json, start, wait_for};
use localmarathon::{ExecutorKind, ExitStatus};
use reqwest::Method;
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Keys of a JSON type according to its RAML-era example, for type comparisons.
fn same_json_type(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Null, _)
            | (_, Value::Null)
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
            | (Value::Array(_), Value::Array(_))
            | (Value::Object(_), Value::Object(_))
    )
}

async fn create(lm: &Lm, body: Value) -> Value {
    let (status, app) = lm.post("/v2/apps", body.clone()).await;
    assert_eq!(status, 201, "{app:#}");
    app
}

#[tokio::test]
async fn creating_an_app_answers_201_with_location_deployment_id_and_the_normalised_app() {
    let lm = start(ExecutorKind::Sim).await;
    let response = lm
        .http
        .post(lm.url("/v2/apps"))
        .json(&json!({"id": "web//api/", "cmd": "sleep 100"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("/v2/apps/web/api"), "{location}");
    let deployment = response.headers()["marathon-deployment-id"]
        .to_str()
        .unwrap()
        .to_string();
    let app: Value = response.json().await.unwrap();
    assert_eq!(app["id"], "/web/api");
    assert_eq!(app["deployments"], json!([{ "id": deployment }]));
    // Marathon 1.10's create answer has counts and deployments, but no `tasks` key.
    assert!(app.get("tasks").is_none(), "{app:#}");
    for count in [
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
    ] {
        assert_eq!(app[count], 0, "{count}");
    }
    // The default port definition got a service port from Marathon's 10000-20000 range.
    let port = app["portDefinitions"][0]["port"].as_u64().unwrap();
    assert!((10000..=20000).contains(&port));
    assert_eq!(app["portDefinitions"][0]["name"], "default");
    assert_eq!(app["version"], app["versionInfo"]["lastConfigChangeAt"]);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn the_app_answer_validates_against_marathons_app_schema_and_example_keys() {
    let lm = start(ExecutorKind::Sim).await;
    let request = fixture_json("example-app-with-http-check-request-body.json");
    let mut body = request.clone();
    // Keep the fixture's shape but make it runnable here.
    body["id"] = json!("/fidelity/app");
    create(
        &lm,
        json!({"id": "/fidelity/app", "cmd": "sleep 100", "instances": 2,
        "labels": {"a": "b"}, "env": {"K": "V"}, "constraints": [["hostname", "UNIQUE"]],
        "healthChecks": [{"protocol": "TCP", "gracePeriodSeconds": 1}]}),
    )
    .await;
    lm.wait_running("/fidelity/app", 2).await;
    let (status, body) = lm.get("/v2/apps/fidelity/app").await;
    assert_eq!(status, 200);
    let app = body["app"].clone();

    // The schema (Marathon 1.7/1.8) forbids unknown keys: strip the AppInfo additions and
    // `role` (added in Marathon 1.9), then the definition must validate.
    let schema = fixture_json("app-definition.schema.json");
    let validator = jsonschema::draft4::new(&schema).expect("schema compiles");
    let mut definition = app.clone();
    for key in [
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
        "deployments",
        "tasks",
        "lastTaskFailure",
        "readinessCheckResults",
        "role",
    ] {
        definition.as_object_mut().unwrap().remove(key);
    }
    let errors: Vec<String> = validator
        .iter_errors(&definition)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{definition:#}");

    // Same types as the documented app list example for every key both have.
    let example = &fixture_json("example-apps-get-response.json")["apps"][0];
    for key in keys(example).intersection(&keys(&app)) {
        assert!(
            same_json_type(&example[key], &app[key]),
            "{key}: {} vs {}",
            example[key],
            app[key]
        );
    }
    // The counts and deployments the example shows are there, as integers and ids.
    for key in [
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
    ] {
        assert!(app[key].is_u64(), "{key}");
    }
    assert_eq!(app["tasksRunning"], 2);
    assert_eq!(app["tasksHealthy"], 2, "sim tasks pass their checks");
    assert!(app["deployments"].is_array());

    // Tasks carry the RAML Task keys, with the example's types.
    let task_example = &fixture_json("example-app-tasks-get-response.json")["tasks"][0];
    let raml_task_keys: BTreeSet<String> = [
        "appId",
        "healthCheckResults",
        "checkResult",
        "host",
        "id",
        "ipAddresses",
        "ports",
        "servicePorts",
        "slaveId",
        "state",
        "stagedAt",
        "startedAt",
        "version",
        "localVolumes",
        "region",
        "zone",
        "role",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for task in app["tasks"].as_array().unwrap() {
        assert!(keys(task).is_subset(&raml_task_keys), "{task:#}");
        for key in [
            "appId",
            "host",
            "id",
            "state",
            "role",
            "stagedAt",
            "startedAt",
            "version",
            "ports",
            "slaveId",
        ] {
            assert!(task.get(key).is_some(), "task lacks {key}");
        }
        for key in keys(task_example).intersection(&keys(task)) {
            assert!(same_json_type(&task_example[key], &task[key]), "{key}");
        }
        assert_eq!(task["state"], "TASK_RUNNING");
        let health = &task["healthCheckResults"][0];
        assert_eq!(health["alive"], true);
        // Marathon writes all seven keys, `null` for what has not happened yet.
        assert_eq!(
            keys(health),
            [
                "alive",
                "consecutiveFailures",
                "firstSuccess",
                "instanceId",
                "lastFailure",
                "lastFailureCause",
                "lastSuccess",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
            "{health:#}"
        );
        assert_eq!(health["lastFailure"], Value::Null);
        assert_eq!(health["lastFailureCause"], Value::Null);
        assert!(
            health["instanceId"]
                .as_str()
                .unwrap()
                .contains(".instance-")
        );
    }
    // UNIQUE put the two tasks on different agents.
    let hosts: BTreeSet<&str> = app["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts.len(), 2);
    let _ = request;
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn errors_carry_marathons_status_codes_and_bodies() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, body) = lm.get("/v2/apps/not/there").await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "App '/not/there' does not exist"}))
    );

    create(&lm, json!({"id": "/dup", "cmd": "sleep 1"})).await;
    let (status, body) = lm
        .post("/v2/apps", json!({"id": "dup", "cmd": "sleep 1"}))
        .await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"message": "An app with id [/dup] already exists."})
        )
    );

    let (status, body) = lm
        .post(
            "/v2/apps",
            json!({"id": "/x", "cmd": "y", "upgradeStrategy": {"minimumHealthCapacity": 1.5}}),
        )
        .await;
    // Marathon 1.10's RAML readers check limits and patterns while reading the JSON.
    assert_eq!(
        (status, body),
        (
            422,
            json!({"message": "Invalid JSON", "details": [
                {"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["error.max"]}]})
        )
    );
    let (status, body) = lm
        .post("/v2/apps", json!({"id": "/x", "cmd": "y", "cpus": -1}))
        .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"message": "Invalid JSON", "details": [{"path": "/cpus", "errors": ["error.min"]}]})
        )
    );
    let (status, body) = lm
        .post("/v2/apps", json!({"id": "/Upper", "cmd": "y"}))
        .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"message": "Invalid JSON", "details": [{"path": "/id", "errors": ["error.pattern"]}]})
        )
    );

    let (status, body) = lm.post("/v2/apps", json!({"id": "/x"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["details"][0]["errors"][0],
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
    );

    let (status, body) = lm
        .post(
            "/v2/apps",
            json!({"id": "/x", "cmd": "y", "instances": "two"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"message": "Invalid JSON", "details": [{"path": "/instances", "errors": ["error.expected.jsnumber"]}]})
        )
    );
    let raw = lm
        .http
        .post(lm.url("/v2/apps"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // Not JSON at all: `details` is the parser's message, a string.
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["message"], "Invalid JSON");
    assert!(
        body["details"]
            .as_str()
            .is_some_and(|d| d.contains("line 1")),
        "{body}"
    );

    let (status, body) = lm.delete("/v2/apps/dup/tasks/nope").await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "Task 'nope' does not exist"}))
    );
    let (status, _) = lm.delete("/v2/deployments/unknown").await;
    assert_eq!(status, 404);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_locked_app_answers_409_with_its_deployment_until_forced() {
    let lm = start(ExecutorKind::Sim).await;
    let events = lm.events().await;
    // A constraint no agent satisfies keeps the deployment running.
    let app = create(
        &lm,
        json!({"id": "/stuck", "cmd": "sleep 100",
        "constraints": [["hostname", "CLUSTER", "10.9.9.9"]]}),
    )
    .await;
    let first = app["deployments"][0]["id"].as_str().unwrap().to_string();

    let (status, body) = lm.put("/v2/apps/stuck", json!({"cmd": "sleep 200"})).await;
    assert_eq!(status, 409);
    assert_eq!(body["deployments"], json!([{ "id": first }]));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("App is locked by one or more deployments.")
    );
    let (status, _) = lm.send(Method::POST, "/v2/apps/stuck/restart", None).await;
    assert_eq!(status, 409);

    let (status, body) = lm
        .put("/v2/apps/stuck?force=true", json!({"constraints": []}))
        .await;
    assert_eq!(status, 200);
    let second = body["deploymentId"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert!(body["version"].is_string());
    events
        .wait("deployment_failed of the cancelled one", |t, d| {
            t == "deployment_failed" && d["id"] == first.as_str()
        })
        .await;
    lm.wait_running("/stuck", 1).await;
    events
        .wait("deployment_success of the forced one", |t, d| {
            t == "deployment_success" && d["id"] == second.as_str()
        })
        .await;
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn deleting_defaults_to_force_and_answers_a_deployment_result() {
    let lm = start(ExecutorKind::Sim).await;
    let events = lm.events().await;
    create(
        &lm,
        json!({"id": "/gone", "cmd": "sleep 100",
        "constraints": [["hostname", "CLUSTER", "10.9.9.9"]]}),
    )
    .await;
    let response = lm
        .http
        .delete(lm.url("/v2/apps/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = response.headers()["marathon-deployment-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        keys(&body),
        keys(&fixture_json("example-deployment-result-response.json"))
    );
    assert_eq!(body["deploymentId"], header.as_str());
    events
        .wait("app_terminated_event", |t, d| {
            t == "app_terminated_event" && d["appId"] == "/gone"
        })
        .await;
    let (status, _) = lm.get("/v2/apps/gone").await;
    assert_eq!(status, 404);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn doubled_slashes_in_paths_are_accepted() {
    let lm = start(ExecutorKind::Sim).await;
    create(&lm, json!({"id": "/a/b", "cmd": "sleep 100"})).await;
    lm.wait_running("/a/b", 1).await;
    for path in [
        "/v2/apps//a/b/tasks",
        "/v2//apps/a//b/tasks",
        "/v2/apps/a/b/tasks/",
    ] {
        let (status, body) = lm.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["tasks"].as_array().unwrap().len(), 1, "{path}");
    }
    let (status, body) = lm.get("/v2/apps//a//b").await;
    assert_eq!(status, 200);
    assert_eq!(body["app"]["id"], "/a/b");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn the_event_stream_needs_exactly_accept_text_event_stream() {
    let lm = start(ExecutorKind::Sim).await;
    for accept in [
        None,
        Some("application/json"),
        Some("text/event-stream, */*"),
    ] {
        let mut req = lm.http.get(lm.url("/v2/events"));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 405, "{accept:?}");
        assert!(response.text().await.unwrap().contains("HTTP ERROR: 405"));
    }
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn deployments_show_the_plan_and_current_step_like_the_example() {
    let lm = start(ExecutorKind::Sim).await;
    create(
        &lm,
        json!({"id": "/waiting", "cmd": "sleep 100",
        "constraints": [["hostname", "CLUSTER", "10.9.9.9"]]}),
    )
    .await;
    let (status, list) = lm.get("/v2/deployments").await;
    assert_eq!(status, 200);
    let d = &list[0];
    let example = &fixture_json("example-deployments-get-response.json")[0];
    assert_eq!(keys(d), keys(example));
    for key in keys(example) {
        assert!(same_json_type(&example[&key], &d[&key]), "{key}");
    }
    assert_eq!(d["affectedApps"], json!(["/waiting"]));
    assert_eq!(
        d["steps"],
        json!([{"actions": [{"action": "StartApplication", "app": "/waiting"}]},
               {"actions": [{"action": "ScaleApplication", "app": "/waiting"}]}])
    );
    // Registering the app is immediate; scaling waits for an agent.
    assert_eq!(d["currentStep"], 2);
    assert_eq!(d["totalSteps"], 2);
    assert_eq!(d["currentActions"][0]["action"], "ScaleApplication");
    assert_eq!(d["currentActions"][0]["readinessCheckResults"], json!([]));
    // The queue shows the instance that cannot be placed.
    let (_, queue) = lm.get("/v2/queue").await;
    assert_eq!(queue["queue"][0]["count"], 1);
    assert_eq!(queue["queue"][0]["app"]["id"], "/waiting");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn info_leader_and_ping_answer_like_marathon() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, info) = lm.get("/v2/info").await;
    assert_eq!(status, 200);
    let example = fixture_json("example-info-get-response.json");
    assert_eq!(keys(&info), keys(&example));
    assert_eq!(
        keys(&info["marathon_config"]),
        keys(&example["marathon_config"])
    );
    assert_eq!(
        keys(&info["zookeeper_config"]),
        keys(&example["zookeeper_config"])
    );
    assert_eq!(info["name"], "marathon");
    assert_eq!(info["elected"], true);
    let (_, leader) = lm.get("/v2/leader").await;
    assert_eq!(leader["leader"], lm.handle.addr().to_string());
    let pong = lm
        .http
        .get(lm.url("/ping"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pong, "pong");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn scaling_versions_and_rollback_follow_marathon() {
    let lm = start(ExecutorKind::Sim).await;
    let app = create(&lm, json!({"id": "/scale", "cmd": "sleep 100"})).await;
    let v1 = app["version"].as_str().unwrap().to_string();
    lm.wait_running("/scale", 1).await;
    let (status, result) = lm.put("/v2/apps/scale", json!({"instances": 3})).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&result),
        keys(&fixture_json("example-deployment-result-response.json"))
    );
    let tasks = lm.wait_running("/scale", 3).await;
    let (_, body) = lm.get("/v2/apps/scale").await;
    let info = &body["app"]["versionInfo"];
    // Scaling is not a configuration change.
    assert_eq!(info["lastConfigChangeAt"], v1.as_str());
    assert_ne!(info["lastScalingAt"], v1.as_str());
    // Existing tasks kept running through the scale.
    assert!(tasks.iter().any(|t| t["version"] == v1.as_str()));

    let (_, versions) = lm.get("/v2/apps/scale/versions").await;
    let versions = versions["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2);
    let (status, old) = lm.get(&format!("/v2/apps/scale/versions/{v1}")).await;
    assert_eq!(status, 200);
    assert_eq!(old["instances"], 1);

    let (status, _) = lm.put("/v2/apps/scale", json!({"version": v1})).await;
    assert_eq!(status, 200);
    lm.wait_running("/scale", 1).await;

    // A full replace without partialUpdate resets unnamed fields to their defaults.
    let (status, _) = lm
        .put(
            "/v2/apps/scale?partialUpdate=false",
            json!({"cmd": "sleep 5", "mem": 64}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = lm.get("/v2/apps/scale").await;
    assert_eq!(body["app"]["mem"], 64);
    assert_eq!(body["app"]["instances"], 1);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn put_creates_a_missing_app_and_patch_does_not() {
    let lm = start(ExecutorKind::Sim).await;
    let (status, _) = lm
        .send(Method::PATCH, "/v2/apps/new", Some(json!({"cmd": "x"})))
        .await;
    assert_eq!(status, 404);
    let (status, body) = lm
        .put(
            "/v2/apps/new",
            json!({"id": "/ignored", "cmd": "sleep 100"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(body["deploymentId"].is_string());
    let (status, body) = lm.get("/v2/apps/new").await;
    assert_eq!(status, 200, "the URL's id wins over the body's");
    assert_eq!(body["app"]["cmd"], "sleep 100");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn restart_replaces_every_task_with_a_new_version() {
    let lm = start(ExecutorKind::Sim).await;
    create(&lm, json!({"id": "/r", "cmd": "sleep 100", "instances": 2})).await;
    let before: BTreeSet<String> = lm
        .wait_running("/r", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let (status, result) = lm.send(Method::POST, "/v2/apps/r/restart", None).await;
    assert_eq!(status, 200);
    let version = result["version"].as_str().unwrap().to_string();
    let after = wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/r").await;
        let done = tasks.len() == 2
            && tasks
                .iter()
                .all(|t| t["version"] == version.as_str() && t["state"] == "TASK_RUNNING");
        done.then_some(tasks)
    })
    .await
    .expect("restarted");
    for t in after {
        assert!(!before.contains(t["id"].as_str().unwrap()));
    }
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn killing_a_task_with_scale_lowers_instances_and_without_replaces_it() {
    let lm = start(ExecutorKind::Sim).await;
    create(&lm, json!({"id": "/k", "cmd": "sleep 100", "instances": 3})).await;
    let tasks = lm.wait_running("/k", 3).await;
    let victim = tasks[0]["id"].as_str().unwrap().to_string();
    let (status, body) = lm.delete(&format!("/v2/apps/k/tasks/{victim}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["task"]["id"], victim.as_str());
    let replaced = wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/k").await;
        (tasks.len() == 3
            && tasks
                .iter()
                .all(|t| t["id"] != victim.as_str() && t["state"] == "TASK_RUNNING"))
        .then_some(())
    })
    .await;
    assert!(replaced.is_some(), "killed task replaced");

    let tasks = lm.tasks("/k").await;
    let victim = tasks[0]["id"].as_str().unwrap().to_string();
    let (status, body) = lm
        .delete(&format!("/v2/apps/k/tasks/{victim}?scale=true"))
        .await;
    assert_eq!(status, 200);
    assert!(body["deploymentId"].is_string());
    lm.wait_running("/k", 2).await;
    let (_, app) = lm.get("/v2/apps/k").await;
    assert_eq!(app["app"]["instances"], 2);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_failed_task_records_last_task_failure_and_waits_out_its_backoff() {
    let lm = start(ExecutorKind::Sim).await;
    let events = lm.events().await;
    create(&lm, json!({"id": "/flaky", "cmd": "sleep 100", "backoffSeconds": 3600, "maxLaunchDelaySeconds": 3600})).await;
    let tasks = lm.wait_running("/flaky", 1).await;
    let id = tasks[0]["id"].as_str().unwrap().to_string();
    assert!(lm.handle.simulate_task_exit(&id, ExitStatus::Code(2)));
    let failed = events
        .wait("TASK_FAILED", |t, d| {
            t == "status_update_event" && d["taskStatus"] == "TASK_FAILED"
        })
        .await;
    assert_eq!(failed["taskId"], id.as_str());
    assert_eq!(failed["message"], "Command exited with status 2");
    let (_, app) = lm.get("/v2/apps/flaky").await;
    let failure = &app["app"]["lastTaskFailure"];
    assert_eq!(failure["taskId"], id.as_str());
    assert_eq!(failure["state"], "TASK_FAILED");
    assert_eq!(failure["appId"], "/flaky");
    assert!(failure["slaveId"].is_string() && failure["timestamp"].is_string());
    // With a one-hour backoff the replacement waits in the queue.
    let (_, queue) = lm.get("/v2/queue").await;
    assert_eq!(queue["queue"][0]["count"], 1);
    assert!(
        queue["queue"][0]["delay"]["timeLeftSeconds"]
            .as_u64()
            .unwrap()
            > 3000
    );
    assert!(lm.tasks("/flaky").await.is_empty());
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn list_filters_by_id_cmd_and_label() {
    let lm = start(ExecutorKind::Sim).await;
    create(
        &lm,
        json!({"id": "/prod/web", "cmd": "serve web", "labels": {"env": "prod", "tier": "web"}}),
    )
    .await;
    create(
        &lm,
        json!({"id": "/prod/db", "cmd": "serve db", "labels": {"env": "prod"}}),
    )
    .await;
    create(
        &lm,
        json!({"id": "/dev/web", "cmd": "serve web", "labels": {"env": "dev"}}),
    )
    .await;
    let ids = |body: Value| -> Vec<String> {
        body["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(lm.get("/v2/apps?id=prod").await.1),
        ["/prod/db", "/prod/web"]
    );
    assert_eq!(ids(lm.get("/v2/apps?cmd=db").await.1), ["/prod/db"]);
    assert_eq!(
        ids(lm.get("/v2/apps?label=env==prod,tier").await.1),
        ["/prod/web"]
    );
    assert_eq!(
        ids(lm.get("/v2/apps?label=env%20in%20(dev,stage)").await.1),
        ["/dev/web"]
    );
    let (_, all) = lm
        .get("/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure")
        .await;
    assert!(all["apps"][0]["tasks"].is_array());
    let (_, groups) = lm.get("/v2/groups").await;
    assert_eq!(groups["id"], "/");
    let group_ids: BTreeSet<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(group_ids, BTreeSet::from(["/dev", "/prod"]));
    let (status, prod) = lm.get("/v2/groups/prod").await;
    assert_eq!(status, 200);
    assert_eq!(prod["apps"].as_array().unwrap().len(), 2);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn deleting_a_deployment_rolls_the_app_back_and_force_only_cancels() {
    let lm = start(ExecutorKind::Sim).await;
    let app = create(
        &lm,
        json!({"id": "/rb", "cmd": "sleep 100", "instances": 2}),
    )
    .await;
    let v1 = app["version"].as_str().unwrap().to_string();
    let before: BTreeSet<String> = lm
        .wait_running("/rb", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    // An update whose new tasks cannot be placed never finishes.
    let (status, stuck) = lm
        .put(
            "/v2/apps/rb",
            json!({"constraints": [["hostname", "CLUSTER", "10.9.9.9"]]}),
        )
        .await;
    assert_eq!(status, 200);
    let stuck_id = stuck["deploymentId"].as_str().unwrap().to_string();
    let (status, result) = lm.delete(&format!("/v2/deployments/{stuck_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&result),
        keys(&fixture_json("example-deployment-result-response.json"))
    );
    assert_ne!(result["deploymentId"], stuck_id.as_str());
    lm.wait_no_deployments().await;
    let (_, body) = lm.get("/v2/apps/rb").await;
    assert_eq!(
        body["app"]["version"],
        v1.as_str(),
        "back to the original definition"
    );
    assert!(body["app"].get("constraints").is_none());
    let after: BTreeSet<String> = lm
        .wait_running("/rb", 2)
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        before, after,
        "tasks of the original configuration were kept"
    );

    let (status, stuck) = lm
        .put(
            "/v2/apps/rb",
            json!({"constraints": [["hostname", "CLUSTER", "10.9.9.9"]]}),
        )
        .await;
    assert_eq!(status, 200);
    let stuck_id = stuck["deploymentId"].as_str().unwrap().to_string();
    let response = lm
        .http
        .delete(lm.url(&format!("/v2/deployments/{stuck_id}?force=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    lm.wait_no_deployments().await;
    let (_, body) = lm.get("/v2/apps/rb").await;
    assert!(
        body["app"]["constraints"].is_array(),
        "force=true cancels without rollback"
    );
    lm.handle.shutdown().await;
}
