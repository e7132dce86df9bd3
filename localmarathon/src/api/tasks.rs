//! `/v2/tasks`, `/v2/tasks/delete` and `/v2/queue`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::apps::json_response;
use super::views::{self, TaskView};
use super::{ApiError, ApiState, QueryParams};
use crate::app_id::AppId;
use crate::offers::OfferStatistics;
use crate::state::KillReason;
use crate::task::{InstanceId, TaskState};
use crate::timestamp::Timestamp;

/// `GET /v2/tasks`, filtered by `status` (`running`, `staging`); `text/plain` gives Marathon's
/// tab-separated `app  servicePort  host:port` lines.
pub async fn list(
    State(api): State<ApiState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(q.as_deref());
    let mut statuses = q.all("status");
    statuses.extend(q.all("status[]"));
    let wanted = |s: TaskState| {
        statuses.is_empty()
            || statuses.iter().any(|w| {
                (w.eq_ignore_ascii_case("running") && s == TaskState::Running)
                    || (w.eq_ignore_ascii_case("staging") && s == TaskState::Staging)
            })
    };
    let st = api.shared.lock();
    let tasks: Vec<TaskView<'_>> = st
        .apps
        .values()
        .flat_map(|r| views::tasks_of(&st, r))
        .filter(|t| wanted(t.state))
        .collect();
    let plain = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.starts_with("text/plain"));
    if plain {
        let mut out = String::new();
        for t in &tasks {
            let name = t.app_id.safe_path();
            for (i, port) in t.ports.iter().enumerate() {
                let service = t.service_ports.get(i).copied().unwrap_or(0);
                out.push_str(&format!("{name}\t{service}\t{}:{port}\n", t.host));
            }
        }
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], out).into_response());
    }
    let body = serde_json::to_vec(&views::Wrapped("tasks", &tasks))
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /v2/tasks/delete` with `{"ids": [...]}`.
pub async fn delete_many(
    State(api): State<ApiState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(q.as_deref());
    let scale = q.flag("scale", false)?;
    let wipe = q.flag("wipe", false)?;
    let force = q.flag("force", false)?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let ids: Vec<String> = value
        .get("ids")
        .and_then(|v| v.as_array())
        .ok_or_else(|| ApiError::BadRequest("Body must be {\"ids\": [taskId, ...]}".into()))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut st = api.shared.lock();
    let mut found: Vec<(AppId, InstanceId, serde_json::Value)> = Vec::new();
    for id in &ids {
        let owner = st
            .task_index
            .get(&crate::task::TaskId::from_raw(id))
            .cloned()
            .ok_or_else(|| ApiError::BadRequest(format!("Invalid task id {id}")))?;
        let (app, instance) = owner;
        let record = st
            .apps
            .get(&app)
            .ok_or_else(|| ApiError::BadRequest(format!("Invalid task id {id}")))?;
        let task = record
            .instances
            .get(&instance)
            .and_then(|i| i.task.as_ref())
            .ok_or_else(|| ApiError::BadRequest(format!("Invalid task id {id}")))?;
        let view = TaskView::new(&record.def, &st.agents[task.agent.0], task);
        found.push((
            app,
            instance,
            serde_json::to_value(view).unwrap_or_default(),
        ));
    }
    if scale {
        let mut by_app: std::collections::BTreeMap<AppId, Vec<InstanceId>> = Default::default();
        for (app, instance, _) in &found {
            by_app
                .entry(app.clone())
                .or_default()
                .push(instance.clone());
        }
        let mut last = None;
        for (app, instances) in by_app {
            last = Some(st.scale_down_killing(&api.shared, &app, &instances, force)?);
        }
        drop(st);
        api.shared.wake.notify_one();
        let body = match last {
            Some(a) => json!({"version": a.version, "deploymentId": a.deployment}),
            None => json!({"tasks": []}),
        };
        return Ok(json_response(StatusCode::OK, body.to_string().into_bytes()));
    }
    for (app, instance, _) in &found {
        if wipe {
            st.decommission(app, instance, KillReason::Requested);
        } else {
            st.kill_instance_task(app, instance, KillReason::Requested);
        }
    }
    drop(st);
    api.shared.wake.notify_one();
    let tasks: Vec<serde_json::Value> = found.into_iter().map(|(_, _, v)| v).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "tasks": tasks }).to_string().into_bytes(),
    ))
}

/// `GET /v2/queue`: apps with instances waiting for a launch (held back by the launch delay,
/// or finding no agent with room), as Marathon 1.10 answers: `count` left to launch, the
/// `delay` (`overdue` when launches are not held back), `since` when the launch attempt began,
/// and `processedOffersSummary` from the placement decisions of that attempt (see
/// [`crate::offers`]).
pub async fn queue(State(api): State<ApiState>) -> Result<Response, ApiError> {
    let st = api.shared.lock();
    let now = tokio::time::Instant::now();
    let queue: Vec<serde_json::Value> = st
        .visible_apps()
        .filter_map(|r| {
            let waiting = r
                .instances
                .values()
                .filter(|i| i.goal == crate::state::Goal::Running && i.task.is_none())
                .count();
            if waiting == 0 {
                return None;
            }
            let blocked = r.delay.blocked_until(now);
            let offers = r
                .offers
                .clone()
                .unwrap_or_else(|| OfferStatistics::new(Timestamp::now()));
            Some(json!({
                "app": &*r.def,
                "count": waiting,
                "role": "*",
                "delay": {
                    // Rounded up: a launch held back for 0.4 s is not due yet.
                    "timeLeftSeconds": blocked.map_or(0, |b| {
                        b.saturating_duration_since(now).as_secs_f64().ceil() as u64
                    }),
                    "overdue": blocked.is_none(),
                },
                "since": offers.since,
                "processedOffersSummary": offers.summary(),
            }))
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "queue": queue }).to_string().into_bytes(),
    ))
}
