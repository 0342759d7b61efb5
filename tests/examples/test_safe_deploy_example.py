"""examples/safe_deploy.py: the check before a deploy finds the naive change and passes
the patched one; after the deploy, old orders keep the old path and new ones the new."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from hydra.testing import ReplayReport

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "safe_deploy.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_safe_deploy", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_check_finds_the_naive_change_and_passes_the_patched_one() -> None:
    found = load().story()
    naive, patched = found["naive"], found["patched"]
    assert isinstance(naive, ReplayReport) and isinstance(patched, ReplayReport)
    assert (naive.checked, len(naive.violations), naive.ok) == (2, 2, False)
    for violation in naive.violations:
        assert "the history has sleep 'cooling-off'" in violation.message
        assert "the code did step 'fraud-check'" in violation.message
    assert (patched.checked, patched.ok) == (2, True)


def test_after_the_deploy_old_orders_skip_the_fraud_check_and_new_ones_get_it() -> None:
    found = load().story()
    steps = found["steps"]
    assert isinstance(steps, dict) and isinstance(found["old"], list)
    for eid in found["old"]:
        assert steps[eid] == ["charge", "cooling-off", "patch:fraud-check", "ship"]
    assert steps[found["new"]] == [
        "charge",
        "fraud-check",
        "patch:fraud-check",
        "cooling-off",
        "ship",
    ]


def test_it_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=True
    )
    assert "2 executions checked, 2 violations" in done.stdout
    assert "2 executions checked, 0 violations" in done.stdout
