"""Claim latency and throughput with a full table (issue 9: "the claim must stay fast
whatever else is in the table").

    .venv/bin/python benchmarks/claim_scale.py                        # every backend
    .venv/bin/python benchmarks/claim_scale.py --backend sqlite --quick
    .venv/bin/python benchmarks/claim_scale.py --before-ref main      # before/after

For each backend, on databases of its own (PostgreSQL and MariaDB/MySQL databases
``hydra_claimbench_<code>_<empty|loaded>``, SQLite files in a temporary directory; all
dropped at the end), with an empty table and with a loaded one:

- claim latency: single claims of 1 execution of a registered workflow
  (``store.claim(ns, [name], ..., limit=1)``), 2,000 of them (or as many as fit in
  ``--cap`` seconds), median and p95; also with 3 registered names;
- T1-style throughput: N (1,000) one-step workflows started, then drained by one
  ``hydra.Worker`` (concurrency 16) in the measuring process; workflows/s from
  ``worker.start()`` to the last ``completed_at``.

The load: 100,000 due ``pending`` executions of a workflow no worker registers plus
1,000,000 finished ones (half of them of the drained workflow, 2 % failed), in the same
namespace, inserted server-side (``INSERT ... SELECT`` over ``generate_series`` /
``seq_1_to_N`` / a recursive CTE) with realistic values, then ANALYZEd on PostgreSQL and
MariaDB (what autovacuum / InnoDB's persistent statistics do by themselves after such a
load; SQLite gets no ANALYZE, as in a real deployment).

``--before-ref REF`` (or ``--before-src DIR``) also measures that code (a snapshot of the
git ref) on databases of its own, loaded the same way. The loaded databases are loaded
first; then every round measures each (code, state) pair once, in fresh processes, in an
order that rotates and reverses from round to round (the machine's speed drifts), and
the report gives medians of the rounds. With the
loaded table it prints each code's claim query plan (PostgreSQL ``EXPLAIN (ANALYZE,
BUFFERS)``, MariaDB ``ANALYZE FORMAT=JSON``, SQLite ``EXPLAIN QUERY PLAN``) of the
statement ``SQLStore.claim`` really sends (captured on its way to the driver).

Results: ``benchmarks/results/claim-scale-<time>.json`` (and ``claim-scale-latest.json``
for a full run, not ``--quick``, every backend).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DB_NAME = "hydra_claimbench"
NS = "bench"
UNREGISTERED = "report-nightly"
DRAINED = "bench-one"
CLAIM_ONE = ["bench-claim"]
CLAIM_THREE = ["bench-claim-a", "bench-claim-b", "bench-claim-c"]
CONCURRENCY = 16
STATES = ("empty", "loaded")
COLUMNS = (
    "id, namespace, workflow_name, status, input_data, output_data, error_type, "
    "error_message, attempt, max_attempts, retry_backoff_ms, timeout_ms, timeout_at, "
    "idempotency_key, created_at, started_at, completed_at, updated_at, run_at, sleep_until, "
    "next_retry_at, wake_at, lease_owner, lease_token, lease_expires_at, trigger_type, "
    "trigger_source"
)


def now_ms() -> int:
    return int(time.time() * 1000)


# ==========================================================================================
# Children: one process per measurement, importing hydra from the code measured.
# ==========================================================================================
def _store(url: str) -> Any:
    from hydra.store.sql import SQLStore

    return SQLStore(url, auto_migrate=True)


def _insert_due(store: Any, names: list[str], count: int) -> None:
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
        "lease_token, trigger_type) VALUES (:id, :ns, :wf, 'pending', :inp, 0, 3, 1000, "
        ":t, :t, :t, :t, 0, 'api')"
    )
    with store.engine.begin() as conn:
        conn.execute(sql, rows)


def _retire(store: Any, names: list[str]) -> None:
    """Mark the claim benchmark's rows finished, so that the next round starts alike."""
    from sqlalchemy import bindparam, text

    sql = text(
        "UPDATE workflow_executions SET status = 'completed', wake_at = NULL, "
        "lease_owner = NULL, lease_expires_at = NULL, completed_at = :now "
        "WHERE namespace = :ns AND workflow_name IN :names AND wake_at IS NOT NULL"
    ).bindparams(bindparam("names", expanding=True))
    with store.engine.begin() as conn:
        conn.execute(sql, {"now": now_ms(), "ns": NS, "names": names})


def _latency(store: Any, names: list[str], count: int, cap_s: float) -> dict[str, Any]:
    _insert_due(store, names, count)
    samples: list[float] = []
    deadline = time.perf_counter() + cap_s
    for _ in range(count):
        t = time.perf_counter()
        got = store.claim(NS, names, "bench-probe", now_ms=now_ms(), lease_ms=3_600_000, limit=1)
        samples.append((time.perf_counter() - t) * 1000)
        assert len(got) == 1, f"a claim took {len(got)} executions"
        if time.perf_counter() > deadline and len(samples) >= 20:
            break
    _retire(store, names)
    samples.sort()
    return {
        "claims": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        "mean_ms": statistics.fmean(samples),
    }


def _throughput(store: Any, n: int) -> dict[str, Any]:
    from sqlalchemy import text

    import hydra

    class One(hydra.Workflow[int]):
        name = DRAINED

        def run(self, ctx: hydra.WorkflowContext, x: int) -> int:
            return hydra.step(ctx, "a", lambda: x + 1)

    engine = hydra.Engine(store, namespace=NS)
    t = time.perf_counter()
    started = [engine.start_workflow(DRAINED, i) for i in range(n)]
    submit_s = time.perf_counter() - t
    t_first = store.get_execution(NS, started[0]).created_at  # the clock hydra stamps with
    # This run's rows only: created from t_first on, a short range of
    # ix_workflow_executions_list. (No workflow_name condition: SQLite would then walk the
    # (namespace, workflow_name) prefix of another index, 500,000 finished rows, every poll.)
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
        out = {
            "claim1": _latency(store, CLAIM_ONE, spec["claims"], spec["cap"]),
            "claim3": _latency(store, CLAIM_THREE, spec["claims"] // 2, spec["cap"] / 2),
            "drain": _throughput(store, spec["drain"]),
        }
    finally:
        store.close()
    return out


def _captured_claim(store: Any, names: list[str]) -> list[tuple[Any, dict[str, Any]]]:
    """The statements (and parameters) ``store.claim`` sends, whatever path it takes."""
    from hydra.store.sql import driver

    seen: list[tuple[Any, dict[str, Any]]] = []
    originals = {cls: cls.rows for cls in (driver.DriverTx, driver.CoreTx)}

    def recording(original: Any) -> Any:
        def rows(self: Any, stmt: Any, params: dict[str, Any]) -> Any:
            seen.append((stmt, dict(params)))
            return original(self, stmt, params)

        return rows

    for cls, original in originals.items():
        cls.rows = recording(original)
    try:
        store.claim(NS, names, "plan-probe", now_ms=now_ms(), lease_ms=3_600_000, limit=1)
    finally:
        for cls, original in originals.items():
            cls.rows = original
    return [(s, p) for s, p in seen if "wake_at" in str(s) and "ORDER BY" in str(s)]


def child_plans(spec: dict[str, Any]) -> dict[str, Any]:
    from hydra.store.sql.driver import DriverStatement

    store = _store(spec["url"])
    plans: dict[str, Any] = {}
    try:
        for label, names in (("1 name", CLAIM_ONE), ("3 names", CLAIM_THREE)):
            _insert_due(store, names, 30)
            texts = []
            for stmt, params in _captured_claim(store, names):
                compiled = DriverStatement(stmt, store.engine)
                texts.append(_explain(store, compiled.sql, compiled.bind(params)))
            _retire(store, names)
            plans[label] = texts
    finally:
        store.close()
    return plans


def _explain(store: Any, sql: str, params: Any) -> str:
    name = store.engine.dialect.name
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if name == "postgresql":
            # Runs the UPDATE (rolled back below): actual rows and buffers.
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


def child_main(spec: dict[str, Any]) -> None:
    import hydra

    fn = {"measure": child_measure, "plans": child_plans, "migrate": _migrate_only}[spec["role"]]
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

    def url(self, code: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.tmp / f'{DB_NAME}_{code}.db'}"
        return f"{self.base}/{DB_NAME}_{code}"

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.base + ("/postgres" if self.name == "postgres" else "/"))
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(sql))
        finally:
            engine.dispose()

    def create(self, code: str, *, async_commit: bool = False) -> None:
        self.drop(code)
        if self.name == "postgres":
            self._admin(f"CREATE DATABASE {DB_NAME}_{code}")
            if async_commit:
                # Commits return before their WAL flush: the claim's own cost shows
                # instead of this machine's fsync latency (the figure is labelled).
                self._admin(f"ALTER DATABASE {DB_NAME}_{code} SET synchronous_commit = off")
        elif self.name == "mysql":
            self._admin(f"CREATE DATABASE {DB_NAME}_{code} CHARACTER SET utf8mb4")

    def drop(self, code: str) -> None:
        if self.name == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(self.url(code).removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        else:
            self._admin(f"DROP DATABASE IF EXISTS {DB_NAME}_{code}")

    def vacuum(self, code: str) -> None:
        """PostgreSQL: VACUUM the table (dead index entries of earlier rounds' claims)."""
        if self.name != "postgres":
            return
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(code))
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM workflow_executions")
                )
        finally:
            engine.dispose()

    def load(self, code: str, pending: int, finished: int) -> float:
        """Insert the load server-side; returns seconds taken (ANALYZE included)."""
        from sqlalchemy import create_engine, text

        t_pending = now_ms() - 86_400_000  # due since yesterday, 1 ms apart
        t_finished = now_ms() - 30 * 86_400_000  # finished over the last month
        engine = create_engine(self.url(code))
        t = time.perf_counter()
        try:
            with engine.begin() as conn:
                for sql in self._load_sql(pending, finished, t_pending, t_finished):
                    conn.execute(text(sql))
            with engine.connect() as conn:
                if self.name == "postgres":
                    conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                        text("VACUUM ANALYZE workflow_executions")
                    )
                elif self.name == "mysql":
                    conn.execute(text("ANALYZE TABLE workflow_executions")).all()
                else:
                    conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            engine.dispose()
        return time.perf_counter() - t

    def _load_sql(self, pending: int, finished: int, tp: int, tf: int) -> list[str]:
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
        pending_sel = (
            f"SELECT {uid}, '{NS}', '{UNREGISTERED}', 'pending', {inp}, NULL, NULL, NULL, 0, 3, "
            f"1000, NULL, NULL, NULL, {tp} + i, NULL, NULL, {tp} + i, {tp} + i, NULL, NULL, "
            f"{tp} + i, NULL, 0, NULL, 'api', NULL"
        )
        failed = "i % 50 = 0"
        finished_sel = (
            f"SELECT {uid}, '{NS}', CASE WHEN i % 2 = 0 THEN '{DRAINED}' ELSE '{UNREGISTERED}' "
            f"END, CASE WHEN {failed} THEN 'failed' ELSE 'completed' END, {inp}, "
            f"CASE WHEN {failed} THEN NULL ELSE {out} END, "
            f"CASE WHEN {failed} THEN 'ValueError' END, "
            f"CASE WHEN {failed} THEN 'boom: the report could not be built' END, "
            f"1, 3, 1000, NULL, NULL, NULL, {tf} + 2 * i, {tf} + 2 * i + 1, {tf} + 2 * i + 7, "
            f"{tf} + 2 * i + 7, {tf} + 2 * i, NULL, NULL, NULL, NULL, 1, NULL, 'api', NULL"
        )
        insert = f"INSERT INTO workflow_executions ({COLUMNS}) "
        chunk = 250_000
        stmts = []
        for sel, total in ((pending_sel, pending), (finished_sel, finished)):
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
        return stmts


def _sqlite_insert(insert: str, src: str) -> str:
    # SQLite: the CTE goes before the INSERT.
    cte, _, select = src.partition(") SELECT ")
    return f"{cte}) {insert}SELECT {select}"


def run_child(role: str, spec: dict[str, Any], src: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
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
        cwd=str(src),
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{role} child failed ({src}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(result["hydra_from"]).resolve() != src.resolve():
        raise RuntimeError(f"the child imported hydra from {result['hydra_from']}, not {src}")
    return result


def _median_of(runs: list[dict[str, Any]], series: str, key: str) -> float:
    return statistics.median(r[series][key] for r in runs)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rounds": len(runs),
        "claim1_p50_ms": _median_of(runs, "claim1", "p50_ms"),
        "claim1_p95_ms": _median_of(runs, "claim1", "p95_ms"),
        "claim1_count": min(r["claim1"]["claims"] for r in runs),
        "claim3_p50_ms": _median_of(runs, "claim3", "p50_ms"),
        "claim3_p95_ms": _median_of(runs, "claim3", "p95_ms"),
        "drain_per_s": _median_of(runs, "drain", "per_s"),
        "drain_spread": [
            min(r["drain"]["per_s"] for r in runs),
            max(r["drain"]["per_s"] for r in runs),
        ],
    }


def snapshot(ref: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


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
        "| backend | code | claim p50 empty / loaded (ms) | claim p95 empty / loaded (ms) "
        "| claim 3 names p50 empty / loaded (ms) | drain empty / loaded (wf/s) | loaded/empty: "
        "claim p50, drain |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, codes in report["results"].items():
        for code, r in codes.items():
            e, lo = r["empty"], r["loaded"]
            lines.append(
                f"| {backend} | {code} | {fmt(e['claim1_p50_ms'])} / {fmt(lo['claim1_p50_ms'])} "
                f"| {fmt(e['claim1_p95_ms'])} / {fmt(lo['claim1_p95_ms'])} "
                f"| {fmt(e['claim3_p50_ms'])} / {fmt(lo['claim3_p50_ms'])} "
                f"| {e['drain_per_s']:.0f} / {lo['drain_per_s']:.0f} "
                f"| {lo['claim1_p50_ms'] / e['claim1_p50_ms']:.2f}x, "
                f"{e['drain_per_s'] / lo['drain_per_s']:.2f}x slower |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="all", choices=["sqlite", "postgres", "mysql", "all"])
    parser.add_argument("--quick", action="store_true", help="small load and runs, 1 round")
    parser.add_argument("--before-ref", help="also measure this git ref (e.g. main)")
    parser.add_argument("--before-src", help="also measure the hydra source tree at this path")
    parser.add_argument("--rounds", type=int, help="rounds per state (default 3; quick: 1)")
    parser.add_argument("--claims", type=int, help="single claims per round (default 2,000)")
    parser.add_argument("--drain", type=int, help="workflows drained per round (default 1,000)")
    parser.add_argument("--pending", type=int, help="unregistered due rows (default 100,000)")
    parser.add_argument("--finished", type=int, help="finished rows (default 1,000,000)")
    parser.add_argument("--cap", type=float, default=30.0, help="seconds of claims per series")
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
    rounds = args.rounds or (1 if quick else 3)
    claims = args.claims or (300 if quick else 2_000)
    drain = args.drain or (300 if quick else 1_000)
    pending = args.pending if args.pending is not None else (20_000 if quick else 100_000)
    finished = args.finished if args.finished is not None else (200_000 if quick else 1_000_000)
    backends = ["sqlite", "postgres", "mysql"] if args.backend == "all" else [args.backend]
    tmp = Path(tempfile.mkdtemp(prefix="hydra-claimbench-"))
    codes: dict[str, Path] = {}
    if args.before_ref:
        codes["before"] = snapshot(args.before_ref, tmp / "before-src")
    elif args.before_src:
        codes["before"] = Path(args.before_src).resolve()
    codes["after"] = ROOT
    report: dict[str, Any] = {
        "benchmark": "claim_scale",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "before_ref": args.before_ref or args.before_src,
        "before_commit": _git("rev-parse", "--short", args.before_ref) if args.before_ref else None,
        "params": {
            "rounds": rounds,
            "claims": claims,
            "claims_3_names": claims // 2,
            "drain": drain,
            "concurrency": CONCURRENCY,
            "pending_unregistered": pending,
            "finished": finished,
            "cap_s": args.cap,
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
        "revisions": {},
    }
    print(f"codes: {', '.join(f'{k}={v}' for k, v in codes.items())}; backends: {backends}")
    try:
        for name in backends:
            base = {"sqlite": "", "postgres": args.pg, "mysql": args.mysql}[name]
            backend = Backend(name, base, tmp)
            runs: dict[str, dict[str, list[dict[str, Any]]]] = {
                code: {"empty": [], "loaded": []} for code in codes
            }
            # A database per code and state; the loaded ones are loaded up front, so that
            # the rounds alternate states as well as codes (the machine's speed drifts).
            dbs = {(code, state): f"{code}_{state}" for code in codes for state in STATES}
            for (code, _state), db in dbs.items():
                backend.create(db, async_commit=args.pg_async_commit)
                rev = run_child("migrate", {"url": backend.url(db)}, codes[code])["revision"]
                report["revisions"][code] = rev
            for code in codes:
                secs = backend.load(dbs[code, "loaded"], pending, finished)
                report["load_s"].setdefault(name, {})[code] = secs
                print(f"{name} {code}: loaded {pending:,} + {finished:,} rows in {secs:.1f} s")
            spec = {"claims": claims, "drain": drain, "cap": args.cap}
            pairs = list(dbs)
            for r in range(rounds):
                # Each round starts at another pair, and every other round runs backwards.
                order = pairs[r % len(pairs) :] + pairs[: r % len(pairs)]
                if r % 2:
                    order.reverse()
                for code, state in order:
                    if args.pg_vacuum:
                        backend.vacuum(dbs[code, state])
                    url = backend.url(dbs[code, state])
                    got = run_child("measure", {**spec, "url": url}, codes[code])
                    runs[code][state].append(got)
                    c1, c3 = got["claim1"], got["claim3"]
                    print(
                        f"{name} {state} {code} round {r + 1}: claim p50 "
                        f"{c1['p50_ms']:.3f} ms p95 {c1['p95_ms']:.3f} ms "
                        f"({c1['claims']} claims), 3 names p50 {c3['p50_ms']:.3f} ms, "
                        f"drain {got['drain']['per_s']:.0f} wf/s",
                        flush=True,
                    )
            for code in codes:
                plans = run_child("plans", {"url": backend.url(dbs[code, "loaded"])}, codes[code])
                plans.pop("hydra_from", None)
                report["plans"].setdefault(name, {})[code] = plans
                for label, texts in plans.items():
                    print(f"\n--- {name} {code}: claim plan, {label}, loaded table ---")
                    for text in texts:
                        print(text)
            report["results"][name] = {
                code: {state: summarise(r) for state, r in states.items()} | {"raw": states}
                for code, states in runs.items()
            }
            for db in dbs.values():
                backend.drop(db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["machine"]["load_after"] = os.getloadavg()
    print()
    print(table(report))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if args.backend != "all" or quick or args.pg_async_commit or args.pg_vacuum:
        stamp += "-" + "-".join(
            [args.backend]
            + (["quick"] if quick else [])
            + (["async"] if args.pg_async_commit else [])
            + (["vacuum"] if args.pg_vacuum else [])
        )
    text = json.dumps(report, indent=1, default=str)
    (RESULTS / f"claim-scale-{stamp}.json").write_text(text)
    special = args.pg_async_commit or args.pg_vacuum
    if not quick and args.backend == "all" and not special:
        (RESULTS / "claim-scale-latest.json").write_text(text)
    (RESULTS / f"claim-scale-{stamp}.md").write_text(table(report) + "\n")
    print(f"\nresults: {RESULTS / f'claim-scale-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
