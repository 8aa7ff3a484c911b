"""``python -m linuxkit``: the ``linuxkit`` command."""

from __future__ import annotations

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.argv[0] = "linuxkit"  # what ``version`` prints as the program name (else ``__main__.py``)
    sys.exit(main())
