"""The garbage-collector pause metric and the start-up freeze (docs/service.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from nova_streaming.gc_pauses import GcPauseRecorder, freeze_startup_objects
from nova_streaming.service_metrics import GC_PAUSE, ServiceMetrics


def test_every_full_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    recorder = GcPauseRecorder(ServiceMetrics(registry).gc_pause)
    recorder.install()
    recorder.install()  # idempotent: one entry, one observation per pass
    try:
        gc.collect()
        gc.collect()
    finally:
        recorder.uninstall()
    recorder.uninstall()
    assert recorder not in gc.callbacks
    full = registry.get_sample_value(f"{GC_PAUSE}_count", {"generation": "2"})
    assert full is not None and full >= 2
    assert (registry.get_sample_value(f"{GC_PAUSE}_sum", {"generation": "2"}) or 0) > 0
    # Every generation is exported from the start (at 0 when none ran).
    assert registry.get_sample_value(f"{GC_PAUSE}_count", {"generation": "0"}) is not None


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_start_up_objects_leave_the_collectors_view(unfreeze: None) -> None:
    frozen = freeze_startup_objects()
    assert frozen == gc.get_freeze_count() > 0
    # A full pass no longer walks them: the tracked generations hold far fewer objects.
    assert sum(gc.get_count()) + len(gc.get_objects()) < frozen
