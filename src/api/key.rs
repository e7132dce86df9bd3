//! Names of deployments: DNS labels for services and deployment names, and the
//! `<service>/<name>` key that every part of theseus uses to talk about one deployment.
//!
//! A [`DnsLabel`] is checked once, when it is parsed, and cannot be malformed afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

/// Longest DNS label, in bytes (RFC 1123).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a [`DnsLabel`] or a [`DeploymentKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The label is empty.
    #[error("{what} is empty; expected a lowercase DNS label such as `ingestor`")]
    Empty {
        /// What was being parsed (`service`, `name`).
        what: &'static str,
    },
    /// The label is longer than [`MAX_LABEL_LEN`].
    #[error("{what} `{value}` is {len} characters long; a DNS label has at most 63")]
    TooLong {
        /// What was being parsed.
        what: &'static str,
        /// The offending value.
        value: String,
        /// Its length.
        len: usize,
    },
    /// The label holds a character other than `a-z`, `0-9` and `-`, or starts or ends with `-`.
    #[error(
        "{what} `{value}` is not a DNS label: use lowercase letters, digits and `-`, \
         starting and ending with a letter or digit"
    )]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// A deployment key is not of the form `<service>/<name>`.
    #[error("`{value}` is not a deployment key; expected SERVICE/NAME, e.g. `ingestor/dev`")]
    NotAKey {
        /// The offending value.
        value: String,
    },
}

/// A lowercase RFC 1123 DNS label: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 bytes.
///
/// Held inline when it is at most 23 bytes long (most labels are), else shared when cloned:
/// a deployment's key is held by every map that tracks the deployment, and the copy of
/// `/observed/` parses one from each of its tens of thousands of keys, so a label on the heap
/// each time cost an allocation per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsLabel(SmolStr);

impl DnsLabel {
    /// Parses `value` as a label; `what` names it in the error (`service`, `name`).
    pub fn parse(what: &'static str, value: &str) -> Result<Self, KeyError> {
        if value.is_empty() {
            return Err(KeyError::Empty { what });
        }
        if value.len() > MAX_LABEL_LEN {
            return Err(KeyError::TooLong {
                what,
                value: value.to_owned(),
                len: value.len(),
            });
        }
        let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let bytes = value.as_bytes();
        let ok = bytes.iter().all(|&c| allowed(c) || c == b'-')
            && allowed(bytes[0])
            && allowed(bytes[bytes.len() - 1]);
        if !ok {
            return Err(KeyError::Invalid {
                what,
                value: value.to_owned(),
            });
        }
        Ok(Self(SmolStr::new(value)))
    }

    /// The label as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DnsLabel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for DnsLabel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DnsLabel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse("label", &value).map_err(serde::de::Error::custom)
    }
}

/// One deployment: `<service>/<name>`, e.g. `ingestor/dev`.
///
/// It names the `/desired/<service>/<name>` key, the `/observed/<service>/<name>/...`
/// subtree and the Marathon app `/<service>/<name>`. Ordered by service, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeploymentKey {
    /// The service, the first path segment.
    pub service: DnsLabel,
    /// The deployment's name within the service, the second segment.
    pub name: DnsLabel,
}

impl DeploymentKey {
    /// Builds a key from two strings, checking both.
    pub fn new(service: &str, name: &str) -> Result<Self, KeyError> {
        Ok(Self {
            service: DnsLabel::parse("service", service)?,
            name: DnsLabel::parse("name", name)?,
        })
    }
}

impl fmt::Display for DeploymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.name)
    }
}

impl FromStr for DeploymentKey {
    type Err = KeyError;

    /// Parses `service/name`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once('/') {
            Some((service, name)) if !name.contains('/') => Self::new(service, name),
            _ => Err(KeyError::NotAKey {
                value: value.to_owned(),
            }),
        }
    }
}

impl Serialize for DeploymentKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeploymentKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_accept_lowercase_digits_and_inner_hyphens() {
        for ok in ["a", "ingestor", "dev-1", "0", "a-b-c", &"x".repeat(63)] {
            assert!(DnsLabel::parse("service", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn dns_labels_reject_everything_else() {
        assert_eq!(
            DnsLabel::parse("service", ""),
            Err(KeyError::Empty { what: "service" })
        );
        assert!(matches!(
            DnsLabel::parse("name", &"x".repeat(64)),
            Err(KeyError::TooLong { len: 64, .. })
        ));
        for bad in ["-a", "a-", "A", "a_b", "a.b", "a/b", "é", " a"] {
            assert!(
                matches!(
                    DnsLabel::parse("name", bad),
                    Err(KeyError::Invalid { what: "name", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn deployment_keys_round_trip_through_their_text_form() {
        let key: DeploymentKey = "ingestor/dev".parse().unwrap();
        assert_eq!(key.service.as_str(), "ingestor");
        assert_eq!(key.name.as_str(), "dev");
        assert_eq!(key.to_string(), "ingestor/dev");
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, "\"ingestor/dev\"");
        assert_eq!(serde_json::from_str::<DeploymentKey>(&json).unwrap(), key);
    }

    #[test]
    fn deployment_keys_need_exactly_two_segments() {
        for bad in ["ingestor", "a/b/c", "/dev", "ingestor/"] {
            assert!(bad.parse::<DeploymentKey>().is_err(), "{bad}");
        }
    }
}
