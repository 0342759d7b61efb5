"""docs/queues.md: its Python blocks run in order, as one module (each continues the
ones above it), and print what their comments say; the ``hydra queues list`` output it
shows is the command's; what it states of the limits is what the library does."""

from __future__ import annotations

import re
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra.testing import MemoryStore, TestEnvironment
from hydra_cli.main import app
from tests.docs import pages

PAGE = "queues.md"
SHOWN_OUTPUT = pages.SHOWN_OUTPUT


def run_blocks(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return pages.run_blocks(PAGE, monkeypatch)


def test_the_blocks_run_and_print_what_their_comments_say(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = pages.blocks(pages.text(PAGE))
    assert len(blocks) == 3
    run_blocks(monkeypatch)
    printed = capsys.readouterr().out.splitlines()
    shown = SHOWN_OUTPUT.findall("\n".join(blocks))
    assert printed == shown


def test_the_first_example_is_what_it_says(monkeypatch: pytest.MonkeyPatch) -> None:
    module = run_blocks(monkeypatch)
    engine: hydra.Engine = module.engine
    (queue,) = engine.list_queues()
    assert queue == hydra.Queue(
        "emails",
        concurrency=5,
        worker_concurrency=2,
        key_concurrency=1,
        rate_limit=hydra.RateLimit(100, per=timedelta(minutes=1)),
    )
    reset, news = engine.get_execution(module.reset), engine.get_execution(module.news)
    assert (reset.queue, reset.priority, reset.concurrency_key) == ("emails", 10, "acme")
    assert (news.queue, news.priority, news.concurrency_key) == ("emails", 0, "acme")
    assert reset.created_at >= news.created_at  # started second
    # The unregistered queue stored nothing: the two emails are all there is.
    assert len(engine.list_executions()) == 2


def test_the_stated_bounds_and_forms() -> None:
    assert [str(hydra.RateLimit(100, per=timedelta(minutes=1))), str(hydra.RateLimit(5))] == [
        "100/min",
        "5/s",
    ]
    assert str(hydra.RateLimit(10, per=timedelta(seconds=30))) == "10/30s"
    with pytest.raises(ValueError, match="unlimited queue"):
        hydra.Queue("default")
    hydra.Queue("q" * 100, concurrency=100_000, worker_concurrency=1, key_concurrency=1)
    with pytest.raises(ValueError):
        hydra.Queue("q", concurrency=0)
    with pytest.raises(ValueError):
        hydra.Queue("q", key_concurrency=100_001)
    with pytest.raises(ValueError):
        hydra.Queue("q" * 101)
    with pytest.raises(ValueError):
        hydra.RateLimit(100_001)
    with pytest.raises(ValueError):
        hydra.RateLimit(1, per=timedelta(days=367))
    engine = hydra.Engine(MemoryStore())
    engine.register_queue(hydra.Queue("q"))
    for priority in (2**31 - 1, -(2**31 - 1)):
        engine.start_workflow("wf", queue="q", priority=priority)
    with pytest.raises(ValueError):
        engine.start_workflow("wf", queue="q", priority=2**31)
    assert engine.get_execution(engine.start_workflow("wf", queue="default")).queue == "default"


def test_lowering_a_limit_stops_nothing_and_starts_nothing_until_under_it() -> None:
    """ "no new one starts until those holding slots above the new limit have finished":
    with 3 running and the limit lowered to 1, nothing starts until none runs."""
    store = MemoryStore()
    engine = hydra.Engine(store, namespace="n")
    engine.register_queue(hydra.Queue("q", concurrency=3))
    for n in range(6):
        engine.start_workflow("wf", n, queue="q")

    def claim() -> int:
        now = engine.clock.now_ms()
        return len(store.claim("n", ["wf"], "w1", now_ms=now, lease_ms=600_000, limit=10))

    def running() -> int:
        (stats,) = store.queue_stats("n", now_ms=engine.clock.now_ms())
        return stats.running

    assert claim() == 3
    engine.register_queue(hydra.Queue("q", concurrency=1))
    assert (claim(), running()) == (0, 3)  # nothing stopped, nothing started
    slots = {s.number: s.execution_id for s in store.list_slots("n")}
    engine.cancel(slots[0])  # the one slot below the new limit
    assert (claim(), running()) == (0, 2)  # still above it
    engine.cancel(slots[2])
    assert (claim(), running()) == (0, 1)  # at it
    engine.cancel(slots[1])
    assert (claim(), running()) == (1, 1)  # under it: one starts


def test_the_queues_list_shown_is_the_command_s(tmp_path: Path) -> None:
    """The state the page's table shows, built on SQLite; the table as ``hydra queues
    list`` prints it, but for the oldest age (the CLI reads the real clock)."""
    from typer.testing import CliRunner

    url = f"sqlite:///{tmp_path}/q.db"
    store = hydra.SQLStore(url)
    try:
        engine = hydra.Engine(store)
        engine.register_queue(
            hydra.Queue(
                "emails",
                concurrency=5,
                worker_concurrency=2,
                key_concurrency=1,
                rate_limit=hydra.RateLimit(100, per=timedelta(minutes=1)),
            )
        )
        later = engine.clock.now() + timedelta(hours=1)
        for n in range(125):
            engine.start_workflow("send-email", n, queue="emails", concurrency_key=f"c{n}")
        for n in range(4):
            engine.start_workflow("send-email", n, queue="emails", run_at=later)
        engine.start_workflow("report", None)
        for _ in range(2):
            engine.start_workflow("report", None, run_at=later)
        now = engine.clock.now_ms()
        # Three workers (2 each at most: worker_concurrency) fill the 5 slots.
        for worker in ("w1", "w2", "w3"):
            store.claim("default", ["send-email"], worker, now_ms=now, lease_ms=60_000, limit=10)
        store.claim("default", ["report"], "w1", now_ms=now, lease_ms=60_000, limit=10)
    finally:
        store.close()

    result = CliRunner().invoke(app, ["queues", "list", "--db", url])
    assert result.exit_code == 0, result.output
    (shown,) = pages.blocks(pages.section(PAGE, "Seeing a queue: `hydra queues list`"), "text")
    command, *expected = shown.splitlines()
    assert command == "$ hydra queues list"
    printed = result.stdout.splitlines()
    assert printed[0] == expected[0]  # the header, as laid out
    cells = [re.split(r"\s{2,}", line) for line in printed[1:]]
    wanted = [re.split(r"\s{2,}", line) for line in expected[1:]]
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", cells[1][3]), cells[1]  # emails: due since now
    cells[1][3] = wanted[1][3]
    assert cells == wanted


def test_children_take_a_queue_and_wait_for_its_limits() -> None:
    @hydra.workflow("queued-child")
    def child(ctx: hydra.WorkflowContext, n: int) -> int:
        return n

    @hydra.workflow("queued-parent")
    def parent(ctx: hydra.WorkflowContext, n: int) -> Any:
        handles = [
            hydra.start_child(ctx, f"c{i}", child, i, queue="emails", priority=i) for i in range(n)
        ]
        return [hydra.wait_child(ctx, h) for h in handles]

    env = TestEnvironment()
    env.engine.register_queue(hydra.Queue("emails", concurrency=1))
    env.register(parent)
    env.register(child)
    done = env.run_until_complete(env.start(parent, 3))
    assert (done.status, done.output) == ("completed", [0, 1, 2])
    children = env.engine.list_executions(workflow_name="queued-child")
    assert {(c.queue, c.priority) for c in children} == {
        ("emails", 0),
        ("emails", 1),
        ("emails", 2),
    }
    assert "takes the same three" in pages.text(PAGE)


def test_the_page_names_what_exists() -> None:
    text = pages.text(PAGE)
    metrics = pages.text("metrics.md")
    assert "hydra_workflow_queue_time_seconds" in text and "hydra_workflow_queue_time" in metrics
    assert "examples/queues.py" in text
    assert (pages.REPO / "examples" / "queues.py").exists()
