"""Entry point of ``python -m bench``; see :mod:`bench._harness`."""

import sys

from bench._harness import main

sys.exit(main())
