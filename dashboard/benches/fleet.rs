//! The dashboard with a large fleet: numbers, printed as a table, no assertions.
//!
//! `cargo bench -p theseus-dashboard --bench fleet -- --deployments 10000`
//!
//! It starts a real etcd (testkit) and writes `--deployments` deployments into it, each with
//! a spec under `/desired`, a `Running` status and two task records under `/observed`. The
//! dashboard then runs as a child process of its own (this benchmark's binary, started again
//! with `--serve`, doing what `theseus dashboard` does: [`Dashboard::start`] and
//! [`Dashboard::serve`]), so its memory is the dashboard's alone. Measured:
//!
//! 1. the dashboard's start until its first list of etcd is live (the benchmark's first read
//!    of its API starts the watch: the dashboard watches only while someone looks);
//! 2. the fleet's first view as the server answers it: `GET /api/fleet`, to the last byte,
//!    with etcd quiet and while specs are put one after another;
//! 3. first paint in headless Chromium (through chromedriver, driven by Selenium from Python,
//!    as the browser test does): from the start of navigation to the fleet table holding its
//!    first page of rows with the count of every deployment, taken in the page as the first
//!    animation frame after the table was filled (`performance.now()`); skipped, and said so,
//!    without `chromium` and `chromedriver`;
//! 4. put → page: from an etcd put of a deployment's spec to the `rows` event naming it at
//!    its new revision arriving on an open fleet event stream (an HTTP client reading
//!    `/api/events?view=fleet` as a page does), `--puts` puts one after another, with one
//!    page open and with `--pages` pages open; and in Chromium, from the put to the changed
//!    cell being in the page's table (put over etcd's JSON gateway from the driver; both
//!    clocks are the machine's wall clock);
//! 5. the dashboard process's resident memory (VmRSS, and its peak VmHWM) with no page open
//!    (within the idle timeout of the reads above, so the picture is still held) and with
//!    `--pages` fleet event streams open, each having read its snapshot.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use theseus::api::DeploymentKey;
use theseus::store::{EtcdConfig, Layout, Store, Txn};
use theseus_dashboard::Dashboard;
use theseus_testkit::EtcdServer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any one step may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(300);
/// Deployments written per transaction (etcd allows 128 operations in one).
const PER_TXN: usize = 40;
/// The Selenium release the driver script is written for (as the browser test).
const SELENIUM: &str = "selenium==4.27.1";

#[derive(Debug)]
struct Options {
    deployments: usize,
    puts: usize,
    pages: usize,
    loads: usize,
    browser_puts: usize,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut options = Options {
            deployments: 10_000,
            puts: 200,
            pages: 10,
            loads: 3,
            browser_puts: 50,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                // Added by `cargo bench`.
                "--bench" => continue,
                "--deployments" => &mut options.deployments,
                "--puts" => &mut options.puts,
                "--pages" => &mut options.pages,
                "--loads" => &mut options.loads,
                "--browser-puts" => &mut options.browser_puts,
                other => panic!(
                    "unknown argument {other}; the arguments are --deployments N, --puts N, \
                     --pages N, --loads N (browser page loads), --browser-puts N"
                ),
            };
            *slot = args
                .next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{arg} takes a number"));
        }
        options
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, endpoint] = args.as_slice()
        && flag == "--serve"
    {
        serve(endpoint);
        return;
    }
    let options = Options::parse(&args);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(options));
}

/// The child: the dashboard over `endpoint`, as `theseus dashboard` serves it, until its
/// stdin closes (the benchmark closes it, or dies).
fn serve(endpoint: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let stop = CancellationToken::new();
        let on_close = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            on_close.cancel();
        });
        let config = EtcdConfig::new([endpoint]);
        let dashboard = Dashboard::start(config, Layout::default(), None, stop.child_token());
        dashboard
            .serve("127.0.0.1:0".parse().unwrap(), stop.clone(), |addr| {
                println!("listening {addr}");
            })
            .await
            .unwrap();
        dashboard.shutdown().await;
    });
}

/// The dashboard child process; killed when dropped.
struct DashboardProcess {
    child: Child,
    url: String,
}

impl DashboardProcess {
    fn start(endpoint: &str) -> DashboardProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--serve", endpoint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the dashboard process starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the dashboard did not say where it listens: {line:?}"))
            .trim();
        DashboardProcess {
            url: format!("http://{addr}"),
            child,
        }
    }

    /// Resident and peak resident memory, in MiB.
    fn memory_mib(&self) -> (f64, f64) {
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
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key_of(i: usize) -> DeploymentKey {
    DeploymentKey::new(&format!("svc{:02}", i % 50), &format!("app{i:05}")).unwrap()
}

fn spec(i: usize, instances: u32) -> String {
    json!({"cmd": "sleep 600", "instances": instances, "ports": {"http": 8080},
           "labels": [format!("team{}", i % 7), if i.is_multiple_of(2) { "prod" } else { "dev" }],
           "environment": {"APP_NAME": format!("app{i}"), "API_TOKEN": "s3cret"}})
    .to_string()
}

fn status(key: &DeploymentKey, revision: i64) -> String {
    json!({"observed_revision": revision, "phase": "Running",
           "conditions": [
               {"type": "Valid", "status": true, "reason": "SpecValid", "message": "the spec is valid"},
               {"type": "Available", "status": true, "reason": "MinimumReplicasAvailable",
                "message": "2 of 2 instances run and are healthy"}],
           "instances": {"desired": 2, "staged": 0, "running": 2, "healthy": 2, "unhealthy": 0},
           "app_id": format!("/{key}"), "app_version": "2026-01-01T00:00:00.000Z",
           "updated_at": "2026-01-01T00:00:00Z"})
    .to_string()
}

fn task(key: &DeploymentKey, i: usize, n: usize) -> (String, String) {
    let task_id = format!("{}_{}.{i:05}-{n}", key.service, key.name);
    let record = json!({"service": key.service.to_string(), "deployment": key.name.to_string(),
        "task_id": task_id, "app_id": format!("/{key}"), "host": format!("127.0.{}.{}", n + 1, i % 250 + 1),
        "ports": {"http": {"host": 31000 + (i % 1000) as u16, "container": 8080, "protocol": "tcp"}},
        "state": "TASK_RUNNING", "health": "healthy", "health_checked": true,
        "staged_at": "2026-01-01T00:00:00.000Z", "started_at": "2026-01-01T00:00:01.000Z",
        "version": "2026-01-01T00:00:00.000Z"});
    (task_id, record.to_string())
}

/// Writes the fleet: the specs first, then each status at its spec's revision with two
/// task records.
async fn write_fleet(store: &Store, deployments: usize) {
    let layout = store.layout().clone();
    let batches: Vec<Vec<usize>> = (0..deployments)
        .collect::<Vec<_>>()
        .chunks(PER_TXN * 3)
        .map(<[usize]>::to_vec)
        .collect();
    for batch in batches {
        let txn = batch.iter().fold(Txn::new(), |txn, &i| {
            txn.put(&layout.desired(&key_of(i)), spec(i, 2))
        });
        let revision = store.txn(txn).await.unwrap().revision;
        for chunk in batch.chunks(PER_TXN) {
            let txn = chunk.iter().fold(Txn::new(), |txn, &i| {
                let key = key_of(i);
                let txn = txn.put(&layout.status(&key), status(&key, revision));
                (0..2).fold(txn, |txn, n| {
                    let (id, record) = task(&key, i, n);
                    txn.put(&layout.task(&key, &id), record)
                })
            });
            store.txn(txn).await.unwrap();
        }
    }
}

/// What a fleet page's event stream brought, as it arrived.
#[derive(Debug)]
enum Arrival {
    /// The whole view.
    Snapshot,
    /// A changed row: its id and desired revision.
    Row(String, i64, Instant),
}

/// Opens a fleet page's event stream and reports what arrives on it.
async fn open_page(url: &str, arrivals: mpsc::UnboundedSender<Arrival>) -> JoinHandle<()> {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/events?view=fleet"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut events = response.bytes_stream().eventsource();
        while let Some(Ok(event)) = events.next().await {
            let at = Instant::now();
            match event.event.as_str() {
                "snapshot" => {
                    let _ = arrivals.send(Arrival::Snapshot);
                }
                "rows" => {
                    let rows: Value = serde_json::from_str(&event.data).unwrap();
                    for row in rows["upsert"].as_array().into_iter().flatten() {
                        let id = row["id"].as_str().unwrap_or_default().to_owned();
                        let revision = row["desired_revision"].as_i64().unwrap_or_default();
                        let _ = arrivals.send(Arrival::Row(id, revision, at));
                    }
                }
                _ => {}
            }
        }
    })
}

async fn next_arrival(arrivals: &mut mpsc::UnboundedReceiver<Arrival>) -> Arrival {
    tokio::time::timeout(DEADLINE, arrivals.recv())
        .await
        .expect("the page's event stream answers in time")
        .expect("the page's event stream stays open")
}

/// Put → `rows` event latencies in milliseconds, over `puts` puts of specs of the first
/// deployments, read on one page's event stream.
async fn put_to_page(store: &Store, url: &str, deployments: usize, puts: usize) -> Vec<f64> {
    let (sender, mut arrivals) = mpsc::unbounded_channel();
    let page = open_page(url, sender).await;
    while !matches!(next_arrival(&mut arrivals).await, Arrival::Snapshot) {}
    let mut latencies = Vec::with_capacity(puts);
    for n in 0..puts {
        let i = n % deployments.min(100);
        let key = key_of(i);
        let sent = Instant::now();
        let revision = store
            .put(&store.layout().desired(&key), spec(i, 3 + (n % 2) as u32))
            .await
            .unwrap();
        let id = key.to_string();
        loop {
            if let Arrival::Row(row, at_revision, at) = next_arrival(&mut arrivals).await
                && row == id
                && at_revision >= revision
            {
                latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    page.abort();
    latencies
}

/// Milliseconds to read the whole of `GET url`, and its size in bytes.
async fn fetch(url: &str) -> (f64, usize) {
    let started = Instant::now();
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    (started.elapsed().as_secs_f64() * 1000.0, body.len())
}

/// Waits until the dashboard's picture of etcd is live and holds every deployment.
async fn wait_listed(url: &str, deployments: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = async {
            let controller: Value = reqwest::get(format!("{url}/api/controller"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(controller["connection"]["link"] == "live")
        };
        if answer.await == Some(true) {
            let fleet: Value = reqwest::get(format!("{url}/api/fleet"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if fleet["rows"].as_array().map_or(0, Vec::len) >= deployments {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not list the fleet"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or(f64::NAN),
        values.len()
    )
}

/// The path of `name` from `$variable`, else from `PATH`.
fn program(variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The driver script in a process group of its own, so chromedriver and Chromium go with it.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// What Chromium measured, in milliseconds.
struct BrowserNumbers {
    /// Navigation → the fleet's snapshot event arrived, per load.
    snapshots: Vec<f64>,
    /// Navigation → the table painted, per load.
    paints: Vec<f64>,
    /// Put → the changed cell in the page, per put.
    puts: Vec<f64>,
}

/// Loads the fleet page and changes a row it shows in Chromium; `Err` says why not.
fn in_browser(url: &str, etcd: &str, options: &Options) -> Result<BrowserNumbers, String> {
    let (Some(chromium), Some(chromedriver)) = (
        program("CHROMIUM_BIN", "chromium"),
        program("CHROMEDRIVER_BIN", "chromedriver"),
    ) else {
        return Err("skipped: chromium and chromedriver are not installed".into());
    };
    let python = theseus_testkit::python::python_with(
        "dashboard-selenium-venv",
        SELENIUM,
        "import selenium",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fleet/browser.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(url)
        .arg(etcd)
        .args([options.deployments, options.loads, options.browser_puts].map(|n| n.to_string()))
        .env("CHROMIUM_BIN", chromium)
        .env("CHROMEDRIVER_BIN", chromedriver)
        .stdout(Stdio::piped())
        .process_group(0);
    let mut browser = Browser(command.spawn().map_err(|error| error.to_string())?);
    let lines = BufReader::new(browser.0.stdout.take().unwrap()).lines();
    let (mut snapshots, mut paints, mut puts) = (Vec::new(), Vec::new(), Vec::new());
    for line in lines {
        let line = line.map_err(|error| error.to_string())?;
        let mut words = line.split_whitespace();
        let (what, value) = (words.next(), words.next().and_then(|v| v.parse().ok()));
        match (what, value) {
            (Some("snapshot"), Some(ms)) => snapshots.push(ms),
            (Some("paint"), Some(ms)) => paints.push(ms),
            (Some("put"), Some(ms)) => puts.push(ms),
            _ => eprintln!("browser: {line}"),
        }
    }
    let status = browser.0.wait().map_err(|error| error.to_string())?;
    if !status.success() {
        return Err(format!("the browser driver failed ({status}); see above"));
    }
    Ok(BrowserNumbers {
        snapshots,
        paints,
        puts,
    })
}

async fn run(options: Options) {
    let etcd = EtcdServer::start();
    let store = Store::connect(EtcdConfig::new(etcd.endpoints()), Layout::default())
        .await
        .unwrap();
    let n = options.deployments;
    let mut table: Vec<(String, String)> = Vec::new();

    let started = Instant::now();
    write_fleet(&store, n).await;
    table.push((
        format!("write {n} deployments ({} keys) to etcd", n * 4),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));

    let started = Instant::now();
    let dashboard = DashboardProcess::start(&etcd.endpoint());
    wait_listed(&dashboard.url, n).await;
    table.push((
        "dashboard start → fleet listed and live".into(),
        format!("{:.0} ms", started.elapsed().as_secs_f64() * 1000.0),
    ));
    let (rss, hwm) = dashboard.memory_mib();
    table.push((
        "dashboard memory, no page open".into(),
        format!("VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"),
    ));

    let mut views = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let (ms, bytes) = fetch(&format!("{}/api/fleet", dashboard.url)).await;
        views.push(ms);
        size = bytes;
    }
    table.push((
        format!(
            "GET /api/fleet, complete ({:.1} MiB)",
            size as f64 / 1048576.0
        ),
        summary(views),
    ));
    let (ms, bytes) = fetch(&format!("{}/", dashboard.url)).await;
    table.push((
        format!("GET / (the page, {bytes} bytes)"),
        format!("{ms:.1} ms"),
    ));

    let latencies = put_to_page(&store, &dashboard.url, n, options.puts).await;
    table.push(("put → rows event, 1 page open".into(), summary(latencies)));

    // The first view while the fleet changes: specs put one after another meanwhile.
    let flowing = CancellationToken::new();
    let writer = tokio::spawn({
        let (store, flowing) = (store.clone(), flowing.clone());
        async move {
            let mut puts = 0;
            while !flowing.is_cancelled() {
                let i = puts % 100;
                let value = spec(i, 3 + (puts % 2) as u32);
                store
                    .put(&store.layout().desired(&key_of(i)), value)
                    .await
                    .unwrap();
                puts += 1;
            }
            puts
        }
    });
    let mut views = Vec::new();
    let started = Instant::now();
    for _ in 0..5 {
        views.push(fetch(&format!("{}/api/fleet", dashboard.url)).await.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    flowing.cancel();
    let puts = writer.await.unwrap();
    table.push((
        format!(
            "GET /api/fleet, complete, during {:.0} puts/s",
            puts as f64 / elapsed
        ),
        summary(views),
    ));

    let (sender, mut arrivals) = mpsc::unbounded_channel();
    let mut pages = Vec::new();
    for _ in 0..options.pages {
        pages.push(open_page(&dashboard.url, sender.clone()).await);
    }
    let mut snapshots = 0;
    while snapshots < options.pages {
        if let Arrival::Snapshot = next_arrival(&mut arrivals).await {
            snapshots += 1;
        }
    }
    let (rss, hwm) = dashboard.memory_mib();
    table.push((
        format!("dashboard memory, {} pages open", options.pages),
        format!("VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"),
    ));
    // The open pages' own arrivals are not waited for; drop them as they come.
    let drain = tokio::spawn(async move { while arrivals.recv().await.is_some() {} });
    let latencies = put_to_page(&store, &dashboard.url, n, options.puts).await;
    table.push((
        format!("put → rows event, {} more pages open", options.pages),
        summary(latencies),
    ));
    for page in pages {
        page.abort();
    }
    drop(sender);
    let _ = drain.await;

    let url = dashboard.url.clone();
    let endpoint = etcd.endpoint();
    let browser = tokio::task::block_in_place(|| in_browser(&url, &endpoint, &options));
    match browser {
        Ok(numbers) => {
            table.push((
                "Chromium: navigation → fleet snapshot arrived".into(),
                summary(numbers.snapshots),
            ));
            table.push((
                format!("Chromium: navigation → fleet table painted ({n} rows)"),
                summary(numbers.paints),
            ));
            table.push(("Chromium: put → cell changed".into(), summary(numbers.puts)));
        }
        Err(why) => table.push(("Chromium".into(), why)),
    }
    let (rss, hwm) = dashboard.memory_mib();
    table.push((
        "dashboard memory, after the browser".into(),
        format!("VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"),
    ));

    let width = table.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "\ndashboard, {n} deployments").unwrap();
    for (name, value) in &table {
        writeln!(out, "  {name:<width$}  {value}").unwrap();
    }
}
