//! Every Marathon wire fixture that is a response, a request body or an event parses into the
//! client's types, meaningfully (the typed variant, not a fallback), and an app parsed and
//! serialised back is the same JSON.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use theseus::marathon::app::EnvValueRef;
use theseus::marathon::deployment::{DeploymentActionKind, DeploymentStep};
use theseus::marathon::{
    App, AppId, Deployment, DeploymentResult, Event, EventKind, Info, Task, TaskState,
};

/// How a fixture is read.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One app definition (a request body or `GET /v2/apps/{id}/versions/{v}`).
    App,
    /// `{"apps": [...]}`.
    AppList,
    /// `[app, ...]` (bodies of `PUT`/`PATCH /v2/apps`).
    AppArray,
    /// `{"tasks": [...]}`.
    TaskList,
    /// `{"task": {...}}`.
    TaskSingle,
    /// `{"deploymentId", "version"}`.
    DeploymentResult,
    /// `[deployment, ...]`.
    Deployments,
    /// `GET /v2/info`.
    Info,
    /// `{"steps": [...]}` (a dry-run plan).
    DeploymentSteps,
    /// A group tree: the apps in it are read as apps; groups themselves are not typed.
    GroupApps,
    /// `GET /v2/queue`: the queued apps are read as apps; the queue itself is not typed.
    QueueApps,
    /// Read through the client over HTTP, in `marathon_client.rs`
    /// (`sse_fixture_stream_over_crlf_yields_every_event_typed`).
    SseStream,
    /// Deliberately not parsed; the reason is in the table.
    Skip(&'static str),
}

const FIXTURES: &[(&str, Shape)] = &[
    ("example-app-patch-request-body.json", Shape::App),
    ("example-app-post-request-body.json", Shape::App),
    ("example-app-with-http-check-request-body.json", Shape::App),
    ("example-article-app-simple-request.json", Shape::App),
    ("go-marathon-app-serialized.json", Shape::App),
    ("go-marathon-app-serialized-1.5.json", Shape::App),
    ("sysapp-docker-http-server.json", Shape::App),
    ("sysapp-healthcheck-and-volume.json", Shape::App),
    ("sysapp-http-server.json", Shape::App),
    ("sysapp-mesos-app.json", Shape::App),
    ("sysapp-readiness-and-health-app.json", Shape::App),
    ("sysapp-sleep-app.json", Shape::App),
    ("example-apps-get-response.json", Shape::AppList),
    (
        "example-apps-patch-multiple-request-body.json",
        Shape::AppArray,
    ),
    (
        "example-apps-put-multiple-request-body.json",
        Shape::AppArray,
    ),
    ("example-app-tasks-get-response.json", Shape::TaskList),
    ("example-tasks-get-response.json", Shape::TaskList),
    ("example-app-task-delete-response.json", Shape::TaskSingle),
    (
        "example-deployment-result-response.json",
        Shape::DeploymentResult,
    ),
    ("example-deployments-get-response.json", Shape::Deployments),
    ("example-info-get-response.json", Shape::Info),
    (
        "example-groups-put-dryrun-response.json",
        Shape::DeploymentSteps,
    ),
    ("example-group-put-request-body.json", Shape::GroupApps),
    ("sysapp-group-sleep-group.json", Shape::GroupApps),
    ("example-queue-get-response.json", Shape::QueueApps),
    ("example-events-sse-stream.txt", Shape::SseStream),
    (
        "example-pod.json",
        Shape::Skip("pods are out of scope: theseus deploys apps only"),
    ),
    (
        "app-definition.schema.json",
        Shape::Skip("a JSON schema, not a message"),
    ),
    (
        "group.schema.json",
        Shape::Skip("a JSON schema, not a message"),
    ),
    (
        "PROVENANCE.md",
        Shape::Skip("documentation of the fixtures"),
    ),
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/marathon")
}

fn fixture(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, value: &Value) -> T {
    T::deserialize(value).unwrap_or_else(|e| {
        panic!(
            "{name}: does not parse as {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// The app definitions inside a fixture, as JSON, with a name for messages.
fn app_values(name: &str, shape: Shape) -> Vec<(String, Value)> {
    let mut apps = Vec::new();
    let value = || fixture(name);
    match shape {
        Shape::App => apps.push(value()),
        Shape::AppList => apps.extend(value()["apps"].as_array().unwrap().iter().cloned()),
        Shape::AppArray => apps.extend(value().as_array().unwrap().iter().cloned()),
        Shape::GroupApps => collect_group_apps(&value(), &mut apps),
        Shape::QueueApps => apps.extend(
            value()["queue"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| entry["app"].clone()),
        ),
        _ => {}
    }
    apps.into_iter()
        .enumerate()
        .map(|(i, app)| (format!("{name}#{i}"), app))
        .collect()
}

fn collect_group_apps(group: &Value, apps: &mut Vec<Value>) {
    if let Some(list) = group["apps"].as_array() {
        apps.extend(list.iter().cloned());
    }
    for child in group["groups"].as_array().into_iter().flatten() {
        collect_group_apps(child, apps);
    }
}

#[test]
fn every_fixture_file_is_parsed_or_skipped_with_a_reason() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut known: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    known.extend(
        on_disk
            .iter()
            .filter(|n| n.starts_with("event-") && n.ends_with(".json"))
            .cloned(),
    );
    let unaccounted: Vec<_> = on_disk.difference(&known).collect();
    assert!(
        unaccounted.is_empty(),
        "fixtures without a test: {unaccounted:?}"
    );
    let missing: Vec<_> = known.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "fixtures listed but absent: {missing:?}"
    );
}

#[test]
fn every_response_and_request_fixture_parses_into_the_typed_structs() {
    for (name, shape) in FIXTURES {
        match shape {
            Shape::App | Shape::AppList | Shape::AppArray | Shape::GroupApps | Shape::QueueApps => {
                let apps = app_values(name, *shape);
                assert!(!apps.is_empty(), "{name}: no app found");
                for (label, value) in apps {
                    let _: App = parse(&label, &value);
                }
            }
            Shape::TaskList => {
                let tasks: Vec<Task> = parse(name, &fixture(name)["tasks"]);
                assert!(!tasks.is_empty(), "{name}");
            }
            Shape::TaskSingle => {
                let _: Task = parse(name, &fixture(name)["task"]);
            }
            Shape::DeploymentResult => {
                let _: DeploymentResult = parse(name, &fixture(name));
            }
            Shape::Deployments => {
                let _: Vec<Deployment> = parse(name, &fixture(name));
            }
            Shape::Info => {
                let _: Info = parse(name, &fixture(name));
            }
            Shape::DeploymentSteps => {
                let steps: Vec<DeploymentStep> = parse(name, &fixture(name)["steps"]);
                assert_eq!(steps.len(), 2, "{name}");
            }
            Shape::SseStream => {}
            Shape::Skip(reason) => assert!(!reason.is_empty(), "{name}: skipped without a reason"),
        }
    }
}

#[test]
fn every_event_fixture_decodes_as_its_own_typed_variant() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_prefix("event-") else {
            continue;
        };
        // `event-<type>.json` or `event-<type>.<variant>.json`.
        let event_type = stem.split('.').next().unwrap();
        let expected: EventKind = event_type.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let event = Event::from_json(fixture(&name));
        assert_eq!(event.kind(), Some(expected), "{name} decoded as {event:#?}");
        assert_eq!(event.event_type(), event_type);
        assert!(event.timestamp().is_some(), "{name}: timestamp lost");
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} event fixtures found");
}

#[test]
fn event_accessors_name_the_app_task_instance_and_deployment() {
    let app = |s: &str| AppId::parse(s).unwrap();

    let event = Event::from_json(fixture("event-status_update_event.sse-task_failed.json"));
    assert_eq!(event.app_id(), Some(&app("/foo")));
    assert_eq!(
        event.task_id().map(|t| t.as_str()),
        Some("foo.0664256e-6771-11e5-94e1-be5b2935a987")
    );
    let Event::StatusUpdate(update) = &event else {
        panic!("{event:?}")
    };
    assert_eq!(update.task_status, TaskState::Failed);
    assert_eq!(update.ports.as_deref(), Some(&[31776][..]));

    let event = Event::from_json(fixture("event-instance_changed_event.json"));
    assert_eq!(event.app_id(), Some(&app("/app-id")));
    assert_eq!(
        event.instance_id().map(|i| i.as_str()),
        Some("my-app.instance-c7c311a4-b669-11e6-a48f-0ea4f4b1778c")
    );

    // A stale documentation shape (bare actions as steps, `type` for `action`) still
    // yields the deployment and the apps it touches.
    let event = Event::from_json(fixture("event-deployment_step_success.json"));
    assert_eq!(
        event.deployment_id().map(|d| d.as_str()),
        Some("867ed450-f6a8-4d33-9b0e-e11c5513990b")
    );
    assert_eq!(event.affected_apps(), [&app("/my-app")]);
    let Event::DeploymentStepSuccess(step) = &event else {
        panic!("{event:?}")
    };
    let current = step.current_step.as_ref().unwrap();
    assert_eq!(
        current.actions[0].action,
        DeploymentActionKind::ScaleApplication
    );

    let event = Event::from_json(fixture("event-api_post_event.json"));
    assert_eq!(event.app_id(), Some(&app("/my-app")));

    let event = Event::from_json(fixture("event-deployment_failed.json"));
    assert_eq!(
        event.deployment_id().map(|d| d.as_str()),
        Some("867ed450-f6a8-4d33-9b0e-e11c5513990b")
    );
}

#[test]
fn app_fixtures_keep_their_meaning() {
    let app: App = parse("post", &fixture("example-app-post-request-body.json"));
    assert_eq!(app.id.as_str(), "/foo");
    assert_eq!(app.instances, Some(2));
    let env = app.env.as_ref().unwrap();
    assert_eq!(env.get("XPS1"), Some(EnvValueRef::Value("Test")));
    assert_eq!(
        env.get("PASSWORD"),
        Some(EnvValueRef::Secret("/db/password"))
    );
    let constraint = &app.constraints.as_ref().unwrap()[0];
    assert_eq!(
        (
            constraint.field.as_str(),
            constraint.operator.as_str(),
            constraint.value.as_deref()
        ),
        ("hostname", "LIKE", Some("srv2.*"))
    );
    let container = app.container.as_ref().unwrap();
    assert_eq!(
        container.docker.as_ref().unwrap().image,
        "mesosphere:marathon/latest"
    );
    let mapping = &container.port_mappings().unwrap()[0];
    assert_eq!(
        (mapping.container_port, mapping.name.as_deref()),
        (Some(80), Some("http"))
    );
    assert_eq!(app.label("owner"), Some("zeus"));
    // Fields this client does not model are kept, not dropped.
    assert!(app.extra.contains_key("secrets"));
    assert!(app.extra.contains_key("ipAddress"));

    // Marathon 1.5 networking puts the port mappings on the container itself.
    let app: App = parse("go-1.5", &fixture("go-marathon-app-serialized-1.5.json"));
    let mappings = app.container.as_ref().unwrap().port_mappings().unwrap();
    assert_eq!(mappings.len(), 2);
    assert_eq!(mappings[1].container_port, Some(443));

    // A relative id is canonicalised.
    let app: App = parse(
        "http-check",
        &fixture("example-app-with-http-check-request-body.json"),
    );
    assert_eq!(app.id.as_str(), "/http-index-test");

    let list = fixture("example-apps-get-response.json");
    let app: App = parse("list", &list["apps"][0]);
    assert_eq!(app.tasks_running, Some(0));
    assert_eq!(
        app.deployment_ids().map(|d| d.as_str()).collect::<Vec<_>>(),
        ["9538079c-3898-4e32-aa31-799bf9097f74"]
    );
    // `["hostname", "UNIQUE", ""]` keeps its empty third element.
    assert_eq!(
        app.constraints.as_ref().unwrap()[0].value.as_deref(),
        Some("")
    );
}

#[test]
fn task_and_deployment_fixtures_keep_their_meaning() {
    let tasks: Vec<Task> = parse(
        "tasks",
        &fixture("example-tasks-get-response.json")["tasks"],
    );
    assert_eq!(tasks[1].app_id.as_str(), "/tools/docker/registry");
    assert_eq!(tasks[1].ports.as_deref(), Some(&[31721][..]));
    assert_eq!(tasks[1].service_ports.as_deref(), Some(&[5000][..]));
    assert_eq!(tasks[0].state, TaskState::Running);
    assert_eq!(
        tasks[0].agent(),
        Some("20150707-153709-201330860-5050-12052-S0")
    );
    assert!(tasks[0].started_at.is_some() && tasks[0].staged_at.is_some());

    let deployments: Vec<Deployment> = parse(
        "deployments",
        &fixture("example-deployments-get-response.json"),
    );
    let deployment = &deployments[0];
    assert_eq!(deployment.affected_apps, [AppId::parse("/foo").unwrap()]);
    assert_eq!(deployment.steps.len(), 2);
    assert_eq!(
        deployment.current_actions[0].action,
        DeploymentActionKind::ScaleApplication
    );
    assert_eq!(
        (deployment.current_step, deployment.total_steps),
        (Some(1), Some(1))
    );

    let info: Info = parse("info", &fixture("example-info-get-response.json"));
    assert_eq!(info.leader.as_deref(), Some("localhost:8080"));
    assert_eq!(info.elected, Some(true));
}

/// A stopped task omits ports, timestamps and version: absent, not null, and not an error.
#[test]
fn a_stopped_task_without_ports_or_times_parses() {
    let task: Task = serde_json::from_value(serde_json::json!({
        "id": "foo.instance-1._app.1", "appId": "/foo", "host": "agent-1",
        "state": "TASK_KILLED", "slaveId": "s1"
    }))
    .unwrap();
    assert!(task.ports.is_none() && task.started_at.is_none() && task.version.is_none());
    assert!(task.state.is_terminal());
    let back = serde_json::to_value(&task).unwrap();
    assert!(
        back.get("ports").is_none(),
        "absent fields must not become null: {back}"
    );
}

/// Normalises JSON for comparing an app with its round trip: `null` members are dropped
/// (Marathon treats `null` as absent, and requests must not carry nulls) and numbers compare
/// by value (`5` and `5.0` are the same JSON number).
fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        other => other.clone(),
    }
}

#[test]
fn an_app_parsed_and_serialised_back_loses_nothing() {
    let mut checked = 0;
    for (name, shape) in FIXTURES {
        for (label, original) in app_values(name, *shape) {
            let app: App = parse(&label, &original);
            let back = serde_json::to_value(&app).unwrap();
            let mut expected = normalise(&original);
            // The one intended change: the id in canonical form.
            expected["id"] = Value::String(app.id.to_string());
            assert_eq!(
                normalise(&back),
                expected,
                "{label} changed in a round trip"
            );
            checked += 1;
        }
    }
    // The app of an api_post_event, with its nulls and legacy `ports`.
    let event = fixture("event-api_post_event.json");
    let app: App = parse("api_post_event", &event["appDefinition"]);
    assert_eq!(
        normalise(&serde_json::to_value(&app).unwrap()),
        normalise(&event["appDefinition"])
    );
    assert!(checked >= 20, "only {checked} apps checked");
}

#[test]
fn absent_fields_are_not_serialised_as_null() {
    let app = App {
        cmd: Some("sleep 1000".into()),
        instances: Some(2),
        ..App::new(AppId::parse("/ingestor/dev").unwrap())
    };
    assert_eq!(
        serde_json::to_value(&app).unwrap(),
        serde_json::json!({"id": "/ingestor/dev", "cmd": "sleep 1000", "instances": 2})
    );
}
