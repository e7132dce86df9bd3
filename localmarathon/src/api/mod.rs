//! Marathon's REST API v2 over HTTP (axum).
//!
//! Paths are normalised before routing (`/v2/apps//x/tasks` is `/v2/apps/x/tasks`), as real
//! Marathon clients rely on. Query flags accept `true`/`false` in any case (Python clients send
//! `False`) and repeated parameters (`embed=a&embed=b`). Errors carry Marathon's bodies and
//! status codes (see [`ApiError`]).

pub mod apps;
pub mod connection;
pub mod deployments;
pub mod error;
pub mod events;
pub mod groups;
pub mod info;
pub mod tasks;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::routing::{any, delete, get, post};
use tokio_util::sync::CancellationToken;

pub use connection::Connection;
pub use error::ApiError;

use crate::state::Shared;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// Scheduler state.
    pub shared: Arc<Shared>,
    /// SSE heartbeat period.
    pub heartbeat: Duration,
    /// Cancelled when the API stops (ends event streams).
    pub stop: CancellationToken,
    /// Address the API listens on, as `/v2/leader` reports it.
    pub leader: SocketAddr,
}

/// How often clients asked for what costs Marathon most, so that tests and benchmarks can
/// check a client's habits: full app lists, single app reads, and event streams cut because
/// their reader fell [`BUS_CAPACITY`](crate::events::BUS_CAPACITY) events behind.
#[derive(Debug, Default)]
pub struct Traffic {
    app_lists: AtomicU64,
    app_reads: AtomicU64,
    stream_cuts: AtomicU64,
}

/// The counts of [`Traffic`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrafficCounts {
    /// `GET /v2/apps` answered (with any filter).
    pub app_lists: u64,
    /// `GET /v2/apps/{id}` answered.
    pub app_reads: u64,
    /// Event streams ended because their reader fell too far behind.
    pub stream_cuts: u64,
}

impl Traffic {
    pub(crate) fn app_listed(&self) {
        self.app_lists.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn app_read(&self) {
        self.app_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_cut(&self) {
        self.stream_cuts.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            app_lists: self.app_lists.load(Ordering::Relaxed),
            app_reads: self.app_reads.load(Ordering::Relaxed),
            stream_cuts: self.stream_cuts.load(Ordering::Relaxed),
        }
    }
}

/// The router of every endpoint.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/ping", get(info::ping))
        .route("/v2/info", get(info::info))
        .route("/v2/leader", get(info::leader))
        .route("/v2/apps", get(apps::list).post(apps::create))
        .route("/v2/apps/{*rest}", any(apps::dispatch))
        .route("/v2/tasks", get(tasks::list))
        .route("/v2/tasks/delete", post(tasks::delete_many))
        .route("/v2/deployments", get(deployments::list))
        .route("/v2/deployments/{id}", delete(deployments::cancel))
        .route("/v2/groups", get(groups::root))
        .route("/v2/groups/{*id}", get(groups::show))
        .route("/v2/queue", get(tasks::queue))
        .route("/v2/events", get(events::stream))
        .fallback(error::not_found)
        .with_state(state)
}

/// Collapses doubled slashes and drops a trailing slash in the request path.
pub fn normalise_path(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    if !path.contains("//") && (path.len() <= 1 || !path.ends_with('/')) {
        return request;
    }
    let mut clean = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(q) = uri.query() {
        clean.push('?');
        clean.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = clean.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new) = Uri::from_parts(parts) {
            *request.uri_mut() = new;
        }
    }
    request
}

/// Repeated and boolean query parameters.
#[derive(Debug, Default, Clone)]
pub struct QueryParams(Vec<(String, String)>);

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        QueryParams(
            raw.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// Every value of `key` (comma-separated values are split too).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The first value of `key`, unsplit.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag: absent → `default`; `true`/`false` in any case; anything else is a 400.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.one(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") || v.is_empty() => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::BadRequest(format!(
                "Query parameter '{key}' must be true or false, not '{v}'"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubled_and_trailing_slashes_are_collapsed() {
        let req = Request::builder()
            .uri("http://h/v2/apps//x/tasks/?force=true")
            .body(axum::body::Body::empty())
            .unwrap();
        let req = normalise_path(req);
        assert_eq!(req.uri().path(), "/v2/apps/x/tasks");
        assert_eq!(req.uri().query(), Some("force=true"));
    }

    #[test]
    fn query_flags_accept_python_booleans_and_repeats() {
        let q = QueryParams::parse(Some(
            "force=False&embed=apps.tasks&embed=apps.counts&label=a%3D%3Db",
        ));
        assert!(!q.flag("force", true).unwrap());
        assert!(q.flag("scale", true).unwrap());
        assert_eq!(q.all("embed"), ["apps.tasks", "apps.counts"]);
        assert_eq!(q.one("label"), Some("a==b"));
        assert!(
            QueryParams::parse(Some("force=maybe"))
                .flag("force", false)
                .is_err()
        );
    }
}
