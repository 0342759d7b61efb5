"""Send-to-resume latency of ``hydra.receive`` (issue 12: "p50 under 5 ms").

    .venv/bin/python benchmarks/message_latency.py                      # all three, 200 rounds
    .venv/bin/python benchmarks/message_latency.py --backend sqlite --rounds 10   # short form

One round: a workflow is started and runs until ``hydra.receive(ctx, "go")`` suspends it;
the benchmark waits until the execution is ``sleeping`` with ``wait_topic == "go"``, then
``--settle-ms`` (20) plus a random pause up to ``--jitter-ms`` (100, one poll interval:
the send falls anywhere in the worker's poll cycle), checks it is still so, then takes
``t0 = time.time_ns()`` and calls ``engine.send(eid, "go", ...)``. The workflow's next
line is a step whose body returns ``time.time_ns()`` (``t1``), returned as the workflow's
output; the latency is ``t1 - t0``. Wall-clock nanoseconds on one machine, so the sender
and a worker in another process read the same clock. The first ``--warmup`` rounds are not counted.

- ``postgres``: the worker in another process (this script with ``--child-worker``), woken
  by LISTEN/NOTIFY; the sender here. A scratch database ``bench_msg_<hex>`` on ``--pg``,
  dropped at the end (``--pg-url``: use that database as it is, in a fresh namespace).
- ``sqlite``: engine and ``Worker`` threads in this process, woken by the in-process wake
  callback (``engine.send`` -> ``registry.wake_workers``). A file in a temporary directory.
- ``mysql``: MariaDB/MySQL, the worker in another process. No notifications there: the
  worker finds the message at its next poll (``poll_interval``, 100 ms by default, with
  +-20 % jitter), so the latency is about half the poll interval on average; for
  information. A scratch database on ``--mysql`` (``--mysql-url`` as for PostgreSQL).

Workers run with their defaults (concurrency 10, poll interval 100 ms). The worker's store
is traced (its ``claim``, ``receive``, and on PostgreSQL its listener's wake-ups, stamped
with ``time.time_ns()``), so each round is broken down: the send's transaction, the
NOTIFY's arrival, the poller's claim, the replay up to the receive, the receive's
transaction, and on to the step body.

Results: ``benchmarks/results/msg-latency-<time>.{json,md}`` (``msg-latency-latest.json``
for a full run of every backend); ``--out DIR`` writes them elsewhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
WORKFLOW = "bench-receive"
TOPIC = "go"
BACKENDS = ("postgres", "sqlite", "mysql")
#: the breakdown's marks, each in ms after t0 (None where not seen)
MARKS = ("sent", "notified", "claim_start", "claim_end", "receive_start", "receive_end", "woke")


# ==========================================================================================
# The workflow, and the worker's tracing (both sides import this file).
# ==========================================================================================
def _waiter() -> Any:
    import hydra

    class Waiter(hydra.Workflow[dict[str, int]]):
        """Waits for "go", then stamps the wall clock in a step (once: replays reuse it)."""

        name = WORKFLOW

        def run(self, ctx: hydra.WorkflowContext, req: dict[str, int]) -> dict[str, int]:
            hydra.receive(ctx, TOPIC)
            woke = hydra.step(ctx, "woke", time.time_ns)
            return {"round": req["round"], "woke_ns": woke}

    return Waiter()


class Tracer:
    """Stamps the worker store's claims and receives, and the listener's wake-ups.

    Instance attributes replace the store's methods (no hydra code changes); each event is
    ``(kind, start_ns, end_ns, execution ids)``. ``list.append`` is atomic, so the worker's
    threads record without a lock.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, list[str]]] = []

    def install(self, store: Any) -> None:
        claim, receive, open_listener = store.claim, store.receive, store.open_listener

        def traced_claim(*args: Any, **kwargs: Any) -> Any:
            start = time.time_ns()
            got = claim(*args, **kwargs)
            if got:  # the idle polls that find nothing are left out
                ids = [c.lease.execution_id for c in got]
                self.events.append(("claim", start, time.time_ns(), ids))
            return got

        def traced_receive(lease: Any, **kwargs: Any) -> Any:
            start = time.time_ns()
            got = receive(lease, **kwargs)
            kind = "receive" if got is not None else "suspend"
            self.events.append((kind, start, time.time_ns(), [lease.execution_id]))
            return got

        def traced_open_listener(*args: Any, **kwargs: Any) -> Any:
            listener = open_listener(*args, **kwargs)
            return None if listener is None else TracedListener(listener, self)

        setattr(store, "claim", traced_claim)  # noqa: B010 - an instance attribute on purpose
        setattr(store, "receive", traced_receive)  # noqa: B010
        setattr(store, "open_listener", traced_open_listener)  # noqa: B010


class TracedListener:
    """A ``WakeListener`` that stamps each notification it hands the worker."""

    def __init__(self, inner: Any, tracer: Tracer) -> None:
        self.inner = inner
        self.tracer = tracer

    def wait(self, timeout_s: float) -> bool:
        got = bool(self.inner.wait(timeout_s))
        if got:
            now = time.time_ns()
            self.tracer.events.append(("notified", now, now, []))
        return got

    def close(self) -> None:
        self.inner.close()


def _worker(engine: Any, worker_id: str) -> Any:
    import hydra

    worker = hydra.Worker(engine, worker_id=worker_id)  # defaults: concurrency 10, 100 ms
    worker.register(_waiter())
    return worker


def child_worker(spec: dict[str, Any]) -> int:
    """The worker process (``postgres``, ``mysql``): runs until SIGTERM or its parent goes,
    then writes its trace to ``spec["trace"]``."""
    import hydra

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    parent = os.getppid()
    store = hydra.SQLStore(spec["url"], auto_migrate=True)
    tracer = Tracer()
    tracer.install(store)
    worker = _worker(hydra.Engine(store, namespace=spec["namespace"]), f"bench-{os.getpid()}")
    worker.start()  # PostgreSQL: LISTENing from here on
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not stop.wait(0.1) and os.getppid() == parent:
        pass
    worker.shutdown(timeout=5)
    store.close()
    Path(spec["trace"]).write_text(json.dumps(tracer.events))
    return 0


# ==========================================================================================
# The rounds, on the sender's side.
# ==========================================================================================
def _wait_suspended(engine: Any, eid: str, timeout_s: float) -> None:
    """Until the execution is ``sleeping`` in the receive of "go"."""
    deadline = time.monotonic() + timeout_s
    while True:
        ex = engine.get_execution(eid)
        if ex.status.value == "sleeping" and ex.wait_topic == TOPIC:
            return
        if ex.terminal or time.monotonic() > deadline:
            raise RuntimeError(f"execution {eid} did not suspend in receive: {ex.status}")
        time.sleep(0.001)


def run_rounds(engine: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    timeout_s = args.timeout
    pick = random.Random(12)
    for i in range(args.warmup + args.rounds):
        eid = engine.start_workflow(WORKFLOW, {"round": i})
        _wait_suspended(engine, eid, timeout_s)
        # The worker idle again, as a message usually finds it; then a random pause, so
        # that the send falls anywhere in the worker's poll cycle (which began with the
        # claim that ran this execution up to its receive, a fixed time ago otherwise).
        time.sleep((args.settle_ms + pick.uniform(0, args.jitter_ms)) / 1000)
        _wait_suspended(engine, eid, 0)  # still suspended, right before the send
        t0 = time.time_ns()
        engine.send(eid, TOPIC, {"round": i})
        sent = time.time_ns()
        done = engine.wait(eid, timeout=timeout_s)
        if done.status.value != "completed" or done.output["round"] != i:
            raise RuntimeError(f"round {i}: execution {eid} ended {done.status}: {done.error}")
        if i >= args.warmup:
            woke = int(done.output["woke_ns"])
            out.append({"eid": eid, "t0": t0, "sent": sent, "woke": woke})
    return out


def breakdown(
    rounds: list[dict[str, Any]], events: list[tuple[str, int, int, list[str]]]
) -> list[dict[str, float | None]]:
    """Each round's marks in ms after t0, from the worker's trace."""
    notified = sorted(e[1] for e in events if e[0] == "notified")
    by_eid: dict[str, dict[str, tuple[int, int]]] = {}
    for kind, start, end, ids in events:
        for eid in ids:
            if kind in ("claim", "receive"):
                # The last claim of the execution is the one after the send (the first
                # started it); it has one receive that got the message.
                by_eid.setdefault(eid, {})[kind] = (start, end)
    out = []
    for r in rounds:
        t0 = r["t0"]
        seen = by_eid.get(r["eid"], {})
        claim = seen.get("claim")
        receive = seen.get("receive")
        note = None
        if claim is not None:
            # The latest wake-up after t0 and before the claim began.
            before = [n for n in notified if t0 <= n <= claim[0]]
            note = before[-1] if before else None
        ns = {
            "sent": r["sent"],
            "notified": note,
            "claim_start": claim[0] if claim else None,
            "claim_end": claim[1] if claim else None,
            "receive_start": receive[0] if receive else None,
            "receive_end": receive[1] if receive else None,
            "woke": r["woke"],
        }
        out.append({k: None if v is None else (v - t0) / 1e6 for k, v in ns.items()})
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _seen(marks: list[dict[str, float | None]], key: str) -> list[float]:
    return [v for m in marks if (v := m[key]) is not None]


def summarise(marks: list[dict[str, float | None]]) -> dict[str, Any]:
    latencies = sorted(_seen(marks, "woke"))
    stages: dict[str, float | None] = {}
    for key in MARKS:
        values = _seen(marks, key)
        stages[key] = statistics.median(values) if values else None

    def span(a: str, b: str) -> float | None:
        """The median length of the stage from mark ``a`` to mark ``b``."""
        values = [
            end - start for m in marks if (start := m[a]) is not None and (end := m[b]) is not None
        ]
        return statistics.median(values) if values else None

    return {
        "rounds": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "min_ms": latencies[0],
        "max_ms": latencies[-1],
        "mean_ms": statistics.fmean(latencies),
        # Medians of each mark (ms after t0) and of each stage's own length.
        "marks_median_ms": stages,
        "stages_median_ms": {
            "send (engine.send, commit included)": stages["sent"],
            "t0 -> notification arrives (PostgreSQL)": stages["notified"],
            "t0 -> claim begins (notification / wake-up / poll)": stages["claim_start"],
            "claim": span("claim_start", "claim_end"),
            "claim ends -> receive begins (hand-off, replay)": span("claim_end", "receive_start"),
            "receive (message taken + checkpointed)": span("receive_start", "receive_end"),
            "receive ends -> step body": span("receive_end", "woke"),
        },
    }


# ==========================================================================================
# Backends.
# ==========================================================================================
class Scratch:
    """A scratch database on a server (created, then dropped), or a URL used as it is."""

    def __init__(self, kind: str, base: str, url: str | None) -> None:
        self.kind = kind
        self.base = base
        self.given = url
        self.name = f"bench_msg_{uuid.uuid4().hex[:10]}"

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.base + ("/postgres" if self.kind == "postgres" else "/"))
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(sql))
        finally:
            engine.dispose()

    def __enter__(self) -> str:
        if self.given:
            return self.given
        charset = " CHARACTER SET utf8mb4" if self.kind == "mysql" else ""
        self._admin(f"CREATE DATABASE {self.name}{charset}")
        return f"{self.base}/{self.name}"

    def __exit__(self, *exc: object) -> None:
        if not self.given:
            # FORCE: a session still open (a listener closing late) does not keep it.
            force = " WITH (FORCE)" if self.kind == "postgres" else ""
            self._admin(f"DROP DATABASE IF EXISTS {self.name}{force}")


def measure_in_process(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """SQLite: engine and worker threads here; ``engine.send`` wakes the poller."""
    import hydra

    store = hydra.SQLStore(url, auto_migrate=True)
    tracer = Tracer()
    tracer.install(store)
    engine = hydra.Engine(store, namespace=f"msg-bench-{uuid.uuid4().hex[:8]}")
    worker = _worker(engine, f"bench-{os.getpid()}")
    worker.start()
    try:
        rounds = run_rounds(engine, args)
    finally:
        worker.shutdown(timeout=5)
        store.close()
    return {"rounds": rounds, "events": tracer.events, "worker": "same process (threads)"}


def measure_cross_process(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """PostgreSQL, MariaDB: the worker in a child process, the sender here."""
    import hydra

    namespace = f"msg-bench-{uuid.uuid4().hex[:8]}"
    store = hydra.SQLStore(url, auto_migrate=True)  # migrated before the worker starts
    engine = hydra.Engine(store, namespace=namespace)
    trace = tmp / f"trace-{namespace}.json"
    spec = {"url": url, "namespace": namespace, "trace": str(trace)}
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child-worker", json.dumps(spec)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the worker process did not start (said {line!r})")
        rounds = run_rounds(engine, args)
        child.send_signal(signal.SIGTERM)
        if child.wait(timeout=30) != 0:
            raise RuntimeError(f"the worker process exited {child.returncode}")
        events = [tuple(e) for e in json.loads(trace.read_text())]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        store.close()
    return {"rounds": rounds, "events": events, "worker": f"another process (pid {child.pid})"}


def measure(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if backend == "sqlite":
        got = measure_in_process(f"sqlite:///{tmp / 'bench-msg.db'}", args)
        wake = "in-process wake callback"
    else:
        base, given = (
            (args.pg, args.pg_url) if backend == "postgres" else (args.mysql, args.mysql_url)
        )
        with Scratch(backend, base, given) as url:
            got = measure_cross_process(url, args, tmp)
        wake = "LISTEN/NOTIFY" if backend == "postgres" else "polling (poll_interval 100 ms)"
    marks = breakdown(got["rounds"], got["events"])
    return {
        "worker": got["worker"],
        "wake_up": wake,
        "summary": summarise(marks),
        "marks_ms": marks,
    }


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        "| backend | worker | wake-up | rounds | p50 ms | p90 ms | p99 ms | min / max ms |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        s = r["summary"]
        lines.append(
            f"| {name} | {r['worker'].split(' (')[0]} | {r['wake_up']} | {s['rounds']} "
            f"| {fmt(s['p50_ms'])} | {fmt(s['p90_ms'])} | {fmt(s['p99_ms'])} "
            f"| {fmt(s['min_ms'])} / {fmt(s['max_ms'])} |"
        )
    lines += ["", "Where the time goes (medians, ms):", ""]
    stages = list(next(iter(report["results"].values()))["summary"]["stages_median_ms"])
    lines.append("| stage | " + " | ".join(report["results"]) + " |")
    lines.append("|---|" + "---:|" * len(report["results"]))
    for stage in stages:
        cells = [fmt(r["summary"]["stages_median_ms"][stage]) for r in report["results"].values()]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child-worker", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="all", choices=[*BACKENDS, "all"])
    parser.add_argument("--rounds", type=int, default=200, help="rounds counted (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="rounds not counted first")
    parser.add_argument("--settle-ms", type=float, default=20.0, help="pause before each send")
    parser.add_argument(
        "--jitter-ms", type=float, default=100.0, help="plus a random pause up to this long"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a round may take")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--pg-url", help="use this PostgreSQL database as it is")
    parser.add_argument("--mysql", default="mysql+pymysql://root@127.0.0.1:3306")
    parser.add_argument("--mysql-url", help="use this MariaDB/MySQL database as it is")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    args = parser.parse_args(argv)
    if args.child_worker:
        return child_worker(json.loads(args.child_worker))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    report: dict[str, Any] = {
        "benchmark": "message_latency",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "params": {
            "rounds": args.rounds,
            "warmup": args.warmup,
            "settle_ms": args.settle_ms,
            "jitter_ms": args.jitter_ms,
            "clock": "time.time_ns (wall clock, one machine)",
            "worker": "hydra.Worker defaults: concurrency 10, poll_interval 100 ms",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": os.getloadavg(),
        },
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="hydra-msgbench-") as tmp:
        for backend in backends:
            result = measure(backend, args, Path(tmp))
            report["results"][backend] = result
            s = result["summary"]
            print(
                f"{backend}: p50 {s['p50_ms']:.2f} ms, p90 {s['p90_ms']:.2f} ms, "
                f"p99 {s['p99_ms']:.2f} ms ({s['rounds']} rounds)",
                flush=True,
            )
    report["machine"]["load_after"] = os.getloadavg()
    text = table(report)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if args.backend != "all":
        stamp += f"-{args.backend}"
    data = json.dumps(report, indent=1, default=str)
    (args.out / f"msg-latency-{stamp}.json").write_text(data)
    (args.out / f"msg-latency-{stamp}.md").write_text(text + "\n")
    if args.backend == "all" and args.rounds >= 200:
        (args.out / "msg-latency-latest.json").write_text(data)
    print(f"\nresults: {args.out / f'msg-latency-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
