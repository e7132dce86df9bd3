//! The processes of a chaos run, each of which a fault can stop: localmarathon and the
//! controller replicas (etcd's members come from the testkit).
//!
//! Every process is started on free loopback ports, logs into the run's directory under a
//! name that says what it is, dies with the runner (`PR_SET_PDEATHSIG`), and is killed with
//! SIGKILL when its handle drops, which also ends one stopped with SIGSTOP.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How long a process may take to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A binary is missing from the target directory.
    #[error(
        "`{0}` is not built; build the programs first: \
         cargo build -p theseus-controllers -p localmarathon --bins (add --release for a release run)"
    )]
    Missing(PathBuf),
    /// The process could not be started, or its log opened.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The process.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The process did not answer in time.
    #[error("{what} did not answer within {START_DEADLINE:?}; see {log}")]
    NotReady {
        /// The process.
        what: String,
        /// Its log.
        log: String,
    },
}

/// The path of the workspace's program `name`: in `dir` when given, else in the runner's own
/// profile directory (`target/<profile>`, the parent of `examples/`).
pub fn binary(dir: Option<&Path>, name: &str) -> Result<PathBuf, StackError> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()))
            .unwrap_or_default(),
    };
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(StackError::Missing(path))
    }
}

/// Starts `command` so that it dies with this process, logging into `log`.
fn spawn(mut command: Command, what: &str, log: &Path) -> Result<Child, StackError> {
    let spawn_error = |source| StackError::Spawn {
        what: what.to_owned(),
        source,
    };
    let file = open_log(log).map_err(spawn_error)?;
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(spawn_error)?)
        .stderr(file);
    // SAFETY: between fork and exec only the async-signal-safe prctl(2) runs. The kernel then
    // kills the child when the thread that started it ends: the runner's runtime threads
    // live until the runner exits.
    unsafe {
        command
            .pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
    command.spawn().map_err(spawn_error)
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Sends `signal` to `child`; an exited process is no error.
fn send(child: &Child, signal: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = signal::kill(Pid::from_raw(pid), signal);
    }
}

/// Kills `child` with SIGKILL (which also ends a stopped process) and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until `ready` answers true, or fails naming `what` and its log.
async fn wait_ready<F, Fut>(what: &str, log: &Path, mut ready: F) -> Result<(), StackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + START_DEADLINE;
    while !ready().await {
        if Instant::now() > deadline {
            return Err(StackError::NotReady {
                what: what.to_owned(),
                log: log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn answers(url: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a plain HTTP client builds");
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// localmarathon with the simulated executor, its apps kept in a state directory so that a
/// restart finds them again (as Marathon finds its apps in ZooKeeper).
pub struct MarathonProcess {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl MarathonProcess {
    /// Starts localmarathon on a free port with its state and log in `dir`.
    pub async fn start(binary: PathBuf, dir: &Path) -> Result<MarathonProcess, StackError> {
        let mut marathon = MarathonProcess {
            binary,
            port: theseus_testkit::free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        marathon.launch().await?;
        Ok(marathon)
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("localmarathon.log")
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process (again) on its port and state, and waits until it answers.
    pub async fn launch(&mut self) -> Result<(), StackError> {
        let mut command = Command::new(&self.binary);
        command
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--executor", "sim"])
            .arg("--state-dir")
            .arg(self.dir.join("localmarathon-state"))
            .arg("--work-dir")
            .arg(self.dir.join("localmarathon-sandboxes"))
            .env("RUST_LOG", "warn");
        // Three agents that simulated tasks never fill.
        for host in 11..=13 {
            command.args([
                "--agent",
                &format!(
                    "host=127.0.0.{host},cpus=1000,mem=1000000,disk=1000000,ports=31000-32999"
                ),
            ]);
        }
        let log = self.log();
        self.child = Some(spawn(command, "localmarathon", &log)?);
        let ping = format!("{}/ping", self.url());
        wait_ready("localmarathon", &log, || answers(&ping)).await
    }

    /// Stops it: with SIGTERM (a clean stop, waited for) or SIGKILL (a crash).
    pub async fn stop(&mut self, crash: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !crash {
            send(&child, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        kill(&mut child);
    }
}

impl Drop for MarathonProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill(child);
        }
    }
}

/// What every controller replica is started with.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// The `theseus-controller` binary.
    pub binary: PathBuf,
    /// Every etcd member's client URL.
    pub etcd_endpoints: Vec<String>,
    /// `--lease-ttl`.
    pub lease_ttl: Duration,
    /// `--resync`.
    pub resync: Duration,
    /// Where logs go.
    pub dir: PathBuf,
}

/// One `theseus-controller` process: replica `slot` in its `incarnation`-th life.
pub struct ControllerProcess {
    /// `--identity`: `chaos-<slot>-<incarnation>`.
    pub identity: String,
    child: Child,
    http: String,
    /// Whether it is stopped with SIGSTOP.
    stopped: bool,
}

impl ControllerProcess {
    /// Starts a replica talking to Marathon at `marathon` and waits until it serves
    /// `/healthz`.
    pub async fn start(
        settings: &ControllerSettings,
        identity: String,
        marathon: &str,
    ) -> Result<ControllerProcess, StackError> {
        let port = theseus_testkit::free_port();
        let mut command = Command::new(&settings.binary);
        command
            .args(["--etcd-endpoints", &settings.etcd_endpoints.join(",")])
            .args(["--marathon", marathon])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--identity", &identity])
            .args(["--workers", "8"])
            .args([
                "--lease-ttl",
                &humantime::format_duration(settings.lease_ttl).to_string(),
            ])
            .args([
                "--resync",
                &humantime::format_duration(settings.resync).to_string(),
            ])
            .args(["--marathon-timeout", "10s"])
            .env_remove("THESEUS_PREFIX")
            .env_remove("THESEUS_MARATHON_GROUP")
            .env("RUST_LOG", "info");
        let log = settings.dir.join(format!("{identity}.log"));
        let child = spawn(command, &identity, &log)?;
        let controller = ControllerProcess {
            identity,
            child,
            http: format!("http://127.0.0.1:{port}"),
            stopped: false,
        };
        let healthz = format!("{}/healthz", controller.http);
        wait_ready(&controller.identity, &log, || answers(&healthz)).await?;
        Ok(controller)
    }

    /// Stops it with SIGSTOP: it keeps its sockets and state but does nothing.
    pub fn pause(&mut self) {
        send(&self.child, Signal::SIGSTOP);
        self.stopped = true;
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&mut self) {
        send(&self.child, Signal::SIGCONT);
        self.stopped = false;
    }

    /// Whether it is paused.
    pub fn is_paused(&self) -> bool {
        self.stopped
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
