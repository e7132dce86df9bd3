//! A scriptable stand-in for Marathon's HTTP API, for testing the client over real HTTP: each
//! test builds an axum router with the answers it needs; the server listens on a free
//! loopback port, records every request it receives, and stops when dropped.

#![allow(dead_code)] // each test file uses a different part

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use theseus::marathon::{MarathonClient, MarathonConfig, ObservedRequest, RequestObserver, Route};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The values of query parameter `key`, in order.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        let Some(query) = &self.query else {
            return Vec::new();
        };
        let url = Url::parse(&format!("http://x/?{query}")).unwrap();
        url.query_pairs()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// A running fake Marathon.
pub struct FakeMarathon {
    pub url: Url,
    log: Log,
    server: JoinHandle<()>,
}

impl FakeMarathon {
    /// Serves `router` on a free loopback port.
    pub async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (router, log) = recording(router);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url: Url::parse(&format!("http://{address}/")).unwrap(),
            log,
            server,
        }
    }

    /// Serves `router` with `listener` (e.g. a TLS one); `url` is how clients reach it.
    pub fn serve<L>(listener: L, url: Url, router: Router) -> Self
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let (router, log) = recording(router);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { url, log, server }
    }

    /// A server answering every request with `status` and `body` (JSON).
    pub async fn answering(status: u16, body: &str) -> Self {
        let body = body.to_owned();
        let router = Router::new().fallback(move || {
            let body = body.clone();
            async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }
        });
        Self::start(router).await
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// The `host:port` of the server.
    pub fn authority(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap(),
            self.url.port().unwrap()
        )
    }
}

impl Drop for FakeMarathon {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn recording(router: Router) -> (Router, Log) {
    let log: Log = Arc::default();
    let router = router.layer(middleware::from_fn_with_state(log.clone(), record));
    (router, log)
}

async fn record(State(log): State<Log>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    log.lock().unwrap().push(Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: bytes.to_vec(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A loopback URL where nothing listens (the port was free a moment ago).
pub async fn dead_url() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    Url::parse(&format!("http://{address}/")).unwrap()
}

/// A client of `urls` with timeouts generous enough for a loaded machine.
pub fn client(urls: &[&Url]) -> MarathonClient {
    MarathonClient::new(config(urls)).unwrap()
}

/// The configuration [`client`] uses.
pub fn config(urls: &[&Url]) -> MarathonConfig {
    let mut config = MarathonConfig::new(urls.iter().map(|u| (*u).clone()).collect());
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(10);
    config
}

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/marathon")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One observed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub method: Method,
    pub route: Route,
    pub url: String,
    pub status: Option<u16>,
}

/// Records what the client reports.
#[derive(Default)]
pub struct RecordingObserver(Mutex<Vec<Attempt>>);

impl RecordingObserver {
    pub fn attempts(&self) -> Vec<Attempt> {
        self.0.lock().unwrap().clone()
    }
}

impl RequestObserver for RecordingObserver {
    fn observe(&self, request: &ObservedRequest<'_>) {
        self.0.lock().unwrap().push(Attempt {
            method: request.method.clone(),
            route: request.route,
            url: request.url.to_string(),
            status: request.status.map(|s| s.as_u16()),
        });
    }
}
