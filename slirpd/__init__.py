"""slirpd: user-mode networking for unprivileged network namespaces."""

__version__ = "0.1.0"
# The release's date: doc/slirpd.1's .TH line carries it with __version__
# (`make man-th` writes that line; tests/test_manpage.py checks it)
__date__ = "2026-12-01"
