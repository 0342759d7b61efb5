"""Workers in several OS processes sharing one database: SQLite, PostgreSQL, MySQL/MariaDB.

The child processes run ``mp_worker.py`` (which also defines the workflows; this module
loads it by path so both sides register the same ones). Step bodies append
``execution_id,step,pid`` lines to a ledger file, so the parent can count how often each
step body ran and in which process, whatever the database says.

PostgreSQL and MySQL run only when ``HYDRA_TEST_POSTGRES_URL`` / ``HYDRA_TEST_MYSQL_URL``
are set; every test uses its own namespace, so runs sharing a database do not interfere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
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

T = TypeVar("T")

WORKER_SCRIPT = Path(__file__).parent / "mp_worker.py"


def _load_worker_module() -> Any:
    name = "hydra_tests_mp_worker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, WORKER_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mp = _load_worker_module()

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url(sql_store_factory: BackendStoreFactory, tmp_path: Path) -> str:
    """This session's isolated database on each SQL backend (see tests/conftest.py);
    SQLite gets a fresh file per test."""
    if sql_store_factory.backend == "sqlite":
        return f"sqlite:///{tmp_path}/hydra.db"
    assert sql_store_factory.url is not None
    return sql_store_factory.url


@pytest.fixture
def namespace() -> str:
    return f"mp-{uuid.uuid4().hex}"


@pytest.fixture
def store(db_url: str) -> Iterator[hydra.SQLStore]:
    s = hydra.SQLStore(db_url, auto_migrate=True)
    try:
        yield s
    finally:
        s.close()


# -- helpers -------------------------------------------------------------------------------
class Child:
    """One ``mp_worker.py`` process, with its result file and its stdout/stderr log."""

    def __init__(self, tmp_path: Path, label: str, args: list[str]) -> None:
        self.result = tmp_path / f"{label}.result.jsonl"
        self.log = tmp_path / f"{label}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), "--result", str(self.result), *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.result.exists():
            return []
        text = self.result.read_text()
        lines = text.splitlines(keepends=True)
        out = [json.loads(line) for line in lines if line.endswith("\n")]
        return [e for e in out if kind is None or e["event"] == kind]

    def describe(self) -> str:
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return (
            f"child pid {self.pid} returncode {self.proc.poll()}\n--- child output ---\n"
            f"{log[-4000:]}\n--- child events ---\n"
            + "\n".join(json.dumps(e) for e in self.events()[-40:])
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        wait_for(lambda: self.events("ready"), timeout, "the child's workers to start", self)

    def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM: the child shuts its workers down (runs in flight finish) and exits."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Kill the process if it still runs (also when it is SIGSTOPped) and reap it."""
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            self._log_file.close()


def wait_for(
    predicate: Callable[[], T], timeout: float, what: str, child: Child | None = None
) -> T:
    """Poll ``predicate`` until truthy; fail (with the child's output) on timeout or death."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None and child.proc.poll() is not None:
            pytest.fail(f"child exited while waiting for {what}\n{child.describe()}")
        if time.monotonic() > deadline:
            extra = f"\n{child.describe()}" if child is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(0.01)


def read_ledger(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # a line being written right now
        eid, step, pid = line.strip().split(",")
        entries.append((eid, step, int(pid)))
    return entries


def ints_in(value: Any) -> set[int]:
    """Every int inside a decoded JSON value."""
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, dict):
        return set().union(*(ints_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(ints_in(v) for v in value)) if value else set()
    return set()


def child_args(
    db_url: str, namespace: str, ledger: Path, mode: str, worker_ids: list[str], **opts: Any
) -> list[str]:
    args = ["--url", db_url, "--namespace", namespace, "--ledger", str(ledger), "--mode", mode]
    for worker_id in worker_ids:
        args += ["--worker-id", worker_id]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def stopped(pid: int) -> bool:
    """Whether the process is in the stopped state (Linux /proc; assumed elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


# -- tests ---------------------------------------------------------------------------------
def test_200_workflows_3_workers_2_processes_each_step_once(
    db_url: str, namespace: str, store: hydra.SQLStore, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    engine = hydra.Engine(store, namespace=namespace)
    total = 200
    ids = [engine.start_workflow(mp.THREE_STEPS, {"n": i}) for i in range(total)]
    # A generous lease: this test is about contention, not takeovers.
    timing: dict[str, Any] = {"poll_interval": 0.05, "heartbeat_interval": 0.5, "claim_timeout": 10}
    child = Child(
        tmp_path,
        "child",
        child_args(
            db_url,
            namespace,
            ledger,
            "fast",
            ["mp-child-1", "mp-child-2"],
            concurrency=4,
            **timing,
        ),
    )
    worker = hydra.Worker(engine, worker_id="mp-parent", concurrency=4, **timing)
    for wf in mp.workflows(str(ledger), "fast"):
        worker.register(wf)
    try:
        child.wait_ready()
        worker.start()

        def all_done() -> bool:
            done = engine.list_executions(status="completed", limit=total + 1)
            return len(done) == total

        wait_for(all_done, 30, f"{total} executions to complete", child)
        assert child.terminate() == 0, child.describe()
    finally:
        worker.shutdown(timeout=5)
        child.stop()

    entries = read_ledger(ledger)
    counts = Counter((eid, step) for eid, step, _ in entries)
    expected = {(eid, step) for eid in ids for step in ("a", "b", "c")}
    assert set(counts) == expected
    repeated = {key: n for key, n in counts.items() if n != 1}
    assert not repeated, f"step bodies ran more than once: {repeated}"
    pids = {pid for _, _, pid in entries}
    assert pids == {os.getpid(), child.pid}, "both processes should have done some work"
    completed_by = Counter(
        e["worker_id"]
        for e in child.events("log")
        if e["msg"].startswith("execution ") and e["msg"].endswith(" completed")
    )
    assert set(completed_by) == {"mp-child-1", "mp-child-2"}, completed_by
    assert sum(completed_by.values()) == Counter(pid for _, _, pid in entries)[child.pid] // 3

    ran_by = {(eid, step): pid for eid, step, pid in entries}
    for n, eid in enumerate(ids):
        ex = engine.get_execution(eid)
        assert ex.status == hydra.Status.COMPLETED
        assert ex.attempt == 1
        assert [s.name for s in ex.steps] == ["a", "b", "c"]
        for s in ex.steps:
            assert s.status == hydra.StepStatus.COMPLETED and s.attempts == 1
            assert s.output == {"by": ran_by[(eid, s.name)]}
        assert ex.output == {"n": n, **{s.name: s.output for s in ex.steps}}


def test_sigkill_mid_step_is_taken_over(
    db_url: str,
    namespace: str,
    store: hydra.SQLStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = tmp_path / "ledger.txt"
    engine = hydra.Engine(store, namespace=namespace)
    timing: dict[str, Any] = {
        "poll_interval": 0.05,
        "heartbeat_interval": 0.3,
        "claim_timeout": 1.5,
    }
    child = Child(
        tmp_path,
        "child",
        child_args(db_url, namespace, ledger, "hang", ["mp-child"], concurrency=1, **timing),
    )
    worker = hydra.Worker(engine, worker_id="mp-parent", concurrency=1, **timing)
    for wf in mp.workflows(str(ledger), "fast"):
        worker.register(wf)
    try:
        child.wait_ready()
        eid = engine.start_workflow(mp.FIRST_SLOW_LAST, {})
        wait_for(
            lambda: (eid, "slow", child.pid) in read_ledger(ledger),
            15,
            "the child to enter step slow",
            child,
        )
        os.kill(child.pid, signal.SIGKILL)
        assert child.proc.wait(timeout=10) == -signal.SIGKILL
        worker.start()
        ex = engine.wait(eid, timeout=15)
    finally:
        worker.shutdown(timeout=5)
        child.stop()

    parent = os.getpid()
    assert ex.status == hydra.Status.COMPLETED, ex
    assert ex.attempt == 2
    assert ex.output == {"first": {"n": 1}, "slow": {"by": parent}, "last": {"by": parent}}
    assert [(s.name, s.status, s.attempts) for s in ex.steps] == [
        ("first", hydra.StepStatus.COMPLETED, 1),
        ("slow", hydra.StepStatus.COMPLETED, 1),
        ("last", hydra.StepStatus.COMPLETED, 1),
    ]
    entries = [(step, pid) for e, step, pid in read_ledger(ledger) if e == eid]
    assert sorted(entries) == sorted(
        [
            ("first", child.pid),
            ("slow", child.pid),
            ("slow", parent),
            ("last", parent),
        ]
    )
    assert any(f"took over execution {eid}" in r.getMessage() for r in caplog.records)


def test_sigstop_between_steps_past_lease_enters_no_step(
    db_url: str, namespace: str, store: hydra.SQLStore, tmp_path: Path
) -> None:
    """A worker process frozen (SIGSTOP) between two steps past its lease, whose
    execution another worker took over and completed meanwhile, must not enter the next
    step's body when it wakes, even before its heartbeat thread notices (the child holds
    its heartbeat thread back): the run's lease guard re-validates the lease first."""
    ledger = tmp_path / "ledger.txt"
    engine = hydra.Engine(store, namespace=namespace)
    claim_timeout = 1.5
    timing: dict[str, Any] = {
        "poll_interval": 0.05,
        "heartbeat_interval": 0.3,
        "claim_timeout": claim_timeout,
    }
    child = Child(
        tmp_path,
        "child",
        child_args(
            db_url,
            namespace,
            ledger,
            "between",
            ["mp-child"],
            concurrency=1,
            exit_after_abandon=True,
            max_seconds=30,
            **timing,
        ),
    )
    worker = hydra.Worker(engine, worker_id="mp-parent", concurrency=1, **timing)
    for wf in mp.workflows(str(ledger), "fast"):
        worker.register(wf)
    parent = os.getpid()
    try:
        child.wait_ready()
        eid = engine.start_workflow(mp.FIRST_SLOW_LAST, {})
        wait_for(lambda: child.events("between_entered"), 15, "the child to pass first", child)
        os.kill(child.pid, signal.SIGSTOP)
        wait_for(lambda: stopped(child.pid), 5, "the child to stop", child)

        def lease_expired() -> bool:
            row = store.get_execution(namespace, eid)
            assert row is not None and row.lease_owner == "mp-child"
            return row.lease_expires_at is not None and (
                row.lease_expires_at < engine.clock.now_ms()
            )

        wait_for(lease_expired, claim_timeout + 5, "the child's lease to expire")
        worker.start()
        done = engine.wait(eid, timeout=15)
        worker.shutdown(timeout=5)
        os.kill(child.pid, signal.SIGCONT)
        wait_for(lambda: child.events("between_left"), 10, "the child to wake up", child)
        try:
            returncode: int | None = child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            returncode = None
        after = engine.get_execution(eid)
    finally:
        worker.shutdown(timeout=5)
        child.stop()

    assert done == after
    assert after.status == hydra.Status.COMPLETED
    assert after.output == {"first": {"n": 1}, "slow": {"by": parent}, "last": {"by": parent}}
    assert returncode == 0, child.describe()
    # The child woke up, reached slow and stopped before its body: the ledger has no slow
    # (and no last) from the child; it never heartbeated after waking.
    entries = [(step, pid) for e, step, pid in read_ledger(ledger) if e == eid]
    assert sorted(entries) == sorted([("first", child.pid), ("slow", parent), ("last", parent)]), (
        child.describe()
    )
    assert child.events("between_continued")[0]["stopped"] > 0, child.describe()


def test_sigstop_past_lease_cannot_write(
    db_url: str, namespace: str, store: hydra.SQLStore, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    engine = hydra.Engine(store, namespace=namespace)
    claim_timeout = 1.5
    timing: dict[str, Any] = {
        "poll_interval": 0.05,
        "heartbeat_interval": 0.3,
        "claim_timeout": claim_timeout,
    }
    child = Child(
        tmp_path,
        "child",
        child_args(
            db_url,
            namespace,
            ledger,
            "stop",
            ["mp-child"],
            concurrency=1,
            exit_after_abandon=True,
            max_seconds=30,
            **timing,
        ),
    )
    worker = hydra.Worker(engine, worker_id="mp-parent", concurrency=1, **timing)
    for wf in mp.workflows(str(ledger), "fast"):
        worker.register(wf)
    parent = os.getpid()
    try:
        child.wait_ready()
        eid = engine.start_workflow(mp.FIRST_SLOW_LAST, {})
        wait_for(
            lambda: (eid, "slow", child.pid) in read_ledger(ledger),
            15,
            "the child to enter step slow",
            child,
        )
        os.kill(child.pid, signal.SIGSTOP)
        wait_for(lambda: stopped(child.pid), 5, "the child to stop", child)

        # Past the lease: the row's lease has expired while the child sleeps frozen.
        def lease_expired() -> bool:
            row = store.get_execution(namespace, eid)
            assert row is not None and row.status == hydra.Status.RUNNING
            assert row.lease_owner == "mp-child"
            return row.lease_expires_at is not None and (
                row.lease_expires_at < engine.clock.now_ms()
            )

        wait_for(lease_expired, claim_timeout + 5, "the child's lease to expire")
        worker.start()
        done = engine.wait(eid, timeout=15)
        worker.shutdown(timeout=5)
        assert not child.events("slow_continued"), "the child ran while it was stopped"
        before = engine.get_execution(eid)

        os.kill(child.pid, signal.SIGCONT)
        # The child finishes its step, tries to checkpoint it, is refused, abandons the
        # run and exits 0 (it sleeps out the rest of its 3 s step first).
        try:
            returncode: int | None = child.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            returncode = None  # reported below, after what the store says
        after = engine.get_execution(eid)
    finally:
        worker.shutdown(timeout=5)
        child.stop()

    # The execution is the parent's, and the child's late write changed nothing.
    assert done == before
    assert after == before
    assert returncode == 0, child.describe()
    assert after.status == hydra.Status.COMPLETED
    assert after.attempt == 2
    assert after.output == {"first": {"n": 1}, "slow": {"by": parent}, "last": {"by": parent}}
    slow = after.step("slow")
    assert slow is not None and slow.output == {"by": parent}
    assert after.worker_id != "mp-child"
    for s in after.steps:
        assert s.status == hydra.StepStatus.COMPLETED and s.attempts == 1
        assert child.pid not in ints_in(s.output), s
    assert child.pid not in ints_in(after.output)

    # The child really tried: its step returned after the takeover, and it lost the lease.
    returning = child.events("slow_returning")
    assert [(e["execution_id"], e["by"]) for e in returning] == [(eid, child.pid)]
    assert after.completed_at is not None
    assert returning[0]["t"] > after.completed_at.timestamp()
    abandoned = [
        e
        for e in child.events("log")
        if e["msg"].startswith(f"abandoning execution {eid}") and "lost the lease" in e["msg"]
    ]
    assert len(abandoned) == 1, child.describe()
    assert child.events("exit")[-1]["reason"] == "abandoned"

    entries = [(step, pid) for e, step, pid in read_ledger(ledger) if e == eid]
    assert sorted(entries) == sorted(
        [
            ("first", child.pid),
            ("slow", child.pid),
            ("slow", parent),
            ("last", parent),
        ]
    )
