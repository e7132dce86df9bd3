//! The schema's errors in words people can act on: what was expected at which field, the
//! closest known name for an unknown field, what a pattern means.

use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::super::document::pointer_segment;
use super::super::schema::{known_properties, subschema_of_keyword};
use super::super::spec::{ENV_NAME_PATTERN, LABEL_PATTERN, PORT_NAME_PATTERN, VOLUME_PATTERN};
use super::FieldError;
pub(super) fn schema_error(error: &jsonschema::ValidationError<'_>) -> Vec<FieldError> {
    let pointer = error.instance_path().as_str().to_owned();
    let keyword_path = error.schema_path().as_str().to_owned();
    let instance = error.instance();
    let message = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_properties(&keyword_path);
            return unexpected
                .iter()
                .map(|field| {
                    FieldError::new(
                        format!("{pointer}/{}", pointer_segment(field)),
                        unknown_field_message(field, &known),
                    )
                })
                .collect();
        }
        ValidationErrorKind::Type { kind } => {
            format!("expected {}, found {}", type_name(kind), describe(instance))
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("must be at least {limit}, found {instance}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("must be at most {limit}, found {instance}")
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be greater than {limit}, found {instance}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be less than {limit}, found {instance}")
        }
        ValidationErrorKind::MinLength { limit } if *limit == 1 => "must not be empty".to_owned(),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::MinItems { .. } | ValidationErrorKind::MaxItems { .. }
            if pointer.starts_with("/constraints/") =>
        {
            format!(
                "expected [field, OPERATOR] or [field, OPERATOR, value], found {} items",
                instance.as_array().map_or(0, Vec::len)
            )
        }
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::Pattern { pattern } => {
            format!("{} is not {}", describe(instance), pattern_meaning(pattern))
        }
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_owned();
            let what = match error.kind() {
                ValidationErrorKind::Pattern { pattern } => pattern_meaning(pattern),
                ValidationErrorKind::MaxLength { limit } => {
                    format!("a name of at most {limit} characters")
                }
                _ => error.to_string(),
            };
            return vec![FieldError::new(
                format!("{pointer}/{}", pointer_segment(&name)),
                format!("`{name}` is not {what}"),
            )];
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|o| {
                    o.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let found = instance.as_str().unwrap_or_default();
            let hint = closest(found, &options)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            format!(
                "expected one of {}, found {}{hint}",
                options.join(", "),
                describe(instance)
            )
        }
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            let subschema = subschema_of_keyword(&keyword_path);
            let alternatives = subschema
                .and_then(|s| s.get("anyOf").or_else(|| s.get("oneOf")))
                .and_then(Value::as_array);
            match alternatives {
                Some(alternatives) => alternatives_message(alternatives, instance),
                None => format!("{} is not an accepted value", describe(instance)),
            }
        }
        ValidationErrorKind::Required { property } => {
            return vec![FieldError::new(
                format!("{pointer}/{}", property.as_str().unwrap_or_default()),
                "missing; this field is required",
            )];
        }
        _ => error.to_string(),
    };
    vec![FieldError::new(pointer, message)]
}

fn unknown_field_message(field: &str, known: &[String]) -> String {
    match closest(field, known) {
        Some(suggestion) => format!("unknown field `{field}`; did you mean `{suggestion}`?"),
        None if known.is_empty() => format!("unknown field `{field}`"),
        None => format!(
            "unknown field `{field}`; known fields are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The known word closest to `word`, when it is close enough to be a plausible typo or a
/// shortened form (`grace_period` for `grace_period_seconds`).
pub(super) fn closest<'a>(word: &str, known: &'a [String]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    if lower.len() >= 3
        && let Some(longer) = known.iter().find(|k| k.starts_with(&lower))
    {
        return Some(longer);
    }
    known
        .iter()
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(&lower, &candidate.to_ascii_lowercase());
            (distance, candidate)
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

fn type_name(kind: &TypeKind) -> String {
    let name = |t: &dyn fmt::Display| match t.to_string().as_str() {
        "integer" => "an integer".to_owned(),
        "number" => "a number".to_owned(),
        "string" => "a string".to_owned(),
        "boolean" => "true or false".to_owned(),
        "array" => "a list".to_owned(),
        "object" => "an object".to_owned(),
        other => other.to_owned(),
    };
    match kind {
        TypeKind::Single(t) => name(t),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| name(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

/// What a value is, for "found ..." in messages.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(items) => format!("a list of {} items", items.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// "expected ..." for a value that matched none of a schema's alternatives: the constants
/// of an enum (with the closest as a suggestion), or the types accepted.
fn alternatives_message(alternatives: &[Value], instance: &Value) -> String {
    let constants: Vec<String> = alternatives
        .iter()
        .filter_map(|a| a.get("const").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    if !constants.is_empty() && constants.len() == alternatives.len() {
        let hint = instance
            .as_str()
            .and_then(|found| closest(found, &constants))
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        return format!(
            "expected one of {}, found {}{hint}",
            constants.join(", "),
            describe(instance)
        );
    }
    let names: Vec<&str> = alternatives
        .iter()
        .filter_map(|a| a.get("type").and_then(Value::as_str))
        .map(|t| match t {
            "string" => "a string",
            "number" => "a number",
            "integer" => "an integer",
            "boolean" => "a boolean",
            "array" => "a list",
            "object" => "an object",
            other => other,
        })
        .collect();
    if names.is_empty() {
        format!("{} is not an accepted value", describe(instance))
    } else {
        format!(
            "expected {}, found {}",
            names.join(" or "),
            describe(instance)
        )
    }
}

/// What each pattern of the spec means, in words.
fn pattern_meaning(pattern: &str) -> String {
    match pattern {
        p if p == PORT_NAME_PATTERN || p == LABEL_PATTERN => {
            "a DNS label (lowercase letters, digits and `-`, starting and ending with a letter or digit)"
                .to_owned()
        }
        p if p == ENV_NAME_PATTERN => {
            "an environment variable name (letters, digits and `_`, not starting with a digit)"
                .to_owned()
        }
        p if p == VOLUME_PATTERN => {
            "a volume `host_path:container_path[:ro|:rw]` with absolute paths".to_owned()
        }
        "^/" => "an absolute path starting with `/`".to_owned(),
        other => format!("matching the pattern {other}"),
    }
}
