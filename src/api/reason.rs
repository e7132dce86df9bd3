//! The fixed vocabulary of condition reasons: the one CamelCase word a status gives for each
//! of its conditions.
//!
//! What it promises: the controller writes no reason outside [`Reason`], and the README lists
//! every one with its meaning. A reader should still accept a word it does not know (a newer
//! controller may have added one): [`Condition::reason`](super::Condition) stays text on the
//! wire, and [`Reason::parse`] says `None` for such a word.

use std::fmt;

/// Why a condition holds or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `Valid`: the spec validates.
    SpecValid,
    /// `Valid`: the spec does not validate; nothing was changed.
    SpecInvalid,
    /// `Progressing`: an app theseus does not own holds the app id.
    AppNotOwned,
    /// `Progressing`: Marathon refused the change.
    MarathonRejected,
    /// `Progressing`: the app is locked by a Marathon deployment theseus did not start for
    /// this spec.
    WaitingForDeployment,
    /// `Progressing`: Marathon cannot be reached.
    MarathonUnavailable,
    /// `Progressing`: the spec was removed and the app is being deleted.
    Deleting,
    /// `Progressing`: the spec says `paused`; nothing goes to Marathon.
    Paused,
    /// `Progressing`: the revision's new instances cannot be placed: no agent offers what
    /// they need (the message says what is short: cpus, mem, disk, ports or a constraint).
    WaitingForResources,
    /// `Progressing`: the revision's new tasks run but their health checks do not pass (the
    /// message names the check and its last result).
    HealthChecksFailing,
    /// `Progressing`: the app is being created.
    Creating,
    /// `Progressing`: Marathon deployments of the app are in progress.
    Deploying,
    /// `Progressing`: the app matches the spec and no deployment is in progress.
    Deployed,
    /// `Progressing`: the revision did not reach `Running` within its progress deadline.
    DeadlineExceeded,
    /// `Progressing`: the revision's tasks failed more often than its `crash_loop_limit`
    /// before it reached `Running`.
    CrashLooping,
    /// `Progressing`: the revision failed and the app was put back to the last revision that
    /// reached `Running`.
    RolledBack,
    /// `Available`: every desired instance runs and is healthy.
    AllInstancesHealthy,
    /// `Available`: every desired instance runs (the spec has no health checks).
    AllInstancesRunning,
    /// `Available`: fewer instances run (or are healthy) than desired.
    InstancesUnavailable,
    /// `Available`: the app does not exist yet.
    AppMissing,
}

impl Reason {
    /// Every reason, in the order the README lists them.
    pub const ALL: [Reason; 20] = [
        Reason::SpecValid,
        Reason::SpecInvalid,
        Reason::AppNotOwned,
        Reason::MarathonRejected,
        Reason::WaitingForDeployment,
        Reason::MarathonUnavailable,
        Reason::Deleting,
        Reason::Paused,
        Reason::Creating,
        Reason::Deploying,
        Reason::Deployed,
        Reason::WaitingForResources,
        Reason::HealthChecksFailing,
        Reason::DeadlineExceeded,
        Reason::CrashLooping,
        Reason::RolledBack,
        Reason::AllInstancesHealthy,
        Reason::AllInstancesRunning,
        Reason::InstancesUnavailable,
        Reason::AppMissing,
    ];

    /// The word written in conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SpecValid => "SpecValid",
            Reason::SpecInvalid => "SpecInvalid",
            Reason::AppNotOwned => "AppNotOwned",
            Reason::MarathonRejected => "MarathonRejected",
            Reason::WaitingForDeployment => "WaitingForDeployment",
            Reason::MarathonUnavailable => "MarathonUnavailable",
            Reason::Deleting => "Deleting",
            Reason::Paused => "Paused",
            Reason::Creating => "Creating",
            Reason::Deploying => "Deploying",
            Reason::Deployed => "Deployed",
            Reason::WaitingForResources => "WaitingForResources",
            Reason::HealthChecksFailing => "HealthChecksFailing",
            Reason::DeadlineExceeded => "DeadlineExceeded",
            Reason::CrashLooping => "CrashLooping",
            Reason::RolledBack => "RolledBack",
            Reason::AllInstancesHealthy => "AllInstancesHealthy",
            Reason::AllInstancesRunning => "AllInstancesRunning",
            Reason::InstancesUnavailable => "InstancesUnavailable",
            Reason::AppMissing => "AppMissing",
        }
    }

    /// The reason a word names; `None` for a word outside the vocabulary.
    pub fn parse(word: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == word)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_parses_back_from_its_word() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("SomethingNew"), None);
    }

    #[test]
    fn the_readme_lists_every_reason() {
        let readme = include_str!("../../README.md");
        for reason in Reason::ALL {
            assert!(
                readme.contains(&format!("`{reason}`")),
                "README.md does not document the reason {reason}"
            );
        }
    }
}
