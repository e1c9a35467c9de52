"""A replica SIGKILLed and restarted at once under the SAME explicit replica id.

The run is :func:`chaos._owner_kill.run_owner_kill`, shared with the other owner kills.
"""

from __future__ import annotations

from chaos._owner_kill import Restart, run_owner_kill
from chaos._report import Check, Context

ORDER = 12
TITLE = "replica restarted, same id"
FAULT = (
    "3 replicas with explicit NOVA_REPLICA_ID (a StatefulSet's pod names), one stream and "
    "its viewers; the owner is SIGKILLed and restarted at once under the same id (what "
    "Kubernetes does to a crashed container): the new incarnation must clear what the old "
    "one left (its presence counts, its streams), not inherit it."
)


async def run(ctx: Context) -> list[Check]:
    return await run_owner_kill(ctx, "restart-same-id", Restart.SAME_ID)
