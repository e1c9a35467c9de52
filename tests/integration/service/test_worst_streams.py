"""GET /api/v1/streams?sort=lag&limit=N: the worst streams now, from every replica."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nova_streaming.stream_signals import StreamSignal, StreamSignals

Replicas = Callable[..., Awaitable[Any]]


def feed(replica: Any, sid: str, lag: float, frames: int = 5) -> None:
    """Frames of ``sid`` with ``lag`` through the replica's metrics (the ingest's call)."""
    for _ in range(frames):
        replica.metrics.record_rtmp_frame_latency("480p", lag, sid)


def has_lag(replica: Any, sid: str) -> bool:
    """The owner's window has a reading (once the frames' second is over)."""
    signal = replica.metrics.stream_signals().get(sid)
    return signal is not None and signal[0] is not None


@pytest.mark.parametrize(
    "query",
    [
        "sort=viewers",
        "sort=",
        "sort=lag&sort=lag",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "limit=1.5",
        "limit=%EF%BC%91",  # a full-width digit: str.isdigit, but not an ASCII integer
        "sort=lag&limit=",
    ],
)
async def test_bad_sort_or_limit_is_400(
    engine: dict[str, Any], replicas: Replicas, query: str
) -> None:
    """Only sort=lag and an integer limit 1..1000 are accepted."""
    replica = await replicas(**engine)
    response = await replica.get(f"/api/v1/streams?{query}")
    assert response.status_code == 400, query
    assert response.json()["error"]


async def test_sort_by_lag_on_one_replica(
    engine: dict[str, Any],
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Callable[..., Awaitable[Any]],
) -> None:
    """Worst lag first, streams without a reading last, limit cuts the list."""
    replica = await replicas(**engine)
    slow, fast, silent = new_stream_id(), new_stream_id(), new_stream_id()
    for sid in (slow, fast, silent):
        await replica.service.registry.start(sid, "test-1", "live")
    replica.metrics.record_quality_bitrate(slow, "480p", 900.0)
    feed(replica, slow, 6.5)
    feed(replica, fast, 0.02)
    replica.metrics.record_frame_drops(fast, 3)
    await wait(lambda: has_lag(replica, slow) and has_lag(replica, fast), what="lag readings")

    body = (await replica.get("/api/v1/streams?sort=lag")).json()
    assert [s["stream_id"] for s in body["streams"]] == [slow, fast, silent]
    first = body["streams"][0]
    assert first["ingest_lag_seconds"] == 6.5
    assert first["qualities"] == ["480p"] and first["frame_drops"] == 0
    assert body["streams"][1]["frame_drops"] == 3
    assert body["streams"][2]["ingest_lag_seconds"] is None
    top = (await replica.get("/api/v1/streams?sort=lag&limit=1")).json()
    assert [s["stream_id"] for s in top["streams"]] == [slow]
    # Without sort the listing keeps its shape; limit still applies.
    plain = (await replica.get("/api/v1/streams?limit=2")).json()["streams"]
    assert len(plain) == 2 and "ingest_lag_seconds" not in plain[0]


async def test_sort_by_lag_across_replicas(
    redis_server: Any,
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Callable[..., Awaitable[Any]],
) -> None:
    """Each owner publishes its streams' lag; either replica answers the same list."""
    engine = {"presence": "redis", "redis_url": redis_server.url}
    a = await replicas(components=[StreamSignals(interval=0.2)], **engine)
    b = await replicas(components=[StreamSignals(interval=0.2)], **engine)
    on_a, on_b, quiet = new_stream_id(), new_stream_id(), new_stream_id()
    await a.service.registry.start(on_a, "test-1", "live")
    await b.service.registry.start(on_b, "test-1", "live")
    await a.service.registry.start(quiet, "test-1", "live")
    feed(a, on_a, 0.3)
    feed(b, on_b, 4.0)
    await wait(lambda: has_lag(a, on_a) and has_lag(b, on_b), what="owner readings")

    async def order(replica: Any) -> list[tuple[str, float | None]]:
        body = (await replica.get("/api/v1/streams?sort=lag&limit=3")).json()
        return [(s["stream_id"], s["ingest_lag_seconds"]) for s in body["streams"]]

    expected = [(on_b, 4.0), (on_a, 0.3), (quiet, None)]
    for replica in (a, b):

        async def same(r: Any = replica) -> bool:
            return await order(r) == expected

        await wait(same, what=f"the worst-first list on {replica.settings.replica_id}")


async def test_signals_from_other_replicas_are_checked_and_expire(
    replicas: Replicas,
    new_stream_id: Callable[[], str],
    wait: Callable[..., Awaitable[Any]],
) -> None:
    """Messages on the shared channel: a valid one counts until it is 5 intervals old;
    malformed ones, other kinds and this replica's own echo are ignored."""
    now = [100.0]
    signals = StreamSignals(interval=60.0, clock=lambda: now[0])  # no publish during the test
    replica = await replicas(components=[signals], presence="memory")
    store = replica.service.registry.store
    theirs, bad = new_stream_id(), new_stream_id()

    def message(origin: str, streams: object, kind: str = "stream_signals") -> str:
        return json.dumps({"kind": kind, "origin": origin, "streams": streams})

    for text in (
        "not json",
        message("r9", {bad: [1.0, 0, []]}, kind="ended"),
        message("r9", {"not-a-uuid": [1.0, 0, []]}),
        message("r9", {bad: [float("nan"), 0, []]}),
        message("r9", {bad: [-1.0, 0, []]}),
        message("r9", {bad: [1.0]}),
        message("r9", [bad]),
        message(replica.settings.replica_id, {bad: [1.0, 0, []]}),
    ):
        await store.publish(text)
    await store.publish(message("r9", {theirs.upper(): [9.5, 4, ["720p"]]}))
    # Delivered in order: once the valid one arrived, the others were handled before it.
    await wait(lambda: signals.current(), what="the valid message")
    assert signals.current() == {
        theirs: StreamSignal(theirs, "r9", 9.5, 4, ("720p",)),
    }
    now[0] += 5 * 60.0 + 1
    assert signals.current() == {}
