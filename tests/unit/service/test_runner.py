"""The runner's process setup: the event loop it picks and the open-file limit."""

from __future__ import annotations

import asyncio
import importlib.util
import resource

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
