"""Messages across SIGKILLed worker processes: none lost, none received twice.

The worker processes run ``msg_worker.py`` (workflow ``mp-receiver``: receive ``count``
messages on topic ``m``, a step after each). The ledger it writes tells the parent where
the workflow code got to in which process, whatever the database says.

- A worker is SIGKILLed while executions wait in ``hydra.receive``; their messages (and a
  redelivery of one, with its idempotency key) are sent while no worker runs; a new worker
  process completes every execution with exactly its messages, each received once.
- A worker is SIGKILLed right after a receive returned (the message taken, its
  checkpoint committed with the consume) and before the next step's checkpoint: the next
  worker takes the execution over, replays the receive from its checkpoint (the same
  message; the next receive gets the next one) and completes.

SQLite (a file per test), PostgreSQL and MySQL/MariaDB when their URL is set.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import hydra
from tests.conftest import BackendStoreFactory

pytestmark = pytest.mark.slow

T = TypeVar("T")
WORKER_SCRIPT = Path(__file__).parent / "msg_worker.py"
RECEIVER = "mp-receiver"
TOPIC = "m"


@pytest.fixture
def db_url(sql_store_factory: BackendStoreFactory, tmp_path: Path) -> str:
    if sql_store_factory.backend == "sqlite":
        return f"sqlite:///{tmp_path}/hydra.db"
    assert sql_store_factory.url is not None
    return sql_store_factory.url


@pytest.fixture
def engine(db_url: str) -> Iterator[hydra.Engine]:
    store = hydra.SQLStore(db_url, auto_migrate=True)
    try:
        yield hydra.Engine(store, namespace=f"msg-kill-{uuid.uuid4().hex}")
    finally:
        store.close()


class WorkerProcess:
    """One ``msg_worker.py`` process; its output goes to a log file."""

    def __init__(self, tmp_path: Path, label: str, engine: hydra.Engine, url: str, mode: str):
        self.log = tmp_path / f"{label}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER_SCRIPT),
                    f"--url={url}",
                    f"--namespace={engine.namespace}",
                    f"--ledger={tmp_path / 'ledger.csv'}",
                    f"--mode={mode}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"the worker did not start:\n{self.output()}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no release of what it holds."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for each in started:
            each.kill()


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def waiting_in_receive(engine: hydra.Engine, eid: str) -> bool:
    ex = engine.get_execution(eid)
    return ex.status == hydra.Status.SLEEPING and ex.wait_topic == TOPIC


def ledger(tmp_path: Path) -> list[tuple[str, str, int]]:
    path = tmp_path / "ledger.csv"
    if not path.exists():
        return []
    rows = [line.split(",") for line in path.read_text().splitlines()]
    return [(eid, what, int(pid)) for eid, what, pid in rows]


def assert_received_once(engine: hydra.Engine, eid: str, payloads: list[Any]) -> None:
    """Completed with ``payloads`` in order; each stored message received once, by the
    receive whose checkpoint names it."""
    done = engine.wait(eid, timeout=15)
    assert done.status == hydra.Status.COMPLETED, (eid, done.error)
    assert done.output == {"got": payloads}
    messages = engine.list_messages(eid)
    assert [m.payload for m in messages] == payloads, "a message was stored twice or lost"
    assert [m.received_by for m in messages] == [f"receive-{k + 1}" for k in range(len(payloads))]
    assert all(m.received_at is not None for m in messages)
    by_receive = {
        s.name: s.detail["message"]
        for s in done.steps
        if s.kind == "receive" and s.status == hydra.StepStatus.COMPLETED
    }
    assert by_receive == {f"receive-{k + 1}": m.id for k, m in enumerate(messages)}


def test_messages_sent_while_no_worker_runs_are_each_received_once(
    engine: hydra.Engine, db_url: str, tmp_path: Path, processes: list[WorkerProcess]
) -> None:
    first = WorkerProcess(tmp_path, "first", engine, db_url, "fast")
    processes.append(first)
    eids = [engine.start_workflow(RECEIVER, {"count": 2}) for _ in range(5)]
    wait_for(lambda: all(waiting_in_receive(engine, eid) for eid in eids), 15, "all to wait")
    first.kill()

    sent: dict[str, list[Any]] = {}
    for n, eid in enumerate(eids):
        sent[eid] = [{"n": n, "k": 0}, {"n": n, "k": 1}]
        engine.send(eid, TOPIC, sent[eid][0], idempotency_key=f"{eid}-0")
        engine.send(eid, TOPIC, sent[eid][1], idempotency_key=f"{eid}-1")
        # A webhook delivered twice: stored once, received once.
        engine.send(eid, TOPIC, sent[eid][0], idempotency_key=f"{eid}-0")
    for eid in eids:  # still waiting: nothing ran them meanwhile
        assert engine.get_execution(eid).status == hydra.Status.SLEEPING

    second = WorkerProcess(tmp_path, "second", engine, db_url, "fast")
    processes.append(second)
    for eid in eids:
        assert_received_once(engine, eid, sent[eid])
        assert engine.get_execution(eid).attempt == 1  # no lease was held by the killed one
    runs = Counter((eid, what) for eid, what, _ in ledger(tmp_path))
    for eid in eids:
        for k in (0, 1):
            assert runs[eid, f"received-{k}"] == 1
            assert runs[eid, f"after-{k}"] == 1
    assert {pid for _, _, pid in ledger(tmp_path)} == {second.proc.pid}


def test_a_worker_killed_right_after_a_receive_loses_and_repeats_nothing(
    engine: hydra.Engine, db_url: str, tmp_path: Path, processes: list[WorkerProcess]
) -> None:
    first = WorkerProcess(tmp_path, "first", engine, db_url, "hang-after-receive")
    processes.append(first)
    eid = engine.start_workflow(RECEIVER, {"count": 2})
    wait_for(lambda: waiting_in_receive(engine, eid), 15, "the execution to wait")
    engine.send(eid, TOPIC, "first message")
    # The receive returned in the first process: its checkpoint (with the consume) is
    # committed, the step after it has not started.
    wait_for(
        lambda: (eid, "received-0", first.proc.pid) in ledger(tmp_path),
        15,
        "the first process to receive",
    )
    first.kill()
    [message] = engine.list_messages(eid)
    assert message.received_by == "receive-1"  # taken and checkpointed before the kill
    assert engine.get_execution(eid).status == hydra.Status.RUNNING  # its lease still held

    engine.send(eid, TOPIC, "second message")
    second = WorkerProcess(tmp_path, "second", engine, db_url, "fast")
    processes.append(second)
    assert_received_once(engine, eid, ["first message", "second message"])
    assert engine.get_execution(eid).attempt == 2  # taken over after the lease expired

    entries = ledger(tmp_path)
    assert [(what, pid) for _, what, pid in entries] == [
        ("received-0", first.proc.pid),
        # The replay: the receive's checkpoint returns the same message, not the next one.
        ("received-0", second.proc.pid),
        ("after-0", second.proc.pid),
        ("received-1", second.proc.pid),
        ("after-1", second.proc.pid),
    ]
