//! Reading JSON and YAML documents into JSON values without losing anything on the way.
//!
//! Two traps are closed here. JSON parsers keep the last of two equal keys, so
//! `{"ports": {"api": 5000, "api": 8080}}` would silently drop a port: a duplicate key is an
//! error naming its JSON pointer. YAML 1.1 readers turn `yes`, `on` and `off` into booleans:
//! only `true` and `false` are booleans here, so an environment value `yes` stays `yes`.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The text is not well-formed JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The text is not well-formed YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// A mapping names the same key twice.
    #[error("{pointer}: duplicate key `{key}`; each key may appear once")]
    DuplicateKey {
        /// JSON pointer of the mapping holding the key twice.
        pointer: String,
        /// The repeated key.
        key: String,
    },
    /// A YAML mapping key is not a string.
    #[error("{pointer}: keys must be strings")]
    NonStringKey {
        /// JSON pointer of the mapping.
        pointer: String,
    },
}

/// The syntax of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// JSON.
    Json,
    /// YAML (1.2: only `true`/`false` are booleans).
    Yaml,
}

impl Syntax {
    /// The syntax a file name suggests: `.json` is JSON, `.yaml`/`.yml` YAML; otherwise JSON
    /// when the text starts with `{` or `[`, YAML when not.
    pub fn guess(file_name: &str, text: &str) -> Syntax {
        let lower = file_name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Syntax::Json
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Syntax::Yaml
        } else if text.trim_start().starts_with(['{', '[']) {
            Syntax::Json
        } else {
            Syntax::Yaml
        }
    }
}

/// Parses a document, rejecting duplicate keys.
pub fn parse(text: &str, syntax: Syntax) -> Result<Value, DocumentError> {
    match syntax {
        Syntax::Json => parse_json(text),
        Syntax::Yaml => parse_yaml(text),
    }
}

/// Parses JSON, rejecting duplicate keys.
pub fn parse_json(text: &str) -> Result<Value, DocumentError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = DuplicateFinder::default();
    let value = ValueAtPointer {
        pointer: String::new(),
        found: &found,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (value, found.take()) {
        (_, Some(error)) => Err(error),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(DocumentError::Json(error.to_string())),
    }
}

/// Parses YAML, rejecting duplicate keys; only `true` and `false` are booleans.
pub fn parse_yaml(text: &str) -> Result<Value, DocumentError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options(text, options)
        .map(|Document(value)| value)
        .map_err(|error: serde_saphyr::Error| DocumentError::Yaml(error.to_string()))
}

/// A JSON pointer segment for a key (RFC 6901 escaping).
pub fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The first duplicate-key (or non-string key) problem met while reading.
#[derive(Default)]
struct DuplicateFinder(std::cell::RefCell<Option<DocumentError>>);

impl DuplicateFinder {
    fn record(&self, error: DocumentError) {
        self.0.borrow_mut().get_or_insert(error);
    }

    fn take(&self) -> Option<DocumentError> {
        self.0.borrow_mut().take()
    }
}

/// A YAML document read through [`ValueAtPointer`], so that YAML and JSON go through the same
/// value builder (serde-saphyr also reports duplicate keys itself, with their line).
struct Document(Value);

impl<'de> de::Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = DuplicateFinder::default();
        let value = ValueAtPointer {
            pointer: String::new(),
            found: &found,
        }
        .deserialize(deserializer)?;
        match found.take() {
            Some(error) => Err(de::Error::custom(error)),
            None => Ok(Document(value)),
        }
    }
}

/// Builds a [`Value`] at a JSON pointer, noting duplicate keys.
struct ValueAtPointer<'a> {
    pointer: String,
    found: &'a DuplicateFinder,
}

impl<'de> DeserializeSeed<'de> for ValueAtPointer<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueAtPointer<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{}: {value} is not a JSON number", self.pointer)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let node = ValueAtPointer {
                pointer: format!("{}/{}", self.pointer, items.len()),
                found: self.found,
            };
            match seq.next_element_seed(node)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<KeyText>()? {
            let Some(key) = key.0 else {
                let error = DocumentError::NonStringKey {
                    pointer: self.pointer.clone(),
                };
                self.found.record(error.clone());
                return Err(de::Error::custom(error));
            };
            if !seen.insert(key.clone()) {
                let error = DocumentError::DuplicateKey {
                    pointer: display_pointer(&self.pointer),
                    key,
                };
                self.found.record(error.clone());
                return Err(de::Error::custom(error));
            }
            let node = ValueAtPointer {
                pointer: format!("{}/{}", self.pointer, pointer_segment(&key)),
                found: self.found,
            };
            let value = map.next_value_seed(node)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The root pointer is the empty string; show it as `/` in messages.
fn display_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "/".to_owned()
    } else {
        pointer.to_owned()
    }
}

/// A mapping key: a string, or (for YAML) a scalar that reads as one; `None` for others.
struct KeyText(Option<String>);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, value: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_owned())))
            }
            fn visit_string<E>(self, value: String) -> Result<KeyText, E> {
                Ok(KeyText(Some(value)))
            }
            // YAML allows `22: ssh`; such keys are numbers to the reader but text to people.
            fn visit_u64<E>(self, value: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }
            fn visit_i64<E>(self, value: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }
            fn visit_bool<E>(self, value: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(value.to_string())))
            }
            fn visit_f64<E>(self, _: f64) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_duplicate_keys_are_errors_naming_the_mapping() {
        let error = parse_json(r#"{"ports": {"api": 5000, "api": 8080}}"#).unwrap_err();
        assert_eq!(
            error,
            DocumentError::DuplicateKey {
                pointer: "/ports".into(),
                key: "api".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "/ports: duplicate key `api`; each key may appear once"
        );
    }

    #[test]
    fn json_values_arrive_unchanged() {
        let text = r#"{"a": [1, -2, 0.5, "x", null, true], "b": {"c~/d": {}}}"#;
        let value = parse_json(text).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn malformed_json_is_reported_with_its_position() {
        let error = parse_json("{\"a\": 1,}").unwrap_err();
        assert!(
            matches!(error, DocumentError::Json(ref m) if m.contains("line 1")),
            "{error}"
        );
        assert!(matches!(
            parse_json("{} {}").unwrap_err(),
            DocumentError::Json(_)
        ));
    }

    #[test]
    fn yaml_keeps_yes_and_on_as_text() {
        let value = parse_yaml("environment:\n  A: yes\n  B: on\n  C: true\n  D: 4\n").unwrap();
        assert_eq!(
            value,
            json!({"environment": {"A": "yes", "B": "on", "C": true, "D": 4}})
        );
    }

    #[test]
    fn yaml_duplicate_keys_are_errors() {
        let error = parse_yaml("ports:\n  api: 1\n  api: 2\n").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("api"), "{text}");
    }

    #[test]
    fn the_old_deploy_format_reads_as_written() {
        let value = parse_yaml(
            "deploy:\n  ingestor:\n    image: 54.189.193.228:5000/flask\n    cpus: 0.1 \n    labels: ['dev']\n",
        )
        .unwrap();
        assert_eq!(
            value,
            json!({"deploy": {"ingestor": {"image": "54.189.193.228:5000/flask", "cpus": 0.1, "labels": ["dev"]}}})
        );
    }

    #[test]
    fn syntax_follows_the_extension_then_the_text() {
        assert_eq!(Syntax::guess("a.json", "x: 1"), Syntax::Json);
        assert_eq!(Syntax::guess("a.YML", "{}"), Syntax::Yaml);
        assert_eq!(Syntax::guess("-", "  {\"a\": 1}"), Syntax::Json);
        assert_eq!(Syntax::guess("-", "a: 1"), Syntax::Yaml);
    }

    #[test]
    fn pointer_segments_escape_tilde_and_slash() {
        assert_eq!(pointer_segment("a/b~c"), "a~1b~0c");
    }
}
