//! `theseus watch --services a,b --exec CMD`: runs CMD whenever the serving endpoints of a
//! watched service change (the old watcher.py, `WATCHES=a,b`), until SIGINT or SIGTERM.
//!
//! Waits for etcd when it is not reachable yet (a container may start before etcd answers);
//! a configuration etcd refuses (bad credentials, TLS files, endpoints) fails at once. Every
//! hook run, failure and etcd interruption is logged to stderr (`RUST_LOG` tunes it). With
//! `--once` it prints the endpoints of every watched service and exits, running nothing; with
//! `--json-lines` it prints every change as a line of JSON instead of running a command. See
//! [`theseus::guest::watcher`] for the hook's contract.

use std::io::IsTerminal;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::output::{OutputFormat, Table, print_structured};
use super::{EtcdArgs, Failure};
use theseus::api::DnsLabel;
use theseus::guest::watcher::{Change, Debounce, JsonLinesHook, ShellHook, Watcher, WatcherConfig};
use theseus::store::Store;

/// Arguments of `theseus watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Services to watch, comma-separated (or WATCHES, the old watcher's variable).
    #[arg(long, env = "WATCHES", value_delimiter = ',', required = true)]
    pub services: Vec<String>,

    /// Count only tasks whose deployment carries all these labels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Shell command run (`sh -c`) on each change, with THESEUS_SERVICE, THESEUS_DELTA and
    /// THESEUS_REVISION set and the change as JSON on stdin.
    #[arg(long, required_unless_present_any = ["once", "json_lines"])]
    pub exec: Option<String>,

    /// Instead of running a command, print each change as one line of JSON on stdout (the
    /// document --exec gets on stdin); a write to a closed stdout ends the watcher.
    #[arg(long, conflicts_with_all = ["exec", "once"])]
    pub json_lines: bool,

    /// Run the hook once changes have been quiet this long.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,

    /// Run the hook at the latest this long after the first change of a burst that keeps
    /// changing [default: 4 × --debounce].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub debounce_max: Option<Duration>,

    /// On shutdown, how long a running hook gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub stop_grace: Duration,

    /// Print the current endpoints of every watched service and exit.
    #[arg(long)]
    pub once: bool,
}

/// Runs `theseus watch`.
pub async fn run(args: WatchArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    init_logging("info");
    let mut services = Vec::new();
    let mut problems = Vec::new();
    // WATCHES may also be separated by spaces.
    for name in args.services.iter().flat_map(|s| s.split_whitespace()) {
        match DnsLabel::parse("service", name) {
            Ok(service) => services.push(service),
            Err(error) => problems.push(error.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Problems(problems));
    }
    let config = WatcherConfig {
        services,
        labels: args.labels,
        debounce: Debounce {
            quiet: args.debounce,
            max_delay: args
                .debounce_max
                .unwrap_or(Debounce::new(args.debounce).max_delay)
                .max(args.debounce),
        },
    };
    if args.once {
        let watcher = new_watcher(etcd.connect().await?, config)?;
        let current = watcher.current().await.map_err(guest_failure)?;
        return print_current(&current, output);
    }
    let command = match (args.exec, args.json_lines) {
        (Some(command), false) => Some(command),
        (None, true) => None,
        _ => {
            return Err(Failure::problem(
                "give one of --exec CMD, --json-lines or --once",
            ));
        }
    };
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
    let Some(store) = connect_when_reachable(etcd, &shutdown).await? else {
        return Ok(());
    };
    let watcher = new_watcher(store, config)?;
    let result = match command {
        Some(command) => {
            let hook = ShellHook::new(command).with_stop_grace(args.stop_grace);
            watcher.run(hook, shutdown).await;
            Ok(())
        }
        None => {
            let hook = JsonLinesHook::new(tokio::io::stdout(), shutdown.clone());
            let closed = hook.closed();
            watcher.run(hook, shutdown).await;
            if closed.is_cancelled() {
                Err(Failure::problem(
                    "stdout was closed: nothing reads the --json-lines output any more",
                ))
            } else {
                Ok(())
            }
        }
    };
    signals.abort();
    result
}

fn guest_failure(error: theseus::guest::Error) -> Failure {
    match error {
        theseus::guest::Error::Store(error) => Failure::Store(error),
        other => Failure::problem(other.to_string()),
    }
}

fn new_watcher(store: Store, config: WatcherConfig) -> Result<Watcher, Failure> {
    Watcher::new(store, config).map_err(guest_failure)
}

/// Connects, retrying while etcd is unreachable; `None` when shutdown came first.
async fn connect_when_reachable(
    etcd: &EtcdArgs,
    shutdown: &CancellationToken,
) -> Result<Option<Store>, Failure> {
    let mut delays = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match etcd.connect().await {
            Ok(store) => return Ok(Some(store)),
            Err(error @ theseus::store::Error::Unreachable { .. }) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%error, retry_in = %humantime::format_duration(delay), "waiting for etcd");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot listen for SIGINT and SIGTERM; stop the watcher with SIGKILL");
        return;
    };
    let name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!("{name} received; stopping running hooks and exiting");
    shutdown.cancel();
}

fn print_current(current: &[Change], output: OutputFormat) -> Result<(), Failure> {
    if output != OutputFormat::Table {
        return Ok(print_structured(output, &current)?);
    }
    let mut table = Table::new(&["SERVICE", "DEPLOYMENT", "TASK", "HOST", "PORTS", "LABELS"]);
    for change in current {
        if change.nodes.is_empty() {
            table.row(vec![
                change.service.clone(),
                "-".into(),
                "(none serving)".into(),
            ]);
        }
        for node in &change.nodes {
            let ports = node
                .ports
                .iter()
                .map(|(name, port)| format!("{name}={}->{}", port.host, port.container))
                .collect::<Vec<_>>()
                .join(",");
            table.row(vec![
                change.service.clone(),
                node.deployment.clone(),
                node.task_id.clone(),
                node.host.clone(),
                ports,
                node.labels.join(","),
            ]);
        }
    }
    Ok(table.print()?)
}

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise; colours only on a
/// terminal. Harmless when called twice.
pub(super) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
