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
//! - The watch runs only while someone looks ([`demand`]): the first page, API read or event
//!   stream starts it, and once the last event stream has closed and nothing was asked for
//!   during the idle timeout ([`Dashboard::with_idle_timeout`]) it stops and the picture is
//!   dropped. Routes merged beside the dashboard's (a controller's `/metrics`) start nothing.
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
pub mod demand;
pub mod diff;
pub mod feed;
pub mod mask;
pub mod model;
mod routes;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde::Serialize;
use theseus::store::{EtcdConfig, Layout};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::actions::Actions;
use crate::demand::{Demand, DemandObserver, DemandStatus, EtcdFeed};
use crate::feed::Picture;

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

/// A running dashboard: its routes, and the feed they start while someone looks. The feed
/// stops when the dashboard is shut down or dropped.
#[derive(Debug)]
pub struct Dashboard {
    picture: Arc<Picture>,
    demand: Arc<Demand>,
    host: Option<Arc<dyn HostReport>>,
    actions: Actions,
    stop: CancellationToken,
    supervisor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for dyn HostReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostReport")
    }
}

impl Dashboard {
    /// A dashboard of the keys under `layout`: its routes, once asked for, connect to etcd
    /// (waiting for it) and watch those keys until nobody looks for the idle timeout
    /// ([`demand::DEFAULT_IDLE_TIMEOUT`] unless set). `host` adds its facts to the
    /// controller page. Cancelling `stop` stops the feed and ends every open event stream,
    /// so a server's graceful shutdown is not held up by open pages.
    pub fn start(
        config: EtcdConfig,
        layout: Layout,
        host: Option<Arc<dyn HostReport>>,
        stop: CancellationToken,
    ) -> Dashboard {
        let picture = Arc::new(Picture::new(layout.clone()));
        let demand = Arc::new(Demand::new(
            Arc::clone(&picture),
            demand::DEFAULT_IDLE_TIMEOUT,
        ));
        let feed_run = EtcdFeed {
            picture: Arc::clone(&picture),
            config,
            layout,
        };
        let supervisor = tokio::spawn(demand::supervise(
            Arc::clone(&demand),
            feed_run,
            stop.clone(),
        ));
        Dashboard {
            picture,
            demand,
            host,
            actions: Actions::Disabled,
            stop,
            supervisor: Some(supervisor),
        }
    }

    /// How long the feed goes on once the last page has closed and nothing was asked for.
    pub fn with_idle_timeout(self, idle_timeout: Duration) -> Dashboard {
        self.demand.set_idle_timeout(idle_timeout);
        self
    }

    /// Tells `observer` how many pages are open and whether the feed runs, at every change.
    pub fn with_demand_observer(self, observer: Arc<dyn DemandObserver>) -> Dashboard {
        self.demand.set_observer(observer);
        self
    }

    /// How many pages are open and whether the feed runs, now.
    pub fn demand(&self) -> DemandStatus {
        self.demand.status()
    }

    /// The dashboard with its write path ([`Actions::Enabled`]) or without it (the default).
    pub fn with_actions(mut self, actions: Actions) -> Dashboard {
        self.actions = actions;
        self
    }

    /// The pages, their assets and their event streams, to serve at `/` (or to merge into
    /// another router). Each of these routes, and only these, starts the feed.
    pub fn router(&self) -> Router {
        let pages = routes::router(
            Arc::clone(&self.picture),
            Arc::clone(&self.demand),
            self.host.clone(),
            self.actions,
            self.stop.clone(),
        );
        let routes = match self.actions {
            Actions::Disabled => pages,
            Actions::Enabled => pages.merge(actions::router(Arc::clone(&self.picture))),
        };
        // `route_layer`: only the routes above; a router they are merged into keeps its own.
        routes.route_layer(middleware::from_fn_with_state(
            Arc::clone(&self.demand),
            wanted,
        ))
    }

    /// The feed's model and connection state, as the pages read them.
    pub fn picture(&self) -> &Arc<Picture> {
        &self.picture
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
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
    }
}

/// Every request to the dashboard's routes wants the feed.
async fn wanted(State(demand): State<Arc<Demand>>, request: Request, next: Next) -> Response {
    demand.want();
    next.run(request).await
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
