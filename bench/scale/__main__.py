"""`python -m bench.scale`: see bench/scale/__init__.py."""

import sys

from bench.scale import main

sys.exit(main())
