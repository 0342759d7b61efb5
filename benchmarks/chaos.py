"""The chaos run: workers SIGKILLed, one SIGSTOPped past its lease, one whose clock is
30 s ahead, one cut off from the database for 2 s, the server restarted.

    .venv/bin/python benchmarks/chaos.py                      # PostgreSQL, then SQLite
    .venv/bin/python benchmarks/chaos.py --backend sqlite --workflows 500
    .venv/bin/python benchmarks/chaos.py --backend postgres --no-restart

Full form (issue 6): 4 worker processes (concurrency 4 each) share 2,000 workflows of 5
steps. Every step body appends a row to a ledger table in the same database
(execution, step, workflow attempt, lease token, pid, and whether the step's checkpoint
was already committed when the body started). While they run, the parent:

- SIGKILLs a random worker every ~2 s and starts a replacement;
- quiesces one worker (its store calls drain, see below), SIGSTOPs it, waits until its
  leases have expired and been taken over, then SIGCONTs it: every write it then tries
  must be refused by fencing;
- restarts PostgreSQL once (``pg_ctlcluster ... restart``; PostgreSQL only);
- runs worker 0 with its wall clock 30 s ahead (``time.time``/``time.time_ns`` patched in
  that process; PostgreSQL only: hydra's time base there is the server's clock, while on
  SQLite it is the machine's clock, which every process of one machine shares, so a
  process with a clock of its own is not a fault SQLite deployments can have);
- cuts worker 1 off from the database for 2 s mid-run: on PostgreSQL it connects through
  a ``hydra.testing.TCPProxy`` that drops every established connection and refuses new
  ones for 2 s; on SQLite (no connection to cut) its store calls are held for 2 s.
  Neither role is SIGKILLed, so each keeps its fault for the whole run.

Each worker logs every claim (execution, new lease token) and every fenced write it
attempts (checkpoint, finish, suspend, heartbeat; token; accepted or refused; start and
end time) to its own events file. At the end the checks are:

1. every workflow is ``completed``, with the output its checkpoints imply, and no
   process saw more than one accepted completion for it; every execution that was never
   held by a killed or stopped worker completed on its first attempt (no live lease was
   taken over: not by the skewed worker, not after the cut);
2. no step body started after its checkpoint was committed (the ledger's flag, read at
   the body's start, and its start time against the commit's), and every checkpoint is
   the result of the step's latest body run;
3. in-flight re-runs: every step that ran twice was first running in a process that was
   killed or stopped, at most ``concurrency`` re-runs per such process (a worker has at
   most that many steps in flight), so re-runs <= (kills + stops) x concurrency;
4. no write from a fenced worker landed: no accepted write carries a token older than a
   claim of the same execution that had already committed when the write started;
   checkpoint tokens never go down along an execution's steps; the stopped worker's
   writes after SIGCONT were refused;
5. no live lease was taken over: every takeover committed at least ``claim_timeout``
   after the last extension of the lease it replaced (the skewed worker, comparing
   times on its own clock, takes leases over the moment it sees them: ``--local-clock``
   is the negative control).

About the stop: SIGSTOP can freeze a process inside a transaction, holding a row lock
(PostgreSQL) or SQLite's only write lock, which stalls every other process until SIGCONT.
That is still correct (fencing holds), but it would make check 3 blame innocent workers
whose leases ran out meanwhile. So the parent first sends SIGUSR1: the worker lets its
in-flight store calls finish and holds new ones (its run threads keep running step bodies
and then block), reports ``quiesced``, and only then is it stopped. SIGUSR2 after SIGCONT
lets its held calls go on, with their stale tokens.

The short form for CI is ``tests/chaos/test_chaos_short.py`` (``run_chaos`` with small
numbers, no server restart).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
WORKFLOW = "chaos"
# The instrumentation's clock: captured before a skewed worker patches ``time.time``, so
# every event and ledger row carries the machine's real time, whatever hydra sees.
real_time = time.time


# ==========================================================================================
# The worker process
# ==========================================================================================
class Gate:
    """Store calls pass while open; ``close`` waits for the ones in flight, holds new ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            while self._active:
                self._cond.wait()

    def open(self) -> None:
        with self._cond:
            self._closed = False
            self._cond.notify_all()


class EventLog:
    """JSON lines, one ``write(2)`` each on an O_APPEND descriptor."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"k": kind, **fields}, separators=(",", ":")) + "\n"
        with self._lock:
            os.write(self._fd, line.encode())


def _retrying(fn: Callable[[], Any], limit_s: float = 60.0) -> Any:
    """Run a ledger statement, retrying while the database restarts."""
    from sqlalchemy.exc import DBAPIError

    deadline = time.monotonic() + limit_s
    delay = 0.02
    while True:
        try:
            return fn()
        except DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def ledger_insert_sql(ledger: str) -> str:
    return (
        f"INSERT INTO {ledger} (nonce, execution_id, step, attempt, token, pid, t, "
        "checkpoint_seen) VALUES (:nonce, :eid, :step, :attempt, :token, :pid, :t, :seen) "
        "ON CONFLICT (nonce) DO NOTHING"
    )


CHECKPOINT_SQL = (
    "SELECT count(*) FROM workflow_steps WHERE execution_id = :eid AND step_name = :step "
    "AND status = 'completed'"
)


def worker_main(args: argparse.Namespace) -> int:
    from sqlalchemy import create_engine, text

    import hydra

    if os.environ.get("HYDRA_CHAOS_BREAK_FENCING") == "1":
        # Negative control: writes match the execution while it is running, whatever the
        # lease token. The checks must then find fenced writes landing.
        from sqlalchemy import bindparam, update

        from hydra.store.sql import statements
        from hydra.store.sql.schema import executions

        def unfenced(lease: Any) -> tuple[Any, ...]:
            c = executions.c
            return (c.id == lease.execution_id, c.status == "running")

        assert hasattr(statements, "owned")
        statements.owned = unfenced
        # The prebuilt transitions (suspend, retry, finish): the same, without the token.
        c = executions.c
        # And the fenced lease extension (checkpoints, heartbeats; PostgreSQL's save_step
        # fuses it with the step upsert when the store is built, below).
        statements.EXTEND = (
            update(executions)
            .where(c.id == bindparam("x_id"), c.status == "running")
            .values(lease_expires_at=bindparam("x_expires"), updated_at=bindparam("x_now"))
        )
        statements.FENCED.update(
            statements.build_fenced((c.id == bindparam("f_id"), c.status == "running"))
        )

    if args.clock_skew:
        # This process's wall clock runs ``clock_skew`` seconds ahead (or behind): whatever
        # reads time.time / time.time_ns (hydra's SystemClock does) sees it.
        skew_ns = int(args.clock_skew * 1e9)
        real_ns = time.time_ns
        time.time = lambda: real_time() + args.clock_skew
        time.time_ns = lambda: real_ns() + skew_ns

    pid = os.getpid()
    log = EventLog(args.events)
    gate = Gate()
    # The store may go through a proxy (the cut-off worker); the ledger never does.
    store = hydra.SQLStore(args.store_url or args.url)
    ledger_engine = create_engine(
        args.url,
        **({"connect_args": {"timeout": 60}} if args.url.startswith("sqlite") else {}),
        pool_pre_ping=not args.url.startswith("sqlite"),
    )
    insert = text(ledger_insert_sql(args.ledger))
    checkpoint = text(CHECKPOINT_SQL)

    def body(eid: str, step: str, attempt: int, token: int) -> dict[str, Any]:
        t_enter = real_time()

        # Was this step's checkpoint already committed when its body started? A read, so
        # it does not wait at the gate (a frozen reader blocks no writer).
        def read() -> int:
            with ledger_engine.connect() as conn:
                return int(conn.execute(checkpoint, {"eid": eid, "step": step}).scalar() or 0)

        seen = _retrying(read)
        nonce = uuid.uuid4().hex
        params = {
            "nonce": nonce,
            "eid": eid,
            "step": step,
            "attempt": attempt,
            "token": token,
            "pid": pid,
            "t": t_enter,
            "seen": seen,
        }

        def write() -> None:
            with gate.shared(), ledger_engine.begin() as conn:
                conn.execute(insert, params)

        _retrying(write)
        time.sleep(args.step_sleep)
        return {"pid": pid, "attempt": attempt, "token": token, "nonce": nonce}

    class Chaos(hydra.Workflow[int]):
        name = WORKFLOW

        def run(self, ctx: hydra.WorkflowContext, n: int) -> list[dict[str, Any]]:
            token = ctx._run.lease.token  # the run's fencing token, recorded for the checks
            return [
                hydra.step(
                    ctx, f"s{i}", partial(body, ctx.execution_id, f"s{i}", ctx.attempt, token)
                )
                for i in range(args.steps)
            ]

    # Log every claim and every fenced write, and hold them all at the gate.
    def wrap_claim(fn: Callable[..., Any]) -> Callable[..., Any]:
        def claim(*a: Any, **kw: Any) -> Any:
            with gate.shared():
                t0 = real_time()
                claims = fn(*a, **kw)
                t1 = real_time()
            for c in claims:
                log("claim", eid=c.execution.id, token=c.lease.token, t0=t0, t1=t1)
            return claims

        return claim

    def wrap_write(op: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def write(lease: Any, *a: Any, **kw: Any) -> Any:
            with gate.shared():
                t0 = real_time()
                try:
                    result = fn(lease, *a, **kw)
                except hydra.LeaseLostError:
                    log(
                        "write",
                        op=op,
                        eid=lease.execution_id,
                        token=lease.token,
                        ok=False,
                        t0=t0,
                        t1=real_time(),
                    )
                    raise
                extra = {}
                if op == "finish":
                    extra["status"] = str(kw.get("status"))
                if op == "save_step":
                    extra["step"] = a[0].name
                log(
                    "write",
                    op=op,
                    eid=lease.execution_id,
                    token=lease.token,
                    ok=True,
                    t0=t0,
                    t1=real_time(),
                    **extra,
                )
                return result

        return write

    def wrap_heartbeat(fn: Callable[..., Any]) -> Callable[..., Any]:
        def heartbeat(leases: Any, **kw: Any) -> Any:
            with gate.shared():
                t0 = real_time()
                lost = fn(leases, **kw)
                t1 = real_time()
            for lease in leases:
                log(
                    "write",
                    op="heartbeat",
                    eid=lease.execution_id,
                    token=lease.token,
                    ok=lease.execution_id not in lost,
                    t0=t0,
                    t1=t1,
                )
            return lost

        return heartbeat

    store.claim = wrap_claim(store.claim)  # type: ignore[method-assign]
    for op in ("save_step", "suspend", "schedule_retry", "finish", "release"):
        setattr(store, op, wrap_write(op, getattr(store, op)))
    store.heartbeat = wrap_heartbeat(store.heartbeat)  # type: ignore[method-assign]

    # Negative control for the clock: this worker compares times on its own (skewed)
    # wall clock, as every worker did before issue 9. The checks must catch it.
    local_clock = os.environ.get("HYDRA_CHAOS_LOCAL_CLOCK") == "1" and args.clock_skew
    clock = hydra.clock.SystemClock() if local_clock else None
    engine = hydra.Engine(store, namespace=args.namespace, clock=clock)
    worker = hydra.Worker(
        engine,
        worker_id=f"chaos-{args.index}-{pid}",
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        heartbeat_interval=args.heartbeat,
        claim_timeout=args.claim_timeout,
    )
    worker.register(Chaos())

    requests: list[str] = []
    wake = threading.Event()
    for sig, name in (
        (signal.SIGUSR1, "quiesce"),
        (signal.SIGUSR2, "resume"),
        (signal.SIGTERM, "term"),
    ):
        signal.signal(sig, lambda _s, _f, name=name: (requests.append(name), wake.set()))
    worker.start()
    log("ready", pid=pid, worker_id=worker.worker_id, t=real_time())
    parent = os.getppid()
    while True:
        wake.wait(0.2)
        wake.clear()
        if os.getppid() != parent:
            break
        while requests:
            req = requests.pop(0)
            if req == "quiesce":
                gate.close()
                log("quiesced", t=real_time())
            elif req == "resume":
                gate.open()
                log("resumed", t=real_time())
            else:
                gate.open()
                worker.shutdown(timeout=5)
                log("exit", t=real_time())
                os._exit(0)
    os._exit(2)


# ==========================================================================================
# The parent
# ==========================================================================================
@dataclass
class Proc:
    index: int
    proc: subprocess.Popen[bytes]
    events: Path
    started: float
    killed_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self) -> list[dict[str, Any]]:
        if not self.events.exists():
            return []
        out = []
        for line in self.events.read_text().splitlines(keepends=True):
            if line.endswith("\n"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def has(self, kind: str) -> bool:
        return any(e["k"] == kind for e in self.read())


@dataclass
class Config:
    url: str
    backend: str
    workflows: int = 2000
    steps: int = 5
    workers: int = 4
    concurrency: int = 4
    kill_every: float = 2.0
    max_kills: int | None = None
    stop: bool = True
    stop_at: float = 0.25  # fraction of workflows completed when the stop starts
    restart_pg: bool = False
    restart_at: float = 0.5
    claim_timeout: float = 5.0
    heartbeat: float = 0.5
    poll_interval: float = 0.1
    step_sleep: float = 0.01
    time_limit: float = 600.0
    namespace: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:8]}")
    ledger: str = field(default_factory=lambda: f"chaos_ledger_{uuid.uuid4().hex[:8]}")
    work_dir: Path | None = None
    seed: int | None = None
    verbose: bool = True
    break_fencing: bool = False  # negative control: run the workers without fencing
    clock_skew: float = 30.0  # worker 0's wall clock offset (s); 0: none; PostgreSQL only
    cut_off: float = 2.0  # how long worker 1 is cut off from the database (s); 0: never
    cut_at: float = 0.4  # fraction of workflows completed when it is cut off
    local_clock: bool = False  # negative control: the skewed worker uses its own clock


@dataclass
class Report:
    backend: str
    workflows: int
    steps: int
    workers: int
    concurrency: int
    seconds: float
    kills: int
    stops: int
    restarts: int
    checks: dict[str, Any]
    violations: list[str]
    stats: dict[str, Any]

    def lines(self) -> list[str]:
        out = [
            f"chaos on {self.backend}: {self.workflows} workflows x {self.steps} steps, "
            f"{self.workers} worker processes x concurrency {self.concurrency}, "
            f"{self.seconds:.1f} s; {self.kills} SIGKILLs, {self.stops} SIGSTOP past the "
            f"lease, {self.restarts} server restart(s); "
            f"{self.stats.get('faults', 'no other faults')}",
        ]
        for name, value in self.checks.items():
            out.append(f"  {name}: {value}")
        out.append(
            "  violations: " + ("none" if not self.violations else f"{len(self.violations)}")
        )
        out += [f"    - {v}" for v in self.violations[:20]]
        return out


def _say(cfg: Config, msg: str) -> None:
    if cfg.verbose:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def create_ledger(url: str, ledger: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    sqlite = url.startswith("sqlite")
    ident = "id INTEGER PRIMARY KEY AUTOINCREMENT" if sqlite else "id BIGSERIAL PRIMARY KEY"
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {ledger} ({ident}, nonce VARCHAR(32) NOT NULL UNIQUE, "
                "execution_id VARCHAR(36) NOT NULL, step VARCHAR(64) NOT NULL, "
                "attempt INTEGER NOT NULL, token BIGINT NOT NULL, pid INTEGER NOT NULL, "
                "t DOUBLE PRECISION NOT NULL, checkpoint_seen INTEGER NOT NULL)"
            )
        )
    engine.dispose()


def drop_ledger(url: str, ledger: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {ledger}"))
    engine.dispose()


def restart_postgres() -> tuple[float, float]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    t0 = real_time()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return t0, real_time()


def run_chaos(cfg: Config) -> Report:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    import hydra

    rng = random.Random(cfg.seed)
    work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="hydra-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    store = hydra.SQLStore(cfg.url, auto_migrate=True)
    create_ledger(cfg.url, cfg.ledger)
    engine = hydra.Engine(store, namespace=cfg.namespace)
    ids = [
        engine.start_workflow(WORKFLOW, i, max_attempts=1000, retry_backoff=0.1)
        for i in range(cfg.workflows)
    ]
    store.close()
    _say(cfg, f"{cfg.workflows} workflows submitted; namespace {cfg.namespace}")

    monitor = create_engine(cfg.url, poolclass=NullPool)
    done_q = text(
        "SELECT count(*) FROM workflow_executions WHERE namespace = :ns AND status = 'completed'"
    )

    def completed() -> int | None:
        try:
            with monitor.connect() as conn:
                return int(conn.execute(done_q, {"ns": cfg.namespace}).scalar() or 0)
        except DBAPIError:
            return None  # the server is restarting

    procs: list[Proc] = []
    counter = [0]
    # Worker 0: its clock runs ahead (PostgreSQL); worker 1: cut off for a while, through
    # a proxy on PostgreSQL. Neither is killed or stopped, so each keeps its role.
    skew = cfg.clock_skew if cfg.backend != "sqlite" else 0.0
    proxy = None
    store_url = ""
    if cfg.cut_off and cfg.backend != "sqlite":
        from sqlalchemy.engine import make_url

        from hydra.testing.proxy import TCPProxy

        target = make_url(cfg.url)
        proxy = TCPProxy(target.host or "127.0.0.1", target.port or 5432)
        store_url = proxy.url_for(cfg.url)
    # Only beside at least one ordinary worker (which kills and the stop can pick).
    roles = {0: "skew", 1: "cut"} if cfg.workers >= 3 else {}
    role_pids: dict[str, int] = {}
    faults: list[dict[str, Any]] = []

    def spawn() -> Proc:
        i = counter[0]
        counter[0] += 1
        role = roles.get(i)
        events = work / f"worker-{i}.jsonl"
        errlog = open(work / f"worker-{i}.log", "wb")  # noqa: SIM115 - the child owns it
        argv = [
            sys.executable, str(Path(__file__).resolve()), "--child-worker",
            "--url", cfg.url, "--namespace", cfg.namespace, "--ledger", cfg.ledger,
            "--events", str(events), "--index", str(i), "--steps", str(cfg.steps),
            "--concurrency", str(cfg.concurrency), "--claim-timeout", str(cfg.claim_timeout),
            "--heartbeat", str(cfg.heartbeat), "--poll-interval", str(cfg.poll_interval),
            "--step-sleep", str(cfg.step_sleep),
            "--clock-skew", str(skew if role == "skew" else 0.0),
            "--store-url", store_url if role == "cut" else "",
        ]  # fmt: skip
        env = dict(
            os.environ,
            HYDRA_CHAOS_BREAK_FENCING="1" if cfg.break_fencing else "0",
            HYDRA_CHAOS_LOCAL_CLOCK="1" if cfg.local_clock else "0",
        )
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog, env=env)
        errlog.close()
        proc = Proc(i, p, events, real_time())
        procs.append(proc)
        if role is not None:
            role_pids[role] = proc.pid
        return proc

    def wait_until(pred: Callable[[], bool], limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)
        return False

    kills: list[dict[str, Any]] = []
    stops: list[dict[str, Any]] = []
    restarts: list[dict[str, Any]] = []
    stopped_pid: list[int] = []
    t_start = real_time()
    try:
        for _ in range(cfg.workers):
            spawn()
        for p in procs:
            if not wait_until(lambda p=p: p.has("ready"), 60):
                raise RuntimeError(f"worker {p.index} did not start: see {work}")
        _say(cfg, f"{cfg.workers} workers ready; chaos starts")

        def cut_episode() -> None:
            """Cut worker 1 off from the database for ``cut_off`` seconds."""
            victim = next(p for p in procs if p.pid == role_pids["cut"])
            t0 = real_time()
            if proxy is not None:
                proxy.outage(cfg.cut_off)  # drops its connections, refuses new ones...
                time.sleep(cfg.cut_off)  # ...for this long (outage() returns at once)
                how = "connections dropped and refused"
            else:
                os.kill(victim.pid, signal.SIGUSR1)  # its store calls are held...
                time.sleep(cfg.cut_off)
                os.kill(victim.pid, signal.SIGUSR2)  # ...and let go
                how = "store calls held"
            faults.append({"cut_off": victim.pid, "t0": t0, "t1": real_time(), "how": how})
            _say(cfg, f"worker {victim.index} cut off for {cfg.cut_off:g} s ({how})")

        def stop_episode() -> None:
            # Only a worker that is up: a replacement still starting has no SIGUSR1 handler
            # yet, and the signal's default action would kill it. Not a role worker.
            candidates = [
                p
                for p in procs
                if p.proc.poll() is None and p.has("ready") and p.pid not in role_pids.values()
            ]
            victim = rng.choice(candidates)
            stopped_pid.append(victim.pid)
            os.kill(victim.pid, signal.SIGUSR1)
            if not wait_until(lambda: victim.has("quiesced"), 30):
                stops.append({"pid": victim.pid, "skipped": "did not quiesce"})
                stopped_pid.remove(victim.pid)
                return
            os.kill(victim.pid, signal.SIGSTOP)
            t_stop = real_time()
            held = _leases_of(cfg, f"chaos-{victim.index}-{victim.pid}")
            _say(cfg, f"SIGSTOP worker {victim.index} (pid {victim.pid}), holding {len(held)}")
            # Past the lease: wait until every execution it held was taken over. Claims go
            # by due time, so an expired lease waits behind work that was due before it.
            taken = wait_until(
                lambda: not _leases_of(cfg, f"chaos-{victim.index}-{victim.pid}"),
                cfg.time_limit / 2,
            )
            time.sleep(0.2)
            os.kill(victim.pid, signal.SIGCONT)
            os.kill(victim.pid, signal.SIGUSR2)
            t_cont = real_time()
            stops.append(
                {
                    "pid": victim.pid,
                    "index": victim.index,
                    "t_stop": t_stop,
                    "t_cont": t_cont,
                    "held": sorted(held),
                    "all_taken_over": taken,
                }
            )
            _say(cfg, f"SIGCONT worker {victim.index} after {t_cont - t_stop:.1f} s")

        stop_thread: threading.Thread | None = None
        restart_thread: threading.Thread | None = None
        cut_thread: threading.Thread | None = None
        next_kill = time.monotonic() + cfg.kill_every * rng.uniform(0.75, 1.25)
        deadline = time.monotonic() + cfg.time_limit
        last_count = 0
        while True:
            count = completed()
            if count is not None:
                last_count = count
            if last_count >= cfg.workflows:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"time limit: {last_count}/{cfg.workflows} completed; logs in {work}"
                )
            frac = last_count / cfg.workflows
            if cfg.stop and stop_thread is None and frac >= cfg.stop_at:
                stop_thread = threading.Thread(target=stop_episode, daemon=True)
                stop_thread.start()
            if cfg.cut_off and "cut" in role_pids and cut_thread is None and frac >= cfg.cut_at:
                cut_thread = threading.Thread(target=cut_episode, daemon=True)
                cut_thread.start()
            if cfg.restart_pg and restart_thread is None and frac >= cfg.restart_at:

                def restart() -> None:
                    _say(cfg, "restarting PostgreSQL")
                    t0, t1 = restart_postgres()
                    restarts.append({"t0": t0, "t1": t1})
                    _say(cfg, f"PostgreSQL back after {t1 - t0:.1f} s")

                restart_thread = threading.Thread(target=restart, daemon=True)
                restart_thread.start()
            if time.monotonic() >= next_kill and (
                cfg.max_kills is None or len(kills) < cfg.max_kills
            ):
                live = [
                    p
                    for p in procs
                    if p.proc.poll() is None
                    and p.pid not in stopped_pid
                    and p.pid not in role_pids.values()
                ]
                if live:
                    victim = rng.choice(live)
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.proc.wait()
                    victim.killed_at = real_time()
                    kills.append({"pid": victim.pid, "index": victim.index, "t": victim.killed_at})
                    spawn()
                    _say(cfg, f"SIGKILL worker {victim.index} (pid {victim.pid}); "
                              f"{last_count}/{cfg.workflows} done")  # fmt: skip
                next_kill = time.monotonic() + cfg.kill_every * rng.uniform(0.75, 1.25)
            time.sleep(0.05)
        for th in (stop_thread, restart_thread, cut_thread):
            if th is not None:
                th.join(timeout=120)
        seconds = real_time() - t_start
        _say(cfg, f"all {cfg.workflows} completed after {seconds:.1f} s; stopping workers")
    finally:
        for p in procs:
            if p.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGCONT)
                    p.proc.terminate()
        for p in procs:
            try:
                p.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
        monitor.dispose()
        if proxy is not None:
            proxy.close()

    if skew:
        faults.append({"clock_skew_s": skew, "pid": role_pids.get("skew")})
    report = analyse(cfg, ids, procs, kills, stops, restarts, seconds, faults)
    report.stats["work_dir"] = str(work)
    return report


def _leases_of(cfg: Config, worker_id: str) -> list[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(cfg.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id FROM workflow_executions WHERE namespace = :ns "
                    "AND status = 'running' AND lease_owner = :w"
                ),
                {"ns": cfg.namespace, "w": worker_id},
            ).all()
        return [r[0] for r in rows]
    except Exception:
        return ["?"]  # unreachable right now: assume still held
    finally:
        engine.dispose()


def analyse(
    cfg: Config,
    ids: list[str],
    procs: list[Proc],
    kills: list[dict[str, Any]],
    stops: list[dict[str, Any]],
    restarts: list[dict[str, Any]],
    seconds: float,
    faults: list[dict[str, Any]] | None = None,
) -> Report:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    violations: list[str] = []
    engine = create_engine(cfg.url, poolclass=NullPool)
    with engine.connect() as conn:
        execs = {
            r.id: r
            for r in conn.execute(
                text(
                    "SELECT id, status, attempt, lease_token, output_data FROM "
                    "workflow_executions WHERE namespace = :ns"
                ),
                {"ns": cfg.namespace},
            )
        }
        checkpoints = defaultdict(dict)
        for r in conn.execute(
            text(
                "SELECT s.execution_id, s.step_name, s.status, s.output_data FROM "
                "workflow_steps s JOIN workflow_executions e ON e.id = s.execution_id "
                "WHERE e.namespace = :ns"
            ),
            {"ns": cfg.namespace},
        ):
            checkpoints[r.execution_id][r.step_name] = (
                r.status,
                json.loads(bytes(r.output_data)) if r.output_data is not None else None,
            )
        ledger = conn.execute(
            text(
                f"SELECT id, nonce, execution_id, step, attempt, token, pid, t, checkpoint_seen "
                f"FROM {cfg.ledger} ORDER BY t, id"
            )
        ).all()
    engine.dispose()

    events: list[tuple[int, dict[str, Any]]] = []
    for p in procs:
        events += [(p.pid, e) for e in p.read()]
    killed_pids = {k["pid"] for k in kills}
    stopped = [s for s in stops if "t_stop" in s]
    stopped_pids = {s["pid"] for s in stopped}
    interrupted = killed_pids | stopped_pids

    # 1. every workflow completed exactly once
    not_done = [i for i in ids if execs.get(i) is None or execs[i].status != "completed"]
    if not_done:
        violations.append(f"{len(not_done)} workflows not completed, e.g. {not_done[:3]}")
    finishes = Counter(
        e["eid"] for _, e in events if e["k"] == "write" and e["op"] == "finish" and e["ok"]
    )
    twice = [eid for eid, n in finishes.items() if n > 1]
    if twice:
        violations.append(f"{len(twice)} workflows completed more than once, e.g. {twice[:3]}")
    bad_output = 0
    for eid in ids:
        ex = execs.get(eid)
        if ex is None or ex.output_data is None:
            continue
        output = json.loads(bytes(ex.output_data))
        expected = [checkpoints[eid].get(f"s{i}", (None, None))[1] for i in range(cfg.steps)]
        if output != expected:
            bad_output += 1
    if bad_output:
        violations.append(f"{bad_output} outputs differ from their checkpoints")
    # An execution used a second attempt only if a killed or stopped worker held it (a
    # takeover after a crash). A skewed clock or a short cut must cost no attempt. A
    # server restart longer than the lease may (leases run out while nobody can write).
    held_by_crashed = {
        e["eid"] for pid, e in events if e["k"] == "claim" and pid in killed_pids | stopped_pids
    }
    # A claim is logged after it returns: a process SIGKILLed in between committed a claim
    # no event shows. Every lease token is taken by a claim (logged) or by a release (which
    # retires the released token + 1, logged); an execution with a token neither accounts
    # for was claimed by a process that died before it could say so.
    accounted: dict[str, set[int]] = defaultdict(set)
    for _, e in events:
        if e["k"] == "claim":
            accounted[e["eid"]].add(e["token"])
        elif e["k"] == "write" and e["op"] == "release" and e["ok"]:
            accounted[e["eid"]].add(e["token"] + 1)
    held_by_crashed |= {
        eid for eid, ex in execs.items() if set(range(1, ex.lease_token + 1)) - accounted[eid]
    }
    long_restart = any(r["t1"] - r["t0"] >= cfg.claim_timeout for r in restarts)
    extra_attempts = [
        eid
        for eid, ex in execs.items()
        if ex.attempt > 1 and eid not in held_by_crashed and not long_restart
    ]
    if extra_attempts:
        violations.append(
            f"{len(extra_attempts)} executions used more than one attempt though no killed or "
            f"stopped worker held them (a live lease was taken over), e.g. {extra_attempts[:3]}"
        )

    # 2. no step whose checkpoint was committed ran again
    runs: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in ledger:
        runs[(row.execution_id, row.step)].append(row)
    # The flag is read right after the body starts, without the gate: a body that began
    # just before its process was stopped reads it only after SIGCONT, and may see the
    # checkpoint the process that took over committed meanwhile. That body began before
    # the commit (an in-flight re-run, check 3); only a body that began after the commit
    # was accepted (its write's t1) broke the promise.
    committed_at: dict[tuple[str, str], float] = {}
    for _, e in events:
        if e["k"] == "write" and e["op"] == "save_step" and e["ok"]:
            key = (e["eid"], e["step"])
            committed_at[key] = min(committed_at.get(key, e["t1"]), e["t1"])
    seen_late = [r for r in ledger if r.checkpoint_seen]
    # The column is named t: a Row's .t is SQLAlchemy's deprecated alias of the row as a
    # tuple, not the column (a warning, an error under pytest), so read it by name.
    after_checkpoint = [
        r
        for r in seen_late
        if r._mapping["t"] > committed_at.get((r.execution_id, r.step), float("inf"))
    ]
    read_after_freeze = len(seen_late) - len(after_checkpoint)
    if after_checkpoint:
        r = after_checkpoint[0]
        violations.append(
            f"{len(after_checkpoint)} step bodies started after their checkpoint was committed, "
            f"e.g. {r.execution_id} {r.step} in pid {r.pid}"
        )
    stale_checkpoint = 0
    missing_run = 0
    for eid in ids:
        for i in range(cfg.steps):
            status, out = checkpoints[eid].get(f"s{i}", (None, None))
            if status != "completed":
                continue
            entries = runs.get((eid, f"s{i}"), [])
            if not any(r.nonce == out["nonce"] for r in entries):
                missing_run += 1
            elif entries[-1].nonce != out["nonce"]:
                stale_checkpoint += 1
    if missing_run:
        violations.append(f"{missing_run} checkpoints without a recorded step body run")
    if stale_checkpoint:
        violations.append(f"{stale_checkpoint} checkpoints are not from the step's latest run")

    # 3. in-flight re-runs
    reruns = 0
    per_process: Counter[int] = Counter()
    unexplained = []
    for key, entries in runs.items():
        for before, _after in itertools.pairwise(entries):
            reruns += 1
            per_process[before.pid] += 1
            if before.pid not in interrupted:
                unexplained.append((key, before.pid))
    if unexplained:
        violations.append(
            f"{len(unexplained)} re-runs whose first run was in a process that was neither "
            f"killed nor stopped, e.g. {unexplained[:3]}"
        )
    over = {pid: n for pid, n in per_process.items() if n > cfg.concurrency}
    if over:
        violations.append(f"processes with more re-runs than concurrency: {over}")
    bound = (len(kills) + len(stopped)) * cfg.concurrency
    if reruns > bound:
        violations.append(f"{reruns} re-runs > (kills + stops) x concurrency = {bound}")

    # 4. no write from a fenced worker landed
    claims: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for _, e in events:
        if e["k"] == "claim":
            claims[e["eid"]].append((e["t1"], e["token"]))
    fenced_landed = []
    accepted = refused = 0
    for pid, e in events:
        if e["k"] != "write":
            continue
        if not e["ok"]:
            refused += 1
            continue
        accepted += 1
        newer = [tok for t1, tok in claims.get(e["eid"], []) if t1 < e["t0"] and tok > e["token"]]
        if newer:
            fenced_landed.append((e["op"], e["eid"], e["token"], max(newer), pid))
    if fenced_landed:
        violations.append(
            f"{len(fenced_landed)} writes accepted from a fenced lease, e.g. {fenced_landed[:3]}"
        )
    decreasing = 0
    for eid in ids:
        tokens = [
            checkpoints[eid][f"s{i}"][1]["token"]
            for i in range(cfg.steps)
            if checkpoints[eid].get(f"s{i}", (None, None))[0] == "completed"
        ]
        if any(b < a for a, b in itertools.pairwise(tokens)):
            decreasing += 1
    if decreasing:
        violations.append(f"{decreasing} executions whose checkpoint tokens go down")
    # 5. no live lease was taken over: a takeover (a claim of token t after a claim of
    # token t - 1 that no release retired; chaos workflows never sleep or retry) commits
    # no earlier than claim_timeout after the last extension of the lease it replaces (a
    # claim, an accepted checkpoint or heartbeat). That extension committed after its t0
    # and the takeover before its t1, so t1 < t0 + claim_timeout proves it premature
    # (50 ms spare for the clocks' measured offsets). A worker comparing times on a clock
    # of its own (ahead) breaks this first.
    extended: dict[tuple[str, int], float] = {}
    released: set[tuple[str, int]] = set()
    claim_at: dict[tuple[str, int], tuple[float, float]] = {}
    for _, e in events:
        if e["k"] == "claim":
            claim_at[(e["eid"], e["token"])] = (e["t0"], e["t1"])
            key = (e["eid"], e["token"])
            extended[key] = max(extended.get(key, e["t0"]), e["t0"])
        elif e["k"] == "write" and e["ok"] and e["op"] in ("save_step", "heartbeat"):
            key = (e["eid"], e["token"])
            extended[key] = max(extended.get(key, e["t0"]), e["t0"])
        elif e["k"] == "write" and e["ok"] and e["op"] == "release":
            released.add((e["eid"], e["token"]))
    premature = []
    for (eid, token), (_t0, t1) in claim_at.items():
        before = (eid, token - 1)
        if before in claim_at and before not in released:
            last = extended[before]
            if t1 < last + cfg.claim_timeout - 0.05:
                premature.append((eid, token, round(t1 - last, 3)))
    if premature:
        violations.append(
            f"{len(premature)} live leases taken over before claim_timeout "
            f"({cfg.claim_timeout:g} s) had passed since their last extension, "
            f"e.g. {premature[:3]}"
        )
    zombie = {"stopped": len(stopped)}
    for s in stopped:
        # The executions it held that another process claimed while it was stopped.
        mine = {
            e["eid"]: e["token"]
            for pid, e in events
            if pid == s["pid"] and e["k"] == "claim" and e["t1"] < s["t_stop"]
        }
        taken_over = {
            e["eid"]
            for pid, e in events
            if pid != s["pid"] and e["k"] == "claim" and e["eid"] in set(s["held"])
            and e["token"] > mine.get(e["eid"], 0) and e["t1"] < s["t_cont"]
        }  # fmt: skip
        after = [
            e
            for pid, e in events
            if pid == s["pid"] and e["k"] == "write" and e["t0"] >= s["t_cont"] - 0.5
            and e["eid"] in taken_over
        ]  # fmt: skip
        ok_after = [e for e in after if e["ok"] and e["op"] != "heartbeat"]
        zombie.update(
            held=len(s["held"]),
            taken_over=len(taken_over),
            all_taken_over=s["all_taken_over"],
            writes_tried_after_sigcont=len(after),
            refused=sum(1 for e in after if not e["ok"]),
            accepted=len(ok_after),
            stopped_s=round(s["t_cont"] - s["t_stop"], 1),
        )
        if ok_after:
            violations.append(
                f"the stopped worker wrote {len(ok_after)} times after SIGCONT for executions "
                "taken over meanwhile"
            )
        if not s["all_taken_over"]:
            violations.append("the stopped worker's executions were not all taken over")

    takeovers = sum(max(0, r.attempt - 1) for r in execs.values())
    checks = {
        "1 completed exactly once": f"{len(ids) - len(not_done)}/{len(ids)} completed, "
        f"{len(twice)} completed twice, {bad_output} outputs differing from checkpoints, "
        f"{len(extra_attempts)} extra attempts not explained by a kill or stop",
        "2 no committed step ran again": f"{len(after_checkpoint)} bodies after a committed "
        f"checkpoint ({read_after_freeze} began before it but read it after a freeze), "
        f"{stale_checkpoint} stale checkpoints, {missing_run} unrecorded",
        "3 in-flight re-runs": f"{reruns} re-runs (bound (kills {len(kills)} + stops "
        f"{len(stopped)}) x concurrency {cfg.concurrency} = {bound}); "
        f"{len(unexplained)} not explained by a kill or stop",
        "4 no fenced write landed": f"{accepted} writes accepted, {refused} refused; "
        f"{len(fenced_landed)} accepted with a superseded token; stopped worker: {zombie}",
        "5 no live lease taken over": f"{len(premature)} takeovers before claim_timeout",
    }
    stats = {
        "faults": "; ".join(
            f"clock {f['clock_skew_s']:+g} s in pid {f['pid']}"
            if "clock_skew_s" in f
            else f"pid {f['cut_off']} cut off {f['t1'] - f['t0']:.1f} s ({f['how']})"
            for f in faults or []
        )
        or "no clock skew, no cut",
        "fault_log": faults or [],
        "ledger_rows": len(ledger),
        "step_runs_expected": len(ids) * cfg.steps,
        "reruns": reruns,
        "takeovers": takeovers,
        "kills": kills,
        "stops": stops,
        "restarts": restarts,
        "workers_started": len(procs),
        "stopped_worker": zombie,
        "writes_accepted": accepted,
        "writes_refused": refused,
    }
    return Report(
        backend=cfg.backend,
        workflows=len(ids),
        steps=cfg.steps,
        workers=cfg.workers,
        concurrency=cfg.concurrency,
        seconds=seconds,
        kills=len(kills),
        stops=len(stopped),
        restarts=len(restarts),
        checks=checks,
        violations=violations,
        stats=stats,
    )


def fresh_postgres(base: str, db: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(f"{base}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return f"{base}/{db}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--child-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url")
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--ledger", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="both", choices=["both", "postgres", "sqlite"])
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL (no database)")
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--claim-timeout", type=float, default=5.0)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--step-sleep", type=float, default=0.01)
    parser.add_argument("--clock-skew", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--store-url", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--skew", type=float, default=30.0, help="worker 0's clock offset, s (PostgreSQL)"
    )
    parser.add_argument("--cut-off", type=float, default=2.0, help="worker 1 cut off for, s")
    parser.add_argument(
        "--local-clock",
        action="store_true",
        help="negative control: the skewed worker compares times on its own clock",
    )
    parser.add_argument("--no-restart", action="store_true", help="do not restart PostgreSQL")
    parser.add_argument("--no-stop", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", help="write the reports here")
    args = parser.parse_args()
    if args.child_worker:
        return worker_main(args)

    reports = []
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    for backend in backends:
        work = Path(tempfile.mkdtemp(prefix=f"hydra-chaos-{backend}-"))
        if backend == "postgres":
            url = fresh_postgres(args.pg.rstrip("/"), "hydra_chaos")
        else:
            url = f"sqlite:///{work}/chaos.db"
        cfg = Config(
            url=url,
            backend=backend,
            workflows=args.workflows,
            steps=args.steps,
            workers=args.workers,
            concurrency=args.concurrency,
            kill_every=args.kill_every,
            stop=not args.no_stop,
            restart_pg=backend == "postgres" and not args.no_restart,
            claim_timeout=args.claim_timeout,
            heartbeat=args.heartbeat,
            poll_interval=args.poll_interval,
            step_sleep=args.step_sleep,
            clock_skew=args.skew,
            cut_off=args.cut_off,
            local_clock=args.local_clock,
            work_dir=work,
            seed=args.seed,
        )
        report = run_chaos(cfg)
        print("\n".join(report.lines()), flush=True)
        reports.append(report)
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.__dict__ for r in reports], indent=2, default=str) + "\n"
        )
    return 0 if all(not r.violations for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
