#!/usr/bin/env python3
"""ATLAS latency benchmark; the same as `atlas bench`. See `--help`."""

import sys

from atlas.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
