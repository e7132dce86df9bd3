//! Watcher latency: from a change under `/observed` to the hook starting, with many watchers
//! of one service at once. Prints a table; asserts nothing.
//!
//! Each round writes one new serving task record for the watched service and waits until
//! every watcher's hook has run for that revision. A hook appends its revision and the wall
//! clock (`date +%s%N`, inside the hook's shell) to a file of its own, so "shell running" is
//! measured from etcd acknowledging the write to the moment the hook's shell runs, including
//! the fork of `sh` and of `date`. In-process watchers also record when the watcher invoked
//! the hook (just before it spawns `sh`). Latencies are shown beyond the debounce window,
//! which every change waits out by design; the write's own latency is shown apart.
//!
//! Modes:
//! - `in-process` (default): N [`Watcher`]s in this process, each with its own etcd
//!   connection and watch stream (as N processes would have), on one multi-threaded runtime;
//! - `processes`: N `theseus watch` processes (build the binary first).
//!
//! `--hook record` (in-process only) replaces the shell with a hook that only records the
//! time: the watcher's own latency, without the cost of starting N processes at once.
//!
//! ```text
//! cargo build --release -p theseus-cli -p theseus --bin theseus --example bench_watch
//! target/release/examples/bench_watch --watchers 100 --rounds 30
//! target/release/examples/bench_watch --watchers 100 --rounds 30 --mode processes
//! ```
//!
//! It starts its own etcd (Debian's `etcd-server`) on free loopback ports.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use theseus::api::{DeploymentKey, DnsLabel, PortBinding, TaskRecord};
use theseus::guest::watcher::{
    Change, Debounce, Hook, HookOutcome, ShellHook, Watcher, WatcherConfig,
};
use theseus::marathon::TaskState;
use theseus::store::{EtcdConfig, Layout, Revision, Store};
use theseus_testkit::EtcdServer;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Watchers inside this process, one etcd connection each.
    InProcess,
    /// One `theseus watch` process per watcher.
    Processes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HookKind {
    /// `sh -c` writing the time taken with `date` (one more process: an upper bound).
    Shell,
    /// `sh -c` creating a file, whose modification time is read (no second process; the
    /// kernel's file clock is coarse, up to a tick early).
    Touch,
    /// In-process only: the watcher's own latency, with no process started.
    Record,
}

/// Measures watcher latency from an /observed change to the hook starting.
#[derive(Debug, Parser)]
struct Args {
    /// How many watchers watch the service.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// How many changes to measure.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// The watchers' debounce window.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// Where the watchers run.
    #[arg(long, value_enum, default_value_t = Mode::InProcess)]
    mode: Mode,
    /// What the hook is.
    #[arg(long, value_enum, default_value_t = HookKind::Shell)]
    hook: HookKind,
}

const SERVICE: &str = "bench";
/// How long one round may take before the benchmark gives up.
const ROUND_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.hook == HookKind::Record && args.mode == Mode::Processes {
        anyhow::bail!("--hook record measures in-process watchers only");
    }
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir()?;
    let mut config = EtcdConfig::new(etcd.endpoints());
    config.request_timeout = Duration::from_secs(10);
    let store = Store::connect(config.clone(), Layout::default()).await?;
    let initial = put_task(&store, 0).await?;

    let invoked: Invocations = Arc::new(Mutex::new(HashMap::new()));
    let shutdown = CancellationToken::new();
    let mut processes = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..args.watchers {
        let command = match args.hook {
            HookKind::Touch => format!(
                ": > {}.$THESEUS_REVISION",
                hook_file(dir.path(), i).display()
            ),
            _ => format!(
                "echo \"$THESEUS_REVISION $(date +%s%N)\" >> {}",
                hook_file(dir.path(), i).display()
            ),
        };
        match args.mode {
            Mode::InProcess => {
                let store = Store::connect(config.clone(), Layout::default()).await?;
                let watcher = Watcher::new(
                    store,
                    WatcherConfig {
                        services: vec![DnsLabel::parse("service", SERVICE)?],
                        labels: vec![],
                        debounce: Debounce::new(args.debounce),
                    },
                )?;
                let hook = Timed {
                    shell: (args.hook != HookKind::Record).then(|| ShellHook::new(command)),
                    file: hook_file(dir.path(), i),
                    invoked: invoked.clone(),
                };
                tasks.push(tokio::spawn(watcher.run(hook, shutdown.clone())));
            }
            Mode::Processes => {
                processes.push(WatchProcess::start(
                    &etcd.endpoint(),
                    &command,
                    args.debounce,
                )?);
            }
        }
    }

    // Every watcher runs its hook once on start; wait for all of them.
    let started = Instant::now();
    wait_for_all(dir.path(), args.watchers, initial, args.hook).await?;
    eprintln!(
        "{} watchers ({:?}) ready in {:.1?}",
        args.watchers,
        args.mode,
        started.elapsed()
    );

    let mut writes = Vec::new();
    let mut shell = Vec::new();
    let mut at_invocation = Vec::new();
    for round in 1..=args.rounds {
        let before = SystemTime::now();
        let revision = put_task(&store, round).await?;
        // The change exists once etcd acknowledges it (after its WAL is on disk).
        let committed = SystemTime::now();
        writes.push(since(before, committed));
        let ran = wait_for_all(dir.path(), args.watchers, revision, args.hook).await?;
        shell.extend(ran.iter().map(|at| since(committed, *at)));
        if let Some(times) = invoked.lock().unwrap().remove(&revision) {
            at_invocation.extend(times.iter().map(|at| since(committed, *at)));
        }
        // A hook has written its line but may not have exited yet; the next run for the
        // service would wait for it, which is not the latency measured here.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    shutdown.cancel();
    for task in tasks {
        task.await?;
    }
    drop(processes);

    let beyond = |samples: &[Duration]| -> Vec<Duration> {
        samples
            .iter()
            .map(|s| s.saturating_sub(args.debounce))
            .collect()
    };
    println!();
    println!(
        "watcher latency, {} watchers ({}, {} hook), {} changes, debounce {}; times beyond the \
         debounce window",
        args.watchers,
        match args.mode {
            Mode::InProcess => "in-process, one etcd connection and watch each",
            Mode::Processes => "one `theseus watch` process each",
        },
        match args.hook {
            HookKind::Shell => "sh -c with date",
            HookKind::Touch => "sh -c creating a file",
            HookKind::Record => "in-process, no process started",
        },
        args.rounds,
        humantime::format_duration(args.debounce)
    );
    println!(
        "{:<44} {:>8} {:>10} {:>10} {:>10}",
        "from etcd acknowledging the write to", "samples", "p50", "p99", "max"
    );
    if !at_invocation.is_empty() {
        print_row("the watcher invoking the hook", &beyond(&at_invocation));
    }
    if args.hook != HookKind::Record {
        print_row("the hook's shell running", &beyond(&shell));
    }
    println!();
    print_row("(the write itself, not counted above)", &writes);
    Ok(())
}

type Invocations = Arc<Mutex<HashMap<Revision, Vec<SystemTime>>>>;

/// The shell hook, with the moment the watcher invoked it recorded; without a shell, it
/// writes the hook's line itself.
struct Timed {
    shell: Option<ShellHook>,
    file: PathBuf,
    invoked: Invocations,
}

impl Hook for Timed {
    async fn run(&self, change: &Change, shutdown: &CancellationToken) -> HookOutcome {
        let now = SystemTime::now();
        self.invoked
            .lock()
            .unwrap()
            .entry(change.revision)
            .or_default()
            .push(now);
        match &self.shell {
            Some(shell) => shell.run(change, shutdown).await,
            None => {
                let nanos = now
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let line = format!("{} {nanos}\n", change.revision);
                let appended = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.file)
                    .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
                match appended {
                    Ok(()) => HookOutcome::Succeeded,
                    Err(error) => HookOutcome::Failed {
                        status: error.to_string(),
                        stderr_tail: String::new(),
                    },
                }
            }
        }
    }
}

/// A `theseus watch` process, stopped when dropped.
struct WatchProcess(Child);

impl WatchProcess {
    fn start(endpoint: &str, command: &str, debounce: Duration) -> anyhow::Result<WatchProcess> {
        let binary = std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("theseus"))
            .filter(|path| path.exists())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no theseus binary beside the examples directory; build it with \
                     `cargo build --release -p theseus-cli -p theseus --bin theseus --example bench_watch`"
                )
            })?;
        let mut process = Command::new(binary);
        process
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ETCD_ENDPOINTS", endpoint)
            .env("RUST_LOG", "error")
            .args(["watch", "--services", SERVICE, "--exec", command])
            .arg("--debounce")
            .arg(humantime::format_duration(debounce).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing is allocated between fork and exec.
        unsafe {
            process.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))
            });
        }
        Ok(WatchProcess(process.spawn()?))
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn hook_file(dir: &Path, watcher: usize) -> PathBuf {
    dir.join(format!("watcher-{watcher:03}"))
}

/// Writes serving task `n` of the benchmarked service.
async fn put_task(store: &Store, n: usize) -> anyhow::Result<Revision> {
    let key = DeploymentKey::new(SERVICE, "main")?;
    let task_id = format!("bench_main.{n:06}");
    let record = TaskRecord {
        service: SERVICE.into(),
        deployment: "main".into(),
        task_id: task_id.clone(),
        app_id: "/bench/main".into(),
        host: format!("127.0.0.{}", 1 + n % 250),
        agent_id: None,
        ip_addresses: vec![],
        ports: BTreeMap::from([(
            "http".to_owned(),
            PortBinding {
                host: 31000 + n as u16,
                container: 8080,
                protocol: "tcp".into(),
            },
        )]),
        state: TaskState::Running,
        health: Default::default(),
        health_checked: false,
        staged_at: None,
        started_at: None,
        version: None,
        labels: vec![],
    };
    Ok(store
        .put_json(&store.layout().task(&key, &task_id), &record)
        .await?)
}

/// Waits until every watcher's hook has run for `revision`, and returns when each did.
async fn wait_for_all(
    dir: &Path,
    watchers: usize,
    revision: Revision,
    hook: HookKind,
) -> anyhow::Result<Vec<SystemTime>> {
    let deadline = Instant::now() + ROUND_DEADLINE;
    let ran = |i: usize| -> Option<SystemTime> {
        let file = hook_file(dir, i);
        if hook == HookKind::Touch {
            let touched = PathBuf::from(format!("{}.{revision}", file.display()));
            return std::fs::metadata(touched).and_then(|m| m.modified()).ok();
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().find_map(|line| {
            let (rev, nanos) = line.split_once(' ')?;
            let nanos: u64 = nanos.trim().parse().ok()?;
            (rev.parse::<Revision>().ok()? == revision)
                .then(|| UNIX_EPOCH + Duration::from_nanos(nanos))
        })
    };
    loop {
        let times: Vec<SystemTime> = (0..watchers).map_while(ran).collect();
        if times.len() == watchers {
            return Ok(times);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {watchers} hooks ran for revision {revision} within {ROUND_DEADLINE:?}",
                times.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn since(before: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(before).unwrap_or_default()
}

fn print_row(what: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let percentile = |p: f64| {
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{:<44} {:>8} {:>10} {:>10} {:>10}",
        what,
        sorted.len(),
        ms(percentile(0.50)),
        ms(percentile(0.99)),
        ms(*sorted.last().unwrap())
    );
}
