//! Marathon path ids (`/group/app`), parsed once and canonical afterwards.
//!
//! Marathon accepts ids with or without a leading slash, with trailing and doubled slashes, and
//! with `.`/`..` segments; it stores them canonically (`/a/b`). An [`AppId`] is always canonical,
//! non-root and made of valid segments, so the rest of localmarathon never re-checks an id.
//! Group ids ([`GroupId`]) may be the root (`/`).

use std::fmt;
use std::sync::Arc;

/// What is wrong with an id, in the words Marathon's validation uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppIdError {
    /// A segment holds characters outside `[a-z0-9.-]` or starts/ends with a dash or dot.
    #[error(
        "must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'"
    )]
    InvalidSegment {
        /// The offending segment.
        segment: String,
    },
    /// The id names the root group, which cannot be an app.
    #[error("Path needs at least one element: an app id cannot be the root group '/'")]
    Root,
}

/// A canonical, absolute, non-root Marathon app id such as `/prod/web`. Clones share the
/// string: the scheduler, the task index and every event hold the same id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(Arc<str>);

/// A canonical group id; `/` is the root group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(String);

fn valid_segment(segment: &str) -> bool {
    // Marathon's PathId element pattern: dot-separated labels of [a-z0-9-] that neither start
    // nor end with a dash.
    segment.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    })
}

/// Splits `raw` into canonical segments, resolving `.` and `..` relative to `base`. As in
/// Marathon's `PathId.canonicalPath`, a `..` at the root stays at the root (`/../a` is `/a`).
fn canonical_segments(raw: &str, base: &[String]) -> Result<Vec<String>, AppIdError> {
    let mut out: Vec<String> = if raw.starts_with('/') {
        Vec::new()
    } else {
        base.to_vec()
    };
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s if valid_segment(s) => out.push(s.to_string()),
            s => {
                return Err(AppIdError::InvalidSegment {
                    segment: s.to_string(),
                });
            }
        }
    }
    Ok(out)
}

impl AppId {
    /// Parses an id as a client sends it; relative ids are taken relative to the root group.
    pub fn parse(raw: &str) -> Result<Self, AppIdError> {
        Self::parse_relative(raw, &GroupId::root())
    }

    /// Parses an id relative to `base` (how ids inside group bodies resolve).
    pub fn parse_relative(raw: &str, base: &GroupId) -> Result<Self, AppIdError> {
        let segments = canonical_segments(raw, &base.segments())?;
        if segments.is_empty() {
            return Err(AppIdError::Root);
        }
        Ok(AppId(format!("/{}", segments.join("/")).into()))
    }

    /// The canonical form, e.g. `/prod/web`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Marathon's "safe path": segments joined by `_`, the prefix of task and instance ids.
    pub fn safe_path(&self) -> String {
        self.0[1..].replace('/', "_")
    }

    /// The group holding this app.
    pub fn parent(&self) -> GroupId {
        match self.0.rfind('/') {
            Some(0) | None => GroupId::root(),
            Some(i) => GroupId(self.0[..i].to_string()),
        }
    }

    /// Whether this app lies (transitively) inside `group`.
    pub fn is_in(&self, group: &GroupId) -> bool {
        group.is_root() || self.0.starts_with(&format!("{}/", group.0))
    }
}

impl GroupId {
    /// The root group `/`.
    pub fn root() -> Self {
        GroupId("/".to_string())
    }

    /// Parses a group id; the empty string and `/` are the root.
    pub fn parse(raw: &str) -> Result<Self, AppIdError> {
        let segments = canonical_segments(raw, &[])?;
        Ok(GroupId(format!("/{}", segments.join("/"))))
    }

    /// Whether this is the root group.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path segments (empty for the root).
    pub fn segments(&self) -> Vec<String> {
        self.0
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The direct child group of `self` on the way to `app`, if `app` is not a direct child.
    pub fn child_towards(&self, app: &AppId) -> Option<GroupId> {
        let own = self.segments().len();
        let parts: Vec<&str> = app.as_str().split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() <= own + 1 {
            return None;
        }
        Some(GroupId(format!("/{}", parts[..=own].join("/"))))
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for AppId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl serde::Serialize for GroupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonicalised_like_marathon() {
        for raw in [
            "foo/bar",
            "/foo/bar",
            "//foo//bar/",
            "/foo/./bar",
            "/foo/baz/../bar",
            "/../foo/bar",
            "../../foo/./bar",
        ] {
            assert_eq!(AppId::parse(raw).unwrap().as_str(), "/foo/bar", "{raw}");
        }
    }

    #[test]
    fn invalid_ids_are_rejected_with_the_segment() {
        assert!(matches!(
            AppId::parse("/Foo"),
            Err(AppIdError::InvalidSegment { segment }) if segment == "Foo"
        ));
        assert!(AppId::parse("/-a").is_err());
        assert!(AppId::parse("/a-").is_err());
        assert!(AppId::parse("/a_b").is_err());
        assert_eq!(AppId::parse("/"), Err(AppIdError::Root));
        assert_eq!(AppId::parse("//"), Err(AppIdError::Root));
        assert_eq!(AppId::parse("/.."), Err(AppIdError::Root));
        assert_eq!(AppId::parse("/a/../.."), Err(AppIdError::Root));
        assert!(AppId::parse("/a.b-c/d9").is_ok());
    }

    #[test]
    fn safe_path_and_groups_follow_the_id() {
        let id = AppId::parse("/prod/web/api").unwrap();
        assert_eq!(id.safe_path(), "prod_web_api");
        assert_eq!(id.parent().as_str(), "/prod/web");
        assert!(id.is_in(&GroupId::parse("/prod").unwrap()));
        assert!(!id.is_in(&GroupId::parse("/pro").unwrap()));
        assert_eq!(
            GroupId::root().child_towards(&id).unwrap().as_str(),
            "/prod"
        );
        assert_eq!(
            GroupId::parse("/prod/web").unwrap().child_towards(&id),
            None
        );
    }
}
