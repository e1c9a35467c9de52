"""Alertmanager routing, written once and rendered in two dialects.

``alertmanager_config`` is a plain ``alertmanager.yml`` (amtool, non-operator setups);
``alertmanager_config_spec`` is the same tree as an ``AlertmanagerConfig`` spec. The
Slack webhook URL is never in either file: the plain config reads it from a file
(``api_url_file``, where a Secret is mounted), the resource from a Secret key.
Critical and warning alerts go to Slack; ``info`` alerts go to a receiver with no
integration, which pages nobody.

Example::

    >>> from nova_monitoring.options import RenderOptions
    >>> alertmanager_config(RenderOptions())["route"]["receiver"]
    'slack-streaming'
"""

from __future__ import annotations

from dataclasses import dataclass

from nova_monitoring._types import Data
from nova_monitoring.alerts import ALERT_NAME_PREFIX
from nova_monitoring.options import RenderOptions

__all__ = [
    "GROUP_BY",
    "INFO_RECEIVER",
    "SLACK_RECEIVER",
    "Matcher",
    "alertmanager_config",
    "alertmanager_config_spec",
    "receiver_for_severity",
    "slack_api_url_file",
]

SLACK_RECEIVER = "slack-streaming"
INFO_RECEIVER = "info-sink"
GROUP_BY: tuple[str, ...] = ("alertname", "cluster", "namespace")
# Where the Prometheus Operator mounts an Alertmanager's `spec.secrets`; a plain setup
# mounts the same Secret at the same path.
SECRETS_DIR = "/etc/alertmanager/secrets"

_GROUP_WAIT = "30s"
_GROUP_INTERVAL = "5m"
_REPEAT_INTERVAL = "12h"
_CRITICAL_REPEAT_INTERVAL = "1h"

_TITLE = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
    "{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})"
)
_TEXT = (
    "{{ range .Alerts }}*{{ .Annotations.summary }}*\n"
    "{{ .Annotations.description }}\n"
    "Runbook: {{ .Annotations.runbook_url }}\n"
    "{{ end }}"
)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher, renderable as ``name="value"`` or as a CRD matcher object.

    Example::

        >>> str(Matcher("severity", "=~", "warning|info"))
        'severity=~"warning|info"'
    """

    name: str
    op: str
    value: str

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def as_crd(self) -> Data:
        """The ``AlertmanagerConfig`` form: ``{name, value, matchType}``."""
        return {"name": self.name, "value": self.value, "matchType": self.op}


@dataclass(frozen=True, slots=True)
class _Route:
    receiver: str
    matchers: tuple[Matcher, ...]
    repeat_interval: str | None = None


@dataclass(frozen=True, slots=True)
class _Inhibit:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


_ROUTES: tuple[_Route, ...] = (
    _Route(INFO_RECEIVER, (Matcher("severity", "=", "info"),)),
    _Route(
        SLACK_RECEIVER,
        (Matcher("severity", "=", "critical"),),
        repeat_interval=_CRITICAL_REPEAT_INTERVAL,
    ),
    _Route(SLACK_RECEIVER, (Matcher("severity", "=", "warning"),)),
)

_INHIBITS: tuple[_Inhibit, ...] = (
    # No target at all: every other streaming alert is noise on missing data. Only
    # streaming alerts: the rule labels put namespace and cluster on ours, but other
    # alerts in the namespace carry them too, and one of those (a pod crash loop, a
    # failed rollout) is likely why the target is absent.
    _Inhibit(
        source=(Matcher("alertname", "=", "StreamingMetricsTargetAbsent"),),
        target=(
            Matcher("alertname", "=~", f"{ALERT_NAME_PREFIX}.+"),
            Matcher("severity", "=~", "warning|info"),
        ),
        equal=("namespace", "cluster"),
    ),
    # A scrape that times out is a target down; say it once.
    _Inhibit(
        source=(Matcher("alertname", "=", "StreamingMetricsTargetDown"),),
        target=(Matcher("alertname", "=", "StreamingMetricsScrapeNearTimeout"),),
        equal=("namespace", "cluster", "instance"),
    ),
    # A burn fast enough to page also crosses the ticket tiers of the same SLO: while
    # the page is on, the tickets say nothing new.
    _Inhibit(
        source=(
            Matcher("alertname", "=~", f"{ALERT_NAME_PREFIX}.+BudgetBurn"),
            Matcher("severity", "=", "critical"),
        ),
        target=(
            Matcher("alertname", "=~", f"{ALERT_NAME_PREFIX}.+BudgetBurn"),
            Matcher("severity", "=", "warning"),
        ),
        equal=("alertname", "slo", "namespace", "cluster"),
    ),
)


def receiver_for_severity(severity: str) -> str:
    """The receiver an alert of ``severity`` reaches (unknown severities: Slack).

    Example::

        >>> receiver_for_severity("info")
        'info-sink'
    """
    for route in _ROUTES:
        if all(
            m.name == "severity" and m.op == "=" and m.value == severity for m in route.matchers
        ):
            return route.receiver
    return SLACK_RECEIVER


def slack_api_url_file(options: RenderOptions) -> str:
    """The path of the mounted Secret key holding the Slack webhook URL."""
    return f"{SECRETS_DIR}/{options.slack_secret}/{options.slack_secret_key}"


def alertmanager_config(options: RenderOptions) -> Data:
    """A complete plain Alertmanager configuration (``alertmanager.yml``)."""
    routes: list[Data] = []
    for route in _ROUTES:
        plain: Data = {"receiver": route.receiver, "matchers": [str(m) for m in route.matchers]}
        if route.repeat_interval:
            plain["repeat_interval"] = route.repeat_interval
        routes.append(plain)
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": SLACK_RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": _GROUP_WAIT,
            "group_interval": _GROUP_INTERVAL,
            "repeat_interval": _REPEAT_INTERVAL,
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": [str(m) for m in rule.source],
                "target_matchers": [str(m) for m in rule.target],
                "equal": list(rule.equal),
            }
            for rule in _INHIBITS
        ],
        "receivers": [
            {
                "name": SLACK_RECEIVER,
                "slack_configs": [
                    {
                        "api_url_file": slack_api_url_file(options),
                        "channel": options.slack_channel,
                        "send_resolved": True,
                        "title": _TITLE,
                        "text": _TEXT,
                    }
                ],
            },
            {"name": INFO_RECEIVER},
        ],
    }


def alertmanager_config_spec(options: RenderOptions) -> Data:
    """The same routing as the ``spec`` of an ``AlertmanagerConfig`` resource."""
    routes: list[Data] = []
    for route in _ROUTES:
        crd: Data = {
            "receiver": route.receiver,
            "matchers": [m.as_crd() for m in route.matchers],
        }
        if route.repeat_interval:
            crd["repeatInterval"] = route.repeat_interval
        routes.append(crd)
    return {
        "route": {
            "receiver": SLACK_RECEIVER,
            "groupBy": list(GROUP_BY),
            "groupWait": _GROUP_WAIT,
            "groupInterval": _GROUP_INTERVAL,
            "repeatInterval": _REPEAT_INTERVAL,
            "routes": routes,
        },
        "inhibitRules": [
            {
                "sourceMatch": [m.as_crd() for m in rule.source],
                "targetMatch": [m.as_crd() for m in rule.target],
                "equal": list(rule.equal),
            }
            for rule in _INHIBITS
        ],
        "receivers": [
            {
                "name": SLACK_RECEIVER,
                "slackConfigs": [
                    {
                        "apiURL": {"name": options.slack_secret, "key": options.slack_secret_key},
                        "channel": options.slack_channel,
                        "sendResolved": True,
                        "title": _TITLE,
                        "text": _TEXT,
                    }
                ],
            },
            {"name": INFO_RECEIVER},
        ],
    }
