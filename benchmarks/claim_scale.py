"""Claim latency, throughput and purges with a full table (issue 9: "the claim must stay
fast whatever else is in the table"; issue 15: the same with queues, waiting executions
and a history being purged).

    .venv/bin/python benchmarks/claim_scale.py                        # every backend
    .venv/bin/python benchmarks/claim_scale.py --backend sqlite --quick
    .venv/bin/python benchmarks/claim_scale.py --backend postgres --no-purge

For each backend, on databases of its own (PostgreSQL and MariaDB/MySQL databases
``hydra_claimbench_<empty|loaded>``, SQLite files in a temporary directory; all dropped at
the end), with an empty table and with a loaded one (a queue ``emails``,
``concurrency=8``, registered in both):

- claim latency: single claims of 1 execution (``store.claim(ns, [name], ..., limit=1)``),
  p50 and p95: ``claim1`` of the drained workflow (the one with the waiting executions
  below, so every claim walks its four lanes), 2,000 of them (or as many as fit in
  ``--cap`` seconds); ``plain`` of a workflow that has no other rows (1,000); ``claim3``
  of 3 names, the drained workflow and two others (1,000);
- T1-style throughput (``drain``): N (1,000) one-step workflows started, then drained by
  one ``hydra.Worker`` (concurrency 16) in the measuring process; workflows/s from
  ``worker.start()`` to the last ``completed_at``;
- the same through the limited queue (``qdrain``): started with ``queue="emails"``, so
  every claim takes a slot (admission) and every end frees one.

The load (the default; ``--waiting``, ``--finished``, ``--unregistered`` change the
counts), in the namespace the claims run in:

- 1,000,000 finished executions, half of them of the drained workflow, 2 % failed, each
  with one step row (so that a purge deletes related rows), completed over half an hour
  a month ago;
- 100,000 waiting executions of the drained workflow: 60 % sleeping until tomorrow (lane
  ``w0:default``), 20 % waiting for a message without a deadline (sleeping, ``wake_at``
  NULL, ``wait_topic`` set), 10 % each scheduled for tomorrow in the limited queue at
  priority 0 and 10 (lanes ``w0:emails``, ``w10:emails``);
- 100,000 due ``pending`` executions of a workflow no worker registers (issue 9's load).

inserted server-side (``INSERT ... SELECT`` over ``generate_series`` / ``seq_1_to_N`` / a
recursive CTE) with realistic values, then ANALYZEd on PostgreSQL and MariaDB (what
autovacuum / InnoDB's persistent statistics do by themselves after such a load; SQLite
gets no ANALYZE, as in a real deployment).

Every round measures each state once, in a fresh process, empty and loaded in an order
that alternates from round to round (the machine's speed drifts); the report gives
medians of the rounds. With the loaded table it prints the query plans (PostgreSQL
``EXPLAIN (ANALYZE, BUFFERS)``, MariaDB ``EXPLAIN`` and ``ANALYZE FORMAT=JSON``, SQLite
``EXPLAIN QUERY PLAN``) of every statement ``SQLStore.claim`` really sends (captured on
its way to the driver: the lane probes (``lane_chain``, ``NEXT_LANE``), the per-lane
pick, on PostgreSQL the one-statement claim), for the drained workflow, the plain one and 3 names.

Then the purge (``--no-purge`` to skip): on the loaded database, one thread deletes the
finished executions as ``engine.purge(older_than=1 day)`` does
(``store.purge_executions`` in batches of at most 1,000, each one transaction followed by
a rest as long, and on SQLite kept to about 10 ms: ``hydra.purging.PurgePacer``), as a
worker's retention would, while another claims continuously (``--purge-process``: the
purge in a process of its own instead, as ``hydra executions purge`` would run): it
inserts one due execution of the drained workflow, claims it (timed) and finishes it,
over and over; first ``--quiet`` seconds without the purge (the
baseline), then during it. Reported: the claims' p50 / p99 / max during the purge and
before, how many took over 50 ms, the purge's rows/s, its batches' times and its settles
(``SQLStore.settle_purge``: SQLite's checkpoints), whether anything waited for a lock
(``LockWatch``; on SQLite the claimer's waits for the write turn, and of each the part
the purge held it), and the garbage collector's passes before and during (``GcWatch``:
a full one stops every thread of the process). The purge
stops after ``--purge-cap`` seconds if it has not finished (what it deleted is given).

``--purge-only``: the load and the purge, no rounds nor plans (``--batch`` sets the
purge's batch size). ``--lanes-probe``: only, on an empty table, the drained workflow's
claim with its default lane alone and with one execution scheduled for tomorrow in each
of two lanes of the limited queue (the cost of lanes, apart from the rows), alternated.

Results: ``benchmarks/results/claim-scale-<time>[-<options>].{json,md,txt}``
(``--out`` elsewhere; ``claim-scale-latest.json`` for a full run of every backend).
Issue 9's before/after comparison with main (``--before-ref``) was dropped with the
schema change of revision 0007: the load writes the claim lanes that code did not have.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hydra.purging import PURGE_BATCH, PURGE_PACING, PurgePacer
from hydra.store.queues import waiting_lane

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DB_NAME = "hydra_claimbench"
NS = "bench"
UNREGISTERED = "report-nightly"
DRAINED = "bench-one"
PLAIN = ["bench-claim"]
THREE = [DRAINED, "bench-claim-b", "bench-claim-c"]
QUEUE = "emails"
QUEUE_CONCURRENCY = 8
CONCURRENCY = 16
STATES = ("empty", "loaded")
DAY_MS = 86_400_000
SLOW_MS = 50.0
COLUMNS = [
    "id",
    "namespace",
    "workflow_name",
    "status",
    "input_data",
    "output_data",
    "error_type",
    "error_message",
    "attempt",
    "max_attempts",
    "retry_backoff_ms",
    "timeout_ms",
    "timeout_at",
    "idempotency_key",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
    "run_at",
    "sleep_until",
    "next_retry_at",
    "wake_at",
    "lease_owner",
    "lease_token",
    "lease_expires_at",
    "trigger_type",
    "trigger_source",
    "wait_topic",
    "queue_name",
    "priority",
    "claim_lane",
]


def now_ms() -> int:
    return int(time.time() * 1000)


def pct(samples: list[float], q: float) -> float:
    """The q-quantile of sorted samples (nearest rank below)."""
    return samples[min(len(samples) - 1, int(len(samples) * q))]


# ==========================================================================================
# Children: one process per measurement.
# ==========================================================================================
def _store(url: str) -> Any:
    from hydra.store.sql import SQLStore

    return SQLStore(url, auto_migrate=True)


def _insert_due(store: Any, names: list[str], count: int) -> list[str]:
    """``count`` due pending executions of ``names`` (round robin); their ids."""
    from sqlalchemy import text

    t = now_ms() - 60_000
    rows = [
        {
            "id": str(uuid.uuid4()),
            "ns": NS,
            "wf": names[i % len(names)],
            "inp": json.dumps({"n": i}).encode(),
            "t": t + i,
        }
        for i in range(count)
    ]
    sql = text(
        "INSERT INTO workflow_executions (id, namespace, workflow_name, status, input_data, "
        "attempt, max_attempts, retry_backoff_ms, created_at, updated_at, run_at, wake_at, "
        "lease_token, trigger_type, queue_name, priority, claim_lane) VALUES (:id, :ns, :wf, "
        "'pending', :inp, 0, 3, 1000, :t, :t, :t, :t, 0, 'api', 'default', 0, "
        "'f12147483648:default')"
    )
    # Through the store's write path, as start_workflow's insert goes: on SQLite it takes
    # the process's write turn with the claims and the purge (a write that skipped it
    # would make them wait in SQLite's busy handler instead).
    store._run(lambda conn: conn.execute(sql, rows), write=True)
    return [r["id"] for r in rows]


def _retire(store: Any, ids: list[str]) -> None:
    """Mark these rows finished (now: no purge of a day-old history takes them)."""
    from sqlalchemy import bindparam, text

    sql = text(
        "UPDATE workflow_executions SET status = 'completed', wake_at = NULL, claim_lane = NULL, "
        "lease_owner = NULL, lease_expires_at = NULL, completed_at = :now WHERE id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))

    def retire(conn: Any) -> None:
        for lo in range(0, len(ids), 500):
            conn.execute(sql, {"now": now_ms(), "ids": ids[lo : lo + 500]})

    store._run(retire, write=True)  # the store's write path, as _insert_due


def _claim_once(store: Any, names: list[str]) -> int:
    got = store.claim(NS, names, "bench-probe", now_ms=now_ms(), lease_ms=3_600_000, limit=1)
    return len(got)


def _latency(store: Any, names: list[str], count: int, cap_s: float) -> dict[str, Any]:
    ids = _insert_due(store, names, count)
    samples: list[float] = []
    deadline = time.perf_counter() + cap_s
    for _ in range(count):
        t = time.perf_counter()
        got = _claim_once(store, names)
        samples.append((time.perf_counter() - t) * 1000)
        assert got == 1, f"a claim took {got} executions"
        if time.perf_counter() > deadline and len(samples) >= 20:
            break
    _retire(store, ids)
    samples.sort()
    return {
        "claims": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": pct(samples, 0.95),
        "mean_ms": statistics.fmean(samples),
    }


def _engine(store: Any) -> Any:
    import hydra

    engine = hydra.Engine(store, namespace=NS)
    engine.register_queue(hydra.Queue(QUEUE, concurrency=QUEUE_CONCURRENCY))
    return engine


def _throughput(store: Any, n: int, queue: str | None) -> dict[str, Any]:
    from sqlalchemy import text

    import hydra

    class One(hydra.Workflow[int]):
        name = DRAINED

        def run(self, ctx: hydra.WorkflowContext, x: int) -> int:
            return hydra.step(ctx, "a", lambda: x + 1)

    engine = _engine(store)
    t = time.perf_counter()
    started = [engine.start_workflow(DRAINED, i, queue=queue) for i in range(n)]
    submit_s = time.perf_counter() - t
    t_first = store.get_execution(NS, started[0]).created_at  # the clock hydra stamps with
    # This run's rows only: created from t_first on, a short range of
    # ix_workflow_executions_list (the load's rows were all created before).
    done = text(
        "SELECT count(*), max(completed_at) FROM workflow_executions WHERE namespace = :ns "
        "AND created_at >= :t AND completed_at IS NOT NULL"
    )
    worker = hydra.Worker(engine, worker_id=f"claim-bench-{os.getpid()}", concurrency=CONCURRENCY)
    worker.register(One())
    t_go = time.time()
    worker.start()
    deadline = time.monotonic() + 900
    try:
        while True:
            with store.engine.connect() as conn:
                count, last = conn.execute(done, {"ns": NS, "t": t_first}).one()
            if count >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count}/{n} completed after 900 s (from {t_first})")
            time.sleep(0.02)
    finally:
        worker.shutdown(timeout=10)
    drain_s = last / 1000 - t_go
    return {"workflows": n, "drain_s": drain_s, "per_s": n / drain_s, "submit_per_s": n / submit_s}


def child_measure(spec: dict[str, Any]) -> dict[str, Any]:
    store = _store(spec["url"])
    try:
        _engine(store)  # the queue is registered before the first claim
        claims, cap = spec["claims"], spec["cap"]
        out = {
            "claim1": _latency(store, [DRAINED], claims, cap),
            "plain": _latency(store, PLAIN, claims // 2, cap / 2),
            "claim3": _latency(store, THREE, claims // 2, cap / 2),
            "drain": _throughput(store, spec["drain"], None),
            "qdrain": _throughput(store, spec["drain"], QUEUE),
        }
    finally:
        store.close()
    return out


# -- plans ------------------------------------------------------------------------------------
def _captured_claim(store: Any, names: list[str]) -> list[tuple[Any, dict[str, Any]]]:
    """The statements (and parameters) ``store.claim`` sends through ``Tx.rows``, whatever
    path it takes (the lane probes, the picks or the one-statement claim; not the
    executemany UPDATE by primary key of the multi-statement path)."""
    from hydra.store.sql import driver

    seen: list[tuple[Any, dict[str, Any]]] = []
    originals = {cls: cls.rows for cls in (driver.DriverTx, driver.CoreTx)}

    def recording(original: Any) -> Any:
        def rows(self: Any, stmt: Any, params: dict[str, Any]) -> Any:
            seen.append((stmt, dict(params)))
            return original(self, stmt, params)

        return rows

    for cls, original in originals.items():
        cls.rows = recording(original)  # type: ignore[method-assign]
    try:
        _claim_once(store, names)
    finally:
        for cls, original in originals.items():
            cls.rows = original  # type: ignore[method-assign]
    return seen


def _label(sql: str, params: dict[str, Any]) -> str:
    if sql.lstrip().startswith("UPDATE"):
        return "one-statement claim (fused)"
    if "l_after_0" in params:
        probes = sum(1 for k in params if k.startswith("l_after_"))
        wakes = sum(1 for k in params if k.startswith("l_lane_"))
        return f"lane chain of {probes}+{wakes} probes ({params.get('l_name')})"
    if "claim_lane >" in sql:
        return f"NEXT_LANE after {params.get('l_after')!r} ({params.get('l_name')})"
    if "wake_at <=" in sql:
        return f"pick of lane {params.get('c_lane')!r} ({params.get('c_name')})"
    return sql.split(" FROM ")[0][:60]


def child_plans(spec: dict[str, Any]) -> dict[str, Any]:
    from hydra.store.sql.driver import DriverStatement

    store = _store(spec["url"])
    plans: dict[str, Any] = {}
    try:
        _engine(store)
        for label, names in (
            ("drained workflow", [DRAINED]),
            ("plain workflow", PLAIN),
            ("3 names", THREE),
        ):
            ids = _insert_due(store, names, 30)
            # Claims first, as a running worker's store has made: the lanes the last one
            # saw (with the running lane the first one began) are what the next claim
            # probes together (SQLQueues._name_lanes).
            _claim_once(store, names)
            _claim_once(store, names)
            out = []
            for stmt, params in _captured_claim(store, names):
                compiled = DriverStatement(stmt, store.engine)
                out.append(
                    {
                        "statement": _label(compiled.sql, params),
                        "sql": compiled.sql,
                        "plan": _explain(store, compiled.sql, compiled.bind(params)),
                    }
                )
            _retire(store, ids)
            plans[label] = out
    finally:
        store.close()
    return plans


def _explain(store: Any, sql: str, params: Any) -> str:
    name = store.engine.dialect.name
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if name == "postgresql":
            # Runs the statement (rolled back below): actual rows and buffers.
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            text = "\n".join(r[0] for r in cur.fetchall())
        elif name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + sql, params)
            text = "\n".join(str(r[-1]) for r in cur.fetchall())
        else:
            cur.execute("EXPLAIN " + sql, params)
            cols = [d[0] for d in cur.description]
            text = "\n".join(json.dumps(dict(zip(cols, r, strict=True))) for r in cur.fetchall())
            cur.execute("ANALYZE FORMAT=JSON " + sql, params)
            text += "\n" + cur.fetchall()[0][0]
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    return text


# -- the purge ----------------------------------------------------------------------------------
#: how often the lock watcher looks (s)
WATCH_EVERY_S = 0.005
# A session of this database waiting for a lock another holds: PostgreSQL's wait events,
# InnoDB's transactions in LOCK WAIT (MariaDB 10.11's information_schema).
_LOCK_WAITERS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()",
    "mysql": "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
}


class LockWatch:
    """Whether anything waited for a lock during the purge, and for how long at most.

    A claim is blocked by the purge only if it waits for something the purge holds: on
    PostgreSQL and MariaDB a row or table lock, which a session of the database shows
    while it waits (``_LOCK_WAITERS``, read every WATCH_EVERY_S on a connection of its
    own: a wait longer than 50 ms is seen about ten times in a row); on SQLite the
    database's one write lock, which the claimer's thread takes its turn for in this
    process (``DriverPool.write_turn``, timed around each acquisition). The longest wait
    is given to the watcher's resolution on the servers, exactly on SQLite."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.dialect = store.engine.dialect.name
        self.samples = 0
        self.waiting_samples = 0
        self.longest_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn: Any = None

    def start(self, claimer_name: str) -> None:
        if self.dialect in _LOCK_WAITERS:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        elif self.store._driver is not None:
            driver = self.store._driver
            self._turn = driver._write_turn
            self._timed = _TimedTurn(self._turn, claimer_name, threading.current_thread().name)
            driver._write_turn = self._timed

    def stop(self) -> dict[str, Any]:
        if self._thread is None and self._turn is None:
            return {"how": "not measured"}
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._turn is not None:
            # Summarised later (``summary``): its loops, on the claimer's time, would
            # stop the claimer's thread (the GIL, and the collector they set off).
            self.store._driver._write_turn = self._turn
            return {"how": "summarised after the claimer stopped"}
        return {
            "how": f"sessions waiting for a lock, sampled every {WATCH_EVERY_S * 1000:.0f} ms",
            "samples": self.samples,
            "samples_with_a_waiter": self.waiting_samples,
            "longest_ms": self.longest_s * 1000,
        }

    def summary(self, stopped: dict[str, Any]) -> dict[str, Any]:
        """What ``stop`` returned, or on SQLite the turn's figures (once nothing else
        runs)."""
        return self._timed.summary() if self._turn is not None else stopped

    def _watch(self) -> None:
        from sqlalchemy import text

        query = text(_LOCK_WAITERS[self.dialect])
        since: float | None = None
        with self.store.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not self._stop.is_set():
                waiting = int(conn.execute(query).scalar() or 0) > 0
                now = time.perf_counter()
                self.samples += 1
                if waiting:
                    self.waiting_samples += 1
                    since = now if since is None else since
                    self.longest_s = max(self.longest_s, now - since)
                else:
                    since = None
                time.sleep(WATCH_EVERY_S)


class _TimedTurn:
    """A write turn that records when the claimer waited for it and when the purge's
    thread held it (perf_counter intervals, in untracked arrays)."""

    def __init__(self, lock: Any, claimer: str, purger: str) -> None:
        self.lock = lock
        self.claimer = claimer
        self.purger = purger
        self.waits: Any = array("d")  # start, end, start, end...
        self.holds: Any = array("d")
        self._depth = threading.local()

    def __enter__(self) -> Any:
        t = time.perf_counter()
        got = self.lock.__enter__()
        name = threading.current_thread().name
        if name == self.claimer:
            self.waits.extend((t, time.perf_counter()))
        elif name == self.purger:
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            if depth == 0:
                self._depth.since = time.perf_counter()
        return got

    def __exit__(self, *exc: Any) -> Any:
        if threading.current_thread().name == self.purger:
            self._depth.n -= 1
            if self._depth.n == 0:
                self.holds.extend((self._depth.since, time.perf_counter()))
        return self.lock.__exit__(*exc)

    def summary(self) -> dict[str, Any]:
        """The claimer's waits, and of each the part during which the purge held the
        turn: what the purge made it wait. The rest of a long wait is the interpreter's
        (the thread woken up once the turn is free, it still needs the GIL, which a
        garbage-collection pass in another thread holds: ``GcWatch``)."""
        waits = [(self.waits[i], self.waits[i + 1]) for i in range(0, len(self.waits), 2)]
        holds = [(self.holds[i], self.holds[i + 1]) for i in range(0, len(self.holds), 2)]
        behind: list[float] = []
        j = 0
        for start, end in waits:
            while j < len(holds) and holds[j][1] <= start:
                j += 1
            k, overlap = j, 0.0
            while k < len(holds) and holds[k][0] < end:
                overlap += min(end, holds[k][1]) - max(start, holds[k][0])
                k += 1
            behind.append(overlap)
        lengths = sorted(end - start for start, end in waits)
        held = sorted(end - start for start, end in holds)
        slow = SLOW_MS / 1000
        return {
            "how": "the claimer's waits for the write lock (its turn in this process)",
            "waits": len(lengths),
            "p99_ms": pct(lengths, 0.99) * 1000 if lengths else 0.0,
            "longest_ms": lengths[-1] * 1000 if lengths else 0.0,
            "over_50ms": sum(1 for w in lengths if w > slow),
            "longest_behind_purge_ms": max(behind, default=0.0) * 1000,
            "behind_purge_over_50ms": sum(1 for b in behind if b > slow),
            "purge_holds": len(held),
            "purge_hold_p99_ms": pct(held, 0.99) * 1000 if held else 0.0,
            "purge_hold_max_ms": held[-1] * 1000 if held else 0.0,
        }


class GcWatch:
    """The interpreter's cyclic garbage-collection passes (``gc.callbacks``): how many of
    each generation, and the longest. Every thread of the process stops for one."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.longest_ms = [0.0, 0.0, 0.0]
        self._since = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._since = time.perf_counter()
            return
        gen = info["generation"]
        self.count[gen] += 1
        self.longest_ms[gen] = max(self.longest_ms[gen], (time.perf_counter() - self._since) * 1000)

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> dict[str, Any]:
        return {"passes": self.count, "longest_ms": self.longest_ms}


def _claimer(store: Any, stop: threading.Event, phase: list[str], out: _Samples) -> None:
    """Insert a due execution, claim it (timed), finish it; until ``stop``."""
    t0 = time.perf_counter()
    while not stop.is_set():
        ids = _insert_due(store, [DRAINED], 1)
        current = phase[0]
        t = time.perf_counter()
        got = _claim_once(store, [DRAINED])
        ms = (time.perf_counter() - t) * 1000
        t_cycle = time.perf_counter()
        _retire(store, ids)
        cycle_ms = (time.perf_counter() - t_cycle) * 1000
        out.append((current, t - t0, ms, got, cycle_ms))


class _Samples:
    """The claimer's samples (phase, time, claim ms, claimed, finish ms), kept in arrays:
    a list of a few hundred thousand tuples made the interpreter's cyclic garbage
    collector walk them all now and then, 50-100 ms with the purge's thread stopped in
    the middle of a batch (and SQLite's write lock held): a cost of this harness, not of
    a worker, whose memory does not grow."""

    PHASES = ("quiet", "purge", "after")

    def __init__(self) -> None:
        self.phase = array("b")
        self.at = array("d")
        self.ms = array("d")
        self.got = array("b")
        self.finish_ms = array("d")

    def append(self, sample: tuple[str, float, float, int, float]) -> None:
        phase, at, ms, got, finish_ms = sample
        self.phase.append(self.PHASES.index(phase))
        self.at.append(at)
        self.ms.append(ms)
        self.got.append(got)
        self.finish_ms.append(finish_ms)

    def __iter__(self) -> Iterator[tuple[str, float, float, int, float]]:
        for i in range(len(self.at)):
            yield (
                self.PHASES[self.phase[i]],
                self.at[i],
                self.ms[i],
                self.got[i],
                self.finish_ms[i],
            )


def _claims_summary(samples: Iterable[tuple[str, float, float, int, float]], phase: str) -> Any:
    mine = [s for s in samples if s[0] == phase]
    if not mine:
        return None
    ms = sorted(s[2] for s in mine)
    finish = sorted(s[4] for s in mine)
    slow = [(round(s[1], 3), round(s[2], 1)) for s in mine if s[2] > SLOW_MS]
    return {
        "claims": len(ms),
        "found_none": sum(1 for s in mine if s[3] != 1),
        "p50_ms": statistics.median(ms),
        "p99_ms": pct(ms, 0.99),
        "max_ms": ms[-1],
        "over_50ms": len(slow),
        "slowest_at_s": slow[:20],
        "finish_p99_ms": pct(finish, 0.99),
        "finish_max_ms": finish[-1],
    }


def _purge_plan(store: Any, cutoff: int, batch: int) -> dict[str, str]:
    """The plan of a purge batch's first statement (the ids it deletes, locked) on the
    full table (PostgreSQL's EXPLAIN ANALYZE runs it; rolled back)."""
    from hydra.store.sql import statements

    query = statements.purgeable(by_workflow=False, lock=True).params(
        statements.purgeable_params(NS, cutoff, ["completed", "failed", "cancelled"], None, batch)
    )
    # Literal values (the status list is an expanding IN).
    sql = str(query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    params: Any = () if store.engine.dialect.name == "sqlite" else None
    return {"sql": sql, "plan": _explain(store, sql, params)}


def _purge_loop(store: Any, spec: dict[str, Any], cutoff: int) -> dict[str, Any]:
    """``engine.purge``'s loop (its pacer: each batch followed by a rest; on SQLite,
    batches short in time), with a clock on each batch and a deadline."""
    from hydra.status import Status

    batches: list[tuple[float, float, int]] = []
    deleted = 0
    t0 = time.perf_counter()
    deadline = t0 + spec["cap"]
    finished = False
    pacer = PurgePacer(spec["batch"], one_writer=store.one_writer)
    settles: list[float] = []
    while True:
        t = time.perf_counter()
        size = pacer.size
        ids = store.purge_executions(
            NS,
            ended_before_ms=cutoff,
            statuses=[Status.COMPLETED, Status.FAILED, Status.CANCELLED],
            limit=size,
        )
        took = time.perf_counter() - t
        batches.append((t - t0, took * 1000, len(ids)))
        deleted += len(ids)
        if len(ids) < size:
            store.settle_purge(finished=True)
            finished = True
            break
        settled = time.perf_counter()
        store.settle_purge()
        settle_s = time.perf_counter() - settled
        if settle_s > 0.0005:
            settles.append(settle_s * 1000)
        if time.perf_counter() > deadline:
            break
        time.sleep(pacer.after(took) + settle_s * PURGE_PACING)
    return {
        "batches": batches,
        "settles_ms": settles,
        "deleted": deleted,
        "finished": finished,
        "elapsed": time.perf_counter() - t0,
    }


def child_purge_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """``--purge-process``: the purge alone in this process (as ``hydra executions purge``
    or another worker's retention would run it), beside the claimer's process."""
    store = _store(spec["url"])
    try:
        return _purge_loop(store, spec, spec["cutoff"])
    finally:
        store.close()


def child_purge(spec: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import text

    store = _store(spec["url"])
    count_sql = text(
        "SELECT count(*) FROM workflow_executions WHERE namespace = :ns AND completed_at < :cut"
    )
    steps_sql = text("SELECT count(*) FROM workflow_steps")
    stop = threading.Event()
    phase = ["quiet"]
    samples = _Samples()
    try:
        cutoff = now_ms() - DAY_MS  # engine.purge(older_than=timedelta(days=1))
        with store.engine.connect() as conn:
            before = conn.execute(count_sql, {"ns": NS, "cut": cutoff}).scalar()
            steps_before = conn.execute(steps_sql).scalar()
        plan = _purge_plan(store, cutoff, spec["batch"])
        claimer = threading.Thread(
            target=_claimer, args=(store, stop, phase, samples), name="claimer"
        )
        claimer.start()
        with GcWatch() as gc_quiet:
            time.sleep(spec["quiet"])
        phase[0] = "purge"
        gc_purge = GcWatch().__enter__()
        watch = LockWatch(store)
        if not (spec.get("purge_process") and store.one_writer):
            # (SQLite with the purge in another process: it waits in SQLite's busy
            # handler, which nothing here can time.)
            watch.start("claimer")
        try:
            if spec.get("purge_process"):
                purged = run_child("purge-loop", {**spec, "cutoff": cutoff})
            else:
                purged = _purge_loop(store, spec, cutoff)
        finally:
            lock_waits = watch.stop()
            gc_purge.__exit__()
            phase[0] = "after"
            time.sleep(min(2.0, spec["quiet"]))
            stop.set()
            claimer.join()
        lock_waits = watch.summary(lock_waits)
        with store.engine.connect() as conn:
            left = conn.execute(count_sql, {"ns": NS, "cut": cutoff}).scalar()
            steps_after = conn.execute(steps_sql).scalar()
    finally:
        store.close()
    batches = purged["batches"]
    deleted, elapsed = purged["deleted"], purged["elapsed"]
    times = sorted(b[1] for b in batches)
    tenth = max(1, len(batches) // 10)
    return {
        "purge_plan": plan,
        "purge_process": bool(spec.get("purge_process")),
        "finished_before": before,
        "steps_before": steps_before,
        "deleted": deleted,
        "left": left,
        "steps_after": steps_after,
        "complete": purged["finished"],
        "purge_s": elapsed,
        "rows_per_s": deleted / elapsed if elapsed else 0.0,
        "batch_size": spec["batch"],
        "batches": len(batches),
        "batch_p50_ms": statistics.median(times) if times else None,
        "batch_max_ms": times[-1] if times else None,
        "settles": len(purged["settles_ms"]),
        "settle_max_ms": max(purged["settles_ms"], default=None),
        "first_tenth_batch_mean_ms": statistics.fmean(b[1] for b in batches[:tenth]),
        "last_tenth_batch_mean_ms": statistics.fmean(b[1] for b in batches[-tenth:]),
        "claims_quiet": _claims_summary(samples, "quiet"),
        "claims_purge": _claims_summary(samples, "purge"),
        "claims_after": _claims_summary(samples, "after"),
        "lock_waits": lock_waits,
        "gc_quiet": gc_quiet.summary(),
        "gc_purge": gc_purge.summary(),
    }


def _lane_rows(store: Any, *, add: bool) -> None:
    """Add (or delete) one execution of the drained workflow scheduled for tomorrow in
    each of the limited queue's lanes ``w0:emails`` and ``w10:emails``."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        if not add:
            conn.execute(text("DELETE FROM workflow_executions WHERE id LIKE 'lane-probe-%'"))
            return
        t = now_ms() + DAY_MS
        for priority in (0, 10):
            conn.execute(
                text(
                    "INSERT INTO workflow_executions (id, namespace, workflow_name, status, "
                    "input_data, attempt, max_attempts, retry_backoff_ms, created_at, "
                    "updated_at, run_at, wake_at, lease_token, trigger_type, queue_name, "
                    "priority, claim_lane) VALUES (:id, :ns, :wf, 'pending', :inp, 0, 3, "
                    "1000, :c, :c, :t, :t, 0, 'api', :q, :p, :lane)"
                ),
                {
                    "id": f"lane-probe-{priority}",
                    "ns": NS,
                    "wf": DRAINED,
                    "inp": b"{}",
                    "c": now_ms(),
                    "t": t,
                    "q": QUEUE,
                    "p": priority,
                    "lane": f"w{priority}:{QUEUE}",
                },
            )


def child_lanes(spec: dict[str, Any]) -> dict[str, Any]:
    """On an empty table: the drained workflow's claim with only its default lane, and
    with one execution scheduled for tomorrow in each of two lanes of the limited queue
    (nothing else in the table), alternated over rounds."""
    store = _store(spec["url"])
    runs: dict[str, list[dict[str, Any]]] = {"default lane only": [], "+2 queue lanes": []}
    try:
        _engine(store)
        for r in range(spec["rounds"]):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for mode in order:
                _lane_rows(store, add=mode != "default lane only")
                runs[mode].append(_latency(store, [DRAINED], spec["claims"], spec["cap"]))
                _lane_rows(store, add=False)
    finally:
        store.close()
    return {
        mode: {
            "rounds": got,
            "p50_ms": statistics.median(g["p50_ms"] for g in got),
            "p95_ms": statistics.median(g["p95_ms"] for g in got),
        }
        for mode, got in runs.items()
    }


def child_main(spec: dict[str, Any]) -> None:
    import hydra

    fn = {
        "measure": child_measure,
        "plans": child_plans,
        "purge": child_purge,
        "purge-loop": child_purge_loop,
        "lanes": child_lanes,
        "migrate": _migrate_only,
    }[spec["role"]]
    result = fn(spec)
    result["hydra_from"] = str(Path(hydra.__file__).parent.parent)
    sys.stdout.write(json.dumps(result) + "\n")


def _migrate_only(spec: dict[str, Any]) -> dict[str, Any]:
    from hydra.store.migrations.runner import head_revision

    _store(spec["url"]).close()
    return {"revision": head_revision()}


# ==========================================================================================
# Parent: databases, the load, rounds in alternation, the report.
# ==========================================================================================
class Backend:
    def __init__(self, name: str, base: str, tmp: Path) -> None:
        self.name = name
        self.base = base
        self.tmp = tmp

    def url(self, state: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.tmp / f'{DB_NAME}_{state}.db'}"
        return f"{self.base}/{DB_NAME}_{state}"

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.base + ("/postgres" if self.name == "postgres" else "/"))
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(sql))
        finally:
            engine.dispose()

    def create(self, state: str, *, async_commit: bool = False) -> None:
        self.drop(state)
        if self.name == "postgres":
            self._admin(f"CREATE DATABASE {DB_NAME}_{state}")
            if async_commit:
                # Commits return before their WAL flush: the claim's own cost shows
                # instead of this machine's fsync latency (the figure is labelled).
                self._admin(f"ALTER DATABASE {DB_NAME}_{state} SET synchronous_commit = off")
        elif self.name == "mysql":
            self._admin(f"CREATE DATABASE {DB_NAME}_{state} CHARACTER SET utf8mb4")

    def drop(self, state: str) -> None:
        if self.name == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(self.url(state).removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        else:
            self._admin(f"DROP DATABASE IF EXISTS {DB_NAME}_{state}")

    def vacuum(self, state: str) -> None:
        """PostgreSQL: VACUUM the table (dead index entries of earlier rounds' claims)."""
        if self.name != "postgres":
            return
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(state))
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM workflow_executions")
                )
        finally:
            engine.dispose()

    def load(self, state: str, counts: dict[str, int]) -> float:
        """Insert the load server-side; returns seconds taken (ANALYZE included)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(state))
        t = time.perf_counter()
        try:
            with engine.begin() as conn:
                for sql in self._load_sql(counts, now_ms()):
                    conn.execute(text(sql))
            with engine.connect() as conn:
                if self.name == "postgres":
                    auto = conn.execution_options(isolation_level="AUTOCOMMIT")
                    auto.execute(text("VACUUM ANALYZE workflow_executions"))
                    auto.execute(text("VACUUM ANALYZE workflow_steps"))
                elif self.name == "mysql":
                    conn.execute(text("ANALYZE TABLE workflow_executions, workflow_steps")).all()
                else:
                    conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            engine.dispose()
        return time.perf_counter() - t

    def _load_sql(self, counts: dict[str, int], now: int) -> list[str]:
        b = self.name
        if b == "postgres":
            uid, blob = "gen_random_uuid()::text", "convert_to({}, 'UTF8')"
            cat = "({} || {} || {})"
        elif b == "mysql":
            uid, blob, cat = "UUID()", "{}", "CONCAT({}, {}, {})"
        else:
            uid = (
                "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || "
                "substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(2)) || '-' || "
                "hex(randomblob(6)))"
            )
            blob, cat = "CAST({} AS BLOB)", "({} || {} || {})"
        inp = blob.format(cat.format("'{\"n\": '", "i", "'}'"))
        out = blob.format(cat.format("'{\"result\": '", "i", "'}'"))
        common = {
            "id": uid,
            "namespace": f"'{NS}'",
            "input_data": inp,
            "max_attempts": "3",
            "retry_backoff_ms": "1000",
            "lease_token": "0",
            "trigger_type": "'api'",
            "queue_name": "'default'",
            "priority": "0",
            "attempt": "0",
        }
        # Due since yesterday, 1 ms apart, of a workflow no worker registers.
        tp = now - DAY_MS
        unregistered = common | {
            "workflow_name": f"'{UNREGISTERED}'",
            "status": "'pending'",
            "created_at": f"{tp} + i",
            "updated_at": f"{tp} + i",
            "run_at": f"{tp} + i",
            "wake_at": f"{tp} + i",
            "claim_lane": "'f12147483648:default'",
        }
        # Finished over half an hour a month ago; 2 % failed.
        tf = now - 30 * DAY_MS
        failed = "i % 50 = 0"
        finished = common | {
            "workflow_name": f"CASE WHEN i % 2 = 0 THEN '{DRAINED}' ELSE '{UNREGISTERED}' END",
            "status": f"CASE WHEN {failed} THEN 'failed' ELSE 'completed' END",
            "output_data": f"CASE WHEN {failed} THEN NULL ELSE {out} END",
            "error_type": f"CASE WHEN {failed} THEN 'ValueError' END",
            "error_message": f"CASE WHEN {failed} THEN 'boom: the report could not be built' END",
            "attempt": "1",
            "lease_token": "1",
            "created_at": f"{tf} + 2 * i",
            "started_at": f"{tf} + 2 * i + 1",
            "completed_at": f"{tf} + 2 * i + 7",
            "updated_at": f"{tf} + 2 * i + 7",
            "run_at": f"{tf} + 2 * i",
        }
        # Waiting executions of the drained workflow, created over the day before
        # yesterday, by i % 10: 0-5 sleeping until tomorrow, 6-7 waiting for a message
        # (no deadline), 8 and 9 scheduled for tomorrow in the limited queue at priority
        # 0 and 10.
        tw, tomorrow = now - 2 * DAY_MS, now + DAY_MS
        m = "i % 10"
        sleeping = f"{m} < 8"
        waiting = common | {
            "workflow_name": f"'{DRAINED}'",
            "status": f"CASE WHEN {sleeping} THEN 'sleeping' ELSE 'pending' END",
            "attempt": f"CASE WHEN {sleeping} THEN 1 ELSE 0 END",
            "lease_token": f"CASE WHEN {sleeping} THEN 1 ELSE 0 END",
            "created_at": f"{tw} + i",
            "started_at": f"CASE WHEN {sleeping} THEN {tw} + i + 1 END",
            "updated_at": f"{tw} + i + 2",
            "run_at": f"CASE WHEN {sleeping} THEN {tw} + i ELSE {tomorrow} + i END",
            "sleep_until": f"CASE WHEN {m} < 6 THEN {tomorrow} + i END",
            "wake_at": f"CASE WHEN {m} < 6 OR {m} >= 8 THEN {tomorrow} + i END",
            "wait_topic": f"CASE WHEN {m} IN (6, 7) THEN 'approval' END",
            "queue_name": f"CASE WHEN {m} >= 8 THEN '{QUEUE}' ELSE 'default' END",
            "priority": f"CASE WHEN {m} = 9 THEN 10 ELSE 0 END",
            "claim_lane": (
                f"CASE WHEN {m} = 8 THEN '{waiting_lane(QUEUE, 0, started=True)}' "
                f"WHEN {m} = 9 THEN '{waiting_lane(QUEUE, 10, started=True)}' "
                f"ELSE '{waiting_lane('default', 0, started=True)}' END"
            ),
        }
        insert = f"INSERT INTO workflow_executions ({', '.join(COLUMNS)}) "
        chunk = 250_000
        stmts = []
        for exprs, total in (
            (unregistered, counts["unregistered"]),
            (finished, counts["finished"]),
            (waiting, counts["waiting"]),
        ):
            sel = "SELECT " + ", ".join(exprs.get(c, "NULL") for c in COLUMNS)
            for lo in range(1, total + 1, chunk):
                hi = min(total, lo + chunk - 1)
                if b == "postgres":
                    src = f"{sel} FROM generate_series({lo}, {hi}) AS g(i)"
                elif b == "mysql":
                    src = f"{sel} FROM (SELECT seq AS i FROM seq_{lo}_to_{hi}) AS g"
                else:
                    src = (
                        f"WITH RECURSIVE g(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM g "
                        f"WHERE i < {hi}) {sel} FROM g"
                    )
                stmts.append(insert + src if b != "sqlite" else _sqlite_insert(insert, src))
        # One step row per finished execution (what a purge deletes with it).
        stmts.append(
            "INSERT INTO workflow_steps (execution_id, step_name, step_order, status, attempts, "
            "output_data, error_type, error_message, started_at, completed_at, updated_at, "
            "kind) SELECT id, 'a', 0, status, 1, output_data, error_type, error_message, "
            "started_at, completed_at, completed_at, 'step' FROM workflow_executions "
            f"WHERE namespace = '{NS}' AND claim_lane IS NULL"
        )
        return stmts


def _sqlite_insert(insert: str, src: str) -> str:
    # SQLite: the CTE goes before the INSERT.
    cte, _, select = src.partition(") SELECT ")
    return f"{cte}) {insert}SELECT {select}"


def run_child(role: str, spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            json.dumps({**spec, "role": role}),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{role} child failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result.pop("hydra_from", None)
    return result


SERIES = ("claim1", "plain", "claim3")
DRAINS = ("drain", "qdrain")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": len(runs)}
    for s in SERIES:
        out[f"{s}_p50_ms"] = statistics.median(r[s]["p50_ms"] for r in runs)
        out[f"{s}_p95_ms"] = statistics.median(r[s]["p95_ms"] for r in runs)
        out[f"{s}_count"] = min(r[s]["claims"] for r in runs)
    for d in DRAINS:
        out[f"{d}_per_s"] = statistics.median(r[d]["per_s"] for r in runs)
        out[f"{d}_spread"] = [min(r[d]["per_s"] for r in runs), max(r[d]["per_s"] for r in runs)]
    return out


def _git(*args: str, cwd: Path = ROOT) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def fmt(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        "| backend | claim p50 empty / loaded (ms) | claim p95 empty / loaded (ms) "
        "| plain p50 | 3 names p50 | drain empty / loaded (wf/s) "
        "| queue drain empty / loaded (wf/s) | loaded/empty: claim p50, p95, drain, queue drain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, r in report["results"].items():
        e, lo = r["empty"], r["loaded"]

        def pair(key: str, e: dict[str, Any] = e, lo: dict[str, Any] = lo) -> str:
            return f"{fmt(e[key])} / {fmt(lo[key])}"

        lines.append(
            f"| {backend} | {pair('claim1_p50_ms')} | {pair('claim1_p95_ms')} "
            f"| {pair('plain_p50_ms')} | {pair('claim3_p50_ms')} "
            f"| {e['drain_per_s']:.0f} / {lo['drain_per_s']:.0f} "
            f"| {e['qdrain_per_s']:.0f} / {lo['qdrain_per_s']:.0f} "
            f"| {lo['claim1_p50_ms'] / e['claim1_p50_ms']:.2f}x, "
            f"{lo['claim1_p95_ms'] / e['claim1_p95_ms']:.2f}x, "
            f"{e['drain_per_s'] / lo['drain_per_s']:.2f}x, "
            f"{e['qdrain_per_s'] / lo['qdrain_per_s']:.2f}x slower |"
        )
    if report["purge"]:
        lines += [
            "",
            "| backend | purged (of) | purge s | rows/s | batch p50 / max ms | claims during "
            "| claim p50 / p99 / max ms during | before purge p50 / p99 / max | claims > 50 ms "
            "| longest wait for a lock, ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for backend, p in report["purge"].items():
            none = {"claims": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "over_50ms": 0}
            d, q = p["claims_purge"] or none, p["claims_quiet"] or none
            lines.append(
                f"| {backend} | {p['deleted']:,} ({p['finished_before']:,})"
                f"{'' if p['complete'] else ', cut at the cap'} | {p['purge_s']:.1f} "
                f"| {p['rows_per_s']:.0f} | {fmt(p['batch_p50_ms'])} / {fmt(p['batch_max_ms'])} "
                f"| {d['claims']} | {fmt(d['p50_ms'])} / {fmt(d['p99_ms'])} / {fmt(d['max_ms'])} "
                f"| {fmt(q['p50_ms'])} / {fmt(q['p99_ms'])} / {fmt(q['max_ms'])} "
                f"| {d['over_50ms']} | {_lock_wait_cell(p.get('lock_waits'))} |"
            )
    return "\n".join(lines)


def _lock_wait_cell(waits: dict[str, Any] | None) -> str:
    if not waits or "longest_ms" not in waits:
        return "not measured"
    if "samples" in waits:
        seen = f"{waits['samples_with_a_waiter']} of {waits['samples']} looks"
        return f"{fmt(waits['longest_ms'])} ({seen})"
    cell = f"{fmt(waits['longest_ms'])} (the claimer's turn, {waits['waits']} waits)"
    if "longest_behind_purge_ms" in waits:
        cell += (
            f"; behind the purge's turn {fmt(waits['longest_behind_purge_ms'])}"
            f" (the purge held it {fmt(waits['purge_hold_max_ms'])} at most)"
        )
    return cell


def plan_text(report: dict[str, Any]) -> str:
    out = []
    for backend, p in report["purge"].items():
        if "purge_plan" in p:
            out.append(f"--- {backend}: a purge batch's SELECT (full table) ---")
            out.append(p["purge_plan"]["sql"])
            out.append(p["purge_plan"]["plan"])
            out.append("")
    for backend, cases in report["plans"].items():
        for case, stmts in cases.items():
            for s in stmts:
                out.append(f"--- {backend}: {case}: {s['statement']} (loaded table) ---")
                out.append(s["sql"])
                out.append(s["plan"])
                out.append("")
    return "\n".join(out)


def lanes_probe(args: argparse.Namespace, backends: list[str], claims: int, rounds: int) -> int:
    """``--lanes-probe``: the claim on an empty table with and without two queue lanes
    that have nothing due (``child_lanes``), per backend."""
    tmp = Path(tempfile.mkdtemp(prefix="hydra-claimbench-"))
    report: dict[str, Any] = {
        "benchmark": "claim_scale --lanes-probe",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "command": " ".join(sys.argv[1:]),
        "params": {
            "rounds": rounds,
            "claims": claims,
            "cap_s": args.cap,
            "pg_synchronous_commit": "off" if args.pg_async_commit else "on",
        },
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "lanes": {},
    }
    lines = ["| backend | lanes of the drained workflow | claim p50 ms | claim p95 ms |"]
    lines.append("|---|---|---|---|")
    try:
        for name in backends:
            base = {"sqlite": "", "postgres": args.pg, "mysql": args.mysql}[name]
            backend = Backend(name, base, tmp)
            try:
                backend.create("lanes", async_commit=args.pg_async_commit)
                spec = {"url": backend.url("lanes"), "rounds": rounds, "claims": claims}
                got = run_child("lanes", {**spec, "cap": args.cap})
            finally:
                backend.drop("lanes")
            report["lanes"][name] = got
            for mode, r in got.items():
                lines.append(f"| {name} | {mode} | {fmt(r['p50_ms'])} | {fmt(r['p95_ms'])} |")
                print(lines[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["machine"]["load_after"] = os.getloadavg()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{args.backend}-lanes"
    stamp += "-async" if args.pg_async_commit else ""
    (out / f"claim-scale-{stamp}.json").write_text(json.dumps(report, indent=1, default=str))
    (out / f"claim-scale-{stamp}.md").write_text("\n".join(lines) + "\n")
    print(f"results: {out / f'claim-scale-{stamp}.json'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="all", choices=["sqlite", "postgres", "mysql", "all"])
    parser.add_argument("--quick", action="store_true", help="small load and runs, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds per state (default 3; quick: 1)")
    parser.add_argument("--claims", type=int, help="single claims per round (default 2,000)")
    parser.add_argument("--drain", type=int, help="workflows drained per round (default 1,000)")
    parser.add_argument("--unregistered", type=int, help="unregistered due rows (100,000)")
    parser.add_argument("--waiting", type=int, help="waiting rows, drained workflow (100,000)")
    parser.add_argument("--finished", type=int, help="finished rows (default 1,000,000)")
    parser.add_argument("--cap", type=float, default=30.0, help="seconds of claims per series")
    parser.add_argument("--no-purge", action="store_true", help="skip the purge")
    parser.add_argument(
        "--purge-only", action="store_true", help="the load and the purge, no rounds nor plans"
    )
    parser.add_argument("--purge-cap", type=float, help="seconds of purge at most (600)")
    parser.add_argument("--quiet", type=float, help="seconds of claims before the purge (10)")
    parser.add_argument(
        "--lanes-probe",
        action="store_true",
        help="only the claim on an empty table with and without 2 queue lanes (nothing due)",
    )
    parser.add_argument(
        "--batch", type=int, default=PURGE_BATCH, help="purge batch size (engine.purge's)"
    )
    parser.add_argument(
        "--purge-process",
        action="store_true",
        help="the purge in a process of its own (default: a thread beside the claimer's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--pg-async-commit",
        action="store_true",
        help="PostgreSQL databases with synchronous_commit = off (the claim without fsync)",
    )
    parser.add_argument(
        "--pg-vacuum",
        action="store_true",
        help="PostgreSQL: VACUUM the table before each round (as a tuned autovacuum would)",
    )
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--mysql", default="mysql+pymysql://root@127.0.0.1:3306")
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return 0

    quick = args.quick

    def given(value: int | float | None, full: float, small: float) -> Any:
        return value if value is not None else (small if quick else full)

    rounds = given(args.rounds, 3, 1)
    claims = given(args.claims, 2_000, 300)
    drain = given(args.drain, 1_000, 300)
    counts = {
        "unregistered": given(args.unregistered, 100_000, 20_000),
        "waiting": given(args.waiting, 100_000, 20_000),
        "finished": given(args.finished, 1_000_000, 200_000),
    }
    purge_cap = given(args.purge_cap, 600.0, 60.0)
    quiet = given(args.quiet, 10.0, 3.0)
    backends = ["sqlite", "postgres", "mysql"] if args.backend == "all" else [args.backend]
    if args.lanes_probe:
        return lanes_probe(args, backends, claims, rounds)
    tmp = Path(tempfile.mkdtemp(prefix="hydra-claimbench-"))
    report: dict[str, Any] = {
        "benchmark": "claim_scale",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join(sys.argv[1:]),
        "params": {
            "rounds": rounds,
            "claims": claims,
            "claims_plain": claims // 2,
            "claims_3_names": claims // 2,
            "drain": drain,
            "concurrency": CONCURRENCY,
            "queue": {"name": QUEUE, "concurrency": QUEUE_CONCURRENCY},
            **counts,
            "cap_s": args.cap,
            "purge": not args.no_purge,
            "purge_only": args.purge_only,
            "purge_cap_s": purge_cap,
            "purge_batch": args.batch,
            "quiet_s": quiet,
            "quick": quick,
            "pg_synchronous_commit": "off" if args.pg_async_commit else "on",
            "pg_vacuum_each_round": args.pg_vacuum,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": os.getloadavg(),
        },
        "results": {},
        "load_s": {},
        "plans": {},
        "purge": {},
        "revision": None,
    }
    print(f"backends: {backends}; load {counts}", flush=True)
    try:
        for name in backends:
            base = {"sqlite": "", "postgres": args.pg, "mysql": args.mysql}[name]
            backend = Backend(name, base, tmp)
            runs: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
            try:
                for state in STATES:
                    backend.create(state, async_commit=args.pg_async_commit)
                    report["revision"] = run_child("migrate", {"url": backend.url(state)})[
                        "revision"
                    ]
                secs = backend.load("loaded", counts)
                report["load_s"][name] = secs
                print(f"{name}: loaded {counts} in {secs:.1f} s", flush=True)
                if not args.purge_only:
                    spec = {"claims": claims, "drain": drain, "cap": args.cap}
                    for r in range(rounds):
                        order = list(STATES) if r % 2 == 0 else list(reversed(STATES))
                        for state in order:
                            if args.pg_vacuum:
                                backend.vacuum(state)
                            got = run_child("measure", {**spec, "url": backend.url(state)})
                            runs[state].append(got)
                            print(
                                f"{name} {state} round {r + 1}: "
                                + ", ".join(
                                    f"{s} p50 {got[s]['p50_ms']:.3f} p95 {got[s]['p95_ms']:.3f} ms"
                                    f" ({got[s]['claims']})"
                                    for s in SERIES
                                )
                                + ", "
                                + ", ".join(f"{d} {got[d]['per_s']:.0f} wf/s" for d in DRAINS),
                                flush=True,
                            )
                    plans = run_child("plans", {"url": backend.url("loaded")})
                    report["plans"][name] = plans
                    report["results"][name] = {state: summarise(r) for state, r in runs.items()} | {
                        "raw": runs
                    }
                if not args.no_purge:
                    got = run_child(
                        "purge",
                        {
                            "url": backend.url("loaded"),
                            "cap": purge_cap,
                            "quiet": quiet,
                            "batch": args.batch,
                            "purge_process": args.purge_process,
                        },
                    )
                    report["purge"][name] = got
                    d = got["claims_purge"] or {"p50_ms": 0, "p99_ms": 0, "max_ms": 0}
                    d.setdefault("claims", 0)
                    d.setdefault("over_50ms", 0)
                    print(
                        f"{name} purge: {got['deleted']:,} of {got['finished_before']:,} in "
                        f"{got['purge_s']:.1f} s ({got['rows_per_s']:.0f} rows/s), claims "
                        f"during it p50 {d['p50_ms']:.2f} p99 {d['p99_ms']:.2f} max "
                        f"{d['max_ms']:.1f} ms ({d['claims']}, {d['over_50ms']} over 50 ms)",
                        flush=True,
                    )
            finally:
                for state in STATES:
                    backend.drop(state)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["machine"]["load_after"] = os.getloadavg()
    print()
    print(plan_text(report))
    print(table(report))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    special = args.pg_async_commit or args.pg_vacuum or args.purge_only or args.batch != 1000
    if args.backend != "all" or quick or special:
        stamp += "-" + "-".join(
            [args.backend]
            + (["quick"] if quick else [])
            + (["purge"] if args.purge_only else [])
            + ([f"batch{args.batch}"] if args.batch != 1000 else [])
            + (["async"] if args.pg_async_commit else [])
            + (["vacuum"] if args.pg_vacuum else [])
            + (["process"] if args.purge_process else [])
        )
    text = json.dumps(report, indent=1, default=str)
    (out / f"claim-scale-{stamp}.json").write_text(text)
    if not quick and args.backend == "all" and not special:
        (out / "claim-scale-latest.json").write_text(text)
    (out / f"claim-scale-{stamp}.md").write_text(table(report) + "\n")
    (out / f"claim-scale-{stamp}.txt").write_text(plan_text(report))
    print(f"\nresults: {out / f'claim-scale-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
