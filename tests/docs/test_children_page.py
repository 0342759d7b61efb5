"""docs/children.md: its Python blocks run in order, as one module (each continues the
ones above it), and print what their comments say; what the page states about children
and ``hydra.gather`` is what the library does."""

from __future__ import annotations

import inspect
import re
import types
from typing import Any

import pytest

import hydra
from hydra.children import child_id
from hydra.testing import TestEnvironment
from tests.docs import pages

PAGE = "children.md"
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
    assert printed == SHOWN_OUTPUT.findall("\n".join(blocks))


def test_the_split_order_is_what_the_page_says(monkeypatch: pytest.MonkeyPatch) -> None:
    module = run_blocks(monkeypatch)
    engine: hydra.Engine = module.engine
    (order,) = engine.list_executions(workflow_name="split-order")
    parent = engine.get_execution(order.id)
    listed = engine.list_executions(parent_id=order.id)
    children = {c.id: engine.get_execution(c.id) for c in listed}
    for name, warehouse in (("ship-berlin", "berlin"), ("ship-lyon", "lyon")):
        start = parent.step(name)
        assert start is not None and start.kind == "child"
        assert start.detail == {"child": child_id(order.id, name), "workflow": "ship-part"}
        child = children[start.detail["child"]]  # the id derived from parent and name
        assert (child.input, child.parent_id, child.trigger_type) == (warehouse, order.id, "child")
    wait = parent.step("wait-ship-lyon")
    assert wait is not None and wait.kind == "child_wait"
    # The page's crash exploration passed every case (it raises otherwise): five crash
    # points (two starts, two waits, the refund) in three phases, and the clean run.
    assert module.report.ok and len(module.report.cases) == 1 + 5 * 3


def test_the_gather_s_steps_are_ordinary_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    module = run_blocks(monkeypatch)
    engine: hydra.Engine = module.engine
    (run,) = engine.list_executions(workflow_name="thumbnails")
    steps = engine.get_execution(run.id).steps
    assert [(s.kind, s.attempts, s.output) for s in steps] == [
        ("step", 1, "a-128.png"), ("step", 1, "b-128.png"), ("step", 1, "c-128.png"),
    ]  # fmt: skip


def test_the_signatures_shown_are_the_real_ones() -> None:
    text = " ".join(pages.text(PAGE).split())
    for function in (hydra.start_child, hydra.wait_child, hydra.call_child, hydra.gather):
        shown = re.search(rf"`hydra\.{function.__name__}\((ctx, [^`]*)\)", text)
        assert shown is not None, function.__name__
        params = inspect.signature(function).parameters
        listed = [p.strip().split("=")[0].lstrip("*") for p in shown.group(1).split(",")]
        assert [p for p in listed if p] == [p for p in params], function.__name__


def test_the_start_options_are_start_workflow_s_but_the_idempotency_key() -> None:
    options = set(inspect.signature(hydra.Engine.start_workflow).parameters)
    section = pages.section(PAGE, "The calls")
    listed = set(re.findall(r"`(\w+)`", section.split("are `engine.start_workflow`'s", 1)[1])[:7])
    assert listed == options - {"self", "name", "payload", "idempotency_key"}

    @hydra.workflow("keyed-parent")
    def keyed(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.start_child(ctx, "k", "ship-part", "berlin", idempotency_key="x")

    env = TestEnvironment()
    env.register(keyed)
    failed = env.run_until_complete(env.start(keyed, None, max_attempts=1))
    assert (failed.status, failed.error_type) == ("failed", "TypeError")
    assert "TypeError" in section


def test_hydra_s_own_topics_are_refused_as_the_page_says() -> None:
    @hydra.workflow("listener")
    def listener(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.receive(ctx, "go")

    env = TestEnvironment()
    env.register(listener)
    eid = env.start(listener, None)
    with pytest.raises(hydra.InvalidNameError):
        env.engine.send(eid, "hydra.mine", 1)
    assert "`InvalidNameError`" in pages.section(PAGE, "What is guaranteed")
