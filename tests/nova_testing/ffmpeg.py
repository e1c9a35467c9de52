"""ffmpeg publishing a generated test pattern and tone over RTMP, like a broadcaster."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def ffmpeg(
    rtmp_port: int,
    name: str,
    query: str,
    size: str = "320x240",
    seconds: float = 60,
    *,
    fps: int = 25,
    bitrate: str = "1000k",
) -> AsyncIterator[asyncio.subprocess.Process]:
    """ffmpeg publishing ``size`` video at ``fps`` (keyframe every second, ``bitrate``) and
    an AAC tone for ``seconds`` to ``rtmp://127.0.0.1:{rtmp_port}/live/{name}?{query}``;
    killed on exit if still running.

    Example::

        async with ffmpeg(nginx.rtmp_port, sid, f"token={token}", "1280x720") as proc:
            ...
            await stop_ffmpeg(proc)
    """
    proc = await asyncio.create_subprocess_exec(
        *("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"),
        *("-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"),
        *("-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"),
        *("-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast"),
        *("-tune", "zerolatency", "-g", str(fps), "-b:v", bitrate, "-c:a", "aac"),
        *("-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{name}?{query}"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop_ffmpeg(proc: asyncio.subprocess.Process, within: float = 20) -> None:
    """Stop ffmpeg the way a broadcaster quits (SIGINT: it closes the RTMP connection)
    and wait for it to exit.

    Example::

        await stop_ffmpeg(proc)
    """
    proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), within)
