//! Which Marathon apps belong to this theseus installation, and to which deployment: the
//! app id of a key, the key of an app id, and the ownership labels. Both of the controller's
//! reconcilers decide with it; it depends on neither.
//!
//! What it promises:
//! - The app id is `/<group>/<service>/<name>`; [`Installation::key_of`] inverts it.
//! - [`Installation::ownership`] says an app is owned only when its id is the key's, its
//!   labels say theseus manages it for that key, and its tasks are told this installation's
//!   prefix; only then may a controller change or delete it.

use crate::api::{DeploymentKey, DnsLabel, environment};
use crate::marathon::{App, AppId, AppIdError};

/// Marks an app as managed by theseus; the value is [`MANAGED_VALUE`].
pub const MANAGED_LABEL: &str = "THESEUS_MANAGED";
/// The value of [`MANAGED_LABEL`].
pub const MANAGED_VALUE: &str = "true";
/// The service of the deployment that owns the app.
pub const SERVICE_LABEL: &str = "THESEUS_SERVICE";
/// The name of the deployment that owns the app.
pub const DEPLOYMENT_LABEL: &str = "THESEUS_DEPLOYMENT";
/// The hash of the spec (and mapping inputs) the app was last written from.
pub const SPEC_HASH_LABEL: &str = "THESEUS_SPEC_HASH";
/// The Marathon label selector of every app theseus manages.
pub const MANAGED_SELECTOR: &str = "THESEUS_MANAGED==true";

/// Why an installation cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallationError {
    /// The Marathon group is not a Marathon path.
    #[error(
        "--marathon-group `{group}` is not a Marathon group path: {source}; give one such as \
         `/theseus` or `prod/theseus`"
    )]
    Group {
        /// The group as given.
        group: String,
        /// Why.
        #[source]
        source: AppIdError,
    },
}

/// One theseus installation as Marathon sees it: the group its apps live under, and the etcd
/// prefix its tasks are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    group: Vec<String>,
    prefix: String,
}

/// Whether an app in Marathon belongs to a deployment of this controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// It does: theseus may change and delete it.
    Owned,
    /// It does not; theseus must leave it alone. The text says why, for the status.
    NotOwned(String),
}

impl Installation {
    /// The installation placing apps under `group` (`None` or empty: the root group), with
    /// etcd prefix `prefix`.
    pub fn new(group: Option<&str>, prefix: &str) -> Result<Self, InstallationError> {
        let group = match group.map(str::trim) {
            None | Some("") | Some("/") => Vec::new(),
            Some(text) => AppId::parse(text)
                .map_err(|source| InstallationError::Group {
                    group: text.to_owned(),
                    source,
                })?
                .segments()
                .map(str::to_owned)
                .collect(),
        };
        Ok(Self {
            group,
            prefix: prefix.to_owned(),
        })
    }

    /// The etcd prefix its tasks are told.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The app id of `key`: `/<group>/<service>/<name>`.
    pub fn app_id(&self, key: &DeploymentKey) -> AppId {
        let segments = self
            .group
            .iter()
            .map(String::as_str)
            .chain([key.service.as_str(), key.name.as_str()]);
        AppId::from_segments(segments).expect("DNS labels are valid Marathon path segments")
    }

    /// The deployment whose app id `app` is, if it is one: directly under the group, two
    /// segments that are DNS labels.
    pub fn key_of(&self, app: &AppId) -> Option<DeploymentKey> {
        let segments: Vec<&str> = app.segments().collect();
        let group: Vec<&str> = self.group.iter().map(String::as_str).collect();
        let rest = segments.strip_prefix(group.as_slice())?;
        match rest {
            [service, name] => Some(DeploymentKey {
                service: DnsLabel::parse("service", service).ok()?,
                name: DnsLabel::parse("name", name).ok()?,
            }),
            _ => None,
        }
    }

    /// Whether `app` belongs to `key` under this controller: the id is `key`'s, the labels
    /// say theseus manages it for `key`, and its tasks are told this controller's prefix (so
    /// a controller started with another `--prefix` never takes another installation's apps).
    pub fn ownership(&self, key: &DeploymentKey, app: &App) -> Ownership {
        let id = self.app_id(key);
        if app.id != id {
            return Ownership::NotOwned(format!(
                "Marathon app `{}` is not the app of {key} (`{id}`)",
                app.id
            ));
        }
        if app.label(MANAGED_LABEL) != Some(MANAGED_VALUE) {
            return Ownership::NotOwned(format!(
                "Marathon app `{id}` exists without the label {MANAGED_LABEL}={MANAGED_VALUE}, \
                 so theseus did not create it and leaves it alone; delete or rename it, or \
                 choose another deployment name"
            ));
        }
        if app.label(SERVICE_LABEL) != Some(key.service.as_str())
            || app.label(DEPLOYMENT_LABEL) != Some(key.name.as_str())
        {
            return Ownership::NotOwned(format!(
                "Marathon app `{id}` is labelled as deployment {}/{}, not {key}; theseus leaves \
                 it alone; fix its {SERVICE_LABEL} and {DEPLOYMENT_LABEL} labels or delete it",
                app.label(SERVICE_LABEL).unwrap_or("?"),
                app.label(DEPLOYMENT_LABEL).unwrap_or("?"),
            ));
        }
        let prefix = app
            .env
            .as_ref()
            .and_then(|env| env.value(environment::THESEUS_PREFIX));
        if prefix != Some(self.prefix.as_str()) {
            return Ownership::NotOwned(format!(
                "Marathon app `{id}` belongs to the theseus installation with prefix `{}`, not \
                 `{}`; theseus leaves it alone",
                prefix.unwrap_or("(none)"),
                self.prefix
            ));
        }
        Ownership::Owned
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::validate_spec;
    use crate::mapping::Mapping;

    fn key() -> DeploymentKey {
        "ingestor/dev".parse().unwrap()
    }

    fn mapping() -> Mapping {
        Mapping::new(None, vec!["http://10.0.0.1:2379".into()], "").unwrap()
    }

    #[test]
    fn app_ids_live_under_the_group_and_map_back_to_their_key() {
        let grouped = Mapping::new(Some("prod//theseus/"), vec![], "").unwrap();
        let id = grouped.app_id(&key());
        assert_eq!(id.as_str(), "/prod/theseus/ingestor/dev");
        assert_eq!(grouped.key_of(&id), Some(key()));
        assert_eq!(
            grouped.key_of(&AppId::parse("/ingestor/dev").unwrap()),
            None
        );
        assert_eq!(
            grouped.key_of(&AppId::parse("/prod/theseus/a/b/c").unwrap()),
            None
        );
        assert_eq!(
            grouped.key_of(&AppId::parse("/prod/theseus/a.b/c").unwrap()),
            None
        );
        assert_eq!(
            mapping().key_of(&AppId::parse("/ingestor/dev").unwrap()),
            Some(key())
        );
        assert!(Mapping::new(Some("/Bad_Group"), vec![], "").is_err());
    }

    #[test]
    fn only_apps_labelled_for_the_key_and_prefix_are_owned() {
        let mapping = mapping();
        let owned = mapping
            .desired_app(&key(), &validate_spec(&json!({"cmd": "x"})).unwrap())
            .app;
        assert_eq!(mapping.ownership(&key(), &owned), Ownership::Owned);

        let mut unlabelled = owned.clone();
        unlabelled.labels = None;
        let mut other_deployment = owned.clone();
        other_deployment
            .labels
            .as_mut()
            .unwrap()
            .insert(DEPLOYMENT_LABEL, "prod");
        let mut other_prefix = owned.clone();
        other_prefix
            .env
            .as_mut()
            .unwrap()
            .insert("THESEUS_PREFIX", "/other");
        let mut managed_false = owned.clone();
        managed_false
            .labels
            .as_mut()
            .unwrap()
            .insert(MANAGED_LABEL, "false");
        for app in [unlabelled, other_deployment, other_prefix, managed_false] {
            assert!(
                matches!(mapping.ownership(&key(), &app), Ownership::NotOwned(_)),
                "{app:?}"
            );
        }
        let other_key: DeploymentKey = "ingestor/prod".parse().unwrap();
        assert!(matches!(
            mapping.ownership(&other_key, &owned),
            Ownership::NotOwned(_)
        ));
    }
}
