"""Synthetic broadcasters: ffmpeg test sources publishing to nginx-rtmp with real tokens.

Each :class:`BroadcasterSpec` is one channel: a lavfi test pattern and a tone at a
given size (the ingest derives the quality from the height), frame rate and bitrate,
published to ``rtmp://HOST:PORT/APP/<stream id>?token=<HMAC>``. Behaviours:

- ``steady``: publishes in real time for ever (restarted with the same ID if it dies);
- ``finite``: a pre-recorded programme of ``length_s`` seconds, then a new stream ID;
- ``slow``: reads its source at ``readrate`` (< 1) of real time, so each frame arrives
  later than the one before beyond its timestamp: the measured ingest lag grows by
  ``1 - readrate`` seconds every second;
- ``silent``: publishes ``length_s`` seconds, then is frozen with SIGSTOP (the TCP
  connection stays open, no media flows: the ingest times out), for ``silent_s``
  seconds; then killed and started again as a new stream;
- ``bad-token``: publishes with a wrong token every ``retry_s`` seconds and is refused.

Example::

    >>> spec = BroadcasterSpec("live-720p", 1280, 720, fps=15, video_kbps=1500)
    >>> argv = ffmpeg_argv(spec, "rtmp://127.0.0.1:1935/live/ID?token=T")
    >>> argv[-1]
    'rtmp://127.0.0.1:1935/live/ID?token=T'
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from nova_streaming.stack.supervisor import Child, ProcessStartError, Supervisor
from nova_streaming.tokens import publish_token

logger = logging.getLogger("nova_streaming.stack.broadcasters")

FFMPEG_BIN = "/usr/bin/ffmpeg"
BEHAVIOURS = ("steady", "finite", "slow", "silent", "bad-token")


@dataclass(frozen=True)
class BroadcasterSpec:
    """One synthetic channel; see the module docstring for ``behaviour``.

    ``viewers`` is how many simulated viewers watch it at once (0: nobody watches).

    Example::

        >>> BroadcasterSpec("vod", 1920, 1080, fps=10, video_kbps=2500,
        ...                 stream_type="pre-recorded", behaviour="finite", length_s=120).quality
        '1080p'
    """

    name: str
    width: int
    height: int
    fps: float
    video_kbps: int
    stream_type: str = "live"
    behaviour: str = "steady"
    viewers: int = 2
    length_s: float = 60.0
    silent_s: float = 20.0
    readrate: float = 0.8
    retry_s: float = 2.0

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(
                f"broadcaster {self.name}: behaviour {self.behaviour!r} not in {BEHAVIOURS}"
            )
        if self.width < 16 or self.height < 16 or self.fps <= 0 or self.video_kbps <= 0:
            raise ValueError(f"broadcaster {self.name}: size, fps and bitrate must be positive")
        if self.behaviour == "slow" and not 0 < self.readrate < 1:
            raise ValueError(f"broadcaster {self.name}: a slow readrate must be in (0, 1)")
        if self.viewers < 0:
            raise ValueError(f"broadcaster {self.name}: viewers must be >= 0")

    @property
    def quality(self) -> str:
        """The rendition name the ingest derives from the height."""
        return "4k" if self.height >= 2160 else f"{self.height}p"


def publish_url(rtmp_base: str, stream_id: str, token: str, stream_type: str = "live") -> str:
    """The publish URL: ``<base>/<stream id>?token=...`` (+ ``&stream_type=`` if not live).

    Example::

        >>> publish_url("rtmp://127.0.0.1:1935/live", "ID", "abc", "pre-recorded")
        'rtmp://127.0.0.1:1935/live/ID?token=abc&stream_type=pre-recorded'
    """
    query = {"token": token}
    if stream_type != "live":
        query["stream_type"] = stream_type
    return f"{rtmp_base.rstrip('/')}/{stream_id}?{urlencode(query)}"


def ffmpeg_argv(spec: BroadcasterSpec, url: str, *, binary: str = FFMPEG_BIN) -> list[str]:
    """The ffmpeg command line publishing ``spec``'s test source to ``url``."""
    fps = f"{spec.fps:g}"
    # -re / -readrate pace each input; both inputs need it or the tone races ahead.
    pace = ["-readrate", f"{spec.readrate:g}"] if spec.behaviour == "slow" else ["-re"]
    argv = [binary, "-hide_banner", "-nostats", "-loglevel", "warning", "-nostdin"]
    argv += [*pace, "-f", "lavfi", "-i", f"testsrc2=size={spec.width}x{spec.height}:rate={fps}"]
    argv += [*pace, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]
    if spec.behaviour == "finite":
        argv += ["-t", f"{spec.length_s:g}"]
    kbps = spec.video_kbps
    argv += [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-g", str(max(1, round(spec.fps * 2))),
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k",
        "-c:a", "aac", "-b:a", "48k",
        "-f", "flv", url,
    ]  # fmt: skip
    return argv


def paste_command(rtmp_base: str, secret: str, stream_id: str | None = None) -> tuple[str, str]:
    """A ready-to-paste ffmpeg command for a fresh stream (and its stream ID).

    Example::

        >>> command, sid = paste_command("rtmp://127.0.0.1:1935/live", "s3cret")
        >>> command.startswith("ffmpeg -re ") and sid in command
        True
    """
    sid = stream_id or str(uuid.uuid4())
    url = publish_url(rtmp_base, sid, publish_token(secret, sid))
    argv = [
        "ffmpeg", "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50",
        "-b:v", "2000k", "-c:a", "aac", "-f", "flv", url,
    ]  # fmt: skip
    return shlex.join(argv), sid


@dataclass
class LiveStream:
    """What a running broadcaster publishes now (for the viewers and the printout)."""

    spec: BroadcasterSpec
    stream_id: str


class BroadcasterFleet:
    """Runs every broadcaster spec under the supervisor, each on its own thread.

    Example::

        >>> fleet = BroadcasterFleet(sup, specs, rtmp_base="rtmp://127.0.0.1:1935/live",
        ...                          secret="s3cret")  # doctest: +SKIP
        >>> fleet.start(); ...; fleet.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        supervisor: Supervisor,
        specs: list[BroadcasterSpec],
        *,
        rtmp_base: str,
        secret: str,
        binary: str = FFMPEG_BIN,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"broadcasters: names must be unique, got {names}")
        self._supervisor = supervisor
        self._specs = list(specs)
        self._rtmp_base = rtmp_base
        self._secret = secret
        self._binary = binary
        self._new_id = new_id
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._live: dict[str, LiveStream] = {}
        self.starts: dict[str, int] = dict.fromkeys(names, 0)

    def streams(self) -> list[LiveStream]:
        """The streams being published now (a bad-token publisher is not one)."""
        with self._lock:
            return list(self._live.values())

    def start(self) -> None:
        """Start one thread per broadcaster."""
        for spec in self._specs:
            thread = threading.Thread(
                target=self._run, args=(spec,), name=f"broadcaster-{spec.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop the threads and every ffmpeg they started."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    # --- one broadcaster --------------------------------------------------------------

    def _run(self, spec: BroadcasterSpec) -> None:
        stream_id = self._new_id()
        while not self._stop.is_set():
            child = self._launch(spec, stream_id)
            if child is None:
                self._stop.wait(spec.retry_s)
                continue
            try:
                if spec.behaviour == "silent":
                    self._silent_cycle(spec, child)
                    stream_id = self._new_id()
                else:
                    self._wait_exit(child)
                    if spec.behaviour == "finite" and child.popen and child.popen.returncode == 0:
                        # The programme ended: the next one is a new stream.
                        stream_id = self._new_id()
                        self._stop.wait(1.0)
                    else:
                        self._stop.wait(spec.retry_s)
            finally:
                with self._lock:
                    self._live.pop(spec.name, None)
                self._supervisor.stop(child, timeout=5.0)

    def _launch(self, spec: BroadcasterSpec, stream_id: str) -> Child | None:
        if spec.behaviour == "bad-token":
            token = "0" * 64  # well-formed, wrong
        else:
            token = publish_token(self._secret, stream_id)
        url = publish_url(self._rtmp_base, stream_id, token, spec.stream_type)
        try:
            child = self._supervisor.start(
                f"broadcaster {spec.name}",
                ffmpeg_argv(spec, url, binary=self._binary),
                log_name=f"broadcaster-{spec.name}",
            )
        except ProcessStartError as exc:
            logger.warning("%s", exc)
            return None
        self.starts[spec.name] += 1
        if spec.behaviour != "bad-token":
            with self._lock:
                self._live[spec.name] = LiveStream(spec, stream_id)
        return child

    def _wait_exit(self, child: Child) -> None:
        while not self._stop.is_set() and child.alive():
            self._stop.wait(0.2)

    def _silent_cycle(self, spec: BroadcasterSpec, child: Child) -> None:
        if self._stop.wait(spec.length_s) or not child.alive():
            return
        # Freeze the whole group: the TCP connection stays open, no media flows.
        try:
            os.killpg(child.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        self._stop.wait(spec.silent_s)
