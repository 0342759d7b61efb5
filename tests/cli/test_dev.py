"""``hydra dev run FILE``: workers in process, the live view, progress lines, fast-forward."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

import hydra
from hydra.clock import SystemClock
from hydra.testing import FakeClock, TestEnvironment
from hydra_cli import dev, errors, output
from hydra_cli.db import parse

from .helpers import (
    EXAMPLES,
    assert_one_error_line,
    engine_on,
    error_lines,
    hydra_cli,
    sqlite_url,
    write,
)

ORDER = str(EXAMPLES / "order.py")
APPROVAL = str(EXAMPLES / "approval.py")
ORDER_STEPS = ("process-payment", "reserve-inventory", "create-shipping", "refund-payment")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def trace_commands(stdout: str) -> list[list[str]]:
    """The `hydra trace ...` commands printed at the end, as argument lists."""
    lines = stdout.split("with:\n", 1)[1].splitlines()
    return [shlex.split(line) for line in lines if " trace " in line]


def recording_console(monkeypatch: pytest.MonkeyPatch, width: int = 120) -> Console:
    """Make the CLI print to a Rich recording console that claims to be a terminal."""
    console = Console(record=True, force_terminal=True, width=width, highlight=False)
    monkeypatch.setattr(output, "stdout", lambda: console)
    return console


def final_frame(console: Console) -> str:
    """The live view's last frame: each frame ends with its footer line (the recording
    keeps every frame, one after the other, without the cursor moves between them)."""
    text = console.export_text(clear=False)
    frames = [f for f in text.split("Ctrl-C stops (executions stay in the database)") if f.strip()]
    # At least one frame (the live view always draws its last one), then the summary
    # after it; a fast run may finish before a second frame is drawn.
    assert len(frames) >= 2, text
    return frames[-2]


# -- running ----------------------------------------------------------------------------


def test_order_example_runs_and_prints_trace_commands_that_work(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "dev.db")
    result = hydra_cli("dev", "run", ORDER, "--db", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "all 2 executions completed" in out
    for step in ORDER_STEPS:
        assert f"step {step} completed" in out or f"step {step} failed" in out
    assert "OutOfStock: only 0 x chair left" in out
    commands = trace_commands(out)
    assert len(commands) == 2
    for command in commands:
        assert command[0] == "hydra" and command[1] == "trace"
        assert re.fullmatch(UUID, command[2])
        assert command[3:] == ["--db", url]
        traced = hydra_cli(*command[1:])
        assert traced.exit_code == 0, traced.output
        assert "order-processing  completed" in traced.stdout
        assert "process-payment" in traced.stdout


def test_live_view_final_frame_lists_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = recording_console(monkeypatch)
    result = hydra_cli("dev", "run", ORDER, "--db", sqlite_url(tmp_path / "live.db"))
    assert result.exit_code == 0, result.output
    frame = final_frame(console)
    assert frame.count("order-processing") == 2
    assert frame.count("completed  attempt 1/3") == 2
    for step in ORDER_STEPS:
        assert step in frame
    assert "✔ process-payment" in frame
    assert "✘ reserve-inventory" in frame
    assert "OutOfStock: only 0 x chair left" in frame
    assert "2/2 finished" in console.export_text(clear=False)
    # The live view replaced the progress lines.
    assert "step process-payment completed (attempt" not in console.export_text(clear=False)


def test_fast_forward_runs_the_48_hour_approval_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = recording_console(monkeypatch)
    began = time.monotonic()
    result = hydra_cli(
        "dev", "run", APPROVAL, "--fast-forward", "--db", sqlite_url(tmp_path / "a.db")
    )
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began < 15
    frame = final_frame(console)
    assert "48h 00m" in frame  # the unanswered one waited its 48 hours, on virtual time
    for shown in ("ask-manager", "receive-1", "pay-out", "escalate", "timed_out"):
        assert shown in frame
    assert "fast-forward skipped 47h" in console.export_text(clear=False)  # virtual time


def test_sleeps_take_real_time_without_fast_forward(tmp_path: Path) -> None:
    file = write(
        tmp_path / "nap.py",
        """
        import hydra

        @hydra.workflow("nap")
        def nap(ctx, req):
            hydra.sleep(ctx, 0.3, name="short-nap")
            return hydra.step(ctx, "wake", lambda: "up")

        def dev(engine):
            engine.start_workflow("nap")
        """,
    )
    began = time.monotonic()
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(tmp_path / "nap.db"))
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began >= 0.3
    assert "sleep short-nap sleeping until" in result.stdout
    assert "step wake completed (attempt 1" in result.stdout
    assert "the execution completed" in result.stdout


def test_fast_forward_jumps_to_a_rate_limit_s_next_window(tmp_path: Path) -> None:
    file = write(
        tmp_path / "hourly.py",
        """
        from datetime import timedelta

        import hydra

        @hydra.workflow("call-partner")
        def call_partner(ctx, n):
            return hydra.step(ctx, "call", lambda: n)

        def dev(engine):
            engine.register_queue(
                hydra.Queue("partner", rate_limit=hydra.RateLimit(1, per=timedelta(hours=1)))
            )
            engine.start_workflow("call-partner", 1, queue="partner")
            engine.start_workflow("call-partner", 2, queue="partner")
        """,
    )
    db = sqlite_url(tmp_path / "hourly.db")
    began = time.monotonic()
    result = hydra_cli("dev", "run", str(file), "--fast-forward", "--db", db)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began < 15  # the second start's hour passed on virtual time
    store = hydra.SQLStore(db)
    try:
        starts = sorted(row.started_at or 0 for row in store.list_executions("default", limit=10))
    finally:
        store.close()
    assert starts[1] - starts[0] >= 3_600_000


def test_start_with_input_and_several_workers(tmp_path: Path) -> None:
    file = write(
        tmp_path / "shout.py",
        """
        from dataclasses import dataclass

        import hydra

        @dataclass
        class Words:
            text: str
            times: int

        class Shout(hydra.Workflow[Words]):
            name = "shout"

            def run(self, ctx, req: Words) -> str:
                loud = hydra.step(ctx, "upper", lambda: req.text.upper())
                return hydra.step(ctx, "repeat", lambda: " ".join([loud] * req.times))

        SHOUT = Shout()
        """,
    )
    result = hydra_cli(
        "dev", "run", str(file), "--start", "shout", "--input", '{"text": "hi", "times": 3}',
        "--workers", "2", "--concurrency", "1", "--db", sqlite_url(tmp_path / "s.db"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "step repeat completed (attempt 1" in result.stdout
    assert '→ "HI HI HI"' in result.stdout


def test_hook_may_return_nothing_and_workflows_may_live_in_WORKFLOWS_only(tmp_path: Path) -> None:
    file = write(
        tmp_path / "hidden.py",
        """
        import hydra

        def make():
            @hydra.workflow("listed")
            def listed(ctx, req):
                return hydra.step(ctx, "only", lambda: req)
            return listed

        WORKFLOWS = [make()]

        def dev(engine):
            engine.start_workflow("listed", 1)
            engine.start_workflow("listed", 2)
        """,
    )
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(tmp_path / "h.db"))
    assert result.exit_code == 0, result.output
    assert "all 2 executions completed" in result.stdout


def test_a_failed_execution_exits_3_and_names_the_error(tmp_path: Path) -> None:
    file = write(
        tmp_path / "broken.py",
        """
        import hydra

        @hydra.workflow("broken")
        def broken(ctx, req):
            def fail():
                raise hydra.NonRetryableError("the API said no")
            return hydra.step(ctx, "call-api", fail)

        def dev(engine):
            return [engine.start_workflow("broken", max_attempts=1)]
        """,
    )
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(tmp_path / "b.db"))
    assert result.exit_code == errors.EXIT_NOT_COMPLETED, result.output
    assert "1 of 1 executions did not complete" in result.stdout
    assert "step call-api failed (attempt 1" in result.stdout
    assert "NonRetryableError: the API said no" in result.stdout
    assert len(trace_commands(result.stdout)) == 1


def test_namespace_goes_into_the_trace_command(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ns.db")
    result = hydra_cli("dev", "run", ORDER, "--namespace", "examples", "--db", url)
    assert result.exit_code == 0, result.output
    command = trace_commands(result.stdout)[0]
    assert command[3:] == ["--namespace", "examples", "--db", url]
    assert hydra_cli(*command[1:]).exit_code == 0
    # Without the namespace, the error says where the execution is.
    wrong = hydra_cli("trace", command[2], "--db", url)
    assert_one_error_line(wrong, contains="it is in namespace 'examples'")


def test_namespace_and_database_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path / "env.db")
    monkeypatch.setenv("HYDRA_DATABASE_URL", url)
    monkeypatch.setenv("HYDRA_NAMESPACE", "from-env")
    result = hydra_cli("dev", "run", ORDER)
    assert result.exit_code == 0, result.output
    assert f"on {url}, namespace from-env" in result.stdout
    command = trace_commands(result.stdout)[0]
    assert command[3:] == ["--namespace", "from-env", "--db", url]
    with engine_on(url, "from-env") as engine:
        assert len(engine.list_executions()) == 2


def test_default_database_is_created_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = hydra_cli("dev", "run", ORDER)
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".hydra" / "hydra.db").exists()
    command = trace_commands(result.stdout)[0]
    assert command[3:] == []  # the default database and namespace: nothing to add
    assert hydra_cli(*command[1:]).exit_code == 0


def test_user_text_is_never_markup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write(
        tmp_path / "markup.py",
        """
        import hydra

        @hydra.workflow("[bold red]wf")
        def wf(ctx, req):
            hydra.step(ctx, "[bold red]x", lambda: "[blink]out[/blink]")
            def fail():
                raise hydra.NonRetryableError("[red]boom[/red]")
            hydra.step(ctx, "[link=http://e.vil]y", fail)

        def dev(engine):
            return [engine.start_workflow("[bold red]wf", max_attempts=1)]
        """,
    )
    url = sqlite_url(tmp_path / "m.db")
    plain = hydra_cli("dev", "run", str(file), "--db", url)
    assert plain.exit_code == errors.EXIT_NOT_COMPLETED, plain.output
    for text in ("[bold red]wf", "step [bold red]x completed", '"[blink]out[/blink]"',
                 "[link=http://e.vil]y", "NonRetryableError: [red]boom[/red]"):  # fmt: skip
        assert text in plain.stdout

    console = recording_console(monkeypatch)
    live = hydra_cli("dev", "run", str(file), "--db", url)
    assert live.exit_code == errors.EXIT_NOT_COMPLETED
    frame = final_frame(console)
    for text in ("[bold red]wf", "[bold red]x", "[blink]out[/blink]", "[red]boom[/red]"):
        assert text in frame


# -- bad input --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    result = hydra_cli("dev", "run", str(tmp_path / "nope.py"), "--db", sqlite_url(tmp_path / "x"))
    assert_one_error_line(result, contains="no such file")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "cannot import {file}: SyntaxError"),
        ("import no_such_module_here\n", "ModuleNotFoundError: No module named"),
        ("raise RuntimeError('[bold]config missing')\n", "RuntimeError: [bold]config missing"),
        ("import sys\nsys.exit(4)\n", "cannot import {file}: SystemExit: 4"),
        ("x = 1\n", "defines no workflows"),
        (
            "import hydra\nclass W(hydra.Workflow[int]):\n    name = 'w'\n",
            "it defines the class(es) W: create instances at module level, e.g. WORKFLOWS = [W()]",
        ),
        (
            "import hydra\n@hydra.workflow('w')\ndef w(ctx, req):\n    pass\n",
            "has no dev(engine) hook: pass --start NAME",
        ),
        (
            "import hydra\n@hydra.workflow('w')\ndef w(ctx, req):\n    pass\n"
            "def dev(engine):\n    raise ValueError('no demo data')\n",
            "dev(engine) in {file} raised ValueError: no demo data",
        ),
        (
            "import hydra\n@hydra.workflow('w')\ndef w(ctx, req):\n    pass\n"
            "def dev(engine):\n    return 42\n",
            "returned int",
        ),
        (
            "import hydra\n@hydra.workflow('w')\ndef w(ctx, req):\n    pass\n"
            "def dev(engine):\n    return []\n",
            "started no executions",
        ),
        (
            "import hydra\n@hydra.workflow('w')\ndef w(ctx, req):\n    pass\n"
            "@hydra.workflow('w')\ndef v(ctx, req):\n    pass\n",
            "defines two different workflows named 'w'",
        ),
    ],
)
def test_bad_files(tmp_path: Path, source: str, message: str) -> None:
    file = tmp_path / "bad.py"
    file.write_text(source)
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(tmp_path / "bad.db"))
    assert_one_error_line(result, contains=message.format(file=file))


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    assert_one_error_line(hydra_cli("dev", "run", str(tmp_path)), contains="is a directory")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "order-processing", "--input", "{bad json"], "malformed --input JSON"),
        (["--input", "{}"], "--input needs --start NAME"),
        (["--start", "[bold]nope"], "--start '[bold]nope': "),
        (["--namespace", " padded"], "namespace must not start or end with whitespace"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "o.db"
    result = hydra_cli("dev", "run", ORDER, *args, "--db", sqlite_url(db))
    assert_one_error_line(result, contains=message)
    assert not db.exists()  # nothing was started


def test_import_error_traceback_with_debug(tmp_path: Path) -> None:
    file = write(tmp_path / "boom.py", "raise RuntimeError('kaput')\n")
    result = hydra_cli("--debug", "dev", "run", str(file), "--db", sqlite_url(tmp_path / "d.db"))
    assert result.exit_code == errors.EXIT_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert "kaput" in result.stderr
    assert error_lines(result)[-1].startswith("error: cannot import")


def test_unreachable_database() -> None:
    result = hydra_cli("dev", "run", ORDER, "--db", "postgresql+psycopg://u:secret@127.0.0.1:1/db")
    line = assert_one_error_line(result, contains="cannot connect to database")
    assert "secret" not in line


def test_uninitialised_server_database_is_not_migrated_by_dev_run() -> None:
    url = os.environ.get("HYDRA_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HYDRA_TEST_POSTGRES_URL is not set")
    # A schema nobody migrated: the search_path names a schema that does not exist.
    fresh = url + ("&" if "?" in url else "?") + "options=-csearch_path%3Dhydra_cli_nowhere"
    result = hydra_cli("dev", "run", ORDER, "--db", fresh)
    assert_one_error_line(result, contains="has no hydra schema")


# -- pieces -----------------------------------------------------------------------------


def test_the_fast_forward_clock_flows_and_only_jumps_forward() -> None:
    """--fast-forward's clock: the default clock's time plus the jumps, never backwards."""
    base = SystemClock()
    clock = FakeClock(base.now(), rate=1.0, base=base)
    start = clock.now_ms()
    assert abs(start - base.now_ms()) < 1000
    clock.set_ms(start + 48 * 3600 * 1000)
    assert clock.now_ms() >= start + 48 * 3600 * 1000
    assert 48 * 3600 * 1000 - 1000 <= clock.skipped_ms <= 48 * 3600 * 1000
    clock.set_ms(start)  # backwards: ignored
    assert clock.now_ms() >= start + 48 * 3600 * 1000
    assert clock.now().tzinfo is not None


def test_trace_command_is_runnable_from_this_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "venv" / "bin" / "hydra"
    fake.parent.mkdir(parents=True)
    fake.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(sys, "argv", [str(fake), "dev", "run"])
    default = parse("sqlite:///.hydra/hydra.db", "default")
    assert dev.trace_command("abc", default, "default") == "venv/bin/hydra trace abc"
    monkeypatch.chdir(tmp_path / "venv")
    assert dev.hydra_command() == "bin/hydra"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert dev.hydra_command() == str(fake)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    pg = parse("postgresql+psycopg://u:pw@h/db", "--db")
    assert dev.trace_command("abc", pg, "my ns") == (
        "hydra trace abc --namespace 'my ns' --db 'postgresql+psycopg://u:***@h/db'"
    )


def test_live_observer_sits_beside_the_engine_s_other_observers() -> None:
    """The live view is one observer of the engine among others (metrics, the user's):
    it keeps each run, and every other observer still gets every event."""
    seen: list[str] = []

    class Other(hydra.Observer):
        def step_finished(self, run: object, name: str, status: str, duration_ms: int) -> None:
            seen.append(f"{name} {status}")

    @hydra.workflow("live-observed")
    def observed(ctx: hydra.WorkflowContext, req: None) -> int:
        return hydra.step(ctx, "one", lambda: 1)

    env = TestEnvironment(metrics=hydra.Metrics())
    live = dev.LiveObserver()
    env.engine.add_observer(live)
    env.engine.add_observer(Other())
    env.register(observed)
    eid = env.start("live-observed")
    assert env.run_until_complete(eid).status == "completed"
    assert seen == ["one completed"]
    assert live.worker(eid) == "worker-1"
    assert env.engine.metrics is not None
    steps = env.engine.metrics.registry.get_sample_value(
        "hydra_steps_executed_total",
        {"namespace": "test", "workflow": "live-observed", "status": "completed"},
    )
    assert steps == 1
