//! Python virtualenvs with one package from PyPI, for tests that drive theseus from Python
//! (a Marathon client, the shim's grammar check, a WebDriver client).
//!
//! What it promises: [`python_with`] returns the interpreter of a virtualenv under the
//! workspace's `target/` in which `probe` imports; it builds the virtualenv only when that
//! fails. A virtualenv is built under a name of its own and renamed into place, so tests
//! that get here at once never share a half-built one (the loser's copy is removed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `target/` directory, where the virtualenvs are kept between runs.
fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The python of the virtualenv `target/<name>` in which `probe` (Python code, e.g.
/// `import selenium`) runs; `package` (a pip requirement, e.g. `selenium==4.27.1`) is
/// installed from PyPI first when it does not. Panics with pip's message when PyPI cannot
/// be reached or the package cannot be installed: the test needs it.
pub fn python_with(name: &str, package: &str, probe: &str) -> PathBuf {
    let venv = workspace_target().join(name);
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", probe])
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if ready(&python) {
        return python;
    }
    let building = venv.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&building)
        .status()
        .expect("python3 runs (Debian: python3 and python3-venv)");
    assert!(
        status.success(),
        "python3 -m venv {} failed",
        building.display()
    );
    let output = Command::new(building.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--timeout", "60", package])
        .output()
        .expect("pip runs");
    assert!(
        output.status.success(),
        "pip could not install {package} from PyPI (is PyPI reachable?); this test needs it.\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A virtualenv's python finds its packages relative to where it is run from, so a
    // complete one can be renamed into place. A broken one in the way goes first; when
    // another test renamed its own in meanwhile, that one is kept.
    if !ready(&python) {
        let _ = std::fs::remove_dir_all(&venv);
    }
    if std::fs::rename(&building, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    python
}
