//! Docker images of the project's own binaries, for machines where nothing can be pulled.
//!
//! [`ProjectImage::build`] makes a `FROM scratch` image holding the named binaries in `/bin`
//! and, at their own paths, the shared libraries and the dynamic loader `ldd` lists for them:
//! nothing else, no shell. Its tag is `theseus-local/<name>:<hash>`, the hash covering every
//! file's path and bytes, so an image is built once per build of its binaries and reused
//! while they are unchanged; a rebuilt binary gets a new tag. Images carry the label
//! [`IMAGE_LABEL`]` = project` so that they can be told from anyone else's.
//!
//! [`DockerEngine::probe`] tells whether an engine answers, so that tests needing one can be
//! skipped with the reason printed. [`TestContainers`] removes, when dropped (also while a
//! failing test unwinds), every container carrying a given label value.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// The label on every image this module builds.
pub const IMAGE_LABEL: &str = "theseus.image";

/// Errors building an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary to put in the image is not built.
    #[error(
        "{0} is not built: run `cargo build --workspace --bins` (or set THESEUS_BIN_DIR to the directory holding it)"
    )]
    MissingBinary(PathBuf),
    /// `ldd` failed on a binary.
    #[error("ldd {binary} failed: {reason}")]
    Ldd {
        /// The binary.
        binary: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be read or copied.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `docker build` failed.
    #[error("docker build of {tag} failed: {reason}")]
    Build {
        /// The tag being built.
        tag: String,
        /// What the engine said.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The local Docker engine, as the `docker` CLI reaches it.
#[derive(Debug, Clone, Copy)]
pub struct DockerEngine;

impl DockerEngine {
    /// `Ok` when `docker info` answers; otherwise why not, for a skip message.
    pub fn probe() -> Result<(), String> {
        match Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "`docker info` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("the docker CLI cannot be run: {e}")),
        }
    }
}

/// Where the workspace's binaries are: `$THESEUS_BIN_DIR`, else the directory above the
/// running test binary (`target/<profile>/deps/..`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("THESEUS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The libraries (and loader) `ldd` lists for `binary`, as absolute paths.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new("ldd")
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Ldd {
            binary: binary.to_path_buf(),
            reason: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary: "not a dynamic executable", nothing to add.
        if String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
            || text.contains("statically linked")
        {
            return Ok(Vec::new());
        }
        return Err(Error::Ldd {
            binary: binary.to_path_buf(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // Lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2
    // (0x...)`, and `linux-vdso.so.1 (0x...)`, which the kernel provides.
    Ok(text
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// An image of some of the project's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectImage {
    /// `theseus-local/<name>:<hash>`.
    pub tag: String,
}

impl ProjectImage {
    /// The image `theseus-local/<name>` holding `binaries` (file names in [`bin_dir`]) in
    /// `/bin`, built unless an image of the same content exists. Blocking.
    pub fn build(name: &str, binaries: &[&str]) -> Result<ProjectImage, Error> {
        ProjectImage::build_from(&bin_dir(), name, binaries)
    }

    /// As [`ProjectImage::build`], with the binaries taken from `dir`.
    pub fn build_from(dir: &Path, name: &str, binaries: &[&str]) -> Result<ProjectImage, Error> {
        let mut files: Vec<(PathBuf, PathBuf)> = Vec::new(); // (source, path in the image)
        for binary in binaries {
            let source = dir.join(binary);
            if !source.is_file() {
                return Err(Error::MissingBinary(source));
            }
            for library in shared_libraries(&source)? {
                let inside = library.clone();
                if !files.iter().any(|(_, i)| *i == inside) {
                    files.push((library, inside));
                }
            }
            files.push((source, Path::new("/bin").join(binary)));
        }
        files.sort_by(|a, b| a.1.cmp(&b.1));
        let mut hash = Sha256::new();
        for (source, inside) in &files {
            hash.update(inside.to_string_lossy().as_bytes());
            hash.update([0]);
            hash.update(std::fs::read(source).map_err(io(source))?);
        }
        let digest: String = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        let image = ProjectImage {
            tag: format!("theseus-local/{name}:{digest}"),
        };
        if image.exists() {
            return Ok(image);
        }
        let context = tempfile::tempdir().map_err(io(Path::new("a temporary directory")))?;
        let root = context.path().join("root");
        for (source, inside) in &files {
            let target = root.join(inside.strip_prefix("/").unwrap_or(inside));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            // `copy` follows symbolic links: the image gets the library itself.
            std::fs::copy(source, &target).map_err(io(source))?;
        }
        let dockerfile = context.path().join("Dockerfile");
        std::fs::write(
            &dockerfile,
            format!("FROM scratch\nLABEL {IMAGE_LABEL}=project\nCOPY . /\n"),
        )
        .map_err(io(&dockerfile))?;
        let out = Command::new("docker")
            .args(["build", "--quiet", "--tag", &image.tag, "--file"])
            .arg(&dockerfile)
            .arg(&root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Build {
                tag: image.tag.clone(),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Build {
                tag: image.tag.clone(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(image)
    }

    fn exists(&self) -> bool {
        Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", &self.tag])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Removes, when dropped, every container whose label `key` has the value `value`.
#[derive(Debug)]
pub struct TestContainers {
    key: String,
    value: String,
}

impl TestContainers {
    /// Guards the containers labelled `key=value`.
    pub fn labelled(key: impl Into<String>, value: impl Into<String>) -> TestContainers {
        TestContainers {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The ids of the guarded containers that exist now.
    pub fn ids(&self) -> Vec<String> {
        let filter = format!("label={}={}", self.key, self.value);
        Command::new("docker")
            .args(["ps", "--all", "--quiet", "--filter", &filter])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TestContainers {
    fn drop(&mut self) {
        let ids = self.ids();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "--force", "--volumes"])
                .args(&ids)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lists_the_loader_and_libraries_with_absolute_paths() {
        let libraries = shared_libraries(Path::new("/bin/sh")).unwrap();
        assert!(libraries.iter().all(|l| l.is_absolute()));
        assert!(
            libraries
                .iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "{libraries:?}"
        );
    }
}
