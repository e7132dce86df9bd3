//! A Docker bridge network made for one test (or one quick start), so that containers can
//! reach services on this machine without touching any network the project did not create.
//!
//! [`ProjectNetwork::create`] makes a bridge network named `theseus-<purpose>-<random>` and
//! labelled [`NETWORK_LABEL`]` = <purpose>`; its gateway address belongs to this machine, so a
//! service listening there (etcd, for the tasks' `ETCD_ENDPOINTS`) answers containers on the
//! network and processes on the machine alike. Dropping the guard removes the containers
//! still attached to the network (they can only be the project's own) and then the network.
//!
//! A process killed outright (SIGKILL) drops nothing, so every network also carries
//! [`OWNER_LABEL`], naming the process that made it (its pid and start time, so a reused pid
//! is not mistaken for the owner). Creating a network first removes the project's networks
//! whose owner is gone, with the containers left on them; networks of live processes (another
//! test run beside this one) are never touched.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The label on every network this module creates.
pub const NETWORK_LABEL: &str = "theseus.network";

/// The label naming the process that made a network: `<pid>-<start time in clock ticks>`.
pub const OWNER_LABEL: &str = "theseus.network.owner";

/// Errors making a network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `docker network create` or `inspect` failed.
    #[error("docker network {command} {network} failed: {reason}")]
    Docker {
        /// The subcommand.
        command: &'static str,
        /// The network.
        network: String,
        /// What the engine said.
        reason: String,
    },
    /// The engine gave the network no IPv4 gateway.
    #[error("network {network} has no IPv4 gateway (inspect said {said:?})")]
    NoGateway {
        /// The network.
        network: String,
        /// What `docker network inspect` printed.
        said: String,
    },
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A bridge network removed (with its containers) when dropped.
#[derive(Debug)]
pub struct ProjectNetwork {
    name: String,
    gateway: Ipv4Addr,
}

impl ProjectNetwork {
    /// Creates `theseus-<purpose>-<8 random hex digits>` and reads its gateway. Blocking.
    pub fn create(purpose: &str) -> Result<ProjectNetwork, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("theseus-{purpose}-{:08x}", nanos ^ std::process::id());
        remove_abandoned();
        let label = format!("{NETWORK_LABEL}={purpose}");
        let owner = format!(
            "{OWNER_LABEL}={}",
            process_identity(std::process::id()).unwrap_or_default()
        );
        docker(&[
            "network",
            "create",
            "--driver=bridge",
            "--label",
            &label,
            "--label",
            &owner,
            &name,
        ])
        .map_err(|reason| Error::Docker {
            command: "create",
            network: name.clone(),
            reason,
        })?;
        // From here on, the guard removes the network whatever goes wrong.
        let mut network = ProjectNetwork {
            name,
            gateway: Ipv4Addr::UNSPECIFIED,
        };
        let said = docker(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
            &network.name,
        ])
        .map_err(|reason| Error::Docker {
            command: "inspect",
            network: network.name.clone(),
            reason,
        })?;
        network.gateway = said
            .split_whitespace()
            .find_map(|a| a.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| Error::NoGateway {
                network: network.name.clone(),
                said,
            })?;
        Ok(network)
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The gateway: this machine's address on the network.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The ids of the containers attached to the network now.
    pub fn containers(&self) -> Vec<String> {
        let filter = format!("network={}", self.name);
        docker(&["ps", "--all", "--quiet", "--filter", &filter])
            .map(|out| out.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

impl Drop for ProjectNetwork {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// Removes a network and the containers still attached to it.
fn remove(network: &str) {
    let filter = format!("network={network}");
    let ids = docker(&["ps", "--all", "--quiet", "--filter", &filter]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "--force", "--volumes"];
        args.extend(ids);
        let _ = docker(&args);
    }
    let _ = docker(&["network", "rm", network]);
}

/// `<pid>-<start time>` of a live process, from `/proc/<pid>/stat`; `None` when it is gone.
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    // The start time is field 22, the 20th after the command name.
    let started = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{pid}-{started}"))
}

/// Whether the owner a network's [`OWNER_LABEL`] names has gone. A network without the label
/// (or with one this module cannot read) is kept: it may not be ours to judge.
fn owner_gone(owner: &str) -> bool {
    let Some((pid, _)) = owner.split_once('-') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    process_identity(pid).as_deref() != Some(owner)
}

/// Removes the project's networks whose owner process is gone (killed before it could drop
/// its guard), with their containers.
fn remove_abandoned() {
    let format = format!("{{{{.Name}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    let filter = format!("label={NETWORK_LABEL}");
    let Ok(listed) = docker(&["network", "ls", "--filter", &filter, "--format", &format]) else {
        return;
    };
    for line in listed.lines() {
        if let Some((network, owner)) = line.trim().split_once(' ')
            && owner_gone(owner.trim())
        {
            remove(network);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::DockerEngine;

    #[test]
    fn this_process_is_its_own_live_owner() {
        let me = process_identity(std::process::id()).expect("this process has a /proc entry");
        assert!(me.starts_with(&format!("{}-", std::process::id())));
        assert!(!owner_gone(&me));
    }

    #[test]
    fn an_owner_with_another_start_time_is_gone() {
        // The same pid started at another time is another process: a reused pid.
        let pid = std::process::id();
        assert!(owner_gone(&format!("{pid}-0")));
        assert!(owner_gone("4294967295-1"));
    }

    #[test]
    fn an_unreadable_owner_is_never_judged_gone() {
        assert!(!owner_gone(""));
        assert!(!owner_gone("not-a-pid"));
    }

    #[test]
    fn making_a_network_removes_one_whose_owner_was_killed() {
        if let Err(reason) = DockerEngine::probe() {
            eprintln!("skipping: this test needs a Docker engine and {reason}");
            return;
        }
        // A network as a process killed with SIGKILL leaves it: labelled, its owner gone.
        let abandoned = format!("theseus-abandoned-{:08x}", std::process::id());
        let owner = format!("{OWNER_LABEL}={}-0", std::process::id());
        let label = format!("{NETWORK_LABEL}=abandoned");
        docker(&[
            "network", "create", "--label", &label, "--label", &owner, &abandoned,
        ])
        .expect("the engine makes a network");
        let exists = |name: &str| docker(&["network", "inspect", name]).is_ok();
        assert!(exists(&abandoned));

        let network = ProjectNetwork::create("sweep").expect("a network");
        let removed = !exists(&abandoned);
        // Whatever the outcome, leave nothing behind.
        remove(&abandoned);
        assert!(removed, "the abandoned network {abandoned} is still there");
        assert!(exists(network.name()), "a live owner's network stays");
        let name = network.name().to_string();
        drop(network);
        assert!(!exists(&name));
    }
}
