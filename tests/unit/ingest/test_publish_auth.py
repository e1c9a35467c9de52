"""The on_publish / on_publish_done decision logic."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from nova_streaming.ingest.peers import TrustedPeers
from nova_streaming.ingest.publish_auth import decide_publish, decide_publish_done
from nova_streaming.tokens import publish_token

SECRET = "s3cret"
SID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
TRUSTED = TrustedPeers.parse("127.0.0.1/32,::1/128")


def nginx_form(name: str = SID, **args: str) -> bytes:
    """A body in the order nginx 1.2.2 sends it (observed), then the URL's query args."""
    fields = [
        ("app", "live"),
        ("flashver", "FMLE/3.0"),
        ("swfurl", ""),
        ("tcurl", "rtmp://127.0.0.1/live"),
        ("pageurl", ""),
        ("addr", "192.0.2.7"),
        ("clientid", "2"),
        ("call", "publish"),
        ("name", name),
        ("type", "live"),
    ]
    return urlencode(fields + list(args.items())).encode()


def test_valid_publish_allowed() -> None:
    """A UUID name with its token from a trusted peer is allowed, type live by default."""
    d = decide_publish(
        nginx_form(token=publish_token(SECRET, SID)), "127.0.0.1", secret=SECRET, trusted=TRUSTED
    )
    assert (d.allowed, d.stream_id, d.stream_type, d.http_status) == (True, SID, "live", 200)
    assert d.client_addr == "192.0.2.7"


def test_stream_type_and_duplicated_type() -> None:
    """stream_type=pre-recorded sets the type; a second `type` from the URL is ignored."""
    body = nginx_form(
        token=publish_token(SECRET, SID), type="pre-recorded", stream_type="pre-recorded"
    )
    assert b"type=live" in body and body.count(b"&type=") == 2
    d = decide_publish(body, "::1", secret=SECRET, trusted=TRUSTED)
    assert d.allowed and d.stream_type == "pre-recorded"
    only_type = decide_publish(
        nginx_form(token=publish_token(SECRET, SID), type="pre-recorded"),
        "127.0.0.1",
        secret=SECRET,
        trusted=TRUSTED,
    )
    assert only_type.stream_type == "live"


@pytest.mark.parametrize(
    ("body", "peer", "secret", "reason"),
    [
        (nginx_form(token="0" * 64), "127.0.0.1", SECRET, "bad_token"),
        (nginx_form(), "127.0.0.1", SECRET, "bad_token"),
        (nginx_form(token=publish_token(SECRET, SID)), "127.0.0.1", None, "bad_token"),
        (
            nginx_form("stream1", token=publish_token(SECRET, "stream1")),
            "127.0.0.1",
            SECRET,
            "bad_stream_name",
        ),
        (nginx_form("{" + SID + "}"), "127.0.0.1", SECRET, "bad_stream_name"),
        (nginx_form(token=publish_token(SECRET, SID)), "10.0.0.1", SECRET, "untrusted_peer"),
        (nginx_form(token=publish_token(SECRET, SID)), "garbage", SECRET, "untrusted_peer"),
        (
            nginx_form(token=publish_token(SECRET, SID), stream_type="vod"),
            "127.0.0.1",
            SECRET,
            "bad_stream_type",
        ),
        (b"call=play&name=" + SID.encode(), "127.0.0.1", SECRET, "wrong_call"),
        (b"name=\xff\xfe", "127.0.0.1", SECRET, "malformed_body"),
        (b"a=1&" * 5000, "127.0.0.1", SECRET, "malformed_body"),
    ],
)
def test_rejections(body: bytes, peer: str, secret: str | None, reason: str) -> None:
    """Bad token, missing secret, non-UUID, untrusted peer, bad type and bad bodies: 403."""
    d = decide_publish(body, peer, secret=secret, trusted=TRUSTED)
    assert not d.allowed and d.reason == reason and d.http_status == 403


def test_conflicting_tokens_or_types_refused() -> None:
    """Two different tokens or stream types are refused rather than guessed."""
    token = publish_token(SECRET, SID)
    two_tokens = nginx_form(token=token) + b"&token=" + b"0" * 64
    assert decide_publish(two_tokens, "127.0.0.1", secret=SECRET, trusted=TRUSTED).reason == (
        "bad_token"
    )
    two_types = nginx_form(token=token, stream_type="live") + b"&stream_type=pre-recorded"
    assert decide_publish(two_types, "127.0.0.1", secret=SECRET, trusted=TRUSTED).reason == (
        "bad_stream_type"
    )


def test_hostile_name_argument_cannot_replace_nginx_name() -> None:
    """A `name` in the publish URL's query comes after nginx's and is ignored."""
    token = publish_token(SECRET, SID)
    other = "2b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
    body = nginx_form(token=token) + f"&name={other}".encode()
    d = decide_publish(body, "127.0.0.1", secret=SECRET, trusted=TRUSTED)
    assert d.allowed and d.stream_id == SID


def test_rendition_suffix_and_uppercase_uuid() -> None:
    """A rendition suffix is stripped (token over the UUID) and the UUID is canonicalised."""
    body = nginx_form(SID.upper() + "_720p", token=publish_token(SECRET, SID))
    d = decide_publish(body, "127.0.0.1", secret=SECRET, trusted=TRUSTED)
    assert d.allowed and d.stream_id == SID and d.quality == "720p"


def test_publish_done() -> None:
    """on_publish_done needs a trusted peer and a UUID name, no token (nginx sends none of
    its own `type`, only the URL's args)."""
    body = f"app=live&call=publish_done&name={SID}&type=foo".encode()
    assert decide_publish_done(body, "127.0.0.1", trusted=TRUSTED).stream_id == SID
    assert decide_publish_done(body, "10.1.1.1", trusted=TRUSTED).reason == "untrusted_peer"
    bad = decide_publish_done(b"call=publish_done&name=x", "127.0.0.1", trusted=TRUSTED)
    assert bad.reason == "bad_stream_name"


def test_trusted_peers_parse_errors() -> None:
    """A malformed or empty allow-list is a ValueError naming the bad entry."""
    with pytest.raises(ValueError, match="'nope' is not a network"):
        TrustedPeers.parse("127.0.0.1/32,nope")
    with pytest.raises(ValueError, match="no network"):
        TrustedPeers.parse(" , ")
    assert TrustedPeers.parse(["::1/128"]).allows("::1")
