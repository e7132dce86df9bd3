//! The recording proxy between the controllers and Marathon.
//!
//! Every controller process is started with a listener of its own (a fresh one for every
//! restart), so each request is known to come from one process without anything in the
//! request saying so. Requests are passed on unchanged and answers streamed back (the event
//! stream included); while Marathon is down the proxy answers 502, as a load balancer in
//! front of a dead Marathon would. Every write (POST, PUT, PATCH, DELETE) is recorded with
//! the bounds that [`terms::attribute`](super::terms::attribute) needs: the latest term the
//! leadership watch knew of on arrival, and an etcd revision read after arrival.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use theseus::store::{Revision, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::terms::{LeaderHistory, WriteBounds};

/// One write a controller sent towards Marathon.
#[derive(Debug, Clone)]
pub struct RecordedWrite {
    /// The sending process's identity.
    pub identity: String,
    /// The HTTP method.
    pub method: Method,
    /// The path (without the query).
    pub path: String,
    /// When the proxy received it.
    pub at: Instant,
    /// The latest term known to have begun on arrival.
    pub at_least: Option<usize>,
    /// An etcd revision read after arrival.
    pub began_by: Option<Revision>,
    /// Marathon's answer, or `None` when Marathon could not be reached.
    pub status: Option<u16>,
}

impl RecordedWrite {
    /// The bounds of its term.
    pub fn bounds(&self) -> WriteBounds {
        WriteBounds {
            identity: self.identity.clone(),
            at_least: self.at_least,
            began_by: self.began_by,
        }
    }

    /// What kind of write it is: `create`, `update`, `delete`, or `METHOD path` otherwise.
    pub fn kind(&self) -> String {
        let segments = self.path.trim_matches('/').split('/').count();
        let on_apps = self.path.starts_with("/v2/apps");
        match (&self.method, on_apps) {
            (&Method::POST, true) if segments <= 2 => "create".to_owned(),
            (&Method::PUT | &Method::PATCH, true) => "update or scale".to_owned(),
            (&Method::DELETE, true) if !self.path.contains("/tasks") => "delete".to_owned(),
            _ => format!("{} {}", self.method, self.path),
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No loopback port could be bound.
    #[error("cannot listen on a loopback port for the recording proxy: {0}")]
    Listen(#[source] std::io::Error),
    /// The HTTP client for Marathon could not be built.
    #[error("cannot build the proxy's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    history: Arc<Mutex<LeaderHistory>>,
    writes: Arc<Mutex<Vec<RecordedWrite>>>,
    store: Store,
}

#[derive(Clone)]
struct Listener {
    shared: Shared,
    identity: Arc<str>,
}

/// The proxy: listeners, one per controller process, and the writes they recorded.
pub struct RecordingProxy {
    shared: Shared,
    /// Every listener's URL by the identity of its process.
    urls: Mutex<BTreeMap<String, String>>,
    stop: CancellationToken,
}

impl RecordingProxy {
    /// A proxy to Marathon at `upstream` (`http://host:port`), reading terms from `history`
    /// and revisions from `store`.
    pub fn new(
        upstream: String,
        history: Arc<Mutex<LeaderHistory>>,
        store: Store,
    ) -> Result<RecordingProxy, ProxyError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ProxyError::Client)?;
        Ok(RecordingProxy {
            shared: Shared {
                upstream,
                client,
                history,
                writes: Arc::default(),
                store,
            },
            urls: Mutex::default(),
            stop: CancellationToken::new(),
        })
    }

    /// A new listener for the process called `identity`; returns its URL.
    pub async fn listen(&self, identity: &str) -> Result<String, ProxyError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(ProxyError::Listen)?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(ProxyError::Listen)?
        );
        let state = Listener {
            shared: self.shared.clone(),
            identity: identity.into(),
        };
        self.urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(identity.to_owned(), url.clone());
        let app = axum::Router::new().fallback(forward).with_state(state);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(error) = served.await {
                eprintln!("chaos: a proxy listener failed: {error}");
            }
        });
        Ok(url)
    }

    /// The URL of the listener of the process called `identity`.
    pub fn url_of(&self, identity: &str) -> Option<String> {
        self.urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(identity)
            .cloned()
    }

    /// Every write recorded so far, in the order received.
    pub fn writes(&self) -> Vec<RecordedWrite> {
        self.shared
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Headers that belong to one connection, not to the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::CONTENT_LENGTH
        || name == header::HOST
        || name.as_str() == "keep-alive"
}

async fn forward(State(listener): State<Listener>, request: Request) -> Response {
    let shared = &listener.shared;
    let (parts, body) = request.into_parts();
    let recorded =
        is_write(&parts.method).then(|| record(&listener, &parts.method, parts.uri.path()));
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(body) => body,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream = shared
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", shared.upstream),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await;
    if let Some(index) = recorded {
        let status = answer.as_ref().ok().map(|a| a.status().as_u16());
        shared.writes.lock().unwrap_or_else(PoisonError::into_inner)[index].status = status;
    }
    match answer {
        Ok(answer) => {
            let status = answer.status();
            let mut headers = HeaderMap::new();
            for (name, value) in answer.headers() {
                if !hop_by_hop(name) {
                    headers.append(name, value.clone());
                }
            }
            let body = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
            let mut response = Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("Marathon is unreachable from the proxy: {error}"),
        )
            .into_response(),
    }
}

/// Records a write on arrival; reads etcd's revision afterwards. Returns its index.
fn record(listener: &Listener, method: &Method, path: &str) -> usize {
    let shared = &listener.shared;
    // The term first, before anything else can happen: the later it is read, the later a
    // term it may name.
    let at_least = shared
        .history
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .latest();
    let index = {
        let mut writes = shared.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.push(RecordedWrite {
            identity: listener.identity.to_string(),
            method: method.clone(),
            path: path.to_owned(),
            at: Instant::now(),
            at_least,
            began_by: None,
            status: None,
        });
        writes.len() - 1
    };
    let store = shared.store.clone();
    let writes = Arc::clone(&shared.writes);
    // Any revision read after arrival bounds the term from above; reading it beside the
    // request keeps the proxy from delaying the write.
    tokio::spawn(async move {
        if let Ok(revision) = current_revision(&store).await {
            writes.lock().unwrap_or_else(PoisonError::into_inner)[index].began_by = Some(revision);
        }
    });
    index
}

/// etcd's current revision, by a linearizable read.
pub async fn current_revision(store: &Store) -> Result<Revision, etcd_client::Error> {
    let mut last = None;
    for _ in 0..3 {
        let mut client = match store.live_client().await {
            Ok(client) => client,
            Err(_) => continue,
        };
        match tokio::time::timeout(
            Duration::from_secs(5),
            client.get("/theseus/chaos/revision", None),
        )
        .await
        {
            Ok(Ok(response)) => {
                if let Some(header) = response.header() {
                    return Ok(header.revision());
                }
            }
            Ok(Err(error)) => last = Some(error),
            Err(_) => {}
        }
    }
    Err(last.unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd member answered".into())))
}
