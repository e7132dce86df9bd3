//! `theseus-controller`: the command line over [`theseus_controllers::controller`].
//!
//! Parses flags (each with an environment variable), sets up logging, starts the controller,
//! and shuts it down cleanly on SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use reqwest::Url;
use theseus::marathon::MarathonConfig;
use theseus_controllers::controller::{Controller, ControllerConfig, DEFAULT_WORKERS};
use theseus_controllers::runtime::queue::Backoff;
use theseus_dashboard::Actions;
use theseus_etcd_flags::EtcdArgs;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the C library's allocator: the controller allocates and frees many
/// small values (decoded events and records, request buffers) across its runtime's threads,
/// and glibc's malloc spent about a quarter of the controller's CPU on them at 10,000
/// deployments, contended locks included.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`_RJEM_MALLOC_CONF` overrides them).
/// One arena rather than jemalloc's default of four per CPU: each thread's cache takes the
/// small allocations without a lock anyway, and more arenas kept about 6 MiB more resident
/// at 10,000 deployments for no measurable gain in speed.
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_OPTIONS: &[u8; 10] = b"narenas:1\0";

/// Makes Marathon match the Deployment specs under /desired in etcd, and reports under
/// /observed. Run several replicas: one leads and acts, the others stand by.
#[derive(Debug, Parser)]
#[command(name = "theseus-controller", version, about, long_about = None, max_term_width = 100)]
struct Args {
    #[command(flatten)]
    etcd: EtcdArgs,

    /// Marathon URLs, comma-separated (every master; the client follows the leader).
    #[arg(
        help_heading = "Marathon connection",
        long = "marathon",
        env = "MARATHON_URL",
        value_delimiter = ',',
        required = true
    )]
    marathon: Vec<Url>,

    /// Marathon user name (basic auth).
    #[arg(help_heading = "Marathon connection", long, env = "MARATHON_USERNAME")]
    marathon_username: Option<String>,

    /// Marathon password (prefer the environment variable to keep it out of `ps`).
    #[arg(
        help_heading = "Marathon connection",
        long,
        env = "MARATHON_PASSWORD",
        hide_env_values = true
    )]
    marathon_password: Option<String>,

    /// CA certificate (PEM) that signed Marathon's certificate, for https URLs.
    #[arg(help_heading = "Marathon connection", long, env = "MARATHON_CACERT")]
    marathon_ca_file: Option<PathBuf>,

    /// How long a Marathon request may take.
    #[arg(help_heading = "Marathon connection", long, default_value = "30s", value_parser = humantime::parse_duration)]
    marathon_timeout: Duration,

    /// Marathon group the apps live under (apps are /<group>/<service>/<name>).
    #[arg(
        help_heading = "Marathon connection",
        long,
        env = "THESEUS_MARATHON_GROUP"
    )]
    marathon_group: Option<String>,

    /// Address of the dashboard (/), /metrics, /healthz and /readyz.
    #[arg(
        help_heading = "Controller",
        long,
        env = "THESEUS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    listen: SocketAddr,

    /// Let the dashboard's deployment pages scale, pause, resume and undo (writes to
    /// /desired, each compared on the revision the page showed). Off: the dashboard has no
    /// write path.
    #[arg(help_heading = "Controller", long, env = "THESEUS_DASHBOARD_ACTIONS")]
    dashboard_actions: bool,

    /// How long the dashboard goes on watching etcd once its last page has closed (it
    /// watches only while someone looks: the first page starts it again).
    #[arg(help_heading = "Controller", long, env = "THESEUS_DASHBOARD_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    dashboard_idle_timeout: Duration,

    /// Reconciles that may run at once.
    #[arg(help_heading = "Controller", long, env = "THESEUS_WORKERS", default_value_t = DEFAULT_WORKERS, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,

    /// How often every deployment is reconciled and Marathon relisted, events or not.
    #[arg(help_heading = "Controller", long, env = "THESEUS_RESYNC", default_value = "60s", value_parser = humantime::parse_duration)]
    resync: Duration,

    /// TTL of the leadership lease: the longest a dead leader keeps the others waiting.
    #[arg(help_heading = "Controller", long, env = "THESEUS_LEASE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,

    /// How long reconciles in flight may take to finish on shutdown.
    #[arg(help_heading = "Controller", long, default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,

    /// This replica's name in the election (default: host name and process id).
    #[arg(help_heading = "Controller", long, env = "THESEUS_IDENTITY")]
    identity: Option<String>,

    /// Log format.
    #[arg(help_heading = "Controller", long, env = "THESEUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Logs go to stderr, coloured only on a terminal; RUST_LOG filters (default: info).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Failpoints named in FAILPOINTS (tests stop the process at a chosen line with them).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();

    let mut marathon = MarathonConfig::new(args.marathon.clone());
    marathon.username = args.marathon_username.clone();
    marathon.password = args.marathon_password.clone();
    marathon.ca_file = args.marathon_ca_file.clone();
    marathon.request_timeout = args.marathon_timeout;

    let mut config = ControllerConfig::new(args.etcd.config(), marathon);
    config.prefix = args.etcd.prefix.clone();
    config.marathon_group = args.marathon_group.clone();
    config.listen = args.listen;
    config.workers = usize::from(args.workers);
    config.resync = args.resync;
    config.lease_ttl = args.lease_ttl;
    config.drain = args.drain;
    config.backoff = Backoff::default();
    config.identity = args.identity.clone().unwrap_or_else(default_identity);
    if args.dashboard_actions {
        config.dashboard_actions = Actions::Enabled;
    }
    config.dashboard_idle_timeout = args.dashboard_idle_timeout;

    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let controller = Controller::start(config)
        .await
        .context("theseus-controller cannot start")?;
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => info!("SIGINT: shutting down"),
    }
    controller.shutdown().await;
    info!("stopped");
    Ok(())
}

/// `<host>-<pid>`: unique among replicas, and says where each one runs.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}
