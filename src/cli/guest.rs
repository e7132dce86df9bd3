//! `theseus guest ...`: the old guestutils calls for scripts inside a task.
//!
//! Each call prints one answer (one line per node for `node-list`), or with `--json` one
//! JSON document, and exits 0; or prints one line naming what is missing (the variable,
//! service, container or port, and what exists instead) and exits non-zero. The task's
//! environment (`SERVICE_NAME`, `DEPLOYMENT_NAME`, `MESOS_TASK_ID`, `HOST`, `ETCD_ENDPOINTS`,
//! `THESEUS_PREFIX`; the old `CONTAINER_NAME` and `CONTAINER_HOST_ADDRESS` too) says who the
//! task is and where etcd is. See [`crate::guest`] for where every answer comes from.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;

use super::output::{OutputFormat, print_structured};
use super::{EtcdArgs, Failure};
use crate::api::DnsLabel;
use crate::guest::{Discovery, NodeQuery, TaskEnvironment, ThisTask};

/// Arguments of `theseus guest`.
#[derive(Debug, Args)]
pub struct GuestArgs {
    /// Print a JSON document instead of plain text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub call: GuestCall,
}

/// One guestutils call.
#[derive(Debug, Subcommand)]
pub enum GuestCall {
    /// The environment name: THESEUS_ENVIRONMENT, else the last segment of the prefix
    /// (THESEUS_PREFIX=/prod → prod), else `default`.
    Env,
    /// This task's service (SERVICE_NAME).
    Service,
    /// This task's container name: its Mesos task id (MESOS_TASK_ID, old CONTAINER_NAME).
    Container,
    /// The address of the agent this task runs on (HOST, old CONTAINER_HOST_ADDRESS).
    Host,
    /// This container's own IP address: from its task record, else the local address used
    /// to reach etcd.
    InternalAddress,
    /// The port NAME listens on inside this container.
    Port {
        /// The port's name in the deployment spec.
        name: String,
    },
    /// `host:port1:port2` of every serving task of SERVICE, sorted (host ports).
    NodeList(NodeListArgs),
    /// The agent address of one container of SERVICE.
    SpecificHost {
        /// The service.
        service: String,
        /// The container name (Mesos task id).
        container: String,
    },
    /// The host (external) port of one container's named port.
    SpecificPort {
        /// The service.
        service: String,
        /// The container name (Mesos task id).
        container: String,
        /// The port's name.
        port: String,
    },
    /// The container (internal) port of one container's named port.
    SpecificExposedPort {
        /// The service.
        service: String,
        /// The container name (Mesos task id).
        container: String,
        /// The port's name.
        port: String,
    },
}

/// Arguments of `theseus guest node-list`.
#[derive(Debug, Args)]
pub struct NodeListArgs {
    /// The service whose tasks to list (all its deployments).
    pub service: String,

    /// Port names whose host ports follow the host, in this order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<String>,

    /// Only tasks whose deployment carries all these labels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Fail when fewer tasks serve.
    #[arg(long, default_value_t = 1)]
    pub minimum: usize,

    /// Wait up to this long (e.g. `30s`) for --minimum tasks to serve.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// Runs `theseus guest`.
pub async fn run(args: GuestArgs, etcd: &EtcdArgs, output: OutputFormat) -> Result<(), Failure> {
    super::watch::init_logging("warn");
    let format = match (args.json, output) {
        (true, _) => OutputFormat::Json,
        (false, format) => format,
    };
    // A `--prefix` flag names the installation as much as the variable does.
    let env = TaskEnvironment::from_process().with_var("THESEUS_PREFIX", etcd.prefix.clone());
    let answer = answer(args.call, env, etcd).await?;
    if format == OutputFormat::Table {
        for line in &answer.lines {
            println!("{line}");
        }
        return Ok(());
    }
    Ok(print_structured(format, &answer.document)?)
}

/// What a call answered: its lines of text (none for an empty node list) and its JSON
/// document.
struct Answer {
    lines: Vec<String>,
    document: serde_json::Value,
}

fn structured(text: impl ToString, document: serde_json::Value) -> Answer {
    Answer {
        lines: vec![text.to_string()],
        document,
    }
}

async fn answer(call: GuestCall, env: TaskEnvironment, etcd: &EtcdArgs) -> Result<Answer, Failure> {
    let failed = |error: crate::guest::Error| Failure::problem(error.to_string());
    let service_label = |service: &str| {
        DnsLabel::parse("service", service).map_err(|e| Failure::problem(e.to_string()))
    };
    Ok(match call {
        GuestCall::Env => {
            let name = env.environment_name();
            structured(&name, json!({ "environment": name }))
        }
        GuestCall::Service => {
            let service = env.service_name().map_err(failed)?;
            structured(&service, json!({ "service": service }))
        }
        GuestCall::Container => {
            let container = env.container_name().map_err(failed)?;
            structured(&container, json!({ "container": container }))
        }
        GuestCall::Host => {
            let host = env.host_address().map_err(failed)?;
            structured(&host, json!({ "host": host }))
        }
        GuestCall::InternalAddress => {
            let task = ThisTask::new(env, etcd.connect().await?);
            let address = task.internal_address().await.map_err(failed)?;
            structured(address, json!({ "internal_address": address.to_string() }))
        }
        GuestCall::Port { name } => {
            let task = ThisTask::new(env, etcd.connect().await?);
            let port = task.port(&name).await.map_err(failed)?;
            structured(port, json!({ "name": name, "port": port }))
        }
        GuestCall::NodeList(args) => {
            let service = service_label(&args.service)?;
            let query = NodeQuery {
                ports: args.ports,
                labels: args.labels,
                minimum: args.minimum,
            };
            let discovery = Discovery::new(etcd.connect().await?);
            let listed = match args.wait {
                Some(wait) => discovery.wait_for_node_list(&service, &query, wait).await,
                None => discovery.node_list(&service, &query).await,
            }
            .map_err(failed)?;
            Answer {
                lines: listed.iter().map(|l| l.address.clone()).collect(),
                document: to_value(&listed)?,
            }
        }
        GuestCall::SpecificHost { service, container } => {
            let label = service_label(&service)?;
            let discovery = Discovery::new(etcd.connect().await?);
            let host = discovery
                .specific_host(&label, &container)
                .await
                .map_err(failed)?;
            structured(
                &host,
                json!({ "service": service, "container": container, "host": host }),
            )
        }
        GuestCall::SpecificPort {
            service,
            container,
            port,
        } => {
            let label = service_label(&service)?;
            let discovery = Discovery::new(etcd.connect().await?);
            let host_port = discovery
                .specific_port(&label, &container, &port)
                .await
                .map_err(failed)?;
            structured(
                host_port,
                json!({ "service": service, "container": container, "port": port, "host_port": host_port }),
            )
        }
        GuestCall::SpecificExposedPort {
            service,
            container,
            port,
        } => {
            let label = service_label(&service)?;
            let discovery = Discovery::new(etcd.connect().await?);
            let container_port = discovery
                .specific_exposed_port(&label, &container, &port)
                .await
                .map_err(failed)?;
            structured(
                container_port,
                json!({ "service": service, "container": container, "port": port, "container_port": container_port }),
            )
        }
    })
}

fn to_value<T: Serialize>(value: &T) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(value)
        .map_err(|error| Failure::problem(format!("cannot encode the answer as JSON: {error}")))
}
