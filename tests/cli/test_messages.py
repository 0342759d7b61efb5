"""Messages and events in the CLI: ``hydra executions send``, and what ``hydra trace``,
``hydra executions show`` and ``hydra executions list`` say about receives, sends and
events."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra_cli import errors, render
from hydra_cli.render import View

from .helpers import assert_one_error_line, engine_on, error_lines, hydra_cli, sqlite_url

DAYS_3 = timedelta(days=3)


@hydra.workflow("mailroom")
def mailroom(ctx: hydra.WorkflowContext, req: str) -> Any:
    """``wait``: a receive with a 3-day deadline; ``forever``: one with none; ``brief``:
    one that times out at once; ``notify:<id>``: a send to ``<id>`` and two events."""
    if req == "wait":
        return hydra.receive(ctx, "decision", timeout=DAYS_3)
    if req == "forever":
        return hydra.receive(ctx, "decision", name="[red]inbox")
    if req == "brief":
        try:
            return hydra.receive(ctx, "decision", timeout=timedelta(milliseconds=1))
        except hydra.WaitTimeoutError:
            return "gave up"
    target = req.removeprefix("notify:")
    hydra.send(ctx, target, "decision", {"approved": True})
    hydra.set_event(ctx, "progress", {"pct": 50})
    hydra.set_event(ctx, "progress", {"pct": 100})
    hydra.set_event(ctx, "stage\u202e", "done\x1b[2J")
    return "notified"


def run_until(url: str, eid: str, status: str) -> None:
    """Run a worker until the execution has that status (``sleeping``: in its receive).
    The status is read again after the worker stopped: a run it claimed just before can
    outlive ``Worker.shutdown`` for a moment."""
    with engine_on(url) as engine:
        deadline = time.monotonic() + 20
        with hydra.Worker(engine, poll_interval=0.01) as worker:
            worker.register(mailroom)
            while engine.get_execution(eid).status != status:
                assert time.monotonic() < deadline, engine.get_execution(eid)
                time.sleep(0.01)
        while engine.get_execution(eid).status != status:
            assert time.monotonic() < deadline, engine.get_execution(eid)
            time.sleep(0.01)


def start(url: str, req: str) -> str:
    with engine_on(url) as engine:
        return engine.start_workflow("mailroom", req, max_attempts=1)


@pytest.fixture
def url(tmp_path: Path) -> str:
    result = hydra_cli("migrate", "--db", sqlite_url(tmp_path / "mail.db"))
    assert result.exit_code == 0, result.output
    return sqlite_url(tmp_path / "mail.db")


@pytest.fixture
def waiting(url: str) -> str:
    """An execution waiting in a receive with a 3-day deadline."""
    eid = start(url, "wait")
    run_until(url, eid, "sleeping")
    return eid


# -- hydra executions send ----------------------------------------------------------------


def test_send_wakes_the_receive(url: str, waiting: str) -> None:
    result = hydra_cli(
        "executions", "send", waiting, "decision", "--data", '{"approved": true}', "--db", url
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"sent 'decision' to {waiting}\n"
    run_until(url, waiting, "completed")
    with engine_on(url) as engine:
        ex = engine.get_execution(waiting)
        (message,) = engine.list_messages(waiting)
    assert ex.status == "completed" and ex.output == {"approved": True}
    assert message.sender_id is None and message.received_by == "receive-1"


def test_send_by_prefix_without_data_sends_null(url: str, waiting: str) -> None:
    result = hydra_cli("executions", "send", waiting[:8], "other", "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"sent 'other' to {waiting}\n"  # the whole id
    with engine_on(url) as engine:
        (message,) = engine.list_messages(waiting)
        ex = engine.get_execution(waiting)
    assert message.topic == "other" and message.payload is None and not message.received
    assert ex.status == "sleeping" and ex.wait_topic == "decision"  # not its topic


def test_send_with_a_used_idempotency_key_sends_nothing(url: str, waiting: str) -> None:
    args = ["executions", "send", waiting, "other", "--data", "1", "--key", "hook-7", "--db", url]
    first = hydra_cli(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"sent 'other' to {waiting} (idempotency key 'hook-7')\n"
    again = hydra_cli(*args[:4], "--data", "2", *args[6:])
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(
        f"already sent: {waiting} has a message with idempotency key 'hook-7' (topic 'other', "
        "sent 20"
    )
    assert again.stdout.endswith(" UTC): nothing sent\n")
    with engine_on(url) as engine:
        assert [m.payload for m in engine.list_messages(waiting)] == [1]


def test_send_with_malformed_json_stores_nothing(url: str, waiting: str) -> None:
    result = hydra_cli("executions", "send", waiting, "decision", "--data", "{yes", "--db", url)
    assert_one_error_line(result, contains="malformed --data JSON: Expecting property name")
    with engine_on(url) as engine:
        assert engine.list_messages(waiting) == []


def test_send_to_an_unknown_id(url: str, waiting: str) -> None:
    result = hydra_cli("executions", "send", "nope", "decision", "--db", url)
    assert_one_error_line(result, contains="no execution 'nope' in namespace 'default'")
    elsewhere = hydra_cli("executions", "send", waiting, "decision", "-n", "prod", "--db", url)
    assert_one_error_line(elsewhere, contains="it is in namespace 'default'")


def test_send_to_a_finished_execution_is_refused(url: str) -> None:
    eid = start(url, "brief")
    run_until(url, eid, "completed")
    result = hydra_cli("executions", "send", eid, "decision", "--data", "1", "--db", url)
    line = assert_one_error_line(result)
    assert line == (
        f"error: execution {eid} is completed: nothing was sent (no receive of it would ever "
        "read the message)"
    )
    with engine_on(url) as engine:
        assert engine.list_messages(eid) == []


def test_send_a_bad_topic_is_one_error_line(url: str, waiting: str) -> None:
    result = hydra_cli("executions", "send", waiting, " decision", "--db", url)
    assert_one_error_line(result, contains="topic must not start or end with whitespace")


def test_send_needs_a_topic(url: str, waiting: str) -> None:
    result = hydra_cli("executions", "send", waiting, "--db", url)
    assert result.exit_code == errors.EXIT_ERROR
    assert error_lines(result) == [
        "error: Missing argument 'TOPIC' (see 'hydra executions send --help')"
    ]


# -- what trace, show and list say ------------------------------------------------------


def test_a_waiting_receive(url: str, waiting: str) -> None:
    trace = hydra_cli("trace", waiting, "--db", url)
    assert trace.exit_code == 0, trace.output
    lines = trace.stdout.splitlines()
    assert lines[0] == "mailroom  sleeping"
    now = next(line for line in lines if line.startswith("  now "))
    assert now.startswith("  now        waiting for a message on 'decision' until 20")
    assert now.endswith(" UTC (in 71h 59m)")
    row = next(line for line in lines if "receive-1" in line)
    assert "◷ receive-1  waiting" in row and "░" in row and "3d 00h" in row
    detail = lines[lines.index(row) + 1].strip()
    assert detail.startswith("waiting for 'decision' until 20")
    assert " UTC (in 71h 59m); waiting since 20" in detail
    assert "messages sent to it" not in trace.stdout and "events" not in trace.stdout

    listed = hydra_cli("executions", "list", "--db", url).stdout
    (line,) = [line for line in listed.splitlines() if waiting in line]
    assert "sleeping" in line and "  waiting for 'decision' until 20" in line
    assert line.endswith(" UTC (in 71h 59m)")

    show = hydra_cli("executions", "show", waiting, "--db", url).stdout
    assert "  now        waiting for a message on 'decision' until 20" in show
    assert "  wait_topic      decision\n" in show
    assert "     0. receive-1  waiting  waiting for 'decision', until 20" in show

    data = json.loads(hydra_cli("trace", waiting, "--json", "--db", url).stdout)
    assert data["wait_topic"] == "decision" and data["messages"] == [] and data["events"] == {}
    (step,) = data["steps"]
    assert step["kind"] == "receive" and step["status"] == "waiting"
    assert step["detail"]["topic"] == "decision"
    assert step["detail"]["deadline"] == data["sleep_until"]


def test_a_receive_with_no_deadline_and_an_unread_message(url: str) -> None:
    eid = start(url, "forever")
    run_until(url, eid, "sleeping")
    assert (
        hydra_cli("executions", "send", eid, "other", "--data", '"x"', "--db", url).exit_code == 0
    )
    out = hydra_cli("trace", eid, "--db", url).stdout
    assert "  now        waiting for a message on 'decision' with no deadline\n" in out
    assert "waiting for 'decision', no deadline; waiting since 20" in out
    assert "◷ [red]inbox  waiting" in out  # the name literally, never markup
    assert "  messages sent to it (1)\n" in out
    (message,) = [line for line in out.splitlines() if line.startswith("    'other'")]
    assert ' UTC from outside  unread  → "x"' in message

    listed = hydra_cli("executions", "list", "--db", url).stdout
    assert "waiting for 'decision' (no deadline)" in listed


def test_a_received_message_a_send_and_events(url: str, waiting: str) -> None:
    sender = start(url, f"notify:{waiting}")
    run_until(url, sender, "completed")
    run_until(url, waiting, "completed")

    out = hydra_cli("trace", waiting, "--db", url).stdout
    assert out.startswith("mailroom  completed\n")
    row = next(line for line in out.splitlines() if "receive-1" in line)
    assert "✔ receive-1  completed" in row
    assert "      received 'decision' → {\"approved\": true}\n" in out
    assert "  messages sent to it (1)\n" in out
    (message,) = [line for line in out.splitlines() if line.startswith("    'decision'")]
    assert f" UTC by {sender[:8]}  received by receive-1  → " in message

    sent = hydra_cli("trace", sender[:8], "--db", url).stdout
    assert f"      sent 'decision' to {waiting[:8]}\n" in sent
    assert '      event progress = {"pct": 50}\n' in sent  # the checkpoint's own value
    assert '      event progress = {"pct": 100}\n' in sent
    assert '      event stage\\u202e = "done\\u001b[2J"\n' in sent  # control characters shown
    assert "\x1b" not in sent and "\u202e" not in sent
    assert "  events (2)\n" in sent
    assert '    progress = {"pct": 100}\n' in sent  # the latest value
    assert "messages sent to it" not in sent  # none were sent to it

    show = hydra_cli("executions", "show", sender, "--db", url).stdout
    here = "  at tests/cli/test_messages.py:"  # each checkpoint's code position
    assert f"     0. send-1  completed  sent 'decision' to {waiting}{here}" in show
    assert f"     1. event-1  completed  event progress{here}" in show
    assert '        {\n          "pct": 50\n        }\n' in show
    assert "  events (2)\n    progress\n" in show
    show = hydra_cli("executions", "show", waiting, "--db", url).stdout
    assert "  messages sent to it (1)\n    'decision'  sent 20" in show
    assert f" by {sender}  received by receive-1 at 20" in show
    assert '        {\n          "approved": true\n        }\n' in show

    data = json.loads(hydra_cli("executions", "show", waiting, "--json", "--db", url).stdout)
    (message_data,) = data["messages"]
    assert message_data["sender"] == sender and message_data["received_by"] == "receive-1"
    assert message_data["payload"] == {"approved": True}
    events = json.loads(hydra_cli("trace", sender, "--json", "--db", url).stdout)["events"]
    assert events == {"progress": {"pct": 100}, "stage\u202e": "done\x1b[2J"}  # as stored


def test_a_timed_out_receive(url: str) -> None:
    eid = start(url, "brief")
    run_until(url, eid, "completed")
    out = hydra_cli("trace", eid, "--db", url).stdout
    row = next(line for line in out.splitlines() if "receive-1" in line)
    assert "✘ receive-1  timed_out" in row
    detail = out.splitlines()[out.splitlines().index(row) + 1].strip()
    assert detail.startswith("WaitTimeoutError: no message on topic 'decision' arrived within")
    show = hydra_cli("executions", "show", eid, "--db", url).stdout
    assert "     0. receive-1  timed_out  waiting for 'decision', until 20" in show
    assert "        WaitTimeoutError: no message on topic 'decision'" in show


def test_a_cancelled_wait(url: str, waiting: str) -> None:
    assert hydra_cli("executions", "cancel", waiting, "--db", url).exit_code == 0
    out = hydra_cli("trace", waiting, "--db", url).stdout
    assert "waiting for 'decision': the execution was cancelled before a message came" in out
    row = next(line for line in out.splitlines() if "receive-1" in line)
    assert "cancelled" in row and "3d 00h" not in row  # the bar ends at the cancellation


def test_real_servers(sql_store_factory: Any) -> None:
    """send, and the unread message in trace, on every SQL backend (PostgreSQL and MySQL
    when configured; their databases are shared with other tests: keep to a namespace)."""
    url = sql_store_factory.url
    ns = ["--namespace", "cli-messages", "--db", url]
    assert hydra_cli("migrate", "--db", url).exit_code == 0
    with engine_on(url, "cli-messages") as engine:
        eid = engine.start_workflow("mailroom", "wait")
        done = engine.start_workflow("mailroom", "wait")
        engine.cancel(done)
    sent = hydra_cli("executions", "send", eid[:8], "decision", "--data", "[1]", *ns)
    assert sent.stdout == f"sent 'decision' to {eid}\n", sent.output
    again = hydra_cli("executions", "send", eid, "decision", "--key", "k", *ns)
    assert again.stdout == f"sent 'decision' to {eid} (idempotency key 'k')\n"
    repeated = hydra_cli("executions", "send", eid, "decision", "--key", "k", *ns)
    assert repeated.stdout.startswith("already sent: "), repeated.output
    out = hydra_cli("trace", eid, *ns).stdout
    assert "  messages sent to it (2)\n" in out and "from outside  unread  → [1]" in out
    refused = hydra_cli("executions", "send", done, "decision", *ns)
    assert_one_error_line(refused, contains="is cancelled: nothing was sent")


def test_the_progress_lines_of_a_receive(url: str, waiting: str) -> None:
    """``hydra dev run`` without a terminal: one line when the receive waits, one when it
    has received."""
    printer = render.ProgressPrinter()
    with engine_on(url) as engine:
        first = printer.changes(View(engine.get_execution(waiting)), engine.clock.now_ms())
        engine.send(waiting, "decision", "yes")
    run_until(url, waiting, "completed")
    with engine_on(url) as engine:
        then = printer.changes(View(engine.get_execution(waiting)), engine.clock.now_ms())
    (line,) = [t.plain for t in first if "receive-1" in t.plain]
    assert line.startswith(f"{waiting[:8]}  mailroom  receive receive-1 waiting: waiting for ")
    (line,) = [t.plain for t in then if "receive-1" in t.plain]
    assert line.endswith("  mailroom  receive receive-1 completed: received 'decision' → \"yes\"")
