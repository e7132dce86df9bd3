//! `theseus dashboard`: the controller's web pages, served from a workstation that reaches
//! only etcd.
//!
//! It serves the same pages as every `theseus-controller` replica (package
//! `theseus-dashboard`), from its own watch of etcd while a page is open, until SIGINT or
//! SIGTERM. The controller
//! page then shows the election and the watch, not a replica's own queue.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// How long the dashboard goes on watching etcd once its last page has closed (it
    /// watches only while someone looks: the first page starts it again).
    #[arg(long, env = "THESEUS_DASHBOARD_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    dashboard_idle_timeout: Duration,
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
    let dashboard = Dashboard::start(etcd.config(), layout, None, stop.child_token())
        .with_actions(actions)
        .with_idle_timeout(args.dashboard_idle_timeout);
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
