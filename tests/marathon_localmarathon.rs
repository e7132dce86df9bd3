//! The theseus Marathon client against localmarathon over real HTTP: the two were written
//! independently against Marathon's wire format, so every call here checks that they agree,
//! from app creation to the typed event stream, with processes that really serve on the ports
//! the client reports.
//!
//! Each test starts its own localmarathon in-process on `127.0.0.1:0` and ends with
//! `shutdown`; a test that panics drops the handle, which kills every task it started.
//! Nothing sleeps for a fixed time: conditions are polled, and events awaited, with a deadline.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use localmarathon::{ExecutorKind, Handle, LocalMarathon};
use reqwest::Url;
use theseus::marathon::app::{Labels, UpgradeStrategy};
use theseus::marathon::container::{
    Container, ContainerType, Network, NetworkMode, PortDefinition, PortMapping, PortProtocol,
};
use theseus::marathon::events::StatusUpdate;
use theseus::marathon::health::{HealthCheck, HealthCheckProtocol};
use theseus::marathon::{
    App, AppId, AppQuery, DeploymentId, Embed, Error, Event, EventKind, EventQuery, EventStream,
    KillOutcome, MarathonClient, MarathonConfig, PlanFormat, Task, TaskState, TaskStatusFilter,
};

/// Generous bound for anything to happen on a loaded 2-core machine; never a sleep.
const DEADLINE: Duration = Duration::from_secs(60);

/// How often a condition outside the test's control is checked again.
const POLL: Duration = Duration::from_millis(25);

/// Serves HTTP on the task's host and first port until killed.
const HTTP_SERVER: &str = r#"exec python3 -m http.server --bind "$HOST" "$PORT0""#;

/// A localmarathon and a client pointed at it.
struct Marathon {
    handle: Handle,
    client: MarathonClient,
}

impl Marathon {
    async fn start(executor: ExecutorKind) -> Self {
        let handle = LocalMarathon::builder()
            .executor(executor)
            .listen("127.0.0.1:0")
            .start()
            .await
            .expect("localmarathon starts");
        let client = client_for(&handle.url());
        Self { handle, client }
    }

    async fn shutdown(self) {
        self.handle.shutdown().await;
    }

    /// Waits until the app has `count` tasks, all TASK_RUNNING, and no deployment.
    async fn settled(&self, app: &AppId, count: usize) -> Vec<Task> {
        eventually(
            &format!("{app} runs {count} tasks and is deployed"),
            || async {
                let app = self.client.get_app(app, &[]).await.ok()?;
                let tasks = app.tasks.clone().unwrap_or_default();
                let running = tasks.iter().all(|t| t.state == TaskState::Running);
                let deployed = app.deployment_ids().next().is_none();
                (tasks.len() == count && running && deployed).then_some(tasks)
            },
        )
        .await
    }
}

fn client_for(url: &str) -> MarathonClient {
    MarathonClient::new(MarathonConfig::new(vec![Url::parse(url).unwrap()])).unwrap()
}

fn app_id(value: &str) -> AppId {
    AppId::parse(value).unwrap()
}

/// A small command app; `cmd` only matters with the process executor.
fn command_app(id: &str, cmd: &str, instances: u32) -> App {
    App {
        cmd: Some(cmd.to_owned()),
        instances: Some(instances),
        cpus: Some(0.1),
        mem: Some(32.0),
        ..App::new(app_id(id))
    }
}

/// An app that asks for more CPUs than any agent has: its deployment never finishes, so it
/// holds the app's lock for as long as a test needs.
fn unplaceable_app(id: &str) -> App {
    App {
        cpus: Some(1000.0),
        ..command_app(id, "sleep 600", 1)
    }
}

fn labels(pairs: &[(&str, &str)]) -> Option<Labels> {
    Some(pairs.iter().copied().collect())
}

/// Polls `probe` until it yields a value, panicking with `what` after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The event stream with everything it delivered so far; every event must decode as its
/// typed variant.
struct Events {
    stream: EventStream,
    seen: Vec<Event>,
}

impl Events {
    fn new(stream: EventStream) -> Self {
        Self {
            stream,
            seen: Vec::new(),
        }
    }

    /// The first event, already seen or still to come, that `matches`.
    async fn expect(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        if let Some(event) = self.seen.iter().find(|e| matches(e)) {
            return event.clone();
        }
        let wait = async {
            loop {
                let event = self
                    .stream
                    .next()
                    .await
                    .unwrap_or_else(|| panic!("event stream ended before {what}"))
                    .unwrap_or_else(|e| panic!("event stream failed before {what}: {e}"));
                assert!(
                    event.kind().is_some(),
                    "an event decoded as Unknown: {event:?}"
                );
                self.seen.push(event.clone());
                if matches(&event) {
                    return event;
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| {
                let kinds: Vec<&str> = self.seen.iter().map(Event::event_type).collect();
                panic!("timed out after {DEADLINE:?} waiting for {what}; seen {kinds:?}")
            })
    }

    /// The status update of `task` (any task of `app` when `None`) reaching `state`.
    async fn status(&mut self, app: &AppId, task: Option<&str>, state: TaskState) -> StatusUpdate {
        let what = format!("{state} of {app} task {task:?}");
        let event = self
            .expect(&what, |e| match e {
                Event::StatusUpdate(u) => {
                    u.app_id == *app
                        && u.task_status == state
                        && task.is_none_or(|t| u.task_id.as_str() == t)
                }
                _ => false,
            })
            .await;
        let Event::StatusUpdate(update) = event else {
            unreachable!()
        };
        update
    }
}

#[tokio::test]
async fn created_app_is_echoed_normalised_with_the_deployment_that_starts_it() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let id = app_id("/interop/web");
    let definition = App {
        port_definitions: Some(vec![PortDefinition {
            port: Some(0),
            name: Some("http".into()),
            ..PortDefinition::default()
        }]),
        labels: labels(&[("THESEUS_MANAGED", "true")]),
        ..command_app("/interop/web", "sleep 600", 2)
    };

    let created = marathon.client.create_app(&definition).await.unwrap();

    let app = &created.app;
    assert_eq!(app.id, id);
    assert_eq!(app.instances, Some(2));
    assert_eq!(app.cmd.as_deref(), Some("sleep 600"));
    assert_eq!(app.label("THESEUS_MANAGED"), Some("true"));
    // Marathon's normalisation: defaults filled in (values of the RAML `App` type) and a
    // service port assigned in place of 0, the name kept.
    assert_eq!(app.disk, Some(0.0));
    assert_eq!(app.backoff_seconds, Some(1));
    assert_eq!(app.backoff_factor, Some(1.15));
    assert_eq!(app.require_ports, Some(false));
    let strategy = app.upgrade_strategy.as_ref().expect("upgradeStrategy");
    assert_eq!(strategy.minimum_health_capacity, Some(1.0));
    assert_eq!(strategy.maximum_over_capacity, Some(1.0));
    let ports = app.port_definitions.as_ref().expect("portDefinitions");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert!(
        ports[0].port.is_some_and(|p| p != 0),
        "service port assigned: {ports:?}"
    );
    let version = app.version.clone().expect("version");
    let info = app.version_info.as_ref().expect("versionInfo");
    assert_eq!(info.last_config_change_at.as_ref(), Some(&version));
    assert_eq!(info.last_scaling_at.as_ref(), Some(&version));

    // The deployment named in the header is the one the answer embeds, and it starts the app.
    let deployment = created
        .deployment_id
        .clone()
        .expect("Marathon-Deployment-Id");
    assert_eq!(app.deployment_ids().collect::<Vec<_>>(), [&deployment]);
    let tasks = marathon.settled(&id, 2).await;
    for task in &tasks {
        assert_eq!(task.app_id, id);
        assert_eq!(task.version.as_ref(), Some(&version));
    }
    assert!(
        !marathon
            .client
            .deployments()
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == deployment),
        "a finished deployment is no longer listed"
    );

    // A second create of the same id is refused as existing, whatever its body.
    let error = marathon
        .client
        .create_app(&command_app("/interop/web", "sleep 1", 1))
        .await
        .unwrap_err();
    match &error {
        Error::AppExists { app, .. } => assert_eq!(app, &id),
        other => panic!("expected AppExists, got {other:?}"),
    }
    assert_eq!(
        marathon
            .client
            .get_app(&id, &[])
            .await
            .unwrap()
            .cmd
            .as_deref(),
        Some("sleep 600"),
        "the refused create changed nothing"
    );
    marathon.shutdown().await;
}

#[tokio::test]
async fn listing_embeds_what_is_asked_and_selects_by_label_and_id() {
    let marathon = Marathon::start(ExecutorKind::Process).await;
    let web = app_id("/interop/web");
    let db = app_id("/interop/db");
    let crashing = app_id("/other/crashing");
    for app in [
        App {
            labels: labels(&[("THESEUS_MANAGED", "true"), ("tier", "web")]),
            ..command_app(web.as_str(), "exec sleep 600", 2)
        },
        App {
            labels: labels(&[("THESEUS_MANAGED", "true"), ("tier", "db")]),
            ..command_app(db.as_str(), "exec sleep 600", 1)
        },
        // Exits at once, again and again: Marathon keeps its last failure.
        App {
            labels: labels(&[("tier", "batch")]),
            ..command_app(crashing.as_str(), "exit 3", 1)
        },
    ] {
        marathon.client.create_app(&app).await.unwrap();
    }
    marathon.settled(&web, 2).await;
    marathon.settled(&db, 1).await;
    let failure = eventually("the crashing app reports its last failure", || async {
        let app = marathon
            .client
            .get_app(&crashing, &[Embed::LastTaskFailure])
            .await
            .ok()?;
        app.last_task_failure
    })
    .await;
    assert_eq!(failure.app_id, crashing);
    assert_eq!(failure.state, Some(TaskState::Failed));
    assert!(!failure.task_id.as_str().is_empty());

    let ids = |apps: &[App]| -> BTreeSet<String> {
        apps.iter().map(|a| a.id.as_str().to_owned()).collect()
    };
    let list = |query: AppQuery| {
        let client = marathon.client.clone();
        async move { client.list_apps(&query).await.unwrap() }
    };

    // Without embeds: no tasks, but Marathon always adds counts and deployments to the list.
    let plain = list(AppQuery::default()).await;
    assert_eq!(
        ids(&plain),
        BTreeSet::from(["/interop/web", "/interop/db", "/other/crashing"].map(String::from))
    );
    for app in &plain {
        assert!(app.tasks.is_none(), "tasks not asked for: {app:?}");
        assert!(app.last_task_failure.is_none());
        assert!(app.tasks_running.is_some() && app.deployments.is_some());
    }
    let web_listed = plain.iter().find(|a| a.id == web).unwrap();
    assert_eq!(web_listed.tasks_running, Some(2));
    assert_eq!(web_listed.tasks_staged, Some(0));

    let with_tasks = list(AppQuery {
        embed: vec![Embed::Tasks, Embed::Deployments, Embed::LastTaskFailure],
        ..AppQuery::default()
    })
    .await;
    for app in &with_tasks {
        let tasks = app.tasks.as_ref().expect("tasks embedded");
        assert!(tasks.iter().all(|t| t.app_id == app.id));
        assert_eq!(app.deployment_ids().count(), 0, "{} is deployed", app.id);
    }
    let tasks_of = |id: &AppId| {
        with_tasks
            .iter()
            .find(|a| a.id == *id)
            .and_then(|a| a.tasks.as_ref())
            .map(Vec::len)
    };
    assert_eq!(tasks_of(&web), Some(2));
    assert_eq!(tasks_of(&db), Some(1));
    let crashing_listed = with_tasks.iter().find(|a| a.id == crashing).unwrap();
    assert!(crashing_listed.last_task_failure.is_some());

    // Label selectors, in Marathon's grammar.
    let managed = list(AppQuery {
        label: Some("THESEUS_MANAGED==true".into()),
        ..AppQuery::default()
    })
    .await;
    assert_eq!(
        ids(&managed),
        BTreeSet::from(["/interop/web", "/interop/db"].map(String::from))
    );
    let not_web = list(AppQuery {
        label: Some("THESEUS_MANAGED==true,tier!=web".into()),
        ..AppQuery::default()
    })
    .await;
    assert_eq!(ids(&not_web), BTreeSet::from(["/interop/db".to_owned()]));
    let tiers = list(AppQuery {
        label: Some("tier in (web, batch)".into()),
        ..AppQuery::default()
    })
    .await;
    assert_eq!(
        ids(&tiers),
        BTreeSet::from(["/interop/web", "/other/crashing"].map(String::from))
    );
    // `id` matches a substring of the app id.
    let by_id = list(AppQuery {
        id: Some("interop".into()),
        ..AppQuery::default()
    })
    .await;
    assert_eq!(
        ids(&by_id),
        BTreeSet::from(["/interop/web", "/interop/db"].map(String::from))
    );
    marathon.shutdown().await;
}

#[tokio::test]
async fn what_does_not_exist_is_not_found_naming_it() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let missing = app_id("/interop/missing");
    let client = &marathon.client;

    let not_found = |error: Error, name: &str| match &error {
        Error::NotFound { what, .. } => {
            assert!(what.contains(name), "{what} names {name}");
            assert_eq!(error.metric_label(), "not_found");
        }
        other => panic!("expected NotFound for {name}, got {other:?}"),
    };
    not_found(
        client.get_app(&missing, &[]).await.unwrap_err(),
        "/interop/missing",
    );
    not_found(
        client.app_tasks(&missing).await.unwrap_err(),
        "/interop/missing",
    );
    not_found(
        client.app_versions(&missing).await.unwrap_err(),
        "/interop/missing",
    );
    not_found(
        client.delete_app(&missing, false).await.unwrap_err(),
        "/interop/missing",
    );
    let unknown = DeploymentId::new("0a8a3f8c-9f3c-4b7e-a2b6-0d1bd3f2a5a1");
    not_found(
        client.cancel_deployment(&unknown, false).await.unwrap_err(),
        unknown.as_str(),
    );

    // Of an app that exists: an unknown version and an unknown task.
    let id = app_id("/interop/present");
    let created = client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let tasks = marathon.settled(&id, 1).await;
    let app = client.get_app(&id, &[]).await.unwrap();
    assert_eq!(app.id, id);
    assert_eq!(
        app.tasks.as_ref().map(Vec::len),
        Some(1),
        "one app embeds its tasks"
    );
    assert_eq!(app.version, created.app.version);
    let old = theseus::marathon::Version::new("2015-01-01T00:00:00.000Z");
    not_found(
        client.app_version(&id, &old).await.unwrap_err(),
        "/interop/present",
    );
    let task = theseus::marathon::TaskId::new(format!("{}x", tasks[0].id));
    not_found(
        client
            .kill_task(&id, &task, false, false)
            .await
            .unwrap_err(),
        task.as_str(),
    );
    marathon.shutdown().await;
}

#[tokio::test]
async fn invalid_definitions_are_refused_with_the_paths_of_the_bad_fields() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let id = app_id("/interop/invalid");
    let paths = |error: &Error| -> BTreeSet<String> {
        match error {
            Error::Invalid { details, .. } => details.iter().map(|d| d.path.clone()).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    };

    let negative = App {
        cpus: Some(-1.0),
        mem: Some(-5.0),
        upgrade_strategy: Some(Box::new(UpgradeStrategy {
            minimum_health_capacity: Some(2.0),
            ..UpgradeStrategy::default()
        })),
        ..command_app(id.as_str(), "sleep 600", 1)
    };
    let error = marathon.client.create_app(&negative).await.unwrap_err();
    assert_eq!(
        paths(&error),
        BTreeSet::from(
            ["/cpus", "/mem", "/upgradeStrategy/minimumHealthCapacity"].map(String::from)
        )
    );
    assert!(error.to_string().contains("/cpus"), "{error}");
    assert!(
        matches!(
            marathon.client.get_app(&id, &[]).await,
            Err(Error::NotFound { .. })
        ),
        "a refused app is not created"
    );

    // The same on a change of an existing app, which keeps its definition.
    marathon
        .client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let patch = App {
        cpus: Some(-0.5),
        ..App::new(id.clone())
    };
    let error = marathon
        .client
        .patch_app(&id, &patch, false)
        .await
        .unwrap_err();
    assert_eq!(paths(&error), BTreeSet::from(["/cpus".to_owned()]));
    let kept = marathon.client.get_app(&id, &[]).await.unwrap();
    assert_eq!(kept.cpus, Some(0.1));
    marathon.shutdown().await;
}

#[tokio::test]
async fn client_and_server_accept_and_canonicalise_the_same_app_ids() {
    // The client cannot even build a request with an id its `AppId` rejects, so what reaches
    // Marathon is decided by `AppId::parse`; here raw requests check that localmarathon, like
    // Marathon, accepts exactly those ids and stores them in the same canonical form.
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let http = reqwest::Client::new();
    let candidates = [
        "/ids/plain",
        "ids/relative",
        "//ids//doubled//",
        "/ids/./dot",
        "/ids/gone/../up",
        "/../../ids/above-root",
        "/ids/db.main-1",
        "/ids/Upper",
        "/ids/under_score",
        "/ids/-leading",
        "/ids/trailing-",
        "/ids/.hidden",
        "/ids/a..b",
        "/",
        "/..",
    ];
    for raw in candidates {
        let response = http
            .post(format!("{}/v2/apps", marathon.handle.url()))
            .json(&serde_json::json!({"id": raw, "cmd": "sleep 600", "instances": 0}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        match AppId::parse(raw) {
            Ok(id) => {
                assert_eq!(status, 201, "`{raw}` accepted by the client: {body}");
                assert_eq!(body["id"], id.as_str(), "canonical form of `{raw}`");
                marathon.client.get_app(&id, &[]).await.unwrap();
            }
            Err(reason) => {
                assert_eq!(
                    status, 422,
                    "`{raw}` rejected by the client ({reason}): {body}"
                );
                assert_eq!(body["details"][0]["path"], "/id", "`{raw}`: {body}");
            }
        }
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn a_locked_app_names_the_deployments_holding_it_until_force_wins() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let id = app_id("/interop/locked");
    let client = &marathon.client;
    let created = client
        .create_app(&App {
            labels: labels(&[("THESEUS_SPEC_HASH", "old")]),
            ..unplaceable_app(id.as_str())
        })
        .await
        .unwrap();
    let holding = created.deployment_id.clone().expect("deployment id");
    let listed = client.deployments().await.unwrap();
    let running = listed
        .iter()
        .find(|d| d.id == holding)
        .expect("the deployment is listed while it runs");
    assert_eq!(running.affected_apps, std::slice::from_ref(&id));

    let locked = |error: Error, call: &str| match error {
        Error::Locked {
            app, deployments, ..
        } => {
            assert_eq!(app, id, "{call}");
            assert_eq!(deployments, std::slice::from_ref(&holding), "{call}");
        }
        other => panic!("{call}: expected Locked, got {other:?}"),
    };
    let scale = App {
        instances: Some(2),
        ..App::new(id.clone())
    };
    locked(
        client.patch_app(&id, &scale, false).await.unwrap_err(),
        "patch",
    );
    locked(
        client
            .update_app(&id, &command_app(id.as_str(), "sleep 600", 1), false)
            .await
            .unwrap_err(),
        "update",
    );
    locked(client.restart_app(&id, false).await.unwrap_err(), "restart");
    locked(client.delete_app(&id, false).await.unwrap_err(), "delete");
    locked(
        client
            .kill_app_tasks(&id, None, true, false)
            .await
            .unwrap_err(),
        "kill with scale",
    );

    // With force the new definition wins: the old deployment is cancelled, a new one runs
    // and finishes. An update replaces the whole definition: what it leaves out (the label)
    // takes Marathon's default.
    let fits = command_app(id.as_str(), "sleep 600", 1);
    let forced = client.update_app(&id, &fits, true).await.unwrap();
    assert_ne!(forced.deployment_id, holding);
    let ids: Vec<DeploymentId> = client
        .deployments()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(
        !ids.contains(&holding),
        "the forced-out deployment is gone: {ids:?}"
    );
    marathon.settled(&id, 1).await;
    let app = client.get_app(&id, &[]).await.unwrap();
    assert_eq!(app.cpus, Some(0.1));
    assert_eq!(app.label("THESEUS_SPEC_HASH"), None);
    assert_eq!(app.version.as_ref(), Some(&forced.version));
    marathon.shutdown().await;
}

#[tokio::test]
async fn an_app_read_back_and_sent_unchanged_is_accepted_and_restarts_nothing() {
    // What the controller does to put drift back: read, change a field, write the whole
    // definition. Everything the server echoes must be accepted back.
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    let id = app_id("/interop/round-trip");
    client
        .create_app(&App {
            port_definitions: Some(vec![PortDefinition {
                port: Some(0),
                name: Some("api".into()),
                ..PortDefinition::default()
            }]),
            labels: labels(&[("THESEUS_MANAGED", "true")]),
            health_checks: Some(vec![HealthCheck {
                protocol: Some(HealthCheckProtocol::Tcp),
                port_index: Some(0),
                ..HealthCheck::default()
            }]),
            ..command_app(id.as_str(), "sleep 600", 2)
        })
        .await
        .unwrap();
    let before = marathon.settled(&id, 2).await;
    let read = client
        .get_app(
            &id,
            &[Embed::Tasks, Embed::LastTaskFailure, Embed::Readiness],
        )
        .await
        .unwrap();

    let unchanged = read.clone().into_definition();
    assert!(unchanged.tasks.is_none() && unchanged.version.is_none());
    client.update_app(&id, &unchanged, false).await.unwrap();
    let after = marathon.settled(&id, 2).await;
    let ids = |tasks: &[Task]| -> BTreeSet<String> {
        tasks.iter().map(|t| t.id.as_str().to_owned()).collect()
    };
    assert_eq!(ids(&after), ids(&before), "no task replaced");
    let again = client.get_app(&id, &[]).await.unwrap();
    assert_eq!(
        again.port_definitions, read.port_definitions,
        "service port kept"
    );
    assert_eq!(again.health_checks, read.health_checks);
    assert_eq!(again.labels, read.labels);
    assert_eq!(again.cmd, read.cmd);
    marathon.shutdown().await;
}

#[tokio::test]
async fn a_docker_app_in_the_controllers_shape_is_normalised_and_placed() {
    // DESIGN's mapping for an image: a DOCKER container with named port mappings on the
    // bridge. The simulated executor runs it without a Docker engine.
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    let id = app_id("/ingestor/dev");
    let mapping = |name: &str, container_port: u16| PortMapping {
        container_port: Some(container_port),
        host_port: Some(0),
        name: Some(name.into()),
        protocol: Some(PortProtocol::Tcp),
        ..PortMapping::default()
    };
    let created = client
        .create_app(&App {
            container: Some(Box::new(Container {
                port_mappings: Some(vec![mapping("api", 5000), mapping("ssh", 22)]),
                ..Container::docker("registry.local:5000/flask")
            })),
            networks: Some(vec![Network {
                mode: Some(NetworkMode::ContainerBridge),
                ..Network::default()
            }]),
            instances: Some(2),
            cpus: Some(0.1),
            mem: Some(128.0),
            ..App::new(id.clone())
        })
        .await
        .unwrap();

    let container = created.app.container.clone().expect("container");
    assert_eq!(container.kind, Some(ContainerType::Docker));
    assert_eq!(
        container.docker.as_ref().map(|d| d.image.as_str()),
        Some("registry.local:5000/flask")
    );
    let mappings = container.port_mappings().expect("portMappings");
    let names: Vec<_> = mappings.iter().map(|m| m.name.as_deref()).collect();
    assert_eq!(names, [Some("api"), Some("ssh")]);
    assert!(
        mappings
            .iter()
            .all(|m| m.service_port.is_some_and(|p| p != 0)),
        "service ports assigned: {mappings:?}"
    );
    assert_eq!(
        created
            .app
            .networks
            .as_ref()
            .and_then(|n| n[0].mode.clone()),
        Some(NetworkMode::ContainerBridge)
    );
    // A task's ports pair with the mappings by index: one host port per mapping.
    for task in marathon.settled(&id, 2).await {
        let ports = task.ports.expect("host ports");
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| *p != 0));
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn scaling_is_not_a_config_change_and_restart_replaces_every_task() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let id = app_id("/interop/scaled");
    let client = &marathon.client;
    let created = client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let first = created.app.version.clone().unwrap();
    marathon.settled(&id, 1).await;

    let scaled = client
        .patch_app(
            &id,
            &App {
                instances: Some(3),
                ..App::new(id.clone())
            },
            false,
        )
        .await
        .unwrap();
    let before = marathon.settled(&id, 3).await;
    let app = client.get_app(&id, &[]).await.unwrap();
    assert_eq!(app.instances, Some(3));
    assert_eq!(app.tasks_running, Some(3));
    let info = app.version_info.unwrap();
    assert_eq!(info.last_scaling_at.as_ref(), Some(&scaled.version));
    assert_eq!(
        info.last_config_change_at.as_ref(),
        Some(&first),
        "scaling keeps lastConfigChangeAt"
    );

    let restarted = client.restart_app(&id, false).await.unwrap();
    let after = eventually("every task replaced", || async {
        let tasks = client.app_tasks(&id).await.ok()?;
        let replaced = tasks.len() == 3
            && tasks
                .iter()
                .all(|t| t.state == TaskState::Running && !before.iter().any(|old| old.id == t.id));
        replaced.then_some(tasks)
    })
    .await;
    assert!(
        after
            .iter()
            .all(|t| t.version.as_ref() == Some(&restarted.version))
    );
    marathon.settled(&id, 3).await;
    marathon.shutdown().await;
}

#[tokio::test]
async fn versions_list_every_change_and_each_reads_back_its_definition() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let id = app_id("/interop/versioned");
    let client = &marathon.client;
    let created = client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let first = created.app.version.clone().unwrap();
    marathon.settled(&id, 1).await;
    let changed = client
        .patch_app(
            &id,
            &App {
                cmd: Some("sleep 700".into()),
                ..App::new(id.clone())
            },
            false,
        )
        .await
        .unwrap();
    marathon.settled(&id, 1).await;

    let versions: BTreeSet<_> = client
        .app_versions(&id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        versions,
        BTreeSet::from([first.clone(), changed.version.clone()])
    );
    let old = client.app_version(&id, &first).await.unwrap();
    assert_eq!(old.cmd.as_deref(), Some("sleep 600"));
    assert_eq!(old.version.as_ref(), Some(&first));
    let new = client.app_version(&id, &changed.version).await.unwrap();
    assert_eq!(new.cmd.as_deref(), Some("sleep 700"));
    // A version read back is a definition, without what Marathon reports about running tasks.
    assert!(new.tasks.is_none() && new.tasks_running.is_none());
    marathon.shutdown().await;
}

#[tokio::test]
async fn tasks_are_listed_per_app_and_cluster_wide_with_the_same_fields() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    let a = app_id("/interop/a");
    let b = app_id("/interop/b");
    client
        .create_app(&App {
            port_definitions: Some(vec![PortDefinition::default(), PortDefinition::default()]),
            ..command_app(a.as_str(), "sleep 600", 2)
        })
        .await
        .unwrap();
    client
        .create_app(&command_app(b.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let of_a = marathon.settled(&a, 2).await;
    marathon.settled(&b, 1).await;

    for task in &of_a {
        assert_eq!(task.app_id, a);
        assert_eq!(
            task.ports.as_ref().map(Vec::len),
            Some(2),
            "a port per definition"
        );
        assert_eq!(task.service_ports.as_ref().map(Vec::len), Some(2));
        assert!(task.started_at.is_some() && task.staged_at.is_some());
        assert!(task.agent().is_some());
        assert!(
            task.ip_addresses
                .as_ref()
                .is_some_and(|ips| ips.iter().any(|ip| ip.ip_address == task.host)),
            "the agent's address is the task's: {task:?}"
        );
    }
    let all = client.tasks(None).await.unwrap();
    assert_eq!(all.len(), 3);
    for task in &of_a {
        let listed = all.iter().find(|t| t.id == task.id).expect("listed");
        assert_eq!(listed, task, "the same task, field for field");
    }
    let running = client.tasks(Some(TaskStatusFilter::Running)).await.unwrap();
    assert_eq!(running.len(), 3);
    let staging = client.tasks(Some(TaskStatusFilter::Staging)).await.unwrap();
    assert!(staging.is_empty(), "{staging:?}");

    // The ports the tasks hold are the agent's, one task per host port.
    let snapshots = marathon.handle.tasks();
    for task in &all {
        let snapshot = snapshots
            .iter()
            .find(|s| s.id == task.id.as_str())
            .expect("known to localmarathon");
        assert_eq!(Some(&snapshot.ports), task.ports.as_ref());
        assert_eq!(snapshot.host, task.host);
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn killing_a_task_replaces_it_unless_scaled_down() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    let id = app_id("/interop/killed");
    client
        .create_app(&command_app(id.as_str(), "sleep 600", 3))
        .await
        .unwrap();
    let tasks = marathon.settled(&id, 3).await;

    // Without scale: the killed task is answered, and a replacement keeps three running.
    let victim = tasks[0].id.clone();
    match client.kill_task(&id, &victim, false, false).await.unwrap() {
        KillOutcome::Killed(killed) => {
            assert_eq!(killed.len(), 1);
            assert_eq!(killed[0].id, victim);
        }
        other => panic!("expected the killed task, got {other:?}"),
    }
    let replaced = eventually("the killed task is replaced", || async {
        let now = client.app_tasks(&id).await.ok()?;
        let done = now.len() == 3
            && now.iter().all(|t| t.state == TaskState::Running)
            && !now.iter().any(|t| t.id == victim);
        done.then_some(now)
    })
    .await;
    assert_eq!(
        client.get_app(&id, &[]).await.unwrap().instances,
        Some(3),
        "a kill without scale keeps the instance count"
    );

    // With scale: a deployment scales the app down by the task killed.
    let victim = replaced[0].id.clone();
    match client.kill_task(&id, &victim, true, false).await.unwrap() {
        KillOutcome::Scaled(result) => {
            let app = client.get_app(&id, &[]).await.unwrap();
            assert_eq!(app.instances, Some(2));
            assert_eq!(app.version.as_ref(), Some(&result.version));
        }
        other => panic!("expected a scaling deployment, got {other:?}"),
    }
    let left = marathon.settled(&id, 2).await;
    assert!(!left.iter().any(|t| t.id == victim));

    // Every task of the app at once, scaled down to none.
    match client.kill_app_tasks(&id, None, true, false).await.unwrap() {
        KillOutcome::Scaled(_) => {}
        other => panic!("expected a scaling deployment, got {other:?}"),
    }
    marathon.settled(&id, 0).await;
    assert_eq!(client.get_app(&id, &[]).await.unwrap().instances, Some(0));
    marathon.shutdown().await;
}

#[tokio::test]
async fn a_running_deployment_is_listed_and_cancelling_it_rolls_back_or_just_stops() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;

    // Without force: the cancel starts a deployment that undoes the change; cancelling the
    // creation of an app removes the app.
    let rolled = app_id("/interop/rolled-back");
    let created = client
        .create_app(&unplaceable_app(rolled.as_str()))
        .await
        .unwrap();
    let deployment = created.deployment_id.unwrap();
    let listed = client.deployments().await.unwrap();
    let info = listed.iter().find(|d| d.id == deployment).expect("listed");
    assert_eq!(info.affected_apps, std::slice::from_ref(&rolled));
    assert!(info.total_steps.is_some_and(|n| n >= 1));
    assert!(!info.steps.is_empty());
    let rollback = client
        .cancel_deployment(&deployment, false)
        .await
        .unwrap()
        .expect("a rollback deployment");
    assert_ne!(rollback.deployment_id, deployment);
    eventually("the rolled-back app is gone", || async {
        matches!(
            client.get_app(&rolled, &[]).await,
            Err(Error::NotFound { .. })
        )
        .then_some(())
    })
    .await;

    // With force: the deployment just stops; the app stays as the change left it.
    let stopped = app_id("/interop/stopped");
    let created = client
        .create_app(&unplaceable_app(stopped.as_str()))
        .await
        .unwrap();
    let deployment = created.deployment_id.unwrap();
    assert_eq!(
        client.cancel_deployment(&deployment, true).await.unwrap(),
        None
    );
    let app = client.get_app(&stopped, &[]).await.unwrap();
    assert_eq!(app.deployment_ids().count(), 0, "no deployment holds it");
    assert!(
        !client
            .deployments()
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == deployment)
    );
    marathon.shutdown().await;
}

#[tokio::test]
async fn info_leader_and_ping_describe_the_one_marathon() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    client.ping().await.unwrap();
    let address = marathon.handle.addr().to_string();
    let leader = client.leader().await.unwrap();
    assert_eq!(leader.leader, address);
    let info = client.info().await.unwrap();
    assert_eq!(info.name.as_deref(), Some("marathon"));
    assert_eq!(info.elected, Some(true));
    assert_eq!(info.leader.as_deref(), Some(address.as_str()));
    assert!(info.version.is_some() && info.framework_id.is_some());
    assert!(info.marathon_config.is_some());
    marathon.shutdown().await;
}

#[tokio::test]
async fn delete_removes_the_app_and_its_tasks_and_defaults_to_force() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;

    let id = app_id("/interop/deleted");
    client
        .create_app(&command_app(id.as_str(), "sleep 600", 2))
        .await
        .unwrap();
    marathon.settled(&id, 2).await;
    client.delete_app(&id, false).await.unwrap();
    eventually("the deleted app and its tasks are gone", || async {
        let gone = matches!(client.get_app(&id, &[]).await, Err(Error::NotFound { .. }));
        let no_tasks = client
            .tasks(None)
            .await
            .ok()?
            .iter()
            .all(|t| t.app_id != id);
        (gone && no_tasks).then_some(())
    })
    .await;

    // The client always says `force`; Marathon's own default for DELETE is force=true, so a
    // delete without the parameter overrides a lock where every other write is refused.
    let locked = app_id("/interop/locked-delete");
    client
        .create_app(&unplaceable_app(locked.as_str()))
        .await
        .unwrap();
    assert!(matches!(
        client.delete_app(&locked, false).await,
        Err(Error::Locked { .. })
    ));
    let http = reqwest::Client::new();
    let url = format!("{}/v2/apps/interop/locked-delete", marathon.handle.url());
    let status = http.delete(&url).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 200);
    let status = http
        .put(format!("{}/v2/apps/interop/other", marathon.handle.url()))
        .json(&serde_json::json!({"cmd": "sleep 600", "instances": 1, "cpus": 1000}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "PUT creates a missing app");
    let status = http
        .put(format!("{}/v2/apps/interop/other", marathon.handle.url()))
        .json(&serde_json::json!({"instances": 2}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status.as_u16(),
        409,
        "PUT without force is refused on a lock"
    );
    eventually("the force-deleted app is gone", || async {
        matches!(
            client.get_app(&locked, &[]).await,
            Err(Error::NotFound { .. })
        )
        .then_some(())
    })
    .await;
    marathon.shutdown().await;
}

#[tokio::test]
async fn doubled_slashes_in_request_paths_reach_the_same_app() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let id = app_id("/interop/slashes");
    marathon
        .client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let tasks = marathon.settled(&id, 1).await;

    // A base URL ending in `//` makes the client itself send `//v2/apps/...`.
    let doubled = client_for(&format!("{}//", marathon.handle.url()));
    let app = doubled.get_app(&id, &[]).await.unwrap();
    assert_eq!(app.id, id);
    assert_eq!(doubled.app_tasks(&id).await.unwrap(), tasks);

    // And the doubled slashes older clients put inside the path.
    let http = reqwest::Client::new();
    for path in [
        "/v2/apps//interop/slashes/tasks",
        "/v2/apps//interop//slashes",
    ] {
        let response = http
            .get(format!("{}{path}", marathon.handle.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn a_command_app_serves_http_where_the_client_says_its_task_is() {
    let marathon = Marathon::start(ExecutorKind::Process).await;
    let id = app_id("/interop/served");
    marathon
        .client
        .create_app(&App {
            port_definitions: Some(vec![PortDefinition {
                port: Some(0),
                name: Some("http".into()),
                ..PortDefinition::default()
            }]),
            ..command_app(id.as_str(), HTTP_SERVER, 2)
        })
        .await
        .unwrap();
    let tasks = marathon.settled(&id, 2).await;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut endpoints = BTreeSet::new();
    for task in &tasks {
        let port = task.ports.as_ref().and_then(|p| p.first()).copied();
        let port = port.expect("a host port");
        let url = format!("http://{}:{port}/", task.host);
        assert!(endpoints.insert(url.clone()), "two tasks on one endpoint");
        // RUNNING means the process started, not that it listens yet.
        eventually(&format!("{url} answers"), || async {
            let response = http.get(&url).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn the_event_stream_carries_an_apps_life_as_typed_events() {
    let marathon = Marathon::start(ExecutorKind::Process).await;
    let client = &marathon.client;
    let id = app_id("/interop/observed");
    let mut events = Events::new(
        client
            .events_with(&EventQuery {
                kinds: Vec::new(),
                plan_format: PlanFormat::Light,
            })
            .await
            .unwrap(),
    );
    // A subscriber's first event is its own attachment.
    let attached = events
        .expect("event_stream_attached", |e| {
            matches!(e, Event::EventStreamAttached(_))
        })
        .await;
    let Event::EventStreamAttached(attached) = attached else {
        unreachable!()
    };
    assert_eq!(attached.remote_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(events.seen.len(), 1, "attachment comes first");

    let created = client
        .create_app(&App {
            port_definitions: Some(vec![PortDefinition {
                port: Some(0),
                name: Some("http".into()),
                ..PortDefinition::default()
            }]),
            health_checks: Some(vec![HealthCheck {
                protocol: Some(HealthCheckProtocol::Http),
                path: Some("/".into()),
                port_index: Some(0),
                grace_period_seconds: Some(60),
                interval_seconds: Some(1),
                timeout_seconds: Some(1),
                max_consecutive_failures: Some(0),
                ..HealthCheck::default()
            }]),
            ..command_app(id.as_str(), HTTP_SERVER, 1)
        })
        .await
        .unwrap();
    let version = created.app.version.clone().unwrap();
    let deployment = created.deployment_id.clone().unwrap();

    let post = events
        .expect("api_post_event", |e| matches!(e, Event::ApiPost(_)))
        .await;
    assert_eq!(post.app_id(), Some(&id));
    let Event::ApiPost(post) = post else {
        unreachable!()
    };
    assert_eq!(post.uri.as_deref(), Some("/v2/apps"));
    assert_eq!(
        post.app_definition
            .as_ref()
            .and_then(|a| a.version.as_ref()),
        Some(&version)
    );

    let started = events
        .expect("deployment_info", |e| {
            matches!(e, Event::DeploymentInfo(_)) && e.deployment_id() == Some(&deployment)
        })
        .await;
    assert_eq!(started.affected_apps(), [&id]);
    let Event::DeploymentInfo(started) = started else {
        unreachable!()
    };
    assert_eq!(started.plan.version.as_ref(), Some(&version));
    assert!(
        !started.plan.extra.contains_key("original") && !started.plan.extra.contains_key("target"),
        "a light plan has no group trees: {:?}",
        started.plan.extra.keys()
    );

    let running = events.status(&id, None, TaskState::Running).await;
    let task = running.task_id.as_str().to_owned();
    assert_eq!(running.version.as_ref(), Some(&version));
    let host = running.host.clone().expect("host");
    let ports = running.ports.clone().expect("ports");
    assert_eq!(ports.len(), 1);
    assert!(
        running
            .ip_addresses
            .as_ref()
            .is_some_and(|ips| ips.iter().any(|ip| ip.ip_address == host))
    );
    // The event and the snapshot agree on where the task is.
    let listed = client.app_tasks(&id).await.unwrap();
    let listed = listed
        .iter()
        .find(|t| t.id.as_str() == task)
        .expect("listed");
    assert_eq!(listed.host, host);
    assert_eq!(listed.ports.as_ref(), Some(&ports));

    let changed = events
        .expect("instance_changed_event Running", |e| match e {
            Event::InstanceChanged(c) => c.run_spec_id == id && c.condition == "Running",
            _ => false,
        })
        .await;
    let Event::InstanceChanged(changed) = changed else {
        unreachable!()
    };
    assert_eq!(changed.host.as_deref(), Some(host.as_str()));
    assert_eq!(changed.run_spec_version.as_ref(), Some(&version));
    assert!(
        task.starts_with(changed.instance_id.as_str()),
        "task `{task}` belongs to instance `{}`",
        changed.instance_id
    );

    let healthy = events
        .expect(
            "health_status_changed_event alive",
            |e| matches!(e, Event::HealthStatusChanged(h) if h.app_id == id && h.alive),
        )
        .await;
    let Event::HealthStatusChanged(healthy) = healthy else {
        unreachable!()
    };
    assert_eq!(healthy.instance_id.as_ref(), Some(&changed.instance_id));
    assert_eq!(healthy.version.as_ref(), Some(&version));

    events
        .expect("deployment_step_success", |e| {
            matches!(e, Event::DeploymentStepSuccess(_)) && e.deployment_id() == Some(&deployment)
        })
        .await;
    let succeeded = events
        .expect("deployment_success", |e| {
            matches!(e, Event::DeploymentSuccess(_)) && e.deployment_id() == Some(&deployment)
        })
        .await;
    assert_eq!(succeeded.affected_apps(), [&id]);

    // The process dies outside Marathon's control: TASK_FAILED, and a replacement runs.
    let pid = marathon.handle.task_pid(&task).expect("the task's pid");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let failed = events.status(&id, Some(&task), TaskState::Failed).await;
    assert!(failed.ports.is_some_and(|p| p == ports));
    let replacement = events
        .expect("a replacement running", |e| match e {
            Event::StatusUpdate(u) => {
                u.app_id == id && u.task_status == TaskState::Running && u.task_id.as_str() != task
            }
            _ => false,
        })
        .await;
    let replacement = replacement.task_id().unwrap().clone();

    // Killed through the API: TASK_KILLED.
    client
        .kill_task(&id, &replacement, false, false)
        .await
        .unwrap();
    events
        .status(&id, Some(replacement.as_str()), TaskState::Killed)
        .await;

    // Deleted: the app's end is announced once its last task is gone.
    client.delete_app(&id, false).await.unwrap();
    events
        .expect(
            "app_terminated_event",
            |e| matches!(e, Event::AppTerminated(t) if t.app_id == id),
        )
        .await;

    // Whatever arrived decoded into its type, with a timestamp.
    for event in &events.seen {
        assert!(event.timestamp().is_some(), "{event:?}");
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn failures_reach_the_event_stream_as_typed_events_too() {
    let marathon = Marathon::start(ExecutorKind::Process).await;
    let client = &marathon.client;
    let mut events = Events::new(client.events(&[]).await.unwrap());
    events
        .expect("event_stream_attached", |e| {
            matches!(e, Event::EventStreamAttached(_))
        })
        .await;

    // Another subscriber comes and goes.
    drop(client.events(&[]).await.unwrap());
    events
        .expect("event_stream_detached", |e| {
            matches!(e, Event::EventStreamDetached(_))
        })
        .await;

    // A cancelled deployment fails.
    let stuck = app_id("/interop/stuck");
    let created = client
        .create_app(&unplaceable_app(stuck.as_str()))
        .await
        .unwrap();
    let deployment = created.deployment_id.unwrap();
    client.cancel_deployment(&deployment, true).await.unwrap();
    let failed = events
        .expect("deployment_failed", |e| {
            matches!(e, Event::DeploymentFailed(_)) && e.deployment_id() == Some(&deployment)
        })
        .await;
    assert_eq!(failed.affected_apps(), [&stuck]);

    // A task nothing answers on fails its health check and is killed for it.
    let sick = app_id("/interop/sick");
    client
        .create_app(&App {
            port_definitions: Some(vec![PortDefinition::default()]),
            health_checks: Some(vec![HealthCheck {
                protocol: Some(HealthCheckProtocol::Tcp),
                port_index: Some(0),
                grace_period_seconds: Some(0),
                interval_seconds: Some(1),
                timeout_seconds: Some(1),
                max_consecutive_failures: Some(1),
                ..HealthCheck::default()
            }]),
            ..command_app(sick.as_str(), "exec sleep 600", 1)
        })
        .await
        .unwrap();
    let check = events
        .expect(
            "failed_health_check_event",
            |e| matches!(e, Event::FailedHealthCheck(f) if f.app_id == sick),
        )
        .await;
    let Event::FailedHealthCheck(check) = check else {
        unreachable!()
    };
    assert_eq!(
        check.health_check.and_then(|c| c.protocol),
        Some(HealthCheckProtocol::Tcp)
    );
    let kill = events
        .expect(
            "unhealthy_instance_kill_event",
            |e| matches!(e, Event::UnhealthyInstanceKill(k) if k.app_id == sick),
        )
        .await;
    let Event::UnhealthyInstanceKill(kill) = kill else {
        unreachable!()
    };
    let task = kill.task_id.expect("the task killed");
    let instance = kill.instance_id.expect("its instance");
    assert!(task.as_str().starts_with(instance.as_str()));
    events
        .status(&sick, Some(task.as_str()), TaskState::Killed)
        .await;
    marathon.shutdown().await;
}

#[tokio::test]
async fn event_type_filters_deliver_only_the_kinds_asked_for() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    let id = app_id("/interop/filtered");
    let mut filtered = Events::new(
        client
            .events(&[EventKind::StatusUpdate, EventKind::AppTerminated])
            .await
            .unwrap(),
    );
    let mut everything = Events::new(client.events(&[]).await.unwrap());
    // Both streams are attached once the unfiltered one saw its own attachment.
    everything
        .expect("event_stream_attached", |e| {
            matches!(e, Event::EventStreamAttached(_))
        })
        .await;

    client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    filtered.status(&id, None, TaskState::Running).await;
    client.delete_app(&id, false).await.unwrap();
    filtered
        .expect(
            "app_terminated_event",
            |e| matches!(e, Event::AppTerminated(t) if t.app_id == id),
        )
        .await;
    everything
        .expect(
            "app_terminated_event",
            |e| matches!(e, Event::AppTerminated(t) if t.app_id == id),
        )
        .await;

    let kinds = |events: &Events| -> BTreeSet<&'static str> {
        events
            .seen
            .iter()
            .filter_map(Event::kind)
            .map(EventKind::as_str)
            .collect()
    };
    assert_eq!(
        kinds(&filtered),
        BTreeSet::from(["status_update_event", "app_terminated_event"])
    );
    // Meanwhile the other kinds were sent, to those who asked for everything.
    let all = kinds(&everything);
    for kind in ["api_post_event", "deployment_info", "deployment_success"] {
        assert!(all.contains(kind), "{kind} missing from {all:?}");
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn deployment_plans_carry_no_group_trees_whichever_format_is_asked_for() {
    // Marathon 1.8+ sends only light plans; `plan-format=light` made 1.6 and 1.7 do the same.
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    let id = app_id("/interop/planned");
    let subscribe = |plan_format| async move {
        let query = EventQuery {
            kinds: vec![EventKind::DeploymentSuccess],
            plan_format,
        };
        client.events_with(&query).await
    };
    let mut full = Events::new(subscribe(PlanFormat::Full).await.unwrap());
    let mut light = Events::new(subscribe(PlanFormat::Light).await.unwrap());
    let created = client
        .create_app(&command_app(id.as_str(), "sleep 600", 1))
        .await
        .unwrap();
    let deployment = created.deployment_id.unwrap();
    for events in [&mut full, &mut light] {
        let success = events
            .expect("deployment_success", |e| {
                e.deployment_id() == Some(&deployment)
            })
            .await;
        let Event::DeploymentSuccess(success) = success else {
            unreachable!()
        };
        let plan = success.plan.expect("the plan");
        assert_eq!(plan.id, deployment);
        assert_eq!(plan.affected_apps(), [&id]);
        assert_eq!(
            plan.extra.keys().collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "nothing but id, steps and version"
        );
    }
    marathon.shutdown().await;
}

#[tokio::test]
async fn the_launch_queue_names_what_an_app_that_fits_no_agent_is_short_of() {
    let marathon = Marathon::start(ExecutorKind::Sim).await;
    let client = &marathon.client;
    assert!(client.queue().await.unwrap().is_empty(), "nothing waits");

    let id = app_id("/interop/big");
    let mut app = App::new(id.clone());
    app.cmd = Some("sleep 1000".into());
    app.cpus = Some(500.0);
    app.instances = Some(2);
    client.create_app(&app).await.unwrap();
    let entry = eventually("the app is queued with declined offers", || async {
        client
            .queue()
            .await
            .unwrap()
            .into_iter()
            .find(|entry| entry.app_id() == Some(&id))
            .filter(|entry| {
                entry
                    .processed_offers_summary
                    .as_ref()
                    .is_some_and(|summary| !summary.declined().is_empty())
            })
    })
    .await;
    assert_eq!(entry.count, 2);
    let delay = entry.delay.as_ref().unwrap();
    assert!(delay.overdue && delay.time_left_seconds == 0);
    assert!(entry.since.is_some());
    let summary = entry.processed_offers_summary.as_ref().unwrap();
    let short: Vec<&str> = summary
        .declined()
        .iter()
        .map(|step| step.reason.shortage())
        .collect();
    assert_eq!(short, ["cpus"]);
    assert_eq!(summary.last_offers(), Some(3), "one last offer per agent");
    marathon.shutdown().await;
}
