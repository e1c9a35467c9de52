"""The HTTP contract of /metrics and /healthz, run against both front ends on real sockets:
the threaded server and the ASGI app served by uvicorn."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from streaming_metrics import definitions as d

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TOKEN = "s3cret-Token_value"


def families(body: bytes) -> dict[str, Any]:
    """Parse a Prometheus text page into {family name: family}.

    The text format carries a counter's or histogram's `_created` samples as a gauge
    family of their own; they are folded away here as part of their family.
    """
    parsed = {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}
    return {
        name: f
        for name, f in parsed.items()
        if not (name.endswith("_created") and name.removesuffix("_created") in parsed)
    }


def sample_value(fams: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The value of one sample of a parsed page."""
    for s in fams[family].samples:
        if s.name == sample and s.labels == labels:
            return float(s.value)
    raise AssertionError(f"no sample {sample}{labels} in {family}")


def test_default_text_format(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """Without an Accept header /metrics is Prometheus text 0.0.4 that parses back."""
    reply = fetch(serve(registry), "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert reply.headers.get("Content-Encoding") is None
    fams = families(reply.body)
    assert sample_value(fams, "demo_temperature_celsius", "demo_temperature_celsius") == 21.5
    assert sample_value(fams, "demo_requests", "demo_requests_total", path="/a") == 3
    assert sample_value(fams, "demo_latency_seconds", "demo_latency_seconds_count") == 1
    assert registry.get_sample_value("demo_requests_total", {"path": "/a"}) == 3


def test_openmetrics_by_accept(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """An OpenMetrics Accept header gets OpenMetrics 1.0.0, terminated by # EOF."""
    reply = fetch(serve(registry), "/metrics", headers={"Accept": OPENMETRICS})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = reply.body.decode("utf-8")
    assert text.endswith("# EOF\n")
    fams = {f.name: f for f in om_parse(text)}
    assert fams["demo_requests"].type == "counter"
    assert fams[d.VIEWERS_TOTAL.name].type == "histogram"


def test_prometheus_scrape_accept(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """Prometheus' own negotiated Accept header (OpenMetrics preferred) is honoured."""
    accept = (
        "application/openmetrics-text;version=1.0.0;q=0.5,"
        "application/openmetrics-text;version=0.0.1;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )
    reply = fetch(serve(registry), "/metrics", headers={"Accept": accept})
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")


def test_malformed_accept_version_falls_back(
    serve: Any, fetch: Any, registry: CollectorRegistry
) -> None:
    """A non-numeric version in Accept (which makes choose_encoder raise) gets text 0.0.4."""
    endpoint = serve(registry)
    reply = fetch(
        endpoint, "/metrics", headers={"Accept": "application/openmetrics-text; version=x.y"}
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "demo_requests" in families(reply.body)
    assert fetch(endpoint, "/healthz").status == 200


def test_gzip_by_accept_encoding(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """Accept-Encoding: gzip gets a gzip body that decompresses to the same page."""
    endpoint = serve(registry)
    plain = fetch(endpoint, "/metrics")
    zipped = fetch(endpoint, "/metrics", headers={"Accept-Encoding": "deflate, gzip;q=0.8"})
    assert zipped.status == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) == len(zipped.body)
    unzipped = gzip.decompress(zipped.body)
    assert families(unzipped).keys() == families(plain.body).keys()
    assert sample_value(families(unzipped), "demo_requests", "demo_requests_total", path="/a") == 3


def test_gzip_refused_with_q0(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """gzip;q=0 means the client refuses gzip: the body is plain."""
    reply = fetch(serve(registry), "/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert reply.headers.get("Content-Encoding") is None
    assert "demo_requests" in families(reply.body)


def test_gzip_openmetrics(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """Negotiation of format and compression combine: gzipped OpenMetrics."""
    headers = {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"}
    reply = fetch(serve(registry), "/metrics", headers=headers)
    assert reply.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(reply.body).decode("utf-8").endswith("# EOF\n")


def test_name_filter_families(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """name[] with family names returns exactly those families, whole (every bucket)."""
    query = f"name[]=demo_temperature_celsius&name[]={d.VIEWERS_TOTAL.name}"
    reply = fetch(serve(registry), "/metrics?" + query)
    assert reply.status == 200
    fams = families(reply.body)
    assert set(fams) == {"demo_temperature_celsius", d.VIEWERS_TOTAL.name}
    buckets = [s for s in fams[d.VIEWERS_TOTAL.name].samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(d.VIEWERS_TOTAL.buckets) + 1  # plus +Inf
    assert (
        sample_value(fams, d.VIEWERS_TOTAL.name, d.VIEWERS_TOTAL.name + "_count", region="eu") == 1
    )


def test_name_filter_sample_names(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """name[] with a sample name (client_python's semantics) returns only those samples."""
    reply = fetch(serve(registry), "/metrics?name[]=demo_requests_total&name[]=no_such_metric")
    fams = families(reply.body)
    assert set(fams) == {"demo_requests"}
    assert [s.name for s in fams["demo_requests"].samples] == ["demo_requests_total"]


def test_name_filter_percent_encoded(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """A percent-encoded name%5B%5D (what HTTP clients send) filters too."""
    reply = fetch(serve(registry), "/metrics?name%5B%5D=demo_latency_seconds")
    assert set(families(reply.body)) == {"demo_latency_seconds"}


def test_too_many_name_filters(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """More name[] filters than the limit is a 400, and the server keeps serving."""
    endpoint = serve(registry)
    query = "&".join(f"name[]=m{i}" for i in range(300))
    reply = fetch(endpoint, "/metrics?" + query)
    assert reply.status == 400
    assert b"name[]" in reply.body
    assert fetch(endpoint, "/metrics").status == 200


def test_head_metrics(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """HEAD /metrics has GET's status and headers and no body."""
    endpoint = serve(registry)
    get = fetch(endpoint, "/metrics")
    head = fetch(endpoint, "/metrics", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert int(head.headers["Content-Length"]) == len(get.body)


def test_healthz(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """/healthz answers 200 ok."""
    reply = fetch(serve(registry), "/healthz")
    assert reply.status == 200
    assert reply.body == b"ok"
    assert reply.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/", "/healthz/x", "/favicon.ico"])
def test_unknown_path_404(serve: Any, fetch: Any, registry: CollectorRegistry, path: str) -> None:
    """Any path but /metrics and /healthz is 404."""
    assert fetch(serve(registry), path).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_405(
    serve: Any, fetch: Any, registry: CollectorRegistry, method: str
) -> None:
    """Methods other than GET and HEAD get 405 with Allow on both paths."""
    endpoint = serve(registry)
    for path in ("/metrics", "/healthz"):
        reply = fetch(endpoint, path, method=method)
        assert reply.status == 405, (method, path)
        assert reply.headers["Allow"] == "GET, HEAD"


def test_token_missing(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """With a token, /metrics without Authorization is 401 with a Bearer challenge."""
    reply = fetch(serve(registry, token=TOKEN), "/metrics")
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer ")
    assert b"demo_requests" not in reply.body


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer",
        "Bearer \xe9\xe9",
    ],
)
def test_token_wrong(
    serve: Any, fetch: Any, registry: CollectorRegistry, authorization: str
) -> None:
    """A wrong token or scheme is 401 invalid_token, and the server keeps serving."""
    endpoint = serve(registry, token=TOKEN)
    reply = fetch(endpoint, "/metrics", headers={"Authorization": authorization})
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]
    assert b"demo_requests" not in reply.body
    assert fetch(endpoint, "/healthz").status == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_token_right(serve: Any, fetch: Any, registry: CollectorRegistry, scheme: str) -> None:
    """The right bearer token (scheme case-insensitive) gets the metrics."""
    endpoint = serve(registry, token=TOKEN)
    reply = fetch(endpoint, "/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert reply.status == 200
    assert "demo_requests" in families(reply.body)


def test_token_healthz_open(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """/healthz needs no token even when /metrics does."""
    assert fetch(serve(registry, token=TOKEN), "/healthz").status == 200


def test_collector_failure_is_500(serve: Any, fetch: Any, registry: CollectorRegistry) -> None:
    """A collector that raises gives a 500, not a dead server."""

    class Broken:
        def collect(self) -> list[Any]:
            raise RuntimeError("boom")

    registry.register(Broken())
    endpoint = serve(registry)
    assert fetch(endpoint, "/metrics").status == 500
    assert fetch(endpoint, "/healthz").status == 200
