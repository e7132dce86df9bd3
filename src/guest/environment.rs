//! What a task knows about itself from its environment: the variables theseus and Marathon
//! set in every task, read once and never guessed.
//!
//! | call | variable (old maestro name) |
//! |---|---|
//! | [`environment_name`](TaskEnvironment::environment_name) | `THESEUS_ENVIRONMENT`, else the last segment of `THESEUS_PREFIX`, else `default` |
//! | [`service_name`](TaskEnvironment::service_name) | `SERVICE_NAME` |
//! | [`deployment_name`](TaskEnvironment::deployment_name) | `DEPLOYMENT_NAME` |
//! | [`container_name`](TaskEnvironment::container_name) | `MESOS_TASK_ID` (`CONTAINER_NAME`) |
//! | [`host_address`](TaskEnvironment::host_address) | `HOST` (`CONTAINER_HOST_ADDRESS`) |
//! | [`etcd_endpoints`](TaskEnvironment::etcd_endpoints) | `ETCD_ENDPOINTS`, comma-separated |
//! | [`port_variable`](TaskEnvironment::port_variable) | `PORT_<NAME>` (Marathon's) |
//!
//! The environment name is the theseus installation the task belongs to: installations share
//! an etcd under different prefixes (`THESEUS_PREFIX=/prod` → `prod`), and one without a prefix
//! is `default`, the name the old guestutils always returned.
//!
//! A missing variable is an [`Error::MissingVariable`] naming it; nothing here falls back to
//! a made-up value.

use std::collections::BTreeMap;

use super::Error;
use crate::api::{DnsLabel, environment};
use crate::store::Layout;

/// The environment name of an installation without a prefix (the old guestutils' answer).
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// A snapshot of a task's environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskEnvironment {
    vars: BTreeMap<String, String>,
}

impl TaskEnvironment {
    /// The environment of this process (variables that are not UTF-8 are ignored).
    pub fn from_process() -> TaskEnvironment {
        TaskEnvironment::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// An environment holding exactly `vars` (for tests, and for callers that read their
    /// configuration elsewhere).
    pub fn from_vars<I, K, V>(vars: I) -> TaskEnvironment
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        TaskEnvironment {
            vars: vars
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }

    /// This environment with `name` set to `value` (a command-line flag that overrides the
    /// variable, say).
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, when set and not empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The first of `name` and its old spellings that is set, or an error naming them all.
    fn required(
        &self,
        name: &'static str,
        alternatives: &'static [&'static str],
    ) -> Result<&str, Error> {
        std::iter::once(name)
            .chain(alternatives.iter().copied())
            .find_map(|candidate| self.var(candidate))
            .ok_or(Error::MissingVariable { name, alternatives })
    }

    /// The theseus installation this task belongs to: `THESEUS_ENVIRONMENT` when set, else the
    /// last segment of `THESEUS_PREFIX` (`/envs/prod` → `prod`), else `default`.
    pub fn environment_name(&self) -> String {
        if let Some(name) = self.var("THESEUS_ENVIRONMENT") {
            return name.to_owned();
        }
        self.var(environment::THESEUS_PREFIX)
            .and_then(|prefix| prefix.rsplit('/').find(|segment| !segment.is_empty()))
            .unwrap_or(DEFAULT_ENVIRONMENT)
            .to_owned()
    }

    /// The key layout of `THESEUS_PREFIX` (none when unset).
    pub fn layout(&self) -> Result<Layout, Error> {
        Ok(Layout::new(
            self.var(environment::THESEUS_PREFIX).unwrap_or(""),
        )?)
    }

    /// The service this task belongs to (`SERVICE_NAME`).
    pub fn service_name(&self) -> Result<DnsLabel, Error> {
        self.label(environment::SERVICE_NAME, "service")
    }

    /// The deployment this task belongs to (`DEPLOYMENT_NAME`).
    pub fn deployment_name(&self) -> Result<DnsLabel, Error> {
        self.label(environment::DEPLOYMENT_NAME, "name")
    }

    fn label(&self, name: &'static str, what: &'static str) -> Result<DnsLabel, Error> {
        let value = self.required(name, &[])?;
        DnsLabel::parse(what, value).map_err(|error| Error::InvalidVariable {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: error.to_string(),
        })
    }

    /// This task's container name: its Mesos task id (`MESOS_TASK_ID`, old `CONTAINER_NAME`).
    pub fn container_name(&self) -> Result<String, Error> {
        Ok(self
            .required(environment::MESOS_TASK_ID, &["CONTAINER_NAME"])?
            .to_owned())
    }

    /// The address of the agent this task runs on, which other tasks connect to (`HOST`, old
    /// `CONTAINER_HOST_ADDRESS`).
    pub fn host_address(&self) -> Result<String, Error> {
        Ok(self
            .required(environment::HOST, &["CONTAINER_HOST_ADDRESS"])?
            .to_owned())
    }

    /// etcd's client URLs (`ETCD_ENDPOINTS`, comma-separated).
    pub fn etcd_endpoints(&self) -> Result<Vec<String>, Error> {
        let endpoints: Vec<String> = self
            .required(environment::ETCD_ENDPOINTS, &[])?
            .split(',')
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(Error::MissingVariable {
                name: environment::ETCD_ENDPOINTS,
                alternatives: &[],
            });
        }
        Ok(endpoints)
    }

    /// Marathon's `PORT_<NAME>` for the named port: the port on the agent. Port names may hold
    /// `-`, which Marathon keeps in the variable's name; `PORT_<NAME>` with `_` for `-` is
    /// accepted too. A value that is not a port number is an error naming the variable.
    pub fn port_variable(&self, name: &str) -> Result<Option<u16>, Error> {
        let upper = name.to_ascii_uppercase();
        let spellings = [
            format!("PORT_{upper}"),
            format!("PORT_{}", upper.replace('-', "_")),
        ];
        let Some((variable, value)) = spellings
            .iter()
            .find_map(|variable| self.var(variable).map(|value| (variable, value)))
        else {
            return Ok(None);
        };
        value
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .map(Some)
            .ok_or_else(|| Error::InvalidVariable {
                name: variable.clone(),
                value: value.to_owned(),
                reason: "not a port number (1 to 65535)".to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> TaskEnvironment {
        TaskEnvironment::from_vars(vars.iter().copied())
    }

    #[test]
    fn environment_name_prefers_the_explicit_name_then_the_prefix_then_default() {
        assert_eq!(env(&[]).environment_name(), "default");
        assert_eq!(env(&[("THESEUS_PREFIX", "")]).environment_name(), "default");
        assert_eq!(
            env(&[("THESEUS_PREFIX", "/")]).environment_name(),
            "default"
        );
        assert_eq!(
            env(&[("THESEUS_PREFIX", "/prod")]).environment_name(),
            "prod"
        );
        assert_eq!(
            env(&[("THESEUS_PREFIX", "/envs/staging/")]).environment_name(),
            "staging"
        );
        assert_eq!(
            env(&[
                ("THESEUS_PREFIX", "/prod"),
                ("THESEUS_ENVIRONMENT", "eu-prod")
            ])
            .environment_name(),
            "eu-prod"
        );
    }

    #[test]
    fn container_and_host_fall_back_to_the_old_names() {
        let old = env(&[
            ("CONTAINER_NAME", "ingestor-1"),
            ("CONTAINER_HOST_ADDRESS", "10.0.0.5"),
        ]);
        assert_eq!(old.container_name().unwrap(), "ingestor-1");
        assert_eq!(old.host_address().unwrap(), "10.0.0.5");
        let both = env(&[
            ("MESOS_TASK_ID", "ingestor_dev.7"),
            ("CONTAINER_NAME", "ingestor-1"),
            ("HOST", "10.0.0.6"),
            ("CONTAINER_HOST_ADDRESS", "10.0.0.5"),
        ]);
        assert_eq!(both.container_name().unwrap(), "ingestor_dev.7");
        assert_eq!(both.host_address().unwrap(), "10.0.0.6");
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let error = env(&[("MESOS_TASK_ID", "")]).container_name().unwrap_err();
        assert!(matches!(
            error,
            Error::MissingVariable {
                name: "MESOS_TASK_ID",
                alternatives: ["CONTAINER_NAME"]
            }
        ));
        assert!(matches!(
            env(&[]).service_name(),
            Err(Error::MissingVariable {
                name: "SERVICE_NAME",
                ..
            })
        ));
    }

    #[test]
    fn a_service_name_that_is_not_a_dns_label_is_named_with_its_variable() {
        let error = env(&[("SERVICE_NAME", "Ingestor")])
            .service_name()
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("SERVICE_NAME=`Ingestor`"), "{text}");
    }

    #[test]
    fn port_variables_are_read_by_name_in_either_spelling() {
        let vars = env(&[
            ("PORT_API", "31005"),
            ("PORT_ADMIN_UI", "31006"),
            ("PORT_BAD", "x"),
        ]);
        assert_eq!(vars.port_variable("api").unwrap(), Some(31005));
        assert_eq!(vars.port_variable("admin-ui").unwrap(), Some(31006));
        assert_eq!(vars.port_variable("ssh").unwrap(), None);
        let error = vars.port_variable("bad").unwrap_err();
        assert!(error.to_string().contains("PORT_BAD=`x`"), "{error}");
    }

    #[test]
    fn etcd_endpoints_are_split_on_commas() {
        let vars = env(&[("ETCD_ENDPOINTS", "http://a:2379, http://b:2379,")]);
        assert_eq!(
            vars.etcd_endpoints().unwrap(),
            ["http://a:2379", "http://b:2379"]
        );
        assert!(env(&[("ETCD_ENDPOINTS", " , ")]).etcd_endpoints().is_err());
    }
}
