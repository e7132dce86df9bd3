//! Files that `theseus validate` and `theseus apply` read: one spec, or the old multi-service
//! format.
//!
//! A single-spec file is a Deployment spec, optionally with `service:` and `name:` keys (or
//! those given on the command line). The old format is
//!
//! ```yaml
//! deploy:
//!   ingestor: {image: ..., labels: [dev]}     # or a list of specs for several deployments
//! remove:
//!   ingestor: {labels: [dev]}                 # or {name: dev}, or a list of those
//! ```
//!
//! where a deployment's name is its sorted labels joined by `-` (`default` when it has none)
//! unless the entry gives `name`. Reading a file never stops at the first problem: every
//! error of every entry is returned, each naming where it is.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::document::{self, Syntax};
use super::{DeploymentKey, DeploymentSpec, DnsLabel, FieldError, validate_spec};

/// The name of a deployment whose labels are empty.
pub const DEFAULT_NAME: &str = "default";

/// What one file asks for, entry by entry.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestEntry {
    /// Write this spec to `/desired/<service>/<name>`.
    Deploy {
        /// The deployment.
        key: DeploymentKey,
        /// The spec as it will be stored: the file's fields, without `service` and `name`.
        document: Value,
        /// The validated spec, defaults filled in.
        spec: Box<DeploymentSpec>,
    },
    /// Delete `/desired/<service>/<name>`.
    Remove {
        /// The deployment.
        key: DeploymentKey,
    },
}

impl ManifestEntry {
    /// The deployment the entry is about.
    pub fn key(&self) -> &DeploymentKey {
        match self {
            ManifestEntry::Deploy { key, .. } | ManifestEntry::Remove { key } => key,
        }
    }
}

/// One problem in a file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file (as named on the command line).
    pub file: String,
    /// The entry within the file: `deploy.ingestor`, `deploy.ingestor[1]`, or empty for a
    /// single-spec file.
    pub entry: String,
    /// The JSON pointer within the entry's spec, and what is wrong.
    pub error: FieldError,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.entry.is_empty() {
            write!(f, "{}: ", self.entry)?;
        }
        write!(f, "{}", self.error)
    }
}

/// Where service and name come from when a single-spec file does not say.
#[derive(Debug, Clone, Default)]
pub struct KeyDefaults {
    /// `--service`.
    pub service: Option<String>,
    /// `--name`.
    pub name: Option<String>,
}

/// Reads one file's text into its entries, or every problem found in it.
pub fn read_manifest(
    file: &str,
    text: &str,
    defaults: &KeyDefaults,
) -> Result<Vec<ManifestEntry>, Vec<ManifestError>> {
    let mut reader = Reader {
        file,
        errors: Vec::new(),
        entries: Vec::new(),
    };
    match document::parse(text, Syntax::guess(file, text)) {
        Err(error) => {
            let error: super::ValidationErrors = error.into();
            for error in error.errors() {
                reader.error("", error.clone());
            }
        }
        Ok(Value::Object(object)) if is_multi_service(&object) => reader.multi(object),
        Ok(Value::Object(object)) => reader.single(object, defaults),
        Ok(Value::Null) => reader.error("", message("", "the file is empty")),
        Ok(_) => reader.error(
            "",
            message(
                "",
                "expected a deployment spec or `deploy:`/`remove:` sections, found a value that is not a mapping",
            ),
        ),
    }
    if reader.errors.is_empty() {
        Ok(reader.entries)
    } else {
        Err(reader.errors)
    }
}

/// A deployment's name from its labels: sorted, joined by `-`, or [`DEFAULT_NAME`].
pub fn name_from_labels<S: AsRef<str>>(labels: &[S]) -> String {
    if labels.is_empty() {
        return DEFAULT_NAME.to_owned();
    }
    let mut labels: Vec<&str> = labels.iter().map(AsRef::as_ref).collect();
    labels.sort_unstable();
    labels.join("-")
}

fn is_multi_service(object: &Map<String, Value>) -> bool {
    object.contains_key("deploy") || object.contains_key("remove")
}

fn message(pointer: &str, text: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.to_owned(),
        message: text.into(),
    }
}

struct Reader<'a> {
    file: &'a str,
    errors: Vec<ManifestError>,
    entries: Vec<ManifestEntry>,
}

impl Reader<'_> {
    fn error(&mut self, entry: &str, error: FieldError) {
        self.errors.push(ManifestError {
            file: self.file.to_owned(),
            entry: entry.to_owned(),
            error,
        });
    }

    fn single(&mut self, mut object: Map<String, Value>, defaults: &KeyDefaults) {
        let from_file = |object: &mut Map<String, Value>, field: &str| match object.remove(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(message(
                &format!("/{field}"),
                format!("`{field}` must be a string"),
            )),
        };
        let service = from_file(&mut object, "service");
        let name = from_file(&mut object, "name");
        let (service, name) = match (service, name) {
            (Ok(service), Ok(name)) => (service, name),
            (service, name) => {
                for error in [service.err(), name.err()].into_iter().flatten() {
                    self.error("", error);
                }
                return;
            }
        };
        let service = match pick("service", service, defaults.service.clone()) {
            Ok(Some(service)) => service,
            Ok(None) => {
                self.error(
                    "",
                    message(
                        "",
                        "no service given: add a `service:` key or pass --service",
                    ),
                );
                return;
            }
            Err(error) => {
                self.error("", error);
                return;
            }
        };
        let name = match pick("name", name, defaults.name.clone()) {
            Ok(name) => name,
            Err(error) => {
                self.error("", error);
                return;
            }
        };
        self.deploy("", &service, name, object);
    }

    fn multi(&mut self, object: Map<String, Value>) {
        for (section, value) in object {
            let entries = match (section.as_str(), value) {
                ("deploy" | "remove", Value::Object(entries)) => entries,
                ("deploy" | "remove", Value::Null) => continue,
                ("deploy" | "remove", _) => {
                    self.error(
                        &section,
                        message("", "expected a mapping of service names to entries"),
                    );
                    continue;
                }
                (other, _) => {
                    self.error(
                        "",
                        message(
                            &format!("/{other}"),
                            format!(
                                "unknown section `{other}`; a multi-service file has only `deploy:` and `remove:`"
                            ),
                        ),
                    );
                    continue;
                }
            };
            for (service, entry) in entries {
                let items = match entry {
                    Value::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| (format!("{section}.{service}[{i}]"), item))
                        .collect(),
                    item => vec![(format!("{section}.{service}"), item)],
                };
                for (place, item) in items {
                    let Value::Object(object) = item else {
                        self.error(&place, message("", "expected a mapping"));
                        continue;
                    };
                    if section == "deploy" {
                        self.deploy_entry(&place, &service, object);
                    } else {
                        self.remove_entry(&place, &service, object);
                    }
                }
            }
        }
    }

    fn deploy_entry(&mut self, place: &str, service: &str, mut object: Map<String, Value>) {
        if let Some(inner) = object.remove("service")
            && inner.as_str() != Some(service)
        {
            self.error(
                place,
                message(
                    "/service",
                    format!("the entry sits under service `{service}` but names service {inner}"),
                ),
            );
            return;
        }
        let name = match object.remove("name") {
            None => None,
            Some(Value::String(name)) => Some(name),
            Some(_) => {
                self.error(place, message("/name", "`name` must be a string"));
                return;
            }
        };
        self.deploy(place, service, name, object);
    }

    fn remove_entry(&mut self, place: &str, service: &str, object: Map<String, Value>) {
        let mut name = None;
        let mut labels: Vec<String> = Vec::new();
        for (field, value) in object {
            match (field.as_str(), value) {
                ("name", Value::String(text)) => name = Some(text),
                ("labels", Value::Array(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        match item {
                            Value::String(label) => labels.push(label),
                            _ => self.error(
                                place,
                                message(&format!("/labels/{i}"), "a label must be a string"),
                            ),
                        }
                    }
                }
                ("name" | "labels", _) => self.error(
                    place,
                    message(
                        &format!("/{field}"),
                        format!("`{field}` has the wrong type"),
                    ),
                ),
                (other, _) => self.error(
                    place,
                    message(
                        &format!("/{other}"),
                        format!(
                            "unknown field `{other}`; a `remove:` entry has only `labels` or `name`"
                        ),
                    ),
                ),
            }
        }
        let name = name.unwrap_or_else(|| name_from_labels(&labels));
        match DeploymentKey::new(service, &name) {
            Ok(key) => self.entries.push(ManifestEntry::Remove { key }),
            Err(error) => self.error(place, message("", error.to_string())),
        }
    }

    fn deploy(
        &mut self,
        place: &str,
        service: &str,
        name: Option<String>,
        object: Map<String, Value>,
    ) {
        let document = Value::Object(object);
        let spec = validate_spec(&document);
        let name = name.unwrap_or_else(|| {
            let labels: Vec<&str> = document
                .get("labels")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            name_from_labels(&labels)
        });
        let key = match (
            DnsLabel::parse("service", service),
            DnsLabel::parse("name", &name),
        ) {
            (Ok(service), Ok(name)) => Some(DeploymentKey { service, name }),
            (service, name) => {
                for error in [service.err(), name.err()].into_iter().flatten() {
                    self.error(place, message("", error.to_string()));
                }
                None
            }
        };
        match spec {
            Err(errors) => {
                for error in errors.errors() {
                    self.error(place, error.clone());
                }
            }
            Ok(spec) => {
                if let Some(key) = key {
                    self.entries.push(ManifestEntry::Deploy {
                        key,
                        document,
                        spec: Box::new(spec),
                    });
                }
            }
        }
    }
}

/// The value of `service` or `name` when both the file and the command line may give it.
fn pick(
    field: &str,
    from_file: Option<String>,
    from_flag: Option<String>,
) -> Result<Option<String>, FieldError> {
    match (from_file, from_flag) {
        (Some(file), Some(flag)) if file != flag => Err(message(
            &format!("/{field}"),
            format!("the file says {field} `{file}` but --{field} says `{flag}`"),
        )),
        (file, flag) => Ok(file.or(flag)),
    }
}

/// Checks that no deployment appears twice across all entries of all files; returns each
/// repeated key with the places it appears.
pub fn repeated_keys<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a ManifestEntry)>,
) -> Vec<(DeploymentKey, Vec<String>)> {
    let mut places: BTreeMap<DeploymentKey, Vec<String>> = BTreeMap::new();
    for (file, entry) in entries {
        let what = match entry {
            ManifestEntry::Deploy { .. } => "deploy",
            ManifestEntry::Remove { .. } => "remove",
        };
        places
            .entry(entry.key().clone())
            .or_default()
            .push(format!("{what} in {file}"));
    }
    places.into_iter().filter(|(_, p)| p.len() > 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_FORMAT: &str = "\
deploy:
  ingestor:
    image: 54.189.193.228:5000/flask
    ports:
      ssh: 22
      api: 5000
    environment:
      APP_NAME: Ingestor
      KEYSPACE_NAME: 'flask_keyspace2'
      TABLE_NAME: 'flask_table2'
    instances: 4
    cpus: 0.1
    mem: 128
    labels: ['dev']
";

    fn keys(entries: &[ManifestEntry]) -> Vec<String> {
        entries.iter().map(|e| e.key().to_string()).collect()
    }

    #[test]
    fn the_old_format_names_deployments_by_their_labels() {
        let entries = read_manifest("ingestor.yaml", OLD_FORMAT, &KeyDefaults::default()).unwrap();
        assert_eq!(keys(&entries), ["ingestor/dev"]);
        let ManifestEntry::Deploy { spec, document, .. } = &entries[0] else {
            panic!("a deploy entry");
        };
        assert_eq!(spec.instances, 4);
        assert_eq!(spec.image.as_deref(), Some("54.189.193.228:5000/flask"));
        assert!(document.get("name").is_none());
    }

    #[test]
    fn names_come_from_sorted_labels_or_default() {
        assert_eq!(name_from_labels(&["prod", "eu"]), "eu-prod");
        assert_eq!(name_from_labels::<&str>(&[]), "default");
    }

    #[test]
    fn a_service_may_list_several_deployments_and_removals() {
        let text = "\
deploy:
  web:
    - {cmd: serve, labels: [blue]}
    - {cmd: serve, name: canary}
    - {cmd: serve}
remove:
  web: {labels: [green, eu]}
  api: [{name: old}]
";
        let entries = read_manifest("f.yaml", text, &KeyDefaults::default()).unwrap();
        assert_eq!(
            keys(&entries),
            [
                "web/blue",
                "web/canary",
                "web/default",
                "api/old",
                "web/eu-green"
            ]
        );
        assert!(matches!(entries[4], ManifestEntry::Remove { .. }));
    }

    #[test]
    fn every_error_of_every_entry_is_reported_with_its_place() {
        let text = "\
deploy:
  web:
    - {cmd: serve, instnaces: 2}
    - {image: x, cpus: -1}
  Bad_Service: {cmd: x}
remove:
  web: {labels: [a], colour: red}
";
        let errors = read_manifest("f.yaml", text, &KeyDefaults::default()).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(lines.contains(&"f.yaml: deploy.web[0]: /instnaces: unknown field `instnaces`; did you mean `instances`?".to_owned()), "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("f.yaml: deploy.web[1]: /cpus: must be greater than 0")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "f.yaml: deploy.Bad_Service: /: service `Bad_Service` is not a DNS label"
            )),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("f.yaml: remove.web: /colour: unknown field")),
            "{lines:#?}"
        );
        assert_eq!(lines.len(), 4, "{lines:#?}");
    }

    #[test]
    fn a_single_spec_takes_its_key_from_the_file_or_the_flags() {
        let text = r#"{"service": "web", "name": "blue", "cmd": "serve"}"#;
        let entries = read_manifest("w.json", text, &KeyDefaults::default()).unwrap();
        assert_eq!(keys(&entries), ["web/blue"]);
        let ManifestEntry::Deploy { document, .. } = &entries[0] else {
            panic!()
        };
        assert_eq!(document, &serde_json::json!({"cmd": "serve"}));

        let flags = KeyDefaults {
            service: Some("web".into()),
            name: None,
        };
        let entries = read_manifest("w.yaml", "cmd: serve\nlabels: [b, a]\n", &flags).unwrap();
        assert_eq!(keys(&entries), ["web/a-b"]);
    }

    #[test]
    fn a_single_spec_without_a_service_says_how_to_give_one() {
        let errors = read_manifest("w.yaml", "cmd: serve\n", &KeyDefaults::default()).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "w.yaml: /: no service given: add a `service:` key or pass --service"
        );
    }

    #[test]
    fn file_and_flags_must_agree() {
        let flags = KeyDefaults {
            service: Some("api".into()),
            name: None,
        };
        let errors = read_manifest("w.yaml", "service: web\ncmd: x\n", &flags).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "w.yaml: /service: the file says service `web` but --service says `api`"
        );
    }

    #[test]
    fn repeated_deployments_are_found_across_files() {
        let a = read_manifest("a.yaml", OLD_FORMAT, &KeyDefaults::default()).unwrap();
        let b = read_manifest(
            "b.yaml",
            "remove:\n  ingestor: {labels: [dev]}\n",
            &KeyDefaults::default(),
        )
        .unwrap();
        let all = a
            .iter()
            .map(|e| ("a.yaml", e))
            .chain(b.iter().map(|e| ("b.yaml", e)));
        let repeated = repeated_keys(all);
        assert_eq!(repeated.len(), 1);
        assert_eq!(repeated[0].0.to_string(), "ingestor/dev");
        assert_eq!(repeated[0].1, ["deploy in a.yaml", "remove in b.yaml"]);
    }

    #[test]
    fn unreadable_text_is_one_error_naming_the_file() {
        let errors = read_manifest("x.json", "{", &KeyDefaults::default()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("x.json: /: not valid JSON"),
            "{}",
            errors[0]
        );
    }
}
