"""``--help`` of every command, compared with the snapshots in ``tests/cli/help/``.

Each command's help is rendered as a user sees it in a 100-column terminal without colour
(``COLUMNS=100``, ``NO_COLOR=1``), trailing spaces removed, and must equal
``tests/cli/help/<command path>.txt``; a difference fails the test and shows the diff.
The commands are found by walking the CLI, so a new command needs a snapshot too.

After changing a help text, an option, or the Typer/Click/Rich versions on purpose,
regenerate the snapshots and review them with ``git diff tests/cli/help``::

    HYDRA_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/cli/test_help.py
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hydra_cli.main import app

from .helpers import hydra_script, subprocess_env

SNAPSHOTS = Path(__file__).parent / "help"
UPDATE = os.environ.get("HYDRA_UPDATE_SNAPSHOTS") == "1"
#: a fixed terminal: 100 columns, no colour
HELP_ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERMINAL_WIDTH": None, "FORCE_COLOR": None}


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


COMMANDS = list(command_paths(typer.main.get_command(app)))


def render_help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=HELP_ENV, prog_name="hydra")
    assert result.exit_code == 0, result.output
    return "".join(line.rstrip() + "\n" for line in result.stdout.splitlines())


def snapshot_file(path: tuple[str, ...]) -> Path:
    return SNAPSHOTS / ("-".join(("hydra", *path)) + ".txt")


def test_the_commands_the_issue_names_are_covered() -> None:
    expected = {
        (),
        ("dev", "run"),
        ("trace",),
        ("migrate",),
        ("migrate", "status"),
        ("executions", "list"),
        ("executions", "show"),
        ("executions", "cancel"),
        ("executions", "retry"),
        ("worker",),
        ("cron", "list"),
        ("queues", "list"),
        ("ui",),
    }
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(("hydra", *p)))
def test_help_matches_its_snapshot(path: tuple[str, ...]) -> None:
    rendered = render_help(path)
    snapshot = snapshot_file(path)
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(rendered)
        return
    assert snapshot.exists(), (
        f"no snapshot {snapshot.name}: run HYDRA_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    )
    expected = snapshot.read_text()
    if rendered != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                fromfile=f"tests/cli/help/{snapshot.name}",
                tofile="hydra " + " ".join((*path, "--help")),
            )
        )
        pytest.fail(
            f"--help differs from its snapshot (HYDRA_UPDATE_SNAPSHOTS=1 rewrites it):\n{diff}",
            pytrace=False,
        )


def test_flags_and_arguments_render_as_meant() -> None:
    """What the snapshots were taken to show (issue 10): flags without a ``<bool>`` type,
    arguments by their metavar, bare in the usage line."""
    for path in COMMANDS:
        text = render_help(path)
        assert "<bool>" not in text and "<str>" not in text, (path, text)
        assert "{" not in text.splitlines()[1], (path, text)  # the usage line
    assert "Usage: hydra trace [OPTIONS] EXECUTION_ID\n" in render_help(("trace",))
    assert "Usage: hydra dev run [OPTIONS] FILE\n" in render_help(("dev", "run"))
    assert "Usage: hydra worker [OPTIONS] MODULE:ATTR\n" in render_help(("worker",))


def test_the_console_script_prints_the_same_help(tmp_path: Path) -> None:
    """The snapshots are taken in-process; the installed ``hydra`` script prints the same."""
    env = subprocess_env(COLUMNS="100", NO_COLOR="1")
    proc = subprocess.run(
        [str(hydra_script()), "executions", "list", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    printed = "".join(line.rstrip() + "\n" for line in proc.stdout.splitlines())
    assert printed == snapshot_file(("executions", "list")).read_text()


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(("hydra", *p)))
def test_help_names_values_not_types(path: tuple[str, ...]) -> None:
    """No Typer type placeholder (``<bool>``, ``<int range>``, ``<str>``) and no braces
    around an argument: a flag is shown alone, a value by its metavar (N, PORT, FILE)."""
    text = render_help(path)
    assert re.search(r"<(bool|int|int range|float|str|text|path)>", text) is None, text
    assert re.search(r"\{[A-Z_:]+\}", text) is None, text
