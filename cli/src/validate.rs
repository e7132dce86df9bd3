//! `theseus validate -f FILE...`: every error of every file, nothing written.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::Failure;
use super::output::{OutputFormat, Table, print_structured};
use theseus::api::manifest::{
    KeyDefaults, ManifestEntry, ManifestError, read_manifest, repeated_keys,
};

/// Arguments of `theseus validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Deployment files (JSON or YAML; `-` reads stdin). A file holds one spec or the old
    /// multi-service format with `deploy:` and `remove:` sections.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub key: KeyArgs,
}

/// Service and name for single-spec files that do not give them.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Service of a single-spec file without a `service:` key.
    #[arg(long)]
    pub service: Option<String>,
    /// Name of a single-spec file without a `name:` key (default: its sorted labels joined
    /// by `-`, or `default`).
    #[arg(long)]
    pub name: Option<String>,
}

impl KeyArgs {
    fn defaults(&self) -> KeyDefaults {
        KeyDefaults {
            service: self.service.clone(),
            name: self.name.clone(),
        }
    }
}

/// Every entry of every file, with the file it came from, or every problem found.
pub(super) struct ReadFiles {
    pub entries: Vec<(String, ManifestEntry)>,
}

/// Reads and validates all files; also rejects a deployment named twice.
pub(super) fn read_files(files: &[PathBuf], key: &KeyArgs) -> Result<ReadFiles, Vec<String>> {
    let mut entries = Vec::new();
    let mut problems: Vec<ManifestError> = Vec::new();
    let mut unreadable = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = if name == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        };
        let text = match text {
            Ok(text) => text,
            Err(error) => {
                unreadable.push(format!("{name}: cannot read: {error}"));
                continue;
            }
        };
        match read_manifest(&name, &text, &key.defaults()) {
            Ok(read) => entries.extend(read.into_iter().map(|entry| (name.clone(), entry))),
            Err(errors) => problems.extend(errors),
        }
    }
    let mut lines: Vec<String> = unreadable;
    lines.extend(problems.iter().map(ToString::to_string));
    for (key, places) in repeated_keys(entries.iter().map(|(f, e)| (f.as_str(), e))) {
        lines.push(format!(
            "{key} is given more than once ({}); each deployment may appear once",
            places.join(", ")
        ));
    }
    if lines.is_empty() {
        Ok(ReadFiles { entries })
    } else {
        Err(lines)
    }
}

#[derive(Serialize)]
struct Checked<'a> {
    file: &'a str,
    deployment: String,
    action: &'static str,
}

/// Runs `theseus validate`.
pub fn run(args: ValidateArgs, output: OutputFormat) -> Result<(), Failure> {
    let read = read_files(&args.files, &args.key).map_err(Failure::Problems)?;
    let checked: Vec<Checked<'_>> = read
        .entries
        .iter()
        .map(|(file, entry)| Checked {
            file,
            deployment: entry.key().to_string(),
            action: match entry {
                ManifestEntry::Deploy { .. } => "deploy",
                ManifestEntry::Remove { .. } => "remove",
            },
        })
        .collect();
    match output {
        OutputFormat::Table => {
            let mut table = Table::new(&["FILE", "DEPLOYMENT", "ACTION", "RESULT"]);
            for c in &checked {
                table.row(vec![
                    c.file.to_owned(),
                    c.deployment.clone(),
                    c.action.to_owned(),
                    "valid".to_owned(),
                ]);
            }
            table.print()?;
        }
        format => print_structured(format, &checked)?,
    }
    Ok(())
}
