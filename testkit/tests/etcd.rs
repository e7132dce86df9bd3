//! The harness itself: servers and clusters come up, break and go away as promised.

use std::process::Command;
use std::time::Duration;

use theseus_testkit::{
    EtcdCluster, EtcdOptions, EtcdServer, ROOT_USER, etcdctl, expect_success, wait_until,
};

fn process_exists(pid: u32) -> bool {
    // /proc/<pid> lingers for a zombie; read its state to tell it from a live process.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn server_answers_etcdctl_on_its_endpoint() {
    let etcd = EtcdServer::start();
    assert!(etcd.endpoint().starts_with("http://127.0.0.1:"));
    expect_success(&etcd.etcdctl(&["put", "/k", "v"]), "put");
    let out = expect_success(&etcd.etcdctl(&["get", "/k", "--print-value-only"]), "get");
    assert_eq!(out.trim(), "v");
}

#[test]
fn parallel_servers_get_distinct_ports_and_data() {
    let a = EtcdServer::start();
    let b = EtcdServer::start();
    assert_ne!(a.endpoint(), b.endpoint());
    expect_success(&a.etcdctl(&["put", "/only-in-a", "1"]), "put");
    let out = expect_success(&b.etcdctl(&["get", "/only-in-a"]), "get");
    assert!(out.is_empty(), "b sees a's key: {out}");
}

#[test]
fn restart_keeps_endpoint_and_data_after_kill() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    expect_success(&etcd.etcdctl(&["put", "/survives", "yes"]), "put");
    etcd.kill();
    assert!(!etcd.is_running());
    etcd.restart();
    assert_eq!(etcd.endpoint(), endpoint);
    let out = expect_success(
        &etcd.etcdctl(&["get", "/survives", "--print-value-only"]),
        "get",
    );
    assert_eq!(out.trim(), "yes");
}

#[test]
fn stop_ends_the_process_and_restart_brings_it_back() {
    let mut etcd = EtcdServer::start();
    let pid = etcd.pid().expect("running");
    etcd.stop();
    assert!(!process_exists(pid));
    etcd.restart();
    expect_success(&etcd.etcdctl(&["endpoint", "health"]), "check health");
}

#[test]
fn drop_kills_etcd() {
    let etcd = EtcdServer::start();
    let pid = etcd.pid().expect("running");
    assert!(process_exists(pid));
    drop(etcd);
    assert!(!process_exists(pid));
}

#[test]
fn etcd_started_from_a_short_lived_thread_outlives_that_thread() {
    // PR_SET_PDEATHSIG fires when the spawning thread exits; the harness spawns from a
    // thread of its own, so a server started from a thread that then ends keeps running.
    let etcd = std::thread::spawn(EtcdServer::start).join().unwrap();
    let pid = etcd.pid().expect("running");
    expect_success(&etcd.etcdctl(&["put", "/after-thread-exit", "1"]), "put");
    assert!(process_exists(pid));
}

/// Run as a child process by `etcd_dies_with_the_test_process`: starts etcd, prints its pid,
/// then waits to be killed.
#[test]
#[ignore = "run as a child process by etcd_dies_with_the_test_process"]
fn child_process_that_starts_etcd_and_waits() {
    let etcd = std::thread::spawn(EtcdServer::start).join().unwrap();
    println!("ETCD_PID={}", etcd.pid().unwrap());
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn etcd_dies_with_the_test_process() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_that_starts_etcd_and_waits",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the child's output on a thread so that a child that never prints fails the test
    // at a deadline instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (found, pid_found) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            // libtest prints the test name on the same line before the test's own output.
            if let Some((_, rest)) = line.split_once("ETCD_PID=") {
                let _ = found.send(rest.trim().parse::<u32>().unwrap());
                break;
            }
        }
    });
    let pid = pid_found.recv_timeout(Duration::from_secs(60)).ok();
    if pid.is_none() {
        let _ = child.kill();
    }
    let pid = pid.expect("the child printed etcd's pid");
    assert!(process_exists(pid));
    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();
    wait_until(Duration::from_secs(10), "etcd is gone", || {
        !process_exists(pid)
    });
}

#[test]
fn root_password_option_enables_authentication() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_root_password("s3cret"));
    assert_eq!(etcd.credentials(), Some((ROOT_USER, "s3cret")));
    expect_success(&etcd.etcdctl(&["put", "/k", "v"]), "put as root");
    let anonymous = etcdctl(&etcd.endpoints(), &["put", "/k", "v"]);
    assert!(
        !anonymous.status.success(),
        "a write without a user succeeded"
    );
    let wrong = etcdctl(&etcd.endpoints(), &["--user=root:wrong", "get", "/k"]);
    assert!(!wrong.status.success(), "a wrong password was accepted");
}

#[test]
fn tls_option_serves_https_and_requires_a_client_certificate() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_tls());
    assert!(etcd.endpoint().starts_with("https://127.0.0.1:"));
    expect_success(&etcd.etcdctl(&["put", "/k", "v"]), "put over TLS");
    let tls = etcd.tls().unwrap();
    let without_cert = etcdctl(
        &etcd.endpoints(),
        &[
            &format!("--cacert={}", tls.ca_cert.display()),
            "--dial-timeout=1s",
            "--command-timeout=1s",
            "get",
            "/k",
        ],
    );
    assert!(
        !without_cert.status.success(),
        "no client certificate was accepted"
    );
}

#[test]
fn cluster_serves_with_one_member_killed_and_takes_it_back() {
    let mut cluster = EtcdCluster::start(3);
    assert_eq!(cluster.endpoints().len(), 3);
    cluster.kill_member(0);
    assert!(!cluster.is_running(0));
    let survivors = [cluster.endpoint(1), cluster.endpoint(2)];
    // A proposal in flight to a leader that just died times out in etcd; a retry after the
    // survivors elected a new leader succeeds.
    wait_until(
        Duration::from_secs(30),
        "a put succeeds with a member down",
        || etcdctl(&survivors, &["put", "/k", "v"]).status.success(),
    );
    cluster.restart_member(0);
    wait_until(Duration::from_secs(20), "member 0 has caught up", || {
        let out = etcdctl(
            &[cluster.endpoint(0)],
            &["get", "/k", "--print-value-only", "--consistency=s"],
        );
        String::from_utf8_lossy(&out.stdout).trim() == "v"
    });
}
