//! One etcd process: its flags, its ports and data directory, and its lifecycle.
//!
//! A member is launched, checked for health on its plain-HTTP metrics port (which answers
//! `/health` whether or not the client port speaks TLS), killed with SIGKILL, stopped with
//! SIGTERM, and relaunched on the same ports and data directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::TlsFiles;
use crate::process::spawn_bound_to_process;

/// How long a member may take to answer `/health` after launch.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `stop` waits for SIGTERM to work before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary to run: `$ETCD_BIN`, else `etcd` from `PATH`.
pub(crate) fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned())
}

/// Everything needed to (re)launch one member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub metrics_port: u16,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// `--initial-cluster`: `name=peer-url` for every member.
    pub initial_cluster: String,
    pub cluster_token: String,
    pub tls: Option<TlsFiles>,
    /// Another address to serve clients on, with the same port (e.g. a Docker network's
    /// gateway, for containers).
    pub extra_client_address: Option<IpAddr>,
}

impl MemberSpec {
    pub fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The client URL on `address` (the same port as on loopback).
    pub fn client_url_on(&self, address: IpAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{address}:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(etcd_binary());
        let mut client_url = self.client_url();
        if let Some(address) = self.extra_client_address {
            client_url = format!("{client_url},{}", self.client_url_on(address));
        }
        let peer_url = self.peer_url();
        command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args([
                "--listen-metrics-urls",
                &format!("http://127.0.0.1:{}", self.metrics_port),
            ])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.cluster_token])
            .args(["--initial-cluster-state", "new"])
            // Fast elections on loopback: ready in about 0.1 s.
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .args(["--logger=zap", "--log-level=warn"]);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca_cert)
                .arg("--client-cert-auth");
        }
        command
    }
}

/// Why a member did not come up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    /// Another process bound one of the member's ports first.
    #[error("a port of etcd member {name} was taken by another process")]
    PortTaken { name: String },
    /// The binary could not be started.
    #[error(
        "cannot run `{binary}`: {source}; install Debian's `etcd-server` package \
         (apt-get install etcd-server) or point $ETCD_BIN at an etcd binary"
    )]
    Spawn { binary: String, source: io::Error },
    /// The process exited before it answered.
    #[error("etcd member {name} exited with {status} before it was ready; its log:\n{log}")]
    Exited {
        name: String,
        status: ExitStatus,
        log: String,
    },
    /// The process runs but did not report itself healthy in time.
    #[error("etcd member {name} was not healthy after {timeout:?}; its log:\n{log}")]
    NotReady {
        name: String,
        timeout: Duration,
        log: String,
    },
}

/// A member and, while it runs, its process.
#[derive(Debug)]
pub(crate) struct Member {
    pub spec: MemberSpec,
    child: Option<Child>,
}

impl Member {
    pub fn new(spec: MemberSpec) -> Member {
        Member { spec, child: None }
    }

    /// Starts the process; does not wait for it to be ready.
    pub fn launch(&mut self) -> Result<(), LaunchError> {
        assert!(
            self.child.is_none(),
            "etcd member {} is already running",
            self.spec.name
        );
        let log = self.open_log();
        let mut command = self.spec.command();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log);
        let child = spawn_bound_to_process(command).map_err(|source| LaunchError::Spawn {
            binary: etcd_binary(),
            source,
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the member answers `/health` with `true`, or fails with its log.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), LaunchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                let log = self.log();
                if log.contains("address already in use") {
                    return Err(LaunchError::PortTaken {
                        name: self.spec.name.clone(),
                    });
                }
                return Err(LaunchError::Exited {
                    name: self.spec.name.clone(),
                    status,
                    log,
                });
            }
            if self.is_healthy() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::NotReady {
                    name: self.spec.name.clone(),
                    timeout,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is (still) running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    /// Sends SIGKILL and reaps the process; does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the process has already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; falls back to SIGKILL after a deadline
    /// (a member that lost quorum can hang for seconds on SIGTERM).
    pub fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        if signal::kill(pid, Signal::SIGTERM).is_ok() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    /// The member's log so far (stdout and stderr of every launch).
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.spec.log_file) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn open_log(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log_file)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.spec.log_file.display()))
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// `GET /health` on the metrics port: true once the member has a leader and serves.
    fn is_healthy(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.spec.metrics_port));
        let probe = || -> io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.set_write_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        probe().is_ok_and(|response| response.contains("\"health\":\"true\""))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}
