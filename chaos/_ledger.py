"""Counters of every replica incarnation, scraped often, so a killed one still counts.

A replica's counters and histograms start at 0 in every process; a SIGKILLed process
takes its last values with it. The ledger scrapes each live incarnation's ``/metrics``
every half second (and once more right before the harness stops it on purpose) and keeps
its last values: an event counted anywhere, ever, in the run is the sum over
incarnations. Gauges are read from live incarnations only.

Example::

    ledger = Ledger()
    ledger.add("r0#1", 9102)
    await ledger.scrape_all()
    ends = ledger.total("nova_streaming_stream_duration_seconds_count")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def parse(text: str) -> Samples:
    """Exposition text as ``{(sample name, sorted labels): value}``."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def select(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set((labels or {}).items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


@dataclass
class Incarnation:
    """One process of one replica slot and its last scraped samples."""

    key: str
    metrics_port: int
    live: bool = True
    samples: Samples = field(default_factory=dict)
    scrapes: int = 0


class Ledger:
    """Last scraped samples of every incarnation of the run."""

    def __init__(self) -> None:
        self.incarnations: dict[str, Incarnation] = {}
        self._client = httpx.AsyncClient(timeout=5)
        self._task: asyncio.Task[None] | None = None

    def add(self, key: str, metrics_port: int) -> None:
        """Track a new incarnation (a process just started)."""
        self.incarnations[key] = Incarnation(key, metrics_port)

    def retire(self, key: str) -> None:
        """The incarnation's process is gone: keep its last samples, stop scraping it."""
        if key in self.incarnations:
            self.incarnations[key].live = False

    async def scrape(self, key: str) -> bool:
        """Scrape one incarnation now; False when it did not answer."""
        inc = self.incarnations[key]
        try:
            response = await self._client.get(f"http://127.0.0.1:{inc.metrics_port}/metrics")
            response.raise_for_status()
        except httpx.HTTPError:
            return False
        inc.samples = parse(response.text)
        inc.scrapes += 1
        return True

    async def scrape_all(self) -> None:
        """Scrape every live incarnation (concurrently)."""
        live = [k for k, inc in self.incarnations.items() if inc.live]
        await asyncio.gather(*(self.scrape(k) for k in live))

    def total(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """A counter or histogram sample summed over every incarnation of the run."""
        return sum(select(inc.samples, name, labels) for inc in self.incarnations.values())

    def live_sum(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """A gauge summed over the live incarnations."""
        return sum(
            select(inc.samples, name, labels) for inc in self.incarnations.values() if inc.live
        )

    def per_live(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, float]:
        """A gauge per live incarnation."""
        return {
            k: select(inc.samples, name, labels) for k, inc in self.incarnations.items() if inc.live
        }

    async def _loop(self, interval: float) -> None:
        while True:
            await self.scrape_all()
            await asyncio.sleep(interval)

    def start(self, interval: float = 0.5) -> None:
        """Scrape every live incarnation every ``interval`` seconds in the background."""
        self._task = asyncio.create_task(self._loop(interval))

    async def close(self) -> None:
        """Stop the background scrapes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()
