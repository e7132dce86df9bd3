//! `/ping`, `/v2/info` and `/v2/leader`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiState;
use super::apps::json_response;

/// The Marathon version whose API localmarathon speaks.
pub const MARATHON_VERSION: &str = "1.10.0";

/// `GET /ping`.
pub async fn ping() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        "pong",
    )
        .into_response()
}

/// `GET /v2/leader`: this instance always leads.
pub async fn leader(State(api): State<ApiState>) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "leader": api.leader.to_string() })
            .to_string()
            .into_bytes(),
    )
}

/// `GET /v2/info`.
pub async fn info(State(api): State<ApiState>) -> Response {
    let leader = api.leader.to_string();
    let settings = &api.shared.settings;
    let marathon_config = marathon_config(&api);
    let body = json!({
        "name": "marathon",
        "version": MARATHON_VERSION,
        "buildref": concat!("localmarathon-", env!("CARGO_PKG_VERSION")),
        "elected": true,
        "leader": leader,
        "frameworkId": format!("{}-0000", settings.cluster_id),
        "marathon_config": marathon_config,
        "zookeeper_config": {
            "zk": "zk://localhost:2181/marathon",
            "zk_compression": true,
            "zk_compression_threshold": 65536,
            "zk_connection_timeout": 10000,
            "zk_max_node_size": 1024000,
            "zk_max_versions": 50,
            "zk_session_timeout": 10000,
            "zk_timeout": 10000,
        },
        "http_config": {
            "http_port": api.leader.port(),
            "https_port": 8443,
        },
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

fn marathon_config(api: &ApiState) -> serde_json::Value {
    json!({
        "access_control_allow_origin": [],
        "checkpoint": true,
        "decline_offer_duration": 120000,
        "default_network_name": null,
        "env_vars_prefix": null,
        "executor": "//cmd",
        "failover_timeout": 604800,
        "features": [],
        "framework_name": "marathon",
        "ha": false,
        "hostname": api.leader.ip().to_string(),
        "launch_token": 100,
        "launch_token_refresh_interval": 30000,
        "leader_proxy_connection_timeout_ms": 5000,
        "leader_proxy_read_timeout_ms": 10000,
        "local_port_max": 20000,
        "local_port_min": 10000,
        "master": "local",
        "max_instances_per_offer": 5,
        "mesos_bridge_name": "mesos-bridge",
        "mesos_heartbeat_failure_threshold": 5,
        "mesos_heartbeat_interval": 15000,
        "mesos_leader_ui_url": null,
        "mesos_role": "*",
        "mesos_user": null,
        "min_revive_offers_interval": 5000,
        "offer_matching_timeout": 3000,
        "on_elected_prepare_timeout": 180000,
        "reconciliation_initial_delay": 15000,
        "reconciliation_interval": 600000,
        "scale_apps_initial_delay": 15000,
        "scale_apps_interval": 300000,
        "store_cache": true,
        "task_launch_confirm_timeout": 300000,
        "task_launch_timeout": 300000,
        "task_lost_expunge_initial_delay": 300000,
        "task_lost_expunge_interval": 30000,
        "task_reservation_timeout": 20000,
        "webui_url": null,
    })
}
