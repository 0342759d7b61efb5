"""examples/grafana/hydra-dashboard.json: a dashboard Grafana imports, whose every query
names only metrics and labels hydra exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import hydra

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "hydra-dashboard.json"
EXPORTED = hydra.Metrics().names()
LABELS = hydra.Metrics.LABELS | {"le"}


def load() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    out = [
        (f"panel {p['title']!r} target {t['refId']}", t["expr"])
        for p in board["panels"]
        for t in p["targets"]
    ]
    out += [
        (f"variable {v['name']}", v["definition"])
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]
    return out


def test_the_dashboard_is_importable_json() -> None:
    board = load()
    for key in ("title", "uid", "panels", "templating", "time", "annotations"):
        assert key in board, f"missing top-level {key!r}"
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 30
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in ("timeseries", "stat", "gauge", "row")
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


def test_it_has_the_panels_the_issue_asks_for() -> None:
    titles = " | ".join(p["title"].lower() for p in load()["panels"])
    for topic in (
        "throughput",
        "duration",
        "queue time",
        "cache hit rate",
        "utilisation",
        "takeover",
    ):
        assert topic in titles, f"no panel about {topic}: {titles}"


@pytest.mark.parametrize(("where", "expr"), queries(load()))
def test_every_query_uses_only_exported_metrics_and_labels(where: str, expr: str) -> None:
    names = set(re.findall(r"\bhydra_[a-z_]+\b", expr))
    assert names, f"{where} names no hydra metric: {expr}"
    assert names <= EXPORTED, f"{where} uses metrics hydra does not export: {names - EXPORTED}"
    matchers = [m for block in re.findall(r"\{([^}]*)\}", expr) for m in block.split(",")]
    used = {m.split("=")[0].strip(" !~") for m in matchers if m.strip()}
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        used |= {label.strip() for label in group.split(",") if label.strip()}
    if expr.startswith("label_values("):
        used.add(expr.rstrip(")").split(",")[-1].strip())
    assert used <= LABELS, f"{where} uses labels hydra does not export: {used - LABELS}"


@pytest.mark.parametrize(("where", "expr"), queries(load()))
def test_every_query_is_well_formed(where: str, expr: str) -> None:
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for char in expr:
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, f"{where}: unbalanced {char!r}: {expr}"
    assert set(depth.values()) == {0}, f"{where}: unbalanced brackets: {expr}"
    # rate() and increase() take a range vector; histogram_quantile buckets are summed by le.
    for fn, arg in re.findall(r"\b(rate|increase)\(([^()]*)\)", expr):
        assert re.fullmatch(r"hydra_[a-z_]+\{[^}]*\}\[\$__rate_interval\]", arg), (
            f"{where}: {fn}() of {arg!r}"
        )
        counter = arg.split("{")[0].endswith(("_total", "_bucket", "_sum", "_count"))
        assert counter, f"{where}: {fn}() of a gauge: {arg}"
    if "histogram_quantile" in expr:
        assert "_bucket" in expr and re.search(r"by \(le\b", expr), f"{where}: {expr}"
