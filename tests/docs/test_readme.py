"""The README's Python examples run as shown."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra.testing.memory import MemoryStore

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    head = README.read_text().splitlines()[:5]
    assert "./scripts/demo.sh" in "\n".join(head)
    assert "./scripts/test.sh" in "\n".join(head)


def test_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    quick_start = python_blocks()[0]
    assert "class Onboarding" in quick_start
    # A real module, so dataclasses can find the module their class is defined in.
    module = types.ModuleType("readme_quick_start")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(quick_start, "README.md", "exec"), module.__dict__)
    assert module.execution.status == "completed"
    assert (tmp_path / ".hydra" / "quickstart.db").exists()


def test_async_example_runs() -> None:
    block = next(b for b in python_blocks() if "resize-image" in b)
    namespace: dict[str, Any] = {"hydra": hydra, "timedelta": __import__("datetime").timedelta}
    exec(compile(block, "README.md", "exec"), namespace)
    engine = hydra.Engine(MemoryStore())
    with hydra.Worker(engine, poll_interval=0.01) as worker:
        worker.register(namespace["resize"])
        ex = engine.wait(engine.start_workflow("resize-image", "cat.png"), timeout=30)
    assert (ex.status, ex.output) == ("completed", "<PIXELS OF CAT.PNG>")
