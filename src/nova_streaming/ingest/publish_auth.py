"""The decision behind nginx-rtmp's ``on_publish`` and ``on_publish_done`` callbacks.

nginx POSTs a form (``application/x-www-form-urlencoded``) with its own fields
``call, addr, clientid, app, flashVer, swfUrl, tcUrl, pageUrl, name, type`` followed
by the publish URL's query arguments (``token``, ``stream_type``, ...). nginx's
fields come first, so a repeated key (``type``, or a hostile ``?name=``) is resolved
by taking nginx's occurrence, the first; ``type`` is never read as the stream type.

Rules: the HTTP peer must be in the trusted networks; the stream name (an optional
``_720p``-style rendition suffix stripped) must be a UUID; ``token`` must equal the
HMAC of that UUID (checked in constant time by
:func:`nova_streaming.tokens.verify_publish_token`); ``stream_type`` is ``live``
(default) or ``pre-recorded``.

Example::

    >>> from nova_streaming.tokens import publish_token
    >>> sid = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
    >>> body = f"call=publish&name={sid}&type=live&token={publish_token('k', sid)}"
    >>> d = decide_publish(body.encode(), "127.0.0.1", secret="k",
    ...                    trusted=TrustedPeers.parse("127.0.0.1/32"))
    >>> d.allowed, d.stream_id, d.stream_type
    (True, '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b', 'live')
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from urllib.parse import parse_qs

from nova_streaming.ingest.frames import split_rendition
from nova_streaming.ingest.peers import TrustedPeers
from nova_streaming.tokens import verify_publish_token

STREAM_TYPES = ("live", "pre-recorded")
DEFAULT_STREAM_TYPE = "live"
MAX_CALLBACK_BODY = 16 * 1024

# Machine-readable rejection reasons (log them; each maps to auth_rejected).
REASON_UNTRUSTED_PEER = "untrusted_peer"
REASON_MALFORMED_BODY = "malformed_body"
REASON_WRONG_CALL = "wrong_call"
REASON_BAD_STREAM_NAME = "bad_stream_name"
REASON_BAD_TOKEN = "bad_token"
REASON_BAD_STREAM_TYPE = "bad_stream_type"


@dataclass(frozen=True, slots=True)
class PublishDecision:
    """The outcome of a callback: allowed or not, and what was learned.

    ``stream_id`` is the canonical lowercase UUID (suffix stripped) when the name was
    valid; ``quality`` the rendition suffix's quality, if any; ``reason`` one of the
    ``REASON_*`` values when refused; ``detail`` a human-readable explanation.

    Example::

        >>> PublishDecision(False, reason=REASON_BAD_TOKEN).http_status
        403
    """

    allowed: bool
    stream_id: str | None = None
    stream_type: str = DEFAULT_STREAM_TYPE
    quality: str | None = None
    stream_name: str | None = None
    client_addr: str | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def http_status(self) -> int:
        """What the endpoint answers: 200 lets nginx proceed, 403 drops the publisher."""
        return 200 if self.allowed else 403


def parse_callback_form(body: bytes | str) -> dict[str, list[str]]:
    """The form's fields, every occurrence kept in order; raises ``ValueError`` if bad.

    Example::

        >>> parse_callback_form(b"type=live&type=pre-recorded")["type"]
        ['live', 'pre-recorded']
    """
    if len(body) > MAX_CALLBACK_BODY:
        raise ValueError(f"callback body over {MAX_CALLBACK_BODY} bytes")
    text = body.decode("utf-8", "strict") if isinstance(body, bytes) else body
    return parse_qs(
        text, keep_blank_values=True, strict_parsing=False, max_num_fields=64, errors="strict"
    )


def canonical_stream_id(name: str) -> tuple[str, str | None] | None:
    """``(uuid, rendition quality)`` for a valid stream name, else ``None``.

    Example::

        >>> canonical_stream_id("1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B_1080p")
        ('1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b', '1080p')
        >>> canonical_stream_id("not-a-uuid") is None
        True
    """
    base, quality = split_rendition(name)
    if len(base) != 36:  # only the hyphenated form; uuid.UUID accepts braces and urns
        return None
    try:
        return str(uuid.UUID(base)), quality
    except ValueError:
        return None


def _first(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def _refuse(reason: str, detail: str, known: PublishDecision | None = None) -> PublishDecision:
    """A refusal carrying what was learned before the check that failed (``known``)."""
    base = known if known is not None else PublishDecision(False)
    return replace(base, allowed=False, reason=reason, detail=detail)


def decide_publish(
    body: bytes | str | dict[str, list[str]],
    peer: str | None,
    *,
    secret: str | None,
    trusted: TrustedPeers,
    expected_call: str = "publish",
) -> PublishDecision:
    """Decide an ``on_publish`` callback (``peer``: the HTTP client's IP address).

    Example::

        >>> decide_publish(b"call=publish&name=x", "10.0.0.9", secret="k",
        ...                trusted=TrustedPeers.parse("127.0.0.1/32")).reason
        'untrusted_peer'
    """
    if not trusted.allows(peer):
        return _refuse(REASON_UNTRUSTED_PEER, f"callback from {peer!r} outside trusted networks")
    try:
        form = body if isinstance(body, dict) else parse_callback_form(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _refuse(REASON_MALFORMED_BODY, f"unparsable callback body: {exc}")
    call = _first(form, "call")
    if call is not None and call != expected_call:
        return _refuse(REASON_WRONG_CALL, f"call={call!r}, expected {expected_call!r}")
    name = _first(form, "name") or ""
    client = _first(form, "addr")
    parsed = canonical_stream_id(name)
    if parsed is None:
        return _refuse(
            REASON_BAD_STREAM_NAME,
            f"stream name {name[:80]!r} is not a UUID",
            PublishDecision(False, stream_name=name[:256], client_addr=client),
        )
    stream_id, quality = parsed
    known = PublishDecision(
        False, stream_id=stream_id, quality=quality, stream_name=name, client_addr=client
    )
    types = set(form.get("stream_type", []))
    if len(types) > 1:
        return _refuse(REASON_BAD_STREAM_TYPE, "conflicting stream_type values", known)
    stream_type = types.pop() if types else DEFAULT_STREAM_TYPE
    if stream_type not in STREAM_TYPES:
        return _refuse(
            REASON_BAD_STREAM_TYPE,
            f"stream_type {stream_type[:40]!r} is not one of {', '.join(STREAM_TYPES)}",
            known,
        )
    if expected_call == "publish":
        tokens = form.get("token", [])
        if len(set(tokens)) != 1 or not verify_publish_token(secret, stream_id, tokens[0]):
            return _refuse(REASON_BAD_TOKEN, "missing or invalid publish token", known)
    return replace(known, allowed=True, stream_type=stream_type)


def decide_publish_done(
    body: bytes | str | dict[str, list[str]],
    peer: str | None,
    *,
    trusted: TrustedPeers,
) -> PublishDecision:
    """Decide an ``on_publish_done`` callback: trusted peer and a UUID name, no token.

    Example::

        >>> sid = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
        >>> decide_publish_done(f"call=publish_done&name={sid}", "127.0.0.1",
        ...                     trusted=TrustedPeers.parse("127.0.0.1/32")).allowed
        True
    """
    return decide_publish(body, peer, secret=None, trusted=trusted, expected_call="publish_done")
