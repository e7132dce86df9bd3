//! `theseus-quickstart`: the whole theseus stack on this one machine, with the examples.
//!
//! It starts etcd on etcd's default client URL (so `etcdctl` and `theseus` work in another
//! terminal without flags), localmarathon with three agents, `theseus-controller` and a
//! `theseus watch` running the example hook; applies the examples; shows the deployments, their
//! status and the endpoints in `/observed`; proves that the example client reached an example
//! server it found only through `/observed`; and then runs until Ctrl-C, when it stops
//! everything it started. `scripts/quickstart.sh` installs what is missing, builds, and runs it.

mod containers;
mod stack;
mod tour;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use containers::Containers;
use stack::{Component, Stack};

/// Run etcd, localmarathon, theseus-controller and a watcher here, apply the examples, and
/// show them working. Ctrl-C stops everything.
#[derive(Debug, Parser)]
#[command(name = "theseus-quickstart", version, about, long_about = None)]
struct Args {
    /// Where etcd's data, the task sandboxes and the logs go.
    #[arg(long, default_value = ".local/quickstart")]
    state_dir: PathBuf,

    /// etcd's client port on 127.0.0.1; 0 picks a free one. The quick start stops if it is
    /// taken, rather than talk to an etcd it did not start.
    #[arg(long, default_value_t = 2379)]
    etcd_port: u16,

    /// localmarathon's port on 127.0.0.1 (Marathon's default); a free one if taken or 0.
    #[arg(long, default_value_t = 8080)]
    marathon_port: u16,

    /// The controller's dashboard, /metrics, /healthz and /readyz port; a free one if taken or 0.
    #[arg(long, default_value_t = 9090)]
    metrics_port: u16,

    /// Where `theseus`, `theseus-controller`, `localmarathon` and `theseus-hello` are
    /// (default: beside this program). Tasks find them on their PATH.
    #[arg(long)]
    bin_dir: Option<PathBuf>,

    /// The examples to apply and the watcher hook.
    #[arg(long, default_value = "examples")]
    examples_dir: PathBuf,

    /// How long to wait for the examples to run before giving up.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// The stack's addresses, once chosen.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// etcd's client URL on 127.0.0.1.
    pub etcd: String,
    /// The etcd URL the controller uses and hands tasks: on the Docker network's gateway when
    /// containers run, else [`Addresses::etcd`].
    pub task_etcd: String,
    /// localmarathon's URL.
    pub marathon: String,
    /// The controller's HTTP address.
    pub metrics: String,
    /// Where the binaries are.
    pub bin_dir: PathBuf,
    /// Where state and logs go.
    pub state_dir: PathBuf,
    /// The examples.
    pub examples_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A current-thread runtime: every child is spawned from the main thread, which lives as
    // long as the process (see `stack` on why that matters).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `wanted`, or a free port when it is 0 or taken (saying so).
fn port_or_free(what: &str, wanted: u16) -> anyhow::Result<u16> {
    if wanted != 0 && port_is_free(wanted) {
        return Ok(wanted);
    }
    let port = free_port()?;
    if wanted != 0 {
        println!("port {wanted} for {what} is taken; using {port} instead");
    }
    Ok(port)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("where is this program?")?
            .parent()
            .context("this program has no directory")?
            .to_path_buf(),
    };
    for program in [
        "theseus",
        "theseus-controller",
        "localmarathon",
        "theseus-hello",
    ] {
        if !bin_dir.join(program).is_file() {
            bail!(
                "{program} is not in {}: build the workspace first (cargo build --workspace --bins)",
                bin_dir.display()
            );
        }
    }
    let bin_dir = bin_dir.canonicalize()?;
    let examples_dir = args
        .examples_dir
        .canonicalize()
        .with_context(|| format!("no examples at {}", args.examples_dir.display()))?;

    let etcd_port = match args.etcd_port {
        0 => free_port()?,
        port if port_is_free(port) => port,
        port => bail!(
            "127.0.0.1:{port} is taken. The quick start runs its own etcd there so that etcdctl \
             and theseus work without flags; stop whatever listens on {port} and run it again"
        ),
    };
    let marathon_port = port_or_free("localmarathon", args.marathon_port)?;
    let metrics_port = port_or_free("the controller's metrics", args.metrics_port)?;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    let state_dir = args.state_dir.canonicalize()?;
    let containers = match Containers::prepare(&bin_dir) {
        Ok(containers) => {
            println!(
                "a Docker engine answers: Docker tasks join the network {} (etcd also listens on \
                 its gateway {}) and run the image {}",
                containers.network.name(),
                containers.gateway(),
                containers.image.tag
            );
            Some(containers)
        }
        Err(error) => {
            println!("{error}: the Docker variant of hello is skipped, the rest runs as usual");
            None
        }
    };
    let etcd = format!("http://127.0.0.1:{etcd_port}");
    let addresses = Addresses {
        task_etcd: containers.as_ref().map_or_else(
            || etcd.clone(),
            |c| format!("http://{}:{etcd_port}", c.gateway()),
        ),
        etcd,
        marathon: format!("http://127.0.0.1:{marathon_port}"),
        metrics: format!("http://127.0.0.1:{metrics_port}"),
        bin_dir,
        state_dir,
        examples_dir,
    };

    let mut stack = Stack::default();
    let result = start_and_tour(&mut stack, &addresses, containers.as_ref(), args.timeout).await;
    tour::heading("stopping");
    stack.stop();
    if let Some(containers) = containers {
        let network = containers.network.name().to_string();
        drop(containers);
        println!("  the network {network} is removed");
    }
    match result {
        Ok(()) => {
            println!("everything the quick start started has stopped");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

async fn start_and_tour(
    stack: &mut Stack,
    addresses: &Addresses,
    containers: Option<&Containers>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let state = &addresses.state_dir;
    let path = format!(
        "{}:{}",
        addresses.bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    tour::heading(&format!(
        "starting etcd on {} (data in {})",
        addresses.etcd,
        state.join("etcd").display()
    ));
    let peer = format!("http://127.0.0.1:{}", free_port()?);
    let client_urls = if addresses.task_etcd == addresses.etcd {
        addresses.etcd.clone()
    } else {
        format!("{},{}", addresses.etcd, addresses.task_etcd)
    };
    let mut etcd = Command::new("etcd");
    etcd.args(["--name", "quickstart", "--data-dir"])
        .arg(state.join("etcd"))
        .args(["--listen-client-urls", &client_urls])
        .args(["--advertise-client-urls", &client_urls])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("quickstart={peer}")])
        .args(["--logger=zap", "--log-level=warn"]);
    let etcd = stack.push(Component::spawn("etcd", etcd, state.join("etcd.log"))?);
    etcd.wait_ready(
        &format!("{}/health", addresses.etcd),
        Duration::from_secs(30),
    )
    .await?;

    tour::heading(&match containers {
        None => format!(
            "starting localmarathon on {} with three agents (127.0.0.11-13)",
            addresses.marathon
        ),
        Some(c) => format!(
            "starting localmarathon on {} with four agents (127.0.0.11-13, and {} for containers)",
            addresses.marathon,
            c.gateway()
        ),
    });
    let sandboxes = state.join("sandboxes");
    // Sandboxes of an earlier run belong to tasks that are gone.
    let _ = std::fs::remove_dir_all(&sandboxes);
    let mut marathon = Command::new(addresses.bin_dir.join("localmarathon"));
    marathon
        .args(["--listen", addresses.marathon.trim_start_matches("http://")])
        .arg("--work-dir")
        .arg(&sandboxes)
        .env("PATH", &path);
    if let Some(containers) = containers {
        // The three usual agents, and one on the gateway whose host ports containers reach.
        for i in 11..=13 {
            marathon.arg(format!("--agent=host=127.0.0.{i}"));
        }
        marathon
            .arg(format!("--agent=host={}", containers.gateway()))
            .arg(format!(
                "--docker-bridge-network={}",
                containers.network.name()
            ));
    }
    let marathon = stack.push(Component::spawn(
        "localmarathon",
        marathon,
        state.join("localmarathon.log"),
    )?);
    marathon
        .wait_ready(
            &format!("{}/ping", addresses.marathon),
            Duration::from_secs(30),
        )
        .await?;

    tour::heading(&format!(
        "starting theseus-controller (dashboard on {0}/, metrics on {0}/metrics)",
        addresses.metrics
    ));
    let mut controller = Command::new(addresses.bin_dir.join("theseus-controller"));
    controller
        .args(["--etcd-endpoints", &addresses.task_etcd])
        .args(["--marathon", &addresses.marathon])
        .args(["--listen", addresses.metrics.trim_start_matches("http://")])
        .args(["--resync", "30s", "--lease-ttl", "5s"])
        .env_remove("THESEUS_PREFIX");
    let controller = stack.push(Component::spawn(
        "theseus-controller",
        controller,
        state.join("controller.log"),
    )?);
    controller
        .wait_ready(
            &format!("{}/readyz", addresses.metrics),
            Duration::from_secs(60),
        )
        .await?;

    tour::heading(
        "starting a watcher: theseus watch --services hello --exec examples/hooks/log-change.sh",
    );
    let mut watch = Command::new(addresses.bin_dir.join("theseus"));
    watch
        .args(["watch", "--services", "hello", "--exec"])
        .arg(addresses.examples_dir.join("hooks/log-change.sh"))
        .env("ETCD_ENDPOINTS", &addresses.etcd)
        .env_remove("THESEUS_PREFIX");
    stack.push(Component::spawn(
        "theseus watch",
        watch,
        state.join("watch.log"),
    )?);

    for (name, pid) in stack.pids() {
        println!("  {name}: pid {pid}");
    }
    std::fs::write(
        state.join("pids"),
        stack
            .pids()
            .iter()
            .map(|(name, pid)| format!("{pid} {name}\n"))
            .collect::<String>(),
    )?;

    tour::run(stack, addresses, containers, timeout).await
}
