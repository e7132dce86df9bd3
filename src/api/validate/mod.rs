//! Validation of Deployment specs: the JSON schema, then the rules a schema cannot say.
//!
//! Every error names the JSON pointer of the bad field and what was expected; an unknown field
//! suggests the closest known one. All errors are reported at once, never only the first. The
//! CLI validates before writing and the controller after reading (people may write `/desired`
//! with `etcdctl`), with the same function.
//!
//! The schema's errors are worded in [`wording`]; the rules a schema cannot say are in
//! [`rules`].

mod rules;
mod wording;

use std::fmt;

use serde_json::Value;

use super::document::{self, DocumentError, pointer_segment};
use super::schema;
use super::spec::DeploymentSpec;
use rules::rule_errors;
use wording::{describe, schema_error};

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
