"""The shutdown grace is a promise: SIGTERM ends the process within
``NOVA_SHUTDOWN_GRACE`` seconds even when a part of the app's shutdown never returns
(a Redis call with no answer, a component that hangs), and it ends by the signal."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from nova_testing.waiting import wait_for

pytestmark = pytest.mark.slow

GRACE = 2.0

# A replica whose only component never finishes stopping; served by DrainingServer on
# a socket it bound itself (port 0: no port race), whose port it prints.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, socket, sys
    from nova_streaming.app import Extension, create_app
    from nova_streaming.drain import ShutdownDrain
    from nova_streaming.runner import DrainingServer, run, uvicorn_config
    from nova_streaming.settings import Settings
    from streaming_metrics import StreamingMetrics

    class StopsNever:
        async def start(self, service):
            pass

        async def stop(self):
            await asyncio.Event().wait()

    settings = Settings(host="127.0.0.1", presence="memory", shutdown_grace=float(sys.argv[1]))
    app = create_app(
        settings,
        metrics=StreamingMetrics(regions=[settings.region]),
        extensions=[Extension(components=[StopsNever()])],
    )
    config = uvicorn_config(app, settings, log_level="info")
    server = DrainingServer(config, ShutdownDrain(app.state.service), settings.shutdown_grace)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    run(server.serve(sockets=[sock]))
    """
)


async def test_a_shutdown_that_never_finishes_still_ends_the_process_at_the_grace(
    tmp_path: Path,
) -> None:
    """SIGTERM to a replica whose component's stop never returns: the drain runs, the
    shutdown hangs in the component, and at the grace the process still ends, by the
    signal, logging what it abandoned."""
    log = tmp_path / "replica.log"
    with log.open("wb") as err:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-c", _SCRIPT, str(GRACE)],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.to_thread(proc.stdout.readline))

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=1) as client:
                try:
                    return (await client.get(f"http://127.0.0.1:{port}/readyz")).is_success
                except httpx.HTTPError:
                    return False

        await wait_for(ready, what="replica ready")
        proc.send_signal(signal.SIGTERM)
        # The grace plus a margin for a loaded machine's scheduling; before, the
        # process never exited (the stop hung, and the grace only set a flag).
        await wait_for(lambda: proc.poll() is not None, within=GRACE + 5, what="exit")
        assert proc.returncode == -signal.SIGTERM, log.read_text()
        text = log.read_text()
        assert "still shutting down at the grace" in text, text
        assert "StopsNever.stop" in text, text  # named among what was abandoned
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
