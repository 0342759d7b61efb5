"""docs/cron.md and docs/metrics.md: their Python blocks run as shown."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

import hydra
from tests.docs import pages

PAGES = {"Cron": "cron.md", "Metrics": "metrics.md"}


def blocks(title: str) -> list[str]:
    return pages.blocks(pages.text(PAGES[title]))


def run(block: str, name: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(block, name, "exec"), module.__dict__)
    return module


def test_the_cron_registration_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (production,) = [b for b in blocks("Cron") if "hydra.Worker(engine)" in b]
    module = run(production, "readme_cron", monkeypatch)
    try:
        jobs = {job.name: job for job in module.engine.list_cron_jobs()}
        assert jobs["clean-up"].spec == "*/15 * * * *"
        assert jobs["daily-report"].workflow_name == "sales-report"
        assert jobs["daily-report"].timezone == "Europe/Berlin"
        assert isinstance(module.worker, hydra.Worker)
    finally:
        module.store.close()


def test_the_cron_fake_clock_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (testing,) = [b for b in blocks("Cron") if "TestEnvironment()" in b]
    module = run(testing, "readme_cron_testing", monkeypatch)
    assert len(module.reminders) == 5


def test_the_next_slot_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = [b for b in blocks("Cron") if "list_cron_jobs()" in b]
    module = run(block, "docs_cron_next_slot", monkeypatch)
    (job,) = module.engine.list_cron_jobs()
    assert job.next_run_at is not None


def test_the_metrics_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (example,) = blocks("Metrics")
    module = run(example, "readme_metrics", monkeypatch)
    assert re.search(r"scrape http://127\.0\.0\.1:\d+/metrics", capsys.readouterr().out)
    assert module.worker.metrics_port > 0


def test_the_metrics_table_lists_exactly_what_hydra_exports() -> None:
    listed = set(re.findall(r"^\| `(hydra_[a-z_]+)` \|", pages.text("metrics.md"), flags=re.M))
    exported = hydra.Metrics().names()
    family = {
        n.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum")
        for n in exported
        if not n.endswith(("_created", "_count"))
    }
    assert {n.removesuffix("_total") for n in listed} == family
    assert listed <= exported | {n for n in listed if n.endswith("_seconds")}
