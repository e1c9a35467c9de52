"""WebSocket viewers: the hub and the ``/ws/streams/{stream_id}`` endpoint."""
