"""The frame-path fuzzer (tests/fuzz/): every seed and past crash replays clean, and a
short libFuzzer run under ASan + UBSan finds nothing.

The long runs are `make fuzz SECONDS=N`; this is the part of it the regular suite
keeps: a minute of fuzzing, and the regression inputs (each one a crash that was
found and fixed) run on every change.
"""

import os
import re
import shutil
import subprocess

import pytest

from lib.harness import environ_without_preload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "tests", "fuzz")
BINARY = os.path.join(FUZZ, "out", "fuzz_frames")
SHORT_RUN_SECONDS = int(os.environ.get("SLIRPD_FUZZ_SECONDS", "60"))

pytestmark = pytest.mark.skipif(shutil.which("clang") is None,
                                reason="clang (with libFuzzer) is not installed: `make deps`")

ENV = environ_without_preload(ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:quarantine_size_mb=64",
                              UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")


@pytest.fixture(scope="module")
def fuzzer():
    r = subprocess.run(["make", "-C", ROOT, "fuzz-build"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return BINARY


def inputs(directory):
    return sorted(os.path.join(directory, n) for n in os.listdir(directory))


@pytest.mark.timeout(600)
def test_seeds_and_regressions_replay(fuzzer):
    files = inputs(os.path.join(FUZZ, "corpus")) + inputs(os.path.join(FUZZ, "regressions"))
    assert len(files) >= 20, "seed corpus missing: tests/fuzz/mkseeds.py"
    r = subprocess.run([fuzzer, "-runs=1"] + files, capture_output=True, text=True, env=ENV,
                       timeout=540)
    assert r.returncode == 0, r.stderr[-5000:]
    ran = re.findall(r"^Executed (\S+) in", r.stderr, re.M)
    assert sorted(ran) == sorted(files), "not every input ran"


@pytest.mark.timeout(SHORT_RUN_SECONDS + 300)
def test_short_fuzz_run(fuzzer, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(os.path.join(FUZZ, "corpus"), corpus)
    r = subprocess.run([fuzzer, f"-max_total_time={SHORT_RUN_SECONDS}", "-max_len=16384",
                        "-timeout=10", "-rss_limit_mb=4096", "-print_final_stats=1",
                        f"-artifact_prefix={tmp_path}/", str(corpus)],
                       capture_output=True, text=True, env=ENV, timeout=SHORT_RUN_SECONDS + 240)
    crashes = [p.name for p in tmp_path.iterdir() if p.name != "corpus"]
    assert r.returncode == 0 and not crashes, (crashes, r.stderr[-5000:])
    runs = int(re.search(r"stat::number_of_executed_units: (\d+)", r.stderr).group(1))
    assert runs > 100, r.stderr[-2000:]
