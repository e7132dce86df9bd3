//! `theseus guest ...` run the way a task runs it: through the binary, with only the task's
//! environment, against a real etcd holding task records as the controller writes them.

mod task_harness;

use task_harness::{Background, connect, failure, put_task, run, success, task, theseus};
use theseus::api::Health;
use theseus_testkit::EtcdServer;

const PREFIX: &str = "/prod";

/// The environment of task `ingestor_dev.a` of `ingestor/dev` on agent 10.0.0.2.
fn task_env(etcd: &EtcdServer) -> Vec<(&'static str, String)> {
    vec![
        ("ETCD_ENDPOINTS", etcd.endpoint()),
        ("THESEUS_PREFIX", PREFIX.to_owned()),
        ("SERVICE_NAME", "ingestor".to_owned()),
        ("DEPLOYMENT_NAME", "dev".to_owned()),
        ("MESOS_TASK_ID", "ingestor_dev.a".to_owned()),
        ("HOST", "10.0.0.2".to_owned()),
    ]
}

fn vars<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn lines(stdout: &str) -> Vec<&str> {
    stdout.lines().collect()
}

/// Two deployments of `ingestor` and a task of another service, serving or not.
async fn write_ingestor(etcd: &EtcdServer) {
    let store = connect(etcd.endpoints(), PREFIX).await;
    let ports = |api: u16| [("api", api, 5000), ("ssh", api + 1, 22)];
    put_task(
        &store,
        &task(
            "ingestor",
            "dev",
            "ingestor_dev.a",
            "10.0.0.2",
            &ports(31000),
            &["dev", "eu"],
        ),
    )
    .await;
    put_task(
        &store,
        &task(
            "ingestor",
            "dev",
            "ingestor_dev.b",
            "10.0.0.1",
            &ports(31010),
            &["dev"],
        ),
    )
    .await;
    let mut staging = task(
        "ingestor",
        "dev",
        "ingestor_dev.c",
        "10.0.0.3",
        &ports(31030),
        &["dev"],
    );
    staging.state = theseus::marathon::task::TaskState::Staging;
    put_task(&store, &staging).await;
    put_task(
        &store,
        &task(
            "ingestor",
            "prod",
            "ingestor_prod.d",
            "10.0.0.4",
            &ports(31020),
            &["prod", "eu"],
        ),
    )
    .await;
    let mut unhealthy = task(
        "ingestor",
        "prod",
        "ingestor_prod.e",
        "10.0.0.5",
        &ports(31040),
        &["prod", "eu"],
    );
    unhealthy.health_checked = true;
    unhealthy.health = Health::Unhealthy;
    put_task(&store, &unhealthy).await;
    put_task(
        &store,
        &task(
            "billing",
            "dev",
            "billing_dev.f",
            "10.0.0.9",
            &ports(31050),
            &["eu"],
        ),
    )
    .await;
}

#[test]
fn identity_calls_read_the_task_environment_and_accept_the_old_names() {
    let env = [
        ("THESEUS_PREFIX", "/envs/staging"),
        ("SERVICE_NAME", "ingestor"),
        ("MESOS_TASK_ID", "ingestor_dev.a"),
        ("HOST", "10.0.0.2"),
    ];
    assert_eq!(success(&run(&env, &["guest", "env"])), "staging\n");
    assert_eq!(success(&run(&env, &["guest", "service"])), "ingestor\n");
    assert_eq!(
        success(&run(&env, &["guest", "container"])),
        "ingestor_dev.a\n"
    );
    assert_eq!(success(&run(&env, &["guest", "host"])), "10.0.0.2\n");
    assert_eq!(success(&run(&[], &["guest", "env"])), "default\n");
    assert_eq!(
        success(&run(
            &[("THESEUS_ENVIRONMENT", "eu-prod")],
            &["guest", "env"]
        )),
        "eu-prod\n"
    );
    let old = [
        ("CONTAINER_NAME", "ingestor-1"),
        ("CONTAINER_HOST_ADDRESS", "10.0.0.7"),
    ];
    assert_eq!(success(&run(&old, &["guest", "container"])), "ingestor-1\n");
    assert_eq!(success(&run(&old, &["guest", "host"])), "10.0.0.7\n");
    let json: serde_json::Value =
        serde_json::from_str(&success(&run(&env, &["guest", "host", "--json"]))).unwrap();
    assert_eq!(json, serde_json::json!({"host": "10.0.0.2"}));
}

#[test]
fn a_missing_variable_exits_non_zero_with_one_line_naming_it() {
    let stderr = failure(&run(&[], &["guest", "container"]));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MESOS_TASK_ID"), "{stderr}");
    assert!(stderr.contains("CONTAINER_NAME"), "{stderr}");
    let stderr = failure(&run(&[], &["guest", "service"]));
    assert!(stderr.contains("SERVICE_NAME"), "{stderr}");
}

#[tokio::test]
async fn node_list_prints_sorted_host_ports_of_serving_tasks_over_all_deployments() {
    let etcd = EtcdServer::start();
    write_ingestor(&etcd).await;
    let env = task_env(&etcd);
    let out = success(&run(
        &vars(&env),
        &["guest", "node-list", "ingestor", "--ports", "api,ssh"],
    ));
    assert_eq!(
        lines(&out),
        [
            "10.0.0.1:31010:31011",
            "10.0.0.2:31000:31001",
            "10.0.0.4:31020:31021"
        ]
    );
    let out = success(&run(&vars(&env), &["guest", "node-list", "ingestor"]));
    assert_eq!(lines(&out), ["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
}

#[tokio::test]
async fn node_list_matches_labels_as_a_subset() {
    let etcd = EtcdServer::start();
    write_ingestor(&etcd).await;
    let env = task_env(&etcd);
    let list = |labels: &str| {
        success(&run(
            &vars(&env),
            &[
                "guest",
                "node-list",
                "ingestor",
                "--ports",
                "api",
                "--labels",
                labels,
                "--minimum",
                "0",
            ],
        ))
    };
    assert_eq!(lines(&list("eu")), ["10.0.0.2:31000", "10.0.0.4:31020"]);
    assert_eq!(lines(&list("eu,dev")), ["10.0.0.2:31000"]);
    assert_eq!(lines(&list("dev")), ["10.0.0.1:31010", "10.0.0.2:31000"]);
    assert_eq!(list("us"), "");
}

#[tokio::test]
async fn node_list_below_the_minimum_fails_naming_the_service_and_the_counts() {
    let etcd = EtcdServer::start();
    write_ingestor(&etcd).await;
    let env = task_env(&etcd);
    let args = [
        "guest",
        "node-list",
        "ingestor",
        "--labels",
        "eu",
        "--minimum",
    ];
    let ok = success(&run(&vars(&env), &[&args[..], &["2"]].concat()));
    assert_eq!(lines(&ok).len(), 2);
    let output = run(&vars(&env), &[&args[..], &["3"]].concat());
    assert!(output.stdout.is_empty(), "no short list is printed");
    let stderr = failure(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "service `ingestor` has 2 serving tasks with labels eu (5 recorded), 3 wanted"
        ),
        "{stderr}"
    );
    // A service nobody deployed has no tasks: the default minimum of 1 is not met.
    let stderr = failure(&run(&vars(&env), &["guest", "node-list", "nothing"]));
    assert!(
        stderr.contains("service `nothing` has 0 serving tasks"),
        "{stderr}"
    );
}

#[tokio::test]
async fn node_list_json_gives_each_node_with_its_address_and_ports() {
    let etcd = EtcdServer::start();
    write_ingestor(&etcd).await;
    let env = task_env(&etcd);
    let out = success(&run(
        &vars(&env),
        &[
            "guest",
            "node-list",
            "ingestor",
            "--ports",
            "api",
            "--labels",
            "prod",
            "--json",
        ],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "address": "10.0.0.4:31020",
            "task_id": "ingestor_prod.d",
            "deployment": "prod",
            "host": "10.0.0.4",
            "ports": {
                "api": {"host": 31020, "container": 5000, "protocol": "tcp"},
                "ssh": {"host": 31021, "container": 22, "protocol": "tcp"}
            },
            "labels": ["prod", "eu"]
        }])
    );
}

#[tokio::test]
async fn node_list_wait_answers_once_the_minimum_serves() {
    let etcd = EtcdServer::start();
    let env = task_env(&etcd);
    let mut waiting = Background::start(theseus(
        &vars(&env),
        &[
            "guest",
            "node-list",
            "peers",
            "--minimum",
            "2",
            "--wait",
            "60s",
            "--ports",
            "gossip",
        ],
    ));
    let store = connect(etcd.endpoints(), PREFIX).await;
    put_task(
        &store,
        &task(
            "peers",
            "dev",
            "peers_dev.1",
            "10.0.0.1",
            &[("gossip", 31001, 7000)],
            &[],
        ),
    )
    .await;
    put_task(
        &store,
        &task(
            "peers",
            "dev",
            "peers_dev.2",
            "10.0.0.2",
            &[("gossip", 31002, 7000)],
            &[],
        ),
    )
    .await;
    let status = waiting.wait_exit();
    assert!(status.success(), "{status}: {}", waiting.stderr());
    assert_eq!(
        lines(&waiting.stdout()),
        ["10.0.0.1:31001", "10.0.0.2:31002"]
    );

    let stderr = failure(&run(
        &vars(&env),
        &[
            "guest",
            "node-list",
            "peers",
            "--minimum",
            "3",
            "--wait",
            "200ms",
        ],
    ));
    assert!(stderr.contains("2 serving tasks"), "{stderr}");
    assert!(stderr.contains("after waiting 200ms"), "{stderr}");
}

#[tokio::test]
async fn port_and_internal_address_come_from_the_task_record() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), PREFIX).await;
    let mut own = task(
        "ingestor",
        "dev",
        "ingestor_dev.a",
        "10.0.0.2",
        &[("api", 31005, 5000)],
        &[],
    );
    own.ip_addresses = vec!["172.17.0.5".into()];
    put_task(&store, &own).await;
    let env = task_env(&etcd);
    assert_eq!(
        success(&run(&vars(&env), &["guest", "port", "api"])),
        "5000\n"
    );
    assert_eq!(
        success(&run(&vars(&env), &["guest", "internal-address"])),
        "172.17.0.5\n"
    );
    let stderr = failure(&run(&vars(&env), &["guest", "port", "web"]));
    assert!(stderr.contains("no port `web`"), "{stderr}");
    assert!(stderr.contains("its ports are: `api`"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&success(&run(
        &vars(&env),
        &["guest", "port", "api", "--json"],
    )))
    .unwrap();
    assert_eq!(json, serde_json::json!({"name": "api", "port": 5000}));
}

#[tokio::test]
async fn before_its_record_exists_a_task_finds_its_port_in_its_spec_or_port_variable() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), PREFIX).await;
    let mut env = task_env(&etcd);

    // A Docker deployment listens on the spec's port inside its container.
    let dev = store.layout().desired(&"ingestor/dev".parse().unwrap());
    store
        .put(
            &dev,
            r#"{"image": "registry.local/flask", "ports": {"api": 5000, "ssh": 22}}"#,
        )
        .await
        .unwrap();
    assert_eq!(
        success(&run(&vars(&env), &["guest", "port", "ssh"])),
        "22\n"
    );
    let stderr = failure(&run(&vars(&env), &["guest", "port", "web"]));
    assert!(stderr.contains("its ports are: `api`, `ssh`"), "{stderr}");

    // A command deployment shares the agent's network: it listens on PORT_<NAME>.
    store
        .put(&dev, r#"{"cmd": "serve", "ports": {"api": 8080}}"#)
        .await
        .unwrap();
    let stderr = failure(&run(&vars(&env), &["guest", "port", "api"]));
    assert!(stderr.contains("PORT_API is not set"), "{stderr}");
    env.push(("PORT_API", "31999".into()));
    assert_eq!(
        success(&run(&vars(&env), &["guest", "port", "api"])),
        "31999\n"
    );

    // Without a record, the internal address is the one used to reach etcd (loopback here).
    assert_eq!(
        success(&run(&vars(&env), &["guest", "internal-address"])),
        "127.0.0.1\n"
    );
}

#[tokio::test]
async fn specific_calls_answer_host_and_both_ports_and_name_what_is_missing() {
    let etcd = EtcdServer::start();
    write_ingestor(&etcd).await;
    let env = task_env(&etcd);
    let ask = |args: &[&str]| run(&vars(&env), &[&["guest"][..], args].concat());
    assert_eq!(
        success(&ask(&["specific-host", "ingestor", "ingestor_prod.d"])),
        "10.0.0.4\n"
    );
    assert_eq!(
        success(&ask(&[
            "specific-port",
            "ingestor",
            "ingestor_prod.d",
            "api"
        ])),
        "31020\n"
    );
    assert_eq!(
        success(&ask(&[
            "specific-exposed-port",
            "ingestor",
            "ingestor_prod.d",
            "api"
        ])),
        "5000\n"
    );
    // Any recorded task answers, serving or not.
    assert_eq!(
        success(&ask(&["specific-host", "ingestor", "ingestor_dev.c"])),
        "10.0.0.3\n"
    );

    let stderr = failure(&ask(&["specific-host", "ingestor", "ingestor_dev.zzz"]));
    assert!(
        stderr.contains("no container `ingestor_dev.zzz`"),
        "{stderr}"
    );
    assert!(stderr.contains("`ingestor_dev.a`"), "{stderr}");
    let stderr = failure(&ask(&[
        "specific-port",
        "ingestor",
        "ingestor_dev.a",
        "web",
    ]));
    assert!(
        stderr.contains("container `ingestor_dev.a` of service `ingestor` has no port `web`"),
        "{stderr}"
    );
    let stderr = failure(&ask(&["specific-exposed-port", "nothing", "x", "api"]));
    assert!(
        stderr.contains("service `nothing` has no task recorded under /prod/observed/nothing/"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&success(&ask(&[
        "specific-port",
        "ingestor",
        "ingestor_dev.b",
        "ssh",
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!({"service": "ingestor", "container": "ingestor_dev.b", "port": "ssh", "host_port": 31011})
    );
}

#[test]
fn an_unreachable_etcd_fails_with_one_line_naming_the_endpoint() {
    let endpoint = format!("http://127.0.0.1:{}", theseus_testkit::free_port());
    let stderr = failure(&run(
        &[("ETCD_ENDPOINTS", &endpoint)],
        &["guest", "node-list", "ingestor", "--etcd-timeout", "1s"],
    ));
    assert!(stderr.contains(&endpoint), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn a_failed_json_call_prints_the_error_kind_and_message_on_stdout() {
    let etcd = EtcdServer::start();
    write_ingestor(&etcd).await;
    let env = task_env(&etcd);
    let output = run(
        &vars(&env),
        &[
            "guest",
            "specific-port",
            "ingestor",
            "ingestor_dev.a",
            "web",
            "--json",
        ],
    );
    let stderr = failure(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "no_such_port");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("container `ingestor_dev.a` of service `ingestor` has no port `web`"),
        "{message}"
    );
    assert_eq!(stderr.trim_end(), format!("error: {message}"));

    let output = run(&[], &["guest", "container", "--json"]);
    failure(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "missing_variable");

    let endpoint = format!("http://127.0.0.1:{}", theseus_testkit::free_port());
    let output = run(
        &[("ETCD_ENDPOINTS", &endpoint)],
        &["guest", "node-list", "x", "--etcd-timeout", "1s", "--json"],
    );
    failure(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "unreachable");
}

#[test]
fn install_python_writes_the_shim_and_keeps_a_changed_file_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("guestutils");
    let target_text = target.to_str().unwrap();
    let out = success(&run(&[], &["guest", "install-python", target_text]));
    assert_eq!(
        lines(&out),
        [
            format!("created {target_text}/guestutils.py"),
            format!("created {target_text}/watcher.py")
        ]
    );
    for file in theseus::guest::python::FILES {
        assert_eq!(
            std::fs::read_to_string(target.join(file.name)).unwrap(),
            file.contents
        );
    }
    std::fs::write(target.join("guestutils.py"), "# patched by hand\n").unwrap();
    let stderr = failure(&run(&[], &["guest", "install-python", target_text]));
    assert!(
        stderr.contains("guestutils.py exists and differs") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("guestutils.py")).unwrap(),
        "# patched by hand\n"
    );
    let out = success(&run(
        &[],
        &["guest", "install-python", target_text, "--force"],
    ));
    assert_eq!(
        lines(&out),
        [
            format!("replaced {target_text}/guestutils.py"),
            format!("unchanged {target_text}/watcher.py")
        ]
    );
}
