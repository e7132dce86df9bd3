//! The dashboard's HTTP surface as `theseus dashboard` serves it (no controller beside it),
//! against a real etcd: the write route exists only with actions, refuses cross-site
//! requests, and writes only on the revision it is given; the controller page says what a
//! process that reaches only etcd can know.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use theseus::store::{EtcdConfig, Layout, Store};
use theseus_dashboard::{Actions, Dashboard};
use theseus_testkit::{EtcdServer, wait_until_async};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

/// A dashboard serving on a free port until `stop`, and its address.
async fn serve(etcd: &EtcdServer, actions: Actions, stop: &CancellationToken) -> SocketAddr {
    let dashboard = Dashboard::start(
        EtcdConfig::new(etcd.endpoints()),
        Layout::default(),
        None,
        stop.child_token(),
    )
    .with_actions(actions);
    let (bound, address) = tokio::sync::oneshot::channel();
    let stop = stop.clone();
    tokio::spawn(async move {
        dashboard
            .serve("127.0.0.1:0".parse().unwrap(), stop, |addr| {
                let _ = bound.send(addr);
            })
            .await
            .unwrap();
        dashboard.shutdown().await;
    });
    address.await.unwrap()
}

async fn post(addr: SocketAddr, body: Value, header: bool) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/api/deployments/web/dev/actions"))
        .json(&body);
    if header {
        request = request.header("X-Theseus-Dashboard", "action");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn controller_page(addr: SocketAddr) -> Value {
    reqwest::get(format!("http://{addr}/api/controller"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_actions_there_is_no_write_route() {
    let etcd = EtcdServer::start();
    let stop = CancellationToken::new();
    let addr = serve(&etcd, Actions::Disabled, &stop).await;
    let (status, _) = post(addr, json!({"action": "pause", "revision": 1}), true).await;
    assert!(status == 404 || status == 405, "{status}");

    // A process that reaches only etcd says what it knows of etcd, and no more.
    wait_until_async(DEADLINE, "the page knows whether etcd answers", || async {
        controller_page(addr).await["etcd"]["revision"].is_i64()
    })
    .await;
    let page = controller_page(addr).await;
    assert_eq!(page["controller"], false);
    assert_eq!(page["facts"], json!([]));
    stop.cancel();
}

#[tokio::test]
async fn actions_write_only_on_the_revision_shown_and_only_for_the_dashboards_pages() {
    let etcd = EtcdServer::start();
    let store = Store::connect(EtcdConfig::new(etcd.endpoints()), Layout::default())
        .await
        .unwrap();
    let shown = store
        .put("/desired/web/dev", r#"{"cmd": "run"}"#)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let addr = serve(&etcd, Actions::Enabled, &stop).await;
    let scale = json!({"action": "scale", "instances": 2, "revision": shown});

    let (status, answer) = post(addr, scale.clone(), false).await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = post(addr, json!({"action": "scale", "revision": shown}), true).await;
    assert_eq!(status, 400, "scale needs instances");
    // Until it is connected the dashboard answers 503; then a revision nobody showed is a
    // conflict.
    wait_until_async(DEADLINE, "the dashboard is connected to etcd", || async {
        post(addr, json!({"action": "pause", "revision": 0}), true)
            .await
            .0
            == 409
    })
    .await;

    let concurrent = store
        .put("/desired/web/dev", r#"{"cmd": "run", "instances": 4}"#)
        .await
        .unwrap();
    let (status, answer) = post(addr, scale, true).await;
    assert_eq!((status, &answer["outcome"]), (409, &json!("conflict")));
    assert_eq!(answer["revision"], concurrent);
    let stored = store.get("/desired/web/dev").await.unwrap().unwrap();
    assert_eq!(
        stored.value_str().unwrap(),
        r#"{"cmd": "run", "instances": 4}"#
    );

    let scale = json!({"action": "scale", "instances": 2, "revision": concurrent});
    let (status, answer) = post(addr, scale, true).await;
    assert_eq!(
        (status, &answer["outcome"]),
        (200, &json!("written")),
        "{answer}"
    );
    let stored = store.get("/desired/web/dev").await.unwrap().unwrap();
    assert_eq!(answer["revision"], stored.mod_revision);
    assert_eq!(
        serde_json::from_slice::<Value>(&stored.value).unwrap(),
        json!({"cmd": "run", "instances": 2})
    );
    stop.cancel();
}
