"""benchmarks/replay_check_scale.py in its short form: the output's shape only (no timing
is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "replay_check_scale.py"


def test_the_short_form_reports_each_backend(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["--executions", "200", "--backends", "sqlite", "--out", str(out)]
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert json.loads(out.read_text()) == document
    (run,) = document["runs"]
    assert (run["backend"], run["executions"], run["checkpoints_each"]) == ("sqlite", 200, 5)
    assert run["check_seconds"] > 0 and run["executions_per_second"] > 0
