//! What a task asks about itself: its own task record, the container port of one of its
//! named ports (the old `get_port`) and its internal address.
//!
//! # Where the answers come from
//!
//! The task's own record, `<p>/observed/$SERVICE_NAME/$DEPLOYMENT_NAME/tasks/$MESOS_TASK_ID`
//! (found by task id among the service's records when `DEPLOYMENT_NAME` is not set), is the
//! truth. The controller writes it shortly after the task starts, so a task asking early may
//! find none yet; then:
//!
//! - [`ThisTask::port`]: the deployment's spec at `<p>/desired/$SERVICE_NAME/$DEPLOYMENT_NAME`
//!   decides. A Docker deployment (with `image`) listens on the spec's port inside its
//!   container. A command deployment shares the agent's network and listens on Marathon's
//!   `PORT_<NAME>`, which is then the container port too. Without a spec, `PORT_<NAME>` is
//!   used when set. A name the spec does not declare is [`Error::NoSuchPort`] listing the ones
//!   it does.
//! - [`ThisTask::internal_address`]: the first of the record's `ip_addresses`; without a
//!   record (or addresses in it), the local address this container uses to reach etcd, found
//!   by connecting a UDP socket to the first etcd endpoint that resolves (no packet is sent).
//!   In a bridge-networked container that is the container's own address; with host
//!   networking it is the agent's; with etcd on loopback it is `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Error;
use super::discovery::Discovery;
use super::environment::TaskEnvironment;
use crate::api::{DeploymentKey, TaskRecord, parse_spec};
use crate::store::{EtcdConfig, Store};

/// The task this process runs in: its environment and a connection to etcd.
#[derive(Debug, Clone)]
pub struct ThisTask {
    env: TaskEnvironment,
    discovery: Discovery,
}

impl ThisTask {
    /// The task described by `env`, reading etcd through `store`.
    pub fn new(env: TaskEnvironment, store: Store) -> ThisTask {
        ThisTask {
            env,
            discovery: Discovery::new(store),
        }
    }

    /// Connects to etcd as the task's environment says: `ETCD_ENDPOINTS`, `THESEUS_PREFIX`,
    /// and where etcd needs them `ETCD_USERNAME`/`ETCD_PASSWORD` and `ETCD_CACERT`,
    /// `ETCD_CERT`, `ETCD_KEY` (the names the `theseus` command reads too).
    pub async fn connect(env: TaskEnvironment) -> Result<ThisTask, Error> {
        let mut config = EtcdConfig::new(env.etcd_endpoints()?);
        config.username = env.var("ETCD_USERNAME").map(str::to_owned);
        config.password = env.var("ETCD_PASSWORD").map(str::to_owned);
        config.ca_file = env.var("ETCD_CACERT").map(Into::into);
        config.cert_file = env.var("ETCD_CERT").map(Into::into);
        config.key_file = env.var("ETCD_KEY").map(Into::into);
        let store = Store::connect(config, env.layout()?).await?;
        Ok(ThisTask::new(env, store))
    }

    /// The task's environment.
    pub fn environment(&self) -> &TaskEnvironment {
        &self.env
    }

    /// Discovery of other services, over the same connection.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The task's own record, if the controller has written it.
    pub async fn record(&self) -> Result<Option<TaskRecord>, Error> {
        let service = self.env.service_name()?;
        let container = self.env.container_name()?;
        if self.env.var("DEPLOYMENT_NAME").is_some() {
            let key = DeploymentKey {
                service,
                name: self.env.deployment_name()?,
            };
            let path = self.discovery.store().layout().task(&key, &container);
            let record = self.discovery.store().get_json::<TaskRecord>(&path).await?;
            return Ok(record.map(|(record, _)| record));
        }
        let tasks = self.discovery.service(&service).await?;
        Ok(tasks
            .records
            .into_iter()
            .find(|record| record.task_id == container))
    }

    /// The old `get_port(name)`: the port the named port listens on inside this container.
    /// See the module documentation for where it comes from before the task's record exists.
    pub async fn port(&self, name: &str) -> Result<u16, Error> {
        let service = self.env.service_name()?;
        let container = self.env.container_name()?;
        let no_such_port = |known: Vec<String>| Error::NoSuchPort {
            service: service.to_string(),
            container: container.clone(),
            port: name.to_owned(),
            known,
        };
        if let Some(record) = self.record().await? {
            return match record.ports.get(name) {
                Some(binding) => Ok(binding.container),
                None => Err(no_such_port(record.ports.into_keys().collect())),
            };
        }
        let from_variable = self.env.port_variable(name)?;
        let not_yet = |reason: String| Error::PortUnknown {
            service: service.to_string(),
            container: container.clone(),
            port: name.to_owned(),
            reason,
        };
        let variable = format!("PORT_{}", name.to_ascii_uppercase());
        let key = match self.env.var("DEPLOYMENT_NAME") {
            Some(_) => DeploymentKey {
                service: service.clone(),
                name: self.env.deployment_name()?,
            },
            None => {
                return from_variable.ok_or_else(|| {
                    not_yet(format!(
                        "its task record is not written yet, DEPLOYMENT_NAME is not set to find \
                         its spec, and {variable} is not set"
                    ))
                });
            }
        };
        let path = self.discovery.store().layout().desired(&key);
        let Some(entry) = self.discovery.store().get(&path).await? else {
            return from_variable.ok_or_else(|| {
                not_yet(format!(
                    "its task record is not written yet, there is no spec at {path}, and \
                     {variable} is not set"
                ))
            });
        };
        let spec = parse_spec(&entry.value).map_err(|problems| {
            not_yet(format!(
                "its task record is not written yet and the spec at {path} is not valid: {problems}"
            ))
        })?;
        let Some(declared) = spec.ports.get(name).copied() else {
            return Err(no_such_port(spec.ports.into_keys().collect()));
        };
        match (spec.image.is_some(), from_variable) {
            // Bridge networking: the spec's port is the one inside the container.
            (true, _) => Ok(declared),
            // Host networking: the process listens on the port Marathon assigned.
            (false, Some(port)) => Ok(port),
            (false, None) => Err(not_yet(format!(
                "its task record is not written yet and it runs a command, which listens on \
                 {variable}, but {variable} is not set"
            ))),
        }
    }

    /// The old `get_container_internal_address()`: this container's own IP address. See the
    /// module documentation for the rule.
    pub async fn internal_address(&self) -> Result<IpAddr, Error> {
        let record = self.record().await?;
        if let Some(address) = record
            .iter()
            .flat_map(|record| record.ip_addresses.iter())
            .find_map(|address| address.parse::<IpAddr>().ok())
        {
            return Ok(address);
        }
        local_address_towards(&self.discovery.store().endpoints()).await
    }
}

/// The local address of a UDP socket connected to the first endpoint that resolves.
async fn local_address_towards(endpoints: &[String]) -> Result<IpAddr, Error> {
    let mut failures = Vec::new();
    for endpoint in endpoints {
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest);
        let target = match tokio::net::lookup_host(authority).await {
            Ok(mut addresses) => addresses.next(),
            Err(error) => {
                failures.push(format!("{endpoint} ({error})"));
                continue;
            }
        };
        let Some(target) = target else {
            failures.push(format!("{endpoint} (resolves to no address)"));
            continue;
        };
        let unspecified: IpAddr = match target {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let local = async {
            let socket = tokio::net::UdpSocket::bind((unspecified, 0)).await?;
            socket.connect(target).await?;
            socket.local_addr()
        };
        match local.await {
            Ok(local) => return Ok(local.ip()),
            Err(error) => failures.push(format!("{endpoint} ({error})")),
        }
    }
    Err(Error::NoInternalAddress {
        reason: format!(
            "the task record has no IP address and no etcd endpoint gives a route: {}",
            failures.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_address_towards_loopback_is_loopback() {
        let address = local_address_towards(&["http://127.0.0.1:2379".to_owned()])
            .await
            .unwrap();
        assert_eq!(address, IpAddr::from(Ipv4Addr::LOCALHOST));
    }

    #[tokio::test]
    async fn an_endpoint_that_does_not_resolve_is_named() {
        let error = local_address_towards(&["http://no-such-host.invalid:2379".to_owned()])
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("no-such-host.invalid"),
            "{error}"
        );
    }
}
