"""Prometheus duration strings from seconds."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``15`` -> ``'15s'``, ``0.5`` -> ``'500ms'``, ``300`` -> ``'5m'``.

    Example::

        >>> duration(300), duration(0.5), duration(90)
        ('5m', '500ms', '90s')
    """
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    secs = millis // 1000
    if secs % 3600 == 0:
        return f"{secs // 3600}h"
    if secs % 60 == 0:
        return f"{secs // 60}m"
    return f"{secs}s"
