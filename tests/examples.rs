//! The files in `examples/` are what they claim to be.

use std::path::{Path, PathBuf};

use theseus::api::manifest::{KeyDefaults, ManifestEntry, read_manifest};

fn repository_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository_file(path)).unwrap()
}

fn keys(path: &str) -> Vec<String> {
    read_manifest(path, &read(path), &KeyDefaults::default())
        .unwrap_or_else(|errors| panic!("{path} is invalid: {errors:?}"))
        .iter()
        .map(|entry| {
            assert!(matches!(entry, ManifestEntry::Deploy { .. }));
            entry.key().to_string()
        })
        .collect()
}

#[test]
fn the_old_systems_example_deploys_ingestor_dev() {
    assert_eq!(keys("examples/ingestor.yaml"), ["ingestor/dev"]);
}

#[test]
fn the_hello_example_is_one_service_in_two_labelled_deployments_and_a_client() {
    assert_eq!(
        keys("examples/hello.yaml"),
        ["hello/blue", "hello/green", "hello-client/default"]
    );
}

#[test]
fn the_controllers_own_marathon_app_is_a_valid_marathon_app_definition() {
    let schema: serde_json::Value =
        serde_json::from_str(&read("tests/fixtures/marathon/app-definition.schema.json")).unwrap();
    let app: serde_json::Value =
        serde_json::from_str(&read("examples/marathon/theseus-controller.json")).unwrap();
    // Marathon's schema predates draft 6: tuple-style `items` lists.
    let validator = jsonschema::draft4::new(&schema).expect("Marathon's app schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&app)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(app["instances"], 2, "two replicas elect a leader");
    assert_eq!(app["healthChecks"][0]["path"], "/healthz");
    assert!(
        app["labels"].get("THESEUS_MANAGED").is_none(),
        "the controller's own app is not one the controller manages"
    );
}
