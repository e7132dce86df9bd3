//! The picture of Marathon's apps, as a value: what is known of each app, and the clock that
//! orders what is learnt (the start of every list or read, every write recorded, every event
//! read from the stream). No request is made here; [`MarathonSnapshot`](super::MarathonSnapshot)
//! makes them and applies their answers.
//!
//! What it promises:
//! - reads are applied in the order they began: a list or read that began before something
//!   learnt later (a write, an event) does not turn it back ([`KnownApp::accepts`]), except that
//!   a read already showing a write's app version, or a newer one, replaces that write;
//! - a write's answer never turns back a read that already shows its version or a newer one;
//! - an app marked stale stays stale until a list or read that began after the mark shows it;
//! - a list removes only apps it does not show that were learnt before it began, and never
//!   apps read individually outside the selector (foreign).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use theseus::marathon::app::{DeploymentRef, Version};
use theseus::marathon::task::InstanceId;
use theseus::marathon::{App, AppId, DeploymentId, Event, TaskId};

use super::{Reachability, deployment_events, task_events};
use crate::small_map::SmallMap;

/// One app as the snapshot knows it.
#[derive(Debug, Clone)]
pub(super) struct KnownApp {
    /// `None`: the controller deleted it (or its state is unknown, see `MarathonPicture::stale`).
    pub(super) app: Option<Arc<App>>,
    /// The clock when what is here was learnt: the start of the read, or the write.
    pub(super) stamp: u64,
    /// The start of the latest read that replaced what is here: an event read from the
    /// stream before it is already in the picture (or overtaken), and is not applied again.
    pub(super) read_began: u64,
    /// Set when what is here is the controller's own write: the app version that write made,
    /// if Marathon said.
    pub(super) written: Option<Option<Version>>,
    /// Read individually although the selector does not match it (someone else's app).
    pub(super) foreign: bool,
    /// Tasks changed in place by events, each with the clock when the latest such event was
    /// read from the stream: a read that began earlier may show them as they were before; one
    /// that began later shows what the event said, or newer.
    pub(super) task_marks: SmallMap<TaskId, u64>,
    /// When the event that last set the app's last task failure was read from the stream.
    pub(super) failure_mark: Option<u64>,
    /// Deployments events said ended, with the clock when each such event was read from the
    /// stream: a read that began earlier, or a write recorded later, does not list them.
    pub(super) ended: SmallMap<DeploymentId, u64>,
    /// Instances Marathon said it launched (`Provisioned`) whose task the picture does not
    /// hold yet: when, and the clock when the event was read from the stream. Their first
    /// status update takes that time as the task's `stagedAt`, as Marathon's own list shows
    /// it.
    pub(super) provisioned: SmallMap<InstanceId, (chrono::DateTime<chrono::Utc>, u64)>,
}

impl KnownApp {
    /// An entry holding `app` as learnt at `stamp`, with no read, write or event noted.
    pub(super) fn fresh(app: Option<Arc<App>>, stamp: u64) -> KnownApp {
        KnownApp {
            app,
            stamp,
            read_began: 0,
            written: None,
            foreign: false,
            task_marks: SmallMap::default(),
            failure_mark: None,
            ended: SmallMap::default(),
            provisioned: SmallMap::default(),
        }
    }

    /// Whether a read that began at `started` and found `read` (`None`: no such app) may
    /// replace this entry. Reads are applied in the order they began, except that a read
    /// that began before the controller's write was recorded but already shows that write's
    /// version (or a newer one) is newer than the write: Marathon may finish a whole
    /// deployment, and send every event about it, before the write's answer arrives.
    pub(super) fn accepts(&self, started: u64, read: Option<&App>) -> bool {
        if started > self.stamp {
            return true;
        }
        match (&self.written, read.and_then(|app| app.version.as_ref())) {
            (Some(Some(written)), Some(read)) => !version_before(read, written),
            _ => false,
        }
    }
}

/// Whether Marathon version `a` is older than `b`. Versions are RFC 3339 timestamps; ones
/// that do not parse are compared as text (Marathon's fixed format sorts as text too).
pub(super) fn version_before(a: &Version, b: &Version) -> bool {
    let parse = |v: &Version| chrono::DateTime::parse_from_rfc3339(v.as_str()).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => a.as_str() < b.as_str(),
    }
}

/// The picture itself: what is known of each app, and the clock that orders what is learnt.
#[derive(Debug, Default)]
pub(super) struct MarathonPicture {
    pub(super) entries: HashMap<AppId, KnownApp>,
    /// Ticks at the start of every read, at every recorded write and at every event read
    /// from the stream; orders them. Shared with the stream's reader, which stamps events
    /// without taking the picture's lock.
    pub(super) clock: Arc<AtomicU64>,
    /// Apps whose state is unknown after a write whose outcome is unknown.
    pub(super) stale: HashSet<AppId>,
    /// Apps named by events since they were last re-read.
    pub(super) dirty: HashSet<AppId>,
    /// Apps of `dirty` being re-read now.
    pub(super) rereading: usize,
    /// Apps the controller is creating, with the events about them read before the
    /// create's answer came: the app is not in the picture until then.
    pub(super) creating: HashMap<AppId, Parked>,
    pub(super) reachability: Reachability,
}

/// The most events about an app being created held until the create's answer: beyond
/// them, the app is re-read once created instead.
const PARKED_EVENTS: usize = 256;

/// Events about an app being created that the picture could not take yet, in the order
/// they were read: a new app's first events (its launch, its tasks starting, its
/// deployment) can beat the create's answer, and are applied once the answer is in the
/// picture, rather than asking for the app to be re-read.
#[derive(Debug, Default)]
pub(super) struct Parked {
    /// The events, each with the clock when it was read from the stream.
    pub(super) events: Vec<(u64, Event)>,
    /// More came than are held: re-read the app once it is created.
    pub(super) overflowed: bool,
}

impl Parked {
    /// Holds `events` after those held already.
    pub(super) fn park(&mut self, events: impl IntoIterator<Item = (u64, Event)>) {
        if self.overflowed {
            return;
        }
        self.events.extend(events);
        if self.events.len() > PARKED_EVENTS {
            self.events = Vec::new();
            self.overflowed = true;
        }
    }

    /// Whether anything waits: events, or a re-read.
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty() && !self.overflowed
    }
}

impl MarathonPicture {
    /// Advances the clock; the new time.
    pub(super) fn tick(&mut self) -> u64 {
        self.clock.fetch_add(1, AtomicOrdering::SeqCst) + 1
    }

    /// Puts `app`, found by a list or read that began at `started`, into the picture if the
    /// entry there accepts it ([`KnownApp::accepts`]); the app's id if that changed what the
    /// picture says.
    fn replace(&mut self, started: u64, mut app: App, foreign: bool) -> Option<AppId> {
        keep_what_is_read(&mut app);
        let id = app.id.clone();
        match self.entries.get_mut(&id) {
            Some(entry) if !entry.accepts(started, Some(&app)) => None,
            Some(entry) => {
                task_events::merge_marked(
                    &mut app,
                    entry.app.as_deref(),
                    &mut entry.task_marks,
                    &mut entry.failure_mark,
                    started,
                );
                deployment_events::drop_ended(&mut app, &mut entry.ended, started);
                // The read shows the tasks of instances provisioned before it began.
                entry.provisioned.retain(|_, (_, stamp)| *stamp > started);
                entry.foreign = foreign;
                entry.stamp = entry.stamp.max(started);
                entry.read_began = entry.read_began.max(started);
                entry.written = None;
                let changed = entry.app.as_deref() != Some(&app);
                if changed {
                    entry.app = Some(Arc::new(app));
                }
                changed.then_some(id)
            }
            None => {
                self.entries.insert(
                    id.clone(),
                    KnownApp {
                        read_began: started,
                        foreign,
                        ..KnownApp::fresh(Some(Arc::new(app)), started)
                    },
                );
                Some(id)
            }
        }
    }

    /// Applies a list that began at `began` and showed `listed` (the apps in scope): each
    /// replaces its entry if the entry accepts it, and an app not listed is gone unless it
    /// was learnt after the list began or is foreign. The apps whose picture changed.
    #[cfg(test)]
    pub(super) fn apply_list(
        &mut self,
        began: u64,
        listed: impl IntoIterator<Item = App>,
    ) -> Vec<AppId> {
        let mut list = ListApplied::began(began);
        for app in listed {
            list.apply(self, app);
        }
        list.finish(self)
    }

    /// Applies a read of app `id` that began at `began` and found `read` (with whether it
    /// is foreign; `None`: Marathon has no such app). Whether the picture of the app changed,
    /// and the app as the picture now has it.
    pub(super) fn apply_read(
        &mut self,
        began: u64,
        id: &AppId,
        read: Option<(App, bool)>,
    ) -> (Option<AppId>, Option<Arc<App>>) {
        let changed = match read {
            Some((app, foreign)) => self.replace(began, app, foreign),
            None => match self.entries.get(id) {
                Some(entry) if entry.accepts(began, None) => self
                    .entries
                    .remove(id)
                    .and_then(|e| e.app)
                    .map(|_| id.clone()),
                _ => None,
            },
        };
        if self
            .entries
            .get(id)
            .is_none_or(|e| e.stamp <= began || e.written.is_none())
        {
            self.stale.remove(id);
        }
        (changed, self.entries.get(id).and_then(|e| e.app.clone()))
    }

    /// SmallMap an app stale after a write whose outcome is unknown. Counts as a write: a list
    /// or read that began before it does not clear it.
    pub(super) fn mark_stale(&mut self, id: &AppId) {
        let stamp = self.tick();
        self.stale.insert(id.clone());
        let entry = self
            .entries
            .entry(id.clone())
            .or_insert(KnownApp::fresh(None, stamp));
        entry.stamp = stamp;
        entry.written = Some(None);
    }

    /// Records the controller's own write of app `id` that made `version` (if Marathon
    /// said): `build` turns what the picture holds then into what the write left
    /// (`Some(None)`: no app; `None`: the picture holds nothing the write could change, and
    /// nothing is recorded). Built here, under the snapshot's lock, an event applied while
    /// the write's answer was on its way is part of what it builds on. A read already
    /// showing the write's version or a newer one is kept instead. Whether the write was
    /// recorded.
    pub(super) fn record_write(
        &mut self,
        id: AppId,
        version: Option<Version>,
        build: impl FnOnce(Option<&App>) -> Option<Option<App>>,
    ) -> bool {
        let Some(app) = build(self.entries.get(&id).and_then(|entry| entry.app.as_deref())) else {
            return false;
        };
        let stamp = self.tick();
        self.stale.remove(&id);
        // Events can beat a write's answer: an app read since then that already shows the
        // write's version (or a newer one) is newer than what the answer says.
        let read_newer = self
            .entries
            .get(&id)
            .and_then(|entry| entry.app.as_ref()?.version.as_ref())
            .zip(version.as_ref())
            .is_some_and(|(read, written)| !version_before(read, written));
        if read_newer {
            return true;
        }
        // What events said about tasks stays newer than any read that began before them.
        let (read_began, task_marks, failure_mark, mut ended, provisioned) = self
            .entries
            .remove(&id)
            .map(|entry| {
                (
                    entry.read_began,
                    entry.task_marks,
                    entry.failure_mark,
                    entry.ended,
                    entry.provisioned,
                )
            })
            .unwrap_or_default();
        // A deployment that ended before its write's answer came does not run again.
        let mut app = app;
        if let Some(app) = app.as_mut() {
            keep_what_is_read(app);
            deployment_events::drop_ended(app, &mut ended, 0);
        }
        self.entries.insert(
            id,
            KnownApp {
                app: app.map(Arc::new),
                stamp,
                read_began,
                written: Some(version),
                foreign: false,
                task_marks,
                failure_mark,
                ended,
                provisioned,
            },
        );
        true
    }
}

/// A list of apps being applied as it is read, a part at a time: each app replaces its
/// entry as [`MarathonPicture::replace`] decides (the entry's stamps, not when the app
/// arrives, say whether the list is news), and [`ListApplied::finish`] removes what the list
/// did not show. Applying a list in parts, with events applied between them, leaves the
/// picture as applying it whole at the end would: a read that began at `began` is judged by
/// that moment in both.
pub(super) struct ListApplied {
    began: u64,
    seen: HashSet<AppId>,
    changed: Vec<AppId>,
}

impl ListApplied {
    /// A list that began at `began`, nothing applied yet.
    pub(super) fn began(began: u64) -> Self {
        Self {
            began,
            seen: HashSet::new(),
            changed: Vec::new(),
        }
    }

    /// Applies one listed app (in scope).
    pub(super) fn apply(&mut self, picture: &mut MarathonPicture, app: App) {
        self.seen.insert(app.id.clone());
        if let Some(id) = picture.replace(self.began, app, false) {
            self.changed.push(id);
        }
    }

    /// The apps changed so far, for a list that could not be read to its end: what it
    /// showed stays (each app as read), nothing is removed.
    pub(super) fn abandon(self) -> Vec<AppId> {
        self.changed
    }

    /// Ends the list: an app not listed is gone, unless learnt after the list began (or
    /// someone else's). The apps whose picture changed.
    pub(super) fn finish(self, picture: &mut MarathonPicture) -> Vec<AppId> {
        let Self {
            began,
            seen,
            mut changed,
        } = self;
        let gone: Vec<AppId> = picture
            .entries
            .iter()
            .filter(|(id, entry)| !seen.contains(*id) && !entry.foreign && entry.stamp < began)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if picture.entries.remove(&id).is_some_and(|e| e.app.is_some()) {
                changed.push(id);
            }
        }
        // A stale app marked before the list began is now known from the list.
        let entries = &picture.entries;
        picture
            .stale
            .retain(|id| entries.get(id).is_some_and(|e| e.stamp > began));
        changed
    }
}

/// Drops from `app` what no reconciler reads: the fields this client does not model, which
/// Marathon sends with every app and task (strategies, roles, secrets, …) and which are never
/// written back from the picture. At thousands of apps they are most of its memory.
/// Lists are cut to their length: a list read from JSON has room for four items when it
/// holds one, and a task takes hundreds of bytes.
pub(super) fn keep_what_is_read(app: &mut App) {
    app.extra = Default::default();
    if let Some(container) = app.container.as_mut() {
        container.extra = Default::default();
    }
    if let Some(info) = app.version_info.as_mut() {
        info.extra = Default::default();
    }
    if let Some(failure) = app.last_task_failure.as_mut() {
        failure.extra = Default::default();
    }
    for task in app.tasks.iter_mut().flatten() {
        task.extra = Default::default();
        // One allocation for the id and version every task of the app repeats.
        if task.app_id == app.id {
            task.app_id = app.id.clone();
        }
        if task.version.is_some() && task.version == app.version {
            task.version.clone_from(&app.version);
        }
        fit(&mut task.ip_addresses);
        fit(&mut task.ports);
        fit(&mut task.service_ports);
        fit(&mut task.health_check_results);
    }
    fit(&mut app.tasks);
    fit(&mut app.deployments);
    fit(&mut app.port_definitions);
    fit(&mut app.networks);
    fit(&mut app.health_checks);
    fit(&mut app.constraints);
}

/// Gives `list` no more room than it holds.
fn fit<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

pub(super) fn add_deployment(app: &mut App, id: &DeploymentId) {
    let deployments = app.deployments.get_or_insert_with(Vec::new);
    if !deployments.iter().any(|d| &d.id == id) {
        deployments.push(DeploymentRef { id: id.clone() });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn id(text: &str) -> AppId {
        AppId::parse(text).unwrap()
    }

    fn app(id: &str, hash: &str, version: Option<&str>) -> App {
        let mut value: Value = json!({
            "id": id, "instances": 1,
            "labels": {"THESEUS_MANAGED": "true", "THESEUS_SPEC_HASH": hash}
        });
        if let Some(version) = version {
            value["version"] = json!(version);
        }
        serde_json::from_value(value).unwrap()
    }

    fn hash_of(picture: &MarathonPicture, app: &str) -> Option<String> {
        picture
            .entries
            .get(&id(app))?
            .app
            .as_ref()?
            .label("THESEUS_SPEC_HASH")
            .map(str::to_owned)
    }

    fn written(picture: &mut MarathonPicture, app_id: &str, hash: &str, version: &str) {
        let written = app(app_id, hash, Some(version));
        picture.record_write(id(app_id), Some(version.into()), |_| Some(Some(written)));
    }

    #[test]
    fn a_list_that_began_before_a_write_does_not_turn_it_back() {
        let mut picture = MarathonPicture::default();
        let began = picture.tick();
        written(&mut picture, "/a/x", "new", "2026-01-01T00:00:01.000Z");
        let changed = picture.apply_list(
            began,
            [
                app("/a/x", "old", Some("2026-01-01T00:00:00.000Z")),
                app("/a/y", "old", None),
            ],
        );
        assert_eq!(changed, [id("/a/y")]);
        assert_eq!(hash_of(&picture, "/a/x").as_deref(), Some("new"));

        // A list that begins after the write tells the truth again.
        let later = picture.tick();
        picture.apply_list(later, [app("/a/x", "old", None), app("/a/y", "old", None)]);
        assert_eq!(hash_of(&picture, "/a/x").as_deref(), Some("old"));
    }

    #[test]
    fn a_read_that_began_before_a_write_but_shows_its_version_replaces_it() {
        let mut picture = MarathonPicture::default();
        let began = picture.tick();
        written(&mut picture, "/a/x", "new", "2026-01-01T00:00:02.000Z");
        // Marathon finished the write's deployment before the write's answer was recorded.
        let read = app("/a/x", "finished", Some("2026-01-01T00:00:02.000Z"));
        let (changed, now) = picture.apply_read(began, &id("/a/x"), Some((read, false)));
        assert_eq!(changed, Some(id("/a/x")));
        assert_eq!(now.unwrap().label("THESEUS_SPEC_HASH"), Some("finished"));
    }

    #[test]
    fn a_writes_answer_does_not_turn_back_a_read_that_shows_its_version_or_a_newer_one() {
        let mut picture = MarathonPicture::default();
        let began = picture.tick();
        let read = app("/a/x", "read", Some("2026-01-01T00:00:02.000Z"));
        picture.apply_read(began, &id("/a/x"), Some((read, false)));
        written(&mut picture, "/a/x", "same", "2026-01-01T00:00:02.000Z");
        written(&mut picture, "/a/x", "older", "2026-01-01T00:00:01.000Z");
        assert_eq!(hash_of(&picture, "/a/x").as_deref(), Some("read"));
        written(&mut picture, "/a/x", "newer", "2026-01-01T00:00:03.000Z");
        assert_eq!(hash_of(&picture, "/a/x").as_deref(), Some("newer"));
    }

    #[test]
    fn a_stale_app_stays_stale_until_a_read_that_began_after_the_mark() {
        let mut picture = MarathonPicture::default();
        let before = picture.tick();
        picture.mark_stale(&id("/a/x"));
        picture.apply_list(before, []);
        picture.apply_read(before, &id("/a/x"), None);
        assert!(
            picture.stale.contains(&id("/a/x")),
            "an earlier read cleared it"
        );

        let after = picture.tick();
        picture.apply_read(after, &id("/a/x"), Some((app("/a/x", "h", None), false)));
        assert!(!picture.stale.contains(&id("/a/x")));

        // A list that began after a mark clears it too.
        picture.mark_stale(&id("/a/x"));
        let later = picture.tick();
        picture.apply_list(later, [app("/a/x", "h", None)]);
        assert!(picture.stale.is_empty());
    }

    #[test]
    fn a_list_removes_only_what_it_should_have_shown() {
        let mut picture = MarathonPicture::default();
        let first = picture.tick();
        picture.apply_list(first, [app("/a/gone", "h", None)]);
        picture.apply_read(
            first,
            &id("/a/foreign"),
            Some((app("/a/foreign", "h", None), true)),
        );
        let began = picture.tick();
        written(&mut picture, "/a/new", "h", "2026-01-01T00:00:00.000Z");

        let changed = picture.apply_list(began, []);
        assert_eq!(changed, [id("/a/gone")]);
        assert!(
            picture.entries.contains_key(&id("/a/foreign")),
            "someone else's"
        );
        assert!(
            picture.entries.contains_key(&id("/a/new")),
            "written after the list began"
        );
    }

    #[test]
    fn a_deleted_app_is_not_brought_back_by_an_earlier_read() {
        let mut picture = MarathonPicture::default();
        let began = picture.tick();
        picture.record_write(id("/a/x"), None, |_| Some(None));
        picture.apply_read(began, &id("/a/x"), Some((app("/a/x", "h", None), false)));
        assert!(picture.entries.get(&id("/a/x")).unwrap().app.is_none());
    }

    #[test]
    fn a_list_applied_in_parts_ends_as_the_list_applied_whole() {
        let mut whole = MarathonPicture::default();
        let mut parts = MarathonPicture::default();
        for picture in [&mut whole, &mut parts] {
            let first = picture.tick();
            picture.apply_list(
                first,
                [
                    app("/a/x", "old", None),
                    app("/a/y", "old", None),
                    app("/a/gone", "old", None),
                ],
            );
        }
        let listed = || [app("/a/x", "listed", None), app("/a/y", "listed", None)];
        // Whole: the list began, a write came, then the list was applied at its end.
        let began = whole.tick();
        written(&mut whole, "/a/y", "written", "2026-01-01T00:00:03.000Z");
        let changed_whole = whole.apply_list(began, listed());
        // In parts: the same write comes between the list's first app and its second.
        let began = parts.tick();
        let [x, y] = listed();
        let mut list = ListApplied::began(began);
        list.apply(&mut parts, x);
        written(&mut parts, "/a/y", "written", "2026-01-01T00:00:03.000Z");
        list.apply(&mut parts, y);
        let changed_parts = list.finish(&mut parts);

        assert_eq!(changed_parts, changed_whole);
        for app in ["/a/x", "/a/y", "/a/gone"] {
            assert_eq!(hash_of(&parts, app), hash_of(&whole, app), "{app}");
        }
        assert_eq!(hash_of(&parts, "/a/x").as_deref(), Some("listed"));
        assert_eq!(
            hash_of(&parts, "/a/y").as_deref(),
            Some("written"),
            "the write came after the list began"
        );
        assert_eq!(hash_of(&parts, "/a/gone"), None);
    }
}
