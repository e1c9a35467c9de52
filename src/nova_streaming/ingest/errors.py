"""The one exception the RTMP parsing layers raise, and the error types it counts as.

Everything a peer can send that the parser refuses ends in :class:`RtmpProtocolError`;
the receiver turns it into a close of that connection and a counted error, so nothing
a peer sends escapes as any other exception.

Example::

    >>> err = HandshakeError("bad version 6")
    >>> err.error_type
    'rtmp_connection_failed'
"""

from __future__ import annotations

# The values are members of streaming_metrics.definitions.DEFAULT_ERROR_TYPES (a unit
# test pins that), so phase-2 wiring can pass them straight to record_broadcast_error.
PROTOCOL_ERROR = "protocol_error"
CONNECTION_FAILED = "rtmp_connection_failed"
TIMEOUT = "timeout"
FRAME_DROP = "frame_drop"


class RtmpProtocolError(ValueError):
    """A peer sent something the ingest parser refuses; close that connection only.

    ``error_type`` is the broadcast error it is counted as.

    Example::

        >>> RtmpProtocolError("chunk size 0").error_type
        'protocol_error'
    """

    error_type: str = PROTOCOL_ERROR


class HandshakeError(RtmpProtocolError):
    """The RTMP handshake failed (bad version byte); counted as a failed connection.

    Example::

        >>> HandshakeError("version 6").error_type
        'rtmp_connection_failed'
    """

    error_type = CONNECTION_FAILED


class AmfError(RtmpProtocolError):
    """An AMF0 value could not be decoded (truncated, unknown marker, too deep).

    Example::

        >>> isinstance(AmfError("truncated"), RtmpProtocolError)
        True
    """
