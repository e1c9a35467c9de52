"""What the two images (``images/service/Containerfile``, ``images/ingest/Containerfile``)
provide, as the manifests rely on it: users, entrypoints, paths and ports.

The manifests are rendered from these constants; a test reads the Containerfiles and
checks they say the same (the images cannot be built or run on the build machines).

Example::

    >>> SERVICE_ENTRYPOINT
    ('nova-streaming', 'serve')
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INGEST_CONFIG_DIR",
    "INGEST_CONFIG_FILE",
    "INGEST_ENTRYPOINT",
    "INGEST_PREFIX",
    "INGEST_RTMP_PORT",
    "INGEST_UID",
    "INGEST_WRITABLE_DIRS",
    "SERVICE_ENTRYPOINT",
    "SERVICE_TMP_DIR",
    "SERVICE_UID",
]

SERVICE_UID: Final = 10001
"""User and group id the service image runs as (``USER 10001:10001``)."""

SERVICE_ENTRYPOINT: Final = ("nova-streaming", "serve")
"""The service image's ENTRYPOINT; the Deployment sets no command and no args."""

SERVICE_TMP_DIR: Final = "/tmp"
"""The only directory the service may write (an emptyDir): Python's tempfile default."""

INGEST_UID: Final = 10002
"""User and group id the ingest image runs as."""

INGEST_PREFIX: Final = "/var/lib/nova-ingest"
"""nginx's prefix: the rendered nginx.conf keeps pid, logs and temp files under it."""

INGEST_WRITABLE_DIRS: Final = (f"{INGEST_PREFIX}/logs", f"{INGEST_PREFIX}/tmp")
"""Where nginx writes (pid, error and RTMP access logs; HTTP temp paths): emptyDirs."""

INGEST_CONFIG_DIR: Final = "/etc/nova-ingest"
"""Where the ConfigMap holding nginx.conf is mounted (read-only)."""

INGEST_CONFIG_FILE: Final = "nginx.conf"

INGEST_RTMP_PORT: Final = 1935

INGEST_ENTRYPOINT: Final = (
    "nginx",
    "-p",
    INGEST_PREFIX,
    "-c",
    f"{INGEST_CONFIG_DIR}/{INGEST_CONFIG_FILE}",
    "-e",
    f"{INGEST_PREFIX}/logs/error.log",
    # A second error log on stderr, so `kubectl logs` shows nginx's errors; the file
    # log the rendered config names stays too (nginx allows several error_log).
    "-g",
    "error_log stderr warn;",
)
"""The ingest image's ENTRYPOINT (nginx in the foreground: the config says daemon off)."""
