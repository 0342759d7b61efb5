"""The claim-at-scale benchmark's short form (``benchmarks/claim_scale.py``).

One round on SQLite with a small load (a few thousand finished, waiting and unregistered
rows), every mode: claim latency, the drains (plain and through the limited queue), the
claim's plans and the purge with claims running beside it. What is checked is that the
benchmark runs and its report has the expected structure and consistent counts, never
how fast anything was: wall-clock figures depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "claim_scale.py"
FINISHED = 3000
DRAIN = 40

pytestmark = pytest.mark.slow


def run_short(out: Path) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--backend=sqlite",
            "--quick",
            f"--finished={FINISHED}",
            "--waiting=1000",
            "--unregistered=500",
            "--claims=60",
            f"--drain={DRAIN}",
            "--purge-cap=60",
            "--quiet=0.5",
            "--batch=100",  # 30 batches: the claimer claims during the purge
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    [json_file] = out.glob("claim-scale-*-sqlite-quick*.json")
    assert not list(out.glob("claim-scale-latest.json")), "a short run is not the latest"
    [md_file] = out.glob("claim-scale-*-sqlite-quick*.md")
    md = md_file.read_text()
    assert "| backend | claim p50 empty / loaded (ms)" in md
    assert "| backend | purged (of) |" in md
    report: dict[str, Any] = json.loads(json_file.read_text())
    return report, done.stdout


def test_short_form_on_sqlite(tmp_path: Path) -> None:
    report, stdout = run_short(tmp_path)
    assert report["params"]["finished"] == FINISHED
    assert list(report["results"]) == ["sqlite"]
    result = report["results"]["sqlite"]
    for state in ("empty", "loaded"):
        summary = result[state]
        assert summary["rounds"] == 1
        for series in ("claim1", "plain", "claim3"):
            assert 0 < summary[f"{series}_p50_ms"] <= summary[f"{series}_p95_ms"]
        [raw] = result["raw"][state]
        for drain in ("drain", "qdrain"):
            assert raw[drain]["workflows"] == DRAIN
            assert summary[f"{drain}_per_s"] > 0
    # The plans: the drained workflow's claim reads its 5 lanes (first starts and resumes
    # of default, two of the limited queue, the running one), seen by the claim before,
    # in one statement: a probe after each and from the start, and one for the earliest
    # wake of the resumes (their first entry, a wait with no deadline, has none). It
    # picks only in the lane with a due row, the first starts: the resumes and the
    # queue's lanes wake tomorrow.
    plans = report["plans"]["sqlite"]
    assert set(plans) == {"drained workflow", "plain workflow", "3 names"}
    drained = [p["statement"] for p in plans["drained workflow"]]
    assert [s for s in drained if s.startswith(("lane chain", "NEXT_LANE"))] == [
        "lane chain of 6+1 probes (bench-one)"
    ], drained
    picks = [s for s in drained if s.startswith("pick of lane")]
    assert len(picks) == 1, drained
    assert all("ix_workflow_executions_due" in p["plan"] for p in plans["drained workflow"])
    # The purge deleted every finished row of the load (and their steps), while the
    # claimer claimed what it inserted, before and during it.
    purge = report["purge"]["sqlite"]
    assert purge["complete"] and purge["left"] == 0
    assert purge["deleted"] == purge["finished_before"] >= FINISHED
    assert purge["steps_before"] - purge["steps_after"] >= FINISHED
    for phase in ("claims_quiet", "claims_purge"):
        claims = purge[phase]
        assert claims["claims"] > 0 and claims["found_none"] == 0
        assert claims["p50_ms"] <= claims["p99_ms"] <= claims["max_ms"]
    assert "sqlite purge: " in stdout
