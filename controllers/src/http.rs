//! The controller's HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`, and
//! the dashboard's pages at `/`.
//!
//! What it promises: `/healthz` answers 200 whenever the process serves requests; `/readyz`
//! answers 200 with the replica's role when [`Health::readiness`] says ready, else 503 with
//! why; `/metrics` is [`Metrics::encode`]. The server stops accepting when `stop` is
//! cancelled and finishes the requests it has.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use theseus_dashboard::{Fact, HostReport};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runtime::health::Health;
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

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
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
        health: Arc<Health>,
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

fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoints { metrics, health })
}

async fn metrics_text(State(endpoints): State<Endpoints>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        endpoints.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.health.readiness() {
        Ok(role) => (StatusCode::OK, format!("ready: {role}\n")).into_response(),
        Err(role) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {role}\n"),
        )
            .into_response(),
    }
}

/// What the dashboard's controller page shows about this replica.
pub struct ReplicaReport(pub Arc<Health>);

impl HostReport for ReplicaReport {
    fn facts(&self) -> Vec<Fact> {
        let (ready, role) = match self.0.readiness() {
            Ok(role) => ("yes", role),
            Err(role) => ("no", role),
        };
        vec![
            Fact::new("this replica", role),
            Fact::new("ready (/readyz)", ready),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::health::Role;

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
        let health = Arc::new(Health::default());
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
