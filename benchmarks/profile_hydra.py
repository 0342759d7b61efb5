"""Where hydra's time goes, and what two store changes would save (measured, not applied).

    .venv/bin/python benchmarks/profile_hydra.py                  # experiments, both backends
    .venv/bin/python benchmarks/profile_hydra.py --backends postgres --repeat 5
    .venv/bin/python benchmarks/profile_hydra.py --py-spy         # + a py-spy profile of T1

Two workloads, each in a fresh child process on a fresh database:

- ``steps``: T3's loop without worker threads: one claimed execution of 1,000 steps run by
  ``hydra.runner.execute`` in the main thread; wall and CPU ms per step.
- ``drain``: T1's drain: 1,000 three-step workflows submitted, then one ``hydra.Worker``
  (concurrency 16) started in the same process; workflows/s and CPU ms per workflow.

Experiments, applied to ``SQLStore`` by monkeypatching in the child (hydra's code is not
changed by this script). ``prebuilt`` and ``noping`` were measured before hydra adopted
them (commits 6831caf and 058218e); ``baseline`` is the one to use now, and ``prebuilt``
would replace PostgreSQL's one-statement checkpoint (494dc2b) with two statements:

- ``baseline``: hydra as it is.
- ``prebuilt``: the statements of the hot path (the fenced lease extension, the step
  upsert, the completion) built once with bind parameters and reused, instead of being
  built and cache-keyed by SQLAlchemy on every call.
- ``noping``: ``pool_pre_ping`` off (PostgreSQL): one round trip less per transaction; the
  store's ``_run`` already retries a transaction whose connection turns out dead.
- ``both``: the two together.

With ``--py-spy``, also records the ``drain`` workload with ``py-spy record --gil`` (only
samples holding the GIL, i.e. Python CPU) and prints the inclusive share of the main
functions, to ``benchmarks/results/profile-*.txt``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
EXPERIMENTS = ("baseline", "prebuilt", "noping", "both")


# -- patches (child side) --------------------------------------------------------------------
def patch_prebuilt() -> None:
    """Reuse statements built once with bind parameters on the hot path."""
    from sqlalchemy import and_, bindparam, case, update

    import hydra.store.sql.store as st
    from hydra.errors import LeaseLostError
    from hydra.status import Status

    ex = st.executions
    owned = (
        ex.c.id == bindparam("p_id"),
        ex.c.lease_token == bindparam("p_token"),
        ex.c.status == Status.RUNNING.value,
    )
    extend = (
        update(ex)
        .where(*owned)
        .values(
            lease_expires_at=bindparam("p_expires"),
            wake_at=case(
                (
                    and_(ex.c.timeout_at.is_not(None), ex.c.timeout_at < bindparam("p_expires")),
                    ex.c.timeout_at,
                ),
                else_=bindparam("p_expires"),
            ),
            updated_at=bindparam("p_now"),
        )
    )
    finish = (
        update(ex)
        .where(*owned)
        .values(
            status=bindparam("p_status"),
            output_data=bindparam("p_output"),
            error_type=bindparam("p_error_type"),
            error_message=bindparam("p_error_message"),
            completed_at=bindparam("p_now"),
            updated_at=bindparam("p_now"),
            wake_at=None,
            sleep_until=None,
            next_retry_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    step_cols = (
        "execution_id",
        "step_name",
        "step_order",
        "status",
        "attempts",
        "output_data",
        "error_type",
        "error_message",
        "started_at",
        "completed_at",
        "updated_at",
    )
    upserts: dict[int, Any] = {}
    original_finish = st.SQLStore.finish

    def _extend(self: Any, conn: Any, lease: Any, now_ms: int, lease_ms: int) -> bool:
        params = {
            "p_id": lease.execution_id,
            "p_token": lease.token,
            "p_expires": now_ms + lease_ms,
            "p_now": now_ms,
        }
        return bool(conn.execute(extend, params).rowcount == 1)

    def save_step(self: Any, lease: Any, step: Any, *, now_ms: int, lease_ms: int) -> None:
        stmt = upserts.get(id(self))
        if stmt is None:
            stmt = self._dialect.upsert(
                st.steps, {c: bindparam(f"s_{c}") for c in step_cols}, ["execution_id", "step_name"]
            )
            upserts[id(self)] = stmt
        values = (
            step.execution_id,
            step.name,
            step.order,
            step.status.value,
            step.attempts,
            step.output,
            step.error_type,
            step.error_message,
            step.started_at,
            step.completed_at,
            now_ms,
        )
        params = {f"s_{c}": v for c, v in zip(step_cols, values, strict=True)}

        def save(conn: Any) -> None:
            if not self._extend(conn, lease, now_ms, lease_ms):
                raise LeaseLostError(st._lost(lease))
            conn.execute(stmt, params)

        self._run(save)

    def finish_(self: Any, lease: Any, *, status: Any, now_ms: int, **kw: Any) -> None:
        params = {
            "p_id": lease.execution_id,
            "p_token": lease.token,
            "p_status": Status(status).value,
            "p_output": kw.get("output"),
            "p_error_type": kw.get("error_type"),
            "p_error_message": kw.get("error_message"),
            "p_now": now_ms,
        }
        if self._run(lambda conn: conn.execute(finish, params).rowcount) != 1:
            original_finish(self, lease, status=status, now_ms=now_ms, **kw)  # its checks

    st.SQLStore._extend = _extend  # type: ignore[method-assign]
    st.SQLStore.save_step = save_step  # type: ignore[method-assign]
    st.SQLStore.finish = finish_  # type: ignore[method-assign]


def apply(experiment: str, store: Any) -> None:
    if experiment in ("noping", "both"):
        store.engine.pool._pre_ping = False


def child(spec: dict[str, Any]) -> None:
    if spec["experiment"] in ("prebuilt", "both"):
        patch_prebuilt()
    sys.path.insert(0, str(HERE))
    import compare

    import hydra
    from hydra.runner import execute

    store = hydra.SQLStore(spec["url"], auto_migrate=True)
    apply(spec["experiment"], store)
    engine = hydra.Engine(store, namespace="bench")
    wfs = {w.name: w for w in compare.hydra_workflows()}
    if spec["workload"] == "steps":

        def one(n: int) -> None:
            eid = engine.start_workflow("bench-many", n)
            [claim] = store.claim(
                "bench", ["bench-many"], "p", now_ms=engine.clock.now_ms(), lease_ms=60_000, limit=1
            )
            execute(engine, wfs["bench-many"], claim, lease_ms=60_000)
            assert engine.get_execution(eid).output == n

        one(20)
        n = spec["n"]
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        one(n)
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
        out = {"ms_per_step": wall * 1000 / n, "cpu_ms_per_step": cpu * 1000 / n}
    else:
        from sqlalchemy import text

        n = spec["n"]
        for i in range(n):
            engine.start_workflow("bench-three", i)
        worker = compare._hydra_worker(engine, "p")
        query = text(
            "SELECT count(*), max(completed_at) FROM workflow_executions WHERE status = 'completed'"
        )
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
        worker.start()
        while True:
            with store.engine.connect() as conn:
                count, last = conn.execute(query).one()
            if count >= n:
                break
            time.sleep(0.05)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        worker.shutdown(timeout=5)
        wall = last / 1000 - t0
        cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
        out = {"throughput": n / wall, "cpu_ms_per_workflow": cpu * 1000 / n}
    store.close()
    print(json.dumps(out), flush=True)


# -- parent ----------------------------------------------------------------------------------
def fresh(backend: str, pg: str, tmp: Path) -> str:
    if backend == "sqlite":
        path = tmp / "profile.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(f"{pg}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "hydra_bench" WITH (FORCE)'))
        conn.execute(text('CREATE DATABASE "hydra_bench"'))
    admin.dispose()
    return f"{pg}/hydra_bench"


def run_child(spec: dict[str, Any], prefix: list[str] | None = None) -> dict[str, Any]:
    argv = [*(prefix or []), sys.executable, __file__, "--child", json.dumps(spec)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]  # py-spy prints too
    return json.loads(lines[-1])


def summarise_raw(path: Path, top: int = 40) -> str:
    """Inclusive share of functions in py-spy raw samples taken in worker threads."""
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "Thread._bootstrap" not in stack:
            continue  # the main thread only submits and polls
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            key = re.sub(r":\d+\)$", ")", frame)
            if key not in seen:
                seen.add(key)
                incl[key] += n
    lines = [f"{total} samples holding the GIL in worker threads"]
    lines += [f"{100 * v / total:5.1f}%  {k}" for k, v in incl.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--py-spy", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="hydra-profile-"))
    results: dict[str, Any] = {"load_before": Path("/proc/loadavg").read_text().split()[:3]}
    rows = []
    for backend in args.backends.split(","):
        for experiment in args.experiments.split(","):
            if backend == "sqlite" and experiment in ("noping", "both"):
                continue  # no pre-ping on SQLite
            cell: dict[str, list[float]] = collections.defaultdict(list)
            for _ in range(args.repeat):
                for workload, n in (("steps", 1000), ("drain", 1000)):
                    url = fresh(backend, args.pg, tmp)
                    spec = {"url": url, "experiment": experiment, "workload": workload, "n": n}
                    for k, v in run_child(spec).items():
                        cell[k].append(v)
            med = {k: statistics.median(v) for k, v in cell.items()}
            rng = {k: (min(v), max(v)) for k, v in cell.items()}
            rows.append((backend, experiment, med, rng))
            print(
                f"{backend:8} {experiment:9} "
                + "  ".join(f"{k} {med[k]:.3f} ({rng[k][0]:.3f}-{rng[k][1]:.3f})" for k in med),
                file=sys.stderr,
            )
    results["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    results["rows"] = [
        {"backend": b, "experiment": e, "median": m, "range": r} for b, e, m, r in rows
    ]
    lines = [
        "| backend | experiment | T3 loop ms/step | CPU ms/step | T1 drain workflows/s | "
        "CPU ms/workflow |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for b, e, m, r in rows:

        def c(k: str, d: int = 3, m: dict[str, float] = m, r: dict[str, Any] = r) -> str:
            return f"{m[k]:.{d}f} ({r[k][0]:.{d}f}-{r[k][1]:.{d}f})"

        lines.append(
            f"| {b} | {e} | {c('ms_per_step')} | {c('cpu_ms_per_step')} | "
            f"{c('throughput', 0)} | {c('cpu_ms_per_workflow', 2)} |"
        )
    table = "\n".join(lines)
    print(table)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results["table"] = table
    if args.py_spy:
        for backend in args.backends.split(","):
            url = fresh(backend, args.pg, tmp)
            raw = tmp / f"{backend}.raw"
            spec = {"url": url, "experiment": "baseline", "workload": "drain", "n": 1000}
            prefix = [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "-r", "250"]
            run_child(spec, prefix=[*prefix, "-f", "raw", "-o", str(raw), "--"])
            text = summarise_raw(raw)
            (out_dir / f"profile-{backend}-{stamp}.txt").write_text(text + "\n")
            print(f"\n== py-spy --gil, T1 drain on {backend} ==\n{text}")
    (out_dir / f"profile-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
