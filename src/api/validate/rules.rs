//! The rules of a spec that its schema cannot say: names unique across lists, references
//! between fields, reserved environment names, constraint and health check shapes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::super::document::pointer_segment;
use super::super::environment::RESERVED_ENVIRONMENT;
use super::super::spec::CONSTRAINT_OPERATORS;
use super::FieldError;
use super::wording::closest;
/// The rules a schema cannot say. They read the raw value defensively so that they run even
/// when the schema already failed, and every problem is reported in one go.
pub(super) fn rule_errors(value: &Value) -> Vec<FieldError> {
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
