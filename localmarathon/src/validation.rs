//! Reading untyped JSON request bodies into typed values while collecting Marathon-style errors.
//!
//! Marathon 1.10 answers a body its readers reject (a wrong JSON type, a value outside the RAML
//! type's limits) with `422 Invalid JSON` and Play-JSON error keys (`error.expected.jsnumber`,
//! `error.min`), and a readable body that breaks a rule with `422 Object is not valid`; both
//! carry `details: [{path, errors}]` with JSON-pointer-like paths. [`Reader`] collects the first
//! kind; [`Violations`] holds either.

use serde::Serialize;
use serde_json::{Map, Value};

/// One entry of an error body's `details`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDetail {
    /// JSON path of the offending field, e.g. `/upgradeStrategy/minimumHealthCapacity`.
    pub path: String,
    /// What is wrong with it.
    pub errors: Vec<String>,
}

/// A list of details, merged per path as Marathon does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Violations(Vec<ErrorDetail>);

impl Violations {
    /// Records `error` at `path`.
    pub fn add(&mut self, path: impl Into<String>, error: impl Into<String>) {
        let path = path.into();
        let error = error.into();
        match self.0.iter_mut().find(|d| d.path == path) {
            Some(detail) => detail.errors.push(error),
            None => self.0.push(ErrorDetail {
                path,
                errors: vec![error],
            }),
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The collected details.
    pub fn into_details(self) -> Vec<ErrorDetail> {
        self.0
    }
}

/// Formats a number the way Marathon prints it (`1`, `0.5`).
pub fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Serialises a float as an integer when it has no fraction, as Marathon's JSON writer does.
pub fn serialize_number<S: serde::Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

/// Typed access to a JSON object, recording Play-JSON type errors under a path prefix.
pub struct Reader<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
    errors: &'a mut Violations,
}

impl<'a> Reader<'a> {
    /// Reads `object`, whose own path is `prefix` (empty for the body root).
    pub fn new(object: &'a Map<String, Value>, prefix: &str, errors: &'a mut Violations) -> Self {
        Reader {
            object,
            prefix: prefix.to_string(),
            errors,
        }
    }

    /// The path of a field of this object.
    pub fn path(&self, key: &str) -> String {
        format!("{}/{}", self.prefix, key)
    }

    /// The raw value of a field; `null` reads as absent.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    /// Whether the field is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    fn wrong(&mut self, key: &str, expected: &str) {
        let path = self.path(key);
        self.errors.add(path, format!("error.expected.{expected}"));
    }

    /// A string field.
    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.wrong(key, "jsstring");
                None
            }
        }
    }

    /// A number field.
    pub fn number(&mut self, key: &str) -> Option<f64> {
        match self.raw(key)? {
            Value::Number(n) => n.as_f64(),
            _ => {
                self.wrong(key, "jsnumber");
                None
            }
        }
    }

    /// An integer field (a number with no fraction).
    pub fn integer(&mut self, key: &str) -> Option<i64> {
        match self.raw(key)? {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(i),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 => Some(f as i64),
                    _ => {
                        self.wrong(key, "jsnumber.integer");
                        None
                    }
                },
            },
            _ => {
                self.wrong(key, "jsnumber");
                None
            }
        }
    }

    /// A boolean field.
    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.raw(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.wrong(key, "jsboolean");
                None
            }
        }
    }

    /// An array field.
    pub fn array(&mut self, key: &str) -> Option<&'a Vec<Value>> {
        match self.raw(key)? {
            Value::Array(a) => Some(a),
            _ => {
                self.wrong(key, "jsarray");
                None
            }
        }
    }

    /// An object field.
    pub fn object(&mut self, key: &str) -> Option<&'a Map<String, Value>> {
        match self.raw(key)? {
            Value::Object(o) => Some(o),
            _ => {
                self.wrong(key, "jsobject");
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        let items = self.array(key)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                _ => {
                    let path = format!("{}({i})", self.path(key));
                    self.errors.add(path, "error.expected.jsstring");
                }
            }
        }
        Some(out)
    }

    /// An object of string values.
    pub fn string_map(&mut self, key: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let object = self.object(key)?;
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in object {
            match v {
                Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                _ => {
                    let path = format!("{}/{k}", self.path(key));
                    self.errors.add(path, "error.expected.jsstring");
                }
            }
        }
        Some(out)
    }

    /// Reads a nested object with its own reader.
    pub fn nested<T>(&mut self, key: &str, read: impl FnOnce(&mut Reader<'_>) -> T) -> Option<T> {
        let object = self.object(key)?;
        let path = self.path(key);
        let mut inner = Reader::new(object, &path, self.errors);
        Some(read(&mut inner))
    }

    /// Reads every object of an array field with its own reader; `(i)` marks the index as
    /// Marathon does (`/healthChecks(0)/path`).
    pub fn each<T>(
        &mut self,
        key: &str,
        mut read: impl FnMut(&mut Reader<'_>) -> T,
    ) -> Option<Vec<T>> {
        let items = self.array(key)?;
        let base = self.path(key);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{base}({i})");
            match item {
                Value::Object(o) => {
                    let mut inner = Reader::new(o, &path, self.errors);
                    out.push(read(&mut inner));
                }
                _ => self.errors.add(path, "error.expected.jsobject"),
            }
        }
        Some(out)
    }

    /// The error sink, for checks that are not about a single field's type.
    pub fn errors(&mut self) -> &mut Violations {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reader_reports_wrong_types_with_play_json_keys_and_paths() {
        let body = json!({"cpus": "1", "instances": 1.5, "labels": {"a": 1}, "healthChecks": [{"path": 3}]});
        let mut errors = Violations::default();
        let object = body.as_object().unwrap();
        let mut r = Reader::new(object, "", &mut errors);
        assert_eq!(r.number("cpus"), None);
        assert_eq!(r.integer("instances"), None);
        r.string_map("labels");
        r.each("healthChecks", |h| h.string("path"));
        let details = errors.into_details();
        let paths: Vec<_> = details.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/cpus", "/instances", "/labels/a", "/healthChecks(0)/path"]
        );
        assert_eq!(details[0].errors, ["error.expected.jsnumber"]);
    }

    #[test]
    fn numbers_print_like_marathon() {
        assert_eq!(number_text(1.0), "1");
        assert_eq!(number_text(0.5), "0.5");
        assert_eq!(serde_json::to_string(&Num(128.0)).unwrap(), "128");
        assert_eq!(serde_json::to_string(&Num(1.15)).unwrap(), "1.15");
    }

    #[derive(Serialize)]
    struct Num(#[serde(serialize_with = "serialize_number")] f64);
}
