//! Task and health events applied to the snapshot in place, when it embeds tasks: the event
//! carries what the picture needs, so following a task costs no Marathon call.
//!
//! What it promises:
//! - A `status_update_event` about a task of an app the picture holds (with its tasks) adds
//!   the task, updates its state, host, ports, addresses and version, or removes it once its
//!   state is terminal, exactly as Marathon's own list would show it; the app's task counts
//!   are recounted the way Marathon counts them, and a failure becomes its last task failure.
//!   A task first seen staging gets the event's time as its `stagedAt`, and one reaching
//!   `TASK_RUNNING` the event's time as its `startedAt` (Marathon sets both when it handles
//!   those status updates, which is also when it emits the event); times already known are
//!   kept. Health results are left as they were: events do not carry them, and the next
//!   read brings them.
//! - `instance_changed_event` with a terminal condition removes the instance's tasks;
//!   `Provisioned` (the launch) gives its coming task the event's time as `stagedAt`, since
//!   no status update reports TASK_STAGING; its other conditions repeat what the status
//!   update that comes with them says.
//! - `instance_health_changed_event`, and `health_status_changed_event` of an app with one
//!   health check, set the health verdict of the instance's tasks. Failed checks and
//!   unhealthy kills change nothing until the status or verdict they lead to arrives.
//! - An event the picture cannot take (an app it does not hold, or holds without tasks) asks
//!   for the app to be re-read: nothing is dropped.
//! - Every task changed is marked with the snapshot's clock when its event was read from the
//!   stream, so a list or read that began before that does not turn the task back (see
//!   [`merge_marked`]), and one that began after it, which already shows the event or what
//!   followed it, is taken as it is, however late the event is applied.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use theseus::marathon::events::{
    HealthStatusChanged, InstanceChanged, InstanceHealthChanged, StatusUpdate,
};
use theseus::marathon::health::HealthCheckResult;
use theseus::marathon::task::InstanceId;
use theseus::marathon::{App, AppId, Event, Task, TaskFailure, TaskId, TaskState};

use super::{KnownApp, MarathonPicture};
use crate::small_map::SmallMap;

/// What a task event did to the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Applied {
    /// The app's picture changed.
    Changed(AppId),
    /// The picture already said so, or the event changes nothing in it.
    Unchanged,
    /// The picture cannot take the event: re-read the app.
    Reread(AppId),
}

impl Applied {
    /// The outcome's name in metrics.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Applied::Changed(_) => "applied",
            Applied::Unchanged => "unchanged",
            Applied::Reread(_) => "reread",
        }
    }
}

/// The app an event that [`apply`] handles is about; `None` for other events.
pub(super) fn task_event_app(event: &Event) -> Option<&AppId> {
    match event {
        Event::StatusUpdate(e) => Some(&e.app_id),
        Event::InstanceChanged(e) => Some(&e.run_spec_id),
        Event::InstanceHealthChanged(e) => Some(&e.run_spec_id),
        Event::HealthStatusChanged(e) => Some(&e.app_id),
        Event::FailedHealthCheck(e) => Some(&e.app_id),
        Event::UnhealthyTaskKill(e) | Event::UnhealthyInstanceKill(e) => Some(&e.app_id),
        _ => None,
    }
}

/// Applies a task or health event, read from the stream at clock `received`, to `state`;
/// `None` if the event is of another kind.
pub(super) fn apply(state: &mut MarathonPicture, event: &Event, received: u64) -> Option<Applied> {
    Some(match event {
        Event::StatusUpdate(e) => status_update(state, e, received),
        Event::InstanceChanged(e) => instance_changed(state, e, received),
        Event::InstanceHealthChanged(e) => instance_health(state, e, received),
        Event::HealthStatusChanged(e) => health_status(state, e, received),
        Event::FailedHealthCheck(_)
        | Event::UnhealthyTaskKill(_)
        | Event::UnhealthyInstanceKill(_) => Applied::Unchanged,
        _ => return None,
    })
}

/// Whether Marathon records a last task failure for a task ending in `state` (kills and
/// successful exits are not failures).
fn is_failure(state: &TaskState) -> bool {
    matches!(
        state,
        TaskState::Failed
            | TaskState::Error
            | TaskState::Lost
            | TaskState::Dropped
            | TaskState::Gone
            | TaskState::GoneByOperator
    )
}

/// The entry of app `id`, held with its tasks and ready to change; `Err` with what to do
/// when the picture cannot take a change to it.
fn tasks_of<'a>(
    state: &'a mut MarathonPicture,
    id: &AppId,
    terminal: bool,
) -> Result<&'a mut KnownApp, Applied> {
    let Some(entry) = state.entries.get_mut(id) else {
        return Err(Applied::Reread(id.clone()));
    };
    match &entry.app {
        // Deleted as far as the picture knows: the end of one of its tasks changes nothing,
        // anything else means it exists after all.
        None if terminal => Err(Applied::Unchanged),
        None => Err(Applied::Reread(id.clone())),
        Some(app) if app.tasks.is_none() => Err(Applied::Reread(id.clone())),
        Some(_) => Ok(entry),
    }
}

fn status_update(state: &mut MarathonPicture, e: &StatusUpdate, received: u64) -> Applied {
    let terminal = e.task_status.is_terminal();
    let entry = match tasks_of(state, &e.app_id, terminal) {
        Ok(found) => found,
        Err(applied) => return applied,
    };
    let app = Arc::make_mut(entry.app.as_mut().expect("checked by tasks_of"));
    let tasks = app.tasks.as_mut().expect("checked by tasks_of");
    let position = tasks.iter().position(|task| task.id == e.task_id);
    let changed = match (position, terminal) {
        (Some(i), true) => {
            tasks.remove(i);
            true
        }
        (None, true) => false,
        (Some(i), false) => update(&mut tasks[i], e),
        (None, false) => {
            let mut task = new_task(e);
            task.app_id = app.id.clone();
            if task.staged_at.is_none() {
                task.staged_at = take_provisioned(&mut entry.provisioned, &task);
            }
            // Room for this task only: an app holds few, and each is large.
            tasks.reserve_exact(1);
            tasks.push(task);
            true
        }
    };
    let failed = is_failure(&e.task_status);
    if failed {
        app.last_task_failure = Some(Box::new(TaskFailure {
            app_id: e.app_id.clone(),
            task_id: e.task_id.clone(),
            host: e.host.clone(),
            message: e.message.clone(),
            state: Some(e.task_status.clone()),
            timestamp: e.timestamp,
            version: e.version.clone(),
            slave_id: e.slave_id.clone(),
            extra: Default::default(),
        }));
        entry.failure_mark = Some(received);
    }
    if !changed && !failed {
        return Applied::Unchanged;
    }
    recount(app);
    entry.task_marks.insert(e.task_id.clone(), received);
    Applied::Changed(e.app_id.clone())
}

/// Updates `task` from `e`; whether anything changed. Fields the event omits stay.
fn update(task: &mut Task, e: &StatusUpdate) -> bool {
    let before = task.clone();
    task.state = e.task_status.clone();
    if let Some(host) = &e.host {
        task.host = host.clone();
    }
    if let Some(slave) = &e.slave_id
        && task.agent_id.is_none()
    {
        task.slave_id = Some(slave.clone());
    }
    if e.ports.is_some() {
        task.ports = e.ports.clone();
    }
    if e.ip_addresses.is_some() {
        task.ip_addresses = e.ip_addresses.clone();
    }
    if e.version.is_some() {
        task.version = e.version.clone();
    }
    stamp_times(task, e);
    *task != before
}

/// Sets the task's staged or started time from the event that reports it, unless known.
fn stamp_times(task: &mut Task, e: &StatusUpdate) {
    match e.task_status {
        TaskState::Staging if task.staged_at.is_none() => task.staged_at = e.timestamp,
        TaskState::Running if task.started_at.is_none() => task.started_at = e.timestamp,
        _ => {}
    }
}

fn new_task(e: &StatusUpdate) -> Task {
    let mut task = Task {
        id: e.task_id.clone(),
        app_id: e.app_id.clone(),
        host: e.host.clone().unwrap_or_default(),
        state: e.task_status.clone(),
        ip_addresses: e.ip_addresses.clone(),
        ports: e.ports.clone(),
        service_ports: None,
        slave_id: e.slave_id.clone(),
        agent_id: None,
        staged_at: None,
        started_at: None,
        version: e.version.clone(),
        health_check_results: None,
        local_volumes: None,
        region: None,
        zone: None,
        role: None,
        extra: Default::default(),
    };
    stamp_times(&mut task, e);
    task
}

/// Whether `task` belongs to `instance`: Marathon's task ids are `<instance id>.<suffix>`.
fn of_instance(task: &Task, instance: &InstanceId) -> bool {
    task.id
        .as_str()
        .strip_prefix(instance.as_str())
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The task state an instance condition ends its tasks in, if it is terminal.
fn terminal_condition(condition: &str) -> Option<TaskState> {
    Some(match condition {
        "Finished" => TaskState::Finished,
        "Failed" => TaskState::Failed,
        "Killed" => TaskState::Killed,
        "Error" => TaskState::Error,
        "Dropped" => TaskState::Dropped,
        "Gone" => TaskState::Gone,
        "GoneByOperator" => TaskState::GoneByOperator,
        _ => return None,
    })
}

/// The time the instance of `task` was provisioned, if an event said, forgotten once taken.
fn take_provisioned(
    provisioned: &mut SmallMap<InstanceId, (DateTime<Utc>, u64)>,
    task: &Task,
) -> Option<DateTime<Utc>> {
    let instance = provisioned
        .keys()
        .find(|instance| of_instance(task, instance))?
        .clone();
    provisioned.remove(&instance).map(|(time, _)| time)
}

fn instance_changed(state: &mut MarathonPicture, e: &InstanceChanged, received: u64) -> Applied {
    // Marathon launched the instance: its task's first status update comes next, and
    // Marathon's list shows this moment as the task's `stagedAt` (no status update of
    // TASK_STAGING is sent; Mesos reports from TASK_STARTING on).
    if e.condition == "Provisioned" {
        let Some(time) = e.timestamp else {
            return Applied::Unchanged;
        };
        return match tasks_of(state, &e.run_spec_id, false) {
            Ok(entry) => {
                entry
                    .provisioned
                    .insert(e.instance_id.clone(), (time, received));
                Applied::Unchanged
            }
            Err(applied) => applied,
        };
    }
    // Other conditions come with a status update that says more (ids, ports, addresses).
    if terminal_condition(&e.condition).is_none() {
        return Applied::Unchanged;
    }
    let entry = match tasks_of(state, &e.run_spec_id, true) {
        Ok(found) => found,
        Err(applied) => return applied,
    };
    let holds = |app: &App| {
        app.tasks
            .iter()
            .flatten()
            .any(|task| of_instance(task, &e.instance_id))
    };
    if !entry.app.as_deref().is_some_and(holds) {
        return Applied::Unchanged;
    }
    let app = Arc::make_mut(entry.app.as_mut().expect("checked by tasks_of"));
    let tasks = app.tasks.as_mut().expect("checked by tasks_of");
    for task in tasks
        .iter()
        .filter(|task| of_instance(task, &e.instance_id))
    {
        entry.task_marks.insert(task.id.clone(), received);
    }
    tasks.retain(|task| !of_instance(task, &e.instance_id));
    recount(app);
    Applied::Changed(e.run_spec_id.clone())
}

fn instance_health(
    state: &mut MarathonPicture,
    e: &InstanceHealthChanged,
    received: u64,
) -> Applied {
    set_health(
        state,
        received,
        &e.run_spec_id,
        |task| of_instance(task, &e.instance_id),
        e.healthy,
        Some(&e.instance_id),
    )
}

fn health_status(state: &mut MarathonPicture, e: &HealthStatusChanged, received: u64) -> Applied {
    // One check's verdict is the task's only when it is the app's only check; with more,
    // `instance_health_changed_event` brings the task's verdict.
    let single_check = state
        .entries
        .get(&e.app_id)
        .and_then(|entry| entry.app.as_ref())
        .and_then(|app| app.health_checks.as_ref())
        .is_some_and(|checks| checks.len() == 1);
    if !single_check && state.entries.contains_key(&e.app_id) {
        return Applied::Unchanged;
    }
    match (&e.instance_id, &e.task_id) {
        (Some(instance), _) => set_health(
            state,
            received,
            &e.app_id,
            |task| of_instance(task, instance),
            Some(e.alive),
            Some(instance),
        ),
        (None, Some(task_id)) => set_health(
            state,
            received,
            &e.app_id,
            |task| &task.id == task_id,
            Some(e.alive),
            None,
        ),
        (None, None) => Applied::Reread(e.app_id.clone()),
    }
}

/// Sets the health verdict of the tasks of `app` that `chosen` picks, as an event read at
/// clock `received` said.
fn set_health(
    state: &mut MarathonPicture,
    received: u64,
    app_id: &AppId,
    chosen: impl Fn(&Task) -> bool,
    healthy: Option<bool>,
    instance: Option<&InstanceId>,
) -> Applied {
    let entry = match tasks_of(state, app_id, false) {
        Ok(found) => found,
        Err(applied) => return applied,
    };
    let differs = |app: &App| {
        app.tasks
            .iter()
            .flatten()
            .any(|task| chosen(task) && task.healthy() != healthy)
    };
    if !entry.app.as_deref().is_some_and(differs) {
        return Applied::Unchanged;
    }
    let app = Arc::make_mut(entry.app.as_mut().expect("checked by tasks_of"));
    for task in app.tasks.iter_mut().flatten().filter(|task| chosen(task)) {
        // The verdict as one result: what the counts and records read from it.
        task.health_check_results = healthy.map(|alive| {
            vec![HealthCheckResult {
                alive,
                consecutive_failures: None,
                first_success: None,
                last_success: None,
                last_failure: None,
                last_failure_cause: None,
                instance_id: instance.cloned(),
                task_id: None,
                extra: Default::default(),
            }]
        });
        entry.task_marks.insert(task.id.clone(), received);
    }
    recount(app);
    Applied::Changed(app_id.clone())
}

/// Sets the app's task counts from its tasks, as Marathon counts them, if it has counts.
pub(super) fn recount(app: &mut App) {
    if app.tasks_staged.is_none() && app.tasks_running.is_none() {
        return;
    }
    let tasks = app.tasks.as_deref().unwrap_or_default();
    let count = |pick: &dyn Fn(&Task) -> bool| {
        u32::try_from(tasks.iter().filter(|task| pick(task)).count()).unwrap_or(u32::MAX)
    };
    app.tasks_staged = Some(count(&|t| t.state == TaskState::Staging));
    app.tasks_running = Some(count(&|t| t.state == TaskState::Running));
    app.tasks_healthy = Some(count(&|t| t.healthy() == Some(true)));
    app.tasks_unhealthy = Some(count(&|t| t.healthy() == Some(false)));
}

/// Keeps in `read` (an app a list or read that began at `began` found) what events applied
/// after `began` say, since the read may predate them: the marked tasks as `current` has them
/// (or their absence), and the last task failure. Drops the marks the read already covers.
/// A task's staged and started times never change once set, so a time the read shows and the
/// picture's task lacks (its launch event came before the picture held the app) is kept.
pub(super) fn merge_marked(
    read: &mut App,
    current: Option<&App>,
    marks: &mut SmallMap<TaskId, u64>,
    failure_mark: &mut Option<u64>,
    began: u64,
) {
    marks.retain(|_, stamp| *stamp > began);
    let newer_failure = failure_mark.is_some_and(|stamp| stamp > began);
    if !newer_failure {
        *failure_mark = None;
    }
    let Some(current) = current else {
        return;
    };
    if newer_failure {
        read.last_task_failure = current.last_task_failure.clone();
    }
    if marks.is_empty() || read.tasks.is_none() {
        return;
    }
    let tasks = read.tasks.as_mut().expect("checked above");
    let (seen, unmarked): (Vec<Task>, Vec<Task>) = std::mem::take(tasks)
        .into_iter()
        .partition(|task| marks.contains_key(&task.id));
    *tasks = unmarked;
    let seen: HashMap<&TaskId, &Task> = seen.iter().map(|task| (&task.id, task)).collect();
    tasks.extend(
        current
            .tasks
            .iter()
            .flatten()
            .filter(|task| marks.contains_key(&task.id))
            .map(|task| {
                let mut task = task.clone();
                if let Some(seen) = seen.get(&task.id) {
                    task.staged_at = task.staged_at.or(seen.staged_at);
                    task.started_at = task.started_at.or(seen.started_at);
                }
                task
            }),
    );
    tasks.shrink_to_fit();
    recount(read);
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Applies `event` as if read from the stream now.
    fn apply_now(state: &mut MarathonPicture, event: &Event) -> Option<Applied> {
        let received = state.tick();
        apply(state, event, received)
    }

    fn event(fixture: &str, changes: Value) -> Event {
        let path = format!(
            "{}/../tests/fixtures/marathon/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut data: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("a JSON fixture");
        for (name, value) in changes.as_object().unwrap() {
            data[name] = value.clone();
        }
        Event::from_json(data)
    }

    fn state_with(app: Value) -> MarathonPicture {
        let app: App = serde_json::from_value(app).unwrap();
        let mut state = MarathonPicture::default();
        state
            .entries
            .insert(app.id.clone(), KnownApp::fresh(Some(Arc::new(app)), 0));
        state
    }

    fn app_of<'a>(state: &'a MarathonPicture, id: &str) -> &'a App {
        state.entries[&AppId::parse(id).unwrap()]
            .app
            .as_deref()
            .unwrap()
    }

    fn running_app() -> Value {
        json!({"id": "/my-app", "instances": 1, "healthChecks": [{"protocol": "HTTP"}],
               "tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0, "tasksUnhealthy": 0,
               "tasks": []})
    }

    const TASK: &str = "my-app.instance-c7c311a4-b669-11e6-a48f-0ea4f4b1778c._app.1";

    #[test]
    fn a_task_is_added_updated_and_removed_by_its_status_updates() {
        let mut state = state_with(running_app());
        let staging = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_STAGING", "ipAddresses":
                   [{"ipAddress": "10.0.0.5", "protocol": "IPv4"}]}),
        );
        assert_eq!(
            apply_now(&mut state, &staging),
            Some(Applied::Changed(AppId::parse("/my-app").unwrap()))
        );
        let app = app_of(&state, "/my-app");
        let task = &app.tasks.as_ref().unwrap()[0];
        assert_eq!(task.state, TaskState::Staging);
        assert_eq!(task.ports.as_deref(), Some(&[31372][..]));
        assert_eq!(task.host, "slave-1234.acme.org");
        assert_eq!(
            task.version.as_ref().unwrap().as_str(),
            "2014-04-04T06:26:23.051Z"
        );
        assert_eq!(app.tasks_staged, Some(1));

        let running = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_RUNNING"}),
        );
        assert!(matches!(
            apply_now(&mut state, &running),
            Some(Applied::Changed(_))
        ));
        assert_eq!(
            apply_now(&mut state, &running),
            Some(Applied::Unchanged),
            "the same update twice"
        );
        let app = app_of(&state, "/my-app");
        assert_eq!((app.tasks_staged, app.tasks_running), (Some(0), Some(1)));
        assert_eq!(
            app.tasks.as_ref().unwrap()[0]
                .ip_addresses
                .as_ref()
                .unwrap()[0]
                .ip_address,
            "10.0.0.5",
            "an update without addresses keeps them"
        );

        let failed = event(
            "event-status_update_event.sse-task_failed.json",
            json!({"taskId": TASK, "appId": "/my-app"}),
        );
        assert!(matches!(
            apply_now(&mut state, &failed),
            Some(Applied::Changed(_))
        ));
        let app = app_of(&state, "/my-app");
        assert!(app.tasks.as_ref().unwrap().is_empty());
        assert_eq!(app.tasks_running, Some(0));
        let failure = app.last_task_failure.as_ref().unwrap();
        assert_eq!(failure.task_id.as_str(), TASK);
        assert_eq!(failure.state, Some(TaskState::Failed));
        assert!(
            failure
                .message
                .as_deref()
                .unwrap()
                .contains("Failed to launch")
        );
    }

    #[test]
    fn a_task_takes_its_staged_and_started_times_from_the_events_that_report_them() {
        let mut state = state_with(running_app());
        let staging = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_STAGING",
                   "timestamp": "2026-01-02T03:04:05.000Z"}),
        );
        apply_now(&mut state, &staging);
        let running = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_RUNNING",
                   "timestamp": "2026-01-02T03:04:07.000Z"}),
        );
        apply_now(&mut state, &running);
        let again = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_RUNNING",
                   "timestamp": "2026-01-02T03:09:00.000Z"}),
        );
        apply_now(&mut state, &again);
        let task = &app_of(&state, "/my-app").tasks.as_ref().unwrap()[0];
        let time = |text: &str| Some(text.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(task.staged_at, time("2026-01-02T03:04:05Z"));
        assert_eq!(
            task.started_at,
            time("2026-01-02T03:04:07Z"),
            "the first report stands"
        );
    }

    #[test]
    fn a_task_first_reported_starting_is_staged_when_its_instance_was_provisioned() {
        let mut state = state_with(running_app());
        let provisioned = event(
            "event-instance_changed_event.json",
            json!({"condition": "Provisioned", "runSpecId": "/my-app",
                   "timestamp": "2026-01-02T03:04:05.000Z"}),
        );
        assert_eq!(
            apply_now(&mut state, &provisioned),
            Some(Applied::Unchanged)
        );
        let starting = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_STARTING",
                   "timestamp": "2026-01-02T03:04:06.000Z"}),
        );
        apply_now(&mut state, &starting);
        let task = &app_of(&state, "/my-app").tasks.as_ref().unwrap()[0];
        let time = |text: &str| Some(text.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(task.staged_at, time("2026-01-02T03:04:05Z"));
        assert!(
            state
                .entries
                .values()
                .all(|entry| entry.provisioned.is_empty()),
            "the launch is forgotten once its task is known"
        );
    }

    #[test]
    fn an_app_the_picture_does_not_hold_with_tasks_is_reread() {
        let mut state = state_with(json!({"id": "/no-tasks", "instances": 1}));
        let running = event(
            "event-status_update_event.json",
            json!({"appId": "/no-tasks", "taskId": TASK}),
        );
        assert_eq!(
            apply_now(&mut state, &running),
            Some(Applied::Reread(AppId::parse("/no-tasks").unwrap()))
        );
        let unknown = event("event-status_update_event.json", json!({"taskId": TASK}));
        assert_eq!(
            apply_now(&mut state, &unknown),
            Some(Applied::Reread(AppId::parse("/my-app").unwrap()))
        );
        let other = event("event-deployment_success.json", json!({}));
        assert_eq!(apply_now(&mut state, &other), None);
    }

    #[test]
    fn a_deleted_apps_ending_tasks_change_nothing() {
        let mut state = MarathonPicture::default();
        let id = AppId::parse("/my-app").unwrap();
        state.entries.insert(
            id.clone(),
            KnownApp {
                written: Some(None),
                ..KnownApp::fresh(None, 0)
            },
        );
        let killed = event(
            "event-status_update_event.json",
            json!({"taskId": TASK, "taskStatus": "TASK_KILLED"}),
        );
        assert_eq!(apply_now(&mut state, &killed), Some(Applied::Unchanged));
        let running = event("event-status_update_event.json", json!({"taskId": TASK}));
        assert_eq!(apply_now(&mut state, &running), Some(Applied::Reread(id)));
    }

    #[test]
    fn health_events_set_the_verdict_of_the_instances_task() {
        let mut state = state_with(running_app());
        apply_now(
            &mut state,
            &event("event-status_update_event.json", json!({"taskId": TASK})),
        );
        let healthy = event(
            "event-instance_health_changed_event.json",
            json!({"runSpecId": "/my-app"}),
        );
        assert!(matches!(
            apply_now(&mut state, &healthy),
            Some(Applied::Changed(_))
        ));
        let app = app_of(&state, "/my-app");
        assert_eq!(app.tasks.as_ref().unwrap()[0].healthy(), Some(true));
        assert_eq!(app.tasks_healthy, Some(1));
        assert_eq!(apply_now(&mut state, &healthy), Some(Applied::Unchanged));

        // The app's only check: that check's verdict is the task's.
        let dead = event(
            "event-health_status_changed_event.json",
            json!({"alive": false}),
        );
        assert!(matches!(
            apply_now(&mut state, &dead),
            Some(Applied::Changed(_))
        ));
        let app = app_of(&state, "/my-app");
        assert_eq!(app.tasks.as_ref().unwrap()[0].healthy(), Some(false));
        assert_eq!((app.tasks_healthy, app.tasks_unhealthy), (Some(0), Some(1)));

        let failed_check = event("event-failed_health_check_event.json", json!({}));
        assert_eq!(
            apply_now(&mut state, &failed_check),
            Some(Applied::Unchanged)
        );
    }

    #[test]
    fn a_terminal_instance_condition_removes_its_tasks() {
        let mut state = state_with(running_app());
        apply_now(
            &mut state,
            &event("event-status_update_event.json", json!({"taskId": TASK})),
        );
        let running = event(
            "event-instance_changed_event.json",
            json!({"runSpecId": "/my-app"}),
        );
        assert_eq!(apply_now(&mut state, &running), Some(Applied::Unchanged));
        let killed = event(
            "event-instance_changed_event.json",
            json!({"runSpecId": "/my-app", "condition": "Killed"}),
        );
        assert!(matches!(
            apply_now(&mut state, &killed),
            Some(Applied::Changed(_))
        ));
        assert!(app_of(&state, "/my-app").tasks.as_ref().unwrap().is_empty());
        assert_eq!(apply_now(&mut state, &killed), Some(Applied::Unchanged));
    }

    #[test]
    fn a_read_that_began_before_an_event_keeps_the_events_tasks() {
        let mut state = state_with(running_app());
        let began = state.tick();
        apply_now(
            &mut state,
            &event("event-status_update_event.json", json!({"taskId": TASK})),
        );
        let id = AppId::parse("/my-app").unwrap();
        // The read, begun before the event, shows no task yet and an older task.
        let mut read: App = serde_json::from_value(running_app()).unwrap();
        read.tasks = Some(vec![
            serde_json::from_value(json!({"id": "my-app.other", "appId": "/my-app",
                "host": "h", "state": "TASK_RUNNING", "startedAt": "2014-03-01T23:29:30.158Z"}))
            .unwrap(),
        ]);
        let entry = state.entries.get_mut(&id).unwrap();
        let current = entry.app.clone();
        merge_marked(
            &mut read,
            current.as_deref(),
            &mut entry.task_marks,
            &mut entry.failure_mark,
            began,
        );
        let ids: Vec<&str> = read
            .tasks
            .iter()
            .flatten()
            .map(|task| task.id.as_str())
            .collect();
        assert_eq!(ids, ["my-app.other", TASK]);
        assert_eq!(read.tasks_running, Some(2));
        assert_eq!(entry.task_marks.len(), 1, "kept for later reads");

        // A read that began after the event shows it: the marks go.
        let later = state.tick();
        let entry = state.entries.get_mut(&id).unwrap();
        let mut read: App = serde_json::from_value(running_app()).unwrap();
        merge_marked(
            &mut read,
            current.as_deref(),
            &mut entry.task_marks,
            &mut entry.failure_mark,
            later,
        );
        assert!(read.tasks.unwrap().is_empty());
        assert!(entry.task_marks.is_empty());
    }

    #[test]
    fn a_launch_time_only_a_read_saw_is_kept_beside_the_events_task() {
        // The launch came before the picture held the app, so the task the status update
        // added has no staged time; a read begun before that update shows it.
        let mut state = state_with(running_app());
        let began = state.tick();
        apply_now(
            &mut state,
            &event(
                "event-status_update_event.json",
                json!({"taskId": TASK, "taskStatus": "TASK_RUNNING"}),
            ),
        );
        let id = AppId::parse("/my-app").unwrap();
        let mut read: App = serde_json::from_value(running_app()).unwrap();
        read.tasks = Some(vec![
            serde_json::from_value(json!({"id": TASK, "appId": "/my-app", "host": "h",
                "state": "TASK_STARTING", "stagedAt": "2014-03-01T23:29:30.158Z"}))
            .unwrap(),
        ]);
        let entry = state.entries.get_mut(&id).unwrap();
        let current = entry.app.clone();
        let events_task = current.as_ref().unwrap().tasks.as_ref().unwrap()[0].clone();
        assert_eq!(events_task.staged_at, None);
        merge_marked(
            &mut read,
            current.as_deref(),
            &mut entry.task_marks,
            &mut entry.failure_mark,
            began,
        );
        let task = &read.tasks.as_ref().unwrap()[0];
        let time = |text: &str| Some(text.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(task.state, TaskState::Running, "the event's state wins");
        assert_eq!(task.started_at, events_task.started_at);
        assert_eq!(task.staged_at, time("2014-03-01T23:29:30.158Z"));
    }
}
