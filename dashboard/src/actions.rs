//! The dashboard's write path, served only with [`Actions::Enabled`]: a deployment page can
//! scale, pause, resume and undo. Each is a [`theseus::edit`], the code `theseus scale` and
//! `theseus rollout pause|resume|undo` write through.
//!
//! What it promises:
//!
//! - Without [`Actions::Enabled`] none of this is routed: the dashboard has no write path.
//! - Every request names the `/desired` revision its page showed, and the edit is made on
//!   exactly that revision ([`Expected::Revision`]): if the key changed since, nothing is
//!   written and the answer (409) says so, with the revision it is at now.
//! - Cross-site requests are refused (403): a request must carry the header
//!   [`ACTION_HEADER`] (which a page of another origin cannot send without a CORS preflight,
//!   and the dashboard answers none), a JSON body, and, when the browser says where it comes
//!   from (`Origin`, `Sec-Fetch-Site`), come from the dashboard's own origin.
//!
//! What it does not: authenticate. Anyone who can reach the address can act; serve the
//! actions only where that is meant.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use theseus::api::DeploymentKey;
use theseus::edit::{self, Edit, EditError, Edited, Expected};
use tracing::info;

use crate::feed::Picture;

/// Whether the dashboard's pages may write to `/desired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Actions {
    /// Read-only: no write route exists (the default).
    #[default]
    Disabled,
    /// Deployment pages can scale, pause, resume and undo.
    Enabled,
}

/// The header every action request must carry, with the value [`ACTION_HEADER_VALUE`].
pub const ACTION_HEADER: &str = "x-theseus-dashboard";
/// The value of [`ACTION_HEADER`].
pub const ACTION_HEADER_VALUE: &str = "action";

/// An action, as a page sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    /// `scale`, `pause`, `resume` or `undo`.
    action: ActionName,
    /// The `/desired` revision the page showed.
    revision: i64,
    /// For `scale`: the instances.
    instances: Option<u32>,
    /// For `undo`: the revision to go back to (none: the previous one that ran).
    to_revision: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ActionName {
    Scale,
    Pause,
    Resume,
    Undo,
}

/// How an action ended, as the page is told.
#[derive(Debug, Serialize)]
struct ActionAnswer {
    /// `written`, `unchanged`, `conflict` or `refused`.
    outcome: &'static str,
    /// What happened, in words.
    message: String,
    /// The key's revision after the action (written), as it was (unchanged), or as it is
    /// now (conflict; `null` when deleted).
    revision: Option<i64>,
}

/// The action routes over `picture`.
pub(crate) fn router(picture: Arc<Picture>) -> Router {
    Router::new()
        .route("/api/deployments/{service}/{name}/actions", post(act))
        .with_state(picture)
}

fn answer(
    status: StatusCode,
    outcome: &'static str,
    message: String,
    revision: Option<i64>,
) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(ActionAnswer {
            outcome,
            message,
            revision,
        }),
    )
        .into_response()
}

fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, "refused", message.into(), None)
}

/// Why a request is not from a page of this dashboard, if it is not.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if value(ACTION_HEADER) != Some(ACTION_HEADER_VALUE) {
        return Some(format!(
            "an action needs the header `{ACTION_HEADER}: {ACTION_HEADER_VALUE}` (sent by the \
             dashboard's own pages)"
        ));
    }
    if let Some(site) = value("sec-fetch-site")
        && site != "same-origin"
    {
        return Some(format!("a {site} request cannot act"));
    }
    if let Some(origin) = value(header::ORIGIN.as_str()) {
        let host = value(header::HOST.as_str()).unwrap_or_default();
        let same = origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host);
        if !same {
            return Some(format!(
                "a request from origin {origin} cannot act on this dashboard ({host})"
            ));
        }
    }
    None
}

async fn act(
    State(picture): State<Arc<Picture>>,
    Path((service, name)): Path<(String, String)>,
    headers: HeaderMap,
    request: Result<Json<ActionRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(why) = cross_site(&headers) {
        return refused(StatusCode::FORBIDDEN, why);
    }
    let key = match DeploymentKey::new(&service, &name) {
        Ok(key) => key,
        Err(error) => return refused(StatusCode::NOT_FOUND, error.to_string()),
    };
    let request = match request {
        Ok(Json(request)) => request,
        Err(rejection) => return refused(rejection.status(), rejection.body_text()),
    };
    let edit = match (request.action, request.instances) {
        (ActionName::Scale, Some(instances)) => Edit::Scale { instances },
        (ActionName::Scale, None) => {
            return refused(StatusCode::BAD_REQUEST, "scale needs `instances`");
        }
        (ActionName::Pause, _) => Edit::Pause,
        (ActionName::Resume, _) => Edit::Resume,
        (ActionName::Undo, _) => Edit::Undo {
            to_revision: request.to_revision,
        },
    };
    let Some(store) = picture.store() else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dashboard is not connected to etcd yet; nothing was written",
        );
    };
    let outcome = edit::apply(&store, &key, &edit, Expected::Revision(request.revision)).await;
    info!(deployment = %key, action = edit.name(), revision = request.revision, outcome = ?outcome, "dashboard action");
    match outcome {
        Ok(Edited::Written {
            revision,
            previous,
            change,
        }) => answer(
            StatusCode::OK,
            "written",
            format!("{key}: {change}; revision {previous} → {revision}"),
            Some(revision),
        ),
        Ok(Edited::Unchanged { revision, reason }) => answer(
            StatusCode::OK,
            "unchanged",
            format!("{key}: {reason}; nothing was written"),
            Some(revision),
        ),
        Err(error @ EditError::Conflict { found, .. }) => {
            answer(StatusCode::CONFLICT, "conflict", error.to_string(), found)
        }
        Err(error) => {
            let status = match &error {
                EditError::NoDeployment { .. } => StatusCode::NOT_FOUND,
                EditError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            refused(status, error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_requests_from_the_dashboards_own_pages_may_act() {
        let own = [
            (ACTION_HEADER, ACTION_HEADER_VALUE),
            ("host", "127.0.0.1:9090"),
        ];
        assert_eq!(cross_site(&headers(&own)), None);
        let mut same_origin = own.to_vec();
        same_origin.extend([
            ("origin", "http://127.0.0.1:9090"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_site(&headers(&same_origin)), None);

        assert!(cross_site(&headers(&[("host", "127.0.0.1:9090")])).is_some());
        let mut other_origin = own.to_vec();
        other_origin.push(("origin", "http://evil.example"));
        assert!(
            cross_site(&headers(&other_origin))
                .unwrap()
                .contains("evil.example")
        );
        let mut cross = own.to_vec();
        cross.push(("sec-fetch-site", "cross-site"));
        assert!(cross_site(&headers(&cross)).is_some());
    }
}
