"""The deploy tests' environment: a fresh namespace on each store, on a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

MakeEnv = Callable[..., TestEnvironment]


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"deploy-{uuid.uuid4().hex[:12]}")
        options.setdefault("clock", FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
        return TestEnvironment(store=store_factory(), **options)

    return make
