"""The test suite's shared library: what several test modules, and bench/, use.

Test modules import from here (``from lib.frames import eth``); fixtures stay
in tests/conftest.py, and no test module imports another (test_structure_tests
checks it).  pytest puts tests/ on sys.path (rootdir conftest, no
__init__.py there), bench/ puts it there itself (bench/tools.py).

- harness: the plain user, its environment, the slirpd under test and how the
  hardened pass starts it, waiting, running commands;
- guest: a process in new user, network and mount namespaces;
- daemon: a running slirpd and its ready fd;
- frames, link: Ethernet/IP frames built and parsed in Python, and the
  guest's end of an in-process data plane;
- api: the slirp4netns JSON API socket;
- dns: a DNS server on the host's loopback and the names it answers;
- forward: a TCP server in the guest and a host client for forwarded ports;
- sockets: UDP flows against the data plane's socket budget;
- tcputil, pastalib, clients, jsongen, lockdown: as their docstrings say.
"""
