"""The lag family reads current and empty windows without calling value(): same result.

``_collector._lags`` answers two cases from a window's fields (its open second is now's:
its p95; it never saw a frame: no series) and calls ``LagWindow.value`` for the rest.
Whatever state a window is in, the family must hold exactly what value() says.
"""

from __future__ import annotations

import pytest

from streaming_metrics import _collector
from streaming_metrics._handoff import pausing
from streaming_metrics._lag import LagWindow
from streaming_metrics._stream import StreamRecord

NOW = 1_000.4


def _window(kind: str) -> LagWindow | None:
    window = LagWindow("s")
    if kind == "none":
        return None
    if kind == "empty":
        return window
    if kind == "old":  # frames only long ago: nothing in the last 10 s
        for n in range(30):
            window.add(0.01 * n, 980.0 + n / 10)
        return window
    for n in range(30):  # 30 frames a second for 3 seconds
        window.add(0.01 * n, 996.0 + n / 10)
    if kind == "current":
        window.add(0.5, 1_000.1)  # a frame in now's second
    # "stale": stopped sending at 998.9, still in the window
    return window


KINDS = ["none", "empty", "current", "stale", "old"]


def _records(kinds: list[str]) -> tuple[list[StreamRecord], dict[str, float]]:
    """A record per kind, in order, and the value() of each that has one (by id)."""
    records = []
    expected: dict[str, float] = {}
    for index, kind in enumerate(kinds):
        rec = StreamRecord(f"{kind}-{index}", tracked=True)
        rec.lag = _window(kind)
        records.append(rec)
        value = rec.lag.value(NOW) if rec.lag is not None else None
        if value is not None:
            expected[rec.stream_id] = value
    return records, expected


@pytest.mark.parametrize("slice_size", [1, 2, 1_000])
def test_lags_equal_value_of_every_window(monkeypatch: pytest.MonkeyPatch, slice_size: int) -> None:
    """Every kind of window, in slices of several sizes: the value() of each."""
    monkeypatch.setattr(_collector, "_LAG_SLICE", slice_size)
    records, expected = _records(KINDS * 3)
    assert {sid.split("-")[0] for sid in expected} == {"current", "stale"}
    pauses: list[int] = []
    with pausing(lambda: pauses.append(1)):
        family = _collector._lags(records, _collector.stream_ids(records), NOW)
    got = dict(zip(family.columns[0], family.values, strict=True))
    assert got == expected
    assert list(got) == list(expected)  # record order kept
    # A pause after each slice of windows: a render can hand the GIL over there.
    windows = sum(rec.lag is not None for rec in records)
    assert len(pauses) >= windows // slice_size


@pytest.mark.parametrize(
    "kinds",
    [
        ["current"],  # every stream sending: the p95 column read whole
        ["empty"],  # no stream sent a frame yet: no series, nothing computed
        ["current", "empty", "none"],  # a mix, read slice by slice without value()
        ["stale", "old"],  # every window through value()
    ],
    ids=["all-current", "all-empty", "current-and-empty", "all-stale"],
)
def test_lags_of_uniform_windows_equal_value(kinds: list[str]) -> None:
    """The shortcuts taken when all windows are in the common states give value()'s
    answers too, in record order."""
    records, expected = _records(kinds * 4)
    family = _collector._lags(records, _collector.stream_ids(records), NOW)
    assert list(zip(family.columns[0], family.values, strict=True)) == list(expected.items())


def test_a_window_fed_at_negative_clock_times_is_not_taken_for_empty() -> None:
    """A clock may start below zero (an injected test clock): a frame in second -1 is
    a frame, not the never-framed marker."""
    window = LagWindow("s")
    window.add(0.75, -1.5)  # int(-1.5) == -1
    record = StreamRecord("neg", tracked=True)
    record.lag = window
    assert window.value(-0.2) == 0.75  # second -1 is closed by then
    family = _collector._lags([record], ["neg"], -0.2)
    assert family.values == [0.75]
