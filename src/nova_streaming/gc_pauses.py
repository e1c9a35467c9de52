"""Garbage-collector pauses, measured and exported, and start-up objects frozen.

A CPython collection runs on the event loop's thread and stops it for as long as it
takes to walk the tracked objects of the generations collected: a full (generation 2)
pass walks every one, and a replica holding thousands of viewers tracks about 50
objects per viewer (docs/service.md, "Garbage collection and event-loop stalls").
:class:`GcPauseRecorder` times each pass through ``gc.callbacks`` into
``nova_streaming_gc_pause_seconds{generation}``, so operators see the pauses, and
:func:`freeze_startup_objects` moves what start-up built (modules, classes, the app)
out of the collector's view, so no later full pass walks it again.

Example::

    recorder = GcPauseRecorder(service_metrics.gc_pause)
    recorder.install()
    freeze_startup_objects()
    ...
    recorder.uninstall()
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

__all__ = ["GcPauseRecorder", "freeze_startup_objects"]

# CPython's generations: 0 and 1 (young, short passes) and 2 (the full pass).
GENERATIONS = (0, 1, 2)


class GcPauseRecorder:
    """A ``gc.callbacks`` entry timing each collection into ``histogram``
    (labelled by generation). Install once per process and histogram."""

    __slots__ = ("_children", "_started")

    def __init__(self, histogram: Histogram) -> None:
        self._children = [histogram.labels(generation=str(g)) for g in GENERATIONS]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        """The callback: ``start`` notes the time, ``stop`` records the pause."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info.get("generation", 2)
        if self._started and 0 <= generation < len(self._children):
            self._children[generation].observe(time.perf_counter() - self._started)
        self._started = 0.0

    def install(self) -> None:
        """Start timing every collection of this process."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        """Stop timing (idempotent)."""
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def freeze_startup_objects() -> int:
    """Collect once, then move every object that survived into CPython's permanent
    generation (``gc.freeze()``): the modules, classes and app objects built at start-up
    live as long as the process, and a full pass no longer walks them. Returns how
    many objects were frozen. Call it once, after start-up; objects frozen are never
    collected, so anything freed later from that set stays allocated (nothing start-up
    builds is meant to be freed)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
