"""The chaos package lives at the repository root, outside the installed src/ packages."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    # pytest's importlib mode does not put the root on sys.path; `python -m chaos` does.
    sys.path.insert(0, _ROOT)
