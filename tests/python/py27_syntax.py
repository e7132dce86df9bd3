"""Checks Python files against Python 2.7's grammar, with no Python 2 installed.

Usage: py27_syntax.py FILE...

Each file is parsed with parso's Python 2.7 grammar (parso 0.7, the last release that has
it) and its syntax errors are listed as `file:line:column: message`. Every module a file
imports must be one of the standard library modules below, all present in Python 2.7, or
a module of the shim itself. Exits 1 when a file fails either check.

parso's 2.7 grammar has no `from __future__ import print_function`: print with keyword
arguments fails here even where Python 2.7 would accept it, which only makes the check
stricter.
"""

import ast
import sys

import parso

STANDARD_LIBRARY_2_7 = {"errno", "json", "logging", "os", "signal", "subprocess", "sys"}
SHIM_MODULES = {"guestutils", "watch_methods"}


def imported_modules(source):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, (node.module or "").split(".")[0]


def problems(path):
    with open(path) as file:
        source = file.read()
    grammar = parso.load_grammar(version="2.7")
    for error in grammar.iter_errors(grammar.parse(source)):
        line, column = error.start_pos
        yield "%s:%d:%d: Python 2.7: %s" % (path, line, column, error.message)
    try:
        modules = list(imported_modules(source))
    except SyntaxError:
        return
    for line, module in modules:
        if module not in STANDARD_LIBRARY_2_7 | SHIM_MODULES:
            yield "%s:%d: imports %s, not known to be in Python 2.7's standard library" % (
                path, line, module)


def main(paths):
    found = [problem for path in paths for problem in problems(path)]
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
