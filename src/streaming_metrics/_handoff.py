"""Pause points: where long work on a render thread may hand the GIL to other threads.

A render (``streaming_metrics._exposition``) already hands the GIL over between the
families and chunks it encodes; some work inside a collector is long too (computing
10k-50k lag windows) and knows nothing of the render that called it. Such work calls
:func:`pause_point` between slices; it does nothing unless the render running on this
thread registered its hand-off with :func:`pausing` (so a collector called from
anywhere else, ``generate_latest`` included, runs exactly as before).

Example::

    >>> calls = []
    >>> pause_point()              # no render on this thread: nothing happens
    >>> with pausing(lambda: calls.append(1)):
    ...     pause_point()
    >>> calls
    [1]
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_local = threading.local()


def pause_point() -> None:
    """Let the render running on this thread hand the GIL over, if one is running."""
    pause: Callable[[], None] | None = getattr(_local, "pause", None)
    if pause is not None:
        pause()


@contextlib.contextmanager
def pausing(pause: Callable[[], None]) -> Iterator[None]:
    """Have :func:`pause_point` on this thread call ``pause`` while the block runs."""
    previous = getattr(_local, "pause", None)
    _local.pause = pause
    try:
        yield
    finally:
        _local.pause = previous
