"""Usage errors (a bad option value, a missing argument, an unknown option or command) are
one line ``error: ...`` on stderr and exit code 2, as the README promises, through the real
console script: Typer would draw a box of several lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hydra_cli import errors

from .helpers import hydra_script, subprocess_env

USAGE_ERRORS = {
    "bad choice": (
        ["executions", "list", "--status", "bogus"],
        "Invalid value for '--status' / '-s': 'bogus' is not one of 'pending', 'running', "
        "'sleeping', 'completed', 'failed', 'cancelled' (see 'hydra executions list --help')",
    ),
    "port out of range": (
        ["worker", "app:worker", "--metrics-port", "99999"],
        "Invalid value for '--metrics-port'",
    ),
    "not a number": (["executions", "list", "--limit", "many"], "Invalid value for '--limit'"),
    "below the minimum": (["executions", "list", "--limit", "0"], "Invalid value for '--limit'"),
    "missing argument": (
        ["trace"],
        "Missing argument 'EXECUTION_ID' (see 'hydra trace --help')",
    ),
    "unknown option": (
        ["migrate", "status", "--bogus"],
        "No such option: --bogus (see 'hydra migrate status --help')",
    ),
    "unknown command": (["bogus"], "No such command 'bogus' (see 'hydra --help')"),
    "unknown subcommand": (["executions", "lst"], "No such command 'lst'"),
    "option without its value": (["executions", "list", "--db"], "Option '--db' requires"),
}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hydra_script()), *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_usage_error_is_one_line(case: str, tmp_path: Path) -> None:
    args, message = USAGE_ERRORS[case]
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == errors.EXIT_ERROR, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert message in lines[0], lines[0]


def test_help_and_version_exit_0(tmp_path: Path) -> None:
    helped = run("executions", "list", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stderr == ""
    assert "Usage: hydra executions list [OPTIONS]" in helped.stdout
    version = run("--version", cwd=tmp_path)
    assert (version.returncode, version.stderr) == (0, "")
    assert version.stdout.startswith("hydra-workflows ")


def test_a_group_without_its_command_shows_its_help(tmp_path: Path) -> None:
    """As before: the group's help, and exit code 2 (Click's, for a missing command)."""
    proc = run("executions", cwd=tmp_path)
    assert proc.returncode == errors.EXIT_ERROR
    assert "Usage: hydra executions [OPTIONS] COMMAND [ARGS]..." in proc.stdout
    assert "error" not in proc.stderr


def test_other_errors_keep_their_exit_codes(tmp_path: Path) -> None:
    """A command's own error is still one line with exit code 2 (the boundary in
    ``HydraGroup.invoke``)."""
    missing = run("executions", "list", cwd=tmp_path)
    assert missing.returncode == errors.EXIT_ERROR
    assert missing.stderr.startswith("error: no hydra database at")
    assert len(missing.stderr.splitlines()) == 1
