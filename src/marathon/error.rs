//! What can go wrong talking to Marathon, in Marathon's terms.
//!
//! Marathon's refusals are read from its real error bodies (`{"message"}`,
//! `{"message", "details": [{"path", "errors"}]}`, and the 409 lock answer
//! `{"message", "deployments": [{"id"}]}`) into [`Error`] variants that carry the app id,
//! the deployments holding a lock, or the paths of invalid fields. Every message names the
//! app or object and the URL asked, and says what the user can do.

use std::fmt;
use std::path::PathBuf;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::AppId;
use super::app::DeploymentRef;
use super::deployment::DeploymentId;
use super::task::TaskId;

/// The longest piece of a non-JSON error body kept in an error message.
const MAX_BODY_IN_MESSAGE: usize = 512;

/// A failed call to Marathon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `POST /v2/apps` for an id that exists (409).
    #[error("app `{app}` already exists in Marathon ({url}); update it instead of creating it")]
    AppExists {
        /// The app.
        app: AppId,
        /// The URL asked.
        url: String,
    },
    /// A deployable call on an app that a running deployment holds (409).
    #[error(
        "app `{app}` is locked by Marathon deployment(s) [{}] ({url}); wait for them to finish, \
         or repeat the call with force to cancel them",
        join(deployments)
    )]
    Locked {
        /// The app.
        app: AppId,
        /// The deployments holding the lock (empty when Marathon did not list them).
        deployments: Vec<DeploymentId>,
        /// The URL asked.
        url: String,
    },
    /// The app, task, deployment or version does not exist (404).
    #[error("Marathon has no {what} ({url}): {message}")]
    NotFound {
        /// What was looked for, e.g. ``app `/ingestor/dev` ``.
        what: String,
        /// Marathon's message.
        message: String,
        /// The URL asked.
        url: String,
    },
    /// Marathon refused a request body (400 invalid JSON, 422 invalid object).
    #[error(
        "Marathon rejected the request for {what} as invalid ({url}): {message}{}; fix the \
         fields named",
        DetailList(details)
    )]
    Invalid {
        /// What the request was about, e.g. ``app `/ingestor/dev` ``.
        what: String,
        /// Marathon's message.
        message: String,
        /// The invalid fields, each with its JSON path.
        details: Vec<ErrorDetail>,
        /// The URL asked.
        url: String,
    },
    /// No Marathon could serve the request: 502/503 (no leader, leader unreachable) or no
    /// leader elected.
    #[error(
        "Marathon at {url} is unavailable ({status}): {message}; check that Marathon runs and \
         has elected a leader"
    )]
    Unavailable {
        /// The URL asked.
        url: String,
        /// The status Marathon answered.
        status: StatusCode,
        /// Marathon's message.
        message: String,
    },
    /// Authentication is on and the credentials were missing or wrong (401).
    #[error(
        "Marathon at {url} refused the credentials (401): {message}; check the configured \
         username and password"
    )]
    Unauthorized {
        /// The URL asked.
        url: String,
        /// Marathon's message.
        message: String,
    },
    /// The credentials are valid but lack the permission (403).
    #[error(
        "Marathon at {url} forbids this request (403): {message}; grant the configured user \
         the permission"
    )]
    Forbidden {
        /// The URL asked.
        url: String,
        /// Marathon's message.
        message: String,
    },
    /// Marathon did not answer within the request timeout.
    #[error(
        "Marathon at {url} did not answer within the request timeout; it may be overloaded, \
         or the timeout too short"
    )]
    Timeout {
        /// The URL asked.
        url: String,
    },
    /// No connection could be made.
    #[error(
        "cannot connect to Marathon at {url}: {}; check the URL, that Marathon runs, and for \
         https the CA file",
        causes(source)
    )]
    Connect {
        /// The URL asked.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed after it was made (reset, broken body).
    #[error("the connection to Marathon at {url} failed: {}", causes(source))]
    Transport {
        /// The URL asked.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A status this client does not expect from that endpoint.
    #[error("Marathon at {url} answered {status}: {body}")]
    UnexpectedStatus {
        /// The URL asked.
        url: String,
        /// The status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// An answer that does not have the shape Marathon documents.
    #[error("cannot read Marathon's answer ({what}) from {url}: {source}")]
    Decode {
        /// What was being read, e.g. `app list`.
        what: String,
        /// The URL asked.
        url: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The event stream broke the SSE format.
    #[error(
        "the event stream from {url} is malformed: {message}; reconnect, and relist since \
         events may have been missed"
    )]
    EventStream {
        /// The URL of the stream.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The client configuration cannot work.
    #[error("invalid Marathon client configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error(
        "cannot use the CA file {}: {message}; give a PEM file with the CA that signed \
         Marathon's certificate",
        path.display()
    )]
    CaFile {
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// A short, stable name of the error kind for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::AppExists { .. } => "app_exists",
            Self::Locked { .. } => "locked",
            Self::NotFound { .. } => "not_found",
            Self::Invalid { .. } => "invalid",
            Self::Unavailable { .. } => "unavailable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::Timeout { .. } => "timeout",
            Self::Connect { .. } => "connect",
            Self::Transport { .. } => "transport",
            Self::UnexpectedStatus { .. } => "unexpected_status",
            Self::Decode { .. } => "decode",
            Self::EventStream { .. } => "event_stream",
            Self::Config { .. } => "config",
            Self::CaFile { .. } => "ca_file",
        }
    }
}

/// One invalid field of a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The JSON path of the field, e.g. `/upgradeStrategy/minimumHealthCapacity`.
    pub path: String,
    /// What is wrong with it.
    pub errors: Vec<String>,
}

impl<'de> Deserialize<'de> for ErrorDetail {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Marathon sends `{path, errors}`; its RAML also allows a bare `message`.
        #[derive(Deserialize)]
        struct DetailFields {
            #[serde(default)]
            path: Option<String>,
            #[serde(default)]
            errors: Option<Vec<String>>,
            #[serde(default)]
            message: Option<String>,
        }
        let wire = DetailFields::deserialize(deserializer)?;
        let mut errors = wire.errors.unwrap_or_default();
        errors.extend(wire.message);
        Ok(Self {
            path: wire.path.unwrap_or_else(|| "/".to_owned()),
            errors,
        })
    }
}

/// What a request acted on, to name it in errors and to read a 409 right.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// An app; `creating` for `POST /v2/apps`.
    App { app: AppId, creating: bool },
    /// A version of an app.
    AppVersion { app: AppId, version: String },
    /// A task of an app.
    Task { app: AppId, task: TaskId },
    /// A deployment.
    Deployment(DeploymentId),
    /// The leader.
    Leader,
    /// Anything else, described.
    Other(&'static str),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App { app, .. } => write!(f, "app `{app}`"),
            Self::AppVersion { app, version } => write!(f, "version `{version}` of app `{app}`"),
            Self::Task { app, task } => write!(f, "task `{task}` of app `{app}`"),
            Self::Deployment(id) => write!(f, "deployment `{id}`"),
            Self::Leader => f.write_str("leader"),
            Self::Other(what) => f.write_str(what),
        }
    }
}

/// Marathon's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, deserialize_with = "details_list_or_text")]
    details: Vec<ErrorDetail>,
    #[serde(default)]
    deployments: Option<Vec<DeploymentRef>>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_else(|_| Self {
            message: Some(body_excerpt(body)),
            ..Self::default()
        })
    }

    fn message(&self) -> String {
        self.message.clone().unwrap_or_default()
    }
}

/// Marathon's `details`: a list of `{path, errors}`, or (for a body that is not JSON, 400
/// `Invalid JSON`) the parser's message as one string, read as a detail at `/`.
fn details_list_or_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ErrorDetail>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Details {
        List(Vec<ErrorDetail>),
        Text(String),
    }
    Ok(match Option::<Details>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Details::List(list)) => list,
        Some(Details::Text(text)) => vec![ErrorDetail {
            path: "/".to_owned(),
            errors: vec![text],
        }],
    })
}

/// The start of a body, as text, for messages.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Turns a non-success answer into the error it means for a request on `target`.
pub(crate) fn from_status(target: &Target, url: &Url, status: StatusCode, body: &[u8]) -> Error {
    let parsed = ErrorBody::parse(body);
    let url = url.to_string();
    match status.as_u16() {
        400 | 422 => Error::Invalid {
            what: target.to_string(),
            message: parsed.message(),
            details: parsed.details,
            url,
        },
        401 => Error::Unauthorized {
            url,
            message: parsed.message(),
        },
        403 => Error::Forbidden {
            url,
            message: parsed.message(),
        },
        // `GET /v2/leader` answers 404 "There is no leader".
        404 if matches!(target, Target::Leader) => Error::Unavailable {
            url,
            status,
            message: parsed.message(),
        },
        404 => Error::NotFound {
            what: target.to_string(),
            message: parsed.message(),
            url,
        },
        409 => conflict(target, url, status, parsed),
        502 | 503 => Error::Unavailable {
            url,
            status,
            message: parsed.message(),
        },
        _ => Error::UnexpectedStatus {
            url,
            status,
            body: body_excerpt(body),
        },
    }
}

/// A 409 is "already exists" on create, and "locked by deployments" on deployable calls.
fn conflict(target: &Target, url: String, status: StatusCode, body: ErrorBody) -> Error {
    let app = match target {
        Target::App { app, .. } | Target::Task { app, .. } => app.clone(),
        _ => {
            return Error::UnexpectedStatus {
                url,
                status,
                body: body.message(),
            };
        }
    };
    match (body.deployments, target) {
        (Some(deployments), _) => Error::Locked {
            app,
            deployments: deployments.into_iter().map(|d| d.id).collect(),
            url,
        },
        (None, Target::App { creating: true, .. }) => Error::AppExists { app, url },
        (None, _) => Error::Locked {
            app,
            deployments: Vec::new(),
            url,
        },
    }
}

/// An error and its causes, `outer: inner: root` (reqwest's own message omits the cause,
/// e.g. which certificate check failed).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn join(ids: &[DeploymentId]) -> String {
    ids.iter()
        .map(DeploymentId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats invalid fields as `; /path: error, error; /other: error`.
struct DetailList<'a>(&'a [ErrorDetail]);

impl fmt::Display for DetailList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for detail in self.0 {
            write!(f, "; {}: {}", detail.path, detail.errors.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://marathon:8080/v2/apps/foo").unwrap()
    }

    fn app(creating: bool) -> Target {
        Target::App {
            app: AppId::parse("/foo").unwrap(),
            creating,
        }
    }

    #[test]
    fn lock_answer_carries_the_deployment_ids() {
        let body = br#"{"message":"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.","deployments":[{"id":"97c136bf-5a28-4821-9d94-480d9fbb01c8"}]}"#;
        match from_status(&app(false), &url(), StatusCode::CONFLICT, body) {
            Error::Locked {
                app, deployments, ..
            } => {
                assert_eq!(app.as_str(), "/foo");
                assert_eq!(
                    deployments,
                    [DeploymentId::new("97c136bf-5a28-4821-9d94-480d9fbb01c8")]
                );
            }
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn conflict_on_create_means_the_app_exists() {
        let body = br#"{"message":"An app with id [/foo] already exists."}"#;
        let error = from_status(&app(true), &url(), StatusCode::CONFLICT, body);
        assert!(matches!(error, Error::AppExists { .. }), "{error:?}");
        assert!(error.to_string().contains("/foo"));
    }

    #[test]
    fn validation_answer_names_each_invalid_path() {
        let body = br#"{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}"#;
        let error = from_status(&app(false), &url(), StatusCode::UNPROCESSABLE_ENTITY, body);
        let Error::Invalid { details, .. } = &error else {
            panic!("expected Invalid, got {error:?}");
        };
        assert_eq!(details[0].path, "/upgradeStrategy/minimumHealthCapacity");
        assert_eq!(details[0].errors, ["is greater than 1"]);
        let message = error.to_string();
        assert!(message.contains("/upgradeStrategy/minimumHealthCapacity: is greater than 1"));
        assert!(message.contains("app `/foo`"));
    }

    #[test]
    fn a_parser_message_as_details_is_read_as_one_detail() {
        let body = br#"{"message":"Invalid JSON","details":"Unexpected end-of-input at line 1"}"#;
        let error = from_status(&app(false), &url(), StatusCode::BAD_REQUEST, body);
        let Error::Invalid {
            message, details, ..
        } = &error
        else {
            panic!("expected Invalid, got {error:?}");
        };
        assert_eq!(message, "Invalid JSON");
        assert_eq!(details[0].errors, ["Unexpected end-of-input at line 1"]);
    }

    #[test]
    fn non_json_bodies_become_the_message() {
        let error = from_status(
            &app(false),
            &url(),
            StatusCode::SERVICE_UNAVAILABLE,
            b"<html>no leader</html>",
        );
        assert!(
            matches!(&error, Error::Unavailable { message, .. } if message == "<html>no leader</html>")
        );
    }

    #[test]
    fn no_leader_is_unavailable_not_missing() {
        let error = from_status(
            &Target::Leader,
            &url(),
            StatusCode::NOT_FOUND,
            br#"{"message":"There is no leader"}"#,
        );
        assert_eq!(error.metric_label(), "unavailable");
    }
}
