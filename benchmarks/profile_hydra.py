"""Where hydra's time goes: the T3 loop and the T1 drain, measured and profiled.

    .venv/bin/python benchmarks/profile_hydra.py                  # both backends
    .venv/bin/python benchmarks/profile_hydra.py --backends postgres --repeat 5
    .venv/bin/python benchmarks/profile_hydra.py --py-spy         # + a py-spy profile of T1

Two workloads, each in a fresh child process on a fresh database, measuring the working
tree's hydra:

- ``steps``: T3's loop without worker threads: one claimed execution of 1,000 steps run by
  ``hydra.runner.execute`` in the main thread; wall and CPU ms per step.
- ``drain``: T1's drain: 1,000 three-step workflows submitted, then one ``hydra.Worker``
  (concurrency 16) started in the same process; workflows/s and CPU ms per workflow.

With ``--py-spy``, also records the ``drain`` workload with ``py-spy record --gil`` (only
samples holding the GIL, i.e. Python CPU) and prints the inclusive share of the main
functions, to ``benchmarks/results/profile-*.txt``.

(Until the driver path, this script also monkeypatched before/after experiments of the
store into the child: prebuilt statements, no pool pre-ping. hydra adopted both, and the
driver path replaced the code they patched; their figures are in docs/benchmarks.md.)
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


# -- child side ------------------------------------------------------------------------------
def child(spec: dict[str, Any]) -> None:
    sys.path.insert(0, str(HERE))
    import compare

    import hydra
    from hydra.runner import execute

    store = hydra.SQLStore(spec["url"], auto_migrate=True)
    engine = hydra.Engine(store, namespace="bench")
    wfs = {w.name: w for w in compare.hydra_workflows()}
    if spec["workload"] == "steps":

        def one(n: int) -> None:
            eid = engine.start_workflow("bench-many", n)
            [claim] = store.claim(
                "bench", ["bench-many"], "p", now_ms=engine.clock.now_ms(), lease_ms=60_000, limit=1
            )
            execute(engine.runtime, wfs["bench-many"], claim, lease_ms=60_000)
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
        cell: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(args.repeat):
            for workload, n in (("steps", 1000), ("drain", 1000)):
                url = fresh(backend, args.pg, tmp)
                spec = {"url": url, "workload": workload, "n": n}
                for k, v in run_child(spec).items():
                    cell[k].append(v)
        med = {k: statistics.median(v) for k, v in cell.items()}
        rng = {k: (min(v), max(v)) for k, v in cell.items()}
        rows.append((backend, med, rng))
        print(
            f"{backend:8} "
            + "  ".join(f"{k} {med[k]:.3f} ({rng[k][0]:.3f}-{rng[k][1]:.3f})" for k in med),
            file=sys.stderr,
        )
    results["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    results["rows"] = [{"backend": b, "median": m, "range": r} for b, m, r in rows]
    lines = [
        "| backend | T3 loop ms/step | CPU ms/step | T1 drain workflows/s | CPU ms/workflow |",
        "|---|---:|---:|---:|---:|",
    ]
    for b, m, r in rows:

        def c(k: str, d: int = 3, m: dict[str, float] = m, r: dict[str, Any] = r) -> str:
            return f"{m[k]:.{d}f} ({r[k][0]:.{d}f}-{r[k][1]:.{d}f})"

        lines.append(
            f"| {b} | {c('ms_per_step')} | {c('cpu_ms_per_step')} | "
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
            spec = {"url": url, "workload": "drain", "n": 1000}
            prefix = [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "-r", "250"]
            run_child(spec, prefix=[*prefix, "-f", "raw", "-o", str(raw), "--"])
            text = summarise_raw(raw)
            (out_dir / f"profile-{backend}-{stamp}.txt").write_text(text + "\n")
            print(f"\n== py-spy --gil, T1 drain on {backend} ==\n{text}")
    (out_dir / f"profile-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
