//! Validation of Deployment specs: the JSON schema, then the rules a schema cannot say.
//!
//! Every error names the JSON pointer of the bad field and what was expected; an unknown field
//! suggests the closest known one. All errors are reported at once, never only the first. The
//! CLI validates before writing and the controller after reading (people may write `/desired`
//! with `etcdctl`), with the same function.

use std::collections::BTreeSet;
use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::document::{self, DocumentError, pointer_segment};
use super::environment::RESERVED_ENVIRONMENT;
use super::schema::{self, known_properties, subschema_of_keyword};
use super::spec::{
    CONSTRAINT_OPERATORS, DeploymentSpec, ENV_NAME_PATTERN, LABEL_PATTERN, PORT_NAME_PATTERN,
    VOLUME_PATTERN,
};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldError {
    /// JSON pointer of the field (`/health_checks/0/port`); empty for the whole document.
    pub pointer: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl FieldError {
    fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "/: {}", self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// Every problem found in one spec, in document order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    fn new(mut errors: Vec<FieldError>) -> Self {
        errors.sort();
        errors.dedup();
        Self { errors }
    }

    fn one(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(vec![FieldError::new(pointer, message)])
    }

    /// The errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The error at a pointer, if any (for tests and tools).
    pub fn at(&self, pointer: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.pointer == pointer)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl From<DocumentError> for ValidationErrors {
    fn from(error: DocumentError) -> Self {
        match error {
            DocumentError::DuplicateKey { pointer, key } => {
                let pointer = if pointer == "/" {
                    String::new()
                } else {
                    pointer
                };
                ValidationErrors::one(
                    format!("{pointer}/{}", pointer_segment(&key)),
                    "duplicate key; each key may appear once (a JSON reader would silently keep the last)",
                )
            }
            other => ValidationErrors::one("", other.to_string()),
        }
    }
}

/// Parses and validates a spec stored as JSON text (a `/desired` value).
pub fn parse_spec(text: &[u8]) -> Result<DeploymentSpec, ValidationErrors> {
    let text = std::str::from_utf8(text)
        .map_err(|e| ValidationErrors::one("", format!("not UTF-8 text: {e}")))?;
    let value = document::parse_json(text)?;
    validate_spec(&value)
}

/// Validates a spec given as a JSON value and returns it typed, with defaults filled in.
pub fn validate_spec(value: &Value) -> Result<DeploymentSpec, ValidationErrors> {
    if !value.is_object() {
        return Err(ValidationErrors::one(
            "",
            format!(
                "expected an object with the deployment's fields, found {}",
                describe(value)
            ),
        ));
    }
    let mut errors: Vec<FieldError> = schema::validator()
        .iter_errors(value)
        .flat_map(|error| schema_error(&error))
        .collect();
    errors.extend(rule_errors(value));
    if !errors.is_empty() {
        return Err(ValidationErrors::new(errors));
    }
    serde_json::from_value(value.clone())
        .map_err(|e| ValidationErrors::one("", format!("does not match the spec: {e}")))
}

/// Turns one schema error into field errors with messages people can act on.
fn schema_error(error: &jsonschema::ValidationError<'_>) -> Vec<FieldError> {
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
fn closest<'a>(word: &str, known: &'a [String]) -> Option<&'a str> {
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
fn describe(value: &Value) -> String {
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

/// The rules a schema cannot say. They read the raw value defensively so that they run even
/// when the schema already failed, and every problem is reported in one go.
fn rule_errors(value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let text = |field: &str| value.get(field).and_then(Value::as_str);
    let list = |field: &str| value.get(field).and_then(Value::as_array);

    let has_image = text("image").is_some();
    let has_cmd = text("cmd").is_some();
    if !has_image && !has_cmd {
        errors.push(FieldError::new(
            "",
            "needs `image` (a Docker image) or `cmd` (a command), or both",
        ));
    }
    if has_cmd && list("args").is_some_and(|args| !args.is_empty()) {
        errors.push(FieldError::new(
            "/args",
            "`args` cannot be combined with `cmd`; give the whole command in `cmd`, or use `args` with an image's entrypoint",
        ));
    }

    let ports: BTreeSet<&str> = value
        .get("ports")
        .and_then(Value::as_object)
        .map(|ports| ports.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(ports) = value.get("ports").and_then(Value::as_object) {
        let mut seen = std::collections::BTreeMap::new();
        for (name, number) in ports {
            if let Some(number) = number.as_u64()
                && let Some(first) = seen.insert(number, name)
            {
                errors.push(FieldError::new(
                    format!("/ports/{}", pointer_segment(name)),
                    format!("port {number} is already named `{first}`; each port needs one name"),
                ));
            }
        }
    }

    if let Some(environment) = value.get("environment").and_then(Value::as_object) {
        for name in environment.keys() {
            if RESERVED_ENVIRONMENT.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    format!("/environment/{}", pointer_segment(name)),
                    format!("`{name}` is set by theseus in every task and cannot be overridden"),
                ));
            }
        }
    }

    if let Some(labels) = list("labels") {
        let mut seen = BTreeSet::new();
        for (i, label) in labels.iter().enumerate() {
            if let Some(label) = label.as_str()
                && !seen.insert(label)
            {
                errors.push(FieldError::new(
                    format!("/labels/{i}"),
                    format!("label `{label}` is listed twice"),
                ));
            }
        }
    }

    if let Some(constraints) = list("constraints") {
        for (i, constraint) in constraints.iter().enumerate() {
            errors.extend(constraint_errors(i, constraint));
        }
    }

    if !has_image && list("volumes").is_some_and(|v| !v.is_empty()) {
        errors.push(FieldError::new(
            "/volumes",
            "volumes are mounted into a container and need an `image`",
        ));
    }

    if let Some(checks) = list("health_checks") {
        for (i, check) in checks.iter().enumerate() {
            errors.extend(health_check_errors(i, check, &ports));
        }
    }

    errors
}

fn constraint_errors(index: usize, constraint: &Value) -> Vec<FieldError> {
    let Some(parts) = constraint.as_array() else {
        return Vec::new();
    };
    let at = |i: usize| format!("/constraints/{index}/{i}");
    let mut errors = Vec::new();
    let Some(operator) = parts.get(1).and_then(Value::as_str) else {
        return errors;
    };
    let known: Vec<String> = CONSTRAINT_OPERATORS.iter().map(|o| o.to_string()).collect();
    if !CONSTRAINT_OPERATORS.contains(&operator) {
        let hint = closest(operator, &known)
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        errors.push(FieldError::new(
            at(1),
            format!(
                "`{operator}` is not a Marathon constraint operator; expected one of {}{hint}",
                CONSTRAINT_OPERATORS.join(", ")
            ),
        ));
        return errors;
    }
    let value = parts.get(2).and_then(Value::as_str);
    match (operator, value) {
        ("UNIQUE", Some(_)) => errors.push(FieldError::new(at(2), "UNIQUE takes no value")),
        ("LIKE" | "UNLIKE" | "IS" | "MAX_PER", None) => errors.push(FieldError::new(
            at(1),
            format!("{operator} needs a value: [field, {operator}, value]"),
        )),
        ("LIKE" | "UNLIKE", Some(pattern)) => {
            if let Err(e) = regex::Regex::new(pattern) {
                errors.push(FieldError::new(
                    at(2),
                    format!("not a regular expression: {e}"),
                ));
            }
        }
        ("MAX_PER" | "GROUP_BY", Some(number)) if number.parse::<u32>().is_ok_and(|n| n > 0) => {}
        ("MAX_PER" | "GROUP_BY", Some(number)) => errors.push(FieldError::new(
            at(2),
            format!("{operator} takes a positive whole number, found `{number}`"),
        )),
        _ => {}
    }
    errors
}

fn health_check_errors(index: usize, check: &Value, ports: &BTreeSet<&str>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let at = |field: &str| format!("/health_checks/{index}/{field}");
    let protocol = check
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("HTTP");
    let port = check.get("port").and_then(Value::as_str);
    let is_command = protocol == "COMMAND";
    match (is_command, port) {
        (true, Some(_)) => errors.push(FieldError::new(
            at("port"),
            "a COMMAND check runs a command and takes no port",
        )),
        (true, None) if check.get("command").is_none() => errors.push(FieldError::new(
            at("command"),
            "a COMMAND check needs `command`",
        )),
        (false, None) => errors.push(FieldError::new(
            at("port"),
            if ports.is_empty() {
                format!("a {protocol} check needs `port`, the name of one of `ports` (none are declared)")
            } else {
                format!(
                    "a {protocol} check needs `port`, one of {}",
                    quoted_list(ports.iter())
                )
            },
        )),
        (false, Some(port)) if !ports.contains(port) => errors.push(FieldError::new(
            at("port"),
            if ports.is_empty() {
                format!("`{port}` is not a declared port; `ports` is empty")
            } else {
                format!(
                    "`{port}` is not a declared port; expected one of {}",
                    quoted_list(ports.iter())
                )
            },
        )),
        _ => {}
    }
    if !is_command && check.get("command").is_some() {
        errors.push(FieldError::new(
            at("command"),
            format!("`command` belongs to COMMAND checks, not {protocol}"),
        ));
    }
    let is_http = matches!(protocol, "HTTP" | "HTTPS" | "MESOS_HTTP" | "MESOS_HTTPS");
    if !is_http && check.get("path").is_some() {
        errors.push(FieldError::new(
            at("path"),
            format!("`path` belongs to HTTP checks, not {protocol}"),
        ));
    }
    let seconds = |field: &str, default: u64| check.get(field).map_or(Some(default), Value::as_u64);
    if let (Some(timeout), Some(interval)) = (
        seconds("timeout_seconds", 20),
        seconds("interval_seconds", 60),
    ) && timeout >= interval
    {
        errors.push(FieldError::new(
            at("timeout_seconds"),
            format!(
                "must be less than interval_seconds ({interval}), found {timeout}; a check must end before the next begins"
            ),
        ));
    }
    errors
}

fn quoted_list<'a>(items: impl Iterator<Item = &'a &'a str>) -> String {
    items
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(value: Value) -> ValidationErrors {
        validate_spec(&value).expect_err("should be invalid")
    }

    fn message_at(errors: &ValidationErrors, pointer: &str) -> String {
        errors
            .at(pointer)
            .unwrap_or_else(|| panic!("no error at {pointer}: {errors}"))
            .message
            .clone()
    }

    #[test]
    fn the_readme_example_is_valid_and_keeps_its_values() {
        let spec = validate_spec(&json!({
            "image": "registry.local:5000/flask", "ports": {"ssh": 22, "api": 5000},
            "environment": {"APP_NAME": "Ingestor"}, "instances": 4, "cpus": 0.1, "mem": 128,
            "labels": ["dev"]
        }))
        .unwrap();
        assert_eq!(spec.instances, 4);
        assert_eq!(spec.ports["api"], 5000);
        assert_eq!(spec.labels, ["dev"]);
    }

    #[test]
    fn an_unknown_field_suggests_the_closest_known_one() {
        let errors = errors_of(json!({"image": "x", "instnaces": 3}));
        assert_eq!(
            message_at(&errors, "/instnaces"),
            "unknown field `instnaces`; did you mean `instances`?"
        );
    }

    #[test]
    fn unknown_fields_inside_health_checks_are_found_too() {
        let errors = errors_of(json!({
            "image": "x", "ports": {"api": 80},
            "health_checks": [{"port": "api", "grace_period": 5}]
        }));
        assert_eq!(
            message_at(&errors, "/health_checks/0/grace_period"),
            "unknown field `grace_period`; did you mean `grace_period_seconds`?"
        );
    }

    #[test]
    fn a_field_nothing_resembles_lists_the_known_fields() {
        let errors = errors_of(json!({"image": "x", "zzzzzzzzzz": 1}));
        let message = message_at(&errors, "/zzzzzzzzzz");
        assert!(message.contains("known fields are"), "{message}");
        assert!(message.contains("`instances`"), "{message}");
    }

    #[test]
    fn wrong_types_name_what_was_expected_and_found() {
        let errors = errors_of(json!({"image": "x", "instances": "4"}));
        assert_eq!(
            message_at(&errors, "/instances"),
            "expected an integer, found the string \"4\""
        );
    }

    #[test]
    fn resources_must_be_positive() {
        let errors = errors_of(json!({"image": "x", "cpus": 0, "mem": -1, "instances": -1}));
        assert_eq!(
            message_at(&errors, "/cpus"),
            "must be greater than 0, found 0"
        );
        assert!(message_at(&errors, "/mem").starts_with("must be greater than 0"));
        assert!(message_at(&errors, "/instances").contains("at least 0"));
    }

    #[test]
    fn rollout_fields_have_defaults_and_bounds() {
        let spec = parse_spec(br#"{"cmd": "x"}"#).unwrap();
        assert_eq!(spec.progress_deadline_seconds, 600);
        assert!(spec.auto_rollback);
        assert!(!spec.paused);
        assert_eq!(spec.revision_history_limit, 10);
        assert_eq!(spec.change_cause, None);
        assert_eq!(spec.crash_loop_limit, 3);
        let errors = errors_of(json!({"cmd": "x", "progress_deadline_seconds": 0,
                                      "paused": "yes", "revision_history_limit": 5000,
                                      "auto_rollback": 1, "crash_loop_limit": 0}));
        assert!(message_at(&errors, "/progress_deadline_seconds").contains("at least 1"));
        assert!(message_at(&errors, "/paused").contains("true or false"));
        assert!(message_at(&errors, "/auto_rollback").contains("true or false"));
        assert!(message_at(&errors, "/revision_history_limit").contains("1000"));
        assert!(message_at(&errors, "/crash_loop_limit").contains("at least 1"));
    }

    #[test]
    fn image_or_cmd_is_required() {
        let errors = errors_of(json!({"instances": 2}));
        assert_eq!(
            message_at(&errors, ""),
            "needs `image` (a Docker image) or `cmd` (a command), or both"
        );
        assert!(validate_spec(&json!({"cmd": "sleep 100"})).is_ok());
        assert!(validate_spec(&json!({"image": "nginx", "cmd": "nginx -g x"})).is_ok());
    }

    #[test]
    fn cmd_and_args_do_not_mix() {
        let errors = errors_of(json!({"cmd": "x", "args": ["a"]}));
        assert!(message_at(&errors, "/args").contains("cannot be combined with `cmd`"));
    }

    #[test]
    fn port_names_must_be_dns_labels_and_ports_in_range() {
        let errors = errors_of(json!({"image": "x", "ports": {"Api": 80, "db": 70000, "ok": 0}}));
        assert!(message_at(&errors, "/ports/Api").contains("is not a DNS label"));
        assert_eq!(
            message_at(&errors, "/ports/db"),
            "must be at most 65535, found 70000"
        );
        assert_eq!(
            message_at(&errors, "/ports/ok"),
            "must be at least 1, found 0"
        );
    }

    #[test]
    fn a_port_number_has_one_name() {
        let errors = errors_of(json!({"image": "x", "ports": {"api": 80, "web": 80}}));
        assert_eq!(
            message_at(&errors, "/ports/web"),
            "port 80 is already named `api`; each port needs one name"
        );
    }

    #[test]
    fn duplicate_port_names_in_the_text_are_errors() {
        let errors = parse_spec(br#"{"image": "x", "ports": {"api": 80, "api": 81}}"#).unwrap_err();
        assert!(message_at(&errors, "/ports/api").starts_with("duplicate key"));
    }

    #[test]
    fn a_health_check_names_a_declared_port() {
        let errors = errors_of(json!({
            "image": "x", "ports": {"api": 80, "ssh": 22},
            "health_checks": [{"port": "web"}, {"protocol": "TCP"}]
        }));
        assert_eq!(
            message_at(&errors, "/health_checks/0/port"),
            "`web` is not a declared port; expected one of `api`, `ssh`"
        );
        assert_eq!(
            message_at(&errors, "/health_checks/1/port"),
            "a TCP check needs `port`, one of `api`, `ssh`"
        );
    }

    #[test]
    fn health_check_protocols_are_marathons() {
        let errors = errors_of(json!({
            "image": "x", "ports": {"api": 80},
            "health_checks": [{"port": "api", "protocol": "http"}]
        }));
        let message = message_at(&errors, "/health_checks/0/protocol");
        assert!(
            message.starts_with("expected one of HTTP, HTTPS, TCP, COMMAND"),
            "{message}"
        );
        assert!(message.ends_with("did you mean `HTTP`?"), "{message}");
    }

    #[test]
    fn command_checks_need_a_command_and_no_port() {
        let errors = errors_of(json!({
            "image": "x", "ports": {"api": 80},
            "health_checks": [{"protocol": "COMMAND"}, {"protocol": "COMMAND", "command": "true", "port": "api"}]
        }));
        assert!(message_at(&errors, "/health_checks/0/command").contains("needs `command`"));
        assert!(message_at(&errors, "/health_checks/1/port").contains("takes no port"));
    }

    #[test]
    fn a_health_check_times_out_before_the_next_one() {
        let errors = errors_of(json!({
            "image": "x", "ports": {"api": 80},
            "health_checks": [{"port": "api", "interval_seconds": 10, "timeout_seconds": 10}]
        }));
        assert!(
            message_at(&errors, "/health_checks/0/timeout_seconds")
                .starts_with("must be less than interval_seconds (10)")
        );
    }

    #[test]
    fn constraint_operators_are_marathons() {
        let errors = errors_of(json!({
            "image": "x",
            "constraints": [["hostname", "UNIQE"], ["hostname", "MAX_PER"], ["hostname", "UNIQUE", "x"],
                            ["rack", "GROUP_BY", "two"], ["hostname"], ["hostname", "LIKE", "("]]
        }));
        assert!(message_at(&errors, "/constraints/0/1").ends_with("did you mean `UNIQUE`?"));
        assert_eq!(
            message_at(&errors, "/constraints/1/1"),
            "MAX_PER needs a value: [field, MAX_PER, value]"
        );
        assert_eq!(
            message_at(&errors, "/constraints/2/2"),
            "UNIQUE takes no value"
        );
        assert!(message_at(&errors, "/constraints/3/2").contains("positive whole number"));
        assert_eq!(
            message_at(&errors, "/constraints/4"),
            "expected [field, OPERATOR] or [field, OPERATOR, value], found 1 items"
        );
        assert!(message_at(&errors, "/constraints/5/2").starts_with("not a regular expression"));
        assert!(
            validate_spec(&json!({"image": "x", "constraints": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"], ["hostname", "LIKE", "a.*"]]}))
                .is_ok()
        );
    }

    #[test]
    fn environment_names_are_checked_and_theseus_names_reserved() {
        let errors = errors_of(json!({
            "image": "x", "environment": {"1BAD": "x", "SERVICE_NAME": "y", "OBJ": {"a": 1}}
        }));
        assert!(message_at(&errors, "/environment/1BAD").contains("environment variable name"));
        assert!(message_at(&errors, "/environment/SERVICE_NAME").contains("set by theseus"));
        assert_eq!(
            message_at(&errors, "/environment/OBJ"),
            "expected a string or a number or a boolean, found an object"
        );
    }

    #[test]
    fn labels_are_dns_labels_listed_once() {
        let errors = errors_of(json!({"image": "x", "labels": ["dev", "Dev", "dev"]}));
        assert!(message_at(&errors, "/labels/1").contains("is not a DNS label"));
        assert_eq!(
            message_at(&errors, "/labels/2"),
            "label `dev` is listed twice"
        );
    }

    #[test]
    fn volumes_need_absolute_paths_and_an_image() {
        let errors = errors_of(json!({"cmd": "x", "volumes": ["data:/data"]}));
        assert!(message_at(&errors, "/volumes/0").contains("absolute paths"));
        assert!(message_at(&errors, "/volumes").contains("need an `image`"));
    }

    #[test]
    fn null_is_not_a_value() {
        let errors = errors_of(json!({"image": "x", "cmd": null}));
        assert_eq!(message_at(&errors, "/cmd"), "expected a string, found null");
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let errors = errors_of(json!({"instnaces": 1, "cpus": "a", "labels": ["A"]}));
        assert_eq!(errors.errors().len(), 4, "{errors}");
    }

    #[test]
    fn a_spec_that_is_not_an_object_says_so() {
        let errors = errors_of(json!([1, 2]));
        assert_eq!(
            errors.to_string(),
            "/: expected an object with the deployment's fields, found a list of 2 items"
        );
        let errors = parse_spec(b"{not json").unwrap_err();
        assert!(
            errors.to_string().starts_with("/: not valid JSON"),
            "{errors}"
        );
    }
}
