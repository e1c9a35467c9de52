"""Publish tokens: lowercase hex HMAC-SHA256 of the stream ID under the publish secret.

Example::

    >>> token = publish_token("s3cret", "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")
    >>> verify_publish_token("s3cret", "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", token)
    True
"""

from __future__ import annotations

import hashlib
import hmac


def publish_token(secret: str, stream_id: str) -> str:
    """The token a broadcaster must send as ``?token=`` to publish ``stream_id``."""
    if not secret:
        raise ValueError("tokens: publish secret is empty")
    return hmac.new(secret.encode(), stream_id.encode(), hashlib.sha256).hexdigest()


def verify_publish_token(secret: str | None, stream_id: str, token: str) -> bool:
    """Constant-time check of ``token``; no secret configured means nothing may publish."""
    if not secret or not token:
        return False
    expected = publish_token(secret, stream_id)
    return hmac.compare_digest(expected.encode(), token.strip().lower().encode())
