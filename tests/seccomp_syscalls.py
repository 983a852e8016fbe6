#!/usr/bin/env python3
"""Which system calls does a serving slirpd make?  Reads the per-process
strace files of a test run (SLIRPD_TEST_STRACE=DIR with SLIRPD_TEST_HARDEN=1,
see tests/conftest.py and slirpd/seccomp.py) and prints, for everything after
each trace's seccomp() call: the calls with their counts, the ioctl requests,
socket() families, mmap/mprotect protections, and every call that failed with
EPERM (with the real filter loaded, a call missing from the allowlist shows up
there).

Usage: tests/seccomp_syscalls.py DIR

To measure afresh (as root, in the worktree):
1. in slirpd/seccomp.py enter(), load `pyseccomp.SyscallFilter(pyseccomp.ALLOW)`
   with one rule (e.g. ERRNO(EPERM) for "reboot") instead of build()'s filter,
   and `make install`;
2. mkdir -m 1777 /var/tmp/trace; SLIRPD_TEST_HARDEN=1 SLIRPD_TEST_STRACE=/var/tmp/trace
   tests/sandbox.sh $VENV/bin/pytest -q   (two tests fail under strace only:
   newuidmap is setuid, which ptrace disables, and strace is one more child);
3. tests/seccomp_syscalls.py /var/tmp/trace; undo step 1, reinstall, and repeat
   step 2 to see that nothing fails with EPERM.
"""

import collections
import os
import re
import sys

CALL_RE = re.compile(r"^(?:\d+ +)?(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)(.*)$")


def after_filter(path: str):
    """The lines of one trace that follow its seccomp() call (none if the
    process never loaded a filter)."""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("seccomp(SECCOMP_SET_MODE_FILTER, 0, {") and line.endswith("= 0"):
            return lines[i + 1:]
    return []


def main(directory: str) -> int:
    calls = collections.Counter()
    details = collections.defaultdict(collections.Counter)
    eperm = collections.Counter()
    traces = 0
    for name in sorted(os.listdir(directory)):
        lines = after_filter(os.path.join(directory, name))
        traces += bool(lines)
        for line in lines:
            m = CALL_RE.match(line)
            if not m:
                continue
            call, rest = m.groups()
            calls[call] += 1
            args = rest.split(", ")
            if call == "ioctl" and len(args) > 1:
                details["ioctl request"][args[1]] += 1
            elif call == "socket":
                details["socket family"][args[0]] += 1
            elif call in ("mmap", "mprotect") and len(args) > 2:
                details[f"{call} prot"][args[2]] += 1
            elif call == "kill":
                details["kill signal"][args[1].split(")")[0] if len(args) > 1 else "?"] += 1
            if "= -1 EPERM" in line:
                eperm[f"{call}({rest[:60]}"] += 1
    print(f"{traces} traces with a filter loaded")
    print("calls after the filter:")
    for call, n in sorted(calls.items()):
        print(f"  {call:20} {n}")
    for what, counter in details.items():
        print(f"{what}:")
        for value, n in counter.most_common():
            print(f"  {value:40} {n}")
    print("failed with EPERM:")
    for value, n in eperm.most_common():
        print(f"  {value}  x{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
