"""`python -m slirpd` runs the daemon, like the `slirpd` console script."""

import sys

from slirpd.main import main

sys.exit(main())
