"""``hydra dev run``: the workflows' log lines (once each, from ``--log-level`` up) and
hydra's warnings among the progress or above the live view; ``--start NAME --input JSON``
checked against the workflow's input type before anything is stored (issue 10)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from hydra_cli import devlogs, output

from .helpers import (
    assert_one_error_line,
    engine_on,
    hydra_cli,
    hydra_script,
    sqlite_url,
    subprocess_env,
    write,
)

GREET = """
from dataclasses import dataclass
from datetime import timedelta

import hydra


@dataclass
class Words:
    text: str
    times: int


@hydra.workflow("greet")
def greet(ctx, name: str) -> str:
    ctx.logger.info("greeting %s", name)
    hydra.sleep(ctx, timedelta(milliseconds=100))
    ctx.logger.debug("slept well")
    ctx.logger.warning("mind the \\x1b[2J escape")
    return hydra.step(ctx, "say", lambda: ctx.logger.info("saying it") or f"hello {name}")


@hydra.workflow("shout")
def shout(ctx, words: Words) -> str:
    ctx.logger.error("shouting %s", words.text)
    return " ".join([words.text.upper()] * words.times)


@hydra.workflow("give-up")
def give_up(ctx, _: None) -> None:
    def fail() -> None:
        raise hydra.NonRetryableError("no way")

    try:
        hydra.step(ctx, "try", fail)
    except hydra.StepFailedError:
        ctx.logger.info("compensating")
"""


@pytest.fixture
def greet_file(tmp_path: Path) -> Path:
    return write(tmp_path / "greet.py", GREET)


def dev_run(file: Path, db: Path, *args: str) -> tuple[int, str]:
    result = hydra_cli("dev", "run", str(file), *args, "--db", sqlite_url(db))
    return result.exit_code, result.stdout


# -- log lines ----------------------------------------------------------------------------


def test_workflow_log_lines_appear_once_each_among_the_progress(
    greet_file: Path, tmp_path: Path
) -> None:
    code, out = dev_run(greet_file, tmp_path / "d.db", "--start", "greet", "--input", '"ada"')
    assert code == 0, out
    lines = out.splitlines()
    # The execution ran twice (the sleep): the line before the sleep still shows once.
    (greeting,) = [ln for ln in lines if "greeting ada" in ln]
    short = greeting.split()[0]
    assert greeting == f"{short}  greet  INFO  greeting ada"
    assert sum(ln.endswith("INFO  step say: saying it") for ln in lines) == 1
    assert "slept well" not in out  # DEBUG: below the default --log-level info
    # Control characters in a message are shown, not sent to the terminal.
    assert sum(ln.endswith("WARNING  mind the \\x1b[2J escape") for ln in lines) == 1
    assert "\x1b" not in out
    # The log line comes before the progress line of the sleep that followed it.
    sleep_line = next(ln for ln in lines if "  sleep sleep-1 " in ln)
    assert lines.index(greeting) < lines.index(sleep_line)


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("debug", ["greeting ada", "slept well", "mind the"], []),
        ("warning", ["mind the"], ["greeting ada", "slept well", "saying it"]),
        ("ERROR", [], ["greeting ada", "mind the"]),
    ],
)
def test_log_level_sets_the_lowest_level_shown(
    greet_file: Path, tmp_path: Path, level: str, shown: list[str], hidden: list[str]
) -> None:
    code, out = dev_run(
        greet_file, tmp_path / "d.db", "--start", "greet", "--input", '"ada"', "--log-level", level
    )
    assert code == 0, out
    for text in shown:
        assert sum(text in ln for ln in out.splitlines()) == 1, (text, out)
    for text in hidden:
        assert text not in out


def test_hydra_s_own_warnings_are_shown_and_its_info_lines_are_not(
    greet_file: Path, tmp_path: Path
) -> None:
    code, out = dev_run(greet_file, tmp_path / "d.db", "--start", "give-up")
    assert code == 0, out
    warning = next(ln for ln in out.splitlines() if "hydra WARNING" in ln)
    assert warning.endswith(
        "give-up  hydra WARNING  step try failed after 1 attempt(s): NonRetryableError: no way"
    )
    assert "INFO  compensating" in out
    assert "hydra INFO" not in out  # "execution ... completed": the view says so already
    assert "hydra DEBUG" not in out


def test_bad_log_level(greet_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    result = hydra_cli("dev", "run", str(greet_file), "--start", "greet", "--input", '"a"',
                       "--log-level", "loud", "--db", sqlite_url(db))  # fmt: skip
    assert_one_error_line(result, contains="--log-level 'loud': use debug, info, warning or error")
    assert not db.exists()


def test_log_lines_print_above_the_live_view(
    greet_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(record=True, force_terminal=True, width=120, highlight=False)
    monkeypatch.setattr(output, "stdout", lambda: console)
    code, _ = dev_run(greet_file, tmp_path / "d.db", "--start", "greet", "--input", '"ada"')
    assert code == 0
    text = console.export_text(clear=False)
    # Printed once, as a line of its own, while the live view went on being redrawn.
    assert text.count("greeting ada") == 1
    (line,) = [ln for ln in text.splitlines() if "greeting ada" in ln]
    assert line.endswith("  greet  INFO  greeting ada")
    after = text.split("greeting ada", 1)[1]
    assert "Ctrl-C stops" in after  # frames of the live view followed the line
    assert "the execution completed" in after


def test_the_hydra_logger_is_left_as_it_was(greet_file: Path, tmp_path: Path) -> None:
    logger = logging.getLogger("hydra")
    before = (logger.level, list(logger.handlers))
    dev_run(greet_file, tmp_path / "d.db", "--start", "greet", "--input", '"ada"')
    assert (logger.level, list(logger.handlers)) == before


def test_log_line_format() -> None:
    record = logging.LogRecord("hydra.cron", logging.INFO, __file__, 1, "tidy %s", ("up",), None)
    record.cron_job = "nightly"
    assert devlogs.log_line(record).plain == "cron nightly  INFO  tidy up"
    bare = logging.LogRecord("hydra.clock", logging.WARNING, __file__, 1, "skew", None, None)
    assert devlogs.log_line(bare).plain == "hydra WARNING  skew"
    odd = logging.LogRecord("hydra.workflow", logging.INFO, __file__, 1, "%d", ("x",), None)
    assert devlogs.log_line(odd).plain == "INFO  %d"  # bad arguments: the format, no crash


# -- the input of --start ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--start", "greet", "--input", "42"],
            "workflow 'greet' takes str, not --input 42: expected str at $, got integer 42",
        ),
        (
            ["--start", "greet"],
            "workflow 'greet' takes str, not null (no --input given): expected str at $",
        ),
        (
            ["--start", "shout", "--input", '{"text": "hi", "times": "3"}'],
            'workflow \'shout\' takes Words, not --input {"text": "hi", "times": "3"}: ',
        ),
    ],
)
def test_an_input_the_workflow_cannot_decode_is_refused_before_anything_is_stored(
    greet_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "d.db"
    result = hydra_cli("dev", "run", str(greet_file), *args, "--db", sqlite_url(db))
    line = assert_one_error_line(result, contains=message)
    if "shout" in args:
        assert "times" in line.split(": ", 2)[2]  # the decoder says which field
    assert not db.exists()  # nothing stored (the database was not even created)


def test_an_input_that_decodes_runs(greet_file: Path, tmp_path: Path) -> None:
    code, out = dev_run(
        greet_file, tmp_path / "d.db", "--start", "shout", "--input", '{"text": "hi", "times": 2}'
    )
    assert code == 0, out
    assert "  shout  ERROR  shouting hi" in out
    with engine_on(sqlite_url(tmp_path / "d.db")) as engine:
        assert [e.output for e in engine.list_executions()] == ["HI HI"]


def test_the_dev_hook_cannot_store_an_input_its_workflow_cannot_decode(
    tmp_path: Path,
) -> None:
    """Given the workflow itself, the hook's start is refused before anything is stored
    (the engine's own check: dev run keeps no engine of its own)."""
    file = write(
        tmp_path / "hooked.py",
        GREET
        + """

def dev(engine):
    engine.start_workflow(greet, "fine")
    engine.start_workflow(greet, 42)
""",
    )
    db = tmp_path / "h.db"
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(db))
    assert_one_error_line(
        result,
        contains="dev(engine) in "
        f"{file} raised PayloadError: workflow 'greet' takes str, not 42: expected str at $, "
        "got integer 42; nothing was stored",
    )
    with engine_on(sqlite_url(db)) as engine:
        assert [e.input for e in engine.list_executions()] == ["fine"]


def test_a_start_by_name_is_stored_and_fails_when_the_worker_decodes_it(
    tmp_path: Path,
) -> None:
    """By name the engine stores the input unchecked (the code may live elsewhere); the
    dev run watches that execution too (recorded by its observer) and it fails."""
    file = write(
        tmp_path / "by_name.py",
        GREET
        + """

def dev(engine):
    engine.start_workflow("greet", "fine")
    engine.start_workflow("greet", 42)
""",
    )
    db = tmp_path / "n.db"
    code, out = dev_run(file, db)
    assert code == 3, out
    with engine_on(sqlite_url(db)) as engine:
        found = {e.input: e for e in engine.list_executions()}
    assert (found["fine"].status, found["fine"].output) == ("completed", "hello fine")
    assert (found[42].status, found[42].error_type) == ("failed", "PayloadError")
    assert "cannot decode input: expected str at $, got integer 42" in (
        found[42].error_message or ""
    )


@pytest.mark.slow
def test_the_console_script_refuses_the_input_and_shows_the_logs(
    greet_file: Path, tmp_path: Path
) -> None:
    script = str(hydra_script())
    env = subprocess_env()
    bad = subprocess.run(
        [script, "dev", "run", "greet.py", "--start", "greet", "--input", "42"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert bad.stdout == ""
    assert bad.stderr == (
        "error: workflow 'greet' takes str, not --input 42: expected str at $, got integer 42\n"
    )
    assert not (tmp_path / ".hydra").exists()

    good = subprocess.run(
        [script, "dev", "run", "greet.py", "--start", "greet", "--input", '"ada"'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert good.stderr == ""
    assert sum(ln.endswith("  greet  INFO  greeting ada") for ln in good.stdout.splitlines()) == 1
