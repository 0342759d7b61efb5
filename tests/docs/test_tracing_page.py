"""docs/tracing.md: its example prints what the page says it prints, and the attributes
and events it lists are the ones ``hydra.otel`` sets."""

from __future__ import annotations

import re
import sys
import types

import pytest

import hydra.otel
from tests.docs import pages


def test_the_example_prints_what_the_page_shows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = pages.text("tracing.md")
    (block,) = pages.blocks(text)
    module = types.ModuleType("docs_tracing")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block, "docs/tracing.md", "exec"), module.__dict__)
    printed = capsys.readouterr().out
    shown = text.split("It prints:\n\n```text\n", 1)[1].split("```", 1)[0]
    assert printed == shown
    module.provider.shutdown()


def test_the_attributes_and_events_listed_are_hydra_otel_s() -> None:
    section = pages.section("tracing.md", "What you get")
    listed = set(re.findall(r"`(hydra\.[a-z_.]+)`", section))
    source = pages.REPO.joinpath("hydra", "otel.py").read_text()
    set_by_otel = set(re.findall(r'"(hydra\.[a-z_.]+)"', source)) - {hydra.otel.SCOPE}
    assert listed - {"hydra.gather"} == set_by_otel
