"""The whole Nova system live on one machine: ``nova-streaming stack up`` and ``verify``.

One concept a module: :mod:`.ports` (free-port checks), :mod:`.supervisor` (child
processes, readiness, clean stop), :mod:`.prometheus` and :mod:`.alertmanager` (local
configs), :mod:`.receiver` (webhook receiver), :mod:`.broadcasters` (ffmpeg publishers),
:mod:`.viewers` (simulated WebSocket viewers), :mod:`.preview` (dashboard preview),
:mod:`.verify` (the Integration Checklist), :mod:`.scenario` and :mod:`.stack` (the
orchestration), :mod:`.commands` (CLI wiring).
"""
