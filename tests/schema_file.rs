//! The published schema file is the schema the code validates with.

use std::path::Path;

use theseus::api::{SCHEMA_PATH, deployment_schema_text};

#[test]
fn the_published_schema_file_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_PATH);
    if std::env::var_os("THESEUS_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, deployment_schema_text()).expect("write the schema file");
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == deployment_schema_text(),
        "{SCHEMA_PATH} is stale: regenerate it with \
         `cargo run -q -- schema > {SCHEMA_PATH}` (or THESEUS_UPDATE_SCHEMA=1 cargo test --test schema_file)"
    );
}

#[test]
fn the_published_schema_is_a_valid_json_schema() {
    let schema: serde_json::Value = serde_json::from_str(deployment_schema_text()).unwrap();
    assert!(jsonschema::meta::is_valid(&schema));
}
