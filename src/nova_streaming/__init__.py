"""Nova Streaming service: RTMP ingest, WebSocket viewers, presence, stream registry."""
