//! Reaching etcd: several endpoints and failover, credentials, TLS, and errors that name
//! the endpoints.

use std::time::Duration;

use theseus::store::{Error, EtcdConfig, Layout, Store};
use theseus_testkit::{EtcdCluster, EtcdOptions, EtcdServer, free_port, wait_until_async};

fn config(endpoints: Vec<String>) -> EtcdConfig {
    let mut config = EtcdConfig::new(endpoints);
    config.request_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    config
}

fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[tokio::test]
async fn connect_fails_naming_every_endpoint_when_none_answers() {
    let dead = [dead_endpoint(), dead_endpoint()];
    let error = Store::connect(config(dead.to_vec()), Layout::default())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Unreachable { .. }), "{message}");
    for endpoint in &dead {
        assert!(message.contains(endpoint.as_str()), "{message}");
    }
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn calls_succeed_when_the_first_endpoint_is_dead() {
    let etcd = EtcdServer::start();
    let endpoints = vec![dead_endpoint(), etcd.endpoint()];
    let store = Store::connect(config(endpoints), Layout::default())
        .await
        .unwrap();
    store.put("/k", "v").await.unwrap();
    assert_eq!(
        store.get("/k").await.unwrap().unwrap().value_str().unwrap(),
        "v"
    );
    let mut watch = store.watch("/");
    let first = tokio::time::timeout(
        Duration::from_secs(30),
        futures::StreamExt::next(&mut watch),
    )
    .await
    .unwrap();
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
}

#[tokio::test]
async fn bare_host_port_endpoints_are_accepted() {
    let etcd = EtcdServer::start();
    let bare = format!("127.0.0.1:{}", etcd.client_port());
    let store = Store::connect(config(vec![bare]), Layout::default())
        .await
        .unwrap();
    store.put("/k", "v").await.unwrap();
}

#[tokio::test]
async fn store_keeps_working_with_one_member_of_three_killed() {
    let mut cluster = EtcdCluster::start(3);
    let store = Store::connect(config(cluster.endpoints()), Layout::default())
        .await
        .unwrap();
    store.put("/k", "0").await.unwrap();
    for killed in 0..3 {
        cluster.kill_member(killed);
        let value = format!("{}", killed + 1);
        store.put("/k", value.as_str()).await.unwrap();
        let entry = store.get("/k").await.unwrap().unwrap();
        assert_eq!(entry.value_str().unwrap(), value);
        cluster.restart_member(killed);
    }
}

#[tokio::test]
async fn calls_fail_naming_every_member_when_quorum_is_lost_and_recover_after() {
    let mut cluster = EtcdCluster::start(3);
    let store = Store::connect(config(cluster.endpoints()), Layout::default())
        .await
        .unwrap();
    store.put("/k", "before").await.unwrap();
    cluster.kill_member(0);
    cluster.kill_member(1);
    let error = store.put("/k", "lost").await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Unreachable { .. }), "{message}");
    for endpoint in cluster.endpoints() {
        assert!(message.contains(&endpoint), "{message}");
    }
    cluster.restart_member(1);
    wait_until_async(Duration::from_secs(30), "the cluster serves again", || {
        let store = store.clone();
        async move { store.put("/k", "after").await.is_ok() }
    })
    .await;
    assert_eq!(
        store.get("/k").await.unwrap().unwrap().value_str().unwrap(),
        "after"
    );
}

#[tokio::test]
async fn user_and_password_authenticate_and_survive_an_etcd_restart() {
    let mut etcd = EtcdServer::start_with(EtcdOptions::new().with_root_password("s3cret"));
    let (user, password) = etcd.credentials().unwrap();
    let store = Store::connect(
        config(etcd.endpoints()).with_user(user, password),
        Layout::default(),
    )
    .await
    .unwrap();
    store.put("/k", "v").await.unwrap();
    // etcd keeps tokens in memory: after a restart the store must authenticate again.
    etcd.restart();
    store.put("/k", "w").await.unwrap();
    assert_eq!(
        store.get("/k").await.unwrap().unwrap().value_str().unwrap(),
        "w"
    );
}

#[tokio::test]
async fn a_wrong_password_is_reported_naming_the_endpoint_and_user() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_root_password("s3cret"));
    let error = Store::connect(
        config(etcd.endpoints()).with_user("root", "wrong"),
        Layout::default(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Auth { .. }), "{message}");
    assert!(message.contains(&etcd.endpoint()), "{message}");
    assert!(message.contains("`root`"), "{message}");
    assert!(!message.contains("wrong"), "the password leaked: {message}");
}

#[tokio::test]
async fn missing_credentials_on_an_etcd_with_auth_are_reported() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_root_password("s3cret"));
    // Status needs no user, so connecting works; the first read says what is missing.
    let store = Store::connect(config(etcd.endpoints()), Layout::default())
        .await
        .unwrap();
    let error = store.get("/k").await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::AuthRequired { .. }), "{message}");
    assert!(message.contains(&etcd.endpoint()), "{message}");
}

#[tokio::test]
async fn tls_with_a_ca_and_a_client_certificate_works() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_tls());
    let tls = etcd.tls().unwrap();
    let store = Store::connect(
        config(etcd.endpoints())
            .with_ca(&tls.ca_cert)
            .with_client_cert(&tls.client_cert, &tls.client_key),
        Layout::default(),
    )
    .await
    .unwrap();
    store.put("/k", "v").await.unwrap();
    assert_eq!(
        store.get("/k").await.unwrap().unwrap().value_str().unwrap(),
        "v"
    );
}

#[tokio::test]
async fn tls_without_the_client_certificate_fails_naming_the_endpoint() {
    let etcd = EtcdServer::start_with(EtcdOptions::new().with_tls());
    let tls = etcd.tls().unwrap();
    let error = Store::connect(
        config(etcd.endpoints()).with_ca(&tls.ca_cert),
        Layout::default(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Unreachable { .. }), "{message}");
    assert!(message.contains(&etcd.endpoint()), "{message}");
}

#[tokio::test]
async fn raw_clients_reach_etcd_with_the_first_endpoint_dead() {
    let etcd = EtcdServer::start();
    let endpoints = vec![dead_endpoint(), etcd.endpoint()];
    let store = Store::connect(config(endpoints), Layout::default())
        .await
        .unwrap();
    let mut live = store.live_client().await.unwrap();
    let lease = live.lease_grant(30, None).await.unwrap();
    assert!(lease.ttl() > 0);
    let mut balanced = store.client();
    let granted = tokio::time::timeout(Duration::from_secs(10), balanced.lease_grant(30, None))
        .await
        .expect("the balanced client answers")
        .unwrap();
    assert!(granted.ttl() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_until_waits_for_etcd_and_reports_each_failed_attempt() {
    let mut etcd = EtcdServer::start();
    etcd.kill();
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let connecting = tokio::spawn({
        let failures = std::sync::Arc::clone(&failures);
        let config = config(etcd.endpoints());
        let stop = stop.clone();
        async move {
            Store::connect_until(
                &config,
                &Layout::default(),
                Duration::from_millis(200),
                &stop,
                |_| {
                    failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                },
            )
            .await
        }
    });
    wait_until_async(
        Duration::from_secs(60),
        "a failed attempt is reported",
        || {
            let failures = std::sync::Arc::clone(&failures);
            async move { failures.load(std::sync::atomic::Ordering::SeqCst) > 0 }
        },
    )
    .await;
    etcd.restart();
    let store = connecting
        .await
        .unwrap()
        .expect("connected once etcd answers");
    store.put("/connected", "yes").await.unwrap();
}

#[tokio::test]
async fn connect_until_gives_up_when_stopped() {
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    let store = Store::connect_until(
        &config(vec![dead_endpoint()]),
        &Layout::default(),
        Duration::from_millis(200),
        &stop,
        |_| {},
    )
    .await;
    assert!(store.is_none());
}
