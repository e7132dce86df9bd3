//! `localmarathon`: serve Marathon's API and run its tasks on this machine until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use localmarathon::executor::docker::PullPolicy;
use localmarathon::{AgentSpec, ExecutorKind, LocalMarathon};

/// A Marathon-API-compatible scheduler that really runs tasks on one machine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to serve the Marathon API on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "LOCALMARATHON_LISTEN")]
    listen: String,
    /// A simulated agent: host=IP[,cpus=N][,mem=MB][,disk=MB][,ports=LOW-HIGH]. Repeat for more.
    /// Without any, three agents on 127.0.0.11-13 with 4 CPUs, 8192 MB and ports 31000-31999.
    #[arg(long = "agent", value_name = "SPEC")]
    agents: Vec<AgentSpec>,
    /// `process` runs real processes; `sim` only walks task states (for scale tests).
    #[arg(long, value_enum, default_value_t = ExecutorKind::Process)]
    executor: ExecutorKind,
    /// Where task sandboxes go (default: a temporary directory, removed on exit).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Keep app definitions here across restarts (apps are restored and relaunched on start).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Seconds between SSE heartbeats on /v2/events.
    #[arg(long, default_value_t = 10)]
    event_heartbeat_seconds: u64,
    /// The Docker network `container/bridge` tasks join (e.g. one whose gateway address
    /// etcd listens on, so that containers reach it).
    #[arg(long, value_name = "NETWORK", default_value = "bridge")]
    docker_bridge_network: String,
    /// Whether Docker images missing from the engine are pulled from their registry
    /// (`never`: only images built or loaded on this machine run).
    #[arg(long, value_enum, default_value_t = PullPolicy::Never)]
    docker_pull: PullPolicy,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let agents = if cli.agents.is_empty() {
        AgentSpec::defaults()
    } else {
        cli.agents
    };
    let mut builder = LocalMarathon::builder()
        .agents(agents.clone())
        .executor(cli.executor)
        .listen(cli.listen.clone())
        .docker_bridge_network(cli.docker_bridge_network)
        .docker_pull(cli.docker_pull)
        .event_heartbeat(std::time::Duration::from_secs(
            cli.event_heartbeat_seconds.max(1),
        ));
    if let Some(dir) = cli.work_dir {
        builder = builder.sandbox_root(dir);
    }
    if let Some(dir) = cli.state_dir {
        builder = builder.state_dir(dir);
    }
    let handle = builder.start().await.context("starting localmarathon")?;
    for agent in &agents {
        tracing::info!(agent = %agent, "agent ready");
    }
    tracing::info!(url = %handle.url(), executor = ?cli.executor, sandboxes = %handle.sandbox_root().display(), "Marathon API listening");
    // Printed on stdout so scripts and tests can find the port when listening on :0.
    println!("localmarathon listening on {}", handle.url());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    handle.shutdown().await;
    tracing::info!("all tasks stopped");
    Ok(())
}
