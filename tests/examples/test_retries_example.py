"""examples/retries.py: a flaky API retried with backoff, and a permanent error."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from typer.testing import CliRunner

from hydra.testing import TestEnvironment
from hydra_cli import errors
from hydra_cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retries.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_retries", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_flaky_call_is_retried_with_backoff_and_the_bad_invoice_fails_at_once() -> None:
    retries = load()
    env = TestEnvironment()
    for wf in retries.WORKFLOWS:
        env.register(wf)
    good, bad = retries.dev(env.engine)

    env.run_until_all_complete()

    done = env.execution(good)
    assert done.status == "completed"
    assert done.output == {"synced": {"job": "job-1", "synced_items": 42, "calls": 3},
                           "invoice": 2024}  # fmt: skip
    sync = done.step("sync-inventory")
    assert sync is not None and sync.attempts == 3
    # Two timeouts, then 0.5 s and 1 s of backoff before the third attempt worked.
    assert done.completed_at is not None
    assert done.completed_at - done.created_at == timedelta(milliseconds=1500)

    failed = env.execution(bad)
    assert failed.status == "failed"
    assert failed.error_type == "StepFailedError"
    invoice = failed.step("import-invoice")
    assert invoice is not None and invoice.attempts == 1  # NonRetryableError: no retries
    assert invoice.error == "InvalidInvoice: not an invoice number: 'bogus'"


def test_hydra_dev_run_exits_3_and_trace_shows_the_story(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    runner = CliRunner()
    result = runner.invoke(app, ["dev", "run", str(EXAMPLE), "--fast-forward", "--db", url])
    assert result.exit_code == errors.EXIT_NOT_COMPLETED, result.output
    out = result.stdout
    assert "1 of 2 executions did not complete" in out
    assert out.count("TimeoutError: inventory API timed out") >= 2
    assert "step import-invoice failed (attempt 1" in out
    assert "InvalidInvoice: not an invoice number: 'bogus'" in out

    failed_id = out.split("failed     sync-and-import  ")[1].split()[0]
    traced = runner.invoke(app, ["trace", failed_id, "--json", "--db", url])
    data = json.loads(traced.stdout)
    assert [(s["name"], s["status"], s["attempts"]) for s in data["steps"]] == [
        ("sync-inventory", "completed", 3),
        ("import-invoice", "failed", 1),
    ]
    assert data["steps"][1]["error"]["type"] == "InvalidInvoice"
