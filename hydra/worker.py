"""``hydra.Worker``: claims executions and runs them in threads.

Threads: one poller (claims while slots are free, then waits for a wake-up or the poll
interval with jitter; a run that ends wakes it only while work is waiting, and a busy
poller gathers a few free slots, up to 2 ms, into one claim), one heartbeat (extends
the leases of runs in flight), a watchdog (fails executions past their timeout while
their code runs and hands back the slots of runs stuck in workflow code), a listener on
PostgreSQL (LISTEN/NOTIFY), ``concurrency`` daemon run threads (``RunThreads``), and a
cron scheduler (fires the engine's due cron slots; each job's handlers run on a thread of
that job's own, so a long handler delays neither the scheduler nor other jobs). Runs are
known by their lease (execution id and token). The poller also gives back leases held
under this worker's id by no run of it (``_maybe_sweep``). Every run goes through
``hydra.runner.execute``, the same loop ``hydra.testing`` drives.
"""

from __future__ import annotations

import functools
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
from hydra.engine import Engine
from hydra.errors import LeaseLostError
from hydra.events import RunEnd
from hydra.retention import Retention, RetentionRunner
from hydra.runner import Outcome, Run, execute, monotonic_ms
from hydra.scheduler import CronScheduler
from hydra.slots import RunKey, RunThreads, Slot, run_key
from hydra.status import Status
from hydra.store.base import Claim, WakeListener
from hydra.store.queues import DEFAULT_QUEUE
from hydra.workflow import Workflow, validate_name

# Most claims a poll takes at once; more free slots are filled by polling again at once.
MAX_CLAIM_BATCH = 32
# A busy worker (its last claim filled every free slot) lets up to this long pass after a
# slot frees, for a quarter of its slots to free, before claiming again: one claim
# transaction for several runs instead of one per run (claims were a third of a busy
# worker's CPU, docs/benchmarks.md). An idle worker claims at once.
CLAIM_GATHER_S = 0.002
# How often the watchdog looks for runs past their execution's timeout (and lost runs
# that never came back); a timeout fires at most this late while its code runs.
WATCHDOG_INTERVAL_S = 0.25


class Worker:
    """Runs the workflows registered on it, sharing the load with every other worker.

    ``claim_timeout`` is the lease length: a worker that stops heartbeating (crash, hang,
    partition) loses its executions that long after its last heartbeat and another worker
    takes them over, using up one attempt. ``heartbeat_interval`` must be shorter.
    ``retention`` (``hydra.Retention``) makes it purge finished executions periodically;
    one worker of the namespace per period does (``hydra.retention``).
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
        retention: Retention | None = None,
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
        #: purges finished executions periodically (one worker per period), or None
        self.retention = retention
        self.log = engine.logger.bind(worker_id=self.worker_id)
        self._workflows: dict[str, Workflow[Any]] = {}
        # Runs holding a slot, by lease. A run abandoned by the watchdog leaves it.
        self._runs: dict[RunKey, Slot] = {}
        # Leases whose run crashed in hydra itself: left to expire (a takeover uses an
        # attempt, so a run that keeps crashing ends failed), never swept.
        self._crashed: set[RunKey] = set()
        # The poll thread sweeps leases held under this worker's id by no run of it (a
        # claim whose reply was lost, a restart with the same id, a run the database
        # failed under) when this is set, and every heartbeat interval.
        self._sweep_due = True
        self._last_sweep = 0.0
        self._reconnects_seen = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # The last claim filled every slot it asked for: more work is probably waiting.
        self._busy = False
        self._stop_claiming = threading.Event()
        self._stopped = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._pool: RunThreads | None = None
        self._listener: WakeListener | None = None
        self._started = False
        self._cron = CronScheduler(
            engine,
            self.worker_id,
            submit=self._submit_cron,
            registered=lambda: self.workflow_names,
        )
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
    def workflows(self) -> list[Workflow[Any]]:
        """The registered workflows, by name (``replay_check(worker.workflows, ...)``)."""
        with self._lock:
            return [self._workflows[n] for n in sorted(self._workflows)]

    @property
    def in_flight(self) -> int:
        """Runs holding a slot now (an abandoned, stuck run does not)."""
        with self._lock:
            return len(self._runs)

    @property
    def abandoned_runs(self) -> int:
        """Run threads given up on (stuck in workflow code) that have not returned yet."""
        return self._pool.abandoned if self._pool is not None else 0

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
            try:
                self._serve_metrics(self.metrics_port)
            except BaseException:
                self._started = False  # nothing else was started: start() may be retried
                raise
        if self.engine.metrics is not None:
            self.engine.metrics.worker_started(
                self.engine.namespace, self.worker_id, self.concurrency
            )
        self._pool = RunThreads(self.concurrency, f"hydra-run-{self.worker_id}")
        self.engine.runtime.registry.add_wake_callback(self._wake.set)
        if self.engine.store.supports_notify:
            self._listener = self.engine.store.open_listener(self.engine.namespace)
        self._spawn(self._poll_loop, "poll")
        self._spawn(self._heartbeat_loop, "heartbeat")
        self._spawn(self._watchdog_loop, "watchdog")
        if self._listener is not None:
            self._spawn(self._listen_loop, "listen")
        self._cron_thread = self._spawn(self._cron_loop, "cron")
        if self.retention is not None:
            runner = RetentionRunner(self.engine, self.retention, self.worker_id)
            self._spawn(lambda: runner.run_until(self._stopped), "retention")
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
        with self._lock:
            # Under the lock that registers a claimed run: a claim whose reply lands after
            # this is given back by the poller (``_claim_once``), never run, and one that
            # landed before is in ``_runs``, which is waited for below.
            self._stop_claiming.set()
        self._wake.set()
        self.engine.runtime.registry.remove_wake_callback(self._wake.set)
        limit = None if timeout is None else duration_ms(timeout, "timeout") / 1000
        deadline = None if limit is None else time.monotonic() + limit
        with self._idle:
            self._idle.wait_for(lambda: not self._runs, timeout=limit)
            leftovers = list(self._runs.values())
            # They no longer hold a slot: the worker is going, whatever their threads do.
            self._runs.clear()
        self._stop_cron(None if deadline is None else max(deadline - time.monotonic(), 0))
        for slot in leftovers:
            claim = slot.claim
            if slot.run is not None:
                slot.run.mark_lost()
            self._report_end(slot, RunEnd(Outcome.RELEASED))
            try:
                released = self.engine.store.release(claim.lease, now_ms=self.engine.clock.now_ms())
            except Exception as exc:
                self.log.warning(
                    "could not release execution %s (%s: %s): another worker takes it over "
                    "when its lease expires",
                    claim.execution.id,
                    type(exc).__name__,
                    exc,
                )
                continue
            if released:
                self.log.bind(execution_id=claim.execution.id).info(
                    "released execution %s unfinished", claim.execution.id
                )
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown()  # daemon threads: a stuck one never blocks the exit
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
                self._maybe_sweep()
                claimed, asked = self._claim_once()
                failures = 0
            except Exception as exc:
                failures += 1
                claimed = asked = 0
                # A claim that failed may still have committed (its reply was lost).
                self._sweep_due = True
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

    def _maybe_sweep(self) -> None:
        """Give back leases held under this worker's id by no run of it.

        Such leases come from a claim that committed but whose reply was lost (the store
        retried it, or it raised), from an earlier process with the same ``worker_id``
        (a restart), and from runs the database failed under that could not give their
        execution back. Each is released (``pending``, claimable at once, no attempt
        used) instead of waiting ``claim_timeout`` for a takeover that would use one.
        Runs on the poll thread only, between claims: a lease this thread has just
        claimed is always registered in ``_runs`` before the next sweep.
        """
        store = self.engine.store
        reconnects = store.reconnects
        now = time.monotonic()
        due = (
            self._sweep_due
            or reconnects != self._reconnects_seen
            or now - self._last_sweep >= self.heartbeat_ms / 1000
        )
        if not due:
            return
        self._sweep_due = False
        self._reconnects_seen = reconnects
        self._last_sweep = now
        owned = store.owned_leases(self.engine.namespace, self.worker_id)
        with self._lock:
            # A crashed run's lease is kept out of the sweep only while it is still held.
            self._crashed &= {run_key(lease) for lease in owned}
            mine = set(self._runs) | self._crashed
        if not owned:
            return
        for lease in owned:
            if run_key(lease) in mine:
                continue
            if store.release(lease, now_ms=self.engine.clock.now_ms()):
                self.log.bind(execution_id=lease.execution_id).info(
                    "gave back execution %s: it was leased to this worker id but no run of "
                    "it is in flight here (a lost claim reply, a restart, or a database "
                    "failure); no attempt used",
                    lease.execution_id,
                )
                if self.engine.metrics is not None:
                    self.engine.metrics.lease_recovered(self.engine.namespace, self.worker_id)

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
            # Runs in flight per queue: a queue's worker_concurrency counts them.
            held: dict[str, int] = {}
            for running in self._runs.values():
                queue = running.claim.execution.queue
                held[queue] = held.get(queue, 0) + 1
        if free <= 0 or not names:
            return 0, 0
        metrics = self.engine.metrics
        if metrics is not None:
            metrics.worker_polled(self.engine.namespace, self.worker_id)
        # Read before the claim is sent: the lease runs from (at the latest) this instant.
        sent = monotonic_ms()
        claims = self.engine.store.claim(
            self.engine.namespace,
            names,
            self.worker_id,
            now_ms=self.engine.clock.now_ms(),
            lease_ms=self.lease_ms,
            limit=min(free, MAX_CLAIM_BATCH),
            held=held,
        )
        assert self._pool is not None
        late: list[Claim] = []
        for claim in claims:
            slot = Slot(claim, sent)
            with self._lock:
                if self._stop_claiming.is_set():
                    late.append(claim)  # shutdown began while the claim was in flight
                    continue
                self._runs[run_key(claim.lease)] = slot
            if metrics is not None:
                metrics.run_began(self.engine.namespace, self.worker_id)
            self._pool.submit(functools.partial(self._run_one, slot))
        self._give_back(late)
        return len(claims) - len(late), min(free, MAX_CLAIM_BATCH)

    def _give_back(self, claims: list[Claim]) -> None:
        """Release executions claimed as shutdown began: pending again, no attempt used
        (a failure leaves them to a takeover once the lease expires)."""
        for claim in claims:
            try:
                self.engine.store.release(claim.lease, now_ms=self.engine.clock.now_ms())
            except Exception as exc:
                self.log.warning(
                    "could not give back execution %s claimed during shutdown (%s: %s): "
                    "another worker takes it over when its lease expires",
                    claim.execution.id,
                    type(exc).__name__,
                    exc,
                )
                continue
            self.log.bind(execution_id=claim.execution.id).info(
                "gave back execution %s: claimed as the worker was shutting down",
                claim.execution.id,
            )

    def _run_one(self, slot: Slot) -> None:
        claim = slot.claim
        eid = claim.execution.id
        key = run_key(claim.lease)
        with self._lock:
            if self._runs.get(key) is not slot:
                return  # released at shutdown before it started
            slot.thread = threading.current_thread()
            workflow = self._workflows.get(claim.execution.workflow_name)

        outcome: Outcome | None = None
        try:
            outcome = execute(
                self.engine.runtime,
                workflow,
                claim,
                lease_ms=self.lease_ms,
                on_run=slot.attach,
                claimed_at=slot.claimed_at,
            )
            if outcome == Outcome.LOST:
                self.log.bind(execution_id=eid).info("run of %s ended without its lease", eid)
        except BaseException as exc:  # a bug in hydra or a dead database: keep the worker
            with self._lock:
                self._crashed.add(key)
            self.log.bind(execution_id=eid).error(
                "run of %s crashed: %s: %s", eid, type(exc).__name__, exc, exc_info=exc
            )
        finally:
            with self._idle:
                held = self._runs.get(key) is slot
                if held:
                    del self._runs[key]
                self._idle.notify_all()
            if outcome == Outcome.INTERRUPTED:
                self._sweep_due = True  # its release may not have reached the database
            if held and self.engine.metrics is not None:
                self.engine.metrics.run_ended(self.engine.namespace, self.worker_id)
            if self._busy or slot.claim.execution.queue != DEFAULT_QUEUE:
                # A slot for the work that is waiting; or a queue slot (or this worker's
                # share of a queue) freed: what the queue's limits held back may go now.
                self._wake.set()

    def _heartbeat_loop(self) -> None:
        while not self._stopped.wait(self.heartbeat_ms / 1000):
            with self._lock:
                slots = [s for s in self._runs.values() if s.run is None or not s.run.lost]
            # One lease per execution: an older run of an execution claimed again (after a
            # cancel and a retry) has lost its lease by definition, and a heartbeat names
            # lost executions by id only.
            newest: dict[str, Slot] = {}
            for slot in slots:
                eid = slot.claim.execution.id
                other = newest.get(eid)
                if other is None or other.claim.lease.token < slot.claim.lease.token:
                    if other is not None and other.run is not None:
                        other.run.mark_lost()
                    newest[eid] = slot
                elif slot.run is not None:
                    slot.run.mark_lost()
            if not newest:
                continue
            sent = monotonic_ms()
            try:
                lost = set(
                    self.engine.store.heartbeat(
                        [slot.claim.lease for slot in newest.values()],
                        now_ms=self.engine.clock.now_ms(),
                        lease_ms=self.lease_ms,
                    )
                )
            except Exception as exc:
                self.log.warning("heartbeat failed (%s: %s)", type(exc).__name__, exc)
                continue
            if self.engine.metrics is not None:
                self.engine.metrics.worker_heartbeat(self.engine.namespace, self.worker_id)
            for eid, slot in newest.items():
                run = slot.run
                if run is None:
                    continue
                if eid not in lost:
                    run.lease_renewed(sent)
                    continue
                with self._lock:
                    in_flight = self._runs.get(run_key(slot.claim.lease)) is slot
                if run.ending or not in_flight or run.lost:
                    # The run's own final write (finish, suspend, retry) moved the
                    # execution out of ``running``: that is not a lost lease.
                    continue
                self.log.bind(
                    execution_id=eid,
                    workflow_name=slot.claim.execution.workflow_name,
                    attempt=slot.claim.execution.attempt,
                ).warning(
                    "lost the lease on %s: it was taken over or cancelled; the run stops "
                    "at its next step",
                    eid,
                )
                run.mark_lost()

    def _watchdog_loop(self) -> None:
        """Fails executions whose timeout passed while their code runs, and hands back
        the slots of runs stuck in workflow code (their threads are abandoned)."""
        while not self._stopped.wait(WATCHDOG_INTERVAL_S):
            try:
                self._watch_runs()
            except Exception as exc:
                self.log.warning("watchdog failed (%s: %s)", type(exc).__name__, exc)

    def _watch_runs(self) -> None:
        now = self.engine.clock.now_ms()
        mono = monotonic_ms()
        with self._lock:
            slots = [s for s in self._runs.values() if s.run is not None]
        for slot in slots:
            run = slot.run
            assert run is not None
            timeout_at = slot.claim.execution.timeout_at
            if timeout_at is not None and now >= timeout_at and not run.ending:
                self._fail_timed_out(slot, run, now)
            elif run.lost:
                if slot.lost_seen is None:
                    slot.lost_seen = mono
                elif mono - slot.lost_seen >= self.lease_ms:
                    self._abandon(slot, "its lease was lost and its code did not reach a step")

    def _fail_timed_out(self, slot: Slot, run: Run, now: int) -> None:
        """The execution passed its timeout while its code was running (a step that is
        still going, or a loop without any step): fail it now, fenced by its lease."""
        ex = slot.claim.execution
        message = (
            f"execution exceeded its timeout of {ex.timeout_ms} ms "
            f"while its code was running (in step {run.current_step!r})"
            if run.current_step
            else f"execution exceeded its timeout of {ex.timeout_ms} ms while its code "
            "was running (outside any step)"
        )
        try:
            self.engine.store.finish(
                slot.claim.lease,
                status=Status.FAILED,
                now_ms=now,
                error_type="WorkflowTimeoutError",
                error_message=message,
                parent_id=ex.parent_id,
            )
        except LeaseLostError:
            return  # the run (or a cancel, or a takeover) ended it first
        run.mark_lost()
        self.log.bind(execution_id=ex.id, workflow_name=ex.workflow_name).warning(
            "execution %s failed: it passed its timeout of %s ms while its code was running",
            ex.id,
            ex.timeout_ms,
        )
        self.engine.runtime.finished(slot.claim, Status.FAILED)
        ended = RunEnd(Outcome.FAILED, "WorkflowTimeoutError", message)
        self._abandon(slot, "its execution passed its timeout", ended)

    def _abandon(self, slot: Slot, why: str, end: RunEnd | None = None) -> None:
        """Hand the slot back; the run's thread, still in workflow code, is given up on
        (observers get its ``end``: lost unless said otherwise)."""
        key = run_key(slot.claim.lease)
        with self._lock:
            if self._runs.get(key) is not slot:
                return
        # Reported (log, metric, a replacement thread) before the slot is handed back, so
        # whatever runs in that slot next comes after the report.
        if slot.thread is not None and self._pool is not None:
            self._pool.abandon(slot.thread)
        eid = slot.claim.execution.id
        self.log.bind(execution_id=eid).error(
            "abandoned the run of %s (%s): its thread is still in workflow code; its slot "
            "is handed back and nothing it writes will land",
            eid,
            why,
        )
        self._report_end(slot, end or RunEnd(Outcome.LOST, "LeaseLostError", why))
        metrics = self.engine.metrics
        if metrics is not None:
            metrics.run_abandoned(self.engine.namespace, self.worker_id)
        with self._idle:
            if self._runs.get(key) is not slot:
                return  # the run returned meanwhile and gave its slot back itself
            del self._runs[key]
            self._idle.notify_all()
        if metrics is not None:
            metrics.run_ended(self.engine.namespace, self.worker_id)
        self._wake.set()

    def _report_end(self, slot: Slot, end: RunEnd) -> None:
        """The worker gave up on the run of ``slot`` while its code still ran: observers
        get its end now (``run_ended``), unless the run reported it itself first."""
        run = slot.run
        if run is not None and run.report_end():
            self.engine.runtime.observers.run_ended(slot.claim, end)

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
            self.engine.use_metrics(Metrics())
        assert self.engine.metrics is not None
        try:
            server, _thread = start_http_server(port, registry=self.engine.metrics.registry)
        except OSError as exc:
            # "[Errno 98] Address already in use" alone does not say which address.
            raise OSError(
                exc.errno, f"cannot serve metrics on port {port}: {exc.strerror or exc}"
            ) from exc
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


__all__ = ["Worker", "register_workflow"]
