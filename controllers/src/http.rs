//! The controller's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`, and
//! the dashboard's pages at `/`.
//!
//! What it promises: `/healthz` answers 200 whenever the process serves requests; `/readyz`
//! answers 200 with the replica's role when [`ReplicaHealth::readiness`] says ready, else 503 with
//! why; `/metrics` is [`Metrics::encode`]. The server stops accepting when `stop` is
//! cancelled and finishes the requests it has.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use theseus_dashboard::{Fact, HostReport};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::marathon_snapshot::Reachability;
use crate::runtime::health::{Readiness, ReplicaHealth, Role};
use crate::runtime::metrics::{CONTENT_TYPE, Metrics};

/// Why the HTTP endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address cannot be bound.
    #[error(
        "cannot listen on {addr} for /metrics, /healthz and /readyz: {source}; choose a free \
         address with --listen"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("the HTTP server on {addr} failed: {source}")]
    Serve {
        /// The address served.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the endpoints answer from.
#[derive(Clone)]
struct HttpEndpoints {
    metrics: Arc<Metrics>,
    health: Arc<ReplicaHealth>,
}

/// A bound listener, ready to serve; binding first lets callers learn the port (`:0`).
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl HttpServer {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self, HttpError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(Self { listener, addr })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the endpoints, and the routes of `pages` beside them, until `stop` is
    /// cancelled.
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        health: Arc<ReplicaHealth>,
        pages: Router,
        stop: CancellationToken,
    ) -> Result<(), HttpError> {
        let app = router(metrics, health).merge(pages);
        let addr = self.addr;
        axum::serve(self.listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .map_err(|source| HttpError::Serve { addr, source })
    }
}

fn router(metrics: Arc<Metrics>, health: Arc<ReplicaHealth>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpEndpoints { metrics, health })
}

async fn metrics_text(State(endpoints): State<HttpEndpoints>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        endpoints.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<HttpEndpoints>) -> Response {
    match endpoints.health.readiness() {
        Readiness::Ready(role) => (StatusCode::OK, format!("ready: {role}\n")).into_response(),
        Readiness::NotReady(role) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {role}\n"),
        )
            .into_response(),
    }
}

/// Whether Marathon answered this replica, as its current term last saw it: only a leader
/// talks to Marathon, so outside a term nothing is known.
#[derive(Debug, Default)]
pub struct MarathonSeen(Mutex<Option<(Reachability, DateTime<Utc>)>>);

impl MarathonSeen {
    /// Marathon's reachability now (`None`: this replica no longer leads).
    pub fn set(&self, reachability: Option<Reachability>) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *seen = match (seen.take(), reachability) {
            (_, None) => None,
            (Some((before, since)), Some(now)) if before == now => Some((now, since)),
            (_, Some(now)) => Some((now, Utc::now())),
        };
    }

    fn fact(&self) -> String {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let since = |at: &DateTime<Utc>| at.format("%H:%M:%S UTC");
        match &*seen {
            None => "not asked: only the leader talks to Marathon".to_owned(),
            Some((Reachability::Unknown, since_at)) => {
                format!("not listed yet (leading since {})", since(since_at))
            }
            Some((Reachability::Reachable, at)) => format!("reachable since {}", since(at)),
            Some((Reachability::Unreachable(error), at)) => {
                format!("unreachable since {}: {error}", since(at))
            }
        }
    }
}

/// What the dashboard's controller page shows about this replica: its role and readiness,
/// whether Marathon answers it, and the depth of its work queues. Every fact is read from
/// memory.
pub struct ReplicaReport {
    /// The replica's role.
    pub health: Arc<ReplicaHealth>,
    /// Its metrics, where the work queues report their depth.
    pub metrics: Arc<Metrics>,
    /// Whether Marathon answers its current term.
    pub marathon: Arc<MarathonSeen>,
    /// The names of its reconcilers, whose queues are shown.
    pub reconcilers: [&'static str; 2],
}

impl HostReport for ReplicaReport {
    fn facts(&self) -> Vec<Fact> {
        let role = self.health.role();
        let (ready, role_text) = match self.health.readiness() {
            Readiness::Ready(role) => ("yes", role.to_string()),
            Readiness::NotReady(role) => ("no", role.to_string()),
        };
        let mut facts = vec![
            Fact::new("this replica", role_text),
            Fact::new("ready (/readyz)", ready),
            Fact::new("Marathon", self.marathon.fact()),
        ];
        for reconciler in self.reconcilers {
            let depth = match (&role, self.metrics.queue_depth_of(reconciler)) {
                (Role::Leader { synced: true }, Some((waiting, running))) => {
                    format!("{waiting} waiting, {running} running")
                }
                (Role::Leader { .. }, _) => "not reconciling yet: syncing caches".to_owned(),
                _ => "empty: only the leader reconciles".to_owned(),
            };
            facts.push(Fact::new(format!("work queue ({reconciler})"), depth));
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String, Option<String>) {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        (status, response.text().await.unwrap(), content_type)
    }

    #[tokio::test]
    async fn endpoints_report_health_readiness_and_metrics_then_stop() {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(ReplicaHealth::default());
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        let serving = tokio::spawn(server.serve(
            Arc::clone(&metrics),
            Arc::clone(&health),
            Router::new(),
            stop.clone(),
        ));

        assert_eq!(get_text(addr, "/healthz").await.0, 200);
        let (status, body, _) = get_text(addr, "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: starting\n"));
        health.set(Role::Leader { synced: true });
        let (status, body, _) = get_text(addr, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready: leader\n"));

        metrics.leading();
        let (status, body, content_type) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("theseus_controller_leader 1"), "{body}");
        assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("the server stops when asked")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn binding_a_taken_address_names_it() {
        let taken = HttpServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let error = HttpServer::bind(taken.local_addr()).await.unwrap_err();
        assert!(
            error.to_string().contains(&taken.local_addr().to_string()),
            "{error}"
        );
    }
}
