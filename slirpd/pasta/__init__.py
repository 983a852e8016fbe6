"""slirpd standing in for pasta: pasta's command line (cli.py, getopt.py),
its network model (net.py) and its readiness and lifetime (main.py)."""
