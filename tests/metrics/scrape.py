"""Reading metrics the way Prometheus does: from the exposition text, and the few PromQL
operations the Go README's example queries use (``rate``, ``/`` with one-to-one matching
on identical label sets)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
#: one instant vector: label set -> value, for one metric name
Vector = dict[Labels, float]
#: a whole scrape: series name -> vector
Scrape = dict[str, Vector]


def parse(text: str) -> Scrape:
    scrape: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return scrape


def scrape(registry: CollectorRegistry) -> Scrape:
    """What Prometheus would read from ``/metrics`` for this registry."""
    return parse(generate_latest(registry).decode())


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


def value(s: Scrape, name: str, **pairs: str) -> float | None:
    """One series' value, None if it does not exist."""
    return s.get(name, {}).get(labels(**pairs))


def values(s: Scrape, name: str, *keys: str, **where: str) -> dict[tuple[str, ...], float]:
    """``name``'s series matching ``where``, keyed by the ``keys`` labels' values."""
    out: dict[tuple[str, ...], float] = {}
    for labelset, v in s.get(name, {}).items():
        d = dict(labelset)
        if all(d.get(k) == w for k, w in where.items()):
            out[tuple(d[k] for k in keys)] = v
    return out


def rate(before: Scrape, after: Scrape, name: str, seconds: float) -> Vector:
    """``rate(name[window])`` for counters that did not reset: the increase per second of
    every series present in ``after`` (a series new since ``before`` started at 0)."""
    old = before.get(name, {})
    return {ls: (v - old.get(ls, 0.0)) / seconds for ls, v in after.get(name, {}).items()}


def divide(a: Mapping[Labels, float], b: Mapping[Labels, float]) -> Vector:
    """PromQL ``a / b``: one-to-one matching on identical label sets; x/0 is NaN or Inf."""
    out: Vector = {}
    for ls, x in a.items():
        if ls in b:
            y = b[ls]
            out[ls] = x / y if y else (math.nan if x == 0 else math.copysign(math.inf, x))
    return out
