"""docs/logging.md: its example runs and logs what the page says, once; the log line it
shows has the format ``hydra worker`` uses."""

from __future__ import annotations

import logging
import re
import sys
import types

import pytest

from hydra.logs import CONTEXT_FORMAT, ContextFormatter
from tests.docs import pages


def test_the_replay_aware_logger_example_logs_its_line_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (block,) = pages.blocks(pages.text("logging.md"))
    module = types.ModuleType("docs_logging")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    caplog.set_level(logging.INFO, logger="hydra")
    exec(compile(block, "docs/logging.md", "exec"), module.__dict__)
    assert capsys.readouterr().out == "hello ada\n"
    greetings = [r for r in caplog.records if r.getMessage() == "greeting ada"]
    assert len(greetings) == 1  # two runs (before and after the sleep), one line
    assert greetings[0].name == "hydra.workflow"


def test_the_worker_line_shown_has_the_worker_s_format() -> None:
    (shown,) = pages.blocks(pages.text("logging.md"), "text")
    record = logging.LogRecord(
        "hydra.workflow", logging.INFO, __file__, 1, "greeting ada", None, None
    )
    record.execution_id = "6d1ab0a2-f24e-4063-8539-3fa088835915"
    record.workflow_name = "greet"
    formatted = ContextFormatter().format(record)
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert re.sub(pattern, "", formatted) == re.sub(pattern, "", shown.strip())
    assert "%(context)s" in CONTEXT_FORMAT
