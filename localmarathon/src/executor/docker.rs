//! Docker-image tasks: run through the local Docker engine when one answers, fail otherwise.
//!
//! Mesos' Docker containerizer runs `docker run` with the task's environment and port mappings;
//! here the `docker` CLI does the same as the task's process, so killing the process group stops
//! the container (`docker run` proxies signals, `--rm` removes it). Without an engine the task
//! fails with a message saying so, which is what a Mesos agent without Docker support reports.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::NetworkMode;

/// The Docker engine socket probed.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// One `docker run`.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerRun {
    /// Image.
    pub image: String,
    /// Command given with `cmd` (run as `sh -c` in the image).
    pub cmd: Option<String>,
    /// Arguments given with `args`.
    pub args: Vec<String>,
    /// Networking mode.
    pub network: NetworkMode,
    /// `(host port, container port, protocol)` for bridge networking.
    pub ports: Vec<(u16, u16, String)>,
    /// Extra `--key=value` parameters.
    pub parameters: Vec<(String, String)>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--pull always`.
    pub force_pull: bool,
}

impl DockerRun {
    /// The `docker` command line for a task named `name` on `host`.
    pub fn argv(&self, name: &str, host: &str, env: &[(String, String)]) -> Vec<String> {
        let mut argv = vec![
            "docker".to_string(),
            "run".to_string(),
            "--rm".to_string(),
            format!("--name=mesos-{name}"),
        ];
        match self.network {
            NetworkMode::Host => argv.push("--net=host".to_string()),
            _ => argv.push("--net=bridge".to_string()),
        }
        for (host_port, container_port, protocol) in &self.ports {
            for proto in protocol.split(',') {
                argv.push(format!(
                    "--publish={host}:{host_port}:{container_port}/{proto}"
                ));
            }
        }
        for (k, v) in env {
            argv.push(format!("--env={k}={v}"));
        }
        for (k, v) in &self.parameters {
            argv.push(format!("--{k}={v}"));
        }
        if self.privileged {
            argv.push("--privileged".to_string());
        }
        if self.force_pull {
            argv.push("--pull=always".to_string());
        }
        argv.push(self.image.clone());
        match &self.cmd {
            Some(cmd) => argv.extend(["sh".to_string(), "-c".to_string(), cmd.clone()]),
            None => argv.extend(self.args.iter().cloned()),
        }
        argv
    }
}

/// Whether a Docker engine answers `GET /_ping` on its socket.
pub async fn engine_answers(socket: &Path) -> bool {
    let probe = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
        stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// The message a task gets when its image cannot run here.
pub fn no_engine_message(image: &str) -> String {
    format!(
        "Failed to launch container: the app runs Docker image '{image}' but no Docker engine answers at {DOCKER_SOCKET} on this agent; start Docker or give the app a 'cmd' without a container"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_run_maps_ports_env_and_command() {
        let run = DockerRun {
            image: "nginx:1".into(),
            cmd: None,
            args: vec!["-g".into(), "daemon off;".into()],
            network: NetworkMode::ContainerBridge,
            ports: vec![(31000, 80, "tcp".into())],
            parameters: vec![("label".into(), "a=b".into())],
            privileged: false,
            force_pull: false,
        };
        let argv = run.argv("web.1", "127.0.0.11", &[("PORT0".into(), "31000".into())]);
        assert!(argv.contains(&"--publish=127.0.0.11:31000:80/tcp".to_string()));
        assert!(argv.contains(&"--env=PORT0=31000".to_string()));
        assert!(argv.contains(&"--label=a=b".to_string()));
        assert_eq!(&argv[argv.len() - 3..], ["nginx:1", "-g", "daemon off;"]);
    }

    #[tokio::test]
    async fn a_missing_socket_is_no_engine() {
        assert!(!engine_answers(Path::new("/nonexistent/docker.sock")).await);
    }
}
