//! Where things live in etcd: the key layout of the design under a root prefix.
//!
//! ```text
//! <prefix>/desired/<service>/<name>                    Deployment spec
//! <prefix>/observed/<service>/<name>/status            DeploymentStatus
//! <prefix>/observed/<service>/<name>/tasks/<task-id>   TaskRecord
//! <prefix>/observed/<service>/<name>/history/<rev>     RevisionRecord (rev: /desired mod_revision)
//! <prefix>/observed/<service>/<name>/journal/<seq>     JournalEntry (seq: 10 digits, from 1)
//! <prefix>/theseus/leader/...                          election keys
//! ```
//!
//! The prefix is empty by default (keys start at `/desired`). Every key the rest of theseus
//! reads or writes is built here, and [`Layout::parse`] is the exact inverse, so no other
//! code splits keys by hand.

use crate::api::{DeploymentKey, DnsLabel, KeyError};

use super::{Error, Revision};

/// The key layout under one root prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Empty, or `/seg/seg` without a trailing slash.
    prefix: String,
}

/// What a key of the layout names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPath {
    /// `<p>/desired/<service>/<name>`.
    Desired(DeploymentKey),
    /// `<p>/observed/<service>/<name>/status`.
    Status(DeploymentKey),
    /// `<p>/observed/<service>/<name>/tasks/<task-id>`.
    Task {
        /// The deployment the task belongs to.
        key: DeploymentKey,
        /// The task id, opaque (Marathon's).
        task_id: String,
    },
    /// `<p>/observed/<service>/<name>/history/<revision>`.
    History {
        /// The deployment.
        key: DeploymentKey,
        /// The `/desired` revision the record is about.
        revision: Revision,
    },
    /// `<p>/observed/<service>/<name>/journal/<sequence>`.
    Journal {
        /// The deployment.
        key: DeploymentKey,
        /// The entry's place in the journal, from 1.
        sequence: u64,
    },
}

impl Layout {
    /// The layout under `prefix`. Slashes are normalised: `theseus`, `/theseus` and
    /// `/theseus/` are the same prefix; `""` and `"/"` mean none. Each segment may hold ASCII
    /// letters, digits, `.`, `_` and `-` (not `.` or `..` alone).
    pub fn new(prefix: &str) -> Result<Layout, Error> {
        let invalid = |reason: String| Error::InvalidPrefix {
            prefix: prefix.to_owned(),
            reason,
        };
        let mut normal = String::new();
        for segment in prefix.split('/').filter(|segment| !segment.is_empty()) {
            if segment == "." || segment == ".." {
                return Err(invalid(format!("segment `{segment}` is not allowed")));
            }
            if let Some(bad) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return Err(invalid(format!(
                    "character {bad:?} is not allowed; use letters, digits, `.`, `_`, `-` and `/`"
                )));
            }
            normal.push('/');
            normal.push_str(segment);
        }
        Ok(Layout { prefix: normal })
    }

    /// The normalised prefix: `""` or `/seg[/seg...]`, never ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<p>/desired/`: every desired spec.
    pub fn desired_root(&self) -> String {
        format!("{}/desired/", self.prefix)
    }

    /// `<p>/desired/<service>/`: the desired specs of one service.
    pub fn desired_service(&self, service: &DnsLabel) -> String {
        format!("{}/desired/{service}/", self.prefix)
    }

    /// `<p>/desired/<service>/<name>`: one desired spec.
    pub fn desired(&self, key: &DeploymentKey) -> String {
        format!("{}/desired/{}/{}", self.prefix, key.service, key.name)
    }

    /// `<p>/observed/`: everything observed.
    pub fn observed_root(&self) -> String {
        format!("{}/observed/", self.prefix)
    }

    /// `<p>/observed/<service>/`: what is observed of one service.
    pub fn observed_service(&self, service: &DnsLabel) -> String {
        format!("{}/observed/{service}/", self.prefix)
    }

    /// `<p>/observed/<service>/<name>/`: what is observed of one deployment.
    pub fn observed(&self, key: &DeploymentKey) -> String {
        format!("{}/observed/{}/{}/", self.prefix, key.service, key.name)
    }

    /// `<p>/observed/<service>/<name>/status`.
    pub fn status(&self, key: &DeploymentKey) -> String {
        format!("{}status", self.observed(key))
    }

    /// `<p>/observed/<service>/<name>/tasks/`: the tasks of one deployment.
    pub fn tasks(&self, key: &DeploymentKey) -> String {
        format!("{}tasks/", self.observed(key))
    }

    /// `<p>/observed/<service>/<name>/tasks/<task-id>`. Task ids are Marathon's and never
    /// hold `/`; one that did would not [`parse`](Self::parse) back.
    pub fn task(&self, key: &DeploymentKey, task_id: &str) -> String {
        format!("{}{task_id}", self.tasks(key))
    }

    /// `<p>/observed/<service>/<name>/history/`: the revision history of one deployment.
    pub fn history(&self, key: &DeploymentKey) -> String {
        format!("{}history/", self.observed(key))
    }

    /// `<p>/observed/<service>/<name>/history/<revision>`.
    pub fn history_record(&self, key: &DeploymentKey, revision: Revision) -> String {
        format!("{}{revision}", self.history(key))
    }

    /// `<p>/observed/<service>/<name>/journal/`: the decision journal of one deployment.
    pub fn journal(&self, key: &DeploymentKey) -> String {
        format!("{}journal/", self.observed(key))
    }

    /// `<p>/observed/<service>/<name>/journal/<sequence>`, the sequence in 10 digits so that
    /// etcd lists the entries in order.
    pub fn journal_entry(&self, key: &DeploymentKey, sequence: u64) -> String {
        format!("{}{sequence:010}", self.journal(key))
    }

    /// `<p>/theseus/leader/`: where controller replicas campaign.
    pub fn leader_root(&self) -> String {
        format!("{}/theseus/leader/", self.prefix)
    }

    /// The deployment a key under `<p>/desired/` names; `None` for a key elsewhere, and
    /// why it names none for a key under `<p>/desired/` of another shape than
    /// `<service>/<name>` or whose labels are not DNS labels.
    pub fn desired_key(&self, key: &str) -> Option<Result<DeploymentKey, KeyError>> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("/desired/")?;
        Some(match rest.split('/').collect::<Vec<_>>()[..] {
            [service, name] => DeploymentKey::new(service, name),
            _ => Err(KeyError::NotAKey {
                value: rest.to_owned(),
            }),
        })
    }

    /// What `key` names, if it is a desired spec, a status, a task record, a history record or
    /// a journal entry of this layout.
    pub fn parse(&self, key: &str) -> Option<KeyPath> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        let deployment = |service: &str, name: &str| DeploymentKey::new(service, name).ok();
        match segments[..] {
            ["desired", service, name] => deployment(service, name).map(KeyPath::Desired),
            ["observed", service, name, "status"] => deployment(service, name).map(KeyPath::Status),
            ["observed", service, name, "tasks", task_id] if !task_id.is_empty() => {
                deployment(service, name).map(|key| KeyPath::Task {
                    key,
                    task_id: task_id.to_owned(),
                })
            }
            ["observed", service, name, "history", revision] => {
                let revision = revision.parse().ok().filter(|r: &Revision| *r > 0)?;
                deployment(service, name).map(|key| KeyPath::History { key, revision })
            }
            ["observed", service, name, "journal", sequence] => {
                let sequence = sequence.parse().ok().filter(|s: &u64| *s > 0)?;
                deployment(service, name).map(|key| KeyPath::Journal { key, sequence })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DeploymentKey {
        "ingestor/dev".parse().unwrap()
    }

    #[test]
    fn keys_under_desired_of_the_wrong_shape_say_why() {
        let layout = Layout::new("/p").unwrap();
        assert_eq!(
            layout.desired_key("/p/desired/ingestor/dev"),
            Some(Ok(key()))
        );
        assert_eq!(layout.desired_key("/p/observed/ingestor/dev/status"), None);
        assert_eq!(layout.desired_key("/desired/ingestor/dev"), None);
        for bad in [
            "/p/desired/UPPER/x",
            "/p/desired/a/b/c",
            "/p/desired/a",
            "/p/desired/a/",
        ] {
            let error = layout.desired_key(bad).unwrap().unwrap_err();
            assert!(!error.to_string().is_empty(), "{bad}");
        }
        assert!(matches!(
            layout.desired_key("/p/desired/a/b/c"),
            Some(Err(KeyError::NotAKey { value })) if value == "a/b/c"
        ));
    }

    #[test]
    fn empty_prefix_puts_keys_at_the_root() {
        let layout = Layout::default();
        assert_eq!(layout.prefix(), "");
        assert_eq!(layout.desired_root(), "/desired/");
        assert_eq!(layout.desired(&key()), "/desired/ingestor/dev");
        assert_eq!(layout.desired_service(&key().service), "/desired/ingestor/");
        assert_eq!(layout.observed_root(), "/observed/");
        assert_eq!(
            layout.observed_service(&key().service),
            "/observed/ingestor/"
        );
        assert_eq!(layout.observed(&key()), "/observed/ingestor/dev/");
        assert_eq!(layout.status(&key()), "/observed/ingestor/dev/status");
        assert_eq!(layout.tasks(&key()), "/observed/ingestor/dev/tasks/");
        assert_eq!(
            layout.task(&key(), "ingestor_dev.123"),
            "/observed/ingestor/dev/tasks/ingestor_dev.123"
        );
        assert_eq!(layout.leader_root(), "/theseus/leader/");
    }

    #[test]
    fn prefixes_are_normalised_to_one_spelling() {
        for spelling in ["theseus", "/theseus", "/theseus/", "//theseus//"] {
            let layout = Layout::new(spelling).unwrap();
            assert_eq!(layout.prefix(), "/theseus", "{spelling}");
            assert_eq!(layout.desired(&key()), "/theseus/desired/ingestor/dev");
        }
        assert_eq!(Layout::new("/a//b/").unwrap().prefix(), "/a/b");
        assert_eq!(Layout::new("/").unwrap(), Layout::default());
        assert_eq!(Layout::new("").unwrap(), Layout::default());
    }

    #[test]
    fn prefixes_with_odd_characters_are_rejected() {
        for bad in ["/a b", "/a/../b", "/.", "/a\n", "/ä"] {
            assert!(
                matches!(Layout::new(bad), Err(Error::InvalidPrefix { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parse_inverts_every_key_builder() {
        for layout in [Layout::default(), Layout::new("/env/prod").unwrap()] {
            assert_eq!(
                layout.parse(&layout.desired(&key())),
                Some(KeyPath::Desired(key()))
            );
            assert_eq!(
                layout.parse(&layout.status(&key())),
                Some(KeyPath::Status(key()))
            );
            assert_eq!(
                layout.parse(&layout.task(&key(), "t.1")),
                Some(KeyPath::Task {
                    key: key(),
                    task_id: "t.1".into()
                })
            );
            assert_eq!(
                layout.parse(&layout.history_record(&key(), 42)),
                Some(KeyPath::History {
                    key: key(),
                    revision: 42
                })
            );
            assert_eq!(
                layout.parse(&layout.journal_entry(&key(), 7)),
                Some(KeyPath::Journal {
                    key: key(),
                    sequence: 7
                })
            );
        }
        assert_eq!(
            Layout::default().journal_entry(&key(), 7),
            "/observed/ingestor/dev/journal/0000000007"
        );
    }

    #[test]
    fn parse_rejects_keys_outside_the_layout() {
        let layout = Layout::new("/p").unwrap();
        for other in [
            "/desired/ingestor/dev",     // no prefix
            "/px/desired/ingestor/dev",  // a longer prefix
            "/p/desired/ingestor",       // service only
            "/p/desired/ingestor/dev/x", // too deep
            "/p/desired/Ingestor/dev",   // not a DNS label
            "/p/observed/ingestor/dev/", // the directory itself
            "/p/observed/ingestor/dev/tasks/",
            "/p/observed/ingestor/dev/other",
            "/p/observed/ingestor/dev/history/",
            "/p/observed/ingestor/dev/history/x",
            "/p/observed/ingestor/dev/journal/-1",
            "/p/theseus/leader/abc",
        ] {
            assert_eq!(layout.parse(other), None, "{other}");
        }
    }
}
