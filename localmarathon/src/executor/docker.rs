//! The local Docker engine, driven through the `docker` CLI as Mesos' Docker containerizer
//! drives it.
//!
//! What it promises:
//! - every container it creates is named `localmarathon-<instance>-<task id>` and labelled
//!   [`INSTANCE_LABEL`]`=<instance>` and [`TASK_LABEL`]`=<task id>`, where `<instance>` is unique
//!   to one executor, so it only ever touches containers it created itself;
//! - images are taken from the engine as they are: by default ([`PullPolicy::Never`]) nothing
//!   is pulled, so a machine running localmarathon never reaches a registry, and a missing
//!   image is one line naming it; with [`PullPolicy::Missing`] a missing image is pulled
//!   (`forcePullImage` pulls every time), and a failed pull becomes one line naming the image
//!   and the engine's error, the way a Mesos agent words it;
//! - an engine that does not answer is an error saying so, before anything else is tried.
//!
//! It does not supervise: [`super::container`] runs one task's container from start to removal.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::app::NetworkMode;

/// The label every container of a localmarathon executor carries, valued with its instance.
pub const INSTANCE_LABEL: &str = "localmarathon.instance";
/// The label naming a container's task.
pub const TASK_LABEL: &str = "localmarathon.task";
/// Where the task's sandbox is mounted inside its container, as Mesos mounts it.
pub const CONTAINER_SANDBOX: &str = "/mnt/mesos/sandbox";

/// How long the engine may take to answer a probe (the machine may be busy).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a quick engine call (`inspect`, `run --detach`, `rm`) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors talking to the Docker engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `docker` is not installed or cannot be started.
    #[error("the docker CLI could not be started: {0}; install docker.io (or docker-ce-cli)")]
    NoCli(String),
    /// The engine did not answer.
    #[error(
        "no Docker engine answers on this agent ({0}); start Docker or give the app a 'cmd' without a container"
    )]
    EngineUnavailable(String),
    /// The image is not here, and the policy is not to pull.
    #[error(
        "image '{image}' is not on this agent, and localmarathon pulls no image (build it here, \
         or start localmarathon with --docker-pull missing to pull it from its registry)"
    )]
    NotPresent {
        /// The image.
        image: String,
    },
    /// The image is not here and could not be pulled.
    #[error("Failed to run 'docker pull {image}': {reason}")]
    Pull {
        /// The image.
        image: String,
        /// How the pull failed, on one line.
        reason: String,
    },
    /// Another `docker` call failed.
    #[error("Failed to run 'docker {command}': {reason}")]
    Call {
        /// The subcommand, e.g. `run`.
        command: String,
        /// How it failed, on one line.
        reason: String,
    },
}

impl Error {
    /// A label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NoCli(_) => "no_cli",
            Error::EngineUnavailable(_) => "engine_unavailable",
            Error::NotPresent { .. } => "not_present",
            Error::Pull { .. } => "pull",
            Error::Call { .. } => "call",
        }
    }
}

/// One `docker run`.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerRun {
    /// Image.
    pub image: String,
    /// Command given with `cmd` (run as `/bin/sh -c` in the image, as Mesos does).
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
    /// `forcePullImage`: pull even when the image is present.
    pub force_pull: bool,
}

/// The identity of one task's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName {
    /// The executor instance.
    pub instance: String,
    /// The task id.
    pub task: String,
}

impl ContainerName {
    /// `localmarathon-<instance>-<task>`.
    pub fn name(&self) -> String {
        format!("localmarathon-{}-{}", self.instance, self.task)
    }
}

impl DockerRun {
    /// The arguments of `docker run --detach` for the task `name` on the agent `host`, a bridge
    /// task joining `bridge_network`. The
    /// environment is passed by name only (`--env NAME`): the values travel in the CLI's own
    /// environment, so they never show in a process listing.
    pub fn run_args(
        &self,
        name: &ContainerName,
        host: &str,
        bridge_network: &str,
        env: &[(String, String)],
        sandbox: &Path,
    ) -> Vec<String> {
        let mut argv = vec![
            "run".to_string(),
            "--detach".to_string(),
            // The image was made sure of before: `run` itself never pulls.
            "--pull=never".to_string(),
            format!("--name={}", name.name()),
            format!("--label={INSTANCE_LABEL}={}", name.instance),
            format!("--label={TASK_LABEL}={}", name.task),
            format!("--volume={}:{CONTAINER_SANDBOX}", sandbox.display()),
        ];
        match self.network {
            NetworkMode::Host => argv.push("--network=host".to_string()),
            _ => argv.push(format!("--network={bridge_network}")),
        }
        if self.network != NetworkMode::Host {
            // Published on the agent's address only: each simulated agent owns its address.
            for (host_port, container_port, protocol) in &self.ports {
                for proto in protocol.split(',') {
                    argv.push(format!(
                        "--publish={host}:{host_port}:{container_port}/{proto}"
                    ));
                }
            }
        }
        for (k, _) in env {
            argv.push(format!("--env={k}"));
        }
        for (k, v) in &self.parameters {
            argv.push(format!("--{k}={v}"));
        }
        if self.privileged {
            argv.push("--privileged".to_string());
        }
        match &self.cmd {
            Some(cmd) => {
                argv.push("--entrypoint=/bin/sh".to_string());
                argv.push(self.image.clone());
                argv.extend(["-c".to_string(), cmd.clone()]);
            }
            None => {
                argv.push(self.image.clone());
                argv.extend(self.args.iter().cloned());
            }
        }
        argv
    }
}

/// The task environment as the container sees it: `MESOS_SANDBOX` is the mount point.
pub fn container_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| {
            if k == "MESOS_SANDBOX" {
                (k.clone(), CONTAINER_SANDBOX.to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// Squeezes a command's error output onto one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a finished `docker` call said.
struct Output {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn reason(&self) -> String {
        let status = match self.code {
            Some(code) => format!("exited with status {code}"),
            None => "was terminated by a signal".to_string(),
        };
        format!("{status}; stderr='{}'", one_line(&self.stderr))
    }
}

/// Which Docker engine an executor uses, and how it networks bridge tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// The engine (`DOCKER_HOST` syntax); `None`: the one the `docker` CLI reaches.
    pub host: Option<String>,
    /// The network `container/bridge` tasks join: Docker's default `bridge`, or a bridge
    /// network made for them (as a Mesos agent may be configured with its own bridge).
    pub bridge_network: String,
    /// Whether images missing from the engine are pulled.
    pub pull: PullPolicy,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: None,
            bridge_network: DEFAULT_BRIDGE_NETWORK.to_string(),
            pull: PullPolicy::Never,
        }
    }
}

/// Whether images missing from the engine are pulled from their registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Never: only images already on the engine run (built on this machine, say).
    #[default]
    Never,
    /// Pull an image that is missing (and every time for `forcePullImage`), as Mesos does.
    Missing,
}

/// Docker's own bridge network.
pub const DEFAULT_BRIDGE_NETWORK: &str = "bridge";

/// The `docker` CLI, for the containers of one executor instance.
#[derive(Debug, Clone)]
pub struct Engine {
    program: String,
    host: Option<String>,
    bridge_network: String,
    pull: PullPolicy,
    instance: String,
    pull_timeout: Duration,
}

impl Engine {
    /// The engine `config` names, for containers labelled with `instance`.
    pub fn new(instance: impl Into<String>, config: DockerConfig) -> Engine {
        Engine {
            program: "docker".to_string(),
            host: config.host,
            bridge_network: config.bridge_network,
            pull: config.pull,
            instance: instance.into(),
            pull_timeout: Duration::from_secs(120),
        }
    }

    /// The network bridge tasks join.
    pub fn bridge_network(&self) -> &str {
        &self.bridge_network
    }

    /// The engine's address, when one was given.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The executor instance this engine labels containers with.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        if let Some(host) = &self.host {
            command.env("DOCKER_HOST", host);
        }
        command
    }

    async fn call(
        &self,
        args: &[String],
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<Output, Error> {
        let mut command = self.command();
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| Error::NoCli(e.to_string()))?;
        let subcommand = args.first().cloned().unwrap_or_default();
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(Output {
                success: out.status.success(),
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
            Ok(Err(e)) => Err(Error::Call {
                command: subcommand,
                reason: e.to_string(),
            }),
            Err(_) => Err(Error::Call {
                command: subcommand,
                reason: format!("no answer within {} s", timeout.as_secs()),
            }),
        }
    }

    /// Whether the engine answers; the error says why not.
    pub async fn probe(&self) -> Result<(), Error> {
        let args = ["version", "--format", "{{.Server.Version}}"].map(String::from);
        match self.call(&args, &[], PROBE_TIMEOUT).await {
            Ok(out) if out.success => Ok(()),
            Ok(out) => Err(Error::EngineUnavailable(one_line(&out.stderr))),
            Err(Error::Call { reason, .. }) => Err(Error::EngineUnavailable(reason)),
            Err(e) => Err(e),
        }
    }

    /// Makes sure `image` is here: present (unless `force_pull`) or pulled now.
    pub async fn ensure_image(&self, image: &str, force_pull: bool) -> Result<(), Error> {
        if !force_pull || self.pull == PullPolicy::Never {
            let inspect = ["image", "inspect", "--format", "{{.Id}}", image].map(String::from);
            if self
                .call(&inspect, &[], CALL_TIMEOUT)
                .await
                .is_ok_and(|o| o.success)
            {
                return Ok(());
            }
        }
        if self.pull == PullPolicy::Never {
            return Err(Error::NotPresent {
                image: image.to_string(),
            });
        }
        let pull = ["pull", "--quiet", image].map(String::from);
        let pull_error = |reason| Error::Pull {
            image: image.to_string(),
            reason,
        };
        match self.call(&pull, &[], self.pull_timeout).await {
            Ok(out) if out.success => Ok(()),
            Ok(out) => Err(pull_error(out.reason())),
            Err(Error::Call { reason, .. }) => Err(pull_error(reason)),
            Err(e) => Err(e),
        }
    }

    /// Creates and starts a container; returns its id.
    pub async fn run(&self, args: &[String], env: &[(String, String)]) -> Result<String, Error> {
        let out = self.call(args, env, CALL_TIMEOUT).await?;
        if out.success {
            Ok(out.stdout.lines().last().unwrap_or_default().to_string())
        } else {
            Err(Error::Call {
                command: "run".to_string(),
                reason: out.reason(),
            })
        }
    }

    /// A `docker wait` for a container, to be spawned and awaited by its supervisor; it
    /// prints the container's exit code when it ends.
    pub fn wait_command(&self, container: &str) -> Command {
        let mut command = self.command();
        command
            .args(["wait", container])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// A `docker logs --follow` for a container, its output going where the caller says.
    pub fn logs_command(&self, container: &str) -> Command {
        let mut command = self.command();
        command
            .args(["logs", "--follow", container])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// `docker stop --time <grace>`: SIGTERM, then SIGKILL once the grace period is over.
    pub async fn stop(&self, container: &str, grace: Duration) -> Result<(), Error> {
        // The CLI counts whole seconds; round up so the task gets at least its grace.
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let args = [
            "stop".to_string(),
            format!("--time={seconds}"),
            container.to_string(),
        ];
        let out = self.call(&args, &[], CALL_TIMEOUT + grace).await?;
        if out.success {
            Ok(())
        } else {
            Err(Error::Call {
                command: "stop".to_string(),
                reason: out.reason(),
            })
        }
    }

    /// The exit code of a stopped container.
    pub async fn exit_code(&self, container: &str) -> Option<i32> {
        let args = ["inspect", "--format", "{{.State.ExitCode}}", container].map(String::from);
        let out = self.call(&args, &[], CALL_TIMEOUT).await.ok()?;
        out.stdout.parse().ok()
    }

    /// Removes a container, running or not.
    pub async fn remove(&self, container: &str) -> Result<(), Error> {
        let args = ["rm", "--force", "--volumes", container].map(String::from);
        let out = self.call(&args, &[], CALL_TIMEOUT).await?;
        // Already gone is what was wanted.
        if out.success || out.stderr.contains("No such container") {
            Ok(())
        } else {
            Err(Error::Call {
                command: "rm".to_string(),
                reason: out.reason(),
            })
        }
    }

    /// Removes every container of this instance at once, without an async runtime (for `Drop`).
    pub fn remove_all_blocking(&self) {
        let filter = format!("label={INSTANCE_LABEL}={}", self.instance);
        let blocking = || {
            let mut command = std::process::Command::new(&self.program);
            if let Some(host) = &self.host {
                command.env("DOCKER_HOST", host);
            }
            command
        };
        let listed = blocking()
            .args(["ps", "--all", "--quiet", "--filter", &filter])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let Ok(listed) = listed else { return };
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return;
        }
        let _ = blocking()
            .args(["rm", "--force", "--volumes"])
            .args(&ids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The message a task gets when its Docker image cannot run here.
pub fn launch_failure(error: &Error) -> String {
    format!("Failed to launch container: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ContainerName {
        ContainerName {
            instance: "ab12".into(),
            task: "web.instance-1._app.1".into(),
        }
    }

    #[test]
    fn bridge_runs_publish_each_host_port_on_the_agent_address() {
        let run = DockerRun {
            image: "nginx:1".into(),
            cmd: None,
            args: vec!["-g".into(), "daemon off;".into()],
            network: NetworkMode::ContainerBridge,
            ports: vec![(31000, 80, "udp,tcp".into())],
            parameters: vec![("label".into(), "a=b".into())],
            privileged: false,
            force_pull: false,
        };
        let env = [("PORT0".to_string(), "31000".to_string())];
        let argv = run.run_args(&name(), "127.0.0.11", "bridge", &env, Path::new("/sb"));
        for expected in [
            "--pull=never",
            "--name=localmarathon-ab12-web.instance-1._app.1",
            "--label=localmarathon.instance=ab12",
            "--label=localmarathon.task=web.instance-1._app.1",
            "--network=bridge",
            "--publish=127.0.0.11:31000:80/udp",
            "--publish=127.0.0.11:31000:80/tcp",
            "--env=PORT0",
            "--label=a=b",
            "--volume=/sb:/mnt/mesos/sandbox",
        ] {
            assert!(
                argv.contains(&expected.to_string()),
                "{expected} in {argv:?}"
            );
        }
        assert!(
            !argv
                .iter()
                .any(|a| a.contains("31000") && a.starts_with("--env"))
        );
        assert_eq!(&argv[argv.len() - 3..], ["nginx:1", "-g", "daemon off;"]);
    }

    #[test]
    fn host_runs_publish_nothing_and_cmd_runs_through_the_images_shell() {
        let run = DockerRun {
            image: "app:1".into(),
            cmd: Some("echo $HOST".into()),
            args: vec![],
            network: NetworkMode::Host,
            ports: vec![(31000, 31000, "tcp".into())],
            parameters: vec![],
            privileged: true,
            force_pull: false,
        };
        let argv = run.run_args(&name(), "127.0.0.11", "bridge", &[], Path::new("/sb"));
        assert!(argv.contains(&"--network=host".to_string()));
        assert!(!argv.iter().any(|a| a.starts_with("--publish")));
        assert!(argv.contains(&"--privileged".to_string()));
        assert_eq!(
            &argv[argv.len() - 4..],
            ["--entrypoint=/bin/sh", "app:1", "-c", "echo $HOST"]
        );
    }

    #[test]
    fn a_failed_pull_is_one_line_naming_the_image() {
        let error = Error::Pull {
            image: "registry.invalid/app:1".into(),
            reason: Output {
                success: false,
                code: Some(1),
                stdout: String::new(),
                stderr: "Error response from daemon:\n  no such host\n".into(),
            }
            .reason(),
        };
        assert_eq!(
            launch_failure(&error),
            "Failed to launch container: Failed to run 'docker pull registry.invalid/app:1': exited with status 1; stderr='Error response from daemon: no such host'"
        );
    }

    #[test]
    fn the_sandbox_variable_names_the_mount_point() {
        let env = container_env(&[("MESOS_SANDBOX".into(), "/tmp/x".into())]);
        assert_eq!(env[0].1, CONTAINER_SANDBOX);
    }
}
