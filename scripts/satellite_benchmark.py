#!/usr/bin/env python3
"""Voice-to-voice through real Wyoming satellites (1, 2, 3 at once). See `--help`."""

import sys

from atlas.bench.rooms import main

if __name__ == "__main__":
    sys.exit(main())
