"""Firing cron slots: ``CronScheduler`` (one per worker) and ``hydra.CronContext``.

Every ``hydra.Worker`` runs a ``CronScheduler`` on its own thread; so does every simulated
worker of ``hydra.testing.TestEnvironment``, on the fake clock. The jobs come from the
engine's cron registry (``engine.cron``, see ``hydra.cron``, which also says how a slot
fires exactly once across workers and what each ``catch_up`` policy does).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from hydra.cron import (
    ERROR_RETRY_MS,
    MAX_FIRES_PER_TICK,
    MISFIRE_GRACE_MS,
    REFRESH_MS,
    UNCLAIMED_SCAN,
    CronJob,
    CronSchedule,
    instant_ms,
    minutes_text,
    unclaimed_executions,
)
from hydra.engine import Engine
from hydra.logs import CRON_LOGGER_SUFFIX, HydraLogger
from hydra.status import Status
from hydra.store.base import CronFire, CronJobRow


@dataclass(frozen=True, eq=False)
class CronContext:
    """What a cron handler gets: ``handler(ctx: hydra.CronContext)``.

    ``scheduled_at`` is the slot (aware, in the job's time zone), ``fired_at`` when this
    worker claimed it (same zone; later than ``scheduled_at`` when catching up).
    ``logger`` (the ``cron`` child of the engine's logger: ``hydra.cron`` by default)
    adds ``worker_id`` and ``cron_job`` to every record.
    """

    name: str
    namespace: str
    scheduled_at: datetime
    fired_at: datetime
    worker_id: str
    engine: Engine
    logger: HydraLogger

    @property
    def slot_ms(self) -> int:
        """``scheduled_at`` as Unix milliseconds (the slot's key in ``cron_fires``)."""
        return instant_ms(self.scheduled_at)


@dataclass
class _JobState:
    """What one scheduler knows about one job."""

    key: tuple[Any, ...]
    schedule: CronSchedule
    #: when to look at the job again (a slot, or now); None: disabled
    next_due: int | None


class CronScheduler:
    """Fires the due slots of an engine's cron jobs; one per worker.

    ``tick()`` does one pass: it reads the store only when a job may be due (or to see
    definitions changed elsewhere, every ``REFRESH_MS``), so calling it often is cheap.
    ``submit(job_name, call)`` runs a handler call (the worker hands it to the job's own
    thread, so a long handler delays neither the scheduler nor other jobs); without it
    handlers run inside ``tick()``, as ``TestEnvironment`` wants. ``on_fire(worker_id,
    job_name, slot_ms, execution_id)`` is told of every slot this scheduler fires.

    ``registered()`` names the workflows the scheduler's worker runs (none without it).
    Before firing a workflow job whose workflow is not among them, the scheduler looks at
    the execution the job's previous slot started: still unclaimed (no worker picked it
    up in a whole slot), it logs a warning, once per job until a later check finds the
    previous slot's execution claimed, and counts every such slot
    (``hydra_cron_unregistered_workflow_total``): a workflow no worker registers would
    otherwise pile up one pending execution per slot, silently.
    """

    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        *,
        submit: Callable[[str, Callable[[], None]], None] | None = None,
        on_fire: Callable[[str, str, int, str | None], None] | None = None,
        registered: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self._submit = submit
        self._on_fire = on_fire
        self._registered = registered
        # Jobs warned about an unclaimed backlog (warned again only after it cleared).
        self._backlog_warned: set[str] = set()
        self._state: dict[str, _JobState] = {}
        self._rows: dict[str, CronJobRow] = {}
        self._version = -1
        self._refresh_at: int | None = None
        self._lock = threading.RLock()
        self._log = engine.logger.bind(worker_id=worker_id)
        #: passes made (tests wait on it)
        self.ticks = 0

    def next_due_ms(self) -> int | None:
        """When this scheduler next has something to do (None: no enabled jobs)."""
        version, jobs = self.engine.cron.snapshot()
        if not jobs:
            return None
        now = self.engine.clock.now_ms()
        with self._lock:
            if version != self._version:
                return now
            dues: list[int] = []
            for name in jobs:
                state = self._state.get(name)
                if state is None:
                    return now
                if state.next_due is not None:
                    dues.append(state.next_due)
        return min(dues) if dues else None

    def tick(self) -> int:
        """Fire whatever is due now; the number of slots this scheduler fired."""
        with self._lock:
            self.ticks += 1
            version, jobs = self.engine.cron.snapshot()
            if not jobs:
                return 0
            now = self.engine.clock.now_ms()
            stale = version != self._version or self._refresh_at is None or now >= self._refresh_at
            if not stale and not any(self._is_due(name, now) for name in jobs):
                return 0
            store, namespace = self.engine.store, self.engine.namespace
            self._rows = {row.name: row for row in store.list_cron_jobs(namespace)}
            self._version = version
            self._refresh_at = now + REFRESH_MS
            fired = 0
            for name in sorted(jobs):
                try:
                    fired += self._tick_job(jobs[name], now)
                except Exception as exc:
                    self._log.bind(cron_job=name).warning(
                        "cron job %s: scheduling failed (%s: %s); retrying",
                        name,
                        type(exc).__name__,
                        exc,
                    )
                    state = self._state.get(name)
                    if state is None:  # failed before its first look: look again later too
                        state = self._state[name] = _JobState((), jobs[name].schedule, None)
                    state.next_due = now + ERROR_RETRY_MS
            return fired

    def _is_due(self, name: str, now: int) -> bool:
        state = self._state.get(name)
        return state is None or (state.next_due is not None and state.next_due <= now)

    def _tick_job(self, job: CronJob, now: int) -> int:
        engine = self.engine
        row = self._rows.get(job.name)
        if row is None:
            # Registered here but gone from the store (a wiped table): store it again.
            row = self._rows[job.name] = engine.cron.store_job(job)
        state = self._state.get(job.name)
        key = (row.spec, row.timezone, row.updated_at, row.enabled, id(job))
        if state is None or state.key != key:
            state = self._state[job.name] = _JobState(
                key, self._schedule_for(job, row), now if row.enabled else None
            )
        if state.next_due is None or state.next_due > now:
            return 0
        fired, more = self._fire_due(job, row, state.schedule, now)
        state.next_due = now if more else state.schedule.next_after(now)
        if not more and row.next_run_at != state.next_due:
            engine.store.set_cron_next_run(engine.namespace, job.name, state.next_due)
            row.next_run_at = state.next_due
        return fired

    def _schedule_for(self, job: CronJob, row: CronJobRow) -> CronSchedule:
        """The stored schedule: the latest registration anywhere wins for every worker."""
        if (row.spec, row.timezone) == (job.schedule.spec, job.schedule.timezone):
            return job.schedule
        try:
            schedule = CronSchedule(row.spec, row.timezone)
        except ValueError as exc:
            self._log.bind(cron_job=job.name).warning(
                "cron job %s: the stored spec cannot be used (%s); using %r", job.name, exc, job
            )
            return job.schedule
        self._log.bind(cron_job=job.name).info(
            "cron job %s follows the stored schedule %r (registered here: %r)",
            job.name,
            schedule,
            job.schedule,
        )
        return schedule

    def _fire_due(
        self, job: CronJob, row: CronJobRow, schedule: CronSchedule, now: int
    ) -> tuple[int, bool]:
        """Fire the due slots per the job's catch-up policy: (fired, more are due)."""
        last = self.engine.store.last_cron_fire(self.engine.namespace, job.name)
        # Slots before the definition was stored are not due, nor are those already fired.
        since = row.updated_at - 1
        if last is not None:
            since = max(since, last.slot_at)
        latest = schedule.latest_at_or_before(now)
        if latest <= since:
            return 0, False
        more = False
        if job.catch_up == "all":
            slots = schedule.slots(since, now, MAX_FIRES_PER_TICK + 1)
            more = len(slots) > MAX_FIRES_PER_TICK
            slots = slots[:MAX_FIRES_PER_TICK]
        else:
            missed = schedule.next_after(since) < latest
            on_time = now - latest <= MISFIRE_GRACE_MS
            slots = [latest] if job.catch_up == "latest" or on_time else []
            if missed or not slots:
                self._log.bind(cron_job=job.name).info(
                    "cron job %s: slots since %s were missed (no worker was running); "
                    "catch_up=%s fires %s",
                    job.name,
                    schedule.local(since + 1).isoformat(),
                    job.catch_up,
                    schedule.local(latest).isoformat() if slots else "none of them",
                )
        if slots:
            self._check_backlog(job, last, now)
        return sum(self._fire(job, schedule, slot, now) for slot in slots), more

    def _check_backlog(self, job: CronJob, last: CronFire | None, now: int) -> None:
        """Warn and count when ``job`` is about to start its workflow again while the
        execution its previous slot started is still unclaimed and this worker does not
        register the workflow (see the class docstring)."""
        registered = self._registered() if self._registered is not None else ()
        if job.workflow is None or job.workflow in registered or last is None:
            self._backlog_warned.discard(job.name)
            return
        engine = self.engine
        previous = (
            engine.store.get_execution(engine.namespace, last.execution_id)
            if last.execution_id is not None
            else None
        )
        if previous is None or previous.status != Status.PENDING or previous.attempt != 0:
            self._backlog_warned.discard(job.name)
            return
        if engine.metrics is not None:
            engine.metrics.cron_unregistered_workflow(engine.namespace, job.name, job.workflow)
        if job.name in self._backlog_warned:
            return
        self._backlog_warned.add(job.name)
        waiting = unclaimed_executions(
            engine.store, engine.namespace, job.name, job.workflow, created_before_ms=now + 1
        )
        oldest = min((row.created_at for row in waiting), default=previous.created_at)
        count = f"{len(waiting)}{'+' if len(waiting) >= UNCLAIMED_SCAN else ''}"
        self._log.bind(cron_job=job.name, workflow_name=job.workflow).warning(
            "cron job %s starts workflow %r, which this worker does not register, and no "
            "worker has claimed the executions of its earlier slots (%s pending, the oldest "
            "for %s): is a worker running that registers %r? Each slot adds one more "
            "(counted in hydra_cron_unregistered_workflow_total; warned once until one is "
            "claimed)",
            job.name,
            job.workflow,
            count,
            minutes_text(now - oldest),
            job.workflow,
        )

    def _fire(self, job: CronJob, schedule: CronSchedule, slot: int, now: int) -> int:
        engine = self.engine
        namespace = engine.namespace
        metrics = engine.metrics
        scheduled_at = schedule.local(slot)
        log = self._log.bind(cron_job=job.name)
        execution_id = None
        if job.workflow is not None:
            # Start first, then record: the idempotency key makes a second start (another
            # worker, or this slot again after a crash before the record) return the same
            # execution, and a crash in between cannot lose the slot.
            try:
                payload = job.payload(scheduled_at) if callable(job.payload) else job.payload
                execution_id, _ = engine.start_execution(
                    job.workflow,
                    payload,
                    idempotency_key=job.idempotency_key(slot),
                    trigger_type="cron",
                    trigger_source=job.name,
                )
            except Exception as exc:
                log.error(
                    "cron job %s could not start workflow %s for %s: %s: %s",
                    job.name,
                    job.workflow,
                    scheduled_at.isoformat(),
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                if metrics is not None:
                    metrics.cron_failed(namespace, job.name)
                return 0
        if not engine.store.claim_cron_fire(
            namespace,
            job.name,
            slot,
            now_ms=now,
            worker_id=self.worker_id,
            execution_id=execution_id,
        ):
            return 0  # another worker fired this slot
        if metrics is not None:
            metrics.cron_fired(namespace, job.name)
        if self._on_fire is not None:
            self._on_fire(self.worker_id, job.name, slot, execution_id)
        if execution_id is not None:
            log.info(
                "cron job %s fired for %s: started %s",
                job.name,
                scheduled_at.isoformat(),
                execution_id,
            )
            return 1
        log.info("cron job %s fired for %s", job.name, scheduled_at.isoformat())
        ctx = CronContext(
            name=job.name,
            namespace=namespace,
            scheduled_at=scheduled_at,
            fired_at=schedule.local(now),
            worker_id=self.worker_id,
            engine=engine,
            logger=HydraLogger(
                engine.logger.logger.getChild(CRON_LOGGER_SUFFIX),
                {"worker_id": self.worker_id, "cron_job": job.name},
            ),
        )
        call = partial(_call_handler, job, ctx)
        if self._submit is None:
            call()
        else:
            self._submit(job.name, call)
        return 1


def _call_handler(job: CronJob, ctx: CronContext) -> None:
    """Run a handler; an exception is logged and counted, never raised."""
    assert job.handler is not None
    try:
        result = job.handler(ctx)
        if inspect.iscoroutine(result):
            asyncio.run(_awaited(result))
    except Exception as exc:
        # hydra's own line, on the engine's logger (ctx.logger is the handler's).
        ctx.engine.logger.bind(worker_id=ctx.worker_id, cron_job=job.name).error(
            "cron job %s failed for %s: %s: %s",
            job.name,
            ctx.scheduled_at.isoformat(),
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        metrics = ctx.engine.metrics
        if metrics is not None:
            metrics.cron_failed(ctx.namespace, job.name)


async def _awaited(coro: Coroutine[Any, Any, Any]) -> Any:
    return await coro


__all__ = ["CronContext", "CronScheduler"]
