"""``hydra.Worker``: claims executions and runs them in threads.

Threads: one poller (claims while slots are free, then waits for a wake-up or the poll
interval with jitter; a run that ends wakes it only while work is waiting, and a busy
poller gathers a few free slots, up to 2 ms, into one claim), one heartbeat (extends
the leases of runs in flight), a listener on PostgreSQL (LISTEN/NOTIFY), ``concurrency``
run threads, and a cron scheduler (fires the engine's due cron slots; each job's handlers
run on a thread of that job's own, so a long handler delays neither the scheduler nor
other jobs). Every run goes through ``hydra.runner.execute``, the same loop
``hydra.testing`` drives.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import timedelta
from types import FrameType
from typing import Any

from hydra.clock import duration_ms
from hydra.cron import CronScheduler
from hydra.engine import Engine
from hydra.logs import HydraLogger
from hydra.runner import Outcome, Run, execute
from hydra.store.base import Claim, WakeListener
from hydra.workflow import Workflow, validate_name

# Most claims a poll takes at once; more free slots are filled by polling again at once.
MAX_CLAIM_BATCH = 32
# A busy worker (its last claim filled every free slot) lets up to this long pass after a
# slot frees, for a quarter of its slots to free, before claiming again: one claim
# transaction for several runs instead of one per run (claims were a third of a busy
# worker's CPU, docs/benchmarks.md). An idle worker claims at once.
CLAIM_GATHER_S = 0.002


class Worker:
    """Runs the workflows registered on it, sharing the load with every other worker.

    ``claim_timeout`` is the lease length: a worker that stops heartbeating (crash, hang,
    partition) loses its executions that long after its last heartbeat and another worker
    takes them over, using up one attempt. ``heartbeat_interval`` must be shorter.
    """

    def __init__(
        self,
        engine: Engine,
        worker_id: str | None = None,
        concurrency: int = 10,
        poll_interval: timedelta | float = timedelta(milliseconds=100),
        heartbeat_interval: timedelta | float = timedelta(seconds=10),
        claim_timeout: timedelta | float = timedelta(seconds=60),
        metrics_port: int | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self.engine = engine
        self.worker_id = validate_name(
            worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}", "worker_id"
        )
        self.concurrency = concurrency
        self.poll_ms = max(duration_ms(poll_interval, "poll_interval"), 1)
        self.heartbeat_ms = max(duration_ms(heartbeat_interval, "heartbeat_interval"), 1)
        self.lease_ms = duration_ms(claim_timeout, "claim_timeout")
        if self.heartbeat_ms >= self.lease_ms:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_ms} ms) must be shorter than "
                f"claim_timeout ({self.lease_ms} ms), or leases expire between heartbeats"
            )
        if metrics_port is not None and not (0 <= metrics_port <= 65535):
            raise ValueError(f"metrics_port must be a TCP port, got {metrics_port!r}")
        self.metrics_port = metrics_port
        self.log = engine.logger.bind(worker_id=self.worker_id)
        self._workflows: dict[str, Workflow[Any]] = {}
        self._runs: dict[str, tuple[Claim, Run | None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # The last claim filled every slot it asked for: more work is probably waiting.
        self._busy = False
        self._stop_claiming = threading.Event()
        self._stopped = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._listener: WakeListener | None = None
        self._started = False
        self._cron = CronScheduler(engine, self.worker_id, submit=self._submit_cron)
        self._cron_pools: dict[str, ThreadPoolExecutor] = {}
        self._cron_calls: set[Future[None]] = set()
        self._metrics_server: Any = None
        self._cron_thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} concurrency={self.concurrency}>"

    # -- registration ---------------------------------------------------------------------
    def register(self, workflow: Workflow[Any]) -> Workflow[Any]:
        """Run executions of ``workflow`` here. Returns it, so it can decorate."""
        if not isinstance(workflow, Workflow):
            raise TypeError(
                f"register() takes a hydra.Workflow instance (or an @hydra.workflow function), "
                f"got {workflow!r}"
            )
        name = validate_name(workflow.name, f"{type(workflow).__name__}.name")
        with self._lock:
            existing = self._workflows.get(name)
            if existing is not None and existing is not workflow:
                raise ValueError(f"a different workflow is already registered as {name!r}")
            self._workflows[name] = workflow
        self._wake.set()
        return workflow

    @property
    def workflow_names(self) -> list[str]:
        with self._lock:
            return sorted(self._workflows)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._runs)

    def next_cron_due_ms(self) -> int | None:
        """When this worker's cron scheduler next has a slot to fire (None: no cron jobs)."""
        return self._cron.next_due_ms()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background threads and return at once."""
        if self._started:
            raise RuntimeError(f"worker {self.worker_id} was already started")
        self._started = True
        if self.metrics_port is not None:
            self._serve_metrics(self.metrics_port)
        if self.engine.metrics is not None:
            self.engine.metrics.worker_started(
                self.engine.namespace, self.worker_id, self.concurrency
            )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hydra-run")
        self.engine._add_wake_callback(self._wake.set)
        if self.engine.store.supports_notify:
            self._listener = self.engine.store.open_listener(self.engine.namespace)
        self._spawn(self._poll_loop, "poll")
        self._spawn(self._heartbeat_loop, "heartbeat")
        if self._listener is not None:
            self._spawn(self._listen_loop, "listen")
        self._cron_thread = self._spawn(self._cron_loop, "cron")
        self.log.info(
            "worker %s started: %s, concurrency %d",
            self.worker_id,
            ", ".join(self.workflow_names) or "no workflows registered",
            self.concurrency,
        )

    def shutdown(self, timeout: timedelta | float | None = None) -> None:
        """Stop claiming, let runs in flight finish (heartbeating meanwhile), then stop.

        Runs still going after ``timeout`` are told to stop at their next step and their
        executions are released for other workers at once (no attempt is used).
        """
        if not self._started or self._stopped.is_set():
            return
        self._stop_claiming.set()
        self._wake.set()
        self.engine._remove_wake_callback(self._wake.set)
        limit = None if timeout is None else duration_ms(timeout, "timeout") / 1000
        deadline = None if limit is None else time.monotonic() + limit
        with self._idle:
            self._idle.wait_for(lambda: not self._runs, timeout=limit)
            leftovers = list(self._runs.values())
        self._stop_cron(None if deadline is None else max(deadline - time.monotonic(), 0))
        for claim, run in leftovers:
            if run is not None:
                run.mark_lost()
            if self.engine.store.release(claim.lease, now_ms=self.engine.clock.now_ms()):
                self.log.bind(execution_id=claim.execution.id).info(
                    "released execution %s unfinished", claim.execution.id
                )
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.engine.metrics is not None:
            self.engine.metrics.worker_stopped(self.engine.namespace, self.worker_id)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self.log.info("worker %s stopped", self.worker_id)

    def run(self) -> None:
        """Start and block until SIGTERM or SIGINT, then shut down gracefully."""
        done = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.log.info("received %s: shutting down", signal.Signals(signum).name)
            done.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            while not done.wait(0.5):
                pass
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- threads --------------------------------------------------------------------------
    def _spawn(self, target: Any, role: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=f"hydra-{role}-{self.worker_id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _poll_loop(self) -> None:
        failures = 0
        while not self._stop_claiming.is_set():
            try:
                claimed, asked = self._claim_once()
                failures = 0
            except Exception as exc:
                failures += 1
                claimed = asked = 0
                self.log.warning("claiming failed (%s: %s); retrying", type(exc).__name__, exc)
                self._stop_claiming.wait(min(0.1 * 2**failures, 5.0))
                continue
            if asked:  # (no free slot: nothing was asked, the worker is still as busy)
                # Busy: every slot asked for was filled, so more work is probably waiting
                # and a run that ends should claim again; otherwise the queue was empty
                # and only new work (a wake-up) or the poll interval calls for a claim.
                self._busy = claimed == asked
            if claimed == MAX_CLAIM_BATCH:
                continue  # maybe more is waiting
            # Jitter spreads the polls of many idle workers over the interval.
            wait = self.poll_ms / 1000 * random.uniform(0.8, 1.2)
            self._wake.wait(wait)
            self._wake.clear()
            if self._busy:
                self._await_free_slots(max(1, self.concurrency // 4), CLAIM_GATHER_S)

    def _await_free_slots(self, want: int, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until ``want`` slots are free."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self.concurrency - len(self._runs) < want:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop_claiming.is_set():
                    return
                self._idle.wait(remaining)

    def _claim_once(self) -> tuple[int, int]:
        """Claim for the free slots: (how many were claimed, how many were asked for)."""
        with self._lock:
            free = self.concurrency - len(self._runs)
            names = list(self._workflows)
        if free <= 0 or not names:
            return 0, 0
        metrics = self.engine.metrics
        if metrics is not None:
            metrics.worker_polled(self.engine.namespace, self.worker_id)
        claims = self.engine.store.claim(
            self.engine.namespace,
            names,
            self.worker_id,
            now_ms=self.engine.clock.now_ms(),
            lease_ms=self.lease_ms,
            limit=min(free, MAX_CLAIM_BATCH),
        )
        assert self._pool is not None
        for claim in claims:
            with self._lock:
                self._runs[claim.execution.id] = (claim, None)
            if metrics is not None:
                metrics.run_began(self.engine.namespace, self.worker_id)
            self._pool.submit(self._run_one, claim)
        return len(claims), min(free, MAX_CLAIM_BATCH)

    def _run_one(self, claim: Claim) -> None:
        eid = claim.execution.id
        with self._lock:
            workflow = self._workflows.get(claim.execution.workflow_name)
        run_ref: list[Run] = []

        def on_run(run: Run) -> None:
            run_ref.append(run)
            with self._lock:
                self._runs[eid] = (claim, run)
            self.engine._track_run(run)

        try:
            outcome = execute(self.engine, workflow, claim, lease_ms=self.lease_ms, on_run=on_run)
            if outcome == Outcome.LOST:
                self.log.bind(execution_id=eid).info("run of %s ended without its lease", eid)
        except BaseException as exc:  # a bug in hydra or a dead database: keep the worker
            self.log.bind(execution_id=eid).error(
                "run of %s crashed: %s: %s", eid, type(exc).__name__, exc, exc_info=exc
            )
        finally:
            if run_ref:
                self.engine._untrack_run(run_ref[0])
            with self._idle:
                self._runs.pop(eid, None)
                self._idle.notify_all()
            if self.engine.metrics is not None:
                self.engine.metrics.run_ended(self.engine.namespace, self.worker_id)
            self.engine._notify_finished()
            if self._busy:
                self._wake.set()  # a slot for the work that is waiting

    def _heartbeat_loop(self) -> None:
        while not self._stopped.wait(self.heartbeat_ms / 1000):
            with self._lock:
                # A run that already lost its lease stops at its next step: stop beating.
                entries = [(c, r) for c, r in self._runs.values() if r is None or not r.lost]
            if not entries:
                continue
            try:
                lost = set(
                    self.engine.store.heartbeat(
                        [claim.lease for claim, _ in entries],
                        now_ms=self.engine.clock.now_ms(),
                        lease_ms=self.lease_ms,
                    )
                )
            except Exception as exc:
                self.log.warning("heartbeat failed (%s: %s)", type(exc).__name__, exc)
                continue
            if self.engine.metrics is not None:
                self.engine.metrics.worker_heartbeat(self.engine.namespace, self.worker_id)
            for claim, run in entries:
                if claim.execution.id in lost and run is not None:
                    self.log.bind(
                        execution_id=claim.execution.id,
                        workflow_name=claim.execution.workflow_name,
                        attempt=claim.execution.attempt,
                    ).warning(
                        "lost the lease on %s: it was taken over or cancelled; the run stops "
                        "at its next step",
                        claim.execution.id,
                    )
                    run.mark_lost()

    def _cron_loop(self) -> None:
        # The scheduler reads the store only when a slot may be due, so ticking at the
        # poll interval (at most every second) costs nothing between slots; it also works
        # on a clock that tests move by hand.
        interval = min(self.poll_ms, 1000) / 1000
        failures = 0
        while not self._stop_claiming.is_set():
            try:
                self._cron.tick()
                failures = 0
            except Exception as exc:
                failures += 1
                self.log.warning("cron scheduling failed (%s: %s)", type(exc).__name__, exc)
            self._stop_claiming.wait(interval if not failures else min(0.1 * 2**failures, 5.0))

    def _submit_cron(self, job_name: str, call: Callable[[], None]) -> None:
        """Run a cron handler on its job's own thread: a job's handlers run one after
        another, and a long one delays neither the scheduler nor other jobs."""
        with self._lock:
            pool = self._cron_pools.get(job_name)
            if pool is None:
                pool = self._cron_pools[job_name] = ThreadPoolExecutor(
                    1, thread_name_prefix=f"hydra-cron-{self.worker_id}"
                )
            future = pool.submit(call)
            self._cron_calls.add(future)
        future.add_done_callback(self._cron_call_done)

    def _cron_call_done(self, future: Future[None]) -> None:
        with self._lock:
            self._cron_calls.discard(future)

    def _stop_cron(self, timeout: float | None) -> None:
        """Let running cron handlers finish (up to ``timeout``), drop queued ones."""
        if self._cron_thread is not None:
            self._cron_thread.join(timeout=5)  # it stops at its next tick: no new calls
        with self._lock:
            calls = list(self._cron_calls)
            pools = list(self._cron_pools.values())
        if calls:
            _, unfinished = wait_futures(calls, timeout=timeout)
            if unfinished:
                self.log.warning(
                    "%d cron handler call(s) still running or queued at shutdown: their "
                    "slots are not run again",
                    len(unfinished),
                )
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def _serve_metrics(self, port: int) -> None:
        """Serve the engine's metrics at ``/metrics`` (``port`` 0: any free port)."""
        from prometheus_client import start_http_server

        from hydra.metrics import Metrics

        if self.engine.metrics is None:
            self.engine._use_metrics(Metrics())
        assert self.engine.metrics is not None
        server, _thread = start_http_server(port, registry=self.engine.metrics.registry)
        self._metrics_server = server
        self.metrics_port = int(server.server_port)
        self.log.info("serving metrics on port %d", self.metrics_port)

    def _listen_loop(self) -> None:
        assert self._listener is not None
        while not self._stop_claiming.is_set():
            if self._listener.wait(1.0):
                self._wake.set()
            elif self._stop_claiming.wait(0):
                break


def register_workflow(worker: Worker, workflow: Workflow[Any]) -> Workflow[Any]:
    """``worker.register(workflow)``, as the Go original spells it."""
    return worker.register(workflow)


__all__ = ["HydraLogger", "Worker", "register_workflow"]
