"""The in-process server the integration suites run replicas on never hangs a test's
teardown: a shutdown that does not finish fails, naming what is still running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette

from nova_testing.uvicorn_server import UvicornServer


async def test_a_shutdown_that_never_ends_fails_naming_the_stuck_task() -> None:
    """An app whose shutdown waits forever (as a Redis call without a bound would):
    ``stop`` fails with the stuck frame in the message and the server is gone after."""
    forever = asyncio.Event()

    async def shutdown_waiting_on_nothing() -> None:
        await forever.wait()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await shutdown_waiting_on_nothing()

    config = uvicorn.Config(Starlette(lifespan=lifespan), lifespan="on", log_level="warning")
    server = UvicornServer(config, name="stuck")
    await server.start()
    with pytest.raises(AssertionError) as failure:
        await server.stop(within=1.0)
    message = str(failure.value)
    assert "stuck did not stop within 1 s" in message
    assert "shutdown_waiting_on_nothing" in message
    assert server.task is None
    await server.stop()  # idempotent
