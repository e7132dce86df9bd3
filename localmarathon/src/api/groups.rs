//! `GET /v2/groups[/{id}]`: the group tree derived from app ids.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::apps::json_response;
use super::views::{self, Embed};
use super::{ApiError, ApiState, QueryParams};
use crate::app::AppDefinition;
use crate::app_id::GroupId;

fn render(api: &ApiState, group: &GroupId, q: &QueryParams) -> Result<Response, ApiError> {
    let embeds = q.all("embed");
    // Marathon's default when nothing is asked for: child groups and apps.
    let (embed_groups, embed_apps) = if embeds.is_empty() {
        (true, true)
    } else {
        (
            embeds.iter().any(|e| e == "group.groups"),
            embeds.iter().any(|e| e.starts_with("group.apps")),
        )
    };
    let app_embed = Embed::parse(&embeds, "group.apps.");
    let st = api.shared.lock();
    let snapshot = st.snapshot();
    if !snapshot.has_group(group) {
        return Err(ApiError::NotFound(format!(
            "Group '{group}' does not exist"
        )));
    }
    let render_app = |a: &AppDefinition| {
        st.app(&a.id)
            .and_then(|r| serde_json::to_value(views::app_info(&st, r, app_embed)).ok())
            .unwrap_or_default()
    };
    let view = snapshot.view(group, &render_app, embed_apps, embed_groups);
    let body = serde_json::to_vec(&view).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /v2/groups`.
pub async fn root(
    State(api): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    render(&api, &GroupId::root(), &QueryParams::parse(q.as_deref()))
}

/// `GET /v2/groups/{id}`.
pub async fn show(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let group = GroupId::parse(&id)
        .map_err(|e| ApiError::NotFound(format!("Group '{id}' does not exist: {e}")))?;
    render(&api, &group, &QueryParams::parse(q.as_deref()))
}
