//! `theseus guest ...`: the old guestutils calls for scripts inside a task.
//!
//! Each call prints one answer (one line per node for `node-list`), or with `--json` one
//! JSON document, and exits 0; or prints one line naming what is missing (the variable,
//! service, container or port, and what exists instead) and exits non-zero. The task's
//! environment (`SERVICE_NAME`, `DEPLOYMENT_NAME`, `MESOS_TASK_ID`, `HOST`, `ETCD_ENDPOINTS`,
//! `THESEUS_PREFIX`; the old `CONTAINER_NAME` and `CONTAINER_HOST_ADDRESS` too) says who the
//! task is and where etcd is. See [`theseus::guest`] for where every answer comes from. With
//! `--json` a failed call also prints `{"error": {"kind": ..., "message": ...}}` on stdout,
//! the kind being the error's metric label (`no_such_port`, `unreachable`, ...).
//!
//! `install-python DIR` writes the Python shim ([`theseus::guest::python`]) for old images.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{OutputFormat, print_structured};
use super::{EtcdArgs, Failure};
use theseus::api::DnsLabel;
use theseus::guest::{Discovery, NodeQuery, TaskEnvironment, ThisTask, python};
use theseus::store::{Layout, Store};

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
    /// Write guestutils.py and watcher.py, the drop-in Python modules for old images, into
    /// DIR (created if missing).
    ///
    /// They keep the old functions' names and meanings and answer through this binary
    /// (`$THESEUS_BIN`, else `theseus` on PATH). A file already there with other contents is
    /// an error and nothing is written, unless --force.
    InstallPython(InstallPythonArgs),
}

/// Arguments of `theseus guest install-python`.
#[derive(Debug, Args)]
pub struct InstallPythonArgs {
    /// The directory to write into, e.g. the image's `guestutils/`.
    pub dir: PathBuf,

    /// Replace files that exist with other contents.
    #[arg(long)]
    pub force: bool,
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
    if let GuestCall::InstallPython(install) = args.call {
        return install_python(install, format);
    }
    // A `--prefix` flag names the installation as much as the variable does.
    let env = TaskEnvironment::from_process().with_var("THESEUS_PREFIX", etcd.prefix.clone());
    let answer = match answer(args.call, env, etcd).await {
        Ok(answer) => answer,
        Err(error) => {
            if format != OutputFormat::Table {
                // Callers of --json (guestutils.py) tell a miss from a failure by its kind.
                let document = json!({"error": {
                    "kind": error.metric_label(),
                    "message": error.to_string(),
                }});
                print_structured(format, &document)?;
            }
            return Err(match error {
                theseus::guest::Error::Store(error) => Failure::Store(error),
                other => Failure::problem(other.to_string()),
            });
        }
    };
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
struct GuestAnswer {
    lines: Vec<String>,
    document: serde_json::Value,
}

fn structured(text: impl ToString, document: serde_json::Value) -> GuestAnswer {
    GuestAnswer {
        lines: vec![text.to_string()],
        document,
    }
}

async fn answer(
    call: GuestCall,
    env: TaskEnvironment,
    etcd: &EtcdArgs,
) -> Result<GuestAnswer, theseus::guest::Error> {
    let service_label = |service: &str| DnsLabel::parse("service", service);
    Ok(match call {
        GuestCall::Env => {
            let name = env.environment_name();
            structured(&name, json!({ "environment": name }))
        }
        GuestCall::Service => {
            let service = env.service_name()?;
            structured(&service, json!({ "service": service }))
        }
        GuestCall::Container => {
            let container = env.container_name()?;
            structured(&container, json!({ "container": container }))
        }
        GuestCall::Host => {
            let host = env.host_address()?;
            structured(&host, json!({ "host": host }))
        }
        GuestCall::InternalAddress => {
            let task = ThisTask::new(env, connect(etcd).await?);
            let address = task.internal_address().await?;
            structured(address, json!({ "internal_address": address.to_string() }))
        }
        GuestCall::Port { name } => {
            let task = ThisTask::new(env, connect(etcd).await?);
            let port = task.port(&name).await?;
            structured(port, json!({ "name": name, "port": port }))
        }
        GuestCall::NodeList(args) => {
            let service = service_label(&args.service)?;
            let query = NodeQuery {
                ports: args.ports,
                labels: args.labels,
                minimum: args.minimum,
            };
            let discovery = Discovery::new(connect(etcd).await?);
            let listed = match args.wait {
                Some(wait) => discovery.wait_for_node_list(&service, &query, wait).await,
                None => discovery.node_list(&service, &query).await,
            }?;
            GuestAnswer {
                lines: listed.iter().map(|l| l.address.clone()).collect(),
                document: json!(listed),
            }
        }
        GuestCall::SpecificHost { service, container } => {
            let label = service_label(&service)?;
            let discovery = Discovery::new(connect(etcd).await?);
            let host = discovery.specific_host(&label, &container).await?;
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
            let discovery = Discovery::new(connect(etcd).await?);
            let host_port = discovery.specific_port(&label, &container, &port).await?;
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
            let discovery = Discovery::new(connect(etcd).await?);
            let container_port = discovery
                .specific_exposed_port(&label, &container, &port)
                .await?;
            structured(
                container_port,
                json!({ "service": service, "container": container, "port": port, "container_port": container_port }),
            )
        }
        GuestCall::InstallPython(_) => unreachable!("install-python is answered before"),
    })
}

async fn connect(etcd: &EtcdArgs) -> Result<Store, theseus::guest::Error> {
    let layout = Layout::new(&etcd.prefix)?;
    Ok(Store::connect(etcd.config(), layout).await?)
}

fn install_python(args: InstallPythonArgs, format: OutputFormat) -> Result<(), Failure> {
    let installed = python::install(&args.dir, args.force)
        .map_err(|error| Failure::problem(error.to_string()))?;
    if format != OutputFormat::Table {
        return Ok(print_structured(format, &installed)?);
    }
    for file in installed {
        let action = match file.action {
            python::InstallAction::Created => "created",
            python::InstallAction::Replaced => "replaced",
            python::InstallAction::Unchanged => "unchanged",
        };
        println!("{action} {}", file.path.display());
    }
    Ok(())
}
