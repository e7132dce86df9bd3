//! Marathon's error answers: status codes and `{"message", "details"|"deployments"}` bodies.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app_update::AppBodyError;
use crate::changes::ChangeError;
use crate::deployment::DeploymentId;
use crate::validation::ErrorDetail;

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 with a message.
    #[error("{0}")]
    NotFound(String),
    /// 409: an object with this id exists.
    #[error("{0}")]
    Conflict(String),
    /// 409: a deployment holds the app.
    #[error("{message}")]
    Locked {
        /// Marathon's message.
        message: String,
        /// The deployments holding it.
        deployments: Vec<DeploymentId>,
    },
    /// 400 `Invalid JSON`: the body is not JSON; `details` is the parser's message.
    #[error("Invalid JSON: {0}")]
    MalformedJson(String),
    /// 422 `Invalid JSON`: JSON that Marathon's readers reject, `details` per path.
    #[error("Invalid JSON")]
    InvalidJson(Vec<ErrorDetail>),
    /// 422 `Object is not valid`.
    #[error("Object is not valid")]
    Invalid(Vec<ErrorDetail>),
    /// 400 with a message.
    #[error("{0}")]
    BadRequest(String),
    /// 405 from Jetty for `/v2/events` without `Accept: text/event-stream`.
    #[error("HTTP method GET is not supported by this URL")]
    EventStreamNeedsAccept,
    /// 503 while the state lock is poisoned or similar.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// A label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Locked { .. } => "locked",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Invalid(_) => "invalid",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::EventStreamNeedsAccept => "event_stream_accept",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<AppBodyError> for ApiError {
    fn from(e: AppBodyError) -> Self {
        match e {
            AppBodyError::Malformed(m) => ApiError::MalformedJson(m),
            AppBodyError::InvalidJson(v) => ApiError::InvalidJson(v.into_details()),
            AppBodyError::Invalid(v) => ApiError::Invalid(v.into_details()),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::AppNotFound(_)
            | ChangeError::TaskNotFound(_)
            | ChangeError::DeploymentNotFound(_)
            | ChangeError::VersionNotFound { .. } => ApiError::NotFound(e.to_string()),
            ChangeError::AppExists(_) => ApiError::Conflict(e.to_string()),
            ChangeError::Locked { ref deployments } => ApiError::Locked {
                deployments: deployments.clone(),
                message: e.to_string(),
            },
            ChangeError::Body(b) => b.into(),
            ChangeError::ServicePortsExhausted(_) => ApiError::Invalid(vec![ErrorDetail {
                path: "/portDefinitions".into(),
                errors: vec![e.to_string()],
            }]),
        }
    }
}

const JETTY_405: &str = "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n<title>Error 405 </title>\n</head>\n<body>\n<h2>HTTP ERROR: 405</h2>\n<p>Problem accessing /v2/events. Reason:\n<pre>    HTTP method GET is not supported by this URL</pre></p>\n<hr /><a href=\"http://eclipse.org/jetty\">Powered by Jetty:// 9.3.z-SNAPSHOT</a><hr/>\n</body>\n</html>\n";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "message": m })),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, json!({ "message": m })),
            ApiError::Locked {
                message,
                deployments,
            } => (
                StatusCode::CONFLICT,
                json!({
                    "message": message,
                    "deployments": deployments.iter().map(|d| json!({"id": d})).collect::<Vec<_>>(),
                }),
            ),
            ApiError::MalformedJson(message) => (
                StatusCode::BAD_REQUEST,
                json!({ "message": "Invalid JSON", "details": message }),
            ),
            ApiError::InvalidJson(details) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": "Invalid JSON", "details": details }),
            ),
            ApiError::Invalid(details) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "message": "Object is not valid", "details": details }),
            ),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "message": m })),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "message": m })),
            ApiError::EventStreamNeedsAccept => {
                return (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(header::CONTENT_TYPE, "text/html;charset=ISO-8859-1")],
                    JETTY_405,
                )
                    .into_response();
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Unknown paths.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "The requested resource '{}' could not be found",
        uri.path()
    ))
}
