"""A replica SIGKILLed and restarted at once under a new (default) replica id.

The run is :func:`chaos._owner_kill.run_owner_kill`, shared with the other owner kills.
"""

from __future__ import annotations

from chaos._owner_kill import Restart, run_owner_kill
from chaos._report import Check, Context

ORDER = 11
TITLE = "replica restarted, new id"
FAULT = (
    "3 replicas, one stream and its viewers; the owner is SIGKILLed and its slot restarted "
    "at once on the same ports with no NOVA_REPLICA_ID (the service picks an id per "
    "incarnation); viewers reconnect anywhere, including the new process."
)


async def run(ctx: Context) -> list[Check]:
    return await run_owner_kill(ctx, "restart-new-id", Restart.NEW_ID)
