"""``python -m fastgrad.bench``: see ``python -m fastgrad.bench --help``."""

import sys

from fastgrad.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
