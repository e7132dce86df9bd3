//! The task templates of app versions other than the one the snapshot holds: read from
//! Marathon once each, for the tasks still running them (the old tasks of a rolling update,
//! or tasks of a version the snapshot has not seen yet).
//!
//! What it promises: a version's definition is read (`GET /v2/apps/{id}/versions/{version}`)
//! at most once while tasks run it, since a version never changes; [`AppVersions::retain`]
//! forgets the versions no task runs any more. A version Marathon no longer keeps (it prunes
//! old ones) gives a template without ports, with the current definition's labels and
//! health checks: its tasks' ports cannot be named, and are not guessed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use theseus::marathon::{self, AppId, MarathonClient, Version};
use tracing::warn;

use super::record::TaskTemplate;

/// Templates of versions read, by app and version.
#[derive(Debug)]
pub struct AppVersions {
    client: MarathonClient,
    templates: Mutex<HashMap<AppId, HashMap<Version, Arc<TaskTemplate>>>>,
}

impl AppVersions {
    /// Reads versions with `client`.
    pub fn new(client: MarathonClient) -> AppVersions {
        AppVersions {
            client,
            templates: Mutex::default(),
        }
    }

    fn templates(&self) -> MutexGuard<'_, HashMap<AppId, HashMap<Version, Arc<TaskTemplate>>>> {
        self.templates.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The template of `version` of `app`, read from Marathon unless read before; `current`
    /// is the template of the app's current definition, for a version Marathon no longer
    /// keeps.
    pub async fn template(
        &self,
        app: &AppId,
        version: &Version,
        current: &TaskTemplate,
    ) -> Result<Arc<TaskTemplate>, marathon::Error> {
        if let Some(template) = self.templates().get(app).and_then(|v| v.get(version)) {
            return Ok(Arc::clone(template));
        }
        let template = match self.client.app_version(app, version).await {
            Ok(definition) => TaskTemplate::of(&definition),
            Err(marathon::Error::NotFound { .. }) => {
                warn!(
                    app = %app,
                    %version,
                    "Marathon no longer keeps the version some tasks run; their ports are \
                     recorded without names"
                );
                current.without_ports()
            }
            Err(error) => return Err(error),
        };
        let template = Arc::new(template);
        self.templates()
            .entry(app.clone())
            .or_default()
            .insert(version.clone(), Arc::clone(&template));
        Ok(template)
    }

    /// Forgets the versions of `app` but those in `running`.
    pub fn retain(&self, app: &AppId, running: &HashSet<&Version>) {
        let mut templates = self.templates();
        if let Some(versions) = templates.get_mut(app) {
            versions.retain(|version, _| running.contains(version));
            if versions.is_empty() {
                templates.remove(app);
            }
        }
    }
}
