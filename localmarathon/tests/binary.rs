//! The `localmarathon` binary: serves the API, and leaves no task process behind when it is
//! stopped with SIGTERM or SIGINT, or even killed with SIGKILL.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{DEADLINE, alive, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// The binary, killed on drop so a failing test leaves nothing behind.
struct Binary {
    child: Child,
    url: String,
}

impl Binary {
    fn start(work_dir: &Path) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_localmarathon"))
            .args(["--listen", "127.0.0.1:0", "--work-dir"])
            .arg(work_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("localmarathon listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Binary { child, url }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids written by the tasks into their sandboxes (`pid` files).
fn task_pids(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "pids") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

async fn run_tasks(binary: &Binary, dir: &Path) -> Vec<u32> {
    let http = reqwest::Client::new();
    // Each task records its own pid and its child's.
    let cmd = "sleep 1000 & echo $! $$ > pids; wait";
    let response = http
        .post(format!("{}/v2/apps", binary.url))
        .json(&json!({"id": "/bin/app", "cmd": cmd, "instances": 3, "cpus": 0.1, "mem": 16}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let pids = wait_for(DEADLINE, || async {
        let pids = task_pids(dir);
        (pids.len() == 6).then_some(pids)
    })
    .await
    .expect("three tasks with a child each");
    assert!(pids.iter().all(|p| alive(*p)));
    pids
}

async fn all_gone(pids: &[u32]) -> bool {
    wait_for(DEADLINE, || async {
        pids.iter().all(|p| !alive(*p)).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn sigterm_stops_the_binary_and_every_task_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = Binary::start(dir.path());
    let pids = run_tasks(&binary, dir.path()).await;
    binary.signal(Signal::SIGTERM);
    let status = tokio::task::spawn_blocking(move || {
        let s = binary.child.wait();
        (s, binary)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    assert!(status.success(), "{status:?}");
    let survivors: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(survivors.is_empty(), "left running: {survivors:?}");
}

#[tokio::test]
async fn sigint_stops_the_binary_and_every_task_process() {
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::start(dir.path());
    let pids = run_tasks(&binary, dir.path()).await;
    binary.signal(Signal::SIGINT);
    assert!(all_gone(&pids).await, "tasks survived SIGINT");
}

#[tokio::test]
async fn a_killed_binary_leaves_no_task_running() {
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::start(dir.path());
    let pids = run_tasks(&binary, dir.path()).await;
    binary.signal(Signal::SIGKILL);
    assert!(
        all_gone(&pids).await,
        "tasks survived a SIGKILLed localmarathon"
    );
}
