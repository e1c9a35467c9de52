"""A replica SIGKILLed: its viewers reconnect elsewhere, its stream is taken over.

The run is :func:`chaos._owner_kill.run_owner_kill`, shared with the other owner kills.
"""

from __future__ import annotations

from chaos._owner_kill import Restart, run_owner_kill
from chaos._report import Check, Context

ORDER = 10
TITLE = "replica SIGKILL"
FAULT = (
    "3 replicas, one stream and its viewers; the replica owning the stream is SIGKILLed "
    "(no cleanup of any kind): its viewers reconnect to the others, nginx re-pushes the "
    "stream to another replica (take-over), then the broadcaster stops."
)


async def run(ctx: Context) -> list[Check]:
    return await run_owner_kill(ctx, "replica-kill", Restart.NONE)
