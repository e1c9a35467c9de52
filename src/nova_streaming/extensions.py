"""Features that plug into ``nova-streaming serve`` without editing the app factory.

A module listed in :data:`EXTENSION_MODULES` that defines
``service_extension(settings: Settings) -> Extension`` contributes routes and
components (started after the core, stopped before it). A listed module that is not
installed, or defines no ``service_extension``, contributes nothing.

Example (in ``nova_streaming/ingest/__init__.py``)::

    def service_extension(settings: Settings) -> Extension:
        return Extension(routes=callback_routes(), components=[RtmpReceiver(settings)])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Final

from nova_streaming.app import Extension
from nova_streaming.settings import Settings

__all__ = ["EXTENSION_MODULES", "load_extensions"]

EXTENSION_MODULES: Final[tuple[str, ...]] = ("nova_streaming.ingest",)


def load_extensions(
    settings: Settings, modules: tuple[str, ...] = EXTENSION_MODULES
) -> list[Extension]:
    """Import each module and collect the extension it offers."""
    found: list[Extension] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        factory: Callable[[Settings], Extension] | None = getattr(module, "service_extension", None)
        if factory is not None:
            found.append(factory(settings))
    return found
