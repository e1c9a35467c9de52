"""Resource caps of one ingest connection: what a hostile peer can make us hold.

Example::

    >>> limits = IngestLimits(max_message_size=1 << 20)
    >>> limits.max_chunk_streams
    64
"""

from __future__ import annotations

from dataclasses import dataclass

#: RTMP's message length field is 24 bits, so nothing larger can be announced.
RTMP_MAX_MESSAGE_FIELD = 0xFFFFFF


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Per-connection caps; exceeding one is a protocol error that closes the connection.

    - ``max_message_size``: largest RTMP message accepted (4 MiB: a 4k keyframe at
      high bitrate is well under it; nginx's own default ``max_message`` is 1 MiB).
    - ``max_chunk_size``: largest SetChunkSize accepted (nginx sends its ``chunk_size``,
      4096 by default). Memory does not depend on it: a chunk is never longer than
      the rest of its message.
    - ``max_command_size``: largest command or data message (AMF0: connect, publish,
      onMetaData); 256 KiB holds any real onMetaData, including keyframe indexes.
    - ``max_chunk_streams``: distinct chunk stream ids a peer may use (nginx uses < 10).
    - ``max_buffered_bytes``: bytes of fragmented non-media messages held at once,
      across all chunk streams (media payloads are counted, never buffered).
    - ``max_amf_depth``: nesting depth of AMF0 objects and arrays.
    - ``max_pending_output``: bytes queued to a peer that does not read its replies.

    Example::

        >>> IngestLimits().max_message_size
        4194304
    """

    max_message_size: int = 4 * 1024 * 1024
    max_chunk_size: int = RTMP_MAX_MESSAGE_FIELD
    max_command_size: int = 256 * 1024
    max_chunk_streams: int = 64
    max_buffered_bytes: int = 8 * 1024 * 1024
    max_amf_depth: int = 32
    max_pending_output: int = 1024 * 1024

    def __post_init__(self) -> None:
        if not 128 <= self.max_message_size <= RTMP_MAX_MESSAGE_FIELD:
            raise ValueError(
                f"ingest limits: max_message_size must be in [128, {RTMP_MAX_MESSAGE_FIELD}]"
            )
        if not 128 <= self.max_chunk_size <= RTMP_MAX_MESSAGE_FIELD:
            raise ValueError(
                f"ingest limits: max_chunk_size must be in [128, {RTMP_MAX_MESSAGE_FIELD}]"
            )
        if not 128 <= self.max_command_size <= self.max_message_size:
            raise ValueError("ingest limits: max_command_size must be in [128, max_message_size]")
        if not 4 <= self.max_chunk_streams <= 65599:
            raise ValueError("ingest limits: max_chunk_streams must be in [4, 65599]")
        if self.max_buffered_bytes < self.max_message_size:
            raise ValueError("ingest limits: max_buffered_bytes must be >= max_message_size")
        if not 1 <= self.max_amf_depth <= 256:
            raise ValueError("ingest limits: max_amf_depth must be in [1, 256]")
        if self.max_pending_output < 4096:
            raise ValueError("ingest limits: max_pending_output must be >= 4096")
