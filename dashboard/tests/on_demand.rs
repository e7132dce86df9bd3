//! The dashboard watches etcd only while someone looks, against a real etcd: with no
//! viewer it holds no watch and no picture; a first read starts the one watch and the
//! pages become live with what etcd holds; once the last page has gone and the idle
//! timeout has passed, the watch stops and the picture is dropped; a page that comes back
//! gets what etcd holds now.

use std::net::SocketAddr;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde_json::Value;
use theseus::store::{EtcdConfig, Layout, Store};
use theseus_dashboard::Dashboard;
use theseus_dashboard::demand::DemandStatus;
use theseus_dashboard::feed::Picture;
use theseus_testkit::{EtcdServer, wait_until_async};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);
/// Short, so the test sees the watch stop; long enough that a page's own requests keep it.
const IDLE: Duration = Duration::from_millis(500);

/// A dashboard with a short idle timeout, served on a free port until `stop`.
struct Served {
    addr: SocketAddr,
    picture: std::sync::Arc<Picture>,
    demand: std::sync::Arc<std::sync::Mutex<Option<DemandStatus>>>,
}

/// Records the demand the dashboard reports, as a controller's metrics do.
struct Recorder(std::sync::Arc<std::sync::Mutex<Option<DemandStatus>>>);

impl theseus_dashboard::demand::DemandObserver for Recorder {
    fn demand_changed(&self, status: DemandStatus) {
        *self.0.lock().unwrap() = Some(status);
    }
}

async fn serve(etcd: &EtcdServer, stop: &CancellationToken) -> Served {
    let demand = std::sync::Arc::default();
    let dashboard = Dashboard::start(
        EtcdConfig::new(etcd.endpoints()),
        Layout::default(),
        None,
        stop.child_token(),
    )
    .with_idle_timeout(IDLE)
    .with_demand_observer(std::sync::Arc::new(Recorder(std::sync::Arc::clone(
        &demand,
    ))));
    let picture = std::sync::Arc::clone(dashboard.picture());
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
    Served {
        addr: address.await.unwrap(),
        picture,
        demand,
    }
}

impl Served {
    fn demand(&self) -> DemandStatus {
        self.demand.lock().unwrap().expect("told at once")
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The watches open on etcd, as etcd counts them.
async fn watches(etcd: &EtcdServer) -> u64 {
    let text = reqwest::get(etcd.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .expect("etcd counts its watchers")
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}

/// A page's event stream: `(event name, data)` as a browser's `EventSource` reads them.
async fn open_page(addr: SocketAddr) -> impl Stream<Item = (String, Value)> + Unpin {
    let response = reqwest::get(format!("http://{addr}/api/events?view=fleet"))
        .await
        .unwrap();
    Box::pin(response.bytes_stream().eventsource().map(|event| {
        let event = event.unwrap();
        (event.event, serde_json::from_str(&event.data).unwrap())
    }))
}

/// Reads the page's events until its picture is live and has a row `id` at `revision`.
async fn until_live_with(
    page: &mut (impl Stream<Item = (String, Value)> + Unpin),
    id: &str,
    revision: i64,
) {
    let mut rows: std::collections::BTreeMap<String, Value> = Default::default();
    let mut live = false;
    tokio::time::timeout(DEADLINE, async {
        loop {
            let (name, data) = page.next().await.expect("the stream stays open");
            let connection = data.get("connection").unwrap_or(&data);
            live = connection["link"] == "live";
            match name.as_str() {
                "snapshot" => {
                    rows = data["rows"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|row| (row["id"].as_str().unwrap().to_owned(), row.clone()))
                        .collect();
                }
                "rows" => {
                    for row in data["upsert"].as_array().unwrap() {
                        rows.insert(row["id"].as_str().unwrap().to_owned(), row.clone());
                    }
                }
                _ => {}
            }
            if live
                && rows
                    .get(id)
                    .is_some_and(|row| row["desired_revision"] == revision)
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the page did not show {id} at {revision} live ({live})"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_watches_etcd_only_while_someone_looks() {
    let etcd = EtcdServer::start();
    let store = Store::connect(EtcdConfig::new(etcd.endpoints()), Layout::default())
        .await
        .unwrap();
    let first = store
        .put("/desired/web/blue", r#"{"cmd": "run"}"#)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let served = serve(&etcd, &stop).await;

    // (a) Nobody looks: no watch on etcd, no picture, no connection.
    let idle = DemandStatus {
        viewers: 0,
        watching: false,
    };
    assert_eq!(served.demand(), idle);
    assert_eq!(watches(&etcd).await, 0);
    assert!(served.picture.model().deployments().is_empty());
    assert!(served.picture.store().is_none());

    // (b) A first read starts the one watch; its answer is not taken for current, and the
    // picture becomes live with what etcd holds.
    let fleet = served.get("/api/fleet").await;
    assert!(served.demand().watching);
    if fleet["connection"]["link"] != "live" {
        assert_eq!(fleet["rows"], serde_json::json!([]), "{fleet}");
    }
    let mut page = open_page(served.addr).await;
    until_live_with(&mut page, "web/blue", first).await;
    assert_eq!(served.demand().viewers, 1);
    // One watch per prefix (`/desired`, `/observed`, the election), however many pages.
    let mut second_page = open_page(served.addr).await;
    until_live_with(&mut second_page, "web/blue", first).await;
    assert_eq!(served.demand().viewers, 2);
    assert_eq!(watches(&etcd).await, 3);
    // Live: a change reaches both open pages.
    let changed = store
        .put("/desired/web/blue", r#"{"cmd": "run", "instances": 2}"#)
        .await
        .unwrap();
    until_live_with(&mut page, "web/blue", changed).await;
    until_live_with(&mut second_page, "web/blue", changed).await;

    // (c) The last page goes; after the idle timeout the watch stops and the picture is
    // dropped.
    drop(page);
    drop(second_page);
    wait_until_async(DEADLINE, "the dashboard stops watching", || async {
        served.demand() == idle
    })
    .await;
    assert!(served.picture.model().deployments().is_empty());
    assert!(served.picture.store().is_none());
    let link = served.picture.connection().link;
    assert_eq!(link, theseus_dashboard::feed::Link::Idle);
    wait_until_async(DEADLINE, "etcd has no watch open", || async {
        watches(&etcd).await == 0
    })
    .await;

    // (d) Meanwhile etcd changed; a page that comes back sees what it holds now.
    let meanwhile = store
        .put("/desired/web/green", r#"{"cmd": "run"}"#)
        .await
        .unwrap();
    let mut page = open_page(served.addr).await;
    until_live_with(&mut page, "web/green", meanwhile).await;
    assert_eq!(
        served.demand(),
        DemandStatus {
            viewers: 1,
            watching: true
        }
    );
    assert_eq!(watches(&etcd).await, 3);
    stop.cancel();
}
