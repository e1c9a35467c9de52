"""Nova Streaming fault suite: ``python -m chaos`` (``make chaos``) writes docs/reliability.md.

A scenario is a module ``chaos/scenario_<name>.py``; the harness finds it by its file
name (nothing to register) and ``python -m chaos --only <name>`` runs it alone. It sets
``TITLE``, ``FAULT`` (one sentence: what is done to the system), optionally ``ORDER``
(lower runs first, default 100), and defines ``async def run(ctx) -> list[Check]``. It
builds its own :class:`~chaos._world.World` (real processes on loopback, free ports),
applies the fault and returns one :class:`Check` per invariant it measured.

``--short`` is the version ``make test`` runs (tests/chaos): fewer viewers, shorter
outages, the same invariants; figures (times, sizes) are reported but not held to their
bounds, since no timing is asserted on a shared machine.

Example (a whole scenario module)::

    from chaos._report import Check, Context
    from chaos._world import World

    TITLE = "demo"
    FAULT = "nothing at all"

    async def run(ctx: Context) -> list[Check]:
        async with World("demo") as world:
            return [Check("replicas up", "2", str(len(world.live_slots())),
                          len(world.live_slots()) == 2)]
"""

import sys
from pathlib import Path

# The suite reuses the integration tests' support package (tests/nova_testing: Redis,
# Redis Cluster, nginx runners); pytest puts tests/ on sys.path, `python -m chaos` here.
_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
