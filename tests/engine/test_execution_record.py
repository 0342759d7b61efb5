"""``Execution`` carries when it was first due and what started it (``run_at``, the
trigger), read the same by ``get_execution`` and ``list_executions`` on every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import hydra
from hydra.store.base import Store
from hydra.testing import TestEnvironment


def test_run_at_and_the_trigger_are_on_the_execution(store_factory: Callable[[], Store]) -> None:
    env = TestEnvironment(store=store_factory(), namespace=f"t-{uuid.uuid4().hex[:10]}")
    later = env.clock.now() + timedelta(hours=3)
    now_id = env.start("report", None)
    later_id = env.start("report", None, run_at=later)
    env.engine.register_cron("0 * * * *", "hourly", workflow="report")
    env.advance(timedelta(hours=1))
    fired_ids = [
        e.id for e in env.engine.list_executions(workflow_name="report") if e.trigger_type == "cron"
    ]
    assert fired_ids, "the hourly slot fired"
    cron_id = fired_ids[0]

    started_now = env.execution(now_id)
    assert started_now.run_at == started_now.created_at
    assert (started_now.trigger_type, started_now.trigger_source) == ("api", None)
    assert env.execution(later_id).run_at == later
    fired = env.execution(cron_id)
    assert (fired.trigger_type, fired.trigger_source) == ("cron", "hourly")
    listed = {e.id: e for e in env.engine.list_executions()}
    assert listed[later_id].run_at == later
    assert listed[cron_id].trigger_source == "hourly"
    assert isinstance(fired, hydra.Execution)
