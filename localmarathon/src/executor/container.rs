//! One Docker task from launch to removal: what Mesos' Docker executor does for a task.
//!
//! The steps: the engine must answer (else TASK_FAILED saying so); the image must be here or
//! present or, where pulling is on, pullable (else TASK_FAILED naming the image and why);
//! `docker run --detach`
//! starts the container (TASK_RUNNING); `docker logs --follow` copies its output into the
//! sandbox's `stdout` and `stderr`; `docker wait` tells when it ends and with which status. A
//! kill is `docker stop` with the app's grace period (SIGTERM, SIGKILL after it). Whatever ends
//! the task, the container is removed before the task's last update is sent, so a container
//! never outlives its task. Should localmarathon die instead, the [`Guardian`] removes every
//! container of this executor instance.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::docker::{self, ContainerName, DockerRun, Engine};
use super::guardian::Guardian;
use super::{ExecutorUpdate, LaunchSpec};
use crate::task::{ExitStatus, TaskEvent};

/// What a container task needs from its executor.
pub(super) struct ContainerTask {
    /// Where updates go.
    pub updates: tokio::sync::mpsc::UnboundedSender<ExecutorUpdate>,
    /// The engine.
    pub engine: Arc<Engine>,
    /// Removes the instance's containers should localmarathon die.
    pub guardian: Arc<Guardian>,
    /// Cancelled when the task is to be killed.
    pub kill: CancellationToken,
}

/// How a container task ended, before it is reported.
enum End {
    /// It never ran: the message for TASK_FAILED.
    NotLaunched(String),
    /// It ran and exited with this code.
    Exited(i32),
}

impl ContainerTask {
    fn report(&self, spec: &LaunchSpec, event: TaskEvent, message: String) {
        let _ = self.updates.send(ExecutorUpdate {
            task_id: spec.task_id.clone(),
            event,
            message,
            pid: None,
        });
    }

    /// Runs the task's container until it ends; sends RUNNING and the final update.
    pub async fn run(self, spec: LaunchSpec, run: DockerRun) {
        let end = self.launch_and_wait(&spec, &run).await;
        match end {
            End::NotLaunched(message) => self.report(&spec, TaskEvent::LaunchFailed, message),
            End::Exited(code) => self.report(
                &spec,
                TaskEvent::Exited(ExitStatus::Code(code)),
                format!("Container exited with status {code}"),
            ),
        }
    }

    async fn launch_and_wait(&self, spec: &LaunchSpec, run: &DockerRun) -> End {
        let failed = |e: docker::Error| {
            End::NotLaunched(match e {
                docker::Error::Pull { .. } | docker::Error::NotPresent { .. } => {
                    docker::launch_failure(&e)
                }
                _ => format!("Failed to launch container for image '{}': {e}", run.image),
            })
        };
        if let Err(e) = self.engine.probe().await {
            return failed(e);
        }
        self.guardian
            .watch_containers(self.engine.instance(), self.engine.host());
        let pulled = tokio::select! {
            pulled = self.engine.ensure_image(&run.image, run.force_pull) => pulled,
            () = self.kill.cancelled() => {
                return End::NotLaunched("Task killed before it was started".into());
            }
        };
        if let Err(e) = pulled {
            return failed(e);
        }
        let name = ContainerName {
            instance: self.engine.instance().to_string(),
            task: spec.task_id.as_str().to_string(),
        };
        let env = docker::container_env(&spec.env);
        let args = run.run_args(
            &name,
            &spec.host.to_string(),
            self.engine.bridge_network(),
            &env,
            &spec.sandbox,
        );
        let container = match self.engine.run(&args, &env).await {
            Ok(id) => id,
            Err(e) => {
                // `run` may have created the container before failing to start it.
                let _ = self.engine.remove(&name.name()).await;
                return failed(e);
            }
        };
        let end = self.supervise(spec, &container).await;
        if let Err(e) = self.engine.remove(&container).await {
            tracing::warn!(task = %spec.task_id, container, error = %e, "could not remove a task's container");
        }
        end
    }

    async fn supervise(&self, spec: &LaunchSpec, container: &str) -> End {
        let logs = self.follow_logs(spec, container);
        let mut wait = match self.engine.wait_command(container).spawn() {
            Ok(child) => child,
            Err(e) => {
                return End::NotLaunched(format!(
                    "Failed to launch container: could not run 'docker wait': {e}"
                ));
            }
        };
        self.report(spec, TaskEvent::ProcessRunning, String::new());
        let stdout = wait.stdout.take();
        let read_code = async move {
            let mut text = String::new();
            if let Some(mut out) = stdout {
                use tokio::io::AsyncReadExt;
                let _ = out.read_to_string(&mut text).await;
            }
            text.trim().parse::<i32>().ok()
        };
        tokio::pin!(read_code);
        let code = tokio::select! {
            code = &mut read_code => code,
            () = self.kill.cancelled() => {
                if let Err(e) = self.engine.stop(container, spec.kill_grace).await {
                    tracing::warn!(task = %spec.task_id, error = %e, "docker stop failed; removing the container");
                }
                read_code.await
            }
        };
        let _ = wait.wait().await;
        let code = match code {
            Some(code) => code,
            None => self.engine.exit_code(container).await.unwrap_or(-1),
        };
        if let Some(mut logs) = logs {
            // The log stream ends with the container; do not wait for a stuck one.
            if tokio::time::timeout(std::time::Duration::from_secs(2), logs.wait())
                .await
                .is_err()
            {
                let _ = logs.kill().await;
            }
        }
        End::Exited(code)
    }

    fn follow_logs(&self, spec: &LaunchSpec, container: &str) -> Option<tokio::process::Child> {
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(spec.sandbox.join(name))
        };
        let (Ok(stdout), Ok(stderr)) = (open("stdout"), open("stderr")) else {
            return None;
        };
        let mut command = self.engine.logs_command(container);
        command.stdout(stdout).stderr(stderr);
        command.spawn().ok()
    }
}
