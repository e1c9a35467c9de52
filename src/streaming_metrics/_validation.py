"""Input checks shared by the recording paths: each returns a clean value or a reason.

Nothing here raises for a bad value: the caller counts the returned reason as a
rejection (see :class:`streaming_metrics.StreamingMetrics`).
"""

from __future__ import annotations

import math
import numbers
import re
from typing import TypeGuard
from uuid import UUID

from streaming_metrics import definitions as d

# Canonical 8-4-4-4-12 text only: braces, URNs and hyphen-less forms are rejected so that
# one stream can never be exported under two spellings.
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def clean_stream_id(value: object) -> str | None:
    """The lowercase canonical text of a UUID given as text or ``uuid.UUID``; else None."""
    if isinstance(value, str):
        return value.lower() if _UUID_TEXT.fullmatch(value) else None
    if isinstance(value, UUID):
        return str(value)
    return None


def is_label_value(value: object) -> TypeGuard[str]:
    """True when ``value`` is a str fully matching ``definitions.LABEL_VALUE_PATTERN``."""
    return isinstance(value, str) and d.LABEL_VALUE_PATTERN.fullmatch(value) is not None


def clean_amount(value: object) -> float | str:
    """``value`` as a finite, non-negative float, or the rejection reason (a str).

    Booleans are refused although they are ints: ``True`` as a latency is a bug.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return d.REJECT_INVALID_TYPE
    try:
        amount = float(value)
    except (OverflowError, ValueError, TypeError):
        # An int too large for a float is not a finite sample.
        return d.REJECT_NOT_FINITE
    if not math.isfinite(amount):
        return d.REJECT_NOT_FINITE
    if amount < 0.0:
        return d.REJECT_NEGATIVE
    return amount


def clean_count(value: object) -> float | str:
    """An occurrence count (an int >= 1) as the float a counter adds, or the rejection
    reason (a str): ``invalid_type`` for anything not an integer (bools included),
    ``negative_value`` below 1, ``not_finite`` for an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return d.REJECT_INVALID_TYPE
    if value < 1:
        return d.REJECT_NEGATIVE
    try:
        return float(value)
    except OverflowError:
        return d.REJECT_NOT_FINITE


def check_label_values(kind: str, values: object) -> tuple[str, ...]:
    """Configuration-time check of a set of label values; raises ``ValueError`` naming ``kind``.

    Order is kept and duplicates dropped.
    """
    if isinstance(values, str | bytes):
        raise ValueError(
            f"StreamingMetrics: {kind} must be an iterable of label values, not a single string"
        )
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(
            f"StreamingMetrics: {kind} must be an iterable of label values, got {values!r}"
        ) from None
    out: list[str] = []
    for item in items:
        if not is_label_value(item):
            raise ValueError(
                f"StreamingMetrics: {kind} value {item!r} does not match "
                f"{d.LABEL_VALUE_PATTERN.pattern}"
            )
        if item not in out:
            out.append(item)
    return tuple(out)
