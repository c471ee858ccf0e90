"""``python -m runtime`` is the ``baton`` command."""

import sys

from .cli import main

sys.exit(main())
