//! The Python shim for old images: `guestutils.py` and `watcher.py`, compiled into the
//! binary and written out by `theseus guest install-python DIR`.
//!
//! The files keep the old modules' names, signatures and meanings and answer through the
//! `theseus` binary (`theseus guest ... --json`, `theseus watch --json-lines`), so an image
//! that replaces its `guestutils/` directory's two files keeps working unchanged. They use
//! only the standard library and Python 2.7-compatible syntax.
//!
//! [`install`] writes both files or none: a file that exists with other contents is an
//! error unless the caller forces, so a copy someone changed is never lost silently.

use std::io::Write;
use std::path::{Path, PathBuf};

/// One file of the shim: its name and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShimFile {
    /// The file name, e.g. `guestutils.py`.
    pub name: &'static str,
    /// Its contents.
    pub contents: &'static str,
    /// Whether it is a program (written executable).
    pub executable: bool,
}

/// The files of the shim, in the order they are written.
pub const FILES: [ShimFile; 2] = [
    ShimFile {
        name: "guestutils.py",
        contents: include_str!("python/guestutils.py"),
        executable: false,
    },
    ShimFile {
        name: "watcher.py",
        contents: include_str!("python/watcher.py"),
        executable: true,
    },
];

/// What [`install`] did with one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallAction {
    /// The file did not exist and was written.
    Created,
    /// The file existed with other contents and was replaced (forced).
    Replaced,
    /// The file already had these contents.
    Unchanged,
}

/// One file [`install`] handled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    /// Where it is.
    pub path: PathBuf,
    /// What was done.
    pub action: InstallAction,
}

/// What can go wrong writing the shim.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The directory cannot be created.
    #[error("cannot create the directory {}: {source}", .dir.display())]
    CreateDirectory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file exists with other contents, and replacing was not asked for.
    #[error(
        "{} exists and differs from the file theseus ships; nothing was written. Pass --force \
         to replace it (keep a copy first if it holds changes of your own)",
        .path.display()
    )]
    Differs {
        /// The file.
        path: PathBuf,
    },
    /// A path that should be a file is something else (a directory, say).
    #[error("{} exists and is not a regular file; nothing was written", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// `read`, `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl InstallError {
    /// A short, stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            InstallError::CreateDirectory { .. } => "create_directory",
            InstallError::Differs { .. } => "differs",
            InstallError::NotAFile { .. } => "not_a_file",
            InstallError::Io { .. } => "io",
        }
    }
}

/// Writes [`FILES`] into `dir` (created if missing). A file already holding the same
/// contents is left as it is. A file with other contents is an error, and nothing is
/// written, unless `force`, which replaces it. Each file is written to a temporary name
/// and renamed into place, so a reader never sees half a file.
pub fn install(dir: &Path, force: bool) -> Result<Vec<Installed>, InstallError> {
    std::fs::create_dir_all(dir).map_err(|source| InstallError::CreateDirectory {
        dir: dir.to_owned(),
        source,
    })?;
    let mut plan = Vec::new();
    for file in FILES {
        let path = dir.join(file.name);
        let action = match std::fs::symlink_metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => InstallAction::Created,
            Err(source) => {
                return Err(InstallError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
            Ok(metadata) if !metadata.is_file() => return Err(InstallError::NotAFile { path }),
            Ok(_) => {
                let existing = std::fs::read(&path).map_err(|source| InstallError::Io {
                    action: "read",
                    path: path.clone(),
                    source,
                })?;
                if existing == file.contents.as_bytes() {
                    InstallAction::Unchanged
                } else if force {
                    InstallAction::Replaced
                } else {
                    return Err(InstallError::Differs { path });
                }
            }
        };
        plan.push((file, Installed { path, action }));
    }
    for (file, installed) in &plan {
        if installed.action != InstallAction::Unchanged {
            write_file(dir, file, &installed.path)?;
        }
    }
    Ok(plan.into_iter().map(|(_, installed)| installed).collect())
}

fn write_file(dir: &Path, file: &ShimFile, path: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |source| InstallError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let temporary = dir.join(format!(".{}.tmp-{}", file.name, std::process::id()));
    let written = (|| {
        let mut out = std::fs::File::create(&temporary)?;
        out.write_all(file.contents.as_bytes())?;
        out.sync_all()?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn actions(installed: &[Installed]) -> Vec<(&str, InstallAction)> {
        installed
            .iter()
            .map(|i| {
                (
                    i.path.file_name().unwrap().to_str().unwrap(),
                    i.action.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn install_writes_both_files_and_a_second_install_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("guestutils");
        let first = install(&target, false).unwrap();
        assert_eq!(
            actions(&first),
            [
                ("guestutils.py", InstallAction::Created),
                ("watcher.py", InstallAction::Created)
            ]
        );
        for file in FILES {
            let path = target.join(file.name);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), file.contents);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, if file.executable { 0o755 } else { 0o644 });
        }
        let again = install(&target, false).unwrap();
        assert!(again.iter().all(|i| i.action == InstallAction::Unchanged));
        assert_eq!(
            std::fs::read_dir(&target).unwrap().count(),
            2,
            "no leftovers"
        );
    }

    #[test]
    fn a_changed_file_is_kept_and_nothing_written_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("watcher.py"), "# our own\n").unwrap();
        let error = install(dir.path(), false).unwrap_err();
        assert!(matches!(&error, InstallError::Differs { path } if path.ends_with("watcher.py")));
        assert!(error.to_string().contains("--force"), "{error}");
        assert!(
            !dir.path().join("guestutils.py").exists(),
            "all or nothing: guestutils.py was not written either"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("watcher.py")).unwrap(),
            "# our own\n"
        );
        let forced = install(dir.path(), true).unwrap();
        assert_eq!(
            actions(&forced),
            [
                ("guestutils.py", InstallAction::Created),
                ("watcher.py", InstallAction::Replaced)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("watcher.py")).unwrap(),
            FILES[1].contents
        );
    }
}
