"""``nova-streaming token STREAM_ID``: print the publish token of a stream."""

from __future__ import annotations

import argparse
import sys

from nova_streaming.registry import InvalidStreamId, normalize_stream_id
from nova_streaming.settings import process_environ
from nova_streaming.tokens import publish_token

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``token``."""
    parser = subparsers.add_parser(
        "token",
        help="print the publish token of a stream",
        description="Print HMAC-SHA256(secret, STREAM_ID) as lowercase hex.",
    )
    parser.add_argument("stream_id", metavar="STREAM_ID", help="the stream's UUID")
    parser.add_argument(
        "--secret", default=None, help="publish secret (default: NOVA_PUBLISH_SECRET)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the token; exit 2 for a non-UUID stream ID or no secret."""
    try:
        stream_id = normalize_stream_id(args.stream_id)
    except InvalidStreamId as exc:
        print(f"nova-streaming token: STREAM_ID: {exc}", file=sys.stderr)
        return 2
    secret = (
        args.secret if args.secret is not None else process_environ().get("NOVA_PUBLISH_SECRET")
    )
    secret = (secret or "").strip()
    if not secret:
        print(
            "nova-streaming token: NOVA_PUBLISH_SECRET: not set (use --secret or the variable)",
            file=sys.stderr,
        )
        return 2
    print(publish_token(secret, stream_id))
    return 0
