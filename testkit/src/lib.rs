//! Real etcd for tests: one place that starts, breaks and cleans up etcd processes, used by
//! every test in the workspace. No mocks: the tests talk to the same etcd users run.
//!
//! # What it gives
//!
//! - [`EtcdServer::start`]: one member on free loopback ports (client, peer, and a plain-HTTP
//!   metrics port used to probe `/health`), a temporary data directory, and the flags
//!   `--heartbeat-interval 10 --election-timeout 100 --logger=zap --log-level=warn` (ready in
//!   about 0.1 s). It returns once etcd answers. [`EtcdServer::kill`] (SIGKILL, like a crash),
//!   [`EtcdServer::stop`] (SIGTERM), [`EtcdServer::restart`] (same ports, same data: keys and
//!   revisions survive). [`EtcdOptions`] adds a root user with a password and authentication
//!   enabled, and/or TLS with generated certificates ([`TlsFiles`]) and client-certificate
//!   authentication.
//! - [`EtcdCluster::start`]: several members forming one cluster, with
//!   [`EtcdCluster::kill_member`] and [`EtcdCluster::restart_member`] for failover tests.
//! - [`etcdctl`] and [`EtcdServer::etcdctl`]: run `etcdctl` (API v3) the way a user would.
//! - [`free_port`], [`free_ports`], [`wait_until`] and [`wait_until_async`]: wait on a
//!   condition with a deadline instead of sleeping a fixed time.
//! - [`image`]: Docker images of the workspace's own binaries (`FROM scratch`, tagged by a
//!   content hash and reused while unchanged), whether an engine answers, and a guard that
//!   removes a test's containers.
//! - [`network::ProjectNetwork`]: a Docker bridge network of the test's own, whose gateway
//!   etcd can also listen on ([`EtcdOptions::also_listening_on`]) so that containers reach it.
//! - [`python::python_with`]: a virtualenv with one package from PyPI, for tests that drive
//!   theseus from Python.
//!
//! # Requirements
//!
//! `etcd` and `etcdctl` on `PATH` (Debian: `apt-get install etcd-server etcd-client`), or
//! `$ETCD_BIN` / `$ETCDCTL_BIN` pointing at them. A missing binary is a panic that says so.
//!
//! # Cleanup
//!
//! Every process is killed with SIGKILL when its [`EtcdServer`] or [`EtcdCluster`] is
//! dropped, which also happens while a failing test unwinds. A test process killed outright
//! (a runner's timeout) cannot run destructors, so every etcd is started with
//! `PR_SET_PDEATHSIG = SIGKILL`: the kernel kills it when the test process dies. That signal
//! fires when the *thread* that spawned the child exits, so all children are spawned by one
//! thread that lives as long as the process; starting or restarting etcd from a test thread,
//! a tokio worker or a `spawn_blocking` thread is therefore safe.
//!
//! Ports come from the kernel (`127.0.0.1:0`) and are released before etcd binds them; when
//! another process wins that race, the start is retried on fresh ports. Tests using this
//! crate can run in parallel, in one process (`cargo test`) or one per test (`cargo nextest`).
//!
//! The API is blocking (it spawns processes and polls a health URL); calling it from an async
//! test is fine, it blocks that test's thread for the fraction of a second etcd needs.
//!
//! ```no_run
//! use theseus_testkit::EtcdServer;
//!
//! let mut etcd = EtcdServer::start();
//! let endpoint = etcd.endpoint(); // "http://127.0.0.1:<port>"
//! etcd.kill();
//! etcd.restart(); // same endpoint, same data
//! # let _ = endpoint;
//! ```

mod cluster;
mod etcdctl;
pub mod image;
mod member;
pub mod network;
mod ports;
mod process;
pub mod python;
mod server;
mod tls;
mod wait;

pub use cluster::EtcdCluster;
pub use etcdctl::{etcdctl, expect_success};
pub use ports::{free_port, free_ports};
pub use server::{EtcdOptions, EtcdServer, ROOT_USER};
pub use tls::TlsFiles;
pub use wait::{wait_until, wait_until_async};
