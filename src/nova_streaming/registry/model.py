"""What the registry stores and announces: stream records and lifecycle events."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from streaming_metrics.definitions import STREAM_TYPES

__all__ = [
    "ACTIVE",
    "INTERRUPTED",
    "InvalidStreamId",
    "RegistryEvent",
    "StreamEnded",
    "StreamRecord",
    "StreamStatus",
    "normalize_stream_id",
    "validate_stream_type",
]

ACTIVE: Final = "active"
INTERRUPTED: Final = "interrupted"


class InvalidStreamId(ValueError):
    """A stream ID that is not a UUID."""


def normalize_stream_id(stream_id: object) -> str:
    """The canonical (lowercase, hyphenated) form of a UUID stream ID.

    >>> normalize_stream_id("1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B")
    '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b'
    """
    if isinstance(stream_id, uuid.UUID):
        return str(stream_id)
    if not isinstance(stream_id, str) or len(stream_id) > 64:
        raise InvalidStreamId(f"stream_id must be a UUID, got {stream_id!r:.80}")
    try:
        return str(uuid.UUID(stream_id))
    except ValueError:
        raise InvalidStreamId(f"stream_id must be a UUID, got {stream_id!r:.80}") from None


def validate_stream_type(stream_type: str) -> str:
    """``stream_type`` if it is one of the contract's types, else ``ValueError``."""
    if stream_type not in STREAM_TYPES:
        raise ValueError(
            f"stream_type must be one of {', '.join(STREAM_TYPES)}, got {stream_type!r}"
        )
    return stream_type


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """An active stream as every replica sees it.

    ``started_at`` is wall-clock (Unix seconds) so that every replica computes the same
    duration; a take-over keeps it. ``state`` is ``active`` or ``interrupted`` (waiting
    for a re-push until ``grace_until``).

    Example::

        >>> r = StreamRecord("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", "local", "live", 0.0, "a")
        >>> r.to_api(viewers=3)["started_at"]
        '1970-01-01T00:00:00+00:00'
    """

    stream_id: str
    region: str
    stream_type: str
    started_at: float
    owner: str
    state: str = ACTIVE
    grace_until: float | None = None
    instance: str = ""
    orphaned: bool = False
    # Wall-clock time the stream's media stopped, while ``interrupted``: the relay's
    # drop, or, for a dead owner's stream, the owner's last heartbeat. An end of the
    # stream without a re-push counts its duration up to here, not to the grace's end.
    interrupted_at: float | None = None

    def to_api(self, *, viewers: int) -> dict[str, Any]:
        """The JSON object ``/api/v1/streams`` returns for this stream."""
        return {
            "stream_id": self.stream_id,
            "region": self.region,
            "stream_type": self.stream_type,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "state": self.state,
            "viewers": viewers,
        }


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """What the store knows of a stream: ``active`` (with its record), ``ended``
    (recently ended here or elsewhere) or ``unknown`` (no trace: the backend lost its
    data, or it ended long ago)."""

    state: str
    record: StreamRecord | None = None


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """A stream ended (delivered to every replica's listeners, once per replica)."""

    stream_id: str
    reason: str | None
    final_viewers: int
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """A message between replicas on the events channel."""

    kind: str  # "ended", "end_request", "end_declined" or "takeover"
    stream_id: str
    origin: str
    target: str | None = None
    reason: str | None = None
    final_viewers: int = 0
    duration_seconds: float = 0.0
    # What asked for the end (a rendition's stream name): the owner's end check judges it.
    source: str | None = None
    # Of an "ended": which broadcast ended (a newer start of the same id is another).
    started_at: float = 0.0

    def encode(self) -> str:
        """JSON text for the wire."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> RegistryEvent | None:
        """Parse a wire message; None for anything malformed (ignored by the caller)."""
        try:
            data = json.loads(text)
            event = cls(
                kind=str(data["kind"]),
                stream_id=normalize_stream_id(data["stream_id"]),
                origin=str(data["origin"]),
                target=None if data.get("target") is None else str(data["target"]),
                reason=None if data.get("reason") is None else str(data["reason"]),
                final_viewers=int(data.get("final_viewers", 0)),
                duration_seconds=float(data.get("duration_seconds", 0.0)),
                source=None if data.get("source") is None else str(data["source"]),
                started_at=float(data.get("started_at", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return event
