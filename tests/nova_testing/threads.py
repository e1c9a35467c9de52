"""Run test bodies on threads and surface what they raise in the test thread."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_threads(targets: list[Callable[[], None]], timeout: float = 120.0) -> None:
    """Run each target on its own thread, wait for all (at most ``timeout`` s each), and
    fail if one is still running or raised."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # surfaced to the test thread below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
