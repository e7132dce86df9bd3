//! The Python shim runs on Python 2.7 too: its files parse under Python 2.7's grammar and
//! import only modules Python 2.7's standard library has. No Python 2 can be installed
//! here, so `tests/python/py27_syntax.py` checks them with parso's Python 2.7 grammar
//! (parso 0.7.1, the last release that has it), installed from PyPI into a virtualenv
//! under `target/`. If PyPI cannot be reached the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PARSO: &str = "parso==0.7.1";

/// The python of a virtualenv with parso (built under `target/` the first time).
fn python() -> PathBuf {
    theseus_testkit::python::python_with(
        "python27-syntax-venv",
        PARSO,
        "import parso; parso.load_grammar(version='2.7')",
    )
}

fn check(files: &[&Path]) -> Output {
    let checker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/py27_syntax.py");
    Command::new(python())
        .arg(checker)
        .args(files)
        .output()
        .expect("the checker runs")
}

#[test]
fn the_shipped_python_files_parse_as_python_2_7() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = theseus::guest::python::FILES
        .iter()
        .map(|file| {
            let path = dir.path().join(file.name);
            std::fs::write(&path, file.contents).unwrap();
            path
        })
        .collect();
    let output = check(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_checker_rejects_what_python_2_7_cannot_parse_or_import() {
    let dir = tempfile::tempdir().unwrap();
    let python3_only = [
        ("f_string", "x = 1\ny = f\"{x}\"\n"),
        ("annotation", "def f(a: int) -> int:\n    return a\n"),
        ("keyword_only", "def f(*, a):\n    return a\n"),
        (
            "nonlocal",
            "def f():\n    x = 1\n    def g():\n        nonlocal x\n",
        ),
        ("print_keyword", "import sys\nprint('a', file=sys.stderr)\n"),
        (
            "raise_from",
            "try:\n    pass\nexcept KeyError as e:\n    raise ValueError() from e\n",
        ),
        ("starred_target", "a, *b = [1, 2]\n"),
        ("yield_from", "def f():\n    yield from [1]\n"),
        ("three_only_module", "import shutil, pathlib\n"),
    ];
    for (name, source) in python3_only {
        let path = dir.path().join(format!("{name}.py"));
        std::fs::write(&path, source).unwrap();
        let output = check(&[&path]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !output.status.success() && stdout.contains(&format!("{name}.py:")),
            "{name} passed the Python 2.7 check: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let fine = dir.path().join("fine.py");
    std::fs::write(
        &fine,
        "import os\ntry:\n    x = os.environ['A']\nexcept KeyError as e:\n    x = '%s' % e\n",
    )
    .unwrap();
    assert!(check(&[&fine]).status.success());
}
