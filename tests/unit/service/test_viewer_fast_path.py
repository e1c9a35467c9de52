"""ViewerFastPath sends exactly the viewer route's WebSockets to the endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from nova_streaming.viewers.endpoint import ViewerFastPath

SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"


class Recorder:
    """An ASGI app that records the scopes it is called with."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(dict(scope))


async def _receive() -> dict[str, Any]:
    return {"type": "websocket.connect"}


async def _send(message: dict[str, Any]) -> None:
    return None


def make() -> tuple[ViewerFastPath, Recorder, Recorder]:
    app, endpoint = Recorder(), Recorder()
    front = ViewerFastPath(app)
    # The dispatch is what is under test; the endpoint itself is tested end to end.
    front._endpoint = endpoint  # type: ignore[assignment]
    return front, app, endpoint


async def test_viewer_socket_goes_to_the_endpoint_with_path_params() -> None:
    """/ws/streams/{id} reaches the endpoint with the app and the stream id set."""
    front, app, endpoint = make()
    await front({"type": "websocket", "path": f"/ws/streams/{SID}"}, _receive, _send)
    assert app.scopes == []
    assert endpoint.scopes[0]["path_params"] == {"stream_id": SID}
    assert endpoint.scopes[0]["app"] is app


async def test_root_path_prefix_is_stripped_before_matching() -> None:
    """Under a root_path the viewer route still matches."""
    front, app, endpoint = make()
    scope = {"type": "websocket", "path": f"/nova/ws/streams/{SID}", "root_path": "/nova"}
    await front(scope, _receive, _send)
    assert app.scopes == []
    assert endpoint.scopes[0]["path_params"] == {"stream_id": SID}


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("websocket", "/ws/streams/"),
        ("websocket", f"/ws/streams/{SID}/extra"),
        ("websocket", "/ws/other"),
        ("http", f"/ws/streams/{SID}"),
        ("http", "/api/v1/streams"),
        ("lifespan", ""),
    ],
)
async def test_everything_else_goes_to_the_app_unchanged(kind: str, path: str) -> None:
    """Other paths, an empty or multi-segment id, HTTP and lifespan reach the app as sent."""
    front, app, endpoint = make()
    scope = {"type": kind, "path": path}
    await front(scope, _receive, _send)
    assert endpoint.scopes == []
    assert app.scopes == [scope]
