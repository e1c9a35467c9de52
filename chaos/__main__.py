"""Entry point of ``python -m chaos``; see :mod:`chaos._harness`."""

import sys

from chaos._harness import main

sys.exit(main())
