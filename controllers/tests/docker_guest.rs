//! A Docker spec from etcd through the controller and localmarathon into real containers, and
//! service discovery answered from inside them.
//!
//! The containers join a bridge network made for the test, and etcd also listens on that
//! network's gateway: the endpoint the controller uses, and so the `ETCD_ENDPOINTS` it hands
//! every task, is that address, which containers and this machine reach alike. The image holds
//! the project's own `theseus` and `theseus-hello`. Without a Docker engine the test prints why
//! and passes without running. The network, and every container still on it, is removed when
//! the test ends, also on failure.

mod support;

use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Cluster, DEADLINE, wait_until};
use theseus::api::TaskRecord;
use theseus_controllers::controller::Controller;
use theseus_testkit::image::{DockerEngine, ProjectImage};
use theseus_testkit::network::ProjectNetwork;
use theseus_testkit::{EtcdOptions, EtcdServer};

/// Runs `docker exec <container> /bin/theseus guest <args>`; its output, trimmed.
fn guest_in(container: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(["exec", container, "/bin/theseus", "guest"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker exec runs");
    assert!(
        out.status.success(),
        "theseus guest {args:?} inside {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The container of task `task_id` on `network`.
fn container_of(network: &ProjectNetwork, task_id: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "--quiet", "--filter"])
        .arg(format!("network={}", network.name()))
        .arg("--filter")
        .arg(format!("label=localmarathon.task={task_id}"))
        .output()
        .expect("docker ps runs");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!id.is_empty(), "no container for task {task_id}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_deployment_is_reachable_on_its_observed_host_ports_and_discoverable_from_inside_its_containers()
 {
    if let Err(reason) = DockerEngine::probe() {
        eprintln!("skipping: this test needs a Docker engine and {reason}");
        return;
    }
    // Declared first, dropped last: after localmarathon has removed its containers.
    let network = ProjectNetwork::create("test-guest").expect("a test network");
    let image = ProjectImage::build("theseus-guest", &["theseus", "theseus-hello"])
        .expect("an image of theseus and theseus-hello");
    let etcd =
        EtcdServer::start_with(EtcdOptions::new().also_listening_on(network.gateway().into()));
    let gateway_endpoint = etcd.endpoint_on_extra_address().unwrap();
    let cluster = Cluster::start_on(
        etcd,
        localmarathon::LocalMarathon::builder().docker_bridge_network(network.name()),
    )
    .await;
    let mut config = cluster.config();
    // The controller hands tasks the endpoints it uses itself.
    config.etcd.endpoints = vec![gateway_endpoint.clone()];
    let _controller = Controller::start(config).await.unwrap();

    let spec = json!({
        "image": image.tag, "instances": 2, "cpus": 0.1, "mem": 32,
        "ports": {"http": 8080},
        "args": ["/bin/theseus-hello", "serve", "--listen", "0.0.0.0:8080"],
        "kill_grace_period_seconds": 1,
    });
    let revision = cluster.put_spec("guest/dev", &spec).await;
    cluster.wait_running("guest/dev", revision).await;
    wait_until("both task records say TASK_RUNNING", || async {
        let records = cluster.records("guest/dev").await;
        records.len() == 2 && records.values().all(TaskRecord::is_running)
    })
    .await;
    let records = cluster.records("guest/dev").await;

    // Each record's host port reaches its own container's port 8080.
    let http = reqwest::Client::new();
    for record in records.values() {
        let binding = &record.ports["http"];
        assert_eq!(binding.container, 8080, "{record:?}");
        let url = format!("http://{}:{}/", record.host, binding.host);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let answer = loop {
            if let Ok(response) = http.get(&url).send().await
                && let Ok(body) = response.json::<Value>().await
            {
                break body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} never answered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(answer["task_id"], record.task_id.as_str(), "{answer}");
        assert_eq!(answer["port"], 8080, "{answer}");
        assert_eq!(answer["service"], "guest", "{answer}");
    }

    // Inside a container, through the ETCD_ENDPOINTS the controller gave it.
    let mut ids = records.keys();
    let (first, second) = (ids.next().unwrap(), ids.next().unwrap());
    let container = container_of(&network, first);
    assert_eq!(guest_in(&container, &["port", "http"]), "8080");
    let mut expected: Vec<String> = records
        .values()
        .map(|r| format!("{}:{}", r.host, r.ports["http"].host))
        .collect();
    expected.sort();
    assert_eq!(
        guest_in(
            &container,
            &["node-list", "guest", "--ports", "http", "--minimum", "2"]
        ),
        expected.join("\n")
    );
    assert_eq!(
        guest_in(
            &container,
            &["specific-exposed-port", "guest", second, "http"]
        ),
        "8080"
    );
    assert_eq!(
        guest_in(&container, &["specific-port", "guest", second, "http"]),
        records[second].ports["http"].host.to_string()
    );
}
