//! The chaos suite: real processes under random churn and random faults, then a check that
//! everything converged and that no deposed leader wrote to Marathon.
//!
//! It starts a three-member etcd cluster (testkit), localmarathon as a process with its
//! simulated executor, a recording proxy in front of it, and two `theseus-controller`
//! replicas as processes, each talking to Marathon through a proxy listener of its own. For
//! `--duration` it changes `/desired` at random (`churn`) and injects faults at random
//! moments (`faults`); then it repairs every fault, waits until the state converged
//! (`verdict`, within `--deadline`), attributes every Marathon write to a leadership term
//! (`terms`), prints a summary and exits non-zero on any violation.
//!
//! ```sh
//! cargo build -p theseus-controllers -p localmarathon --bins
//! cargo run -p theseus-controllers --example chaos -- --duration 10m --seed 7
//! ```
//!
//! The seed fixes which operations and faults happen in which order and after which pauses;
//! how they interleave with the processes' own work is up to the machine, so two runs with
//! one seed are alike, not identical.

mod churn;
mod faults;
mod proxy;
mod stack;
mod terms;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use theseus::mapping::Mapping;
use theseus::marathon::{MarathonClient, MarathonConfig};
use theseus::store::{EtcdConfig, Layout, Store};
use theseus_testkit::EtcdCluster;
use tokio_util::sync::CancellationToken;

use churn::{Churn, ChurnLog};
use faults::{Chaos, FaultLog};
use proxy::RecordingProxy;
use stack::{ControllerSettings, MarathonProcess};
use terms::LeaderHistory;

/// Runs etcd (three members), localmarathon and two controller replicas under random churn
/// and faults, then checks that everything converged and no deposed leader wrote to Marathon.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// How long to churn and inject faults.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of the churn and the faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long the state may take to converge once every fault is repaired.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// The controllers' `--lease-ttl`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    /// The controllers' `--resync`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// Services under churn (each with `--names` deployments).
    #[arg(long, default_value_t = 4)]
    services: usize,
    /// Deployments per service under churn.
    #[arg(long, default_value_t = 6)]
    names: usize,
    /// Where `theseus-controller` and `localmarathon` are (default: this program's profile
    /// directory, e.g. `target/debug`).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Check the check: once the faults are over, send one harmless write (a restart of an
    /// app that does not exist) through the listener of a replica that led before the
    /// current leader, as a stalled deposed leader would. The run must then fail, naming it.
    #[arg(long)]
    send_deposed_write: bool,
    /// Keep the run's directory (process logs, localmarathon's state) even when it passes.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The runner's own etcd client logs only when asked (`RUST_LOG=theseus::store=debug`).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("chaos: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the summary reports.
struct Outcome {
    faults: FaultLog,
    churn: ChurnLog,
    writes: Vec<proxy::RecordedWrite>,
    terms: Vec<terms::Term>,
    deposed: Vec<terms::DeposedWrite>,
    /// When the state had converged, or the violations left at the deadline.
    converged: Result<Instant, Vec<String>>,
    /// When every fault had been repaired.
    healed: Instant,
    identities: Vec<String>,
    /// When the run started, for the times in the report.
    started: Instant,
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let controller_bin = stack::binary(args.bin_dir.as_deref(), "theseus-controller")?;
    let marathon_bin = stack::binary(args.bin_dir.as_deref(), "localmarathon")?;
    let dir = tempfile::Builder::new()
        .prefix("theseus-chaos-")
        .tempdir()
        .context("cannot create the run's directory")?;
    println!(
        "chaos: seed {}, {} of churn and faults; logs in {}",
        args.seed,
        humantime::format_duration(args.duration),
        dir.path().display()
    );

    let etcd = EtcdCluster::start(3);
    let endpoints = etcd.endpoints();
    let etcd = Arc::new(Mutex::new(etcd));
    let mut config = EtcdConfig::new(endpoints.clone());
    config.request_timeout = Duration::from_secs(3);
    config.connect_timeout = Duration::from_secs(1);
    let store = Store::connect(config, Layout::default())
        .await
        .context("cannot connect to etcd")?;
    let mapping = Mapping::new(None, endpoints.clone(), "")?;

    // The churn stops when the faults end; the leadership watch must not: terms begun while
    // the state converges judge the writes made meanwhile.
    let stop = CancellationToken::new();
    let stop_following = CancellationToken::new();
    let history = Arc::new(Mutex::new(LeaderHistory::default()));
    let follower = tokio::spawn(terms::follow(
        store.clone(),
        Arc::clone(&history),
        stop_following.clone(),
    ));
    let marathon = MarathonProcess::start(marathon_bin, dir.path()).await?;
    let marathon_client = MarathonClient::new(MarathonConfig::new(vec![marathon.url().parse()?]))?;
    let proxy = RecordingProxy::new(marathon.url(), Arc::clone(&history), store.clone())?;
    let settings = ControllerSettings {
        binary: controller_bin,
        etcd_endpoints: endpoints,
        lease_ttl: args.lease_ttl,
        resync: args.resync,
        dir: dir.path().to_owned(),
    };
    let mut chaos = Chaos::start(
        args.seed ^ 0x5eed_fa17,
        Arc::clone(&etcd),
        marathon,
        proxy,
        settings,
        store.clone(),
        Arc::clone(&history),
        2,
    )
    .await?;

    let churn = Churn::new(
        args.seed,
        store.clone(),
        mapping.clone(),
        args.services,
        args.names,
    );
    let churn = tokio::spawn(churn.run(stop.clone()));
    chaos.run(Instant::now() + args.duration).await?;
    stop.cancel();
    let churn = churn.await.context("the churn task failed")?;
    chaos.heal().await?;
    let healed = Instant::now();
    if args.send_deposed_write {
        send_deposed_write(&chaos.proxy, &history).await?;
    }
    println!("chaos: every fault repaired; waiting for convergence");

    let converged = converge(&store, &marathon_client, &mapping, &churn, args.deadline)
        .await
        .map(|()| Instant::now());
    // Writes made while converging count too.
    let writes = chaos.proxy.writes();
    // Every term in which one of these writes could have been sent began before now; wait
    // until the leadership watch has seen them all, or a lagging watch would blame a write of
    // a term it has not seen yet.
    let watch_deadline = Instant::now() + Duration::from_secs(60);
    if terms::catch_up(&store, &history, "verdict", watch_deadline)
        .await
        .is_none()
    {
        anyhow::bail!(
            "the watch of the election keys did not catch up with etcd within a minute; \
             the leadership terms are incomplete, so no write can be judged"
        );
    }
    let terms = history
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .terms()
        .to_vec();
    let bounds: Vec<terms::WriteBounds> = writes.iter().map(proxy::RecordedWrite::bounds).collect();
    let (_, deposed) = terms::attribute(&terms, &bounds);
    let outcome = Outcome {
        identities: chaos.identities(),
        faults: std::mem::take(&mut chaos.log),
        churn,
        writes,
        terms,
        deposed,
        converged,
        healed,
        started,
    };
    let passed = report(&args, &outcome);
    drop(chaos);
    stop_following.cancel();
    follower.abort();
    drop(etcd);
    if passed && !args.keep {
        dir.close().ok();
    } else {
        let kept = dir.keep();
        println!("chaos: logs kept in {}", kept.display());
    }
    Ok(passed)
}

/// Sends a write as a replica that no longer leads; see `--send-deposed-write`.
async fn send_deposed_write(
    proxy: &RecordingProxy,
    history: &Mutex<LeaderHistory>,
) -> anyhow::Result<()> {
    let deposed = {
        let history = history.lock().unwrap_or_else(PoisonError::into_inner);
        let terms = history.terms();
        let latest = terms.last().map(|t| t.identity.clone());
        terms
            .iter()
            .rev()
            .find(|t| Some(&t.identity) != latest.as_ref())
            .map(|t| t.identity.clone())
    };
    let deposed = deposed.context("no replica was deposed during the run")?;
    let url = proxy
        .url_of(&deposed)
        .context("the deposed replica has no proxy listener")?;
    let answer = reqwest::Client::new()
        .post(format!("{url}/v2/apps/chaos-check/deposed/restart"))
        .send()
        .await?;
    println!(
        "chaos: sent a write as deposed replica {deposed}; Marathon answered {}",
        answer.status()
    );
    Ok(())
}

/// Checks until nothing is violated, or returns the last violations at `deadline`.
async fn converge(
    store: &Store,
    marathon: &MarathonClient,
    mapping: &Mapping,
    churn: &ChurnLog,
    deadline: Duration,
) -> Result<(), Vec<String>> {
    let until = Instant::now() + deadline;
    loop {
        let last = match verdict::violations(store, marathon, mapping, churn).await {
            Ok(found) if found.is_empty() => return Ok(()),
            Ok(found) => found,
            Err(error) => vec![format!("cannot read the state: {error}")],
        };
        if Instant::now() > until {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints the summary table; returns whether the run passed.
fn report(args: &Args, outcome: &Outcome) -> bool {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut section = |title: &str, items: Vec<(String, String)>| {
        rows.push((format!("**{title}**"), String::new()));
        rows.extend(items);
    };
    section(
        "faults injected",
        outcome
            .faults
            .injected
            .iter()
            .map(|(fault, n)| (fault.to_string(), n.to_string()))
            .chain([
                (
                    "longest SIGSTOP".to_owned(),
                    format!("{:.1} s", outcome.faults.longest_pause.as_secs_f64()),
                ),
                (
                    "compactions left out (watch lagging)".to_owned(),
                    outcome.faults.compactions_skipped.to_string(),
                ),
            ])
            .collect(),
    );
    section(
        "operations on /desired",
        outcome
            .churn
            .operations
            .iter()
            .map(|(operation, n)| (operation.to_string(), n.to_string()))
            .chain([(
                "not acknowledged by etcd".to_owned(),
                outcome.churn.unacknowledged.to_string(),
            )])
            .collect(),
    );
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_replica: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unreached = 0;
    for write in &outcome.writes {
        *by_kind.entry(write.kind()).or_default() += 1;
        *by_replica.entry(write.identity.as_str()).or_default() += 1;
        if write.status.is_none() {
            unreached += 1;
        }
    }
    section(
        "Marathon writes (through the proxy)",
        by_kind
            .into_iter()
            .map(|(kind, n)| (kind, n.to_string()))
            .chain([
                ("while Marathon was down".to_owned(), unreached.to_string()),
                (
                    "by replicas (processes) writing".to_owned(),
                    format!("{} of {}", by_replica.len(), outcome.identities.len()),
                ),
                (
                    "leadership terms".to_owned(),
                    outcome.terms.len().to_string(),
                ),
            ])
            .collect(),
    );
    let violations = match &outcome.converged {
        Ok(_) => 0,
        Err(found) => found.len(),
    } + outcome.deposed.len();
    section(
        "result",
        vec![
            (
                "converged, after the last fault was injected".to_owned(),
                match (&outcome.converged, outcome.faults.last_injected) {
                    (Ok(at), Some(fault)) => {
                        format!("{:.1} s", at.duration_since(fault).as_secs_f64())
                    }
                    (Ok(_), None) => "no fault".to_owned(),
                    (Err(_), _) => {
                        format!("not within {}", humantime::format_duration(args.deadline))
                    }
                },
            ),
            (
                "converged, after every fault was repaired".to_owned(),
                match &outcome.converged {
                    Ok(at) => format!("{:.1} s", at.duration_since(outcome.healed).as_secs_f64()),
                    Err(_) => "-".to_owned(),
                },
            ),
            (
                "writes by a deposed leader".to_owned(),
                outcome.deposed.len().to_string(),
            ),
            ("violations".to_owned(), violations.to_string()),
        ],
    );
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let value = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    println!();
    println!(
        "chaos run: seed {}, {} of churn and faults, lease TTL {}, {} keys",
        args.seed,
        humantime::format_duration(args.duration),
        humantime::format_duration(args.lease_ttl),
        args.services * args.names
    );
    println!();
    println!("| {:<width$} | {:>value$} |", "", "");
    println!("|-{}-|-{}:|", "-".repeat(width), "-".repeat(value));
    for (what, n) in &rows {
        println!("| {what:<width$} | {n:>value$} |");
    }
    if let Err(found) = &outcome.converged {
        println!();
        println!("not converged; still violated at the deadline:");
        for violation in found {
            println!("  - {violation}");
        }
    }
    if !outcome.deposed.is_empty() {
        println!();
        println!("leadership terms, as the watch of the election keys saw them:");
        for term in &outcome.terms {
            println!(
                "  - {} from revision {} (token {})",
                term.identity, term.began, term.token
            );
        }
    }
    for write in &outcome.deposed {
        let recorded = &outcome.writes[write.index];
        let answer = recorded
            .status
            .map_or_else(|| "none: Marathon was down".to_owned(), |s| s.to_string());
        println!(
            "deposed write: {} {} by {} at +{:.3} s (Marathon's answer: {answer}), after {} \
             began to lead; etcd was at revision {} just after it arrived",
            recorded.method,
            recorded.path,
            write.identity,
            recorded.at.duration_since(outcome.started).as_secs_f64(),
            write.during.as_deref().unwrap_or("another replica"),
            recorded
                .began_by
                .map_or_else(|| "unknown".to_owned(), |r| r.to_string()),
        );
    }
    violations == 0
}
