//! The processes of the local stack: etcd, localmarathon, theseus-controller and a watcher,
//! started in that order and stopped in the reverse one.
//!
//! Every child runs in its own process group, so the terminal's Ctrl-C reaches only the
//! quick start, which then stops them in order (the controller before Marathon, Marathon
//! before etcd). Each is also bound to the quick start with `PR_SET_PDEATHSIG`: if the quick
//! start is killed outright, the kernel kills its children, and localmarathon's own guardian
//! kills the task processes. Nothing is left running either way.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What went wrong starting or stopping the stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A program could not be started.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// The component.
        name: &'static str,
        /// The program run.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// A component exited while starting.
    #[error("{name} exited while starting ({status}); its log {log} ends with:\n{tail}")]
    Exited {
        /// The component.
        name: &'static str,
        /// How it ended.
        status: String,
        /// Its log file.
        log: String,
        /// The last lines of that log.
        tail: String,
    },
    /// A component did not become ready in time.
    #[error("{name} did not answer on {url} within {seconds} s; its log {log} ends with:\n{tail}")]
    NotReady {
        /// The component.
        name: &'static str,
        /// The URL probed.
        url: String,
        /// How long was waited.
        seconds: u64,
        /// Its log file.
        log: String,
        /// The last lines of that log.
        tail: String,
    },
    /// A log file could not be created.
    #[error("cannot write {path}: {source}")]
    Log {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// One running program of the stack.
#[derive(Debug)]
pub struct Component {
    /// Its name in messages.
    pub name: &'static str,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
}

impl Component {
    /// Starts `command` with its output in `log`, in its own process group, bound to this
    /// process's life.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
    ) -> Result<Component, StackError> {
        let file = File::create(&log).map_err(|source| StackError::Log {
            path: log.display().to_string(),
            source,
        })?;
        let err = file.try_clone().map_err(|source| StackError::Log {
            path: log.display().to_string(),
            source,
        })?;
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: runs between fork and exec; prctl and getppid are async-signal-safe and
        // nothing here allocates or locks. Children are spawned from the main thread, which
        // lives as long as the process, so the death signal fires exactly when it ends.
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(
                        nix::errno::Errno::ESRCH as i32,
                    ));
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| StackError::Spawn {
            name,
            program,
            source,
        })?;
        Ok(Component { name, log, child })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the process has already exited.
    pub fn check_alive(&mut self) -> Result<(), StackError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(StackError::Exited {
                name: self.name,
                status: status.to_string(),
                log: self.log.display().to_string(),
                tail: tail(&self.log, 15),
            }),
            _ => Ok(()),
        }
    }

    /// Waits until `url` answers 2xx, or the process dies, or `timeout` passes.
    pub async fn wait_ready(&mut self, url: &str, timeout: Duration) -> Result<(), StackError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client without TLS settings builds");
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok(response) = client.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StackError::NotReady {
                    name: self.name,
                    url: url.to_owned(),
                    seconds: timeout.as_secs(),
                    log: self.log.display().to_string(),
                    tail: tail(&self.log, 15),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process: SIGTERM to its group, SIGKILL after `grace`. Returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let group = Pid::from_raw(-(self.child.id() as i32));
        let _ = kill(group, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("stopped ({status})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(group, Signal::SIGKILL);
        match self.child.wait() {
            Ok(status) => format!("killed after {} s ({status})", grace.as_secs()),
            Err(error) => format!("could not be waited for: {error}"),
        }
    }
}

/// The last `lines` lines of a file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The running stack, stopped in reverse order of starting.
#[derive(Debug, Default)]
pub struct Stack {
    components: Vec<Component>,
}

impl Stack {
    /// Adds a started component.
    pub fn push(&mut self, component: Component) -> &mut Component {
        self.components.push(component);
        self.components.last_mut().expect("just pushed")
    }

    /// Process ids of everything running, by name.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.components.iter().map(|c| (c.name, c.pid())).collect()
    }

    /// An error naming the first component that has exited.
    pub fn check_alive(&mut self) -> Result<(), StackError> {
        self.components
            .iter_mut()
            .try_for_each(Component::check_alive)
    }

    /// Stops everything, newest first, printing how each ended.
    pub fn stop(&mut self) {
        while let Some(mut component) = self.components.pop() {
            // localmarathon kills its tasks (with their own grace periods) before it exits.
            let grace = match component.name {
                "localmarathon" => Duration::from_secs(30),
                _ => Duration::from_secs(15),
            };
            let how = component.stop(grace);
            println!("  {} {how}", component.name);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
