//! What the controller's benchmarks share: the controller binary as a child process, reading
//! its metrics and etcd's, and the table they print.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use localmarathon::{AgentSpec, ExecutorKind, Handle, LocalMarathon};
use theseus::marathon::{MarathonClient, MarathonConfig};
use theseus::store::{EtcdConfig, Layout, Store, WatchEvent};
use theseus_testkit::{EtcdServer, free_port};

/// What every benchmark runs against: a real etcd and localmarathon in this process with its
/// simulated executor, on four agents large enough that placement never limits.
/// localmarathon runs on threads of its own ([`MARATHON_THREADS`]), as Marathon runs apart from
/// its clients: what the benchmark itself does (writing specs, following etcd's watch, reading
/// the controller's metrics) never keeps localmarathon's scheduler or event streams waiting.
pub struct Stack {
    /// The etcd server.
    pub etcd: EtcdServer,
    /// localmarathon.
    pub marathon: Handle,
    /// A store on the etcd, without prefix.
    pub store: Store,
    /// A client of localmarathon.
    pub client: MarathonClient,
}

/// The name of localmarathon's threads (its runtime's workers and blocking threads), by which
/// [`thread_cpu_seconds`] tells its CPU from the benchmark's.
pub const MARATHON_THREADS: &str = "localmarathon";

impl Stack {
    /// Starts etcd and localmarathon and connects to both.
    pub async fn start() -> Stack {
        let etcd = EtcdServer::start();
        let marathon = start_marathon().await;
        let store = Store::connect(EtcdConfig::new(etcd.endpoints()), Layout::default())
            .await
            .unwrap();
        let client =
            MarathonClient::new(MarathonConfig::new(vec![marathon.url().parse().unwrap()]))
                .unwrap();
        Stack {
            etcd,
            marathon,
            store,
            client,
        }
    }
}

/// The one HTTP client of the benchmark's reads of `/metrics` and `/readyz`. Building a client
/// loads and parses every root certificate of the system, which costs more CPU than the read
/// itself; the controller's queue is sampled every 50 ms during the measured run, and a client
/// per sample would take that CPU from what is measured.
pub fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// localmarathon on a runtime of its own, two workers named [`MARATHON_THREADS`], which
/// lives as long as this process.
async fn start_marathon() -> Handle {
    let (started, handle) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(MARATHON_THREADS.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(MARATHON_THREADS)
                .enable_all()
                .build()
                .expect("build localmarathon's runtime");
            runtime.block_on(async move {
                let marathon = LocalMarathon::builder()
                    .executor(ExecutorKind::Sim)
                    .agents((11..=14).map(|i| AgentSpec {
                        cpus: 100_000.0,
                        mem: 100_000_000.0,
                        disk: 100_000_000.0,
                        ..AgentSpec::new([127, 0, 0, i].into())
                    }))
                    .start()
                    .await
                    .expect("start localmarathon");
                let _ = started.send(marathon);
                // Its tasks run until the handle is shut down; the thread until the end.
                std::future::pending::<()>().await;
            });
        })
        .expect("start localmarathon's thread");
    handle.await.expect("localmarathon started")
}

/// CPU seconds (user and system) of this process's threads named `name`.
pub fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    threads
        .flatten()
        .filter(|thread| {
            std::fs::read_to_string(thread.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .map(|thread| process_cpu_seconds(&thread.path().join("stat").to_string_lossy()))
        .sum()
}

/// etcd's own delay, the baseline of every latency here: `samples` puts one after another,
/// each timed until a watch reports it.
pub async fn etcd_put_to_watch(store: &Store, samples: usize) -> Vec<Duration> {
    let mut watch = store.watch("/baseline/");
    while !matches!(watch.next().await, Some(Ok(WatchEvent::Synced { .. }))) {}
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        store.put(&format!("/baseline/{i}"), "x").await.unwrap();
        while !matches!(watch.next().await, Some(Ok(WatchEvent::Put { .. }))) {}
        latencies.push(started.elapsed());
    }
    latencies
}

/// The controller binary, killed when dropped (and by the kernel if the benchmark dies).
pub struct ControllerProcess {
    child: Child,
    http: String,
}

impl ControllerProcess {
    pub fn spawn(etcd: &EtcdServer, marathon: &str, resync: &str) -> Self {
        let port = free_port();
        // THESEUS_BENCH_WRAPPER runs the controller under a profiler, e.g. `heaptrack -o
        // <file>` (its memory figures are then the wrapper's).
        let wrapper = std::env::var("THESEUS_BENCH_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command
                    .args(words)
                    .arg(env!("CARGO_BIN_EXE_theseus-controller"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_theseus-controller")),
        };
        command
            .args(["--etcd-endpoints", &etcd.endpoint(), "--marathon", marathon])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--resync", resync, "--lease-ttl", "10s"])
            .env("RUST_LOG", "warn")
            .env_remove("THESEUS_PREFIX")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // A group of its own: a wrapper's child is stopped with it.
            .process_group(0);
        // SAFETY: between fork and exec only the async-signal-safe prctl(2) runs. It makes
        // the kernel kill the controller if the benchmark dies without dropping this.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .expect("start theseus-controller (built by cargo bench)");
        Self {
            child,
            http: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn metrics(&self) -> String {
        match http().get(format!("{}/metrics", self.http)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn wait_leading(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // What /readyz said last, for the message if the controller never leads.
            let said = match http().get(format!("{}/readyz", self.http)).send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() && text.contains("leader") {
                        return;
                    }
                    format!("{status}: {}", text.trim())
                }
                Err(error) => format!("no answer: {error}"),
            };
            assert!(
                Instant::now() < deadline,
                "the controller did not start leading; /readyz said {said}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident and peak resident memory, in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU seconds the controller has used (user and system).
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Stops the controller with SIGTERM, as a service manager would, and waits for it (and
    /// for a wrapper, which then finishes its own work, such as writing a profile).
    pub fn terminate(mut self) {
        let group = i32::try_from(self.child.id()).unwrap();
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_theseus-controller"));
        let controllers: Vec<i32> = group_members(group)
            .into_iter()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary)
            })
            .collect();
        for pid in if controllers.is_empty() {
            vec![group]
        } else {
            controllers
        } {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
    }

    /// Sends `signal` to the controller's process group: the controller, or a wrapper and
    /// the controller it runs.
    fn signal_group(&self, signal: nix::sys::signal::Signal) {
        let group = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::killpg(group, signal);
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The processes of process group `group`.
fn group_members(group: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // /proc/<pid>/stat: pid (comm) state ppid pgrp ...; comm may hold spaces.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok())
                    == Some(group)
            })
        })
        .collect()
}

/// Sum of every series of metric `name` whose line contains `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        // From +0.0: an empty `sum()` of floats is -0.0, which prints as "-0".
        .fold(0.0, |sum, value| sum + value)
}

/// Marathon calls by `METHOD route`, from the controller's metrics.
pub fn marathon_calls(text: &str) -> BTreeMap<String, f64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("theseus_controller_marathon_requests_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        *calls
            .entry(format!("{} {}", label("method"), label("route")))
            .or_default() += value.parse::<f64>().unwrap();
    }
    calls
}

/// etcd's own count of finished unary requests by method (Range, Put, Txn, DeleteRange, …).
/// CPU seconds (user and system) of the process whose `stat` file is `path`
/// (`/proc/self/stat` for this one).
pub fn process_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // USER_HZ, which Linux fixes at 100 for every architecture it runs this on.
    (ticks(11) + ticks(12)) / 100.0
}

/// etcd's CPU seconds, from its own `/metrics`.
pub async fn etcd_cpu_seconds(etcd: &EtcdServer) -> f64 {
    let text = http()
        .get(format!("{}/metrics", etcd.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_sum(&text, "process_cpu_seconds_total", "")
}

pub async fn etcd_server_requests(etcd: &EtcdServer) -> BTreeMap<String, f64> {
    let text = http()
        .get(format!("{}/metrics", etcd.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with("grpc_server_handled_total{") || !line.contains("grpc_type=\"unary\"")
        {
            continue;
        }
        let method = line
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_owned();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counts.entry(method).or_default() += value;
    }
    counts
}

pub fn delta(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// Latencies, summarised as `p50 / p99 (max)`.
pub fn summary(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "{} / {} (max {})",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().unwrap())
    )
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Prints `rows` (measurement, result, target) as a Markdown table under `title`.
pub fn print_table(title: &str, rows: &[(String, String, &str)]) {
    println!();
    println!(
        "{title}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let value_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    println!(
        "| {:<width$} | {:<value_width$} | {:<13} |",
        "measurement", "result", "target"
    );
    println!(
        "|-{}-|-{}-|---------------|",
        "-".repeat(width),
        "-".repeat(value_width)
    );
    for (what, value, target) in rows {
        println!("| {what:<width$} | {value:<value_width$} | {target:<13} |");
    }
}
