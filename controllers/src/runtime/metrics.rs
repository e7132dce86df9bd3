//! The controller's Prometheus metrics: reconciles, errors, durations, queue depth, leadership,
//! and every Marathon and etcd call with its latency.
//!
//! What it promises: one registry per controller process, encoded in the Prometheus text
//! format (0.0.4) by [`Metrics::encode`]. Label values are bounded vocabularies: controller
//! names, error kinds from each error's `metric_label()`, Marathon route templates (never
//! concrete paths), etcd operation names. Counting never blocks and never fails.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use reqwest::Method;
use theseus::marathon::{ObservedRequest, RequestObserver};
use theseus_dashboard::demand::{DemandObserver, DemandStatus};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// An error that has a short, stable name for metrics and logs (controller-rs's shape).
pub trait MetricLabel {
    /// The error kind, e.g. `marathon_unavailable`; a bounded set per error type.
    fn metric_label(&self) -> &'static str;
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MarathonLabels {
    method: &'static str,
    route: &'static str,
    /// The HTTP status, or 0 when no answer came (connect error, timeout).
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MarathonRouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EtcdLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EtcdOperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReflectorLabels {
    reflector: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 100 µs to about 26 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// The controller's metrics; share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    queue_waiting: Family<ControllerLabels, Gauge>,
    queue_running: Family<ControllerLabels, Gauge>,
    marathon_requests: Family<MarathonLabels, Counter>,
    marathon_duration: HistogramFamily<MarathonRouteLabels>,
    marathon_writes: Family<ActionLabels, Counter>,
    snapshot_relists: Family<ReasonLabels, Counter>,
    snapshot_refreshes: Counter,
    snapshot_task_events: Family<OutcomeLabels, Counter>,
    snapshot_deployment_events: Family<OutcomeLabels, Counter>,
    marathon_events: Counter,
    marathon_event_backlog_peak: Gauge,
    snapshot_rereads_pending: Gauge,
    etcd_requests: Family<EtcdLabels, Counter>,
    etcd_duration: HistogramFamily<EtcdOperationLabels>,
    status_writes: Family<ActionLabels, Counter>,
    status_repairs: Family<ReasonLabels, Counter>,
    invalid_keys: Family<ReflectorLabels, Gauge>,
    observed_records: Family<ActionLabels, Counter>,
    leader: Gauge,
    dashboard_viewers: Gauge,
    dashboard_watching: Gauge,
    leadership_terms: Counter,
    leadership_losses: Family<ReasonLabels, Counter>,
    election_failures: Family<ReasonLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (prefix `theseus_controller`).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("theseus_controller");
        let metrics = Self {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(latency_histogram),
            queue_waiting: Family::default(),
            queue_running: Family::default(),
            marathon_requests: Family::default(),
            marathon_duration: Family::new_with_constructor(latency_histogram),
            marathon_writes: Family::default(),
            snapshot_relists: Family::default(),
            snapshot_refreshes: Counter::default(),
            snapshot_task_events: Family::default(),
            snapshot_deployment_events: Family::default(),
            marathon_events: Counter::default(),
            marathon_event_backlog_peak: Gauge::default(),
            snapshot_rereads_pending: Gauge::default(),
            etcd_requests: Family::default(),
            etcd_duration: Family::new_with_constructor(latency_histogram),
            status_writes: Family::default(),
            status_repairs: Family::default(),
            invalid_keys: Family::default(),
            observed_records: Family::default(),
            leader: Gauge::default(),
            dashboard_viewers: Gauge::default(),
            dashboard_watching: Gauge::default(),
            leadership_terms: Counter::default(),
            leadership_losses: Family::default(),
            election_failures: Family::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles finished, by controller and result (success, error)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by controller and error kind",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took, by controller",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "queue_waiting_keys",
            "Keys waiting in the work queue (due now or later), by controller",
            metrics.queue_waiting.clone(),
        );
        registry.register(
            "queue_running_keys",
            "Keys being reconciled, by controller",
            metrics.queue_running.clone(),
        );
        registry.register(
            "marathon_requests",
            "HTTP requests to Marathon, by method, route template and status (0: no answer)",
            metrics.marathon_requests.clone(),
        );
        registry.register(
            "marathon_request_duration_seconds",
            "Latency of HTTP requests to Marathon, by method and route template",
            metrics.marathon_duration.clone(),
        );
        registry.register(
            "marathon_writes",
            "App writes that Marathon accepted, by action (create, update, scale, delete)",
            metrics.marathon_writes.clone(),
        );
        registry.register(
            "marathon_snapshot_relists",
            "Full relists of Marathon's owned apps, by reason",
            metrics.snapshot_relists.clone(),
        );
        registry.register(
            "marathon_snapshot_refreshes",
            "Single-app re-reads of Marathon's snapshot, triggered by events",
            metrics.snapshot_refreshes.clone(),
        );
        registry.register(
            "marathon_snapshot_task_events",
            "Task and health events, by what they did to the snapshot: applied in place, \
             unchanged (already known), or reread (the app had to be re-read)",
            metrics.snapshot_task_events.clone(),
        );
        registry.register(
            "marathon_snapshot_deployment_events",
            "Deployment and API events, by what they did to the snapshot: applied in place, \
             unchanged (already known), or reread (the app had to be re-read)",
            metrics.snapshot_deployment_events.clone(),
        );
        registry.register(
            "marathon_events",
            "Events received on Marathon's event stream",
            metrics.marathon_events.clone(),
        );
        registry.register(
            "marathon_event_backlog_peak",
            "The most events read from Marathon's stream and not yet applied at once, in this term",
            metrics.marathon_event_backlog_peak.clone(),
        );
        registry.register(
            "marathon_snapshot_rereads_pending",
            "Apps an event asked the snapshot to re-read whose read has not finished yet",
            metrics.snapshot_rereads_pending.clone(),
        );
        registry.register(
            "etcd_requests",
            "Requests to etcd, by operation and result (ok, error, fence_failed)",
            metrics.etcd_requests.clone(),
        );
        registry.register(
            "etcd_request_duration_seconds",
            "Latency of requests to etcd, by operation",
            metrics.etcd_duration.clone(),
        );
        registry.register(
            "status_writes",
            "Status keys written (put) or removed (delete)",
            metrics.status_writes.clone(),
        );
        registry.register(
            "status_repairs",
            "Statuses changed by someone else during a term and put right, by what was found",
            metrics.status_repairs.clone(),
        );
        registry.register(
            "invalid_keys",
            "Keys under a watched prefix that name no deployment (wrong shape or labels), by reflector",
            metrics.invalid_keys.clone(),
        );
        registry.register(
            "observed_records",
            "Task records written (put) or removed (delete) under /observed",
            metrics.observed_records.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica leads and acts, 0 otherwise",
            metrics.leader.clone(),
        );
        registry.register(
            "dashboard_viewers",
            "Dashboard pages open now (each holds one event stream)",
            metrics.dashboard_viewers.clone(),
        );
        registry.register(
            "dashboard_watching",
            "1 while the dashboard watches etcd (a page is open, or was within the idle \
             timeout), 0 while it holds nothing",
            metrics.dashboard_watching.clone(),
        );
        registry.register(
            "leadership_terms",
            "Times this replica became leader",
            metrics.leadership_terms.clone(),
        );
        registry.register(
            "leadership_losses",
            "Times this replica stopped leading, by reason",
            metrics.leadership_losses.clone(),
        );
        registry.register(
            "election_failures",
            "Failed steps of taking part in the election (lease grant, campaign), by reason",
            metrics.election_failures.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The dashboard's open pages and whether it watches etcd.
    pub fn dashboard_demand(&self, viewers: usize, watching: bool) {
        self.dashboard_viewers
            .set(i64::try_from(viewers).unwrap_or(i64::MAX));
        self.dashboard_watching.set(i64::from(watching));
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// A reconcile of `controller` finished; `error` is the failure's metric label.
    pub fn reconciled(
        &self,
        controller: &'static str,
        error: Option<&'static str>,
        took: Duration,
    ) {
        let result = if error.is_some() { "error" } else { "success" };
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { controller, error })
                .inc();
        }
        self.reconcile_duration
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
    }

    /// The work queue of `controller` now holds this many waiting and running keys.
    pub fn queue_depth(&self, controller: &'static str, waiting: usize, running: usize) {
        let labels = ControllerLabels { controller };
        self.queue_waiting
            .get_or_create(&labels)
            .set(saturating_i64(waiting));
        self.queue_running
            .get_or_create(&labels)
            .set(saturating_i64(running));
    }

    /// The waiting and running keys of `controller`'s work queue as last reported; `None`
    /// before its queue reported.
    pub fn queue_depth_of(&self, controller: &'static str) -> Option<(i64, i64)> {
        let labels = ControllerLabels { controller };
        let waiting = self.queue_waiting.get(&labels)?.get();
        let running = self
            .queue_running
            .get(&labels)
            .map_or(0, |gauge| gauge.get());
        Some((waiting, running))
    }

    /// Marathon accepted an app write (`create`, `update`, `scale`, `delete`).
    pub fn marathon_write(&self, action: &'static str) {
        self.marathon_writes
            .get_or_create(&ActionLabels { action })
            .inc();
    }

    /// The Marathon snapshot was relisted, for `reason` (`initial`, `resync`, `reconnect`,
    /// `probe`).
    pub fn snapshot_relisted(&self, reason: &'static str) {
        self.snapshot_relists
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// One app of the Marathon snapshot was re-read.
    pub fn snapshot_refreshed(&self) {
        self.snapshot_refreshes.inc();
    }

    /// A task or health event was applied to the snapshot (`applied`), changed nothing
    /// (`unchanged`), or made its app be re-read (`reread`).
    pub fn snapshot_task_event(&self, outcome: &'static str) {
        self.snapshot_task_events
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A deployment or API event was applied to the snapshot (`applied`), changed nothing
    /// (`unchanged`), or made its app be re-read (`reread`).
    pub fn snapshot_deployment_event(&self, outcome: &'static str) {
        self.snapshot_deployment_events
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// An event arrived on Marathon's event stream.
    pub fn marathon_event(&self) {
        self.marathon_events.inc();
    }

    /// The most events read from Marathon's stream and waiting to be applied at once.
    pub fn marathon_event_backlog_peak(&self, events: usize) {
        self.marathon_event_backlog_peak
            .set(i64::try_from(events).unwrap_or(i64::MAX));
    }

    /// How many apps wait for a re-read an event asked for, or are being re-read.
    pub fn snapshot_rereads_pending(&self, apps: usize) {
        self.snapshot_rereads_pending
            .set(i64::try_from(apps).unwrap_or(i64::MAX));
    }

    /// An etcd request finished; `result` is `ok`, `error` or `fence_failed`.
    pub fn etcd_request(&self, operation: &'static str, result: &'static str, took: Duration) {
        self.etcd_requests
            .get_or_create(&EtcdLabels { operation, result })
            .inc();
        self.etcd_duration
            .get_or_create(&EtcdOperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// A status key was written (`put`) or removed (`delete`).
    pub fn status_written(&self, action: &'static str) {
        self.status_writes
            .get_or_create(&ActionLabels { action })
            .inc();
    }

    /// A status changed by someone else was found (`reason`: foreign_write, unreadable,
    /// deleted); the controller puts it right.
    pub fn status_repaired(&self, reason: &'static str) {
        self.status_repairs
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// `count` keys watched by `reflector` name no deployment.
    pub fn invalid_keys(&self, reflector: &'static str, count: usize) {
        self.invalid_keys
            .get_or_create(&ReflectorLabels { reflector })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A task record was written (`put`) or removed (`delete`).
    pub fn observed_record_written(&self, action: &'static str) {
        self.observed_records
            .get_or_create(&ActionLabels { action })
            .inc();
    }

    /// This replica started leading.
    pub fn leading(&self) {
        self.leader.set(1);
        self.leadership_terms.inc();
    }

    /// A step of taking part in the election failed, for `reason` (an
    /// [`ElectionError`](super::leader::ElectionError)'s metric label).
    pub fn election_failed(&self, reason: &'static str) {
        self.election_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// This replica stopped leading, for `reason` (`lease_lost`, `fence_failed`, `shutdown`,
    /// `error`).
    pub fn not_leading(&self, reason: &'static str) {
        if self.leader.set(0) == 1 {
            self.leadership_losses
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }
}

fn saturating_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// Counts every Marathon HTTP attempt into [`Metrics`]; give it to
/// [`MarathonClient::with_observer`](theseus::marathon::MarathonClient::with_observer).
#[derive(Debug, Clone)]
pub struct MarathonRequestMetrics(pub Arc<Metrics>);

impl RequestObserver for MarathonRequestMetrics {
    fn observe(&self, request: &ObservedRequest<'_>) {
        let method = method_label(request.method);
        let route = request.route.template();
        self.0
            .marathon_requests
            .get_or_create(&MarathonLabels {
                method,
                route,
                status: request.status.map_or(0, |s| s.as_u16()),
            })
            .inc();
        self.0
            .marathon_duration
            .get_or_create(&MarathonRouteLabels { method, route })
            .observe(request.duration.as_secs_f64());
    }
}

/// Records the dashboard's open pages and whether it watches etcd into [`Metrics`]; give
/// it to [`Dashboard::with_demand_observer`](theseus_dashboard::Dashboard::with_demand_observer).
#[derive(Debug, Clone)]
pub struct DashboardDemandMetrics(pub Arc<Metrics>);

impl DemandObserver for DashboardDemandMetrics {
    fn demand_changed(&self, status: DemandStatus) {
        self.0.dashboard_demand(status.viewers, status.watching);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_each_series_with_its_labels() {
        let metrics = Metrics::new();
        metrics.reconciled("deployments", None, Duration::from_millis(3));
        metrics.reconciled("deployments", Some("marathon_unavailable"), Duration::ZERO);
        metrics.queue_depth("deployments", 4, 1);
        metrics.etcd_request("txn", "ok", Duration::from_millis(1));
        metrics.leading();
        let text = metrics.encode();
        for line in [
            "theseus_controller_reconciles_total{controller=\"deployments\",result=\"success\"} 1",
            "theseus_controller_reconciles_total{controller=\"deployments\",result=\"error\"} 1",
            "theseus_controller_reconcile_errors_total{controller=\"deployments\",error=\"marathon_unavailable\"} 1",
            "theseus_controller_queue_waiting_keys{controller=\"deployments\"} 4",
            "theseus_controller_etcd_requests_total{operation=\"txn\",result=\"ok\"} 1",
            "theseus_controller_leader 1",
            "theseus_controller_leadership_terms_total 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn a_loss_is_counted_only_when_leading() {
        let metrics = Metrics::new();
        metrics.not_leading("shutdown");
        metrics.leading();
        metrics.not_leading("lease_lost");
        metrics.not_leading("lease_lost");
        let text = metrics.encode();
        assert!(
            text.contains("theseus_controller_leadership_losses_total{reason=\"lease_lost\"} 1")
        );
        assert!(!text.contains("reason=\"shutdown\""));
    }
}
