"""``TestEnvironment``: the engine, a store, a fake clock and simulated workers, run
deterministically in the calling thread.

Simulated workers claim and run executions through ``hydra.runner.execute``, the same
function the threaded ``Worker`` calls, so a test exercises the production code path:
the same claims, checkpoints, fencing and retries, against ``MemoryStore`` by default or
any ``SQLStore``. Time is a ``FakeClock``: sleeps of days, backoffs and lease expiries are
skipped by jumping the clock to the next due time when nothing is runnable.

Crash injection kills the simulated worker that reaches a point in a step: its lease
stays held and it writes nothing more; a replacement worker (a restarted process) takes
the execution over once the lease expires.

Cron jobs registered on ``env.engine`` run too: every simulated worker has its own
``CronScheduler`` (the one ``hydra.Worker`` runs), they take turns firing due slots, and
handlers run in the test's thread. ``advance`` stops the clock at every cron slot on the
way, so each slot fires at its exact time.
"""

from __future__ import annotations

import difflib
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from hydra.clock import duration_ms, from_ms
from hydra.engine import Engine
from hydra.events import Observer, Outcome, RunInfo
from hydra.marshal import Marshaller
from hydra.queues import held_back_until
from hydra.records import Execution
from hydra.runner import execute
from hydra.scheduler import CronScheduler
from hydra.status import Status
from hydra.store.base import Claim, Store
from hydra.testing.clock import FakeClock
from hydra.testing.memory import MemoryStore
from hydra.workflow import Workflow

if TYPE_CHECKING:
    from hydra.metrics import Metrics

Phase = Literal["before", "during", "after"]
PHASES: tuple[Phase, ...] = ("before", "during", "after")


class SimulatedCrash(BaseException):
    """Raised at a crash point; unwinds the run like a killed process (nothing is written).

    A BaseException so workflow code's ``except Exception`` cannot catch it.
    """

    def __init__(self, worker_id: str, execution_id: str, step: str, phase: Phase) -> None:
        super().__init__(f"{worker_id} crashed {phase} step {step!r} of {execution_id}")
        self.worker_id = worker_id
        self.execution_id = execution_id
        self.step = step
        self.phase = phase


class StuckExecutionError(AssertionError):
    """``run_until_complete`` could not finish the execution; the message has the history."""


class UnfiredPlanError(AssertionError):
    """A ``crash``/``pause`` was armed but no worker ever reached its point.

    Usually a misspelt step name, a phase the step never reaches (``after`` of a step that
    always fails) or an ``execution_id`` that never ran: the test meant to exercise a crash
    and exercised none. The message names the steps that were reached.
    """


@dataclass(frozen=True)
class Event:
    """One line of a ``TestEnvironment``'s history."""

    at: datetime
    worker: str | None
    kind: str
    execution_id: str | None
    detail: str = ""

    def __str__(self) -> str:
        eid = (self.execution_id or "-")[:8]
        return f"{self.at:%Y-%m-%d %H:%M:%S.%f}"[:-3] + (
            f"  {self.worker or '-':<9} {eid:<8}  {self.kind:<10} {self.detail}".rstrip()
        )


@dataclass
class _Plan:
    step: str
    phase: Phase
    execution_id: str | None
    pause: bool
    remaining: int = 1
    times: int = 1

    def describe(self) -> str:
        call = "pause" if self.pause else "crash"
        args = [f"step={self.step!r}", f"phase={self.phase!r}"]
        if self.execution_id is not None:
            args.append(f"execution_id={self.execution_id!r}")
        if self.times != 1:
            args.append(f"times={self.times}")
        fired = self.times - self.remaining
        status = "never fired" if fired == 0 else f"fired {fired} of {self.times} times"
        return f"{call}({', '.join(args)}) {status}"


@dataclass
class _SimWorker:
    id: str
    alive: bool = True
    paused: bool = False


@dataclass
class _Paused:
    worker: _SimWorker
    thread: threading.Thread
    resume: threading.Event
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class TestEnvironment:
    """Engine + store + fake clock + ``workers`` simulated workers, all in this thread.

    >>> env = TestEnvironment()
    >>> env.register(MyWorkflow())
    >>> eid = env.start("my-workflow", payload)
    >>> env.crash(step="charge", phase="during")   # the next worker to run it dies there
    >>> env.run_until_complete(eid).status
    'completed'

    ``seed`` makes execution ids (and anything else random here) reproducible, so the
    same test gives the same ``history`` run after run. ``freeze_time=True`` also freezes
    ``datetime.now()``/``time.time()`` at the fake clock's time inside every run (needs
    freezegun). ``claim_timeout`` is the simulated workers' lease length. ``metrics`` (a
    ``hydra.Metrics``) counts the runs as a real engine's would.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        store: Store | None = None,
        clock: FakeClock | None = None,
        namespace: str = "test",
        workers: int = 1,
        *,
        claim_timeout: timedelta | float = timedelta(seconds=60),
        seed: int = 0,
        marshaller: Marshaller | None = None,
        freeze_time: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.clock = clock if clock is not None else FakeClock()
        self.store: Store = store if store is not None else MemoryStore(self.clock)
        # Ids depend on the seed and the namespace: reproducible, yet two environments on
        # one shared database (different namespaces) never mint the same id.
        self._rng = random.Random(f"{seed}:{namespace}")
        self.engine = Engine(
            self.store,
            namespace=namespace,
            clock=self.clock,
            marshaller=marshaller,
            metrics=metrics,
            id_factory=lambda: str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
        )
        self.engine.add_observer(_HistoryObserver(self))
        self.lease_ms = duration_ms(claim_timeout, "claim_timeout")
        self.history: list[Event] = []
        self._workflows: dict[str, Workflow[Any]] = {}
        self._workers = [_SimWorker(f"worker-{i + 1}") for i in range(workers)]
        self._spawned = workers
        self._plans: list[_Plan] = []
        # Step names reached (in first-reached order) per execution: what an unfired
        # crash or pause names, so that a misspelt step is found at once.
        self._reached: dict[str, dict[str, None]] = {}
        self._paused: list[_Paused] = []
        self._step_runs: Counter[tuple[str, str]] = Counter()
        self._turn = 0
        self._freeze = freeze_time
        self._hooks = _Hooks(self)
        self._schedulers: dict[str, CronScheduler] = {}
        self._cron_turn = 0

    # -- setup ----------------------------------------------------------------------------
    def register(self, workflow: Workflow[Any]) -> Workflow[Any]:
        """Let the simulated workers run ``workflow``."""
        if not isinstance(workflow, Workflow):
            raise TypeError(f"register() takes a hydra.Workflow, got {workflow!r}")
        existing = self._workflows.get(workflow.name)
        if existing is not None and existing is not workflow:
            raise ValueError(f"a different workflow is already registered as {workflow.name!r}")
        self._workflows[workflow.name] = workflow
        return workflow

    def start(self, name: str | Workflow[Any], payload: Any = None, **options: Any) -> str:
        """``engine.start_workflow`` (same options); nothing runs until you run the env."""
        eid = self.engine.start_workflow(name, payload, **options)
        wf = name.name if isinstance(name, Workflow) else name
        self._record(None, "start", eid, wf)
        return eid

    def send(
        self,
        execution_id: str,
        topic: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """``engine.send`` (same errors), recorded in the history; nothing runs until you
        run the env (the receiving execution is then due at once)."""
        self.engine.send(execution_id, topic, payload, idempotency_key=idempotency_key)
        self._record(None, "send", execution_id, f"message on {topic!r}")

    # -- crash injection ------------------------------------------------------------------
    def crash(
        self,
        step: str,
        phase: Phase = "during",
        *,
        execution_id: str | None = None,
        times: int = 1,
    ) -> None:
        """Kill the next worker that reaches ``phase`` of ``step`` (``times`` times).

        ``before``: the worker dies before the step body is entered (it never ran).
        ``during``: the body ran (its side effects happened, as if the process died at its
        last line) but neither its result nor its error was recorded.
        ``after``: the body returned a value but the checkpoint was not written.
        ``during`` and ``after`` are the window that makes the in-flight step
        at-least-once. The dead worker's lease stays held until it
        expires; then a replacement worker takes over (using one workflow attempt).
        """
        self._add_plan(step, phase, execution_id, times, pause=False)

    def pause(self, step: str, phase: Phase = "during", *, execution_id: str | None = None) -> None:
        """Freeze the next worker that reaches that point (a GC pause, SIGSTOP).

        Its lease expires while it is frozen and another worker takes over; ``resume()``
        lets it go on, and every write it then makes is fenced out (``LeaseLostError``).
        """
        self._add_plan(step, phase, execution_id, 1, pause=True)

    def resume(self) -> list[Outcome]:
        """Wake every paused worker and let it run until its run ends; their outcomes."""
        outcomes: list[Outcome] = []
        for paused in self._paused:
            self._record(paused.worker.id, "resume", None, "woke up")
            paused.resume.set()
            paused.done.wait()
            paused.thread.join()
            paused.worker.paused = False
            outcomes.append(paused.outcome or Outcome.LOST)
        self._paused.clear()
        return outcomes

    def assert_plans_fired(self) -> None:
        """Fail (``UnfiredPlanError``) if a ``crash``/``pause`` armed here never fired.

        The ``hydra_env`` fixture calls this after each test that passed, and so does
        ``with TestEnvironment() as env:`` on a clean exit: a crash at a misspelt step
        would otherwise make a test pass without crashing anything.
        """
        __tracebackhide__ = True
        unfired = [plan for plan in self._plans if plan.remaining > 0]
        if not unfired:
            return
        lines = [f"{plan.describe()}: no worker reached that point" for plan in unfired]
        lines += self._reached_lines(unfired)
        raise UnfiredPlanError("\n".join(lines))

    def _reached_lines(self, unfired: list[_Plan]) -> list[str]:
        if not self._reached:
            return ["no execution reached any step (did the environment run?)"]
        lines = []
        for eid, names in self._reached.items():
            shown = ", ".join(repr(n) for n in names)
            lines.append(f"steps reached by {eid}: {shown}")
        every = [n for names in self._reached.values() for n in names]
        for plan in unfired:
            close = difflib.get_close_matches(plan.step, every, n=1)
            if close and close[0] != plan.step:
                lines.append(f"did you mean step={close[0]!r} instead of {plan.step!r}?")
        return lines

    def __enter__(self) -> TestEnvironment:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        __tracebackhide__ = True
        if exc_type is None:
            self.assert_plans_fired()

    def _add_plan(
        self, step: str, phase: Phase, execution_id: str | None, times: int, pause: bool
    ) -> None:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        self._plans.append(_Plan(step, phase, execution_id, pause, times, times))

    # -- running --------------------------------------------------------------------------
    def run_until_idle(self, max_runs: int = 1_000_000) -> int:
        """Run everything runnable now, without moving the clock; the number of runs.

        Due cron slots fire first (``run_cron_due``), so executions they start run too."""
        now = self.clock.now_ms()
        while self.run_cron_due():
            due = self._next_cron_due()
            if due is None or due > now:
                break  # (catch_up="all" fires a long outage in several passes)
        runs = 0
        names = sorted(self._workflows)
        while runs < max_runs:
            worker = self._next_worker()
            claims = self.store.claim(
                self.engine.namespace,
                names,
                worker.id,
                now_ms=self.clock.now_ms(),
                lease_ms=self.lease_ms,
                limit=1,
            )
            if not claims:
                return runs
            runs += 1
            self._run(worker, claims[0])
        raise StuckExecutionError(
            f"more than {max_runs} runs without going idle\n" + self.format_history()
        )

    def advance(self, delta: timedelta | float) -> int:
        """Move the clock forward and run what became due; the number of runs.

        The clock stops at every cron slot on the way, which fires at its exact time."""
        step = duration_ms(delta, "advance")
        target = self.clock.now_ms() + step
        runs = 0
        while (due := self._next_cron_due()) is not None and due <= target:
            self.clock.set_ms(due)
            runs += self.run_until_idle()
        self.clock.set_ms(target)
        self._record(None, "clock", None, f"advanced {step} ms")
        return runs + self.run_until_idle()

    def run_cron_due(self) -> int:
        """Fire the cron slots due now; the number fired.

        Every live simulated worker's scheduler takes a turn (starting with a different
        worker each time), as real workers race for a slot: the first claims it, the
        others find it claimed. Handlers run here, in the test's thread."""
        if not self.engine.cron.snapshot()[1]:
            return 0
        live = self._live_workers()
        first = self._cron_turn % len(live)
        self._cron_turn += 1
        return sum(self._scheduler(w.id).tick() for w in live[first:] + live[:first])

    def _live_workers(self) -> list[_SimWorker]:
        return [w for w in self._workers if w.alive and not w.paused] or [self._spawn_worker()]

    def _scheduler(self, worker_id: str) -> CronScheduler:
        scheduler = self._schedulers.get(worker_id)
        if scheduler is None:
            scheduler = self._schedulers[worker_id] = CronScheduler(
                self.engine, worker_id, on_fire=self._cron_fired
            )
        return scheduler

    def _cron_fired(self, worker_id: str, job: str, slot_ms: int, execution_id: str | None) -> None:
        started = f": started {execution_id[:8]}" if execution_id else ""
        self._record(worker_id, "cron", execution_id, f"{job} slot {from_ms(slot_ms)}{started}")

    def _next_cron_due(self) -> int | None:
        """The earliest time a live worker's cron scheduler has something to do."""
        if not self.engine.cron.snapshot()[1]:
            return None
        dues = [self._scheduler(w.id).next_due_ms() for w in self._live_workers()]
        return min((d for d in dues if d is not None), default=None)

    def run_until_complete(
        self, execution_id: str, max_time: timedelta = timedelta(days=365)
    ) -> Execution:
        """Run, jumping the clock over sleeps, backoffs and lease expiries, until the
        execution is terminal; raise ``StuckExecutionError`` (with the history) if it
        cannot get there within ``max_time`` of virtual time."""
        deadline = self.clock.now_ms() + duration_ms(max_time, "max_time")
        while True:
            self.run_until_idle()
            execution = self.execution(execution_id)
            if execution.terminal:
                return execution
            self._jump_or_fail(
                deadline, f"execution {execution_id} is {execution.status.value}", execution_id
            )

    def run_until_all_complete(self, max_time: timedelta = timedelta(days=365)) -> int:
        """Like ``run_until_complete`` for every execution of a registered workflow.

        ``StuckExecutionError`` if one waits in ``hydra.receive`` (without a deadline)
        for a message nobody will send: send it with ``env.send`` first."""
        deadline = self.clock.now_ms() + duration_ms(max_time, "max_time")
        runs = 0
        while True:
            runs += self.run_until_idle()
            if self.store.next_wake_at(self.engine.namespace, sorted(self._workflows)) is None:
                waiting = self._waiting_for_messages()
                if waiting:
                    raise StuckExecutionError(
                        f"executions wait for messages: {'; '.join(waiting)}"
                        f"\nhistory:\n{self.format_history()}"
                    )
                return runs
            self._jump_or_fail(deadline, "executions are still unfinished")

    def _waiting_for_messages(self, execution_id: str | None = None) -> list[str]:
        """``<id> waits for a message on 'topic'`` for each sleeping execution (or the
        one given) that only a message can wake (a receive without deadline)."""
        rows = self.store.list_executions(
            self.engine.namespace, status=Status.SLEEPING, limit=1_000_000
        )
        return [
            (f"{row.id} " if execution_id is None else "")
            + f"waits for a message on {row.wait_topic!r} that nobody has sent "
            f"(env.send(execution_id, {row.wait_topic!r}, payload) sends one)"
            for row in rows
            if row.wait_topic is not None and row.wake_at is None and execution_id in (None, row.id)
        ]

    def _jump_or_fail(self, deadline: int, what: str, execution_id: str | None = None) -> None:
        due = self.store.next_wake_at(self.engine.namespace, sorted(self._workflows))
        if due is None or due > deadline:
            waiting = self._waiting_for_messages(execution_id) if due is None else []
            if waiting:
                reason = "it " + "; ".join(waiting)
            elif due is None:
                reason = "nothing is scheduled to run (is its workflow registered?)"
            else:
                reason = f"the next due time {from_ms(due)} is past max_time"
            raise StuckExecutionError(f"{what}: {reason}\nhistory:\n{self.format_history()}")
        now = self.clock.now_ms()
        if due <= now:
            # Due executions no claim took: their queue's limits hold them back. The
            # next change is a rate window reopening or something waking later.
            later = held_back_until(
                self.store, self.engine.namespace, sorted(self._workflows), now_ms=now
            )
            if later is None or later > deadline:
                raise StuckExecutionError(
                    f"{what}: executions are due but their queue's limits hold them back "
                    "(no slot frees and no rate window reopens before max_time)"
                    f"\nhistory:\n{self.format_history()}"
                )
            due = later
        cron = self._next_cron_due()
        if cron is not None and cron < due:
            due = cron  # stop at the cron slot on the way: it fires at its time
        if due > self.clock.now_ms():
            self.clock.set_ms(due)

    def _next_worker(self) -> _SimWorker:
        live = [w for w in self._workers if w.alive and not w.paused]
        if not live:
            live = [self._spawn_worker()]
        worker = live[self._turn % len(live)]
        self._turn += 1
        return worker

    def _spawn_worker(self) -> _SimWorker:
        self._spawned += 1
        worker = _SimWorker(f"worker-{self._spawned}")
        self._workers.append(worker)
        self._record(worker.id, "spawn", None, "replacement worker started")
        return worker

    def _run(self, worker: _SimWorker, claim: Claim) -> None:
        if any(p.pause for p in self._plans):
            self._run_pausable(worker, claim)
            return
        try:
            with self._frozen():
                self._execute(claim)
        except SimulatedCrash as crash:
            self._worker_died(worker, crash)

    def _run_pausable(self, worker: _SimWorker, claim: Claim) -> None:
        """Run in a helper thread so that a pause can freeze it mid-step while this
        thread goes on; control passes strictly back and forth, so it stays
        deterministic."""
        handoff = threading.Event()
        paused = _Paused(worker, threading.Thread(target=lambda: None), threading.Event())

        def body() -> None:
            try:
                with self._frozen():
                    paused.outcome = self._execute(claim)
            except SimulatedCrash as crash:
                self._worker_died(worker, crash)
            finally:
                paused.done.set()
                handoff.set()

        thread = threading.Thread(target=body, name=f"hydra-sim-{worker.id}", daemon=True)
        paused.thread = thread
        self._hooks.handoff = handoff
        self._hooks.current = paused
        thread.start()
        handoff.wait()
        if worker.paused:
            self._paused.append(paused)

    def _execute(self, claim: Claim) -> Outcome:
        # The run is tracked by the engine's run registry while it runs, so that
        # engine.cancel() stops it at its next step, as with a real Worker.
        return execute(
            self.engine.runtime,
            self._workflows.get(claim.execution.workflow_name),
            claim,
            lease_ms=self.lease_ms,
            hooks=self._hooks,
            # The lease guard measures on the fake clock: a paused worker resumed
            # after the clock jumped past its lease re-validates before a step body.
            monotonic=self.clock.now_ms,
            claimed_at=self.clock.now_ms(),
        )

    @contextmanager
    def _frozen(self) -> Iterator[None]:
        if not self._freeze:
            with nullcontext():
                yield
            return
        try:
            from freezegun import freeze_time
        except ImportError as exc:  # pragma: no cover - freezegun is a dev dependency
            raise RuntimeError("TestEnvironment(freeze_time=True) needs freezegun") from exc
        with freeze_time(self.clock.now()):
            yield

    def _worker_died(self, worker: _SimWorker, crash: SimulatedCrash) -> None:
        worker.alive = False
        self._record(worker.id, "crash", crash.execution_id, f"{crash.phase} step {crash.step!r}")

    # -- reading --------------------------------------------------------------------------
    def execution(self, execution_id: str) -> Execution:
        """The execution with its steps (``engine.get_execution``)."""
        return self.engine.get_execution(execution_id)

    def step_runs(self, execution_id: str, step_name: str) -> int:
        """How many times that step's function body was entered."""
        return self._step_runs[(execution_id, step_name)]

    def format_history(self, execution_id: str | None = None) -> str:
        """The history as text (one event a line), optionally for one execution."""
        return "\n".join(
            str(e)
            for e in self.history
            if execution_id is None or e.execution_id in (None, execution_id)
        )

    @property
    def workers(self) -> list[str]:
        """Ids of the simulated workers still alive."""
        return [w.id for w in self._workers if w.alive]

    def _record(self, worker: str | None, kind: str, eid: str | None, detail: str = "") -> None:
        when = from_ms(self.clock.now_ms())
        assert when is not None
        self.history.append(Event(when, worker, kind, eid, detail))


class _Hooks:
    """The runner's hook points: counts step bodies and fires crash/pause plans.

    The branches of ``hydra.gather`` call them from their own threads at once: the lock
    keeps the counts and the plans consistent (each plan fires once). A crash raised in
    a branch's thread reaches the runner once the other branches have settled."""

    def __init__(self, env: TestEnvironment) -> None:
        self.env = env
        self.current: _Paused | None = None
        self.handoff: threading.Event | None = None
        self._lock = threading.Lock()

    def step_reached(self, run: RunInfo, step_name: str) -> None:
        with self._lock:
            self.env._reached.setdefault(run.execution_id, {})[step_name] = None
        self._maybe_fire(run, step_name, "before")

    def step_entered(self, run: RunInfo, step_name: str, attempt: int) -> None:
        with self._lock:
            self.env._step_runs[(run.execution_id, step_name)] += 1
            self.env._record(
                run.lease.worker_id,
                "step",
                run.execution_id,
                f"{step_name} (step attempt {attempt})",
            )

    def step_ran(self, run: RunInfo, step_name: str) -> None:
        # "during": the body ran (its side effects happened, as if the process died at
        # its last line) and neither its result nor its error was recorded.
        self._maybe_fire(run, step_name, "during")

    def step_returned(self, run: RunInfo, step_name: str) -> None:
        self._maybe_fire(run, step_name, "after")

    def checkpoint_written(self, run: RunInfo, name: str) -> None:
        # A receive, send or event has no body: "during" and "after" both mean the write
        # committed and the process died before the workflow went on.
        self._maybe_fire(run, name, "during")
        self._maybe_fire(run, name, "after")

    def _maybe_fire(self, run: RunInfo, step_name: str, phase: Phase) -> None:
        with self._lock:
            plan = self._take_plan(run, step_name, phase)
        if plan is None:
            return
        if plan.pause:
            self._pause(run, step_name, phase)  # outside the lock: other branches go on
            return
        raise SimulatedCrash(run.lease.worker_id, run.execution_id, step_name, phase)

    def _take_plan(self, run: RunInfo, step_name: str, phase: Phase) -> _Plan | None:
        """The first armed plan for this point, counted as fired, or None."""
        for plan in self.env._plans:
            if (
                plan.step == step_name
                and plan.phase == phase
                and plan.remaining > 0
                and (plan.execution_id in (None, run.execution_id))
            ):
                plan.remaining -= 1
                if plan.remaining == 0:
                    self.env._plans.remove(plan)
                return plan
        return None

    def _pause(self, run: RunInfo, step_name: str, phase: Phase) -> None:
        paused, handoff = self.current, self.handoff
        if paused is None or handoff is None:
            raise RuntimeError("pause plans run only through TestEnvironment")
        paused.worker.paused = True
        self.env._record(
            run.lease.worker_id, "pause", run.execution_id, f"{phase} step {step_name!r}"
        )
        handoff.set()  # give control back to the environment
        paused.resume.wait()  # until resume()


class _HistoryObserver(Observer):
    """Writes the runner's events into the environment's history."""

    def __init__(self, env: TestEnvironment) -> None:
        self.env = env

    def claimed(self, claim: Claim) -> None:
        ex = claim.execution
        kind = "takeover" if claim.takeover else "claim"
        self.env._record(
            claim.lease.worker_id, kind, ex.id, f"{ex.workflow_name} attempt {ex.attempt}"
        )

    def run_finished(self, claim: Claim, status: Status) -> None:
        self.env._record(claim.lease.worker_id, status.value, claim.execution.id)

    def run_retry_scheduled(self, claim: Claim) -> None:
        self.env._record(
            claim.lease.worker_id,
            "retry",
            claim.execution.id,
            f"attempt {claim.execution.attempt} failed",
        )

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        if status == "completed":
            self.env._record(run.lease.worker_id, "checkpoint", run.execution_id, name)
        else:
            self.env._record(run.lease.worker_id, "step-fail", run.execution_id, name)

    def slept(self, run: RunInfo, name: str, wake_ms: int) -> None:
        self.env._record(
            run.lease.worker_id, "sleep", run.execution_id, f"{name} until {from_ms(wake_ms)}"
        )

    def waiting(self, run: RunInfo, name: str, topic: str, deadline_ms: int | None) -> None:
        until = "no deadline" if deadline_ms is None else f"until {from_ms(deadline_ms)}"
        self.env._record(
            run.lease.worker_id, "wait", run.execution_id, f"{name} for {topic!r} ({until})"
        )

    def received(self, run: RunInfo, name: str, topic: str, waited_ms: int) -> None:
        self.env._record(
            run.lease.worker_id, "receive", run.execution_id, f"{name} got a {topic!r} message"
        )

    def wait_timed_out(self, run: RunInfo, name: str, topic: str) -> None:
        self.env._record(
            run.lease.worker_id, "timeout", run.execution_id, f"{name}: no {topic!r} message"
        )

    def lease_lost(self, claim: Claim) -> None:
        self.env._record(
            claim.lease.worker_id, "lost", claim.execution.id, "lease lost: writes fenced out"
        )

    def run_interrupted(self, claim: Claim) -> None:
        self.env._record(
            claim.lease.worker_id,
            "interrupt",
            claim.execution.id,
            "the database failed: run stopped, execution given back (no attempt used)",
        )
