//! Health checks: probing running tasks and keeping Marathon's per-check health record.
//!
//! Each running task with health checks gets one probe loop per check (owned by the scheduler's
//! tracker, cancelled when the task stops running). Probes follow Marathon: HTTP(S) is healthy on
//! 2xx/3xx (1xx too unless `ignoreHttp1xx`), TCP on a completed connect, COMMAND on exit status 0
//! of `sh -c` in the task's sandbox and environment; a probe not answering within
//! `timeoutSeconds` failed. The first probe runs at once, then every `intervalSeconds`. The
//! `MESOS_*` protocols are probed the same way. Under the simulated executor every probe passes.
//!
//! [`HealthRecord::record`] applies Marathon's rules: failures inside `gracePeriodSeconds` before
//! the first success are ignored; `maxConsecutiveFailures` (if not 0) consecutive failures ask
//! for the task to be killed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::{HealthCheck, HealthProtocol};
use crate::task::{InstanceId, TaskId};
use crate::timestamp::Timestamp;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// The task probed.
    pub task_id: TaskId,
    /// Index of the check in the app's `healthChecks`.
    pub check: usize,
    /// `Ok` or the failure cause.
    pub outcome: Result<(), String>,
}

/// Marathon's health record of one check on one task (`healthCheckResults[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthRecord {
    /// Healthy now.
    pub alive: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// First success; `null` until there is one (Marathon always writes all seven keys).
    pub first_success: Option<Timestamp>,
    /// Last failure.
    pub last_failure: Option<Timestamp>,
    /// Last success.
    pub last_success: Option<Timestamp>,
    /// Why the last probe failed.
    pub last_failure_cause: Option<String>,
    /// The instance.
    pub instance_id: InstanceId,
}

/// What recording a probe result means for the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed that matters (or the failure fell in the grace period).
    Unchanged,
    /// `alive` flipped.
    Changed,
    /// Too many consecutive failures: kill the task.
    Kill,
}

impl HealthRecord {
    /// Applies one probe result. `running_for` is how long the task has been running.
    pub fn record(
        slot: &mut Option<HealthRecord>,
        instance: &InstanceId,
        check: &HealthCheck,
        outcome: &Result<(), String>,
        running_for: Duration,
        now: Timestamp,
    ) -> (Verdict, bool) {
        let before = slot.as_ref().map(|h| h.alive);
        match outcome {
            Ok(()) => {
                let h = slot.get_or_insert_with(|| HealthRecord::new(instance));
                h.alive = true;
                h.consecutive_failures = 0;
                h.last_success = Some(now);
                h.first_success.get_or_insert(now);
            }
            Err(cause) => {
                let in_grace =
                    running_for < Duration::from_secs(u64::from(check.grace_period_seconds));
                let never_succeeded = slot.as_ref().is_none_or(|h| h.first_success.is_none());
                if in_grace && never_succeeded {
                    return (Verdict::Unchanged, false);
                }
                let h = slot.get_or_insert_with(|| HealthRecord::new(instance));
                h.alive = false;
                h.consecutive_failures += 1;
                h.last_failure = Some(now);
                h.last_failure_cause = Some(cause.clone());
                if check.max_consecutive_failures > 0
                    && h.consecutive_failures >= check.max_consecutive_failures
                {
                    return (Verdict::Kill, before != Some(false));
                }
            }
        }
        let after = slot.as_ref().map(|h| h.alive);
        if before != after {
            (Verdict::Changed, true)
        } else {
            (Verdict::Unchanged, false)
        }
    }

    fn new(instance: &InstanceId) -> Self {
        HealthRecord {
            alive: false,
            consecutive_failures: 0,
            first_success: None,
            last_failure: None,
            last_success: None,
            last_failure_cause: None,
            instance_id: instance.clone(),
        }
    }
}

/// Where and how to probe one task.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The task.
    pub task_id: TaskId,
    /// Its agent's address.
    pub host: IpAddr,
    /// Its host ports.
    pub ports: Vec<u16>,
    /// Its environment (for COMMAND checks).
    pub env: Arc<[(String, String)]>,
    /// Its sandbox (for COMMAND checks).
    pub sandbox: PathBuf,
    /// The checks.
    pub checks: Vec<HealthCheck>,
    /// Simulated task: every probe passes.
    pub simulated: bool,
}

/// Runs every probe loop of one task until `stop` is cancelled.
pub async fn probe_task(
    target: ProbeTarget,
    results: mpsc::UnboundedSender<ProbeResult>,
    stop: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok();
    let loops = target.checks.iter().enumerate().map(|(i, check)| {
        let target = &target;
        let results = results.clone();
        let client = client.clone();
        let stop = stop.clone();
        async move {
            let interval = Duration::from_secs(u64::from(check.interval_seconds.max(1)));
            loop {
                let timeout = Duration::from_secs(u64::from(check.timeout_seconds.max(1)));
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    outcome = probe(target, check, client.as_ref(), timeout) => outcome,
                };
                if results
                    .send(ProbeResult {
                        task_id: target.task_id.clone(),
                        check: i,
                        outcome,
                    })
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        }
    });
    futures::future::join_all(loops).await;
}

async fn probe(
    target: &ProbeTarget,
    check: &HealthCheck,
    client: Option<&reqwest::Client>,
    timeout: Duration,
) -> Result<(), String> {
    if target.simulated {
        return Ok(());
    }
    let port = match (check.port, check.port_index) {
        (Some(p), _) => Some(p),
        (None, Some(i)) => target.ports.get(i as usize).copied(),
        (None, None) => None,
    };
    let attempt = async {
        match check.protocol {
            HealthProtocol::Http
            | HealthProtocol::Https
            | HealthProtocol::MesosHttp
            | HealthProtocol::MesosHttps => {
                let port = port.ok_or("health check names no port the task has")?;
                let scheme = if matches!(
                    check.protocol,
                    HealthProtocol::Https | HealthProtocol::MesosHttps
                ) {
                    "https"
                } else {
                    "http"
                };
                let path = check.path.as_deref().unwrap_or("/");
                let url = format!("{scheme}://{}{path}", SocketAddr::new(target.host, port));
                let client = client.ok_or("no HTTP client")?;
                let response = client.get(&url).send().await.map_err(|e| format!("{e}"))?;
                let status = response.status().as_u16();
                let ok = (200..400).contains(&status)
                    || ((100..200).contains(&status) && check.ignore_http1xx != Some(true));
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{status} {}",
                        response.status().canonical_reason().unwrap_or("")
                    ))
                }
            }
            HealthProtocol::Tcp | HealthProtocol::MesosTcp => {
                let port = port.ok_or("health check names no port the task has")?;
                tokio::net::TcpStream::connect(SocketAddr::new(target.host, port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("{e}"))
            }
            HealthProtocol::Command => {
                let command = check.command.as_ref().ok_or("no command")?;
                let status = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&command.value)
                    .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .current_dir(&target.sandbox)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await
                    .map_err(|e| format!("{e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("Command exited with {status}"))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "health check timed out after {}s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_id::AppId;

    fn check(grace: u32, max: u32) -> HealthCheck {
        HealthCheck {
            command: None,
            grace_period_seconds: grace,
            ignore_http1xx: None,
            interval_seconds: 1,
            max_consecutive_failures: max,
            path: Some("/".into()),
            port_index: Some(0),
            port: None,
            protocol: HealthProtocol::Http,
            ip_protocol: None,
            timeout_seconds: 1,
            delay_seconds: 15,
        }
    }

    #[test]
    fn failures_in_the_grace_period_are_ignored_until_the_first_success() {
        let instance = InstanceId::new(&AppId::parse("/a").unwrap());
        let c = check(10, 2);
        let mut slot = None;
        let now = Timestamp::from_millis(0);
        let fail = Err("refused".to_string());
        let (v, _) =
            HealthRecord::record(&mut slot, &instance, &c, &fail, Duration::from_secs(1), now);
        assert_eq!(v, Verdict::Unchanged);
        assert!(slot.is_none());
        let (v, changed) = HealthRecord::record(
            &mut slot,
            &instance,
            &c,
            &Ok(()),
            Duration::from_secs(2),
            now,
        );
        assert_eq!((v, changed), (Verdict::Changed, true));
        assert!(slot.as_ref().unwrap().alive);
        // After a success the grace period no longer shields failures.
        let (v, _) =
            HealthRecord::record(&mut slot, &instance, &c, &fail, Duration::from_secs(3), now);
        assert_eq!(v, Verdict::Changed);
        assert_eq!(slot.as_ref().unwrap().consecutive_failures, 1);
        let (v, _) =
            HealthRecord::record(&mut slot, &instance, &c, &fail, Duration::from_secs(4), now);
        assert_eq!(v, Verdict::Kill);
        assert_eq!(
            slot.as_ref().unwrap().last_failure_cause.as_deref(),
            Some("refused")
        );
    }

    #[test]
    fn zero_max_failures_never_kills() {
        let instance = InstanceId::new(&AppId::parse("/a").unwrap());
        let c = check(0, 0);
        let mut slot = None;
        for _ in 0..10 {
            let (v, _) = HealthRecord::record(
                &mut slot,
                &instance,
                &c,
                &Err("x".into()),
                Duration::from_secs(100),
                Timestamp::from_millis(0),
            );
            assert_ne!(v, Verdict::Kill);
        }
    }

    #[test]
    fn a_never_healthy_record_still_writes_all_seven_keys_with_nulls() {
        let instance = InstanceId::new(&AppId::parse("/a").unwrap());
        let mut slot = None;
        HealthRecord::record(
            &mut slot,
            &instance,
            &check(0, 3),
            &Err("refused".into()),
            Duration::from_secs(1),
            Timestamp::from_millis(0),
        );
        let json = serde_json::to_value(slot.unwrap()).unwrap();
        let object = json.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "alive",
                "consecutiveFailures",
                "firstSuccess",
                "instanceId",
                "lastFailure",
                "lastFailureCause",
                "lastSuccess"
            ]
        );
        assert!(object["firstSuccess"].is_null() && object["lastSuccess"].is_null());
        assert_eq!(object["lastFailureCause"], "refused");
    }
}
