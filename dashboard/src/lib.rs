//! The theseus dashboard: live web pages of what runs, from one watch of etcd.
//!
//! Pages: the fleet (one row per deployment, filtered and sorted in the browser), a
//! deployment (spec, conditions, tasks, history and journal, a [`diff`] of two recorded
//! revisions), the services (their node lists as `theseus guest node-list` answers them) and
//! the controller (the election, the watch and how far behind etcd it is, and whatever the
//! hosting process reports through [`HostReport`]).
//!
//! What it promises:
//!
//! - One watch per [`Dashboard`], however many pages are open: a page view or a live update
//!   reads the in-memory model and costs no etcd or Marathon request. Beside it, one small
//!   read every few seconds tells whether etcd answers and how far behind the watch is
//!   ([`feed::EtcdProbe`]).
//! - Changes reach open pages over server-sent events as the watch delivers them.
//! - A page always says whether what it shows is current; after a lost watch the picture is
//!   listed afresh before it is called current again (see [`feed`]).
//! - Read-only by default: without [`Actions::Enabled`] no route writes anything. With it, a
//!   deployment page can scale, pause, resume and undo, each a compare-on-revision edit of
//!   `/desired` ([`actions`]). Secret-looking environment values are masked on the server
//!   ([`mask`]); the pages insert every value as text, never as markup.
//! - The pages, script and style sheet are compiled into the binary.
//!
//! The controller serves [`Dashboard::router`] beside its own endpoints; `theseus dashboard`
//! serves it alone with [`Dashboard::serve`].

pub mod actions;
pub mod diff;
pub mod feed;
pub mod mask;
pub mod model;
mod routes;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use serde::Serialize;
use theseus::store::{EtcdConfig, Layout};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::actions::Actions;
use crate::feed::Shared;

/// Why the dashboard could not be served.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The listen address cannot be bound.
    #[error(
        "cannot listen on {addr} for the dashboard: {source}; choose a free address with --listen"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("the dashboard's HTTP server on {addr} failed: {source}")]
    Serve {
        /// The address served.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One line of the controller page that only the hosting process knows (its role, its
/// queue, whether it reaches Marathon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// What it is, e.g. `role`.
    pub name: String,
    /// Its value now.
    pub value: String,
}

impl Fact {
    /// A fact.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Fact {
        Fact {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What a hosting process tells the controller page; asked every few seconds per open
/// controller page, so it must answer from memory.
pub trait HostReport: Send + Sync + 'static {
    /// The facts to show now.
    fn facts(&self) -> Vec<Fact>;
}

/// A running dashboard: its feed and its routes. The feed stops when the dashboard is
/// shut down or dropped.
#[derive(Debug)]
pub struct Dashboard {
    shared: Arc<Shared>,
    host: Option<Arc<dyn HostReport>>,
    actions: Actions,
    stop: CancellationToken,
    feed: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for dyn HostReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostReport")
    }
}

impl Dashboard {
    /// Starts the feed: connects to etcd (waiting for it) and watches the keys under
    /// `layout`. `host` adds its facts to the controller page. Cancelling `stop` stops the
    /// feed and ends every open event stream, so a server's graceful shutdown is not held up
    /// by open pages.
    pub fn start(
        config: EtcdConfig,
        layout: Layout,
        host: Option<Arc<dyn HostReport>>,
        stop: CancellationToken,
    ) -> Dashboard {
        let shared = Arc::new(Shared::new(layout.clone()));
        let feed = tokio::spawn(feed::run(Arc::clone(&shared), config, layout, stop.clone()));
        Dashboard {
            shared,
            host,
            actions: Actions::Disabled,
            stop,
            feed: Some(feed),
        }
    }

    /// The dashboard with its write path ([`Actions::Enabled`]) or without it (the default).
    pub fn with_actions(mut self, actions: Actions) -> Dashboard {
        self.actions = actions;
        self
    }

    /// The pages, their assets and their event streams, to serve at `/` (or to merge into
    /// another router).
    pub fn router(&self) -> Router {
        let pages = routes::router(
            Arc::clone(&self.shared),
            self.host.clone(),
            self.actions,
            self.stop.clone(),
        );
        match self.actions {
            Actions::Disabled => pages,
            Actions::Enabled => pages.merge(actions::router(Arc::clone(&self.shared))),
        }
    }

    /// The feed's model and connection state, as the pages read them.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves the dashboard alone on `addr` until `stop` is cancelled; `bound` learns the
    /// address (useful with port 0).
    pub async fn serve(
        &self,
        addr: SocketAddr,
        stop: CancellationToken,
        bound: impl FnOnce(SocketAddr),
    ) -> Result<(), DashboardError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DashboardError::Bind { addr, source })?;
        bound(addr);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .map_err(|source| DashboardError::Serve { addr, source })
    }

    /// Stops the feed and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(feed) = self.feed.take() {
            let _ = feed.await;
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
