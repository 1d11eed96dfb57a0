"""``python -m emkit.cli``: the ``emkit`` command."""

import sys

from emkit.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
