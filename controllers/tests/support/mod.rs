//! What the controller's integration tests share: a real etcd (testkit), a connected store,
//! and deadline waits. Everything started here is stopped when its handle drops, also when a
//! test fails.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use theseus::store::{EtcdConfig, Layout, Store};
use theseus_testkit::EtcdServer;

/// How long a test waits for something that should happen before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Connects to `etcd` under `prefix`.
pub async fn store(etcd: &EtcdServer, prefix: &str) -> Store {
    let mut config = EtcdConfig::new(etcd.endpoints());
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    Store::connect(config, Layout::new(prefix).unwrap())
        .await
        .unwrap()
}

/// Awaits `condition()` until it yields `true`; panics naming `what` after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    theseus_testkit::wait_until_async(DEADLINE, what, condition).await;
}

/// Runs `etcdctl` against `etcd` and returns its standard output; panics if it fails.
pub fn etcdctl(etcd: &EtcdServer, args: &[&str]) -> String {
    theseus_testkit::expect_success(&etcd.etcdctl(args), &args.join(" "))
}
