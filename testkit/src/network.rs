//! A Docker bridge network made for one test (or one quick start), so that containers can
//! reach services on this machine without touching any network the project did not create.
//!
//! [`ProjectNetwork::create`] makes a bridge network named `theseus-<purpose>-<random>` and
//! labelled [`NETWORK_LABEL`]` = <purpose>`; its gateway address belongs to this machine, so a
//! service listening there (etcd, for the tasks' `ETCD_ENDPOINTS`) answers containers on the
//! network and processes on the machine alike. Dropping the guard removes the containers
//! still attached to the network (they can only be the project's own) and then the network.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The label on every network this module creates.
pub const NETWORK_LABEL: &str = "theseus.network";

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
        let label = format!("{NETWORK_LABEL}={purpose}");
        docker(&[
            "network",
            "create",
            "--driver=bridge",
            "--label",
            &label,
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
        let ids = self.containers();
        if !ids.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.name]);
    }
}
