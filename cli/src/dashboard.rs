//! `theseus dashboard`: the controller's web pages, served from a workstation that reaches
//! only etcd.
//!
//! It serves the same pages as every `theseus-controller` replica (package
//! `theseus-dashboard`), from its own watch of etcd, until SIGINT or SIGTERM. The controller
//! page then shows the election and the watch, not a replica's own queue.

use std::net::SocketAddr;

use clap::Args;
use theseus_dashboard::{Actions, Dashboard};
use tokio_util::sync::CancellationToken;

use super::{EtcdArgs, Failure};

/// Arguments of `theseus dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address to serve the pages on.
    #[arg(
        long,
        env = "THESEUS_DASHBOARD_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    listen: SocketAddr,
    /// Let deployment pages scale, pause, resume and undo (writes to /desired, each
    /// compared on the revision the page showed). Off: the dashboard has no write path.
    #[arg(long, env = "THESEUS_DASHBOARD_ACTIONS")]
    dashboard_actions: bool,
}

/// Serves the dashboard until SIGINT or SIGTERM.
pub async fn run(args: DashboardArgs, etcd: &EtcdArgs) -> Result<(), Failure> {
    let layout = etcd.layout()?;
    let stop = CancellationToken::new();
    tokio::spawn(super::watch::cancel_on_signal(stop.clone()));
    let actions = if args.dashboard_actions {
        Actions::Enabled
    } else {
        Actions::Disabled
    };
    let dashboard =
        Dashboard::start(etcd.config(), layout, None, stop.child_token()).with_actions(actions);
    dashboard
        .serve(args.listen, stop.clone(), |addr| {
            eprintln!(
                "theseus dashboard on http://{addr}/ (etcd: {})",
                etcd.etcd_endpoints.join(",")
            );
        })
        .await
        .map_err(|error| Failure::problem(error.to_string()))?;
    dashboard.shutdown().await;
    Ok(())
}
