"""The send-to-resume latency benchmark's short form (``benchmarks/message_latency.py``).

Ten rounds on SQLite (worker threads in the benchmark process) and on PostgreSQL (a worker
process woken by LISTEN/NOTIFY, in this session's own schema) when
``HYDRA_TEST_POSTGRES_URL`` is set. What is checked is that the benchmark runs and its
results are well-formed and consistent, never how fast anything was: wall-clock figures
depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StoreURLs

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "message_latency.py"
ROUNDS = 10
MARKS = ("sent", "notified", "claim_start", "claim_end", "receive_start", "receive_end", "woke")

pytestmark = pytest.mark.slow


def run_short(backend: str, out: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            f"--backend={backend}",
            f"--rounds={ROUNDS}",
            "--warmup=2",
            "--jitter-ms=10",
            f"--out={out}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [json_file] = out.glob(f"msg-latency-*-{backend}.json")
    [md_file] = out.glob(f"msg-latency-*-{backend}.md")
    assert not list(out.glob("msg-latency-latest.json")), "a short run is not the latest"
    assert "| p50 ms | p90 ms | p99 ms |" in md_file.read_text()
    assert f"{backend}: p50 " in done.stdout
    report: dict[str, Any] = json.loads(json_file.read_text())
    return report


def check_result(result: dict[str, Any], *, notified: bool) -> None:
    summary = result["summary"]
    assert summary["rounds"] == ROUNDS
    assert 0 < summary["min_ms"] <= summary["p50_ms"] <= summary["p90_ms"]
    assert summary["p90_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    marks = result["marks_ms"]
    assert len(marks) == ROUNDS
    for m in marks:
        assert set(m) == set(MARKS)
        # Every round was traced through the worker, in the order things happen.
        order = ["claim_start", "claim_end", "receive_start", "receive_end", "woke"]
        seen = [m[k] for k in order]
        assert all(v is not None for v in seen), m
        assert seen == sorted(seen), m
        # (The worker may resume before engine.send has returned to the sender.)
        assert m["sent"] > 0
        if not notified:
            assert m["notified"] is None
    if notified:
        # The NOTIFY, once the send commits, wakes the worker's claim (a periodic poll may
        # now and then claim first, within the ~0.1 ms before it arrives).
        woken = [m for m in marks if m["notified"] is not None]
        assert len(woken) >= ROUNDS // 2, marks
    assert len(summary["stages_median_ms"]) == 7


def test_short_form_on_sqlite(tmp_path: Path) -> None:
    report = run_short("sqlite", tmp_path)
    assert report["params"]["rounds"] == ROUNDS
    assert list(report["results"]) == ["sqlite"]
    result = report["results"]["sqlite"]
    assert result["worker"] == "same process (threads)"
    check_result(result, notified=False)


def test_short_form_on_postgres(tmp_path: Path, store_urls: StoreURLs) -> None:
    url = store_urls.url("postgres")  # skips without HYDRA_TEST_POSTGRES_URL
    report = run_short("postgres", tmp_path, f"--pg-url={url}")
    result = report["results"]["postgres"]
    assert result["worker"].startswith("another process")
    assert result["wake_up"] == "LISTEN/NOTIFY"
    check_result(result, notified=True)
