"""The throwaway Redis the integration tests run on is the one the fixture started."""

from __future__ import annotations

from nova_testing.redis_server import RedisServer


def test_a_redis_whose_port_another_redis_took_first_starts_on_a_new_port() -> None:
    """The port picked free is bound by another Redis before ours starts (the race,
    made certain): ours exits, and the fixture must not hand out the other one (a
    PING there answers) but start again on a new port."""
    other = RedisServer()
    other.start()
    server = RedisServer()
    server.port = other.port
    try:
        server.start()
        assert server.port != other.port
        assert server.proc is not None
        assert int(server.client().info("server")["process_id"]) == server.proc.pid
        server.client().set("mine", "1")
        assert other.client().get("mine") is None
    finally:
        server.stop()
        server.cleanup()
        other.stop()
        other.cleanup()
