"""The runner's process setup: the event loop it picks and the open-file limit."""

from __future__ import annotations

import asyncio
import importlib.util
import resource

import pytest

from nova_streaming.runner import raise_open_file_limit, run


def test_open_file_limit_raised_to_the_hard_limit() -> None:
    """A low soft limit (1,024 is a common default: 1,000 viewers) is raised to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(512, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        expected = low if hard == resource.RLIM_INFINITY else hard
        assert raise_open_file_limit() == expected
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_run_uses_the_runner_loop() -> None:
    """``run`` runs the coroutine on uvloop's loop when uvloop is installed."""

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert run(loop_module()) == expected


def test_viewer_protocol_is_the_lean_one_on_this_uvicorn() -> None:
    """The installed uvicorn has every hook the lean protocol overrides, and the
    service's config runs it."""
    from nova_streaming.viewers.protocol import LeanWebSocketProtocol, viewer_ws_protocol

    assert viewer_ws_protocol() is LeanWebSocketProtocol


def test_viewer_protocol_falls_back_when_uvicorn_lacks_a_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A uvicorn whose sans-I/O protocol lost a keep-alive hook gets its own protocol
    unmodified, with a warning naming what is missing, instead of failing at a ping."""
    from nova_streaming.viewers.protocol import viewer_ws_protocol

    hooks = ["start_keepalive", "stop_keepalive", "send_keepalive_ping", "handle_pong"]
    hooks += ["keepalive_timeout", "connection_lost"]  # all but schedule_ping
    older = type("Older", (), dict.fromkeys(hooks, lambda self: None))
    with caplog.at_level("WARNING", logger="nova_streaming.viewers.protocol"):
        assert viewer_ws_protocol(older) == "websockets-sansio"
    assert "schedule_ping" in caplog.text
