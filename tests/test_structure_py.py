"""The Python side's structure (issue 18), read from the sources with ast
(no daemon, nothing imported):

- only slirpd/dataplane.py imports the compiled core, slirpd._dp: every other
  module goes through its Dataplane class;
- no module of slirpd/ uses a private name (_name) of another module, by
  import or as an attribute of a module it imported.  A leading underscore
  on a module's own name (_dp, _linux) means private to the package;
- the Linux constants and SetupError are defined once, in slirpd/_linux.py,
  and only it loads the C library.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "slirpd"
LINUX = PACKAGE / "_linux.py"
DATAPLANE = PACKAGE / "dataplane.py"
# Every Python file of the repository that may import slirpd
SOURCES = sorted([*PACKAGE.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py"),
                  *REPO.glob("*.py")])


def module_name(path: Path) -> str:
    """slirpd/pasta/main.py -> slirpd.pasta.main."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imported_modules(tree: ast.Module, package: str) -> set[str]:
    """The modules tree imports, by absolute name (package: the importing
    module's package, for relative imports), and for `from M import N`
    also M.N (N may be a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, less a level for each dot but the first
                parts = package.split(".")
                base = ".".join([*parts[:len(parts) - node.level + 1], *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def dotted(node: ast.expr) -> str | None:
    """a.b.c for a chain of names and attributes, None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return base and f"{base}.{node.attr}"
    return None


def private_uses(tree: ast.Module) -> list[str]:
    """Where tree uses another slirpd module's private name: `from slirpd.X
    import _y` (or `from slirpd import _x`), and `X._y` (or `X.Z._y`) where
    X is a name an import bound to slirpd or one of its modules or names."""
    found, bound = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "slirpd":
            for alias in node.names:
                if is_private(alias.name):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            bound |= {alias.asname or alias.name.split(".")[0] for alias in node.names
                      if alias.name.split(".")[0] == "slirpd"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            name = dotted(node.value)
            if name is not None and name.split(".")[0] in bound:
                found.append(f"line {node.lineno}: {name}.{node.attr}")
    return sorted(found)


def assigned_names(tree: ast.Module) -> set[str]:
    """Every name tree assigns or defines (a class, a function), at any level."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
    return names


def linux_constants() -> set[str]:
    """The ALL_CAPS names _linux.py defines at module level."""
    return {t.id for node in parsed(LINUX).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}


def test_only_dataplane_imports_the_compiled_core():
    importers = set()
    for path in SOURCES:
        tree = parsed(path)
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        if any(m == "slirpd._dp" or m.startswith("slirpd._dp.") for m in imported_modules(tree, package)):
            importers.add(path.relative_to(REPO))
    assert importers == {DATAPLANE.relative_to(REPO)}


def test_no_module_uses_another_modules_private_names():
    found = {str(path.relative_to(REPO)): uses for path in sorted(PACKAGE.rglob("*.py"))
             if (uses := private_uses(parsed(path)))}
    assert found == {}


def test_private_use_is_found():
    """The check above sees each way a private name is reached, and nothing
    else (a module's own private names, dunders, other objects')."""
    tree = ast.parse("from slirpd.netns import _setns\nfrom slirpd import cli as c, __version__\n"
                     "import slirpd.main\nfrom slirpd.config import Config\nfrom slirpd._dp import lib\n"
                     "c._publish()\nslirpd.main._serve\nConfig()._replace\nConfig._fields\n"
                     "self._x\n_own()\nlib.dp_new\nc.__doc__\n")
    assert private_uses(tree) == ["line 1: from slirpd.netns import _setns", "line 6: c._publish",
                                  "line 7: slirpd.main._serve", "line 9: Config._fields"]


def test_linux_constants_are_defined_once():
    constants = linux_constants()
    assert {"CLONE_NEWNS", "CLONE_NEWUSER", "CLONE_NEWNET", "MS_BIND", "MNT_DETACH", "PR_SET_PDEATHSIG"} <= constants
    again = {str(path.relative_to(REPO)): sorted(assigned_names(parsed(path)) & (constants | {"SetupError"}))
             for path in PACKAGE.rglob("*.py") if path != LINUX}
    assert {path: names for path, names in again.items() if names} == {}


def test_only_linux_loads_the_c_library():
    """ctypes.CDLL(None): the C library of this process (seccomp.py loads
    libseccomp by its soname, which is not this)."""
    loaders = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "CDLL" \
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value is None:
                loaders.add(path.relative_to(REPO))
    assert loaders == {LINUX.relative_to(REPO)}
