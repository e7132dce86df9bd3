//! The Marathon client over real HTTP, against scripted stand-ins for Marathon: failover,
//! leader redirects, error answers, credentials, query parameters and the event stream.

mod marathon_server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::routing::{any, get};
use futures::StreamExt;
use marathon_server::{FakeMarathon, RecordingObserver, client, config, dead_url, fixture};
use theseus::marathon::task::TaskId;
use theseus::marathon::{
    App, AppId, AppQuery, DeploymentId, Embed, Error, Event, EventKind, EventQuery, KillOutcome,
    MarathonClient, PlanFormat, Route, TaskState, TaskStatusFilter,
};

fn app_id(value: &str) -> AppId {
    AppId::parse(value).unwrap()
}

fn json(body: String) -> impl axum::response::IntoResponse {
    ([("content-type", "application/json")], body)
}

fn info_router() -> Router {
    Router::new().route(
        "/v2/info",
        get(|| async { json(fixture("example-info-get-response.json")) }),
    )
}

/// A handler that never answers.
async fn hang() -> &'static str {
    std::future::pending::<()>().await;
    unreachable!()
}

#[tokio::test]
async fn failover_skips_a_dead_url_and_remembers_the_live_one() {
    let dead = dead_url().await;
    let live = FakeMarathon::start(info_router()).await;
    let observer = Arc::new(RecordingObserver::default());
    let client = client(&[&dead, &live.url]).with_observer(observer.clone());

    let info = client.info().await.unwrap();
    assert_eq!(info.name.as_deref(), Some("marathon"));
    let attempts = observer.attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].status, None);
    assert!(attempts[0].url.starts_with(dead.as_str()));
    assert_eq!(attempts[1].status, Some(200));
    assert_eq!(attempts[1].route, Route::Info);

    // The live URL is now tried first: one attempt, no detour over the dead one.
    client.info().await.unwrap();
    let attempts = observer.attempts();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts[2].url.starts_with(live.url.as_str()));
    assert_eq!(live.requests().len(), 2);
}

#[tokio::test]
async fn no_reachable_marathon_is_a_connect_error_naming_the_url() {
    let dead = dead_url().await;
    let error = client(&[&dead]).ping().await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(dead.as_str()), "{error}");
    assert_eq!(error.metric_label(), "connect");
}

#[tokio::test]
async fn a_write_answered_503_moves_on_to_the_next_marathon() {
    let no_leader =
        FakeMarathon::answering(503, r#"{"message":"Leader Currently not available"}"#).await;
    let leader = FakeMarathon::start(Router::new().route(
        "/v2/apps",
        axum::routing::post(|body: String| async move {
            (
                StatusCode::CREATED,
                [
                    ("content-type", "application/json"),
                    (
                        "marathon-deployment-id",
                        "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43",
                    ),
                ],
                body,
            )
        }),
    ))
    .await;
    let client = client(&[&no_leader.url, &leader.url]);
    let app = App {
        cmd: Some("sleep 1000".into()),
        ..App::new(app_id("/simple"))
    };
    let created = client.create_app(&app).await.unwrap();
    assert_eq!(created.app.id, app_id("/simple"));
    assert_eq!(
        created.deployment_id,
        Some(DeploymentId::new("5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"))
    );
    assert_eq!(no_leader.requests().len(), 1);
    assert_eq!(leader.requests().len(), 1);
}

#[tokio::test]
async fn a_write_answered_502_is_not_repeated_elsewhere() {
    // A non-leader's proxy failed: the leader may have received the write.
    let proxy = FakeMarathon::answering(502, r#"{"message":"Bad gateway"}"#).await;
    let other = FakeMarathon::answering(201, "{}").await;
    let client = client(&[&proxy.url, &other.url]);
    let error = client
        .create_app(&App::new(app_id("/simple")))
        .await
        .unwrap_err();
    match &error {
        Error::Unavailable { status, .. } => assert_eq!(status.as_u16(), 502),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(other.requests().is_empty(), "the write was repeated");
}

#[tokio::test]
async fn a_read_answered_502_moves_on_to_the_next_marathon() {
    let proxy = FakeMarathon::answering(502, r#"{"message":"Bad gateway"}"#).await;
    let leader = FakeMarathon::start(info_router()).await;
    client(&[&proxy.url, &leader.url]).info().await.unwrap();
}

#[tokio::test]
async fn a_write_that_times_out_is_not_repeated_elsewhere() {
    let slow = FakeMarathon::start(Router::new().fallback(hang)).await;
    let other = FakeMarathon::answering(201, "{}").await;
    let mut config = config(&[&slow.url, &other.url]);
    config.request_timeout = Duration::from_millis(300);
    let client = MarathonClient::new(config).unwrap();

    let error = client
        .restart_app(&app_id("/web"), false)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(slow.requests().len(), 1);
    assert!(other.requests().is_empty(), "the write was repeated");
}

#[tokio::test]
async fn a_read_that_times_out_moves_on_to_the_next_marathon() {
    let slow = FakeMarathon::start(Router::new().fallback(hang)).await;
    let live = FakeMarathon::start(info_router()).await;
    let mut config = config(&[&slow.url, &live.url]);
    config.request_timeout = Duration::from_millis(300);
    let client = MarathonClient::new(config).unwrap();

    client.info().await.unwrap();
    assert_eq!(live.requests().len(), 1);
}

#[tokio::test]
async fn the_leader_header_makes_the_leader_the_preferred_url() {
    let leader = FakeMarathon::start(info_router()).await;
    let leader_url = format!("http://{}", leader.authority());
    let follower = FakeMarathon::start(Router::new().route(
        "/v2/info",
        get(move || {
            let leader_url = leader_url.clone();
            async move {
                (
                    [
                        ("content-type", "application/json".to_owned()),
                        ("x-marathon-leader", leader_url),
                    ],
                    fixture("example-info-get-response.json"),
                )
            }
        }),
    ))
    .await;
    let client = client(&[&follower.url, &leader.url]);

    client.info().await.unwrap();
    client.info().await.unwrap();
    assert_eq!(follower.requests().len(), 1);
    assert_eq!(leader.requests().len(), 1);
}

/// A router answering `/v2/events` with `body` as an SSE stream.
fn sse_router(body: String) -> Router {
    Router::new().route(
        "/v2/events",
        get(move || {
            let body = body.clone();
            async move { ([("content-type", "text/event-stream")], body) }
        }),
    )
}

#[tokio::test]
async fn events_follow_the_non_leaders_302_with_credentials_and_filters() {
    let leader = FakeMarathon::start(sse_router(
        "event: app_terminated_event\r\ndata: {\"appId\":\"/a\",\"eventType\":\"app_terminated_event\",\"timestamp\":\"2014-03-01T23:29:30.158Z\"}\r\n\r\n"
            .into(),
    ))
    .await;
    let leader_events = format!("{}v2/events", leader.url);
    let follower = FakeMarathon::start(Router::new().route(
        "/v2/events",
        get(move |RawQuery(query): RawQuery| {
            let location = format!("{leader_events}?{}", query.unwrap_or_default());
            async move { (StatusCode::FOUND, [("location", location)]) }
        }),
    ))
    .await;
    let mut config = config(&[&follower.url]);
    config.username = Some("marathon".into());
    config.password = Some("secret".into());
    let client = MarathonClient::new(config).unwrap();

    let stream = client
        .events(&[EventKind::AppTerminated, EventKind::StatusUpdate])
        .await
        .unwrap();
    assert!(stream.url().as_str().starts_with(leader.url.as_str()));
    let events: Vec<Event> = stream.map(Result::unwrap).collect().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].app_id(), Some(&app_id("/a")));

    let at_leader = &leader.requests()[0];
    assert_eq!(
        at_leader.header("authorization").as_deref(),
        Some("Basic bWFyYXRob246c2VjcmV0")
    );
    assert_eq!(
        at_leader.header("accept").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(
        at_leader.query_values("event_type"),
        ["app_terminated_event", "status_update_event"]
    );
    assert_eq!(
        follower.requests()[0].query_values("event_type"),
        ["app_terminated_event", "status_update_event"]
    );
}

#[tokio::test]
async fn after_a_redirect_to_a_configured_leader_requests_go_there_first() {
    let leader = FakeMarathon::start(sse_router(String::new()).merge(info_router())).await;
    let leader_events = format!("{}v2/events", leader.url);
    let follower = FakeMarathon::start(Router::new().route(
        "/v2/events",
        get(move || {
            let location = leader_events.clone();
            async move { (StatusCode::FOUND, [("location", location)]) }
        }),
    ))
    .await;
    let client = client(&[&follower.url, &leader.url]);

    client.events(&[]).await.unwrap();
    client.info().await.unwrap();
    assert_eq!(follower.requests().len(), 1);
    let at_leader: Vec<String> = leader.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(at_leader, ["/v2/events", "/v2/info"]);
}

#[tokio::test]
async fn sse_fixture_stream_over_crlf_yields_every_event_typed() {
    // Marathon's Jetty frames events with CRLF.
    let mut body = fixture("example-events-sse-stream.txt").replace('\n', "\r\n");
    body.push_str("event: scheduler_registered_event\r\ndata: {\"frameworkId\":\"f-1\",\"eventType\":\"scheduler_registered_event\"}\r\n\r\n");
    body.push_str("event: status_update_event\r\ndata: {\"taskId\":\"t\",\"eventType\":\"status_update_event\"}\r\n\r\n");
    let marathon = FakeMarathon::start(sse_router(body)).await;

    let events: Vec<Event> = client(&[&marathon.url])
        .events(&[])
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;

    let kinds: Vec<Option<EventKind>> = events.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        [
            Some(EventKind::EventStreamAttached),
            Some(EventKind::StatusUpdate),
            Some(EventKind::StatusUpdate),
            None,
            None,
        ]
    );
    let Event::StatusUpdate(failed) = &events[1] else {
        unreachable!()
    };
    assert_eq!(failed.task_status, TaskState::Failed);
    assert_eq!(failed.app_id, app_id("/foo"));
    let Event::StatusUpdate(running) = &events[2] else {
        unreachable!()
    };
    assert_eq!(running.task_status, TaskState::Running);
    match &events[3] {
        Event::Unknown {
            event_type,
            data,
            error: None,
        } => {
            assert_eq!(event_type, "scheduler_registered_event");
            assert_eq!(data["frameworkId"], "f-1");
        }
        other => panic!("unknown event lost: {other:?}"),
    }
    match &events[4] {
        Event::Unknown {
            event_type,
            error: Some(_),
            ..
        } => assert_eq!(event_type, "status_update_event"),
        other => panic!("undecodable event lost: {other:?}"),
    }

    let request = &marathon.requests()[0];
    assert_eq!(
        request.header("accept").as_deref(),
        Some("text/event-stream")
    );
    assert!(
        request.query_values("event_type").is_empty(),
        "no filter means no event_type"
    );
}

#[tokio::test]
async fn light_plans_are_asked_for_unless_full_ones_are_chosen() {
    let marathon = FakeMarathon::start(sse_router(String::new())).await;
    let client = client(&[&marathon.url]);

    client.events(&[EventKind::DeploymentInfo]).await.unwrap();
    client
        .events_with(&EventQuery {
            kinds: vec![EventKind::DeploymentInfo],
            plan_format: PlanFormat::Full,
        })
        .await
        .unwrap();
    client.events_with(&EventQuery::default()).await.unwrap();

    let requests = marathon.requests();
    assert_eq!(requests[0].query_values("plan-format"), ["light"]);
    assert_eq!(requests[0].query_values("event_type"), ["deployment_info"]);
    // Full plans are Marathon's own default: asked for by leaving the parameter out.
    assert!(requests[1].query_values("plan-format").is_empty());
    assert_eq!(requests[1].query_values("event_type"), ["deployment_info"]);
    assert_eq!(requests[2].query_values("plan-format"), ["light"]);
    assert!(requests[2].query_values("event_type").is_empty());
}

#[tokio::test]
async fn events_refused_by_marathon_are_a_typed_error() {
    let marathon =
        FakeMarathon::answering(401, r#"{"message":"Invalid username or password."}"#).await;
    let error = client(&[&marathon.url]).events(&[]).await.unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
}

#[tokio::test]
async fn each_error_answer_becomes_its_typed_error() {
    let locked = r#"{"message":"App is locked by one or more deployments.","deployments":[{"id":"97c136bf-5a28-4821-9d94-480d9fbb01c8"}]}"#;
    let invalid = r#"{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}"#;
    let bad_json = r#"{"message":"Invalid JSON","details":[{"path":"/id","errors":["error.expected.jsstring"]}]}"#;
    let foo = app_id("/foo");
    let app = App::new(foo.clone());

    let marathon = FakeMarathon::answering(
        409,
        r#"{"message":"An app with id [/foo] already exists."}"#,
    )
    .await;
    match client(&[&marathon.url]).create_app(&app).await.unwrap_err() {
        Error::AppExists { app, .. } => assert_eq!(app, foo),
        other => panic!("409 on create: {other:?}"),
    }

    let marathon = FakeMarathon::answering(409, locked).await;
    match client(&[&marathon.url])
        .update_app(&foo, &app, false)
        .await
        .unwrap_err()
    {
        Error::Locked {
            app, deployments, ..
        } => {
            assert_eq!(app, foo);
            assert_eq!(
                deployments,
                [DeploymentId::new("97c136bf-5a28-4821-9d94-480d9fbb01c8")]
            );
        }
        other => panic!("409 lock: {other:?}"),
    }

    let marathon = FakeMarathon::answering(404, r#"{"message":"App '/foo' does not exist"}"#).await;
    let error = client(&[&marathon.url])
        .get_app(&foo, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::NotFound { what, .. } if what.contains("/foo")),
        "{error:?}"
    );

    let marathon = FakeMarathon::answering(422, invalid).await;
    match client(&[&marathon.url]).create_app(&app).await.unwrap_err() {
        Error::Invalid { details, .. } => {
            assert_eq!(details[0].path, "/upgradeStrategy/minimumHealthCapacity");
            assert_eq!(details[0].errors, ["is greater than 1"]);
        }
        other => panic!("422: {other:?}"),
    }

    let marathon = FakeMarathon::answering(400, bad_json).await;
    match client(&[&marathon.url])
        .patch_app(&foo, &app, false)
        .await
        .unwrap_err()
    {
        Error::Invalid { details, .. } => assert_eq!(details[0].path, "/id"),
        other => panic!("400: {other:?}"),
    }

    let marathon =
        FakeMarathon::answering(401, r#"{"message":"Invalid username or password."}"#).await;
    let error = client(&[&marathon.url]).info().await.unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");

    let marathon = FakeMarathon::answering(
        403,
        r#"{"message":"Not Authorized to perform this action!"}"#,
    )
    .await;
    let error = client(&[&marathon.url])
        .delete_app(&foo, false)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Forbidden { .. }), "{error:?}");

    let marathon =
        FakeMarathon::answering(503, r#"{"message":"Leader Currently not available"}"#).await;
    match client(&[&marathon.url]).info().await.unwrap_err() {
        Error::Unavailable {
            status, message, ..
        } => {
            assert_eq!(status.as_u16(), 503);
            assert_eq!(message, "Leader Currently not available");
        }
        other => panic!("503: {other:?}"),
    }

    let marathon = FakeMarathon::answering(404, r#"{"message":"There is no leader"}"#).await;
    let error = client(&[&marathon.url]).leader().await.unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");

    let marathon = FakeMarathon::answering(500, "boom").await;
    let error = client(&[&marathon.url]).deployments().await.unwrap_err();
    assert!(
        matches!(&error, Error::UnexpectedStatus { status, body, .. } if status.as_u16() == 500 && body == "boom"),
        "{error:?}"
    );

    let marathon = FakeMarathon::answering(200, r#"{"apps": "not a list"}"#).await;
    let error = client(&[&marathon.url])
        .list_apps(&AppQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
}

#[tokio::test]
async fn basic_auth_is_sent_from_the_config_or_the_url() {
    let marathon = FakeMarathon::start(info_router()).await;
    let mut config = config(&[&marathon.url]);
    config.username = Some("marathon".into());
    config.password = Some("secret".into());
    MarathonClient::new(config).unwrap().info().await.unwrap();

    let mut with_userinfo = marathon.url.clone();
    with_userinfo.set_username("ops").unwrap();
    with_userinfo.set_password(Some("p@ss")).unwrap();
    let client = client(&[&with_userinfo]);
    assert!(
        client.urls()[0].password().is_none(),
        "credentials kept in the URL"
    );
    client.info().await.unwrap();

    let auth: Vec<Option<String>> = marathon
        .requests()
        .iter()
        .map(|r| r.header("authorization"))
        .collect();
    assert_eq!(
        auth,
        [
            Some("Basic bWFyYXRob246c2VjcmV0".to_owned()),
            Some("Basic b3BzOnBAc3M=".to_owned())
        ]
    );
}

#[tokio::test]
async fn deployable_calls_send_force_and_update_mode_explicitly() {
    let result = fixture("example-deployment-result-response.json");
    let marathon = FakeMarathon::start(Router::new().fallback(any(move || {
        let result = result.clone();
        async move { json(result) }
    })))
    .await;
    let client = client(&[&marathon.url]);
    let id = app_id("/ingestor/dev");
    let definition = App {
        instances: Some(3),
        ..App::new(id.clone())
    };

    let result = client.update_app(&id, &definition, true).await.unwrap();
    assert_eq!(
        result.deployment_id.as_str(),
        "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"
    );
    client.patch_app(&id, &definition, false).await.unwrap();
    client.delete_app(&id, false).await.unwrap();
    client.restart_app(&id, true).await.unwrap();

    let requests = marathon.requests();
    let put = &requests[0];
    assert_eq!(
        (put.method.as_str(), put.path.as_str()),
        ("PUT", "/v2/apps/ingestor/dev")
    );
    assert_eq!(put.query_values("force"), ["true"]);
    assert_eq!(put.query_values("partialUpdate"), ["false"]);
    assert_eq!(
        put.json(),
        serde_json::json!({"id": "/ingestor/dev", "instances": 3})
    );
    assert_eq!(
        put.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(requests[1].query_values("partialUpdate"), ["true"]);
    assert_eq!(requests[1].query_values("force"), ["false"]);
    // DELETE defaults to force=true in Marathon: false must be said.
    let delete = &requests[2];
    assert_eq!(delete.method.as_str(), "DELETE");
    assert_eq!(delete.query_values("force"), ["false"]);
    let restart = &requests[3];
    assert_eq!(
        (restart.method.as_str(), restart.path.as_str()),
        ("POST", "/v2/apps/ingestor/dev/restart")
    );
    assert_eq!(restart.query_values("force"), ["true"]);
}

#[tokio::test]
async fn fixture_responses_decode_through_the_client() {
    let router = Router::new()
        .route(
            "/v2/apps",
            get(|| async { json(fixture("example-apps-get-response.json")) }),
        )
        .route(
            "/v2/apps/myapp",
            get(|| async {
                let list: serde_json::Value =
                    serde_json::from_str(&fixture("example-apps-get-response.json")).unwrap();
                json(serde_json::json!({"app": list["apps"][0]}).to_string())
            }),
        )
        .route(
            "/v2/apps/minecraft/survival-world/tasks",
            get(|| async { json(fixture("example-app-tasks-get-response.json")) })
                .delete(|| async { json(fixture("example-app-tasks-get-response.json")) }),
        )
        .route(
            "/v2/apps/minecraft/survival-world/tasks/{task}",
            axum::routing::delete(|| async {
                json(fixture("example-app-task-delete-response.json"))
            }),
        )
        .route(
            "/v2/apps/minecraft/survival-world/versions",
            get(|| async { json(r#"{"versions":["2014-03-01T23:42:20.938Z"]}"#.into()) }),
        )
        .route(
            "/v2/apps/minecraft/survival-world/versions/{version}",
            get(|| async { json(fixture("example-app-post-request-body.json")) }),
        )
        .route(
            "/v2/tasks",
            get(|| async { json(fixture("example-tasks-get-response.json")) }),
        )
        .route(
            "/v2/deployments",
            get(|| async { json(fixture("example-deployments-get-response.json")) }),
        )
        .route(
            "/v2/deployments/{id}",
            axum::routing::delete(|RawQuery(query): RawQuery| async move {
                if query.unwrap_or_default().contains("force=true") {
                    (StatusCode::ACCEPTED, String::new())
                } else {
                    (
                        StatusCode::OK,
                        fixture("example-deployment-result-response.json"),
                    )
                }
            }),
        )
        .route(
            "/v2/leader",
            get(|| async { json(r#"{"leader":"marathon.globalcorp.com:8080"}"#.into()) }),
        )
        .route("/ping", get(|| async { "pong" }));
    let marathon = FakeMarathon::start(router).await;
    let client = client(&[&marathon.url]);
    let minecraft = app_id("/minecraft/survival-world");

    let query = AppQuery {
        label: Some("THESEUS_MANAGED==true".into()),
        embed: vec![Embed::Tasks, Embed::Counts, Embed::LastTaskFailure],
        ..AppQuery::default()
    };
    let apps = client.list_apps(&query).await.unwrap();
    assert_eq!(apps[0].id, app_id("/myapp"));
    let list_request = &marathon.requests()[0];
    assert_eq!(
        list_request.query_values("embed"),
        ["apps.tasks", "apps.counts", "apps.lastTaskFailure"]
    );
    assert_eq!(
        list_request.query_values("label"),
        ["THESEUS_MANAGED==true"]
    );

    let app = client
        .get_app(&app_id("myapp"), &[Embed::Tasks])
        .await
        .unwrap();
    assert_eq!(app.instances, Some(3));
    assert_eq!(marathon.requests()[1].query_values("embed"), ["app.tasks"]);

    let tasks = client.app_tasks(&minecraft).await.unwrap();
    assert_eq!(tasks[0].ports.as_deref(), Some(&[31756][..]));

    let task =
        TaskId::new("minecraft_survival-world.instance-564bd685-4c30-11e5-98c1-be5b2935a987");
    match client
        .kill_task(&minecraft, &task, false, false)
        .await
        .unwrap()
    {
        KillOutcome::Killed(killed) => assert_eq!(killed[0].id, task),
        other => panic!("{other:?}"),
    }
    match client
        .kill_app_tasks(&minecraft, Some("srv7.hw.ca1.mesosphere.com"), false, false)
        .await
        .unwrap()
    {
        KillOutcome::Killed(killed) => assert_eq!(killed.len(), 1),
        other => panic!("{other:?}"),
    }
    let kill_all = marathon.requests().pop().unwrap();
    assert_eq!(
        kill_all.query_values("host"),
        ["srv7.hw.ca1.mesosphere.com"]
    );
    assert_eq!(kill_all.query_values("scale"), ["false"]);
    assert_eq!(kill_all.query_values("wipe"), ["false"]);

    let versions = client.app_versions(&minecraft).await.unwrap();
    assert_eq!(versions[0].as_str(), "2014-03-01T23:42:20.938Z");
    let old = client.app_version(&minecraft, &versions[0]).await.unwrap();
    assert_eq!(old.id, app_id("/foo"));
    assert_eq!(
        marathon.requests().pop().unwrap().path,
        "/v2/apps/minecraft/survival-world/versions/2014-03-01T23:42:20.938Z"
    );

    let running = client.tasks(Some(TaskStatusFilter::Running)).await.unwrap();
    assert_eq!(running.len(), 2);
    assert_eq!(
        marathon.requests().pop().unwrap().query_values("status"),
        ["running"]
    );

    let deployments = client.deployments().await.unwrap();
    assert_eq!(deployments[0].affected_apps, [app_id("/foo")]);
    let id = deployments[0].id.clone();
    let rollback = client.cancel_deployment(&id, false).await.unwrap();
    assert!(
        rollback.is_some(),
        "a cancel without force starts a rollback"
    );
    assert_eq!(client.cancel_deployment(&id, true).await.unwrap(), None);

    assert_eq!(
        client.leader().await.unwrap().leader,
        "marathon.globalcorp.com:8080"
    );
    client.ping().await.unwrap();
}

#[tokio::test]
async fn a_path_prefix_in_the_url_is_kept_without_doubled_slashes() {
    let marathon = FakeMarathon::start(Router::new().nest("/marathon", info_router())).await;
    let prefixed = marathon.url.join("marathon/").unwrap();
    client(&[&prefixed]).info().await.unwrap();
    assert_eq!(marathon.requests()[0].path, "/marathon/v2/info");
}

#[tokio::test]
async fn a_client_without_urls_or_with_a_bad_ca_file_is_a_clear_error() {
    let error =
        MarathonClient::new(theseus::marathon::MarathonConfig::new(Vec::new())).unwrap_err();
    assert_eq!(error.metric_label(), "config");

    let url = reqwest::Url::parse("https://marathon:8443").unwrap();
    let mut config = config(&[&url]);
    config.ca_file = Some("/nonexistent/ca.pem".into());
    let error = MarathonClient::new(config).unwrap_err();
    assert!(matches!(error, Error::CaFile { .. }), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}

#[tokio::test]
async fn a_trimmed_list_is_the_list_with_each_app_trimmed() {
    let router = Router::new().route(
        "/v2/apps",
        get(|| async { json(fixture("example-apps-get-response.json")) }),
    );
    let marathon = FakeMarathon::start(router).await;
    let client = client(&[&marathon.url]);
    let trim = |app: &mut App| {
        app.cmd = None;
        app.labels = None;
    };

    let whole = client.list_apps(&AppQuery::default()).await.unwrap();
    let trimmed = client
        .list_apps_trimmed(&AppQuery::default(), trim)
        .await
        .unwrap();
    assert!(
        whole
            .iter()
            .any(|app| app.cmd.is_some() && app.labels.is_some()),
        "the fixture has what is trimmed"
    );
    let expected: Vec<App> = whole
        .into_iter()
        .map(|mut app| {
            trim(&mut app);
            app
        })
        .collect();
    assert_eq!(trimmed, expected);
}

#[tokio::test]
async fn a_list_that_is_not_one_is_a_decode_error_naming_the_url() {
    for body in [
        r#"{"app": []}"#,
        r#"{"apps": {}}"#,
        r#"{"apps": []} trailing"#,
    ] {
        let router = Router::new().route("/v2/apps", get(move || async move { json(body.into()) }));
        let marathon = FakeMarathon::start(router).await;
        let error = client(&[&marathon.url])
            .list_apps(&AppQuery::default())
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{body}: {error:?}");
        assert!(error.to_string().contains("app list"), "{error}");
        assert!(error.to_string().contains(marathon.url.as_str()), "{error}");
    }
}

/// The fixture list as `parts` byte slices of `size` bytes: parts end inside strings, escapes
/// and numbers alike.
fn in_parts(text: &str, size: usize) -> Vec<Result<Vec<u8>, std::io::Error>> {
    text.as_bytes()
        .chunks(size)
        .map(|part| Ok(part.to_vec()))
        .collect()
}

#[tokio::test]
async fn a_list_arriving_in_small_parts_reads_as_the_whole() {
    let text = fixture("example-apps-get-response.json");
    let whole_router = Router::new().route(
        "/v2/apps",
        get({
            let text = text.clone();
            move || async move { json(text) }
        }),
    );
    let whole = client(&[&FakeMarathon::start(whole_router).await.url])
        .list_apps(&AppQuery::default())
        .await
        .unwrap();
    assert!(!whole.is_empty(), "the fixture lists apps");
    for size in [1, 7, 4096] {
        let text = text.clone();
        let router = Router::new().route(
            "/v2/apps",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    axum::body::Body::from_stream(futures::stream::iter(in_parts(&text, size))),
                )
            }),
        );
        let marathon = FakeMarathon::start(router).await;
        let listed = client(&[&marathon.url])
            .list_apps(&AppQuery::default())
            .await
            .unwrap();
        assert_eq!(listed, whole, "parts of {size} bytes");
    }
}

#[tokio::test]
async fn a_list_cut_short_by_the_connection_is_a_transport_error_not_a_decode_error() {
    let text = fixture("example-apps-get-response.json");
    let half = text[..text.len() / 2].to_owned();
    let router = Router::new().route(
        "/v2/apps",
        get(move || async move {
            let mut parts = in_parts(&half, 512);
            parts.push(Err(std::io::Error::other("connection reset")));
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                axum::body::Body::from_stream(futures::stream::iter(parts)),
            )
        }),
    );
    let marathon = FakeMarathon::start(router).await;
    let error = client(&[&marathon.url])
        .list_apps(&AppQuery::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Transport { .. } | Error::Timeout { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(marathon.url.as_str()), "{error}");
}

#[tokio::test]
async fn a_long_list_is_handed_out_in_parts_that_make_up_the_whole() {
    let apps: Vec<serde_json::Value> = (0..150)
        .map(|i| serde_json::json!({"id": format!("/many/app{i}"), "cmd": "sleep 1", "instances": 1}))
        .collect();
    let text = serde_json::json!({ "apps": apps }).to_string();
    let router = Router::new().route(
        "/v2/apps",
        get(move || {
            let text = text.clone();
            async move { json(text) }
        }),
    );
    let marathon = FakeMarathon::start(router).await;
    let client = client(&[&marathon.url]);
    let whole = client.list_apps(&AppQuery::default()).await.unwrap();
    assert_eq!(whole.len(), 150);
    let mut parts: Vec<Vec<App>> = Vec::new();
    client
        .list_apps_in_parts(&AppQuery::default(), |_| {}, |part| parts.push(part))
        .await
        .unwrap();
    assert!(parts.len() > 1, "150 apps come in more than one part");
    assert!(parts.iter().all(|part| !part.is_empty()));
    assert_eq!(parts.concat(), whole, "in the list's order");
}
