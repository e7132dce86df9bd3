//! What can go wrong talking to etcd, in words a user can act on.
//!
//! Every message is one line and names the endpoint(s), the key or the prefix involved.

use std::fmt;
use std::path::PathBuf;

use super::Revision;

/// An error of the etcd store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration lists no endpoint.
    #[error("no etcd endpoint is configured; give at least one, e.g. http://127.0.0.1:2379")]
    NoEndpoints,

    /// An endpoint cannot be used as given.
    #[error("etcd endpoint `{endpoint}` is invalid: {reason}")]
    InvalidEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The TLS settings are incomplete or contradictory.
    #[error("etcd TLS settings are invalid: {reason}")]
    InvalidTls {
        /// What is wrong.
        reason: String,
    },

    /// Only one of username and password is set.
    #[error("etcd credentials are incomplete: {reason}")]
    IncompleteCredentials {
        /// Which half is missing.
        reason: String,
    },

    /// A TLS file could not be read.
    #[error("cannot read the etcd TLS {what} `{path}`: {source}")]
    TlsFile {
        /// Which file: `CA certificate`, `client certificate`, `client key`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The root prefix of the key layout is not usable.
    #[error("etcd key prefix `{prefix}` is invalid: {reason}")]
    InvalidPrefix {
        /// The prefix as given.
        prefix: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No endpoint answered; each was tried, some more than once.
    #[error(
        "etcd is unreachable for {operation}: {attempts}; check that etcd runs there, that the \
         endpoints are right and, for https, that the CA and client certificate match"
    )]
    Unreachable {
        /// What was attempted, with its key (`get /desired/a/b`).
        operation: String,
        /// The last failure seen on every endpoint.
        attempts: Attempts,
    },

    /// The credentials were refused.
    #[error(
        "etcd at {endpoint} rejected user `{user}`: {reason}; check the etcd username and password"
    )]
    Auth {
        /// The endpoint that refused.
        endpoint: String,
        /// The configured user.
        user: String,
        /// etcd's reason.
        reason: String,
    },

    /// etcd has authentication enabled and no user is configured.
    #[error(
        "etcd at {endpoint} requires a username and password and none is configured ({reason})"
    )]
    AuthRequired {
        /// The endpoint that refused.
        endpoint: String,
        /// etcd's reason.
        reason: String,
    },

    /// etcd answered and refused the request (permission, invalid argument, compacted or
    /// future revision): retrying elsewhere would not help.
    #[error("etcd at {endpoint} refused {operation}: {reason}")]
    Refused {
        /// The endpoint that answered.
        endpoint: String,
        /// What was attempted, with its key.
        operation: String,
        /// etcd's reason.
        reason: String,
    },

    /// A value is larger than this client decodes.
    #[error(
        "etcd key `{key}` holds a value too large to read from {endpoint} ({reason}); etcd \
         accepted it, so shrink or delete it with etcdctl"
    )]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The endpoint that sent it.
        endpoint: String,
        /// The decoder's message, with the sizes.
        reason: String,
    },

    /// A value is not UTF-8 text.
    #[error("etcd key `{key}` holds a value that is not UTF-8 text")]
    NotUtf8 {
        /// The key.
        key: String,
    },

    /// A value does not decode into the expected type.
    #[error("etcd key `{key}` does not hold a valid {target}: {reason}")]
    Decode {
        /// The key.
        key: String,
        /// The expected type.
        target: &'static str,
        /// The decoder's message (with line and column).
        reason: String,
    },

    /// A value could not be encoded.
    #[error("cannot encode the value for etcd key `{key}` as JSON: {reason}")]
    Encode {
        /// The key.
        key: String,
        /// The encoder's message.
        reason: String,
    },

    /// A watch wanted a revision that etcd has compacted away; the stream relists.
    #[error(
        "the watch of `{prefix}` needs revision {revision} but etcd has compacted up to \
         {compact_revision}; relisting"
    )]
    Compacted {
        /// The watched prefix.
        prefix: String,
        /// The first revision the watch still needed.
        revision: Revision,
        /// etcd's compaction revision.
        compact_revision: Revision,
    },

    /// A watch stream broke or was cancelled; the stream resumes.
    #[error(
        "the watch of `{prefix}` on {endpoint} broke: {reason}; resuming from revision {resume_from}"
    )]
    WatchBroken {
        /// The watched prefix.
        prefix: String,
        /// The endpoint the watch was on.
        endpoint: String,
        /// Why.
        reason: String,
        /// The revision the next watch starts from.
        resume_from: Revision,
    },
}

impl Error {
    /// A short, stable label for metrics and logs (`unreachable`, `decode`, ...).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NoEndpoints => "no_endpoints",
            Error::InvalidEndpoint { .. } => "invalid_endpoint",
            Error::InvalidTls { .. } => "invalid_tls",
            Error::IncompleteCredentials { .. } => "incomplete_credentials",
            Error::TlsFile { .. } => "tls_file",
            Error::InvalidPrefix { .. } => "invalid_prefix",
            Error::Unreachable { .. } => "unreachable",
            Error::ValueTooLarge { .. } => "value_too_large",
            Error::Auth { .. } => "auth",
            Error::AuthRequired { .. } => "auth_required",
            Error::Refused { .. } => "refused",
            Error::NotUtf8 { .. } => "not_utf8",
            Error::Decode { .. } => "decode",
            Error::Encode { .. } => "encode",
            Error::Compacted { .. } => "compacted",
            Error::WatchBroken { .. } => "watch_broken",
        }
    }
}

/// One failed try of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint.
    pub endpoint: String,
    /// Why it failed, on one line.
    pub reason: String,
}

/// The failures of every endpoint tried, shown as `endpoint (reason); endpoint (reason)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts(pub Vec<Attempt>);

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ({})", attempt.endpoint, attempt.reason)?;
        }
        Ok(())
    }
}

/// An error and its sources on one line, without repeating a source its parent already
/// quotes (tonic and hyper often do).
pub(crate) fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// etcd-client's error, on one line: the gRPC message rather than tonic's debug dump.
pub(crate) fn describe(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let mut text = if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                status.message().to_owned()
            };
            let mut source = std::error::Error::source(status);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        }
        other => one_line(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_list_every_endpoint_with_its_reason() {
        let attempts = Attempts(vec![
            Attempt {
                endpoint: "http://a:2379".into(),
                reason: "connection refused".into(),
            },
            Attempt {
                endpoint: "http://b:2379".into(),
                reason: "timed out".into(),
            },
        ]);
        assert_eq!(
            attempts.to_string(),
            "http://a:2379 (connection refused); http://b:2379 (timed out)"
        );
    }

    #[test]
    fn one_line_joins_sources_and_drops_newlines() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer\nfailure")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("inner cause"));
        assert_eq!(one_line(&error), "outer failure: inner cause");
    }
}
