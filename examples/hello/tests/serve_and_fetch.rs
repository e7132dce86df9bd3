//! The example server says which task answered, and the fetcher prints it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fetch(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_theseus-hello"))
        .args(["fetch", url, "--timeout-seconds", "2"])
        .output()
        .unwrap()
}

#[test]
fn the_server_answers_with_its_own_task_id_on_its_named_port() {
    let port = free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_theseus-hello"))
            .args(["serve", "--port-name", "web-ui"])
            .env("HOST", "127.0.0.1")
            .env("PORT_WEB_UI", port.to_string())
            .env("MESOS_TASK_ID", "hello_blue.1234")
            .env("SERVICE_NAME", "hello")
            .env("DEPLOYMENT_NAME", "blue")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    let output = loop {
        let output = fetch(&url);
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["task_id"], "hello_blue.1234");
    assert_eq!(answer["deployment"], "blue");
    assert_eq!(answer["port"], port);
}

#[test]
fn fetching_from_nothing_fails_naming_the_url() {
    let url = format!("http://127.0.0.1:{}/", free_port());
    let output = fetch(&url);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&url));
}

#[test]
fn serving_outside_marathon_says_what_is_missing() {
    let output = Command::new(env!("CARGO_BIN_EXE_theseus-hello"))
        .arg("serve")
        .env_remove("PORT_HTTP")
        .env_remove("PORT0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("neither PORT_HTTP nor PORT0 is set"));
}
