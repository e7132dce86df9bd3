//! The dashboard in a real browser: headless Chromium (Debian's `chromium`), driven through
//! `chromedriver` (Debian's `chromium-driver`) by Selenium's Python bindings, installed from
//! PyPI into a virtualenv under `target/`. etcd, localmarathon (running tasks as processes)
//! and the controller, which serves the pages, start here on free loopback ports.
//!
//! `tests/browser/drive.py` does what a person would: it finds the rows, writes a change
//! with `etcdctl` and sees the row change without a reload, opens a deployment and sees its
//! tasks, sees the page say disconnected while etcd is down and live again once it is back,
//! and checks that a label holding `<script>` is shown as text. It saves a screenshot of
//! every page in `target/dashboard-screenshots/`.
//!
//! `tests/browser/actions.py` runs against a controller started with the dashboard's
//! actions: it scales, pauses, resumes and undoes a deployment from its page and sees
//! `/desired` and the page change, compares two recorded revisions, and sees an action based
//! on a revision someone else has since replaced refused, with nothing overwritten.
//! `drive.py` checks that without them the page offers no action and a POST is refused.
//! `workstation.py` opens the controller page of a dashboard served beside no controller
//! (what `theseus dashboard` runs), which says what it can know and where the rest is shown.
//!
//! Without `chromium` or `chromedriver` (or `$CHROMIUM_BIN` / `$CHROMEDRIVER_BIN`) the test
//! prints why and passes without running; `scripts/dependencies.sh` installs both.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use localmarathon::ExecutorKind;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use theseus::api::{DeploymentKey, DeploymentStatus, Phase};
use theseus::marathon::MarathonConfig;
use theseus::store::{EtcdConfig, Layout, Store};
use theseus_controllers::controller::{Controller, ControllerConfig};
use theseus_controllers::runtime::queue::Backoff;
use theseus_dashboard::Actions;
use theseus_testkit::{EtcdServer, wait_until_async};

/// How long the stack may take to run what it is asked to.
const DEADLINE: Duration = Duration::from_secs(60);
/// The Selenium release the driver script is written for.
const SELENIUM: &str = "selenium==4.27.1";

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The path of `name` from `$variable`, else from `PATH`; `None` when it is not there.
fn program(variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The python of a virtualenv with Selenium (built under `target/` the first time).
fn selenium_python() -> PathBuf {
    theseus_testkit::python::python_with("dashboard-selenium-venv", SELENIUM, "import selenium")
}

/// etcd, localmarathon on a runtime of its own, and the controller; all stop when dropped.
struct Stack {
    controller: Option<Controller>,
    marathon: Option<Arc<localmarathon::Handle>>,
    runtime: Option<tokio::runtime::Runtime>,
    store: Store,
    etcd: EtcdServer,
}

impl Stack {
    async fn start(actions: Actions) -> Stack {
        let etcd = EtcdServer::start();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("localmarathon")
            .enable_all()
            .build()
            .unwrap();
        let marathon = runtime
            .spawn(async {
                localmarathon::LocalMarathon::builder()
                    .executor(ExecutorKind::Process)
                    .start()
                    .await
            })
            .await
            .unwrap()
            .expect("localmarathon starts");
        let mut etcd_config = EtcdConfig::new(etcd.endpoints());
        etcd_config.request_timeout = Duration::from_secs(2);
        etcd_config.connect_timeout = Duration::from_secs(1);
        let store = Store::connect(etcd_config.clone(), Layout::default())
            .await
            .unwrap();
        let mut marathon_config = MarathonConfig::new(vec![marathon.url().parse().unwrap()]);
        marathon_config.connect_timeout = Duration::from_secs(1);
        marathon_config.request_timeout = Duration::from_secs(5);
        let mut config = ControllerConfig::new(etcd_config, marathon_config);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.workers = 4;
        config.lease_ttl = Duration::from_secs(2);
        config.dashboard_actions = actions;
        config.drain = Duration::from_secs(5);
        config.backoff = Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_secs(1),
            jitter: true,
        };
        let controller = Controller::start(config).await.unwrap();
        Stack {
            controller: Some(controller),
            marathon: Some(Arc::new(marathon)),
            runtime: Some(runtime),
            store,
            etcd,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.controller.as_ref().unwrap().http_addr())
    }

    async fn put_spec(&self, key: &str, spec: serde_json::Value) {
        let key: DeploymentKey = key.parse().unwrap();
        self.store
            .put(&self.store.layout().desired(&key), spec.to_string())
            .await
            .unwrap();
    }

    async fn wait_running(&self, key: &str, instances: u32) {
        let deployment: DeploymentKey = key.parse().unwrap();
        let status_key = self.store.layout().status(&deployment);
        wait_until_async(DEADLINE, &format!("{key} runs {instances}"), || async {
            self.store
                .get_json::<DeploymentStatus>(&status_key)
                .await
                .ok()
                .flatten()
                .is_some_and(|(status, _)| {
                    status.phase == Phase::Running && status.instances.running == instances
                })
        })
        .await;
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        drop(self.controller.take());
        drop(self.marathon.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The driver script in a process group of its own, so chromedriver and Chromium, which it
/// starts, are killed with it when the test ends, also when it fails.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Chromium, chromedriver and a python with Selenium; `None` (after saying why) when the
/// browser is not installed.
async fn browser() -> Option<Browser> {
    let (Some(chromium), Some(chromedriver)) = (
        program("CHROMIUM_BIN", "chromium"),
        program("CHROMEDRIVER_BIN", "chromedriver"),
    ) else {
        println!(
            "skipped: chromium and chromedriver are needed (Debian: apt-get install chromium \
             chromium-driver; scripts/dependencies.sh installs them)"
        );
        return None;
    };
    let python = tokio::task::spawn_blocking(selenium_python).await.unwrap();
    let screenshots = workspace_target().join("dashboard-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    Some(Browser {
        chromium,
        chromedriver,
        python,
        screenshots,
    })
}

/// What a driver script needs.
struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
    python: PathBuf,
    screenshots: PathBuf,
}

impl Browser {
    /// Runs `tests/browser/<script>` against the dashboard at `url`, answering its requests
    /// about `etcd`, and fails the test unless it passes.
    fn drive(&self, script: &str, url: &str, etcd: &mut EtcdServer) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/browser")
            .join(script);
        let mut command = Command::new(&self.python);
        command
            .arg(path)
            .arg(url)
            .arg(&self.screenshots)
            .arg(etcd.endpoint())
            .env("CHROMIUM_BIN", &self.chromium)
            .env("CHROMEDRIVER_BIN", &self.chromedriver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0);
        let mut driver = Driver(command.spawn().expect("the driver script starts"));
        let mut answers = driver.0.stdin.take().unwrap();
        let requests = BufReader::new(driver.0.stdout.take().unwrap());
        // The script's requests are answered on this thread; the controller and
        // localmarathon go on running on the runtime's other threads meanwhile.
        let passed = tokio::task::block_in_place(|| {
            for line in requests.lines() {
                let line = line.expect("the script's output is text");
                println!("{line}");
                match line.as_str() {
                    "@kill-etcd" => etcd.kill(),
                    "@restart-etcd" => etcd.restart(),
                    "@passed" => return true,
                    _ => continue,
                }
                writeln!(answers, "done").unwrap();
            }
            false
        });
        let status = driver.0.wait().unwrap();
        assert!(
            passed && status.success(),
            "{script} failed ({status}); see its output above and the screenshots in {}",
            self.screenshots.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_fleet_live_in_a_real_browser() {
    let Some(browser) = browser().await else {
        return;
    };
    let mut stack = Stack::start(Actions::Disabled).await;
    stack
        .put_spec(
            "web/blue",
            json!({"cmd": "sleep 600", "ports": {"http": 8080}, "instances": 2,
                   "labels": ["blue"], "environment": {"API_TOKEN": "s3cret"}}),
        )
        .await;
    stack
        .put_spec(
            "web/xss",
            json!({"cmd": "sleep 600", "labels": ["<script>document.title='pwned'</script>"]}),
        )
        .await;
    stack.wait_running("web/blue", 2).await;
    let url = stack.url();
    browser.drive("drive.py", &url, &mut stack.etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_actions_edit_desired_on_the_revision_the_page_showed() {
    let Some(browser) = browser().await else {
        return;
    };
    let mut stack = Stack::start(Actions::Enabled).await;
    stack
        .put_spec(
            "web/app",
            json!({"cmd": "sleep 600", "instances": 1, "labels": ["app"],
                   "environment": {"DB_PASSWORD": "hunter2"}}),
        )
        .await;
    stack.wait_running("web/app", 1).await;
    let url = stack.url();
    browser.drive("actions.py", &url, &mut stack.etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_beside_no_controller_says_what_it_cannot_know() {
    let Some(browser) = browser().await else {
        return;
    };
    let mut etcd = EtcdServer::start();
    let stop = tokio_util::sync::CancellationToken::new();
    // What `theseus dashboard` runs: the pages alone, from a watch of etcd.
    let dashboard = theseus_dashboard::Dashboard::start(
        EtcdConfig::new(etcd.endpoints()),
        Layout::default(),
        None,
        stop.child_token(),
    );
    let (bound, address) = tokio::sync::oneshot::channel();
    let serving = tokio::spawn({
        let stop = stop.clone();
        async move {
            dashboard
                .serve("127.0.0.1:0".parse().unwrap(), stop, |addr| {
                    let _ = bound.send(addr);
                })
                .await
                .unwrap();
            dashboard.shutdown().await;
        }
    });
    let url = format!("http://{}", address.await.unwrap());
    browser.drive("workstation.py", &url, &mut etcd);
    stop.cancel();
    serving.await.unwrap();
}
