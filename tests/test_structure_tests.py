"""The test suite's own structure: shared code lives in tests/lib/.

No test module (nor a helper of tests/lib/) imports a test module or
conftest, anywhere in it (lazy imports inside functions and the scripts a
test hands a guest included: they are found as text); bench/ imports from
the test suite only tests/lib/.
"""

from __future__ import annotations

import ast
import re

import pytest

from lib.harness import REPO

TESTS = REPO / "tests"
# an import statement inside a string (a script run in a guest or a child)
IMPORT_LINE = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.M)


def imported_modules(path) -> set[str]:
    """The top-level names of every module path imports, in code or in a
    script held in a string."""
    text = path.read_text()
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= {(m[0] or m[1]).split(".")[0] for m in IMPORT_LINE.findall(node.value)}
    return found


def test_module_names_seen():
    """The scan finds what it looks for: a lazy import and one in a script."""
    assert {"lib"} <= imported_modules(TESTS / "test_sockets.py")  # EMFILE_SCRIPT's `from lib.link import`
    assert "lib" in imported_modules(TESTS / "conftest.py")


@pytest.mark.parametrize("path", sorted([*TESTS.glob("test_*.py"), *(TESTS / "lib").glob("*.py")]),
                         ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_imports_another(path):
    bad = {m for m in imported_modules(path) if m.startswith("test_") or m == "conftest"}
    assert not bad, f"{path.name} imports {sorted(bad)}: move what it shares into tests/lib/"


@pytest.mark.parametrize("path", sorted((REPO / "bench").glob("*.py")), ids=lambda p: p.name)
def test_bench_imports_only_tests_lib(path):
    tests_modules = {p.stem for p in TESTS.glob("*.py")}
    bad = {m for m in imported_modules(path) if m in tests_modules}
    assert not bad, f"bench/{path.name} imports {sorted(bad)} from tests/: only tests/lib/ is for sharing"


def test_bench_reaches_tests_lib():
    """bench/tools.py is where bench/ gets the plain user and the guest."""
    assert "lib" in imported_modules(REPO / "bench" / "tools.py")
