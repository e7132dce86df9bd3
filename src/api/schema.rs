//! The published JSON schema of a Deployment spec, generated from [`DeploymentSpec`].
//!
//! `schemas/deployment.schema.json` holds exactly [`deployment_schema_text`]; a test fails
//! when the file is stale, and `theseus schema` prints the same bytes. The schema is the first
//! half of validation (the second is [`super::validate`]); editors can use it too.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::DeploymentSpec;

/// Where the schema is published in the repository, relative to its root.
pub const SCHEMA_PATH: &str = "schemas/deployment.schema.json";

/// The schema as a JSON value.
pub fn deployment_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = serde_json::to_value(schemars::schema_for!(DeploymentSpec))
            .expect("a generated schema is JSON");
        forbid_null(&mut schema);
        schema
    })
}

/// The schema as published: pretty-printed JSON with a final newline.
pub fn deployment_schema_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text =
            serde_json::to_string_pretty(deployment_schema()).expect("a schema serialises");
        text.push('\n');
        text
    })
}

/// The compiled validator for [`deployment_schema`].
pub(crate) fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(deployment_schema()).expect("the generated schema compiles")
    })
}

/// Optional fields are written by leaving them out; `null` is not a value anyone means.
/// schemars allows `null` for every `Option`; take it out again, everywhere.
fn forbid_null(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            strip_null_alternative(object);
            for value in object.values_mut() {
                forbid_null(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_null),
        _ => {}
    }
}

fn strip_null_alternative(object: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|kind| kind != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            object.insert("type".to_owned(), only);
        }
    }
    let is_null = |schema: &Value| schema.get("type").and_then(Value::as_str) == Some("null");
    if let Some(Value::Array(alternatives)) = object.get("anyOf")
        && alternatives.len() == 2
        && alternatives.iter().any(is_null)
    {
        let Some(Value::Array(alternatives)) = object.remove("anyOf") else {
            unreachable!("checked above");
        };
        if let Some(Value::Object(kept)) = alternatives.into_iter().find(|a| !is_null(a)) {
            for (key, value) in kept {
                object.entry(key).or_insert(value);
            }
        }
    }
}

/// The subschema holding a failing keyword, following `$ref`s. `keyword_path` is the JSON
/// pointer of the keyword inside the schema, as the validator reports it (for example
/// `/properties/health_checks/items/$ref/additionalProperties`).
pub(crate) fn subschema_of_keyword(keyword_path: &str) -> Option<&'static Value> {
    let root = deployment_schema();
    let mut node = root;
    let segments: Vec<&str> = keyword_path.split('/').skip(1).collect();
    // The last segment is the failing keyword itself; its parent is the subschema.
    for segment in segments.iter().take(segments.len().saturating_sub(1)) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = if segment == "$ref" {
            node.get("$ref")
                .and_then(Value::as_str)
                .and_then(|reference| reference.strip_prefix('#'))
                .and_then(|pointer| root.pointer(pointer))?
        } else {
            match node {
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => node.get(&segment)?,
            }
        };
    }
    // A `$ref` with siblings is resolved too, so that its properties are found.
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) if node.get("properties").is_none() => reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .or(Some(node)),
        _ => Some(node),
    }
}

/// The property names allowed where `keyword_path` failed: for suggesting the closest known
/// field when an unknown one appears.
pub(crate) fn known_properties(keyword_path: &str) -> Vec<String> {
    subschema_of_keyword(keyword_path)
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_forbids_unknown_fields_everywhere() {
        let text = deployment_schema_text();
        let schema = deployment_schema();
        assert_eq!(schema["additionalProperties"], false);
        for def in ["HealthCheck", "UpgradeStrategy"] {
            assert_eq!(schema["$defs"][def]["additionalProperties"], false, "{def}");
        }
        assert!(!text.contains("\"null\""), "null is never a value:\n{text}");
    }

    #[test]
    fn the_schema_carries_the_defaults() {
        let properties = &deployment_schema()["properties"];
        assert_eq!(properties["instances"]["default"], 1);
        assert_eq!(properties["cpus"]["default"], 0.3);
        assert_eq!(properties["mem"]["default"], 512.0);
    }

    #[test]
    fn known_properties_follow_references() {
        let top = known_properties("/additionalProperties");
        assert!(top.contains(&"instances".to_owned()));
        let check = known_properties("/properties/health_checks/items/$ref/additionalProperties");
        assert!(
            check.contains(&"grace_period_seconds".to_owned()),
            "{check:?}"
        );
    }
}
