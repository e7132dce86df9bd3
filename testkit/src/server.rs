//! A single-member etcd for one test.

use std::net::IpAddr;
use std::path::Path;
use std::process::Output;

use tempfile::TempDir;

use crate::etcdctl::{etcdctl, expect_success};
use crate::member::{LaunchError, Member, MemberSpec, READY_TIMEOUT};
use crate::ports::free_ports;
use crate::tls::TlsFiles;

/// How often a start is retried with fresh ports when another process took one first.
pub(crate) const PORT_RETRIES: usize = 5;

/// The user created by [`EtcdOptions::with_root_password`].
pub const ROOT_USER: &str = "root";

/// How to start an [`EtcdServer`]: plain by default.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    root_password: Option<String>,
    tls: bool,
    also_on: Option<IpAddr>,
}

impl EtcdOptions {
    /// A plain etcd: http, no authentication.
    pub fn new() -> EtcdOptions {
        EtcdOptions::default()
    }

    /// Creates the user [`ROOT_USER`] with `password` and enables authentication once the
    /// server is up (with `etcdctl user add` and `etcdctl auth enable`).
    pub fn with_root_password(mut self, password: &str) -> EtcdOptions {
        self.root_password = Some(password.to_owned());
        self
    }

    /// Also serves clients on `address`, with the same port as on loopback: a Docker
    /// network's gateway, so that containers on that network reach this etcd (see
    /// [`crate::network::ProjectNetwork`]).
    pub fn also_listening_on(mut self, address: IpAddr) -> EtcdOptions {
        self.also_on = Some(address);
        self
    }

    /// Serves clients over https with certificates generated for this server, and requires
    /// a client certificate signed by the same CA (`--client-cert-auth`).
    pub fn with_tls(mut self) -> EtcdOptions {
        self.tls = true;
        self
    }
}

/// A running single-member etcd on free loopback ports with a temporary data directory.
///
/// Killed with SIGKILL when dropped (also when the test panics), and killed by the kernel
/// when the test process dies (see the crate documentation).
#[derive(Debug)]
pub struct EtcdServer {
    member: Member,
    options: EtcdOptions,
    tls: Option<TlsFiles>,
    // Dropped last: the member must be dead before its data directory goes.
    dir: TempDir,
}

impl EtcdServer {
    /// Starts a plain etcd and waits until it answers.
    ///
    /// # Panics
    /// If etcd is not installed, or does not come up; the message carries its log.
    pub fn start() -> EtcdServer {
        EtcdServer::start_with(EtcdOptions::new())
    }

    /// Starts an etcd configured by `options` and waits until it answers.
    ///
    /// # Panics
    /// As [`EtcdServer::start`].
    pub fn start_with(options: EtcdOptions) -> EtcdServer {
        let dir = tempfile::Builder::new()
            .prefix("theseus-etcd-")
            .tempdir()
            .expect("create a temporary directory for etcd");
        let tls = options.tls.then(|| TlsFiles::generate(dir.path()));
        let mut attempt = 0;
        let member = loop {
            attempt += 1;
            let [client_port, peer_port, metrics_port] = free_ports(3)[..] else {
                unreachable!("free_ports(3) returns three ports")
            };
            let spec = MemberSpec {
                name: "default".to_owned(),
                client_port,
                peer_port,
                metrics_port,
                data_dir: dir.path().join("data"),
                log_file: dir.path().join("etcd.log"),
                initial_cluster: format!("default=http://127.0.0.1:{peer_port}"),
                cluster_token: format!("theseus-test-{}-{peer_port}", std::process::id()),
                tls: tls.clone(),
                extra_client_address: options.also_on,
            };
            let mut member = Member::new(spec);
            match member
                .launch()
                .and_then(|()| member.wait_ready(READY_TIMEOUT))
            {
                Ok(()) => break member,
                Err(LaunchError::PortTaken { .. }) if attempt < PORT_RETRIES => {
                    drop(member);
                    // A half-initialised data directory would make the next launch rejoin
                    // a cluster that never existed.
                    let _ = std::fs::remove_dir_all(dir.path().join("data"));
                }
                Err(error) => panic!("{error}"),
            }
        };
        let server = EtcdServer {
            member,
            options,
            tls,
            dir,
        };
        if let Some(password) = &server.options.root_password {
            let user = format!("{ROOT_USER}:{password}");
            expect_success(
                &server.etcdctl(&["user", "add", &user, "--interactive=false"]),
                "add the root user",
            );
            expect_success(
                &server.etcdctl(&["auth", "enable"]),
                "enable authentication",
            );
        }
        server
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        self.member.spec.client_url()
    }

    /// The client URL on the address given to
    /// [`also_listening_on`](EtcdOptions::also_listening_on), if any.
    pub fn endpoint_on_extra_address(&self) -> Option<String> {
        self.options
            .also_on
            .map(|address| self.member.spec.client_url_on(address))
    }

    /// [`EtcdServer::endpoint`] as a one-element list.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// The client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.member.spec.client_port
    }

    /// etcd's own metrics (Prometheus text) on its plain-HTTP metrics port, e.g.
    /// `http://127.0.0.1:40125/metrics`: `etcd_debugging_mvcc_watcher_total` counts the
    /// watches open on it.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.member.spec.metrics_port)
    }

    /// `(user, password)` when started [`with_root_password`](EtcdOptions::with_root_password).
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.options
            .root_password
            .as_deref()
            .map(|password| (ROOT_USER, password))
    }

    /// The certificates when started [`with_tls`](EtcdOptions::with_tls).
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The directory that holds the data directory, the log and the certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The etcd process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.member.pid()
    }

    /// Whether the etcd process is running.
    pub fn is_running(&mut self) -> bool {
        self.member.is_running()
    }

    /// Kills etcd with SIGKILL, as a crash would; [`EtcdServer::restart`] brings it back.
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// Stops etcd with SIGTERM (SIGKILL if it does not exit in time).
    pub fn stop(&mut self) {
        self.member.stop();
    }

    /// Starts etcd again on the same ports and data directory (killing it first if it still
    /// runs) and waits until it answers. Keys, revisions and users survive.
    ///
    /// # Panics
    /// If it does not come back, e.g. because another process took its port meanwhile.
    pub fn restart(&mut self) {
        self.member.kill();
        if let Err(error) = self
            .member
            .launch()
            .and_then(|()| self.member.wait_ready(READY_TIMEOUT))
        {
            panic!("restart: {error}");
        }
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        self.member.log()
    }

    /// Runs `etcdctl` against this server with its credentials and certificates.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = Vec::new();
        if let Some((user, password)) = self.credentials() {
            all.push(format!("--user={user}:{password}"));
        }
        if let Some(tls) = &self.tls {
            all.push(format!("--cacert={}", tls.ca_cert.display()));
            all.push(format!("--cert={}", tls.client_cert.display()));
            all.push(format!("--key={}", tls.client_key.display()));
        }
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        etcdctl(&self.endpoints(), &all)
    }
}
