"""Every CLI test starts from a clean environment (no HYDRA_* settings, no forced colour)."""

from __future__ import annotations

import pytest

from .helpers import CLI_ENV


@pytest.fixture(autouse=True)
def clean_cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLI_ENV:
        monkeypatch.delenv(name, raising=False)
