"""Scenarios of the local stack: who broadcasts, who watches, what must fire.

``healthy`` (default): three channels at several qualities (one a finite pre-recorded
programme, so streams also end and the duration histogram fills), all watched; no
warning may fire. ``degraded`` adds a broadcaster slower than real time (ingest lag
grows), one that goes silent with its connection open (ingest timeouts), a stream
nobody watches, and a publisher with a bad token retrying; the error-rate, latency and
no-viewers alerts, and both SLO burn-rate alerts, must fire and reach the receiver.

``fast`` (time compression for CI) shortens every phase; it pairs with rules rendered
with a small ``for_scale`` (see :mod:`nova_streaming.stack.stack`).

Example::

    >>> sorted(scenario("degraded").expected_alerts)[0]
    'StreamingHighErrorRate'
"""

from __future__ import annotations

from dataclasses import dataclass

from nova_streaming.stack.broadcasters import BroadcasterSpec
from streaming_metrics import definitions as d

SCENARIOS = ("healthy", "degraded")
HIGH_ERROR_RATE = "StreamingHighErrorRate"
HIGH_LATENCY = "StreamingHighIngestionLatency"
NO_VIEWERS = "StreamingWebSocketConnectionDrop"
# The SLO burn-rate alerts (nova_monitoring.slo): the slow broadcaster and the bad-token
# publisher burn both 30-day budgets far beyond 14.4x.
LATENCY_BUDGET_BURN = "StreamingLatencyBudgetBurn"
ERROR_BUDGET_BURN = "StreamingErrorBudgetBurn"


@dataclass(frozen=True)
class Scenario:
    """Broadcasters to run, alerts that must fire, and extra PromQL facts to check.

    ``facts`` are ``(name, promql)`` pairs; each must return at least one series.
    ``slow_quality``: the quality only the slow broadcaster publishes (its stream is
    found by it), whose stream must lead the worst streams and name itself in the
    latency exemplars; None when the scenario has no slow broadcaster.
    """

    name: str
    broadcasters: tuple[BroadcasterSpec, ...]
    expected_alerts: frozenset[str]
    facts: tuple[tuple[str, str], ...] = ()
    slow_quality: str | None = None


def scenario(name: str, *, fast: bool = False) -> Scenario:
    """The named scenario; ``fast`` compresses its timings for CI.

    Example::

        >>> [b.name for b in scenario("healthy").broadcasters]
        ['live-360p', 'live-720p', 'vod-1080p']
    """
    if name not in SCENARIOS:
        raise ValueError(f"scenario: {name!r} is not one of {', '.join(SCENARIOS)}")
    # CI frame rates are low: two cores run the whole stack and the test.
    fps = 2.0 if fast else 15.0
    healthy = (
        BroadcasterSpec("live-360p", 640, 360, fps=fps, video_kbps=600, viewers=2),
        BroadcasterSpec("live-720p", 1280, 720, fps=fps, video_kbps=1500, viewers=4),
        BroadcasterSpec(
            "vod-1080p",
            1920,
            1080,
            fps=fps * 2 / 3,
            video_kbps=2500,
            stream_type="pre-recorded",
            behaviour="finite",
            length_s=20.0 if fast else 120.0,
            viewers=3,
        ),
    )
    if name == "healthy":
        return Scenario(name, healthy, frozenset())
    degraded = (
        BroadcasterSpec(
            "slow-480p", 854, 480, fps=fps, video_kbps=1000, behaviour="slow", readrate=0.8
        ),
        BroadcasterSpec(
            "silent-240p",
            426,
            240,
            fps=fps,
            video_kbps=300,
            behaviour="silent",
            length_s=3.0 if fast else 15.0,
            silent_s=6.0 if fast else 25.0,
            viewers=1,
        ),
        BroadcasterSpec("unwatched-360p", 640, 360, fps=fps, video_kbps=500, viewers=0),
        BroadcasterSpec(
            "bad-token-240p",
            426,
            240,
            fps=fps,
            video_kbps=200,
            behaviour="bad-token",
            retry_s=0.5,
            viewers=0,
        ),
    )
    errors = d.BROADCAST_ERRORS.name
    return Scenario(
        name,
        healthy + degraded,
        frozenset(
            {HIGH_ERROR_RATE, HIGH_LATENCY, NO_VIEWERS, LATENCY_BUDGET_BURN, ERROR_BUDGET_BURN}
        ),
        facts=(
            ("silent stream timed out", f'sum({errors}{{error_type="timeout"}}) > 0'),
            ("bad token refused", f'sum({errors}{{error_type="auth_rejected"}}) > 0'),
        ),
        slow_quality="480p",
    )
