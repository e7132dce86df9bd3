//! `/v2/deployments`: the running plans, and cancelling one (with or without rollback).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::apps::json_response;
use super::{ApiError, ApiState, QueryParams};
use crate::changes::ChangeError;
use crate::deployment::DeploymentId;

/// `GET /v2/deployments`.
pub async fn list(State(api): State<ApiState>) -> Result<Response, ApiError> {
    let st = api.shared.lock();
    let list: Vec<Value> = st
        .deployments
        .iter()
        .filter(|d| d.is_running())
        .map(|d| d.info_json())
        .collect();
    Ok(json_response(
        StatusCode::OK,
        Value::Array(list).to_string().into_bytes(),
    ))
}

/// `DELETE /v2/deployments/{id}`: `force=true` only cancels (202, no body); otherwise the
/// deployment is cancelled and a new one restores the app as it was before (200 with the new
/// deployment).
pub async fn cancel(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(q.as_deref());
    let force = q.flag("force", false)?;
    let id = DeploymentId::from_raw(&id);
    let mut st = api.shared.lock();
    let cancelled = st
        .cancel_deployment(&api.shared.bus, &id, "Deployment was cancelled")
        .filter(|d| !d.plan.steps.is_empty())
        .ok_or_else(|| ChangeError::DeploymentNotFound(id.as_str().to_string()))?;
    if force {
        drop(st);
        api.shared.wake.notify_one();
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let app = cancelled.plan.app.clone();
    let accepted = match &cancelled.plan.original_app {
        None => st.delete_app(&api.shared, &app, true)?,
        Some(original) => st.restore_app(&api.shared, &app, original)?,
    };
    drop(st);
    api.shared.wake.notify_one();
    let mut response = json_response(
        StatusCode::OK,
        json!({"deploymentId": accepted.deployment, "version": accepted.version})
            .to_string()
            .into_bytes(),
    );
    if let Ok(v) = HeaderValue::from_str(accepted.deployment.as_str()) {
        response.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    Ok(response)
}
