"""Shared helpers for the CLI tests."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner, Result

import hydra
from hydra_cli import errors
from hydra_cli.main import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
UNREACHABLE_PG = "postgresql+psycopg://u:secret@127.0.0.1:1/db"
#: variables that change what the CLI does; cleared for every CLI test
CLI_ENV = ("HYDRA_DATABASE_URL", "HYDRA_NAMESPACE", "HYDRA_DEBUG", "FORCE_COLOR", "TTY_COMPATIBLE")


def hydra_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_error_line(result: Result, *, contains: str = "") -> str:
    """Exit code 2, one ``error: ...`` line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == errors.EXIT_ERROR, (result.exit_code, result.output)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert contains in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return lines[0]


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: no HYDRA_* settings, the virtualenv not activated
    (its bin directory is not on PATH)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


def hydra_script() -> Path:
    script = Path(sys.executable).parent / "hydra"
    assert script.exists(), "the hydra console script is not installed in the virtualenv"
    return script


@contextmanager
def engine_on(url: str, namespace: str = "default") -> Iterator[hydra.Engine]:
    store = hydra.SQLStore(url)
    try:
        yield hydra.Engine(store, namespace=namespace)
    finally:
        store.close()
