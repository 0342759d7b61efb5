"""``hydra.gather`` under a real ``hydra.Worker`` on a SQL store: the branches run at
the same time (each body waits at a barrier the others must reach, so the overlap is
certain), and their recorded times overlap."""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hydra
from hydra.store.base import Store

from .conftest import WAIT

NAMES = ("a", "b", "c")


@pytest.fixture
def engine(sql_store_factory: Callable[[], Store]) -> hydra.Engine:
    return hydra.Engine(sql_store_factory(), namespace=f"g-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def worker(engine: hydra.Engine) -> Iterator[hydra.Worker]:
    worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.5, claim_timeout=10)
    yield worker
    worker.shutdown(timeout=5)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_branches_overlap_in_time_under_a_real_worker(
    engine: hydra.Engine, worker: hydra.Worker, mode: str
) -> None:
    barrier = threading.Barrier(len(NAMES), timeout=WAIT)
    meeting = asyncio.Barrier(len(NAMES)) if mode == "async" else None

    def body(name: str) -> str:
        barrier.wait()  # passes only once every branch has entered its body
        return name

    async def async_body(name: str) -> str:
        assert meeting is not None
        async with asyncio.timeout(WAIT):
            await meeting.wait()
        return name

    @hydra.workflow("overlap-sync")
    def overlap_sync(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.gather(
            ctx,
            {n: functools.partial(body, n) for n in NAMES},
            retry=hydra.RetryPolicy(max_attempts=1),
        )

    @hydra.workflow("overlap-async")
    async def overlap_async(ctx: hydra.AsyncWorkflowContext, _: None) -> Any:
        return await hydra.gather(
            ctx,
            {n: functools.partial(async_body, n) for n in NAMES},
            retry=hydra.RetryPolicy(max_attempts=1),
        )

    workflow = overlap_sync if mode == "sync" else overlap_async
    worker.register(workflow)
    worker.start()
    execution = engine.wait(engine.start_workflow(workflow, None), timeout=WAIT)
    assert execution.status == "completed", execution.error
    assert execution.output == {n: n for n in NAMES}
    steps = [execution.step(n) for n in NAMES]
    starts = [s.started_at for s in steps if s is not None and s.started_at is not None]
    ends = [s.completed_at for s in steps if s is not None and s.completed_at is not None]
    assert len(starts) == len(ends) == len(NAMES)
    assert max(starts) <= min(ends)  # every branch started before any finished
