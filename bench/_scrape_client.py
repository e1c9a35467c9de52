"""Prometheus's side of the stall bench: a scraper in its own process.

``python -m bench._scrape_client PORT SCRAPES HEADERS_JSON`` connects to
``127.0.0.1:PORT``, prints ``{"ready": true}``, waits for a line on stdin, then GETs
``/metrics`` ``SCRAPES`` times back to back on one keep-alive connection (body read,
not decoded) and prints ``{"durations": [...]}`` or ``{"error": "..."}``.

A scraper thread inside the measured process would compete with the event loop for the
GIL (reading a multi-MB body is Python work), which Prometheus, another process, never
does: its lateness would be the bench's, not the service's.

Example::

    .venv/bin/python -m bench._scrape_client 8081 10 '{"accept": "text/plain"}'
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def main(argv: list[str]) -> int:
    """Run the scrapes described by ``argv`` (port, count, headers as JSON)."""
    port, scrapes, headers = int(argv[0]), int(argv[1]), json.loads(argv[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.connect()
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()
        durations: list[float] = []
        for _ in range(scrapes):
            start = time.perf_counter()
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            response.read()
            durations.append(time.perf_counter() - start)
            if response.status != 200:
                print(json.dumps({"error": f"/metrics answered {response.status}"}), flush=True)
                return 1
        print(json.dumps({"durations": durations}), flush=True)
        return 0
    except Exception as exc:  # reported to the bench, which raises it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
