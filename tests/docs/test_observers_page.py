"""docs/observers.md: its example observer reports the failed execution, and only it;
its table lists every event ``hydra.Observer`` has."""

from __future__ import annotations

import re
import sys
import types

import pytest

from hydra.events import EVENTS
from tests.docs import pages


def test_the_failure_alerts_example_reports_the_failed_execution_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = pages.blocks(pages.text("observers.md"))
    module = types.ModuleType("docs_observers")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block, "docs/observers.md", "exec"), module.__dict__)
    printed = capsys.readouterr().out.strip()
    assert printed == "[('charge', 'NonRetryableError: cannot charge -5')]"
    assert f"It prints `{printed}`" in pages.text("observers.md")


def test_the_events_table_lists_every_event() -> None:
    table = pages.section("observers.md", "The events")
    listed = re.findall(r"^\| `(\w+)\(", table, flags=re.M)
    assert listed and sorted(listed) == sorted(EVENTS)
