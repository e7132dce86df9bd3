//! `/v2/apps` and everything below it.
//!
//! App ids contain slashes, so everything under `/v2/apps/` is routed here and split as
//! Marathon's JAX-RS paths do: a trailing `/restart` (POST), `/tasks`, `/tasks/{taskId}`,
//! `/versions` or `/versions/{version}` selects a sub-resource of the app before it.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::views::{self, Embed};
use super::{ApiError, ApiState, Connection, QueryParams};
use crate::app_id::{AppId, GroupId};
use crate::app_update::{AppUpdate, create_id};
use crate::changes::Accepted;
use crate::events::{self, MarathonEvent};
use crate::state::KillReason;
use crate::task::InstanceId;
use crate::timestamp::Timestamp;

/// A JSON body with the given status.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn deployment_response(status: StatusCode, accepted: &Accepted) -> Response {
    let body = json!({
        "version": accepted.version,
        "deploymentId": accepted.deployment,
    });
    let mut response = json_response(status, body.to_string().into_bytes());
    if let Ok(v) = HeaderValue::from_str(accepted.deployment.as_str()) {
        response.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    response
}

fn parse_app_id(raw: &str) -> Result<AppId, ApiError> {
    AppId::parse(raw).map_err(|e| {
        ApiError::Invalid(vec![crate::validation::ErrorDetail {
            path: "/id".into(),
            errors: vec![e.to_string()],
        }])
    })
}

fn publish_api_post(
    api: &ApiState,
    client: SocketAddr,
    uri: &str,
    app: &crate::app::AppDefinition,
) {
    api.shared.bus.publish(|| events::ApiPostEvent {
        client_ip: client.ip().to_string(),
        uri: uri.to_string(),
        app_definition: serde_json::to_value(app).unwrap_or_default(),
        event_type: events::ApiPostEvent::TYPE,
        timestamp: Timestamp::now(),
    });
}

/// A label selector term of `GET /v2/apps?label=`.
#[derive(Debug, Clone, PartialEq)]
enum LabelTerm {
    Exists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// Splits on commas outside parentheses, honouring backslash escapes.
fn split_selectors(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_label_term(raw: &str) -> Result<LabelTerm, ApiError> {
    let set = |rest: &str| -> Option<Vec<String>> {
        let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
        Some(inner.split(',').map(|s| s.trim().to_string()).collect())
    };
    if let Some((k, v)) = raw.split_once("!=") {
        return Ok(LabelTerm::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = raw.split_once("==") {
        return Ok(LabelTerm::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, rest)) = raw.split_once(" notin ")
        && let Some(values) = set(rest)
    {
        return Ok(LabelTerm::NotIn(k.trim().into(), values));
    }
    if let Some((k, rest)) = raw.split_once(" in ")
        && let Some(values) = set(rest)
    {
        return Ok(LabelTerm::In(k.trim().into(), values));
    }
    if raw.contains(' ') || raw.contains('(') {
        return Err(ApiError::BadRequest(format!(
            "Invalid label selector: '{raw}'"
        )));
    }
    Ok(LabelTerm::Exists(raw.into()))
}

impl LabelTerm {
    fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            LabelTerm::Exists(k) => labels.contains_key(k),
            LabelTerm::Equals(k, v) => labels.get(k) == Some(v),
            LabelTerm::NotEquals(k, v) => labels.get(k).is_some_and(|x| x != v),
            LabelTerm::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            LabelTerm::NotIn(k, vs) => labels.get(k).is_some_and(|x| !vs.contains(x)),
        }
    }
}

/// `GET /v2/apps`.
pub async fn list(
    State(api): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    api.shared.traffic.app_listed();
    let q = QueryParams::parse(q.as_deref());
    let mut embed = Embed::parse(&q.all("embed"), "apps.");
    // Marathon embeds counts and deployments in the list whether asked or not.
    embed.counts = true;
    embed.deployments = true;
    let id_filter = q.one("id").map(str::to_string);
    let cmd_filter = q.one("cmd").map(str::to_string);
    let label_terms = match q.one("label") {
        Some(raw) => split_selectors(raw)
            .iter()
            .map(|t| parse_label_term(t))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let st = api.shared.lock();
    let apps: Vec<views::AppInfo<'_>> = st
        .visible_apps()
        .filter(|r| {
            id_filter
                .as_deref()
                .is_none_or(|f| r.def.id.as_str().contains(f))
                && cmd_filter
                    .as_deref()
                    .is_none_or(|f| r.def.cmd.as_deref().is_some_and(|c| c.contains(f)))
                && label_terms.iter().all(|t| t.matches(&r.def.labels))
        })
        .map(|r| views::app_info(&st, r, embed))
        .collect();
    let body = serde_json::to_vec(&views::Wrapped("apps", &apps))
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /v2/apps`.
pub async fn create(
    State(api): State<ApiState>,
    ConnectInfo(client): ConnectInfo<Connection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let force = QueryParams::parse(q.as_deref()).flag("force", false)?;
    let update = AppUpdate::parse(&body)?;
    let id = create_id(&update)?;
    let (accepted, body) = {
        let mut st = api.shared.lock();
        let accepted = st.create_app(&api.shared, update, id.clone(), force)?;
        let record = st
            .app(&id)
            .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
        // Marathon 1.10 answers a create with counts and deployments but no `tasks` key.
        let embed = Embed {
            counts: true,
            tasks: false,
            deployments: true,
            last_task_failure: false,
            readiness: false,
        };
        let body = serde_json::to_vec(&views::app_info(&st, record, embed))
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        (accepted, body)
    };
    if let Some(app) = &accepted.app {
        publish_api_post(&api, client.remote, "/v2/apps", app);
    }
    api.shared.wake.notify_one();
    let mut response = json_response(StatusCode::CREATED, body);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| api.leader.to_string());
    if let Ok(v) = HeaderValue::from_str(&format!("http://{host}/v2/apps{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(accepted.deployment.as_str()) {
        response.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    Ok(response)
}

/// Everything under `/v2/apps/`.
pub async fn dispatch(
    State(api): State<ApiState>,
    ConnectInfo(client): ConnectInfo<Connection>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(q.as_deref());
    let rest = rest.trim_end_matches('/');
    let uri = format!("/v2/apps/{rest}");
    if method == Method::POST {
        if let Some(app) = rest.strip_suffix("/restart") {
            return restart(&api, &parse_app_id(app)?, &q);
        }
        return Err(ApiError::NotFound(format!(
            "The requested resource '{uri}' could not be found"
        )));
    }
    if method == Method::GET {
        if let Some(app) = rest.strip_suffix("/tasks") {
            return app_tasks(&api, &parse_app_id(app)?);
        }
        if let Some(app) = rest.strip_suffix("/versions") {
            return versions(&api, &parse_app_id(app)?);
        }
        if let Some((app, version)) = rest.rsplit_once("/versions/") {
            return version_of(&api, &parse_app_id(app)?, version);
        }
        api.shared.traffic.app_read();
        return show(&api, rest, &q);
    }
    if method == Method::DELETE {
        if let Some(app) = rest.strip_suffix("/tasks") {
            return kill_tasks(&api, &parse_app_id(app)?, &q);
        }
        if let Some((app, task)) = rest.rsplit_once("/tasks/") {
            return kill_task(&api, &parse_app_id(app)?, task, &q);
        }
        return delete(&api, &parse_app_id(rest)?, &q);
    }
    if method == Method::PUT || method == Method::PATCH {
        let id = parse_app_id(rest)?;
        let update = AppUpdate::parse(&body)?;
        let partial = method == Method::PATCH || q.flag("partialUpdate", true)?;
        let force = q.flag("force", false)?;
        let (accepted, created) = {
            let mut st = api.shared.lock();
            st.update_app(
                &api.shared,
                id.clone(),
                update,
                partial,
                force,
                method == Method::PUT,
            )?
        };
        if let Some(app) = &accepted.app {
            publish_api_post(&api, client.remote, &uri, app);
        }
        api.shared.wake.notify_one();
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut response = deployment_response(status, &accepted);
        if created
            && let Ok(v) = HeaderValue::from_str(&format!("http://{}/v2/apps{id}", api.leader))
        {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(response);
    }
    Err(ApiError::NotFound(format!(
        "The requested resource '{uri}' could not be found"
    )))
}

fn show(api: &ApiState, raw: &str, q: &QueryParams) -> Result<Response, ApiError> {
    let mut embed = Embed::parse(&q.all("embed"), "app.");
    // Marathon's single-app view always carries these.
    embed.counts = true;
    embed.tasks = true;
    embed.deployments = true;
    embed.last_task_failure = true;
    let st = api.shared.lock();
    // `/v2/apps/group/*` lists the apps of a group.
    if let Some(group) = raw.strip_suffix('*') {
        let group = GroupId::parse(group.trim_end_matches('/'))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let apps: Vec<_> = st
            .visible_apps()
            .filter(|r| r.def.id.is_in(&group))
            .map(|r| views::app_info(&st, r, embed))
            .collect();
        let body = serde_json::to_vec(&views::Wrapped("*", &apps))
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        return Ok(json_response(StatusCode::OK, body));
    }
    let id = parse_app_id(raw)?;
    let record = st
        .app(&id)
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
    let body = serde_json::to_vec(&views::Wrapped("app", &views::app_info(&st, record, embed)))
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

fn app_tasks(api: &ApiState, id: &AppId) -> Result<Response, ApiError> {
    let st = api.shared.lock();
    let record = st
        .app(id)
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
    let body = serde_json::to_vec(&views::Wrapped("tasks", &views::tasks_of(&st, record)))
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

fn versions(api: &ApiState, id: &AppId) -> Result<Response, ApiError> {
    let st = api.shared.lock();
    let record = st
        .app(id)
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
    let versions: Vec<String> = record
        .versions
        .keys()
        .rev()
        .map(Timestamp::to_string)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "versions": versions }).to_string().into_bytes(),
    ))
}

fn version_of(api: &ApiState, id: &AppId, raw: &str) -> Result<Response, ApiError> {
    let st = api.shared.lock();
    let record = st
        .app(id)
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
    let def = Timestamp::parse(raw)
        .ok()
        .and_then(|v| record.versions.get(&v))
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist in version {raw}")))?;
    let body = serde_json::to_vec(&**def).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

fn restart(api: &ApiState, id: &AppId, q: &QueryParams) -> Result<Response, ApiError> {
    let force = q.flag("force", false)?;
    let accepted = api.shared.lock().restart_app(&api.shared, id, force)?;
    api.shared.wake.notify_one();
    Ok(deployment_response(StatusCode::OK, &accepted))
}

fn delete(api: &ApiState, id: &AppId, q: &QueryParams) -> Result<Response, ApiError> {
    // Marathon's DELETE of an app is the one write that defaults to force=true.
    let force = q.flag("force", true)?;
    let accepted = api.shared.lock().delete_app(&api.shared, id, force)?;
    api.shared.wake.notify_one();
    Ok(deployment_response(StatusCode::OK, &accepted))
}

fn kill_task(
    api: &ApiState,
    id: &AppId,
    task: &str,
    q: &QueryParams,
) -> Result<Response, ApiError> {
    let scale = q.flag("scale", false)?;
    let wipe = q.flag("wipe", false)?;
    let force = q.flag("force", false)?;
    if scale && wipe {
        return Err(ApiError::BadRequest(
            "You cannot use scale and wipe at the same time.".into(),
        ));
    }
    let mut st = api.shared.lock();
    if st.app(id).is_none() {
        return Err(ApiError::NotFound(format!("App '{id}' does not exist")));
    }
    let (instance, body) = {
        let (inst, t) = st
            .find_task(id, task)
            .ok_or_else(|| ApiError::NotFound(format!("Task '{task}' does not exist")))?;
        let record = st
            .app(id)
            .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
        let view = views::TaskView::new(&record.def, &st.agents[t.agent.0], t);
        (
            inst.id.clone(),
            serde_json::to_vec(&views::Wrapped("task", &view)),
        )
    };
    if scale {
        let accepted = st.scale_down_killing(&api.shared, id, &[instance], force)?;
        drop(st);
        api.shared.wake.notify_one();
        return Ok(deployment_response(StatusCode::OK, &accepted));
    }
    if wipe {
        st.decommission(id, &instance, KillReason::Requested);
    } else {
        st.kill_instance_task(id, &instance, KillReason::Requested);
    }
    drop(st);
    api.shared.wake.notify_one();
    let body = body.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

fn kill_tasks(api: &ApiState, id: &AppId, q: &QueryParams) -> Result<Response, ApiError> {
    let scale = q.flag("scale", false)?;
    let wipe = q.flag("wipe", false)?;
    let force = q.flag("force", false)?;
    let host = q.one("host").map(str::to_string);
    let mut st = api.shared.lock();
    let record = st
        .app(id)
        .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
    let chosen: Vec<(InstanceId, serde_json::Value)> = record
        .instances
        .values()
        .filter_map(|i| {
            let t = i.task.as_ref()?;
            let agent = &st.agents[t.agent.0];
            if host
                .as_deref()
                .is_some_and(|h| h != agent.hostname && h != "*")
            {
                return None;
            }
            let view = views::TaskView::new(&record.def, agent, t);
            Some((i.id.clone(), serde_json::to_value(view).unwrap_or_default()))
        })
        .collect();
    let instances: Vec<InstanceId> = chosen.iter().map(|(i, _)| i.clone()).collect();
    if scale {
        let accepted = st.scale_down_killing(&api.shared, id, &instances, force)?;
        drop(st);
        api.shared.wake.notify_one();
        return Ok(deployment_response(StatusCode::OK, &accepted));
    }
    for instance in &instances {
        if wipe {
            st.decommission(id, instance, KillReason::Requested);
        } else {
            st.kill_instance_task(id, instance, KillReason::Requested);
        }
    }
    drop(st);
    api.shared.wake.notify_one();
    let tasks: Vec<serde_json::Value> = chosen.into_iter().map(|(_, v)| v).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "tasks": tasks }).to_string().into_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn label_selectors_follow_marathons_grammar() {
        let labels: BTreeMap<String, String> = [
            ("env".to_string(), "prod".to_string()),
            ("tier".to_string(), "web".to_string()),
        ]
        .into();
        let check = |raw: &str| {
            split_selectors(raw)
                .iter()
                .map(|t| parse_label_term(t).unwrap())
                .all(|t| t.matches(&labels))
        };
        assert!(check("env"));
        assert!(check("env==prod, tier!=db"));
        assert!(check("env in (stage, prod)"));
        assert!(!check("env notin (stage, prod)"));
        assert!(!check("missing"));
        assert!(!check("env==stage"));
        assert_eq!(split_selectors("a\\,b,c"), ["a,b", "c"]);
    }
}
