"""hydra against DBOS on the same databases: throughput, latency, step overhead, scaling.

    .venv/bin/python benchmarks/compare.py            # every figure, 3 repeats (~10 min)
    .venv/bin/python benchmarks/compare.py --quick    # smaller runs, 1 repeat (~2 min)
    .venv/bin/python benchmarks/compare.py --figures T1,T3 --backends sqlite --systems hydra

Figures (issue 6):

- T1 throughput: N (1,000) workflows of 3 trivial steps are submitted, then one worker
  process (concurrency 16) is started and drains them; workflows/s from the moment the
  worker is told to go to the last completion stored in the database. DBOS: its queue
  with ``worker_concurrency=16`` and ``polling_interval_sec=0.01``.
- T2 latency: 200 one-step workflows submitted one at a time, submit-to-result p50/p99,
  with the worker in the submitting process (hydra: woken in-process; DBOS: its queue).
  On PostgreSQL also hydra with the worker in another process (woken by LISTEN/NOTIFY).
- T3 step overhead: one workflow of 1,000 sequential trivial steps; ms per step.
- T4 scaling: T1 with 1, 2 and 4 worker processes on PostgreSQL.

Every measurement runs in fresh child processes on a freshly created database
(PostgreSQL: ``hydra_bench`` / ``dbos_bench``, dropped and recreated per run; SQLite: a
new WAL file). Beside each hydra figure: the SQL statements, commits and connection
checkouts the worker process issued per workflow, counted with SQLAlchemy events on the
store's engine and on hydra's driver path. Results go to
``benchmarks/results/compare-<time>.{md,json}`` and ``latest.{md,json}`` (the latter only
for a full run: every figure, backend and system).
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
QUEUE_POLL_S = 0.01
CONCURRENCY = 16
#: where the children import hydra from (a snapshot of HEAD unless --live)
HYDRA_SRC: str | None = None


# ==========================================================================================
# Children: each measurement runs in fresh processes (DBOS is a per-process singleton).
# Protocol: JSON lines on stdout ({"event": ...}); the parent writes "go" / "stop" on stdin.
# ==========================================================================================
def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class SQLCounter:
    """Statements, commits and connection checkouts on one engine (or every engine)."""

    def __init__(self, target: Any) -> None:
        from sqlalchemy import event

        self.statements = 0
        self.commits = 0
        self.checkouts = 0
        self._lock = threading.Lock()
        event.listen(target, "before_cursor_execute", self._on_execute)
        event.listen(target, "commit", self._on_commit)
        pool = getattr(target, "pool", None)
        if pool is None:
            from sqlalchemy.pool import Pool

            pool = Pool
        event.listen(pool, "checkout", self._on_checkout)
        self._count_driver_path()

    def _count_driver_path(self) -> None:
        """Count the statements hydra's hot path sends on driver connections too.

        Since 76c6aa0 claims, checkpoints and completions bypass SQLAlchemy's execution
        events (hydra/store/sql/driver.py): this wraps that module's three entry points
        (in this child process only). An explicit BEGIN counts as a statement, as the
        SQLite BEGIN IMMEDIATE always did; a transaction's end counts as a commit (for a
        one-statement autocommit write too: the server commits it); a checkout is taking
        a connection from hydra's own driver pool.
        """
        try:
            from hydra.store.sql import driver
        except ImportError:
            return  # a hydra from before the driver path
        counter = self

        def counting(original: Any) -> Any:
            def counted(tx: Any, stmt: Any, params: Any) -> Any:
                counter._on_execute()
                return original(tx, stmt, params)

            return counted

        for name in ("rows", "rowcount", "many"):
            setattr(driver.DriverTx, name, counting(getattr(driver.DriverTx, name)))
        transaction = driver.DriverPool.transaction
        checkout = driver.DriverPool._checkout

        @contextlib.contextmanager
        def counted_transaction(pool: Any, *, write: bool, single: bool) -> Any:
            if not (single and pool.options.single_statement_autocommit):
                counter._on_execute()  # the BEGIN
            with transaction(pool, write=write, single=single) as tx:
                yield tx
            counter._on_commit()

        def counted_checkout(pool: Any) -> Any:
            counter._on_checkout()
            return checkout(pool)

        driver.DriverPool.transaction = counted_transaction  # type: ignore[method-assign]
        driver.DriverPool._checkout = counted_checkout  # type: ignore[method-assign]

    def _on_execute(self, *args: Any) -> None:
        with self._lock:
            self.statements += 1

    def _on_commit(self, *args: Any) -> None:
        with self._lock:
            self.commits += 1

    def _on_checkout(self, *args: Any) -> None:
        with self._lock:
            self.checkouts += 1

    def reset(self) -> None:
        with self._lock:
            self.statements = self.commits = self.checkouts = 0

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "statements": self.statements,
                "commits": self.commits,
                "checkouts": self.checkouts,
            }


def hydra_workflows() -> list[Any]:
    import hydra

    class Three(hydra.Workflow[int]):
        name = "bench-three"

        def run(self, ctx: hydra.WorkflowContext, n: int) -> int:
            a = hydra.step(ctx, "a", lambda: n + 1)
            b = hydra.step(ctx, "b", lambda: a + 1)
            return hydra.step(ctx, "c", lambda: b + 1)

    class One(hydra.Workflow[int]):
        name = "bench-one"

        def run(self, ctx: hydra.WorkflowContext, n: int) -> int:
            return hydra.step(ctx, "a", lambda: n + 1)

    class Many(hydra.Workflow[int]):
        name = "bench-many"

        def run(self, ctx: hydra.WorkflowContext, steps: int) -> int:
            x = 0
            for i in range(steps):
                x = hydra.step(ctx, f"s{i}", lambda x=x: x + 1)
            return x

    return [Three(), One(), Many()]


def _hydra_worker(engine: Any, worker_id: str) -> Any:
    import hydra

    worker = hydra.Worker(engine, worker_id=worker_id, concurrency=CONCURRENCY)
    for wf in hydra_workflows():
        worker.register(wf)
    return worker


def _wait_line(expected: str) -> None:
    for line in sys.stdin:
        if line.strip() == expected:
            return
    raise SystemExit(f"stdin closed before {expected!r}")


def child_submit(spec: dict[str, Any]) -> None:
    """Submit ``n`` three-step workflows and exit (no worker runs here)."""
    n = spec["n"]
    if spec["system"] == "hydra":
        import hydra

        store = hydra.SQLStore(spec["url"], auto_migrate=True)
        counter = SQLCounter(store.engine)
        engine = hydra.Engine(store, namespace="bench")
        t0 = time.perf_counter()
        for i in range(n):
            engine.start_workflow("bench-three", i)
        elapsed = time.perf_counter() - t0
        emit("result", submit_s=elapsed, sql=counter.snapshot())
        store.close()
    else:
        import _dbos_app as app
        from dbos import DBOS

        app.launch(spec["url"], "bench-submitter", listen=[])
        queue = app.register_queue(CONCURRENCY, QUEUE_POLL_S)
        t0 = time.perf_counter()
        for i in range(n):
            queue.enqueue(app.three, i)
        elapsed = time.perf_counter() - t0
        emit("result", submit_s=elapsed)
        DBOS.destroy(workflow_completion_timeout_sec=0)


def child_drain(spec: dict[str, Any]) -> None:
    """A worker process: set up, say ready, start on "go", shut down on "stop"."""
    worker_id = f"bench-worker-{spec['index']}"
    if spec["system"] == "hydra":
        import hydra

        store = hydra.SQLStore(spec["url"], auto_migrate=True)
        counter = SQLCounter(store.engine)
        engine = hydra.Engine(store, namespace="bench")
        worker = _hydra_worker(engine, worker_id)
        emit("ready")
        _wait_line("go")
        counter.reset()
        t_go = time.time()
        worker.start()
        emit("started", t_go=t_go, t_started=time.time())
        _wait_line("stop")
        sql = counter.snapshot()
        worker.shutdown(timeout=5)
        emit("result", sql=sql)
        store.close()
    else:
        import _dbos_app as app
        from dbos import DBOS
        from sqlalchemy.engine import Engine as SAEngine

        counter = SQLCounter(SAEngine)
        emit("ready")
        _wait_line("go")
        counter.reset()
        t_go = time.time()
        app.launch(spec["url"], worker_id)
        emit("started", t_go=t_go, t_started=time.time())
        _wait_line("stop")
        sql = counter.snapshot()
        DBOS.destroy(workflow_completion_timeout_sec=0)
        emit("result", sql=sql)
    sys.stdout.flush()
    os._exit(0)


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]

    return {
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "mean": statistics.fmean(s),
        "min": s[0],
        "max": s[-1],
    }


def child_latency(spec: dict[str, Any]) -> None:
    """T2 with the worker in this process (``mode=local``), or the client side of
    ``mode=remote`` (the worker is a drain child, woken by LISTEN/NOTIFY)."""
    n, warmup = spec["n"], spec["warmup"]
    wait_ms: list[float] = []
    done_ms: list[float] = []
    extra: dict[str, Any] = {}
    if spec["system"] == "hydra":
        import hydra

        store = hydra.SQLStore(spec["url"], auto_migrate=True)
        engine = hydra.Engine(store, namespace="bench")
        worker = None
        if spec["mode"] == "local":
            worker = _hydra_worker(engine, "bench-local")
            worker.start()
        counter = SQLCounter(store.engine)
        for i in range(warmup + n):
            if i == warmup:
                counter.reset()
            t0_wall = time.time()
            t0 = time.perf_counter()
            eid = engine.start_workflow("bench-one", i)
            ex = engine.wait(eid, timeout=30)
            t1 = time.perf_counter()
            assert ex.status == hydra.Status.COMPLETED, ex
            if i >= warmup:
                wait_ms.append((t1 - t0) * 1000)
                assert ex.completed_at is not None
                done_ms.append(ex.completed_at.timestamp() * 1000 - t0_wall * 1000)
        extra["sql_per_workflow"] = {k: v / n for k, v in counter.snapshot().items()}
        if worker is not None:
            worker.shutdown(timeout=5)
        store.close()
    else:
        import _dbos_app as app
        from dbos import DBOS

        app.launch(spec["url"], "bench-latency")
        queue = app.register_queue(CONCURRENCY, QUEUE_POLL_S)
        direct_ms: list[float] = []
        for i in range(warmup + n):
            t0 = time.perf_counter()
            handle = queue.enqueue(app.one, i)
            assert handle.get_result(polling_interval_sec=0.001) == i + 1
            t1 = time.perf_counter()
            if i >= warmup:
                wait_ms.append((t1 - t0) * 1000)
        for i in range(warmup + n):
            t0 = time.perf_counter()
            handle = DBOS.start_workflow(app.one, i)
            assert handle.get_result() == i + 1
            t1 = time.perf_counter()
            if i >= warmup:
                direct_ms.append((t1 - t0) * 1000)
        extra["direct"] = _percentiles(direct_ms)
        DBOS.destroy(workflow_completion_timeout_sec=0)
    emit(
        "result",
        wait=_percentiles(wait_ms),
        to_completion=_percentiles(done_ms) if done_ms else None,
        **extra,
    )
    sys.stdout.flush()
    os._exit(0)


def child_steps(spec: dict[str, Any]) -> None:
    """T3: one workflow of ``steps`` sequential steps, worker in this process."""
    steps = spec["steps"]
    if spec["system"] == "hydra":
        import hydra

        store = hydra.SQLStore(spec["url"], auto_migrate=True)
        engine = hydra.Engine(store, namespace="bench")
        worker = _hydra_worker(engine, "bench-steps")
        worker.start()
        engine.wait(engine.start_workflow("bench-many", 10), timeout=60)  # warm-up
        counter = SQLCounter(store.engine)
        t0 = time.perf_counter()
        ex = engine.wait(engine.start_workflow("bench-many", steps), timeout=600)
        elapsed = time.perf_counter() - t0
        assert ex.output == steps, ex
        sql = {k: v / steps for k, v in counter.snapshot().items()}
        worker.shutdown(timeout=5)
        store.close()
        emit("result", total_s=elapsed, ms_per_step=elapsed * 1000 / steps, sql_per_step=sql)
    else:
        import _dbos_app as app
        from dbos import DBOS

        app.launch(spec["url"], "bench-steps")
        DBOS.start_workflow(app.many, 10).get_result()  # warm-up
        t0 = time.perf_counter()
        result = DBOS.start_workflow(app.many, steps).get_result()
        elapsed = time.perf_counter() - t0
        assert result == steps
        DBOS.destroy(workflow_completion_timeout_sec=0)
        emit("result", total_s=elapsed, ms_per_step=elapsed * 1000 / steps)
    sys.stdout.flush()
    os._exit(0)


CHILDREN: dict[str, Callable[[dict[str, Any]], None]] = {
    "submit": child_submit,
    "drain": child_drain,
    "latency": child_latency,
    "steps": child_steps,
}


# ==========================================================================================
# Parent: databases, orchestration, tables.
# ==========================================================================================
class Child:
    def __init__(self, role: str, spec: dict[str, Any], log_dir: Path) -> None:
        self.role = role
        self.log_path = log_dir / f"{role}-{spec.get('system')}-{spec.get('index', 0)}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        path = [str(HERE)] + ([HYDRA_SRC] if HYDRA_SRC else []) + [os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", role, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )

    def next_event(self, timeout: float = 600) -> dict[str, Any]:
        assert self.proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            self.proc.kill()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"child {self.role} gave no event (exit {self.proc.poll()}):\n{tail}"
            )
        return json.loads(box[0])

    def expect(self, event: str, timeout: float = 600) -> dict[str, Any]:
        while True:
            msg = self.next_event(timeout)
            if msg["event"] == event:
                return msg

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Backend:
    """A fresh database per run: a PostgreSQL database, or a new SQLite file."""

    def __init__(self, name: str, pg_base: str, tmp: Path) -> None:
        self.name = name
        self.pg_base = pg_base.rstrip("/")
        self.tmp = tmp

    def fresh(self, system: str) -> str:
        if self.name == "sqlite":
            path = self.tmp / f"{system}.db"
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return f"sqlite:///{path}"
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        db = f"{system}_bench"
        admin = create_engine(
            f"{self.pg_base}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{db}"'))
        finally:
            admin.dispose()
        return f"{self.pg_base}/{db}"

    def drop(self, system: str) -> None:
        if self.name == "sqlite":
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        admin = create_engine(
            f"{self.pg_base}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{system}_bench" WITH (FORCE)'))
        finally:
            admin.dispose()


def _completion(system: str, url: str) -> Callable[[], tuple[int, int | None]]:
    """(completed count, last completion time in Unix ms) read from the database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    if system == "hydra":
        query = text(
            "SELECT count(*), max(completed_at) FROM workflow_executions "
            "WHERE status = 'completed' AND workflow_name = 'bench-three'"
        )
    else:
        table = "workflow_status" if url.startswith("sqlite") else "dbos.workflow_status"
        query = text(
            f"SELECT count(*), max(updated_at) FROM {table} "
            "WHERE status = 'SUCCESS' AND name = 'bench-three'"
        )

    def read() -> tuple[int, int | None]:
        with engine.connect() as conn:
            count, last = conn.execute(query).one()
        return int(count), None if last is None else int(last)

    return read


def run_throughput(
    system: str, backend: Backend, n: int, workers: int, log_dir: Path
) -> dict[str, Any]:
    url = backend.fresh(system)
    submit = Child("submit", {"system": system, "url": url, "n": n}, log_dir)
    sub = submit.expect("result")
    submit.close()
    children = [
        Child("drain", {"system": system, "url": url, "index": i}, log_dir) for i in range(workers)
    ]
    try:
        for c in children:
            c.expect("ready", timeout=120)
        read = _completion(system, url)
        assert read()[0] == 0
        t_go = time.time()
        for c in children:
            c.send("go")
        started = [c.expect("started", timeout=120) for c in children]
        deadline = time.monotonic() + 600
        while True:
            count, last = read()
            if count >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system}: only {count}/{n} completed after 600 s")
            time.sleep(0.05)
        for c in children:
            c.send("stop")
        results = [c.expect("result", timeout=120) for c in children]
    finally:
        for c in children:
            c.close()
    assert last is not None
    drain_s = last / 1000 - t_go
    launch_s = max(s["t_started"] - s["t_go"] for s in started)
    out: dict[str, Any] = {
        "workflows": n,
        "workers": workers,
        "drain_s": drain_s,
        "throughput": n / drain_s,
        "startup_s": launch_s,
        "submit_per_s": n / sub["submit_s"],
    }
    sql = [r.get("sql") for r in results if r.get("sql")]
    if sql:
        out["sql_per_workflow"] = {k: sum(s[k] for s in sql) / n for k in sql[0]}
    if sub.get("sql"):
        out["submit_sql_per_workflow"] = {k: v / n for k, v in sub["sql"].items()}
    backend.drop(system)
    return out


def run_latency(system: str, backend: Backend, n: int, mode: str, log_dir: Path) -> dict[str, Any]:
    url = backend.fresh(system)
    spec = {"system": system, "url": url, "n": n, "warmup": 20, "mode": mode}
    worker = None
    if mode == "remote":
        worker = Child("drain", {"system": system, "url": url, "index": 0}, log_dir)
        worker.expect("ready", timeout=120)
        worker.send("go")
        worker.expect("started", timeout=120)
    try:
        client = Child("latency", spec, log_dir)
        result = client.expect("result")
        client.close()
    finally:
        if worker is not None:
            worker.send("stop")
            worker.expect("result", timeout=120)
            worker.close()
    backend.drop(system)
    return result


def run_steps(system: str, backend: Backend, steps: int, log_dir: Path) -> dict[str, Any]:
    url = backend.fresh(system)
    child = Child("steps", {"system": system, "url": url, "steps": steps}, log_dir)
    result = child.expect("result")
    child.close()
    backend.drop(system)
    return result


# -- summaries -------------------------------------------------------------------------------
def summarise(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        info["memory_gib"] = round(mem_kb / 1024 / 1024, 1)
    except Exception:
        pass
    try:
        import dbos

        info["dbos"] = getattr(dbos, "__version__", None) or _dist_version("dbos")
    except Exception:
        info["dbos"] = None
    info["hydra"] = _dist_version("hydra-workflows")
    info["sqlalchemy"] = _dist_version("sqlalchemy")
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    return info


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _pg_version(pg_base: str) -> str | None:
    try:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(f"{pg_base}/postgres", poolclass=NullPool)
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(HERE.parent), *args], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def spread(s: dict[str, Any], digits: int = 1) -> str:
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}-{fmt(s['max'], digits)})"


def cell(r: dict[str, Any] | None, key: str, digits: int = 1) -> str:
    """A figure's median (min-max), or why it is missing."""
    if not r:
        return ""
    if key in r:
        return spread(r[key], digits)
    return str(r.get("error", ""))


def sql_cell(sql: dict[str, float] | None) -> str:
    if not sql:
        return ""
    return f"{sql['statements']:.1f} / {sql['commits']:.1f} / {sql['checkouts']:.1f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# hydra vs DBOS ({report['started']})",
        "",
        f"Machine: {m['cores']} cores, {m.get('memory_gib')} GiB, Python {m['python']}, "
        f"PostgreSQL {m.get('postgresql')}, SQLite {m['sqlite']}, SQLAlchemy {m['sqlalchemy']}, "
        f"DBOS {m.get('dbos')}, hydra {m.get('hydra')} ({report.get('hydra_tree')}). "
        "Load average before/after: "
        f"{report['load_before']} / {report['load_after']}. Repeats: {report['repeat']}; "
        "cells are median (min-max).",
        "",
        "hydra SQL per workflow (T1/T4) or per step (T3): statements / commits / connection "
        "checkouts, counted in the worker process (claims, checkpoints, completion, "
        "heartbeats, polls). hydra's engines have no `pool_pre_ping` (since 058218e; before, "
        "each checkout on PostgreSQL was one more round trip, not a counted statement).",
        "",
    ]
    res = report["results"]
    if "T1" in res:
        lines += [
            "## T1 throughput (workflows/s, 3 steps each, 1 worker process, concurrency 16)",
            "",
            "| backend | workflows | hydra | DBOS | hydra / DBOS | hydra SQL per workflow "
            "(worker) | hydra submit SQL per workflow | submit rate hydra / DBOS (per s) |",
            "|---|---:|---:|---:|---:|---|---|---|",
        ]
        for backend, r in res["T1"].items():
            h, d = r.get("hydra"), r.get("dbos")
            ratio = (
                f"{h['throughput']['median'] / d['throughput']['median']:.1f}x"
                if h and d and "throughput" in d and "throughput" in h
                else ""
            )
            lines.append(
                f"| {backend} | {r['workflows']} | {cell(h, 'throughput')} | "
                f"{cell(d, 'throughput')} | "
                f"{ratio} | {sql_cell(h.get('sql_per_workflow') if h else None)} | "
                f"{sql_cell(h.get('submit_sql_per_workflow') if h else None)} | "
                f"{fmt(h['submit_per_s']['median'], 0) if h and 'submit_per_s' in h else ''} / "
                f"{fmt(d['submit_per_s']['median'], 0) if d and 'submit_per_s' in d else ''} |"
            )
        lines.append("")
    if "T2" in res:
        lines += [
            "## T2 latency (ms, one-step workflow, submit to result, one at a time)",
            "",
            "| backend | system | where the worker runs | p50 | p99 | mean | "
            "to completion p50 / p99 | hydra SQL per workflow |",
            "|---|---|---|---:|---:|---:|---|---|",
        ]
        for backend, per in res["T2"].items():
            for key, r in per.items():
                if "error" in r:
                    lines.append(f"| {backend} | {key} | | {r['error']} | | | | |")
                    continue
                comp = r.get("to_completion")
                lines.append(
                    f"| {backend} | {r['label']} | {r['where']} | {spread(r['p50'], 2)} | "
                    f"{spread(r['p99'], 2)} | {spread(r['mean'], 2)} | "
                    + (
                        f"{fmt(comp['p50']['median'], 2)} / {fmt(comp['p99']['median'], 2)}"
                        if comp
                        else ""
                    )
                    + f" | {sql_cell(r.get('sql_per_workflow'))} |"
                )
        lines.append("")
    if "T3" in res:
        lines += [
            "## T3 step overhead (ms per step, one workflow of sequential trivial steps)",
            "",
            "| backend | steps | hydra | DBOS | hydra SQL per step |",
            "|---|---:|---:|---:|---|",
        ]
        for backend, r in res["T3"].items():
            h, d = r.get("hydra"), r.get("dbos")
            lines.append(
                f"| {backend} | {r['steps']} | {cell(h, 'ms_per_step', 3)} | "
                f"{cell(d, 'ms_per_step', 3)} | "
                f"{sql_cell(h.get('sql_per_step') if h else None)} |"
            )
        lines.append("")
    if "T4" in res:
        lines += [
            "## T4 scaling on PostgreSQL (workflows/s, T1 with N worker processes)",
            "",
            "| worker processes | hydra | DBOS | hydra / DBOS | hydra SQL per workflow |",
            "|---:|---:|---:|---:|---|",
        ]
        for workers, r in res["T4"].items():
            h, d = r.get("hydra"), r.get("dbos")
            ratio = (
                f"{h['throughput']['median'] / d['throughput']['median']:.1f}x"
                if h and d and "throughput" in d and "throughput" in h
                else ""
            )
            lines.append(
                f"| {workers} | {cell(h, 'throughput')} | "
                f"{cell(d, 'throughput')} | "
                f"{ratio} | {sql_cell(h.get('sql_per_workflow') if h else None)} |"
            )
        lines.append("")
    if report.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def _merge_runs(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        out[key] = summarise([r[key] for r in runs])
    for extra in ("sql_per_workflow", "submit_sql_per_workflow", "sql_per_step"):
        if runs[0].get(extra):
            out[extra] = {k: statistics.median(r[extra][k] for r in runs) for k in runs[0][extra]}
    return out


def _attempt(fn: Callable[[], dict[str, Any]], label: str, notes: list[str]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"{label} failed: {type(exc).__name__}: {first}")
        print(f"  {label} FAILED: {exc}", file=sys.stderr)
        return {"error": f"failed ({type(exc).__name__})"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smaller runs, 1 repeat")
    parser.add_argument("--figures", default="T1,T2,T3,T4")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--systems", default="hydra,dbos")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL (no database)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--live",
        action="store_true",
        help="measure the working tree's hydra (default: a snapshot of the committed HEAD, "
        "so edits in progress do not change the figures)",
    )
    args = parser.parse_args()
    if args.child:
        CHILDREN[args.child](json.loads(args.spec))
        return 0

    figures = args.figures.split(",")
    backends = args.backends.split(",")
    systems = args.systems.split(",")
    repeat = args.repeat or (1 if args.quick else 3)
    n_t1 = 200 if args.quick else 1000
    n_t2 = 50 if args.quick else 200
    n_t3 = 200 if args.quick else 1000
    scaling = [1, 2] if args.quick else [1, 2, 4]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="hydra-bench-"))
    log_dir = tmp / "logs"
    log_dir.mkdir()
    notes: list[str] = []
    global HYDRA_SRC
    commit = _git("rev-parse", "HEAD")
    if args.live:
        dirty = _git("status", "--porcelain", "hydra")
        hydra_tree = f"working tree at {commit[:10]}" + (" with uncommitted edits" if dirty else "")
    else:
        src = tmp / "src"
        src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", "HEAD", "hydra"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        HYDRA_SRC = str(src)
        hydra_tree = f"commit {commit[:10]}"
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv[1:],
        "repeat": repeat,
        "load_before": load(),
        "machine": {**machine(), "postgresql": _pg_version(args.pg)},
        "hydra_tree": hydra_tree,
        "results": {},
        "notes": notes,
    }
    print(f"load average: {report['load_before']}; logs in {log_dir}", file=sys.stderr)
    backend_objs = {b: Backend(b, args.pg, tmp) for b in backends}

    def repeated(label: str, fn: Callable[[], dict[str, Any]], keys: list[str]) -> dict[str, Any]:
        runs = []
        for i in range(repeat):
            t0 = time.monotonic()
            r = _attempt(fn, label, notes)
            if "error" in r:
                return r
            runs.append(r)
            shown = ", ".join(f"{k}={r[k]:.3f}" for k in keys)
            print(
                f"  {label} run {i + 1}: {shown} ({time.monotonic() - t0:.1f} s)", file=sys.stderr
            )
        merged = _merge_runs(runs, keys)
        for k in ("workflows", "workers"):
            if k in runs[0]:
                merged[k] = runs[0][k]
        return merged

    try:
        if "T1" in figures:
            report["results"]["T1"] = {}
            for b in backends:
                row: dict[str, Any] = {"workflows": n_t1}
                for system in systems:
                    row[system] = repeated(
                        f"T1 {b} {system}",
                        lambda s=system, b=b: run_throughput(s, backend_objs[b], n_t1, 1, log_dir),
                        ["throughput", "drain_s", "submit_per_s", "startup_s"],
                    )
                report["results"]["T1"][b] = row
        if "T2" in figures:
            report["results"]["T2"] = {}
            for b in backends:
                per: dict[str, Any] = {}
                for system in systems:
                    modes = ["local"] + (
                        ["remote"] if system == "hydra" and b == "postgres" else []
                    )
                    for mode in modes:

                        def one(s: str = system, b: str = b, mode: str = mode) -> dict[str, Any]:
                            r = run_latency(s, backend_objs[b], n_t2, mode, log_dir)
                            flat = {f"{k}": r["wait"][k] for k in ("p50", "p99", "mean")}
                            if r.get("to_completion"):
                                flat["c50"] = r["to_completion"]["p50"]
                                flat["c99"] = r["to_completion"]["p99"]
                            if r.get("direct"):
                                flat["d50"] = r["direct"]["p50"]
                                flat["d99"] = r["direct"]["p99"]
                                flat["dmean"] = r["direct"]["mean"]
                            if r.get("sql_per_workflow"):
                                flat["sql_per_workflow"] = r["sql_per_workflow"]
                            return flat

                        keys = ["p50", "p99", "mean"]
                        if system == "hydra":
                            keys += ["c50", "c99"]
                        else:
                            keys += ["d50", "d99", "dmean"]
                        r = repeated(f"T2 {b} {system} {mode}", one, keys)
                        if "error" in r:
                            per[f"{system}-{mode}"] = r
                            continue
                        if system == "hydra":
                            r["to_completion"] = {"p50": r.pop("c50"), "p99": r.pop("c99")}
                            r["label"] = "hydra"
                            r["where"] = (
                                "same process (in-process wake-up)"
                                if mode == "local"
                                else "other process (LISTEN/NOTIFY both ways on PostgreSQL: "
                                "the worker for new work, `engine.wait` for the finish)"
                            )
                            per[f"hydra-{mode}"] = r
                        else:
                            direct = {
                                "p50": r.pop("d50"),
                                "p99": r.pop("d99"),
                                "mean": r.pop("dmean"),
                                "label": "DBOS (`DBOS.start_workflow`, no queue)",
                                "where": "same process (thread pool, future)",
                            }
                            r["label"] = "DBOS (queue, 0.01 s polling)"
                            r["where"] = "same process (queue thread); `get_result` polls 1 ms"
                            per["dbos-queue"] = r
                            per["dbos-direct"] = direct
                report["results"]["T2"][b] = per
        if "T3" in figures:
            report["results"]["T3"] = {}
            for b in backends:
                row = {"steps": n_t3}
                for system in systems:
                    row[system] = repeated(
                        f"T3 {b} {system}",
                        lambda s=system, b=b: run_steps(s, backend_objs[b], n_t3, log_dir),
                        ["ms_per_step", "total_s"],
                    )
                report["results"]["T3"][b] = row
        if "T4" in figures and "postgres" in backends:
            report["results"]["T4"] = {}
            for workers in scaling:
                row = {}
                for system in systems:
                    row[system] = repeated(
                        f"T4 {workers} workers {system}",
                        lambda s=system, w=workers: run_throughput(
                            s, backend_objs["postgres"], n_t1, w, log_dir
                        ),
                        ["throughput", "drain_s", "submit_per_s", "startup_s"],
                    )
                report["results"]["T4"][str(workers)] = row
    finally:
        report["load_after"] = load()
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        text_md = markdown(report) if report["results"] else "(no results)\n"
        # latest.* is the full comparison only: a partial or quick run (a subset of the
        # figures, backends or systems) writes its own compare-* files and leaves it.
        full = (
            not args.quick
            and set(figures) == {"T1", "T2", "T3", "T4"}
            and set(backends) == {"sqlite", "postgres"}
            and set(args.systems.split(",")) == {"hydra", "dbos"}
            and set(report["results"]) == {"T1", "T2", "T3", "T4"}  # not interrupted
            and "error" not in json.dumps(report["results"])
        )
        for name in (f"compare-{stamp}", *(["latest"] if full else [])):
            (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
            (out_dir / f"{name}.md").write_text(text_md)
        print(text_md)
        print(f"written: {out_dir}/compare-{stamp}.{{md,json}}", file=sys.stderr)
        shutil.rmtree(tmp / "logs", ignore_errors=True) if not notes else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
