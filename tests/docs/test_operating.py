"""docs/operating.md: its code runs, and the numbers and names it states are the code's."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import hydra
import hydra.clock
import hydra.engine
import hydra.retry
import hydra.runner
import hydra.store.sql.store
import hydra.textsafe

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


def text() -> str:
    return PAGE.read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", text(), flags=re.S)


def test_the_worker_settings_block_runs() -> None:
    (block,) = python_blocks()
    namespace: dict[str, Any] = {}
    exec(compile(block, str(PAGE), "exec"), namespace)
    worker = namespace["worker"]
    assert isinstance(worker, hydra.Worker)
    assert (worker.heartbeat_ms, worker.lease_ms) == (10_000, 60_000)


def test_the_defaults_it_states_are_the_codes() -> None:
    page = text()
    params = inspect.signature(hydra.Worker).parameters
    assert params["claim_timeout"].default == timedelta(seconds=60)
    assert "60 s by default" in page
    assert params["heartbeat_interval"].default == timedelta(seconds=10)
    assert hydra.clock.RESYNC_INTERVAL_S == 30 and "every 30 s" in page
    assert hydra.clock.SAMPLES == 5 and "fastest of 5 round trips" in page
    assert hydra.clock.SKEW_WARNING_MS == 1000 and "more\n  than 1 s off" in page
    assert hydra.runner.LEASE_GUARD_FRACTION == 0.75 and "three quarters" in page
    window = hydra.store.sql.store.RECONNECT_WINDOW
    assert window.total_seconds() == 30
    assert "reconnect_window=timedelta(seconds=30))` (the default" in page
    assert hydra.engine.DEFAULT_MAX_PAYLOAD_BYTES == 8 * 1024 * 1024 and "8 MiB" in page
    assert hydra.textsafe.MAX_ERROR_TYPE_CHARS == 255
    assert hydra.textsafe.MAX_ERROR_MESSAGE_CHARS == 64 * 1024 and "64 KiB" in page
    assert hydra.retry.MAX_ATTEMPTS == 2**31 - 1 and "2**31 - 1" in page
    policy = hydra.RetryPolicy(initial_backoff=timedelta(hours=1))
    assert policy.backoff_ms(1) == 3_600_000  # "the larger of 5 minutes and 100 times"


def test_every_metric_it_names_is_exported() -> None:
    named = set(re.findall(r"`(hydra_[a-z_]+)`", text()))
    assert named, "the page names no metric"
    assert named <= hydra.Metrics().names()


def test_it_is_linked_from_the_readme() -> None:
    readme = (PAGE.parents[1] / "README.md").read_text()
    assert "docs/operating.md" in readme
