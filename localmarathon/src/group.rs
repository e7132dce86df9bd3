//! Marathon's group tree, derived from app ids.
//!
//! localmarathon keeps apps only; groups exist implicitly as the prefixes of app ids, as they do
//! for a Marathon used through `/v2/apps` alone. A [`GroupSnapshot`] is an immutable, cheap
//! (shared `Arc`s) copy of all apps at one moment, serialised as Marathon's nested group JSON:
//! `{id, apps, groups, pods, dependencies, version}`.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use crate::app::AppDefinition;
use crate::app_id::GroupId;
use crate::timestamp::Timestamp;

/// All apps at one moment, sorted by id.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    /// Apps sorted by id.
    pub apps: Arc<[Arc<AppDefinition>]>,
    /// Root group version.
    pub version: Timestamp,
}

/// The JSON of one group, optionally with apps rendered by a caller.
pub struct GroupView<'a, F> {
    group: GroupId,
    apps: &'a [Arc<AppDefinition>],
    version: Timestamp,
    render: &'a F,
    embed_apps: bool,
    embed_groups: bool,
}

impl GroupSnapshot {
    /// The tree below `group` (the root for `/`), apps rendered as plain definitions.
    pub fn to_json(&self, group: &GroupId) -> Value {
        let render = |a: &AppDefinition| serde_json::to_value(a).unwrap_or(Value::Null);
        serde_json::to_value(self.view(group, &render, true, true)).unwrap_or(Value::Null)
    }

    /// A view of the tree below `group` rendering apps with `render`.
    pub fn view<'a, F: Fn(&AppDefinition) -> Value>(
        &'a self,
        group: &GroupId,
        render: &'a F,
        embed_apps: bool,
        embed_groups: bool,
    ) -> GroupView<'a, F> {
        GroupView {
            group: group.clone(),
            apps: &self.apps,
            version: self.version,
            render,
            embed_apps,
            embed_groups,
        }
    }

    /// Whether a group exists (the root always does; others while they hold an app).
    pub fn has_group(&self, group: &GroupId) -> bool {
        group.is_root() || self.apps.iter().any(|a| a.id.is_in(group))
    }
}

impl<F: Fn(&AppDefinition) -> Value> Serialize for GroupView<'_, F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let inside: Vec<&Arc<AppDefinition>> = self
            .apps
            .iter()
            .filter(|a| a.id.is_in(&self.group))
            .collect();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &self.group)?;
        if self.embed_apps {
            let direct: Vec<Value> = inside
                .iter()
                .filter(|a| a.id.parent() == self.group)
                .map(|a| (self.render)(a))
                .collect();
            map.serialize_entry("apps", &direct)?;
        }
        if self.embed_groups {
            let mut children: Vec<GroupId> = inside
                .iter()
                .filter_map(|a| self.group.child_towards(&a.id))
                .collect();
            children.dedup();
            let views: Vec<GroupView<'_, F>> = children
                .into_iter()
                .map(|g| GroupView {
                    group: g,
                    apps: self.apps,
                    version: self.version,
                    render: self.render,
                    embed_apps: self.embed_apps,
                    embed_groups: self.embed_groups,
                })
                .collect();
            map.serialize_entry("groups", &views)?;
        }
        map.serialize_entry("pods", &[] as &[Value])?;
        map.serialize_entry("dependencies", &[] as &[String])?;
        map.serialize_entry("version", &self.version)?;
        // `enforceRole` (Marathon 1.9+) is optional and left out: clients that predate it
        // (marathon-python builds groups from every key) reject unknown keys.
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_update::{AppUpdate, create_id};
    use serde_json::json;

    fn app(id: &str) -> Arc<AppDefinition> {
        let u = AppUpdate::from_value(&json!({"id": id, "cmd": "x"})).unwrap();
        let id = create_id(&u).unwrap();
        Arc::new(u.apply(None, id, Timestamp::from_millis(0)).unwrap())
    }

    #[test]
    fn groups_nest_by_id_prefix() {
        let snapshot = GroupSnapshot {
            apps: vec![
                app("/a"),
                app("/prod/db"),
                app("/prod/web/api"),
                app("/prod/web/ui"),
            ]
            .into(),
            version: Timestamp::from_millis(0),
        };
        let root = snapshot.to_json(&GroupId::root());
        assert_eq!(root["id"], "/");
        assert_eq!(root["apps"].as_array().unwrap().len(), 1);
        let prod = &root["groups"][0];
        assert_eq!(prod["id"], "/prod");
        assert_eq!(prod["apps"][0]["id"], "/prod/db");
        assert_eq!(prod["groups"][0]["id"], "/prod/web");
        assert_eq!(prod["groups"][0]["apps"].as_array().unwrap().len(), 2);
        assert!(snapshot.has_group(&GroupId::parse("/prod/web").unwrap()));
        assert!(!snapshot.has_group(&GroupId::parse("/nope").unwrap()));
    }
}
