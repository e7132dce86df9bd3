//! The safety net that kills task process groups, and removes task containers, if localmarathon
//! itself dies.
//!
//! `PR_SET_PDEATHSIG` on each child only reaches the direct child, and only fires when the
//! spawning *thread* exits. The guardian covers the rest: a small `sh` loop in its own process
//! group reads `+PGID` / `-PGID` lines from a pipe whose only writer is localmarathon. When
//! localmarathon exits for any reason, even SIGKILL, the kernel closes the pipe, the guardian
//! reads end-of-file and sends SIGKILL to every process group still registered. A `=INSTANCE`
//! line registers an executor instance that runs containers: at end-of-file the guardian also
//! removes every container labelled with it (`docker rm --force`), those still being created
//! included. On a graceful shutdown every group and container is already gone and the guardian
//! exits having killed nothing.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

const SCRIPT: &str = r#"
groups=" "
instance=""
while IFS= read -r line; do
  case "$line" in
    =*) instance="${line#=}" ;;
    @*) DOCKER_HOST="${line#@}"; export DOCKER_HOST ;;
    +*) groups="$groups${line#+} " ;;
    -*) kept=" "
        for g in $groups; do [ "$g" = "${line#-}" ] || kept="$kept$g "; done
        groups=$kept ;;
  esac
done
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
if [ -n "$instance" ]; then
  ids=$(docker ps --all --quiet --filter "label=localmarathon.instance=$instance" 2>/dev/null)
  [ -z "$ids" ] || docker rm --force --volumes $ids >/dev/null 2>&1
fi
"#;

/// The running guardian.
#[derive(Debug)]
pub struct Guardian {
    inner: Mutex<Option<(Child, ChildStdin)>>,
    containers: std::sync::atomic::AtomicBool,
}

impl Guardian {
    /// Starts the guardian process.
    pub fn start() -> std::io::Result<Guardian> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a Ctrl-C on localmarathon's terminal must not take it down first.
            .process_group(0)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("guardian has no stdin"))?;
        Ok(Guardian {
            inner: Mutex::new(Some((child, stdin))),
            containers: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn send(&self, line: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, stdin)) = inner.as_mut()
            && let Err(e) = writeln!(stdin, "{line}")
        {
            tracing::warn!(error = %e, "process guardian is gone; tasks are no longer protected against a crash of localmarathon");
        }
    }

    /// Registers a task's process group.
    pub fn watch(&self, pgid: u32) {
        self.send(&format!("+{pgid}"));
    }

    /// Registers the executor instance whose containers (label
    /// [`super::docker::INSTANCE_LABEL`]) are removed should localmarathon die. Only the first
    /// call writes to the guardian.
    pub fn watch_containers(&self, instance: &str, docker_host: Option<&str>) {
        use std::sync::atomic::Ordering;
        if !self.containers.swap(true, Ordering::SeqCst) {
            if let Some(host) = docker_host {
                self.send(&format!("@{host}"));
            }
            self.send(&format!("={instance}"));
        }
    }

    /// Whether an instance's containers were registered.
    pub fn runs_containers(&self) -> bool {
        self.containers.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets a process group that has ended.
    pub fn forget(&self, pgid: u32) {
        self.send(&format!("-{pgid}"));
    }

    /// Closes the pipe and waits for the guardian to exit.
    pub fn stop(&self) {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn guardian_kills_registered_groups_when_its_pipe_closes() {
        let guardian = Guardian::start().unwrap();
        let mut victim = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut spared = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        guardian.watch(victim.id());
        guardian.watch(spared.id());
        guardian.forget(spared.id());
        guardian.stop();
        let status = victim.wait().unwrap();
        assert!(!status.success(), "the registered group was killed");
        assert_eq!(
            spared.try_wait().unwrap(),
            None,
            "a forgotten group is left alone"
        );
        spared.kill().unwrap();
        spared.wait().unwrap();
    }
}
