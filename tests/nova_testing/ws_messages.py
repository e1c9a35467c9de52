"""Reading the service's WebSocket messages in tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection


async def recv_json(ws: ClientConnection, seconds: float = 10.0) -> dict[str, Any]:
    """The next message, which must be a JSON text frame, within ``seconds``."""
    data = await asyncio.wait_for(ws.recv(), seconds)
    assert isinstance(data, str)
    result: dict[str, Any] = json.loads(data)
    return result
