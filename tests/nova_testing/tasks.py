"""What an event loop is still running: for failures that must name the stuck work."""

from __future__ import annotations

import asyncio
import gc
import io
from collections.abc import Iterable
from types import AsyncGeneratorType, FrameType


def _await_chain(awaitable: object) -> list[FrameType]:
    """The frames of ``awaitable`` and of what it awaits, outermost first. The walk
    stops at an awaitable that is not a coroutine or generator (``async with``'s
    ``anext`` of an async generator): those generators are listed on their own."""
    frames: list[FrameType] = []
    current: object = awaitable
    while current is not None:
        frame = (
            getattr(current, "cr_frame", None)
            or getattr(current, "gi_frame", None)
            or getattr(current, "ag_frame", None)
        )
        if frame is None:
            break
        frames.append(frame)
        current = (
            getattr(current, "cr_await", None)
            or getattr(current, "gi_yieldfrom", None)
            or getattr(current, "ag_await", None)
        )
    return frames


def _format(frames: list[FrameType]) -> str:
    return "".join(f"  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}\n" for f in frames)


def describe_tasks(tasks: Iterable[asyncio.Task[object]], *, limit: int = 30) -> str:
    """Each pending task's name and where it waits (its chain of awaits), then every
    async generator suspended in an await (an ``async with`` body, e.g. an app's
    lifespan, which a task's chain cannot see into): enough for a wait that ran out to
    say what it was waiting for.

    Example::

        others = asyncio.all_tasks() - {asyncio.current_task()}
        raise AssertionError("server did not stop; still running:\\n" + describe_tasks(others))
    """
    pending = sorted((t for t in tasks if not t.done()), key=lambda t: t.get_name())
    out = io.StringIO()
    for task in pending[:limit]:
        out.write(f"--- task {task.get_name()}\n{_format(_await_chain(task.get_coro()))}")
    if len(pending) > limit:
        out.write(f"... and {len(pending) - limit} more task(s)\n")
    suspended = [
        g
        for g in gc.get_objects()
        # type(), not isinstance(): gc also holds weak proxies to dead objects.
        if type(g) is AsyncGeneratorType and g.ag_frame is not None and g.ag_await is not None
    ]
    for agen in suspended[:limit]:
        out.write(f"--- async generator {agen.ag_code.co_name}\n{_format(_await_chain(agen))}")
    return out.getvalue() or "(nothing else running)\n"
