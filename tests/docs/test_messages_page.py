"""docs/messages.md: its Python blocks run in order, as one module (each continues the
ones above it), and print what their comments say; the StuckExecutionError shown is the
one the testing block gets; the metrics and observer events named are hydra's own."""

from __future__ import annotations

import re
import types

import prometheus_client
import pytest

import hydra
from hydra.events import EVENTS
from tests.docs import pages

PAGE = "messages.md"
SHOWN_OUTPUT = pages.SHOWN_OUTPUT


def run_blocks(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return pages.run_blocks(PAGE, monkeypatch)


def test_the_blocks_run_and_print_what_their_comments_say(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = pages.blocks(pages.text(PAGE))
    assert len(blocks) == 4
    run_blocks(monkeypatch)
    printed = capsys.readouterr().out.splitlines()
    # The testing block prints the StuckExecutionError line, compared with the page below.
    shown = SHOWN_OUTPUT.findall("\n".join(blocks))
    stuck = [line for line in printed if "that nobody has sent" in line]
    assert [line for line in printed if line not in stuck] == shown
    assert len(stuck) == 1


def test_the_stuck_execution_shown_is_the_one_the_example_gets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_blocks(monkeypatch)
    (stuck,) = [line for line in capsys.readouterr().out.splitlines() if "nobody" in line]
    (shown,) = pages.blocks(pages.section(PAGE, "Testing"), "text")
    assert stuck == shown.strip()  # the environment's seed fixes the execution ids
    assert "waits for a message on 'go'" in stuck


def test_the_examples_state_what_the_library_does(monkeypatch: pytest.MonkeyPatch) -> None:
    module = run_blocks(monkeypatch)
    engine: hydra.Engine = module.engine
    # The approval of exp-1: one message stored for the two sends, received by receive-1.
    first = engine.list_executions(workflow_name="approval", limit=10)[-1]
    assert first.input == "exp-1"
    (message,) = engine.list_messages(first.id)
    assert (message.topic, message.idempotency_key, message.sender_id) == (
        "decision",
        "slack-991",
        None,
    )
    steps = engine.get_execution(first.id).steps
    assert [(s.name, s.kind) for s in steps] == [
        ("ask-manager", "step"),
        ("event-1", "event"),
        ("receive-1", "receive"),
        ("pay-out", "step"),
        ("event-2", "event"),
    ]
    assert message.received_by == "receive-1"
    assert steps[2].detail == {
        "topic": "decision",
        "deadline": steps[2].detail["deadline"],
        "message": message.id,
    }
    assert steps[2].output == {"approved": True, "by": "grace", "note": None}
    # The page's crash exploration passed every case (it raises otherwise).
    assert module.report.ok and len(module.report.cases) == 1 + 5 * 3


def test_a_message_to_a_finished_execution_is_refused_as_the_page_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = run_blocks(monkeypatch)
    engine: hydra.Engine = module.engine
    done = engine.list_executions(workflow_name="approval", limit=1)[0]
    with pytest.raises(hydra.ExecutionFinishedError):
        engine.send(done.id, "decision", module.Decision(True, "grace"))
    assert "ExecutionFinishedError" in pages.section(PAGE, "What is guaranteed")


def test_the_metrics_listed_are_hydra_s_own() -> None:
    table = pages.section(PAGE, "Metrics and observers")
    listed = re.findall(r"^\| `(hydra_\w+)` \| (\w+) \| ([\w, ]+) \|", table, flags=re.M)
    assert [name for name, _, _ in listed] == [
        "hydra_messages_sent_total",
        "hydra_messages_received_total",
        "hydra_message_wait_seconds",
        "hydra_receive_timeouts_total",
    ]
    registry = hydra.Metrics(registry=prometheus_client.CollectorRegistry()).registry
    families = {family.name: family for family in registry.collect()}
    listed_in_metrics_page = re.findall(
        r"^\| `(hydra_\w+)` \| \w+ \| ([\w, ]+) \|", pages.text("metrics.md"), flags=re.M
    )
    for name, kind, labels in listed:
        assert families[name.removesuffix("_total")].type == kind, name
        assert (name, labels) in listed_in_metrics_page, name


def test_the_observer_events_named_are_the_observer_s() -> None:
    section = pages.section(PAGE, "Metrics and observers")
    named = re.findall(r"`(\w+)`", section.split("is told", 1)[1])
    assert named == ["waiting", "received", "wait_timed_out", "message_sent"]
    assert set(named) <= set(EVENTS)
