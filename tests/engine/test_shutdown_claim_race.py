"""A claim still in flight when ``Worker.shutdown`` begins: its executions are given back
(pending, no attempt used, their code never called), and shutdown returns only then.

Found by a CLI test: ``with hydra.Worker(...)`` could return while a run it had just
claimed went on for another second (the claim landed after shutdown had checked that no
run was in flight)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any, cast

import hydra
from hydra.store.base import Claim, Store
from hydra.testing import MemoryStore

WAIT = 30  # seconds: a bound against hangs, not an expectation


class HeldClaims:
    """A store whose first claim that finds work waits until ``let_go`` is set."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.claiming = threading.Event()
        self.let_go = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def claim(
        self, namespace: str, workflow_names: Sequence[str], worker_id: str, **kw: Any
    ) -> list[Claim]:
        claims = self._inner.claim(namespace, workflow_names, worker_id, **kw)
        if claims and not self.let_go.is_set():
            self.claiming.set()
            self.let_go.wait(WAIT)
        return claims


def test_a_claim_landing_during_shutdown_is_given_back_before_shutdown_returns() -> None:
    calls: list[str] = []

    @hydra.workflow("late-claim")
    def late_claim(ctx: hydra.WorkflowContext, _: None) -> str:
        calls.append(ctx.execution_id)
        return "ran"

    held = HeldClaims(MemoryStore())
    engine = hydra.Engine(cast(Store, held), namespace=f"t-{uuid.uuid4().hex[:8]}")
    worker = hydra.Worker(engine, poll_interval=0.01)
    worker.register(late_claim)
    worker.start()
    eid = engine.start_workflow(late_claim, None)
    assert held.claiming.wait(WAIT)  # the claim is taken, its reply not yet handled
    stopping = threading.Thread(target=worker.shutdown)
    stopping.start()
    stopping.join(0.2)  # shutdown is under way (it waits for nothing it knows of)
    held.let_go.set()
    stopping.join(WAIT)
    assert not stopping.is_alive()
    execution = engine.get_execution(eid)
    assert (execution.status, execution.worker_id, calls) == ("pending", None, [])
    assert execution.attempt == 1  # the claim's attempt; release uses none
