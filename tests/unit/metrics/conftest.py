"""Fixtures for the streaming_metrics unit tests: a fresh registry and a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d
from streaming_metrics.helpers import reset_default_metrics

Snapshot = dict[tuple[str, frozenset[tuple[str, str]]], float]


class FakeClock:
    """A monotonic clock the test advances by hand, so no test ever sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_metrics(registry: CollectorRegistry, clock: FakeClock) -> Callable[..., StreamingMetrics]:
    """Build a StreamingMetrics on the test's registry and fake clock."""

    def make(**kwargs: Any) -> StreamingMetrics:
        kwargs.setdefault("clock", clock)
        return StreamingMetrics(registry, **kwargs)

    return make


@pytest.fixture
def metrics(make_metrics: Callable[..., StreamingMetrics]) -> StreamingMetrics:
    return make_metrics(regions=["eu-west-1"])


def take_snapshot(registry: CollectorRegistry) -> Snapshot:
    """Every sample but the ``_created`` timestamps, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@pytest.fixture
def snapshot() -> Callable[[CollectorRegistry], Snapshot]:
    return take_snapshot


def series_of(registry: CollectorRegistry, stream_id: str) -> list[str]:
    """Names of the samples that carry ``stream_id`` as a label."""
    return [
        s.name
        for family in registry.collect()
        for s in family.samples
        if s.labels.get("stream_id") == stream_id
    ]


@pytest.fixture
def stream_series() -> Callable[[CollectorRegistry, str], list[str]]:
    return series_of


def _nova_names_in_default_registry() -> list[str]:
    return [
        name
        for name in REGISTRY._names_to_collectors  # no public listing of names exists
        if name.startswith(d.NAMESPACE)
    ]


@pytest.fixture
def clean_default_registry() -> Iterator[None]:
    """Tests touching prometheus_client's REGISTRY leave it as they found it."""
    reset_default_metrics()
    before = _nova_names_in_default_registry()
    try:
        yield
    finally:
        reset_default_metrics()
        assert _nova_names_in_default_registry() == before
