//! `--state-dir`: app definitions (with their versions) kept across restarts of localmarathon.
//!
//! Real Marathon keeps its group tree in ZooKeeper, so apps survive a restart of Marathon; tasks
//! are Mesos's business. Here tasks die with localmarathon, so a restart relaunches them: every
//! saved app comes back with its versions and a fresh deployment starts its instances. The file
//! (`apps.json`, the apps as the API writes them) is replaced atomically (write, then rename), so
//! a crash leaves either the old or the new state, never half of one. Deployments in flight, task
//! failures and backoff are not kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::AppDefinition;
use crate::app_id::AppId;
use crate::app_update::AppUpdate;
use crate::timestamp::Timestamp;

/// File name inside the state directory.
pub const APPS_FILE: &str = "apps.json";

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The directory or file could not be read or written.
    #[error("state directory {path}: {source}; check that it exists and is writable")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what localmarathon writes.
    #[error("{path} is not a localmarathon state file ({reason}); move it away to start empty")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl PersistError {
    /// A label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PersistError::Io { .. } => "io",
            PersistError::Corrupt { .. } => "corrupt",
        }
    }
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// One app's saved versions, oldest first; the last is the current definition.
pub type SavedApp = Vec<AppDefinition>;

fn corrupt(path: &Path, reason: impl Into<String>) -> PersistError {
    PersistError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads back one app definition as localmarathon wrote it.
fn definition_from_json(path: &Path, value: &Value) -> Result<AppDefinition, PersistError> {
    let update =
        AppUpdate::from_value(value).map_err(|e| corrupt(path, format!("{e}: {value}")))?;
    let raw_id = value["id"]
        .as_str()
        .ok_or_else(|| corrupt(path, "an app has no id"))?;
    let id = AppId::parse(raw_id).map_err(|e| corrupt(path, e.to_string()))?;
    let stamp = |v: &Value| -> Result<Timestamp, PersistError> {
        v.as_str()
            .ok_or_else(|| corrupt(path, format!("{raw_id}: missing timestamp")))
            .and_then(|s| Timestamp::parse(s).map_err(|e| corrupt(path, e.to_string())))
    };
    let version = stamp(&value["version"])?;
    let mut def = update
        .apply(None, id, version)
        .map_err(|e| corrupt(path, format!("{raw_id}: {e}")))?;
    def.version_info.last_scaling_at = stamp(&value["versionInfo"]["lastScalingAt"])?;
    def.version_info.last_config_change_at = stamp(&value["versionInfo"]["lastConfigChangeAt"])?;
    Ok(def)
}

impl StateDir {
    /// Uses (and creates) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, PersistError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| PersistError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(StateDir { dir })
    }

    fn file(&self) -> PathBuf {
        self.dir.join(APPS_FILE)
    }

    /// The saved apps (none if nothing was saved yet).
    pub fn load(&self) -> Result<Vec<SavedApp>, PersistError> {
        let path = self.file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(PersistError::Io { path, source }),
        };
        let value: Value =
            serde_json::from_str(&text).map_err(|e| corrupt(&path, e.to_string()))?;
        let apps = value["apps"]
            .as_array()
            .ok_or_else(|| corrupt(&path, "no \"apps\" array"))?;
        apps.iter()
            .map(|app| {
                app["versions"]
                    .as_array()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| corrupt(&path, "an app has no versions"))?
                    .iter()
                    .map(|v| definition_from_json(&path, v))
                    .collect()
            })
            .collect()
    }

    /// Replaces the saved apps.
    pub fn save(&self, apps: &[Vec<Arc<AppDefinition>>]) -> Result<(), PersistError> {
        let path = self.file();
        let body = json!({
            "apps": apps
                .iter()
                .map(|versions| {
                    let versions: Vec<&AppDefinition> = versions.iter().map(|v| &**v).collect();
                    json!({ "versions": versions })
                })
                .collect::<Vec<_>>()
        });
        let tmp = self.dir.join(format!("{APPS_FILE}.tmp"));
        let io = |source| PersistError::Io {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, serde_json::to_vec_pretty(&body).unwrap_or_default()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_update::create_id;

    #[test]
    fn saved_apps_come_back_with_their_versions() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert!(state.load().unwrap().is_empty());
        let make = |body: Value, at: i64| {
            let u = AppUpdate::from_value(&body).unwrap();
            let id = create_id(&u).unwrap();
            let mut def = u.apply(None, id, Timestamp::from_millis(at)).unwrap();
            def.port_definitions.as_mut().unwrap()[0].port = 10007;
            Arc::new(def)
        };
        let v1 = make(
            json!({"id": "/a", "cmd": "sleep 1", "labels": {"k": "v"}}),
            1_000,
        );
        let mut v2 = (*make(
            json!({"id": "/a", "cmd": "sleep 1", "instances": 3, "labels": {"k": "v"}}),
            2_000,
        ))
        .clone();
        v2.version_info.last_config_change_at = v1.version;
        let v2 = Arc::new(v2);
        state.save(&[vec![v1.clone(), v2.clone()]]).unwrap();
        let loaded = state.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0], vec![(*v1).clone(), (*v2).clone()]);
        std::fs::write(dir.path().join(APPS_FILE), "{\"nope\": 1}").unwrap();
        assert!(matches!(state.load(), Err(PersistError::Corrupt { .. })));
    }
}
