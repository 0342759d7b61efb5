"""``hydra ui`` refuses to listen off loopback without a password, and ``hydra dev run
--ui`` serves the UI beside the run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hydra_cli import ui

from .helpers import EXAMPLES, assert_one_error_line, hydra_cli, sqlite_url

pytest.importorskip("uvicorn", reason="the [ui] extra is not installed")


def test_off_loopback_it_needs_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ui.PASSWORD_ENV, raising=False)
    result = hydra_cli("ui", "--host", "0.0.0.0", "--db", sqlite_url(tmp_path / "x.db"))
    assert_one_error_line(result, contains="HYDRA_UI_PASSWORD")


def test_the_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ui.PASSWORD_ENV, raising=False)
    monkeypatch.delenv(ui.USER_ENV, raising=False)
    assert ui.basic_auth("127.0.0.1", True) is None
    monkeypatch.setenv(ui.PASSWORD_ENV, "pw")
    assert ui.basic_auth("0.0.0.0", False) == ("hydra", "pw")
    monkeypatch.setenv(ui.USER_ENV, "ops")
    assert ui.basic_auth("127.0.0.1", True) == ("ops", "pw")


def test_dev_run_ui_prints_its_url(tmp_path: Path) -> None:
    db = sqlite_url(tmp_path / "dev.db")
    result = hydra_cli(
        "dev",
        "run",
        str(EXAMPLES / "order.py"),
        "--fast-forward",
        "--ui",
        "--ui-port",
        "0",
        "--db",
        db,
    )
    assert result.exit_code in (0, 3), result.output
    assert re.search(r"web UI: http://127\.0\.0\.1:\d+/", result.stdout), result.stdout
