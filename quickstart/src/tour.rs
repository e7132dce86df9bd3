//! The tour of the running stack: apply the examples, wait for them, show what runs, prove the
//! discovery chain end to end, explain how to try it by hand, then wait for Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use theseus::api::{DnsLabel, TaskRecord};
use theseus::store::{EtcdConfig, KeyPath, Layout, Store};
use tokio::signal::unix::{SignalKind, signal};

use crate::Addresses;
use crate::containers::Containers;
use crate::stack::Stack;

/// The deployments of `examples/hello.yaml`, which must run for the tour to go on.
const HELLO_DEPLOYMENTS: [&str; 3] = ["hello/blue", "hello/green", "hello-client/default"];

/// Prints a section heading.
pub fn heading(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

/// Runs `theseus ARGS` against the quick start's etcd, printing the command and its output.
fn theseus(addresses: &Addresses, args: &[&str]) -> anyhow::Result<bool> {
    println!("$ theseus {}", args.join(" "));
    let status = Command::new(addresses.bin_dir.join("theseus"))
        .args(args)
        .env("ETCD_ENDPOINTS", &addresses.etcd)
        .env_remove("THESEUS_PREFIX")
        .current_dir(addresses.examples_dir.parent().unwrap_or(Path::new(".")))
        .status()
        .context("cannot run theseus")?;
    Ok(status.success())
}

/// The tour; returns when Ctrl-C (or SIGTERM) arrives, or with the first thing that failed.
pub async fn run(
    stack: &mut Stack,
    addresses: &Addresses,
    containers: Option<&Containers>,
    timeout: Duration,
) -> anyhow::Result<()> {
    // Taken over before "Press Ctrl-C" is printed: a Ctrl-C that follows the prompt at once
    // must stop the stack in order (and remove the Docker network), not kill this process.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let examples = addresses
        .examples_dir
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    let hello = examples.join("hello.yaml");
    let ingestor = examples.join("ingestor.yaml");

    heading("applying the examples");
    if !theseus(
        addresses,
        &[
            "apply",
            "-f",
            &hello.to_string_lossy(),
            &ingestor.to_string_lossy(),
        ],
    )? {
        bail!("applying the examples failed");
    }

    heading("waiting for the hello deployments to run");
    let timeout_text = format!("{}s", timeout.as_secs());
    for deployment in HELLO_DEPLOYMENTS {
        stack.check_alive()?;
        if !theseus(
            addresses,
            &["rollout", "status", deployment, "--timeout", &timeout_text],
        )? {
            bail!(
                "{deployment} did not reach Running; see {}",
                addresses.state_dir.join("controller.log").display()
            );
        }
    }

    heading("the deployments and their status");
    theseus(addresses, &["get"])?;
    println!(
        "(ingestor/dev is the old system's example: its image cannot run here, because it lives \
         in a registry and localmarathon pulls no image, or no Docker engine runs, so its tasks \
         fail with one line saying which, shown under the table once the first task has failed.)"
    );

    heading("the endpoints of the hello service, from /observed");
    theseus(
        addresses,
        &[
            "guest",
            "node-list",
            "hello",
            "--ports",
            "http",
            "--wait",
            "30s",
        ],
    )?;

    heading("the chain, end to end");
    let store = Store::connect(
        EtcdConfig::new(vec![addresses.etcd.clone()]),
        Layout::new("")?,
    )
    .await?;
    let answer = client_answer(stack, &store, addresses, timeout).await?;
    println!("{answer}");

    heading("the Docker variant of hello, in containers");
    match containers {
        Some(containers) => {
            let proof = docker_chain(stack, &store, addresses, containers, timeout).await?;
            println!("{proof}");
        }
        None => println!(
            "skipped: no Docker engine answers here (see the first lines above); everything \
             else runs as processes"
        ),
    }

    heading("what the watcher's hook logged");
    print!("{}", hook_log(&addresses.state_dir.join("watch.log")).await);

    let records = hello_records(&store).await?;
    let example = records
        .values()
        .next()
        .and_then(|r| {
            r.ports
                .get("http")
                .map(|p| format!("{}:{}", r.host, p.host))
        })
        .unwrap_or_else(|| "HOST:PORT".to_owned());
    heading("try it by hand, in another terminal");
    println!(
        r#"etcd is on its default URL, so etcdctl and theseus need no flags (theseus is in {bin}):

  theseus get                                      # desired vs observed
  theseus guest node-list hello --ports http      # host:port of every serving hello task
  theseus guest node-list hello --labels green --ports http
  {curl:<49}# a hello task says who it is
  etcdctl get /observed --prefix --keys-only       # the mirror of what runs
  theseus watch --services hello --exec 'cat'      # follow changes as JSON
  etcdctl put /desired/hello/green '{{"cmd": "theseus-hello serve", "ports": {{"http": 8080}}, "instances": 3, "labels": ["green"]}}'
  theseus rollout status hello/green               # then watch the hook's log grow:
  tail -f {watch_log}
  theseus delete hello/green

localmarathon (a stand-in for Marathon) answers on {marathon}: curl {marathon}/v2/apps
The dashboard, live in a browser: {metrics}/
The controller's metrics: curl {metrics}/metrics
Logs: {logs}

Press Ctrl-C to stop everything."#,
        bin = addresses.bin_dir.display(),
        curl = format!("curl http://{example}/"),
        watch_log = addresses.state_dir.join("watch.log").display(),
        marathon = addresses.marathon,
        metrics = addresses.metrics,
        logs = addresses.state_dir.display(),
    );

    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => stack.check_alive()?,
        }
    }
}

/// The serving task records of the `hello` service, by task id.
async fn hello_records(store: &Store) -> anyhow::Result<BTreeMap<String, TaskRecord>> {
    serving_records(store, "hello").await
}

/// The serving task records of `service`, by task id.
async fn serving_records(
    store: &Store,
    service: &str,
) -> anyhow::Result<BTreeMap<String, TaskRecord>> {
    let service = DnsLabel::parse("service", service)?;
    let listing = store
        .list(&store.layout().observed_service(&service))
        .await?;
    let mut records = BTreeMap::new();
    for entry in listing.entries {
        if let Some(KeyPath::Task { task_id, .. }) = store.layout().parse(&entry.key) {
            let record: TaskRecord = entry.json()?;
            if record.is_serving() {
                records.insert(task_id, record);
            }
        }
    }
    Ok(records)
}

/// Waits for the client task to print an answer from a hello server, and checks that the
/// server is one the client could only have found through `/observed`.
async fn client_answer(
    stack: &mut Stack,
    store: &Store,
    addresses: &Addresses,
    timeout: Duration,
) -> anyhow::Result<String> {
    let sandboxes = addresses.state_dir.join("sandboxes");
    let deadline = Instant::now() + timeout;
    loop {
        stack.check_alive()?;
        let records = hello_records(store).await?;
        for stdout in client_outputs(&sandboxes) {
            let text = std::fs::read_to_string(&stdout).unwrap_or_default();
            for line in text.lines().rev() {
                let Ok(answer) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let task = answer["task_id"].as_str().unwrap_or_default();
                let Some(record) = records.get(task) else {
                    continue;
                };
                let port = record.ports.get("http").map(|p| p.host);
                if answer["port"].as_u64() != port.map(u64::from) {
                    continue;
                }
                let client = stdout
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Ok(format!(
                    "the client task {client}\n  called {}:{} and server task {task}\n  \
                     (hello/{}, labels {:?}) answered.\n  It knew that address only from \
                     /observed/hello/{}/tasks/{task}, written by the controller from Marathon.",
                    record.host,
                    port.unwrap_or_default(),
                    record.deployment,
                    record.labels,
                    record.deployment,
                ));
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the client printed no answer from a hello task within {} s; its output is in {}",
                timeout.as_secs(),
                sandboxes.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stdout files of the client's tasks: `<sandboxes>/<agent>/<task-id>/stdout`.
fn client_outputs(sandboxes: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for agent in std::fs::read_dir(sandboxes).into_iter().flatten().flatten() {
        for task in std::fs::read_dir(agent.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if task
                .file_name()
                .to_string_lossy()
                .starts_with("hello-client_default.")
            {
                found.push(task.path().join("stdout"));
            }
        }
    }
    found
}

/// The watcher's log once its hook has seen serving hello tasks (it runs a debounce period
/// after the records change, so it may trail the chain by a moment), or as it is after a few
/// seconds.
async fn hook_log(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let saw_serving = log
            .lines()
            .any(|line| line.contains(" changed by ") && !line.ends_with("(0 serving)"));
        if saw_serving || tokio::time::Instant::now() >= deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deploys the Docker variant of hello and proves its chain: inside the client's container,
/// `theseus guest node-list` (through the `ETCD_ENDPOINTS` the controller gave it) names a
/// server container's host port, and `theseus-hello fetch` gets that server's answer.
async fn docker_chain(
    stack: &mut Stack,
    store: &Store,
    addresses: &Addresses,
    containers: &Containers,
    timeout: Duration,
) -> anyhow::Result<String> {
    let manifest = addresses.state_dir.join("hello-docker.yaml");
    std::fs::write(&manifest, containers.hello_manifest())
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    if !theseus(addresses, &["apply", "-f", &manifest.to_string_lossy()])? {
        bail!("applying {} failed", manifest.display());
    }
    let timeout_text = format!("{}s", timeout.as_secs());
    for deployment in ["hello-docker/default", "hello-docker-client/default"] {
        stack.check_alive()?;
        if !theseus(
            addresses,
            &["rollout", "status", deployment, "--timeout", &timeout_text],
        )? {
            bail!(
                "{deployment} did not reach Running; see {}",
                addresses.state_dir.join("localmarathon.log").display()
            );
        }
    }
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no client container yet");
    loop {
        stack.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "the client container got no answer from a server container within {} s: {last}",
                timeout.as_secs()
            );
        }
        let servers = serving_records(store, "hello-docker").await?;
        let clients = serving_records(store, "hello-docker-client").await?;
        let client = clients
            .keys()
            .find_map(|task| containers.container_of(task).map(|c| (task, c)));
        if let Some((client_task, container)) = client {
            let listed = Containers::exec(
                &container,
                "/bin/theseus",
                &[
                    "guest",
                    "node-list",
                    "hello-docker",
                    "--ports",
                    "http",
                    "--minimum",
                    "2",
                ],
            );
            match listed {
                Ok(nodes) => {
                    println!(
                        "inside the client container: theseus guest node-list hello-docker --ports http"
                    );
                    for node in nodes.lines() {
                        println!("  {node}");
                    }
                    let node = nodes.lines().next().unwrap_or_default().to_string();
                    let url = format!("http://{node}/");
                    match Containers::exec(&container, "/bin/theseus-hello", &["fetch", &url]) {
                        Ok(body) => {
                            let answer: Value = serde_json::from_str(&body).unwrap_or_default();
                            let task = answer["task_id"].as_str().unwrap_or_default();
                            if let Some(record) = servers.get(task) {
                                return Ok(format!(
                                    "the client container of task {client_task}\n  called {url} \
                                     and the server container of task {task} answered from its \
                                     port {}.\n  The client knew that address only from \
                                     /observed/hello-docker/{}/tasks/{task}, and reached etcd \
                                     at {} from inside its container.",
                                    answer["port"], record.deployment, addresses.task_etcd
                                ));
                            }
                            last =
                                format!("{url} answered {body}, not a serving hello-docker task");
                        }
                        Err(error) => last = format!("fetching {url} failed: {error}"),
                    }
                }
                Err(error) => last = format!("node-list failed: {error}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
