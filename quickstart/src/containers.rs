//! The Docker side of the quick start, used only when an engine answers.
//!
//! It makes a bridge network of the quick start's own (`theseus-quickstart-<random>`) and an
//! image of the project's `theseus` and `theseus-hello` (nothing can be pulled here). etcd
//! also listens on the network's gateway, and the controller hands that address to tasks as
//! `ETCD_ENDPOINTS`, so containers reach etcd; a fourth agent on the gateway address gives the
//! Docker tasks host ports that containers can reach too (the other agents' `127.0.0.x` are
//! the containers' own loopback inside them). The network goes, with any container left on
//! it, when the quick start ends.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use theseus_testkit::image::{DockerEngine, ProjectImage};
use theseus_testkit::network::ProjectNetwork;

/// Why the Docker variant cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No engine answers.
    #[error("no Docker engine answers ({0})")]
    NoEngine(String),
    /// The network could not be made.
    #[error(transparent)]
    Network(#[from] theseus_testkit::network::Error),
    /// The image could not be built.
    #[error(transparent)]
    Image(#[from] theseus_testkit::image::Error),
}

/// The quick start's network and image.
#[derive(Debug)]
pub struct Containers {
    /// The network Docker tasks join; etcd listens on its gateway.
    pub network: ProjectNetwork,
    /// `theseus` and `theseus-hello` in `/bin`.
    pub image: ProjectImage,
}

impl Containers {
    /// The network and the image, when an engine answers. Blocking.
    pub fn prepare(bin_dir: &Path) -> Result<Containers, Error> {
        DockerEngine::probe().map_err(Error::NoEngine)?;
        let network = ProjectNetwork::create("quickstart")?;
        let image =
            ProjectImage::build_from(bin_dir, "theseus-hello", &["theseus", "theseus-hello"])?;
        Ok(Containers { network, image })
    }

    /// This machine's address on the network.
    pub fn gateway(&self) -> Ipv4Addr {
        self.network.gateway()
    }

    /// The deployments of the Docker variant of hello, in `theseus apply -f` form: two servers
    /// and a client that watches them, all placed on the gateway's agent.
    pub fn hello_manifest(&self) -> String {
        let image = &self.image.tag;
        let gateway = self.gateway();
        format!(
            r#"# The Docker variant of the hello example, written by the quick start for this run's
# image. The client's container holds no shell: the quick start runs `theseus guest node-list`
# and `theseus-hello fetch` inside it with `docker exec`.
deploy:
  hello-docker:
    image: {image}
    args: [/bin/theseus-hello, serve, --listen, "0.0.0.0:8080"]
    ports: {{http: 8080}}
    instances: 2
    cpus: 0.1
    mem: 32
    constraints: [[hostname, CLUSTER, "{gateway}"]]
  hello-docker-client:
    image: {image}
    args: [/bin/theseus, watch, --services, hello-docker, --json-lines]
    instances: 1
    cpus: 0.05
    mem: 32
    constraints: [[hostname, CLUSTER, "{gateway}"]]
"#
        )
    }

    /// The container of task `task_id` on the quick start's network, if it runs.
    pub fn container_of(&self, task_id: &str) -> Option<String> {
        let out = Command::new("docker")
            .args(["ps", "--quiet", "--filter"])
            .arg(format!("network={}", self.network.name()))
            .arg("--filter")
            .arg(format!("label=localmarathon.task={task_id}"))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!id.is_empty()).then_some(id)
    }

    /// Runs `program args` inside `container`; its standard output, or why it failed.
    pub fn exec(container: &str, program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .args(["exec", container, program])
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
}
