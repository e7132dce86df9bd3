//! Simulated Mesos agents: an address in 127.0.0.0/8, resources and a host port range.
//!
//! An [`Agent`] accounts for what the tasks placed on it use: an offer of what is left is what
//! placement sees, and resources come back only when a task is terminal. Host ports are handed
//! out lowest-first from the agent's range and never twice at the same time.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::Serialize;

/// What is wrong with an `--agent` description.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentSpecError {
    /// A `key=value` pair has an unknown key.
    #[error(
        "unknown agent setting '{key}' in '{spec}': use host=IP,cpus=N,mem=MB,disk=MB,ports=LOW-HIGH"
    )]
    UnknownKey {
        /// The key.
        key: String,
        /// The whole description.
        spec: String,
    },
    /// A value does not parse.
    #[error("agent setting '{key}={value}' in '{spec}' is not valid: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The whole description.
        spec: String,
        /// Why.
        reason: String,
    },
    /// No `host=` given.
    #[error("agent '{spec}' has no host=IP: every agent needs its own loopback address")]
    MissingHost {
        /// The whole description.
        spec: String,
    },
}

/// How an agent is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    /// The agent's address; tasks bind `$HOST` to it.
    pub host: IpAddr,
    /// CPU shares offered.
    pub cpus: f64,
    /// Memory in MB offered.
    pub mem: f64,
    /// Disk in MB offered.
    pub disk: f64,
    /// Host port range offered.
    pub ports: RangeInclusive<u16>,
}

impl AgentSpec {
    /// An agent on `host` with the default resources (4 CPUs, 8 GiB, 64 GiB disk, ports
    /// 31000-31999).
    pub fn new(host: IpAddr) -> Self {
        AgentSpec {
            host,
            cpus: 4.0,
            mem: 8192.0,
            disk: 65536.0,
            ports: 31000..=31999,
        }
    }

    /// The three agents used when none is configured: 127.0.0.11 to 127.0.0.13.
    pub fn defaults() -> Vec<AgentSpec> {
        (11..=13)
            .map(|i| AgentSpec::new(IpAddr::from([127, 0, 0, i])))
            .collect()
    }
}

impl FromStr for AgentSpec {
    type Err = AgentSpecError;

    /// Parses `host=127.0.0.11,cpus=4,mem=8192,ports=31000-31999` (all but `host` optional).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut host = None;
        let mut out = AgentSpec::new(IpAddr::from([127, 0, 0, 1]));
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |reason: &str| AgentSpecError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                spec: spec.to_string(),
                reason: reason.to_string(),
            };
            let number = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| *v >= 0.0)
                    .ok_or_else(|| bad("expected a non-negative number"))
            };
            match key {
                "host" => host = Some(value.parse().map_err(|_| bad("expected an IP address"))?),
                "cpus" => out.cpus = number()?,
                "mem" => out.mem = number()?,
                "disk" => out.disk = number()?,
                "ports" => {
                    let (low, high) = value
                        .split_once('-')
                        .ok_or_else(|| bad("expected LOW-HIGH"))?;
                    let low: u16 = low.parse().map_err(|_| bad("expected LOW-HIGH"))?;
                    let high: u16 = high.parse().map_err(|_| bad("expected LOW-HIGH"))?;
                    if low == 0 || low > high {
                        return Err(bad("expected 1 <= LOW <= HIGH"));
                    }
                    out.ports = low..=high;
                }
                _ => {
                    return Err(AgentSpecError::UnknownKey {
                        key: key.to_string(),
                        spec: spec.to_string(),
                    });
                }
            }
        }
        out.host = host.ok_or_else(|| AgentSpecError::MissingHost {
            spec: spec.to_string(),
        })?;
        Ok(out)
    }
}

/// Resources one task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Resources {
    /// CPU shares.
    pub cpus: f64,
    /// Memory in MB.
    pub mem: f64,
    /// Disk in MB.
    pub disk: f64,
}

/// Which resources an agent has too little of for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shortfall {
    /// Too few CPUs left.
    pub cpus: bool,
    /// Too little memory left.
    pub mem: bool,
    /// Too little disk left.
    pub disk: bool,
}

/// Index of an agent in the scheduler's agent list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentIndex(pub usize);

/// An agent and what is in use on it.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Mesos agent id (`<cluster>-S<n>`).
    pub id: String,
    /// Hostname as Mesos reports it: the agent's address.
    pub hostname: String,
    /// Configuration.
    pub spec: AgentSpec,
    used: Resources,
    ports_in_use: BTreeSet<u16>,
}

/// A public view of an agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// Mesos agent id.
    pub id: String,
    /// Hostname (the address).
    pub hostname: String,
    /// Address tasks bind to.
    pub address: IpAddr,
    /// Offered CPUs.
    pub cpus: f64,
    /// Offered memory.
    pub mem: f64,
    /// CPUs in use.
    pub used_cpus: f64,
    /// Memory in use.
    pub used_mem: f64,
    /// Host ports in use.
    pub used_ports: Vec<u16>,
}

/// A random number below `n` (placement needs spread, not cryptography).
fn random_below(n: u32) -> u32 {
    let r = uuid::Uuid::new_v4().as_u128();
    (r % u128::from(n.max(1))) as u32
}

impl Agent {
    /// A fresh agent with nothing in use.
    pub fn new(cluster: &str, index: usize, spec: AgentSpec) -> Self {
        Agent {
            id: format!("{cluster}-S{index}"),
            hostname: spec.host.to_string(),
            spec,
            used: Resources::default(),
            ports_in_use: BTreeSet::new(),
        }
    }

    /// Whether `want` fits into what is left.
    pub fn fits(&self, want: Resources) -> bool {
        self.shortfall(want) == Shortfall::default()
    }

    /// Which of `want`'s resources do not fit into what is left.
    pub fn shortfall(&self, want: Resources) -> Shortfall {
        // A small epsilon so that 10 x 0.1 CPUs fit into 1 CPU.
        const EPS: f64 = 1e-9;
        Shortfall {
            cpus: self.used.cpus + want.cpus > self.spec.cpus + EPS,
            mem: self.used.mem + want.mem > self.spec.mem + EPS,
            disk: self.used.disk + want.disk > self.spec.disk + EPS,
        }
    }

    /// Picks host ports: the `required` fixed ones (`Some`) and free dynamic ones (`None`).
    ///
    /// Dynamic ports are taken at random from the range, as Marathon picks them from an offer.
    /// With `probe`, a port that something else on this machine already listens on is skipped,
    /// since all agents share the machine's network stack.
    pub fn pick_ports(&self, required: &[Option<u16>], probe: bool) -> Option<Vec<u16>> {
        let mut taken: BTreeSet<u16> = BTreeSet::new();
        for fixed in required.iter().flatten() {
            if !self.spec.ports.contains(fixed) || self.ports_in_use.contains(fixed) {
                return None;
            }
            taken.insert(*fixed);
        }
        let (low, high) = (*self.spec.ports.start(), *self.spec.ports.end());
        let size = u32::from(high - low) + 1;
        let start = random_below(size);
        let mut candidates = (0..size).map(|i| low + ((start + i) % size) as u16);
        let mut out = Vec::with_capacity(required.len());
        for want in required {
            match want {
                Some(fixed) => out.push(*fixed),
                None => loop {
                    let p = candidates.next()?;
                    if self.ports_in_use.contains(&p) || taken.contains(&p) {
                        continue;
                    }
                    if probe && !self.bindable(p) {
                        continue;
                    }
                    taken.insert(p);
                    out.push(p);
                    break;
                },
            }
        }
        Some(out)
    }

    fn bindable(&self, port: u16) -> bool {
        std::net::TcpListener::bind((self.spec.host, port)).is_ok()
    }

    /// Books resources and ports for a task.
    pub fn allocate(&mut self, want: Resources, ports: &[u16]) {
        self.used.cpus += want.cpus;
        self.used.mem += want.mem;
        self.used.disk += want.disk;
        self.ports_in_use.extend(ports.iter().copied());
    }

    /// Returns a terminal task's resources and ports.
    pub fn release(&mut self, want: Resources, ports: &[u16]) {
        self.used.cpus = (self.used.cpus - want.cpus).max(0.0);
        self.used.mem = (self.used.mem - want.mem).max(0.0);
        self.used.disk = (self.used.disk - want.disk).max(0.0);
        for p in ports {
            self.ports_in_use.remove(p);
        }
    }

    /// A snapshot for callers outside the scheduler.
    pub fn info(&self) -> AgentInfo {
        AgentInfo {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            address: self.spec.host,
            cpus: self.spec.cpus,
            mem: self.spec.mem,
            used_cpus: self.used.cpus,
            used_mem: self.used.mem,
            used_ports: self.ports_in_use.iter().copied().collect(),
        }
    }
}

impl fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host={},cpus={},mem={},disk={},ports={}-{}",
            self.host,
            self.cpus,
            self.mem,
            self.disk,
            self.ports.start(),
            self.ports.end()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_specs_parse_with_defaults() {
        let spec: AgentSpec = "host=127.0.0.11,cpus=2,mem=512,ports=31000-31002"
            .parse()
            .unwrap();
        assert_eq!(spec.host.to_string(), "127.0.0.11");
        assert_eq!(spec.cpus, 2.0);
        assert_eq!(spec.ports, 31000..=31002);
        assert_eq!(spec.disk, 65536.0);
        assert!(matches!(
            "cpus=2".parse::<AgentSpec>(),
            Err(AgentSpecError::MissingHost { .. })
        ));
        assert!(matches!(
            "host=127.0.0.1,gpu=1".parse::<AgentSpec>(),
            Err(AgentSpecError::UnknownKey { .. })
        ));
        assert!("host=127.0.0.1,ports=5-1".parse::<AgentSpec>().is_err());
    }

    #[test]
    fn resources_and_ports_are_accounted_until_released() {
        let spec: AgentSpec = "host=127.0.0.11,cpus=1,mem=256,ports=31000-31001"
            .parse()
            .unwrap();
        let mut agent = Agent::new("c", 0, spec);
        let want = Resources {
            cpus: 0.5,
            mem: 128.0,
            disk: 0.0,
        };
        assert!(agent.fits(want));
        let ports = agent.pick_ports(&[None], false).unwrap();
        agent.allocate(want, &ports);
        let ports2 = agent.pick_ports(&[None], false).unwrap();
        assert_ne!(ports, ports2);
        agent.allocate(want, &ports2);
        assert!(!agent.fits(want));
        assert_eq!(agent.pick_ports(&[None], false), None);
        agent.release(want, &ports);
        assert!(agent.fits(want));
        assert_eq!(agent.pick_ports(&[Some(ports[0])], false).unwrap(), ports);
        assert_eq!(agent.pick_ports(&[Some(ports2[0])], false), None);
    }

    #[test]
    fn probing_skips_ports_something_else_listens_on() {
        // An address of its own, so that the other port of the range is not taken by the
        // many tests binding 127.0.0.1 at the same time.
        let host = "127.0.0.77";
        let busy = std::net::TcpListener::bind((host, 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        let spec: AgentSpec = format!("host={host},ports={port}-{}", port.saturating_add(1))
            .parse()
            .unwrap();
        let agent = Agent::new("c", 0, spec);
        for _ in 0..20 {
            let picked = agent.pick_ports(&[None], true).unwrap();
            assert_ne!(picked[0], port);
        }
    }
}
