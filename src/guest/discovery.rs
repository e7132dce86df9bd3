//! Finding the peers of a service in etcd: the old guestutils' `get_node_list` and
//! `get_specific_*` calls over `/observed`.
//!
//! Every answer comes from one consistent read of `<p>/observed/<service>/` (all the
//! service's deployments at one revision). [`Discovery::wait_for_node_list`] watches that
//! prefix until enough tasks serve, for containers that start together and need each other.

use std::time::Duration;

use super::Error;
use super::node::{ListedNode, NodeQuery};
use super::observed::ObservedTasks;
use super::service_tasks::ServiceTasks;
use crate::api::DnsLabel;
use crate::store::Store;

/// Reads the observed tasks of services.
#[derive(Debug, Clone)]
pub struct Discovery {
    store: Store,
}

impl Discovery {
    /// Discovery over `store` (and its key layout).
    pub fn new(store: Store) -> Discovery {
        Discovery { store }
    }

    /// The store read from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every task record of `service`, over all its deployments, at one revision.
    pub async fn service(&self, service: &DnsLabel) -> Result<ServiceTasks, Error> {
        let mut observed = ObservedTasks::new(self.store.layout().clone(), [service.clone()]);
        observed.apply_listing(self.store.list(&observed.prefix()).await?);
        Ok(observed.service(service))
    }

    /// The old `get_node_list(service, ports, minimum, labels)`; see
    /// [`ServiceTasks::node_list`].
    pub async fn node_list(
        &self,
        service: &DnsLabel,
        query: &NodeQuery,
    ) -> Result<Vec<ListedNode>, Error> {
        self.service(service).await?.node_list(query)
    }

    /// [`node_list`](Self::node_list), waiting up to `timeout` for `query.minimum` serving
    /// tasks. Watches the service (no polling) and answers as soon as the minimum is reached;
    /// after the timeout the error says how many were found and how long it waited. A
    /// missing port is an error at once: waiting would not add it.
    pub async fn wait_for_node_list(
        &self,
        service: &DnsLabel,
        query: &NodeQuery,
        timeout: Duration,
    ) -> Result<Vec<ListedNode>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut observed = ObservedTasks::new(self.store.layout().clone(), [service.clone()]);
        let mut stream = observed.follow(self.store.watch(&observed.prefix()));
        let mut last_error = None;
        loop {
            let batch = tokio::time::timeout_at(deadline, observed.next_batch(&mut stream)).await;
            let Ok(errors) = batch else { break };
            if let Some(error) = errors.into_iter().last() {
                tracing::debug!(%error, "watch of the service interrupted; it resumes");
                last_error = Some(error);
            }
            if !observed.is_synced() {
                continue;
            }
            match observed.service(service).node_list(query) {
                Err(Error::TooFewNodes { .. }) => continue,
                answer => return answer,
            }
        }
        match (observed.is_synced(), last_error) {
            // Never listed: etcd was unreachable the whole time.
            (false, Some(error)) => Err(error.into()),
            _ => match observed.service(service).node_list(query) {
                Err(Error::TooFewNodes {
                    service,
                    found,
                    wanted,
                    recorded,
                    labels,
                    ..
                }) => Err(Error::TooFewNodes {
                    service,
                    found,
                    wanted,
                    recorded,
                    labels,
                    waited: Some(timeout),
                }),
                answer => answer,
            },
        }
    }

    /// The old `get_specific_host(service, container)`: the agent address of the task.
    pub async fn specific_host(
        &self,
        service: &DnsLabel,
        container: &str,
    ) -> Result<String, Error> {
        Ok(self
            .service(service)
            .await?
            .specific_host(container)?
            .to_owned())
    }

    /// The old `get_specific_port(service, container, port)`: the host (external) port.
    pub async fn specific_port(
        &self,
        service: &DnsLabel,
        container: &str,
        port: &str,
    ) -> Result<u16, Error> {
        self.service(service).await?.specific_port(container, port)
    }

    /// The old `get_specific_exposed_port(service, container, port)`: the container
    /// (internal) port.
    pub async fn specific_exposed_port(
        &self,
        service: &DnsLabel,
        container: &str,
        port: &str,
    ) -> Result<u16, Error> {
        self.service(service)
            .await?
            .specific_exposed_port(container, port)
    }
}
