//! Docker-image apps as real containers on the machine's Docker engine: published ports, the
//! task environment, failures behind localmarathon's back, unpullable images, and no container
//! left once the tasks are gone.
//!
//! Every test here needs an engine: where `docker info` does not answer, each prints why and
//! passes without running. Images are the project's own (`theseus-local/...`, built from the
//! workspace's binaries), since nothing can be pulled. Every container a test makes carries
//! the label `theseus.test=<test>-<uuid>` and is removed when the test ends, also on failure.

mod common;

use common::{DEADLINE, Lm, start};
use localmarathon::ExecutorKind;
use serde_json::{Value, json};
use theseus_testkit::image::{DockerEngine, ProjectImage, TestContainers};

/// The label key every test container carries.
const TEST_LABEL: &str = "theseus.test";

/// The theseus-hello image, or `None` (with the reason printed) without an engine.
fn hello_image(test: &str) -> Option<ProjectImage> {
    if let Err(reason) = DockerEngine::probe() {
        eprintln!("skipping {test}: it needs a Docker engine and {reason}");
        return None;
    }
    Some(ProjectImage::build("theseus-hello", &["theseus-hello"]).expect("image of theseus-hello"))
}

/// A guard for this test's containers and the label value to give them.
fn containers(test: &str) -> (TestContainers, String) {
    let value = format!("{test}-{}", uuid::Uuid::new_v4().simple());
    (TestContainers::labelled(TEST_LABEL, &value), value)
}

/// A bridge-networked theseus-hello app with a named port, its container labelled `label`.
fn hello_app(id: &str, image: &str, label: &str) -> Value {
    json!({
        "id": id, "instances": 1, "cpus": 0.1, "mem": 32, "taskKillGracePeriodSeconds": 1,
        "args": ["/bin/theseus-hello", "serve", "--listen", "0.0.0.0:8080"],
        "container": {"type": "DOCKER",
            "docker": {"image": image,
                "parameters": [{"key": "label", "value": format!("{TEST_LABEL}={label}")}]},
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}]},
        "networks": [{"mode": "container/bridge"}],
    })
}

async fn create(lm: &Lm, body: Value) {
    let (status, app) = lm.post("/v2/apps", body).await;
    assert_eq!(status, 201, "{app:#}");
}

/// GETs `url` until it answers (the server may still be starting); the body as JSON.
async fn answer(url: &str) -> Value {
    let http = reqwest::Client::new();
    common::wait_for(DEADLINE, || async {
        let response = http.get(url).send().await.ok()?;
        response.json::<Value>().await.ok()
    })
    .await
    .unwrap_or_else(|| panic!("{url} never answered"))
}

#[tokio::test]
async fn a_docker_apps_host_port_reaches_its_container_port_and_the_container_goes_with_the_task() {
    let test = "docker-host-port";
    let Some(image) = hello_image(test) else {
        return;
    };
    let (guard, label) = containers(test);
    let lm = start(ExecutorKind::Process).await;
    create(&lm, hello_app("/docker-test/hello", &image.tag, &label)).await;
    let tasks = lm.wait_running("/docker-test/hello", 1).await;
    let task = &tasks[0];
    let url = format!(
        "http://{}:{}/",
        task["host"].as_str().unwrap(),
        task["ports"][0]
    );
    let body = answer(&url).await;
    // The container listens on 8080; the task's environment reached it.
    assert_eq!(body["port"], 8080, "{body}");
    assert_eq!(body["task_id"], task["id"], "{body}");
    assert_eq!(guard.ids().len(), 1, "one container for the one task");

    lm.handle.shutdown().await;
    assert_eq!(
        guard.ids(),
        Vec::<String>::new(),
        "no container outlives its task"
    );
}

#[tokio::test]
async fn a_container_killed_behind_localmarathons_back_fails_its_task_and_is_replaced() {
    let test = "docker-killed";
    let Some(image) = hello_image(test) else {
        return;
    };
    let (guard, label) = containers(test);
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    create(&lm, hello_app("/docker-test/killed", &image.tag, &label)).await;
    let first = lm.wait_running("/docker-test/killed", 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = guard.ids();
    assert_eq!(ids.len(), 1);
    let killed = std::process::Command::new("docker")
        .args(["kill", &ids[0]])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");

    let failed = events
        .wait("the killed task's TASK_FAILED", |t, d| {
            t == "status_update_event" && d["taskId"] == first && d["taskStatus"] == "TASK_FAILED"
        })
        .await;
    assert_eq!(failed["message"], "Container exited with status 137");
    let replaced = common::wait_for(DEADLINE, || async {
        let tasks = lm.tasks("/docker-test/killed").await;
        tasks
            .iter()
            .any(|t| t["id"] != first.as_str() && t["state"] == "TASK_RUNNING")
            .then_some(())
    })
    .await;
    assert!(replaced.is_some(), "a new task replaced the killed one");
    common::wait_for(DEADLINE, || async {
        (guard.ids().len() == 1).then_some(())
    })
    .await
    .expect("the killed container was removed, its replacement runs");
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_missing_image_fails_its_task_with_one_line_naming_it_and_nothing_is_pulled() {
    let test = "docker-missing-image";
    if let Err(reason) = DockerEngine::probe() {
        eprintln!("skipping {test}: it needs a Docker engine and {reason}");
        return;
    }
    let (_guard, label) = containers(test);
    // localmarathon pulls nothing by default: no registry is ever asked.
    let image = "registry.theseus-test.invalid/missing:1";
    let lm = start(ExecutorKind::Process).await;
    let events = lm.events().await;
    create(&lm, hello_app("/docker-test/missing", image, &label)).await;
    let failed = events
        .wait("TASK_FAILED", |t, d| {
            t == "status_update_event" && d["taskStatus"] == "TASK_FAILED"
        })
        .await;
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Failed to launch container: image '{image}' is not on this agent, and \
             localmarathon pulls no image"
        )),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    let (_, app) = lm.get("/v2/apps/docker-test/missing").await;
    assert_eq!(app["app"]["lastTaskFailure"]["message"], message);
    lm.handle.shutdown().await;
}

#[tokio::test]
async fn a_killed_localmarathon_leaves_no_container_behind() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let test = "docker-sigkill";
    let Some(image) = hello_image(test) else {
        return;
    };
    let (guard, label) = containers(test);
    let work = tempfile::tempdir().unwrap();
    let mut binary = Command::new(env!("CARGO_BIN_EXE_localmarathon"))
        .args(["--listen", "127.0.0.1:0", "--work-dir"])
        .arg(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("localmarathon starts");
    let mut line = String::new();
    BufReader::new(binary.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("localmarathon listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let mut app = hello_app("/docker-test/orphan", &image.tag, &label);
    app["instances"] = json!(2);
    let created = http
        .post(format!("{url}/v2/apps"))
        .json(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    common::wait_for(DEADLINE, || async {
        (guard.ids().len() == 2).then_some(())
    })
    .await
    .expect("both containers run");

    binary.kill().unwrap(); // SIGKILL: no destructor, no shutdown, only the guardian.
    binary.wait().unwrap();
    common::wait_for(DEADLINE, || async { guard.ids().is_empty().then_some(()) })
        .await
        .expect("the guardian removed every container of the killed localmarathon");
}
