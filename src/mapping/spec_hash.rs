//! The spec hash: the `THESEUS_SPEC_HASH` label that says which spec (and which mapping
//! inputs) an app was last written from, and which of a spec's fields enter it.
//!
//! What it promises:
//! - The hash is a sha256 over a canonical serialisation (keys sorted, no whitespace) of the
//!   validated spec without `instances` and the rollout fields ([`ROLLOUT_FIELDS`]), and of
//!   every other input of the mapping (app id, etcd endpoints, prefix, mapping version): two
//!   specs that map to different apps have different hashes, and a change of `instances`
//!   alone leaves the hash as it is, so it can be applied as a scale without a restart.
//! - [`restarting_fields`] names exactly the spec fields whose change changes the hash.
//!
//! It does not say whether an app in Marathon matches: that is [`super::drift`]'s to say.

use std::fmt;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::{DeploymentSpec, ROLLOUT_FIELDS};
use crate::marathon::AppId;

/// Bumped whenever the mapping itself changes, so that every app is rewritten once.
const MAPPING_VERSION: u32 = 1;

/// The hash of a spec and the mapping inputs, as hex; the `THESEUS_SPEC_HASH` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpecHash(String);

impl SpecHash {
    /// The hash of `spec` mapped to the app `app_id`, its tasks told `etcd_endpoints` and
    /// `prefix`.
    pub(super) fn of(
        app_id: &AppId,
        etcd_endpoints: &[String],
        prefix: &str,
        spec: &DeploymentSpec,
    ) -> SpecHash {
        #[derive(Serialize)]
        struct Inputs<'a> {
            mapping: u32,
            app_id: String,
            etcd_endpoints: &'a [String],
            prefix: &'a str,
            spec: Map<String, Value>,
        }
        let inputs = Inputs {
            mapping: MAPPING_VERSION,
            app_id: app_id.to_string(),
            etcd_endpoints,
            prefix,
            spec: hashed_fields(spec),
        };
        let value = serde_json::to_value(&inputs).expect("hash inputs serialise");
        let mut canonical = Vec::new();
        write_canonical(&value, &mut canonical);
        let digest = Sha256::digest(&canonical);
        let mut hex = String::with_capacity(2 * digest.len());
        for byte in digest {
            write!(hex, "{byte:02x}").expect("writing to a string cannot fail");
        }
        SpecHash(hex)
    }

    /// The hash as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fields of `spec` (defaults filled in) that enter its hash: all but `instances` and the
/// rollout fields.
fn hashed_fields(spec: &DeploymentSpec) -> Map<String, Value> {
    let Value::Object(mut fields) = serde_json::to_value(spec).expect("a spec serialises") else {
        unreachable!("a spec serialises to an object");
    };
    fields.remove("instances");
    // How a revision is rolled out is the controller's business, not Marathon's.
    for field in ROLLOUT_FIELDS {
        fields.remove(*field);
    }
    fields
}

/// The spec fields, by their names in the spec, whose values differ between `before` and
/// `after` and enter the spec hash: the changes that make Marathon replace the tasks. Sorted;
/// empty when the two specs map to the same app but for `instances`.
pub fn restarting_fields(before: &DeploymentSpec, after: &DeploymentSpec) -> Vec<String> {
    let before = hashed_fields(before);
    let after = hashed_fields(after);
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect()
}

/// Writes `value` as JSON with object keys sorted and no whitespace, whatever order the
/// value's maps keep (serde_json's `preserve_order` may be on in the workspace).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("a key serialises");
                out.push(b':');
                write_canonical(&fields[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a scalar serialises"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::{DeploymentKey, validate_spec};
    use crate::mapping::Mapping;

    fn key() -> DeploymentKey {
        "ingestor/dev".parse().unwrap()
    }

    fn mapping() -> Mapping {
        Mapping::new(None, vec!["http://10.0.0.1:2379".into()], "").unwrap()
    }

    fn spec(value: Value) -> DeploymentSpec {
        validate_spec(&value).unwrap()
    }

    #[test]
    fn the_hash_ignores_key_order_defaults_and_instances() {
        let base = mapping().spec_hash(
            &key(),
            &spec(json!({"cmd": "x", "ports": {"a": 1, "b": 2}})),
        );
        let reordered = spec(json!({"ports": {"b": 2, "a": 1}, "cpus": 0.3, "cmd": "x"}));
        assert_eq!(mapping().spec_hash(&key(), &reordered), base);
        let scaled = spec(json!({"cmd": "x", "ports": {"a": 1, "b": 2}, "instances": 9}));
        assert_eq!(mapping().spec_hash(&key(), &scaled), base);
        assert_eq!(base.as_str().len(), 64);
        assert!(base.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn the_hash_ignores_how_a_revision_is_rolled_out() {
        let base = mapping().spec_hash(&key(), &spec(json!({"cmd": "x"})));
        let steered = spec(json!({"cmd": "x", "paused": true, "auto_rollback": false,
                                  "progress_deadline_seconds": 30, "revision_history_limit": 2,
                                  "crash_loop_limit": 9,
                                  "change_cause": "try a smaller heap"}));
        assert_eq!(mapping().spec_hash(&key(), &steered), base);
    }

    #[test]
    fn the_hash_changes_with_every_other_input() {
        let base_spec = spec(json!({"cmd": "x"}));
        let base = mapping().spec_hash(&key(), &base_spec);
        let changed_specs = [
            json!({"cmd": "y"}),
            json!({"cmd": "x", "mem": 64}),
            json!({"cmd": "x", "environment": {"A": "1"}}),
            json!({"cmd": "x", "labels": ["eu"]}),
            json!({"cmd": "x", "ports": {"a": 1}}),
        ];
        for changed in changed_specs {
            assert_ne!(
                mapping().spec_hash(&key(), &spec(changed.clone())),
                base,
                "{changed}"
            );
        }
        let other_key: DeploymentKey = "ingestor/prod".parse().unwrap();
        assert_ne!(mapping().spec_hash(&other_key, &base_spec), base);
        for other in [
            Mapping::new(Some("/theseus"), vec!["http://10.0.0.1:2379".into()], "").unwrap(),
            Mapping::new(None, vec!["http://10.0.0.2:2379".into()], "").unwrap(),
            Mapping::new(None, vec!["http://10.0.0.1:2379".into()], "/staging").unwrap(),
        ] {
            assert_ne!(other.spec_hash(&key(), &base_spec), base, "{other:?}");
        }
    }

    #[test]
    fn restarting_fields_are_the_hashed_fields_that_differ() {
        let before = spec(json!({"image": "web:1", "cmd": "serve", "instances": 2,
                                 "environment": {"A": "1"}}));
        let after = spec(
            json!({"image": "web:2", "cmd": "serve", "instances": 5, "paused": true,
                                "environment": {"A": "2"}, "mem": 512}),
        );
        assert_eq!(
            restarting_fields(&before, &after),
            vec!["environment".to_owned(), "image".to_owned()],
            "instances, rollout fields and a default spelled out restart nothing"
        );
        assert!(restarting_fields(&before, &before).is_empty());
    }

    #[test]
    fn the_hash_of_a_spec_is_the_same_in_every_release() {
        // A changed hash would update every app the controller runs: pinned.
        let hash = mapping().spec_hash(
            &key(),
            &spec(
                json!({"cmd": "serve --port $PORT_HTTP", "ports": {"http": 8080},
                         "environment": {"QUOTE": "a \"b\" \u{e9}\n"}, "mem": 64,
                         "labels": ["eu"]}),
            ),
        );
        assert_eq!(
            hash.as_str(),
            "d9f0f7fccffda9205e1ce484daf6f6019541a2a76dda7f55225af7861b5f9592"
        );
    }
}
