"""`python -m bench.live`: see bench/live/__init__.py."""

import sys

from bench.live.cli import main

sys.exit(main())
