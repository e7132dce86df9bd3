//! `theseus watch` through the binary: the hook's environment and stdin, failing hooks,
//! `--once`, shutdown on SIGTERM, and an etcd that is not up yet.

mod task_harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use task_harness::{Background, connect, delete_task, put_task, run, success, task, theseus};
use theseus::guest::watcher::Change;
use theseus_testkit::{EtcdServer, wait_until};

/// Records every run in `$RUNS/<service>/<n>`: THESEUS_DELTA on the first line, stdin after.
/// Runs of one service never overlap, so counting the files gives a free number.
const RECORDING_HOOK: &str = r#"d="$RUNS/$THESEUS_SERVICE"; mkdir -p "$d"; n=$(ls "$d" | wc -l); { echo "$THESEUS_SERVICE $THESEUS_DELTA"; cat; } > "$d/.tmp"; mv "$d/.tmp" "$d/$(printf %04d "$n")""#;

/// The runs recorded for `service`, in order: (the environment line, the stdin document).
fn runs(dir: &Path, service: &str) -> Vec<(String, Change)> {
    let Ok(entries) = std::fs::read_dir(dir.join(service)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let (env, document) = text.split_once('\n').unwrap();
            (env.to_owned(), serde_json::from_str(document).unwrap())
        })
        .collect()
}

fn wait_for_runs(dir: &Path, service: &str, count: usize) -> Vec<(String, Change)> {
    wait_until(
        task_harness::DEADLINE,
        &format!("{count} runs of the hook for {service}"),
        || runs(dir, service).len() >= count,
    );
    runs(dir, service)
}

fn ids(nodes: &[theseus::guest::Node]) -> Vec<String> {
    nodes.iter().map(|n| n.task_id.clone()).collect()
}

#[tokio::test]
async fn the_hook_gets_the_service_and_delta_in_its_environment_and_the_change_on_stdin() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    let a = task(
        "web",
        "dev",
        "web_dev.a",
        "10.0.0.1",
        &[("http", 31080, 80)],
        &["dev"],
    );
    put_task(&store, &a).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = etcd.endpoint();
    let runs_dir = dir.path().to_str().unwrap();
    // The old watcher's WATCHES variable names the services.
    let _watch = Background::start(theseus(
        &[
            ("ETCD_ENDPOINTS", &endpoint),
            ("WATCHES", "web,db"),
            ("RUNS", runs_dir),
        ],
        &["watch", "--exec", RECORDING_HOOK, "--debounce", "20ms"],
    ));
    let first = wait_for_runs(dir.path(), "web", 1);
    assert_eq!(first[0].0, "web 1");
    let change = &first[0].1;
    assert_eq!(change.service, "web");
    assert_eq!(ids(&change.added), ["web_dev.a"]);
    assert_eq!(change.added[0].ports["http"].host, 31080);
    assert_eq!(change.added[0].ports["http"].container, 80);
    assert_eq!(change.added[0].labels, ["dev"]);
    let db = wait_for_runs(dir.path(), "db", 1);
    assert_eq!(
        db[0].0, "db 0",
        "a service that does not exist yet is empty"
    );

    let b = task(
        "web",
        "dev",
        "web_dev.b",
        "10.0.0.2",
        &[("http", 31081, 80)],
        &["dev"],
    );
    let revision = put_task(&store, &b).await;
    let second = &wait_for_runs(dir.path(), "web", 2)[1];
    assert_eq!(second.0, "web 1");
    assert_eq!(ids(&second.1.added), ["web_dev.b"]);
    assert_eq!(second.1.revision, revision);
    assert_eq!(ids(&second.1.nodes), ["web_dev.a", "web_dev.b"]);

    delete_task(&store, &a).await;
    delete_task(&store, &b).await;
    let gone = wait_for_runs(dir.path(), "web", 3);
    let last = gone.last().unwrap();
    assert!(last.1.nodes.is_empty(), "{:?}", last.1);
    // Both deletions in one debounced run, or one run each: the deltas add up.
    let total: i64 = gone[2..]
        .iter()
        .map(|(env, _)| env.split(' ').nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, -2);
}

#[tokio::test]
async fn a_failing_hook_is_reported_with_its_status_and_stderr_and_runs_again_on_the_next_change() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    let a = task("web", "dev", "web_dev.a", "10.0.0.1", &[], &[]);
    put_task(&store, &a).await;
    let endpoint = etcd.endpoint();
    let watch = Background::start(theseus(
        &[("ETCD_ENDPOINTS", &endpoint)],
        &[
            "watch",
            "--services",
            "web",
            "--exec",
            "echo \"cannot reload: delta $THESEUS_DELTA\" >&2; exit 3",
            "--debounce",
            "20ms",
        ],
    ));
    watch.wait_for_stderr("the first failure is reported", |stderr| {
        stderr.contains("exit status 3") && stderr.contains("cannot reload: delta 1")
    });
    delete_task(&store, &a).await;
    watch.wait_for_stderr("the next change runs the hook again", |stderr| {
        stderr.contains("cannot reload: delta -1")
    });
    watch.wait_for_stderr("the second failure is reported", |stderr| {
        stderr
            .lines()
            .filter(|line| line.contains("hook failed (exit status 3)"))
            .count()
            == 2
    });
    let report = watch
        .stderr()
        .lines()
        .rfind(|line| line.contains("hook failed"))
        .unwrap()
        .to_owned();
    assert!(report.contains("service=\"web\""), "{report}");
    assert!(
        report.contains("cannot reload: delta -1"),
        "stderr tail: {report}"
    );
}

#[tokio::test]
async fn watch_once_prints_the_current_endpoints_and_exits() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "/p").await;
    put_task(
        &store,
        &task(
            "web",
            "dev",
            "web_dev.a",
            "10.0.0.1",
            &[("http", 31080, 80)],
            &["dev"],
        ),
    )
    .await;
    let mut staging = task("web", "dev", "web_dev.b", "10.0.0.2", &[], &[]);
    staging.state = theseus::marathon::task::TaskState::Staging;
    put_task(&store, &staging).await;
    let endpoint = etcd.endpoint();
    let env = [
        ("ETCD_ENDPOINTS", endpoint.as_str()),
        ("THESEUS_PREFIX", "/p"),
    ];
    let table = success(&run(&env, &["watch", "--services", "web,db", "--once"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["SERVICE", "DEPLOYMENT", "TASK", "HOST", "PORTS", "LABELS"]
    );
    assert_eq!(rows[1], ["db", "-", "(none", "serving)"]);
    assert_eq!(
        rows[2],
        [
            "web",
            "dev",
            "web_dev.a",
            "10.0.0.1",
            "http=31080->80",
            "dev"
        ]
    );
    assert_eq!(rows.len(), 3);

    let json = success(&run(
        &env,
        &["watch", "--services", "web,db", "--once", "-o", "json"],
    ));
    let changes: Vec<Change> = serde_json::from_str(&json).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].service, "web");
    assert_eq!(changes[1].delta, 1);
    assert_eq!(changes[1].added, changes[1].nodes);
    assert!(changes[0].nodes.is_empty());
}

#[tokio::test]
async fn sigterm_terminates_a_running_hook_and_the_watcher_exits_cleanly() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    put_task(
        &store,
        &task("web", "dev", "web_dev.a", "10.0.0.1", &[], &[]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sleeper_file = dir.path().join("sleeper");
    let finished_file = dir.path().join("finished");
    let hook = format!(
        "sleep 600 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait; touch {1}",
        sleeper_file.display(),
        finished_file.display()
    );
    let endpoint = etcd.endpoint();
    let mut watch = Background::start(theseus(
        &[("ETCD_ENDPOINTS", &endpoint)],
        &[
            "watch",
            "--services",
            "web",
            "--exec",
            &hook,
            "--stop-grace",
            "10s",
        ],
    ));
    wait_until(task_harness::DEADLINE, "the hook runs", || {
        sleeper_file.exists()
    });
    let sleeper: i32 = std::fs::read_to_string(&sleeper_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    watch.signal(Signal::SIGTERM);
    let status = watch.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", watch.stderr());
    let stderr = watch.stderr();
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("hook terminated"), "{stderr}");
    assert!(!finished_file.exists(), "the hook was not left to finish");
    wait_until(Duration::from_secs(10), "the hook's child is gone", || {
        // Gone, or a zombie waiting for init to reap it.
        std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
            .map(|stat| stat.contains(") Z "))
            .unwrap_or(true)
    });
}

#[tokio::test]
async fn the_watcher_waits_for_an_etcd_that_is_not_up_yet() {
    let mut etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    put_task(
        &store,
        &task("web", "dev", "web_dev.a", "10.0.0.1", &[], &[]),
    )
    .await;
    drop(store);
    etcd.kill();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = etcd.endpoint();
    let runs_dir = dir.path().to_str().unwrap();
    let watch = Background::start(theseus(
        &[("ETCD_ENDPOINTS", &endpoint), ("RUNS", runs_dir)],
        &[
            "watch",
            "--services",
            "web",
            "--exec",
            RECORDING_HOOK,
            "--etcd-timeout",
            "1s",
        ],
    ));
    watch.wait_for_stderr("the watcher says it waits", |stderr| {
        stderr.contains("waiting for etcd") && stderr.contains(&endpoint)
    });
    etcd.restart();
    let first = wait_for_runs(dir.path(), "web", 1);
    assert_eq!(first[0].0, "web 1");
}

/// The changes a `--json-lines` watcher printed so far, one per line.
fn printed_changes(watch: &Background) -> Vec<Change> {
    watch
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test]
async fn json_lines_prints_every_change_as_one_json_object_per_line() {
    let etcd = EtcdServer::start();
    let store = connect(etcd.endpoints(), "").await;
    let a = task(
        "web",
        "dev",
        "web_dev.a",
        "10.0.0.1",
        &[("http", 31080, 80)],
        &[],
    );
    put_task(&store, &a).await;
    let endpoint = etcd.endpoint();
    let watch = Background::start(theseus(
        &[("ETCD_ENDPOINTS", &endpoint), ("WATCHES", "web,db")],
        &["watch", "--json-lines", "--debounce", "20ms"],
    ));
    let wait_for = |what: &str, done: &dyn Fn(&[Change]) -> bool| {
        wait_until(task_harness::DEADLINE, what, || {
            done(&printed_changes(&watch))
        });
        printed_changes(&watch)
    };
    let first = wait_for("both services' first changes are printed", &|c| {
        c.len() >= 2
    });
    let of = |changes: &[Change], service: &str| -> Vec<Change> {
        changes
            .iter()
            .filter(|c| c.service == service)
            .cloned()
            .collect()
    };
    assert_eq!(of(&first, "db")[0].delta, 0);
    assert_eq!(of(&first, "web")[0].delta, 1);
    assert_eq!(ids(&of(&first, "web")[0].added), ["web_dev.a"]);

    delete_task(&store, &a).await;
    let all = wait_for("the removal is printed", &|c| c.len() >= 3);
    let web = of(&all, "web");
    assert_eq!(web.len(), 2, "{all:?}");
    assert_eq!(web[1].delta, -1);
    assert_eq!(ids(&web[1].removed), ["web_dev.a"]);
    assert!(
        watch.stderr().lines().all(|line| !line.starts_with('{')),
        "logs stay on stderr"
    );
}

#[tokio::test]
async fn a_json_lines_watcher_whose_reader_is_gone_exits_non_zero() {
    let etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let mut command = theseus(
        &[("ETCD_ENDPOINTS", &endpoint)],
        &["watch", "--services", "web", "--json-lines"],
    );
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: the first change (at start) cannot be written.
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + task_harness::DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the watcher did not exit after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stdout was closed"), "{stderr}");
}
