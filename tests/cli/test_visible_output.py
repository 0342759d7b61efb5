"""Terminal control characters in stored names, errors, outputs and ids are shown as
escapes (``\\x1b``), never sent to the terminal: ``hydra trace``, ``executions list/show``,
``cron list``, ``dev run`` and the live view. ``--json`` stays JSON as stored.

Rows are written through the store, as another client (or an older hydra, which did not
validate names) could have written them: the engine refuses such names today.
"""

from __future__ import annotations

import json
import subprocess
import unicodedata
import uuid
from pathlib import Path

import pytest
from rich.console import Console

import hydra
from hydra.status import Status, StepStatus
from hydra.store.base import NewExecution, StepRow
from hydra_cli import render
from hydra_cli.errors import CliError, CliState, report
from hydra_cli.render import RunningStep, Style, View

from .helpers import engine_on, hydra_cli, hydra_script, sqlite_url, subprocess_env, write

#: Clears the screen, returns the carriage, rings the bell, a C1 CSI, a right-to-left
#: override, and an OSC that sets the terminal's title.
NASTY = "\x1b[2J\r\x07\x9b\u202e\x1b]0;pwned\x07"
SHOWN = "\\x1b[2J\\r\\x07\\x9b\\u202e\\x1b]0;pwned\\x07"
WORKFLOW = "wf" + NASTY
STEP = "step" + NASTY
WORKER = "worker" + NASTY
ERROR_TYPE = "Boom" + NASTY
ERROR = "line one\n" + NASTY + " line two"


def raw_controls(text: str) -> list[str]:
    """Characters a terminal acts on (or hides) rather than draws; line breaks allowed."""
    hidden = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    return [
        repr(c) for c in text if c not in "\n\u200c\u200d" and unicodedata.category(c) in hidden
    ]


def assert_clean(text: str) -> None:
    assert raw_controls(text) == [], text


def store_hostile_executions(url: str) -> tuple[str, str]:
    """A failed execution whose every stored text is hostile, and one still running under
    a worker id that is."""
    with engine_on(url) as engine:
        store, ns, now = engine.store, engine.namespace, engine.clock.now_ms()
        payload = json.dumps({"note": NASTY}).encode()
        ids = []
        for n in range(2):
            key = f"key{n}{NASTY}"
            new = NewExecution(
                str(uuid.uuid4()), ns, WORKFLOW, payload, 1, 1000, None, key, now, now
            )
            ids.append(store.create_execution(new)[0])
        assert ids[0] != ids[1]
        claims = store.claim(ns, [WORKFLOW], WORKER, now_ms=now, lease_ms=60_000, limit=2)
        leases = {c.execution.id: c.lease for c in claims}
        failed, running = ids
        lease = leases[failed]
        output = json.dumps("out" + NASTY).encode()
        done = StepRow(failed, STEP, 0, StepStatus.COMPLETED, 1, output, None, None, now, now)
        store.save_step(lease, done, now_ms=now, lease_ms=60_000)
        broken = StepRow(
            failed, "second" + NASTY, 1, StepStatus.FAILED, 1, None, ERROR_TYPE, ERROR, now, now
        )
        store.save_step(lease, broken, now_ms=now, lease_ms=60_000)
        store.finish(
            lease, status=Status.FAILED, now_ms=now, error_type=ERROR_TYPE, error_message=ERROR
        )
        assert running in leases
    return failed, running


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "nasty.db")


def test_trace_shows_control_characters_as_escapes(url: str) -> None:
    failed, running = store_hostile_executions(url)
    out = hydra_cli("trace", failed, "--db", url)
    assert out.exit_code == 0, out.output
    assert_clean(out.output)
    assert out.stdout.startswith(f"wf{SHOWN}  failed\n")
    assert "✔ step\\x1b[2J\\r\\x07" in out.stdout  # cut to the name column's width
    # The output preview is JSON (its escapes for C0), made visible (ours for the rest).
    assert '→ "out\\u001b[2J\\r\\u0007\\x9b\\u202e\\u001b]0;pwned\\u0007"' in out.stdout
    assert f"Boom{SHOWN}: line one\\n{SHOWN} line two" in out.stdout
    running_trace = hydra_cli("trace", running, "--db", url)
    assert_clean(running_trace.output)
    assert f"worker{SHOWN}" in running_trace.stdout


def test_json_is_left_as_stored(url: str) -> None:
    failed, _ = store_hostile_executions(url)
    data = json.loads(hydra_cli("trace", failed, "--json", "--db", url).stdout)
    assert data["workflow"] == WORKFLOW
    assert data["steps"][0]["name"] == STEP and data["steps"][0]["output"] == "out" + NASTY
    assert data["error"] == {"type": ERROR_TYPE, "message": ERROR}


def test_executions_list_and_show(url: str) -> None:
    failed, _ = store_hostile_executions(url)
    listed = hydra_cli("executions", "list", "--db", url)
    assert listed.exit_code == 0, listed.output
    assert_clean(listed.output)
    lines = listed.stdout.splitlines()
    assert len(lines) == 3  # one line each: the note's line break is shown, not made
    assert f"on worker{SHOWN}" in listed.stdout
    assert f"Boom{SHOWN}: line one\\n" in listed.stdout

    shown = hydra_cli("executions", "show", failed, "--db", url)
    assert shown.exit_code == 0, shown.output
    assert_clean(shown.output)
    out = shown.stdout
    assert f"idempotency_key key0{SHOWN}" in out
    assert f"step{SHOWN}" in out and f"second{SHOWN}" in out
    # The full error as a block: its own line break kept, the rest made visible.
    assert f"    Boom{SHOWN}: line one\n    {SHOWN} line two\n" in out
    assert '"note": "\\u001b[2J\\r\\u0007\\x9b\\u202e\\u001b]0;pwned\\u0007"' in out


def test_the_real_console_script_prints_no_control_character(url: str, tmp_path: Path) -> None:
    failed, _ = store_hostile_executions(url)
    for args in (["trace", failed], ["executions", "list"], ["executions", "show", failed]):
        proc = subprocess.run(
            [str(hydra_script()), *args, "--db", url],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode("utf-8")
        assert_clean(out + proc.stderr.decode("utf-8"))
        assert SHOWN in out


def test_the_live_view_frame(url: str) -> None:
    failed, running = store_hostile_executions(url)
    with engine_on(url) as engine:
        views = [
            View(engine.get_execution(failed)),
            View(
                engine.get_execution(running),
                running=RunningStep("now" + NASTY, 1, engine.clock.now_ms()),
                worker=WORKER,
            ),
        ]
        now = engine.clock.now_ms()
    console = Console(record=True, width=120, force_terminal=False)
    console.print(render.live_frame(views, now, Style(unicode=True, width=120)))
    frame = console.export_text()
    assert_clean(frame)
    assert f"wf{SHOWN}  {failed}" in frame
    assert "▶ now\\x1b[2J\\r\\x07" in frame  # cut to the name column's width
    assert f"worker{SHOWN}" in frame
    printer = render.ProgressPrinter()
    for view in views:
        for change in printer.changes(view, now):
            console.print(change)
    lines = console.export_text().splitlines()
    assert lines and all(not raw_controls(line) for line in lines)
    assert any(f"step step{SHOWN} completed" in line for line in lines)


def test_dev_run_shows_what_a_workflow_raised(tmp_path: Path) -> None:
    file = write(
        tmp_path / "hostile.py",
        r"""
        import hydra

        @hydra.workflow("hostile")
        def hostile(ctx, req):
            hydra.step(ctx, "pay\u202etxt.exe", lambda: "ok\x9b\u202e\x1b[2J")

            def call():
                raise hydra.NonRetryableError("remote said \x1b[2J\r\x07\x9b\u202e gone")

            hydra.step(ctx, "call", call)

        def dev(engine):
            engine.start_workflow("hostile")
        """,
    )
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(tmp_path / "dev.db"))
    assert result.exit_code == 3, result.output
    assert_clean(result.output)
    out = result.stdout
    assert "step pay\\u202etxt.exe completed" in out
    assert '→ "ok\\x9b\\u202e\\u001b[2J"' in out  # JSON's escape for ESC, ours for the rest
    assert "NonRetryableError: remote said \\x1b[2J\\r\\x07\\x9b\\u202e gone" in out
    assert "StepFailedError" in out  # the summary line of the failed execution


def test_cron_list(url: str) -> None:
    failed, _ = store_hostile_executions(url)
    with engine_on(url) as engine:
        store, ns, now = engine.store, engine.namespace, engine.clock.now_ms()
        name = "nightly" + NASTY
        store.upsert_cron_job(
            ns, name, spec="@daily", timezone=None, workflow_name=WORKFLOW, payload=None, now_ms=now
        )
        store.claim_cron_fire(ns, name, now, now_ms=now, worker_id=WORKER, execution_id=failed)
    result = hydra_cli("cron", "list", "--db", url)
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    assert result.stdout.startswith(f"nightly{SHOWN}  @daily  (UTC)  → workflow wf{SHOWN}")
    assert f" by worker{SHOWN} → execution {failed}" in result.stdout


def test_error_lines_show_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    code = report(CliError(f"the server said: {NASTY}\nand more"), CliState())
    assert code == 2
    err = capsys.readouterr().err
    assert err == f"error: the server said: {SHOWN}; and more\n"


def test_debug_tracebacks_show_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise hydra.HydraError(f"stored {NASTY}")
    except hydra.HydraError as exc:
        report(exc, CliState(debug=True))
    err = capsys.readouterr().err
    assert_clean(err)
    assert f"HydraError: stored {SHOWN}\n" in err
