//! Marathon app ids: absolute paths such as `/ingestor/dev`, parsed and canonicalised once.
//!
//! An [`AppId`] is accepted the way Marathon accepts one (`PathId` in Marathon's RAML and
//! `PathId.scala`): with or without a leading slash (relative ids are relative to the root
//! group), doubled and trailing slashes ignored, `.` dropped and `..` going up one level (never
//! above the root). Each remaining segment is one or more dot-separated labels of `[a-z0-9]`
//! with `-` inside. The root itself is a group, not an app, and is rejected.
//! After parsing, an [`AppId`] is always in canonical form, so two ids name the same app
//! exactly when they are equal.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a Marathon app id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppIdError {
    /// Nothing is left once slashes, `.` and `..` are resolved.
    #[error("`{value}` names the root group, not an app; give a path such as `/service/name`")]
    Root {
        /// The offending value.
        value: String,
    },
    /// A segment breaks Marathon's path rules.
    #[error(
        "`{value}` is not a Marathon app id: segment `{segment}` must be lowercase letters, \
         digits, `-` and `.`, and may not start or end with `-` or `.`"
    )]
    InvalidSegment {
        /// The offending value.
        value: String,
        /// The segment that broke the rules.
        segment: String,
    },
}

/// A canonical, absolute Marathon app path such as `/ingestor/dev`.
///
/// Shared when cloned: the picture of Marathon, its change sets and every task hold their
/// app's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(Arc<str>);

impl AppId {
    /// Parses `value` as Marathon would, canonicalising it.
    pub fn parse(value: &str) -> Result<Self, AppIdError> {
        // Ids Marathon sends are canonical already: taken as they are.
        if let Some(path) = value.strip_prefix('/')
            && path.split('/').all(is_valid_segment)
        {
            return Ok(Self(Arc::from(value)));
        }
        Self::from_segments(value.split('/')).map_err(|error| match error {
            AppIdError::Root { .. } => AppIdError::Root {
                value: value.to_owned(),
            },
            AppIdError::InvalidSegment { segment, .. } => AppIdError::InvalidSegment {
                value: value.to_owned(),
                segment,
            },
        })
    }

    /// Builds an id from path segments, e.g. `["ingestor", "dev"]` → `/ingestor/dev`.
    /// Empty segments, `.` and `..` are resolved as in [`AppId::parse`].
    pub fn from_segments<I, S>(segments: I) -> Result<Self, AppIdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let segments: Vec<S> = segments.into_iter().collect();
        let seen = |upto: usize| {
            segments[..upto]
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<&str>>()
                .join("/")
        };
        let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
        for (position, segment) in segments.iter().enumerate() {
            match segment.as_ref() {
                "" | "." => {}
                // Marathon's canonicalPath: `..` above the root stays at the root.
                ".." => {
                    kept.pop();
                }
                label if is_valid_segment(label) => kept.push(label),
                invalid => {
                    return Err(AppIdError::InvalidSegment {
                        value: seen(position + 1),
                        segment: invalid.to_owned(),
                    });
                }
            }
        }
        if kept.is_empty() {
            return Err(AppIdError::Root {
                value: seen(segments.len()),
            });
        }
        let mut id = String::with_capacity(kept.iter().map(|label| label.len() + 1).sum());
        for label in kept {
            id.push('/');
            id.push_str(label);
        }
        Ok(Self(Arc::from(id)))
    }

    /// The canonical path, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, e.g. `["ingestor", "dev"]`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/')
    }
}

/// One segment of a path: dot-separated labels, each `[a-z0-9]` or `[a-z0-9][a-z0-9-]*[a-z0-9]`
/// (the `PathId` pattern of Marathon's RAML).
fn is_valid_segment(segment: &str) -> bool {
    segment.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !bytes.is_empty()
            && edge(bytes[0])
            && edge(bytes[bytes.len() - 1])
            && bytes.iter().all(|&c| edge(c) || c == b'-')
    })
}

impl FromStr for AppId {
    type Err = AppIdError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

impl TryFrom<&str> for AppId {
    type Error = AppIdError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AppId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for AppId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AppId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> String {
        AppId::parse(value).unwrap().to_string()
    }

    #[test]
    fn relative_and_absolute_ids_name_the_same_app() {
        assert_eq!(id("ingestor/dev"), "/ingestor/dev");
        assert_eq!(id("/ingestor/dev"), "/ingestor/dev");
        assert_eq!(AppId::parse("ingestor/dev"), AppId::parse("/ingestor/dev"));
    }

    #[test]
    fn doubled_and_trailing_slashes_are_ignored() {
        assert_eq!(id("//ingestor//dev/"), "/ingestor/dev");
        assert_eq!(id("/ingestor/dev//"), "/ingestor/dev");
    }

    #[test]
    fn dot_segments_resolve_as_marathon_does() {
        assert_eq!(id("/a/./b"), "/a/b");
        assert_eq!(id("/a/../b"), "/b");
        assert_eq!(id("/../../a"), "/a");
    }

    #[test]
    fn dotted_labels_inside_a_segment_are_allowed() {
        assert_eq!(id("/prod/db.main-1"), "/prod/db.main-1");
    }

    #[test]
    fn marathon_rejected_segments_are_rejected_with_the_segment_named() {
        for (value, segment) in [
            ("/Upper/x", "Upper"),
            ("/a/-x", "-x"),
            ("/a/x-", "x-"),
            ("/a/x_y", "x_y"),
            ("/a/x..y", "x..y"),
            ("/a/.x", ".x"),
            ("/a/x y", "x y"),
        ] {
            match AppId::parse(value) {
                Err(AppIdError::InvalidSegment { segment: got, .. }) => {
                    assert_eq!(got, segment, "{value}")
                }
                other => panic!("{value}: expected InvalidSegment, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_root_group_is_not_an_app() {
        for value in ["", "/", "//", "/a/..", "."] {
            assert!(
                matches!(AppId::parse(value), Err(AppIdError::Root { .. })),
                "{value:?}"
            );
        }
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let parsed: AppId = serde_json::from_str("\"ingestor//dev/\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"/ingestor/dev\"");
        assert!(serde_json::from_str::<AppId>("\"/Bad\"").is_err());
    }

    #[test]
    fn segments_and_from_segments_are_inverse() {
        let parsed = AppId::parse("/theseus/ingestor/dev").unwrap();
        let segments: Vec<&str> = parsed.segments().collect();
        assert_eq!(segments, ["theseus", "ingestor", "dev"]);
        assert_eq!(AppId::from_segments(segments).unwrap(), parsed);
    }
}
