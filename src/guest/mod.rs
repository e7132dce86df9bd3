//! guestutils: what code inside a task asks about itself and its peers, and the watcher that
//! tells it when its peers change.
//!
//! The calls keep the names and meanings of the old Python guestutils (maestro's):
//!
//! | old call | here | `theseus guest ...` |
//! |---|---|---|
//! | `get_environment_name()` | [`TaskEnvironment::environment_name`] | `env` |
//! | `get_service_name()` | [`TaskEnvironment::service_name`] | `service` |
//! | `get_container_name()` | [`TaskEnvironment::container_name`] (the Mesos task id) | `container` |
//! | `get_container_host_address()` | [`TaskEnvironment::host_address`] | `host` |
//! | `get_container_internal_address()` | [`ThisTask::internal_address`] | `internal-address` |
//! | `get_port(name)` | [`ThisTask::port`] (the container port) | `port NAME` |
//! | `get_node_list(service, ports, minimum, labels)` | [`Discovery::node_list`] | `node-list SERVICE` |
//! | `get_specific_host(service, container)` | [`Discovery::specific_host`] | `specific-host` |
//! | `get_specific_port(service, container, port)` | [`Discovery::specific_port`] (host port) | `specific-port` |
//! | `get_specific_exposed_port(service, container, port)` | [`Discovery::specific_exposed_port`] (container port) | `specific-exposed-port` |
//! | watcher.py | [`watcher::Watcher`] | `theseus watch` |
//!
//! For images that keep calling the old Python functions, [`python`] ships a drop-in
//! `guestutils.py` and `watcher.py` over the `theseus` binary (`theseus guest install-python`).
//!
//! Peers are read from the task records the controller writes under
//! `<p>/observed/<service>/<deployment>/tasks/<task-id>`; a service spans all its
//! deployments. A node is a *serving* task (running, and healthy where the app has health
//! checks). Where the old code answered `'default'` on a miss, every call here returns a typed
//! [`Error`] naming the variable, service, container or port, and what exists instead.

mod discovery;
mod environment;
mod error;
mod node;
mod observed;
pub mod python;
mod service_tasks;
mod this_task;
pub mod watcher;

pub use discovery::Discovery;
pub use environment::{DEFAULT_ENVIRONMENT, TaskEnvironment};
pub use error::Error;
pub use node::{ListedNode, Node, NodeQuery};
pub use service_tasks::ServiceTasks;
pub use this_task::ThisTask;
