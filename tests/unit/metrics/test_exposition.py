"""The exposition: the contract's names, types, labels and buckets; parsing; promtool."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streaming_metrics import StreamingMetrics
from streaming_metrics import definitions as d

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
REGION = "eu-west-1"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
KNOWN_PROMTOOL_FINDING = (
    'nova_streaming_viewers_total non-counter metrics should not have "_total" suffix'
)


@pytest.fixture
def busy(metrics: StreamingMetrics, clock: Any) -> StreamingMetrics:
    """An instance with every metric holding at least one sample."""
    metrics.record_stream_started(SID, REGION)
    metrics.record_websocket_connection(SID)
    metrics.record_viewer_count_change(SID, 3, REGION)
    metrics.record_quality_bitrate(SID, "720p", 2500.0)
    metrics.record_broadcast_error("frame_drop")
    metrics.record_rtmp_frame_latency("720p", 0.03)
    # A second of frames of SID closes when the next one starts: then it has a lag.
    metrics.record_rtmp_frame_latency("720p", 0.03, SID)
    clock.advance(1.0)
    metrics.record_rtmp_frame_latency("720p", 0.6, SID)
    metrics.record_frame_drops(SID, 2)
    metrics.record_stream_started("6f1c0a52-8d3e-4b7a-9c21-0e5d4f3a2b10", REGION, "pre-recorded")
    metrics.record_stream_ended("6f1c0a52-8d3e-4b7a-9c21-0e5d4f3a2b10", REGION, 700.0, 12)
    metrics.record_websocket_connection("not-a-uuid")
    return metrics


def _family_name(definition: d.MetricDefinition) -> str:
    # The parser names a counter family without its _total sample suffix.
    if definition.type is d.MetricType.COUNTER:
        return definition.name.removesuffix("_total")
    return definition.name


def test_exposition_matches_definitions(
    busy: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """The text exposition parses and every contract metric has its type, labels and buckets."""
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for definition in d.ALL_METRICS:
        family = families[_family_name(definition)]
        assert family.type == definition.type.value, definition.name
        assert family.documentation == definition.help
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = set(sample.labels) - {"le"}
            assert labels == set(definition.labels), (definition.name, sample)
        if definition.buckets:
            bounds = sorted(
                {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")}
            )
            assert bounds == [*map(float, definition.buckets), float("inf")]
    # prometheus_client's text format adds a `<name>_created` gauge per counter/histogram.
    metric_names = {name for name in families if not name.endswith("_created")}
    assert metric_names == {_family_name(x) for x in d.ALL_METRICS}


def test_promtool_reports_only_the_known_finding(
    busy: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """promtool check metrics flags only the guide's _total histogram name (documented)."""
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    findings = (result.stdout + result.stderr).decode().strip().splitlines()
    assert findings == [KNOWN_PROMTOOL_FINDING]
    assert result.returncode == 3  # promtool's "lint problems found"


def test_name_filter_finds_every_family(
    busy: StreamingMetrics, registry: CollectorRegistry
) -> None:
    """Each sample name selects its family via restricted_registry (the name[] filter)."""
    for definition in d.ALL_METRICS:
        # name[] matches sample names: a histogram is selected by its _count (or _bucket, _sum).
        wanted = definition.name
        if definition.type is d.MetricType.HISTOGRAM:
            wanted += "_count"
        restricted = registry.restricted_registry([wanted])
        names = {s.name for f in restricted.collect() for s in f.samples}
        assert names == {wanted}, definition.name
