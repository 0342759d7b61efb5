"""docs/cli.md, the CLI's page: its commands exist and its examples work as shown."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from hydra_cli.loader import load_worker

from .helpers import REPO, hydra_cli, sqlite_url

SECTION = (REPO / "docs" / "cli.md").read_text()


def block(lang: str, containing: str) -> str:
    found: list[str] = [
        b for b in re.findall(rf"```{lang}\n(.*?)```", SECTION, flags=re.S) if containing in b
    ]
    assert len(found) == 1, containing
    return found[0]


def test_the_readme_links_the_page() -> None:
    assert "(docs/cli.md)" in (REPO / "README.md").read_text()


def test_every_command_listed_exists() -> None:
    for line in block("bash", "hydra dev run").splitlines():
        words = shlex.split(line.split("  #")[0])
        assert words[0] == "hydra"
        command = [w for w in words[1:3] if not w.startswith("-") and w.islower() and "." not in w]
        result = hydra_cli(*command, "--help")
        assert result.exit_code == 0, (line, result.output)


def test_the_dev_hook_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.py").write_text(block("python", "def dev(engine"))
    result = hydra_cli("dev", "run", "flow.py")
    assert result.exit_code == 0, result.output
    assert "all 2 executions completed" in result.stdout
    assert '→ "hello grace"' in result.stdout
    one = hydra_cli("dev", "run", "flow.py", "--start", "greet", "--input", '"ada"')
    assert one.exit_code == 0, one.output
    assert "the execution completed" in one.stdout


def test_the_worker_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text(
        "import hydra\n\nclass OrderWorkflow(hydra.Workflow[str]):\n    name = 'order'\n"
    )
    (package / "workers.py").write_text(block("python", "def make_worker"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("myapp", "myapp.orders", "myapp.workers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path / "prod.db"))
    worker = load_worker("myapp.workers:make_worker")
    try:
        assert worker.workflow_names == ["order"]
        assert worker.engine.namespace == "production"
    finally:
        worker.engine.store.close()


def test_the_attempts_example_is_what_trace_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's trace excerpt of examples/retries.py, timings aside, is the real one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    shown = block("text", "attempt 1     failed")
    run = hydra_cli("dev", "run", str(REPO / "examples" / "retries.py"), "--fast-forward")
    (eid,) = re.findall(r"completed +sync-and-import +([0-9a-f-]{36})", run.stdout)
    traced = hydra_cli("trace", eid)
    assert traced.exit_code == 0, traced.output

    def shape(text: str) -> list[str]:
        # what does not depend on timing: marks, names, statuses, tries, outputs, errors
        lines = [re.sub(r"[+]?\d[\d.]* m?s|[█─]", "", line) for line in text.splitlines()]
        # code positions: the example's path as the page shows it, not this checkout's
        lines = [re.sub(r"^(\s*at )\S*/(examples/)", r"\1\2", line) for line in lines]
        return [" ".join(line.split()) for line in lines if line.strip()]

    steps = traced.stdout[traced.stdout.index("    step ") :]
    assert shape(shown) == shape(steps)
