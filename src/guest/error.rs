//! What can go wrong finding peers and watching them, in words a task's owner can act on.
//!
//! Every message is one line and names the environment variable, service, container or port
//! involved, and what is known instead (the ports a task has, the tasks a service runs).

use std::time::Duration;

use crate::api::KeyError;

/// An error of guestutils or of the watcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A variable the task's environment should carry is not set.
    #[error(
        "the environment variable {name} is not set{also}; theseus sets it in every task it \
         deploys, so set it by hand when running outside one",
        also = alternatives_text(.alternatives)
    )]
    MissingVariable {
        /// The variable looked for first.
        name: &'static str,
        /// Older names also accepted.
        alternatives: &'static [&'static str],
    },

    /// A variable is set to something that cannot be used.
    #[error("the environment variable {name}=`{value}` is not usable: {reason}")]
    InvalidVariable {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A service or deployment name is not a DNS label.
    #[error(transparent)]
    InvalidName(#[from] KeyError),

    /// etcd failed: unreachable, refused, or a value that does not decode.
    #[error(transparent)]
    Store(#[from] crate::store::Error),

    /// No task of the service is recorded under `/observed`.
    #[error(
        "service `{service}` has no task recorded under {key}; check the service name and that \
         it is deployed (`theseus get {service}`)"
    )]
    NoSuchService {
        /// The service.
        service: String,
        /// The etcd prefix that was read.
        key: String,
    },

    /// The service has no task with this id.
    #[error(
        "service `{service}` has no container `{container}`; its containers are: {known}",
        known = list_text(.known)
    )]
    NoSuchContainer {
        /// The service.
        service: String,
        /// The container name (the Mesos task id) asked for.
        container: String,
        /// The task ids the service has.
        known: Vec<String>,
    },

    /// A task has no port of this name.
    #[error(
        "container `{container}` of service `{service}` has no port `{port}`; its ports are: {known}",
        known = list_text(.known)
    )]
    NoSuchPort {
        /// The service.
        service: String,
        /// The container (task id).
        container: String,
        /// The port name asked for.
        port: String,
        /// The port names the task has.
        known: Vec<String>,
    },

    /// This task's port cannot be told yet (its record is not written and nothing else says).
    #[error(
        "cannot tell port `{port}` of container `{container}` of service `{service}`: {reason}"
    )]
    PortUnknown {
        /// The service.
        service: String,
        /// The container (task id).
        container: String,
        /// The port name asked for.
        port: String,
        /// Why, naming what was looked at.
        reason: String,
    },

    /// Fewer serving tasks than asked for.
    #[error(
        "service `{service}` has {found} serving task{s}{with_labels} ({recorded} recorded), \
         {wanted} wanted{waited}; lower --minimum or wait with --wait",
        s = if *.found == 1 { "" } else { "s" },
        with_labels = labels_text(.labels),
        waited = waited_text(.waited),
    )]
    TooFewNodes {
        /// The service.
        service: String,
        /// Serving tasks that carry the labels.
        found: usize,
        /// The minimum asked for.
        wanted: usize,
        /// Task records of the service, serving or not.
        recorded: usize,
        /// The labels asked for.
        labels: Vec<String>,
        /// How long the call waited for the minimum, if it did.
        waited: Option<Duration>,
    },

    /// The task's own address cannot be found.
    #[error("cannot tell this container's internal address: {reason}")]
    NoInternalAddress {
        /// Why every way of finding it failed.
        reason: String,
    },

    /// The watcher was given no service to watch.
    #[error("no service to watch: give --services a,b or set WATCHES=a,b")]
    NoServices,
}

impl Error {
    /// A short, stable label for metrics and logs (`missing_variable`, `too_few_nodes`, ...).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingVariable { .. } => "missing_variable",
            Error::InvalidVariable { .. } => "invalid_variable",
            Error::InvalidName(_) => "invalid_name",
            Error::Store(error) => error.metric_label(),
            Error::NoSuchService { .. } => "no_such_service",
            Error::NoSuchContainer { .. } => "no_such_container",
            Error::NoSuchPort { .. } => "no_such_port",
            Error::PortUnknown { .. } => "port_unknown",
            Error::TooFewNodes { .. } => "too_few_nodes",
            Error::NoInternalAddress { .. } => "no_internal_address",
            Error::NoServices => "no_services",
        }
    }
}

fn alternatives_text(alternatives: &[&str]) -> String {
    match alternatives {
        [] => String::new(),
        names => format!(" (nor {})", names.join(", ")),
    }
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(|item| format!("`{item}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn labels_text(labels: &[String]) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!(" with labels {}", labels.join(","))
    }
}

fn waited_text(waited: &Option<Duration>) -> String {
    match waited {
        Some(waited) => format!(" after waiting {}", humantime::format_duration(*waited)),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_nodes_names_the_service_the_counts_and_the_labels() {
        let error = Error::TooFewNodes {
            service: "ingestor".into(),
            found: 1,
            wanted: 3,
            recorded: 4,
            labels: vec!["dev".into(), "eu".into()],
            waited: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            error.to_string(),
            "service `ingestor` has 1 serving task with labels dev,eu (4 recorded), 3 wanted \
             after waiting 2s; lower --minimum or wait with --wait"
        );
    }

    #[test]
    fn a_missing_port_lists_the_ports_the_container_has() {
        let error = Error::NoSuchPort {
            service: "ingestor".into(),
            container: "ingestor_dev.1".into(),
            port: "web".into(),
            known: vec!["api".into(), "ssh".into()],
        };
        let text = error.to_string();
        assert!(text.contains("`ingestor_dev.1`"), "{text}");
        assert!(text.contains("no port `web`"), "{text}");
        assert!(text.ends_with("its ports are: `api`, `ssh`"), "{text}");
    }

    #[test]
    fn a_missing_variable_names_its_old_spelling_too() {
        let error = Error::MissingVariable {
            name: "MESOS_TASK_ID",
            alternatives: &["CONTAINER_NAME"],
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "the environment variable MESOS_TASK_ID is not set (nor CONTAINER_NAME)"
            ),
            "{text}"
        );
    }
}
