//! Secrets stay on the server: environment values whose names look secret are replaced before
//! a spec leaves the process.
//!
//! A name looks secret when it contains `PASSWORD`, `SECRET`, `TOKEN` or `KEY`, in any case
//! (`db_password`, `API_KEY`, `GithubToken`). The value is replaced by [`MASK`]; the name
//! stays, so people see that the variable is set. Only the spec's `environment` object is
//! masked: it is where theseus specs carry values, and a spec that is not valid is masked
//! the same way as long as it is a JSON object.

use serde_json::Value;

/// What a secret value is shown as.
pub const MASK: &str = "••••••";

/// Name fragments that mark a variable as secret, upper case.
const SECRET_WORDS: [&str; 4] = ["PASSWORD", "SECRET", "TOKEN", "KEY"];

/// Whether an environment variable's name looks like it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// `spec` with the values of its secret-looking environment variables replaced by [`MASK`].
pub fn mask_spec(mut spec: Value) -> Value {
    if let Some(environment) = spec.get_mut("environment").and_then(Value::as_object_mut) {
        for (name, value) in environment.iter_mut() {
            if looks_secret(name) {
                *value = Value::String(MASK.to_owned());
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_looking_names_are_masked_in_any_case_and_others_kept() {
        let spec = json!({"cmd": "run", "environment": {
            "DB_PASSWORD": "hunter2", "api_key": "k", "GithubToken": 7, "MY_SECRET_X": true,
            "APP_NAME": "Ingestor", "PORT": 8080}});
        let masked = mask_spec(spec);
        assert_eq!(
            masked["environment"],
            json!({"DB_PASSWORD": MASK, "api_key": MASK, "GithubToken": MASK,
                   "MY_SECRET_X": MASK, "APP_NAME": "Ingestor", "PORT": 8080})
        );
        assert_eq!(masked["cmd"], "run");
    }

    #[test]
    fn a_spec_without_an_environment_object_is_left_as_it_is() {
        for spec in [
            json!("text"),
            json!({"environment": "x"}),
            json!({"cmd": "a"}),
        ] {
            assert_eq!(mask_spec(spec.clone()), spec);
        }
    }
}
