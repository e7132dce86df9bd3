//! Running `etcdctl`, the way a user would, against a test etcd.

use std::process::{Command, Output};

/// The binary to run: `$ETCDCTL_BIN`, else `etcdctl` from `PATH`.
fn etcdctl_binary() -> String {
    std::env::var("ETCDCTL_BIN").unwrap_or_else(|_| "etcdctl".to_owned())
}

/// Runs `etcdctl --endpoints=<endpoints> <args>` with `ETCDCTL_API=3` and returns its output
/// (check `status` yourself: a failing command is a result, not a panic).
///
/// # Panics
/// If `etcdctl` cannot be started (not installed).
pub fn etcdctl<S: AsRef<str>>(endpoints: &[S], args: &[&str]) -> Output {
    let endpoints: Vec<&str> = endpoints.iter().map(AsRef::as_ref).collect();
    Command::new(etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--dial-timeout=5s", "--command-timeout=10s"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}`: {e}; install Debian's `etcd-client` package \
                 (apt-get install etcd-client) or point $ETCDCTL_BIN at an etcdctl binary",
                etcdctl_binary()
            )
        })
}

/// Panics with etcdctl's stderr unless `output` reports success; returns its stdout.
pub fn expect_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "etcdctl failed to {what} ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
