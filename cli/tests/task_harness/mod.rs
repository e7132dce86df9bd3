//! What the guest and watch tests of the binary share: task records written into a real etcd
//! the way the controller writes them (the library's own test harness, reused), and the
//! `theseus` binary run the way a task runs it (a clean environment holding only the task's
//! variables), killed when the test ends.

#![allow(dead_code)] // each test file uses a different part

#[path = "../../../tests/task_harness/mod.rs"]
mod records;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
pub use records::*;

/// `theseus ARGS` with nothing in its environment but `PATH` and `vars`.
pub fn theseus(vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_theseus"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .args(args)
        .stdin(Stdio::null());
    command
}

/// Runs `theseus ARGS` to the end.
pub fn run(vars: &[(&str, &str)], args: &[&str]) -> Output {
    theseus(vars, args).output().expect("run theseus")
}

/// Stdout of a run that must succeed.
pub fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "theseus failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Stderr of a run that must fail.
pub fn failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "theseus succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A `theseus` process that runs in the background, its stderr collected; killed (SIGKILL)
/// when dropped, and by the kernel if the test process dies first.
pub struct Background {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Background {
    /// Starts `command` with stdout and stderr collected.
    pub fn start(mut command: Command) -> Background {
        // SAFETY: prctl is async-signal-safe; nothing is allocated between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))
            });
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start theseus");
        let collect = |stream: Box<dyn std::io::Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut sink = sink.lock().unwrap();
                    sink.push_str(&line);
                    sink.push('\n');
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Background {
            child,
            stderr,
            stdout,
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until its stderr satisfies `condition`; fails with the stderr otherwise.
    pub fn wait_for_stderr(&self, what: &str, condition: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !condition(&self.stderr()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; stderr so far:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the process to exit, failing after the deadline.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "theseus did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
