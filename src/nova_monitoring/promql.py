"""PromQL fragments every rule module writes the same way: bucket matchers, rates.

Kept apart from the rule modules so that the recording rules, the alerts and the SLOs
can all use them without importing each other.

Example::

    >>> rate_of("x_total", "5m"), le_matcher(0.5)
    ('rate(x_total[5m])', 'le="0.5"')
"""

from __future__ import annotations

__all__ = ["le_matcher", "rate_of"]


def le_matcher(bound: float) -> str:
    """Match a histogram bucket bound as the Go and the Python clients both write it.

    prometheus_client writes ``le="1.0"`` where the Go client writes ``le="1"``, and
    Prometheus 2.x compares the label as a string, so ``{le="1"}`` alone silently
    matches nothing on a Python exporter. A bound with a fraction (``0.5``) is written
    the same way by both clients, so an exact match is enough.

    Example::

        >>> print(le_matcher(1.0), le_matcher(0.5))
        le=~"1|1\\\\.0" le="0.5"
    """
    python_form = repr(float(bound))
    go_form = python_form.removesuffix(".0")
    if go_form == python_form:
        return f'le="{python_form}"'
    # A backslash-escaped dot inside a PromQL string: the regex is exact, not "1 any 0".
    escaped = python_form.replace(".", "\\\\.")
    return f'le=~"{go_form}|{escaped}"'


def rate_of(name: str, window: str) -> str:
    """``rate(<name>[<window>])``: the one place a rate window is written.

    Example::

        >>> rate_of("x_total", "5m")
        'rate(x_total[5m])'
    """
    return f"rate({name}[{window}])"
