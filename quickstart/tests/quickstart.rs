//! The quick start's flow, end to end, as a newcomer runs it: start the stack, apply the
//! examples, see the client reach a server it found through `/observed`, press Ctrl-C, and
//! find nothing left running. Then the same again on the same state, without cleanup.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Kills the quick start if the test fails before it stopped it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every process whose working directory lies under `dir` (task sandboxes).
fn processes_working_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(dir) {
            let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{} {}",
                entry.file_name().to_string_lossy(),
                cmdline.replace('\0', " ")
            ));
        }
    }
    found
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); it is not running, so look at its state.
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    state != Some("Z")
}

/// Runs the quick start once: returns everything it printed.
fn run_once(state: &Path) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_theseus-quickstart"))
        .parent()
        .unwrap();
    for program in [
        "theseus",
        "theseus-controller",
        "localmarathon",
        "theseus-hello",
    ] {
        assert!(
            bin_dir.join(program).is_file(),
            "{program} is not built in {}: run `cargo build --workspace --bins` (scripts/test.sh does)",
            bin_dir.display()
        );
    }
    let child = Command::new(env!("CARGO_BIN_EXE_theseus-quickstart"))
        .args([
            "--etcd-port",
            "0",
            "--marathon-port",
            "0",
            "--metrics-port",
            "0",
        ])
        .args(["--timeout", "120s", "--state-dir"])
        .arg(state)
        .arg("--examples-dir")
        .arg(repository().join("examples"))
        .current_dir(repository())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start theseus-quickstart");
    let mut running = Running(Some(child));
    let child = running.0.as_mut().unwrap();

    let (lines, output) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                printed.push_str(&line);
                printed.push('\n');
                if line.contains("Press Ctrl-C to stop everything") {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let stderr = child
                    .stderr
                    .take()
                    .map(|mut e| {
                        let mut text = String::new();
                        std::io::Read::read_to_string(&mut e, &mut text).ok();
                        text
                    })
                    .unwrap_or_default();
                panic!("the quick start did not get to its end:\n{printed}\nstderr:\n{stderr}");
            }
        }
    }

    let pids: Vec<i32> = std::fs::read_to_string(state.join("pids"))
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(
        pids.len(),
        4,
        "etcd, localmarathon, the controller and the watcher"
    );
    assert!(
        !processes_working_in(&state.join("sandboxes")).is_empty(),
        "the example tasks run in their sandboxes"
    );

    // Ctrl-C.
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    running.0 = None;
    for line in output.iter() {
        printed.push_str(&line);
        printed.push('\n');
    }
    assert!(status.success(), "the quick start failed:\n{printed}");
    assert!(
        printed.contains("everything the quick start started has stopped"),
        "{printed}"
    );
    for pid in pids {
        assert!(
            !alive(pid),
            "pid {pid} is still running after Ctrl-C:\n{printed}"
        );
    }
    let left = processes_working_in(&state.join("sandboxes"));
    assert!(left.is_empty(), "task processes left running: {left:?}");
    printed
}

/// Whether a Docker engine answers here (the quick start then runs the Docker variant too).
fn engine_answers() -> bool {
    theseus_testkit::image::DockerEngine::probe().is_ok()
}

/// The quick start's Docker networks that exist now (none once it has stopped).
fn quickstart_networks() -> Vec<String> {
    let out = Command::new("docker")
        .args(["network", "ls", "--quiet", "--filter"])
        .arg(format!(
            "label={}=quickstart",
            theseus_testkit::network::NETWORK_LABEL
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Checks what the Docker variant printed, or that it said why it was skipped.
fn assert_docker_variant(printed: &str) {
    if engine_answers() {
        assert!(
            printed.contains("the server container of task")
                && printed.contains("from inside its container"),
            "a client container must reach a server container found through /observed:\n{printed}"
        );
        assert!(
            quickstart_networks().is_empty(),
            "the quick start's network outlived it"
        );
    } else {
        assert!(printed.contains("no Docker engine answers"), "{printed}");
    }
}

#[test]
fn the_quick_start_proves_discovery_end_to_end_in_processes_and_containers_and_leaves_nothing_running()
 {
    let state = tempfile::tempdir().unwrap();

    let first = run_once(state.path());
    assert!(first.contains("hello/blue created"), "{first}");
    assert!(first.contains("hello/blue: revision"), "{first}");
    assert!(
        first.contains("answered.") && first.contains("It knew that address only from"),
        "the client must reach a server found through /observed:\n{first}"
    );
    assert!(
        first.contains("hello changed by"),
        "the watcher's hook ran:\n{first}"
    );
    assert_docker_variant(&first);

    // A second run on the same state needs no cleanup: etcd keeps the specs, the records of
    // the first run's tasks are replaced by the new ones, and the chain works again.
    let second = run_once(state.path());
    assert!(second.contains("hello/blue unchanged"), "{second}");
    assert!(second.contains("answered."), "{second}");
    assert_docker_variant(&second);
}
