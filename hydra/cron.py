"""Cron jobs: schedules parsed by croniter, each slot fired exactly once across workers.

``engine.register_cron(spec, name, handler)`` (or ``workflow="name", payload=...``) stores
the job in the ``cron_jobs`` table and keeps the handler in the engine. Every
``hydra.Worker`` of that engine runs a ``CronScheduler`` on its own thread; so does every
simulated worker of ``hydra.testing.TestEnvironment``, on the fake clock.

Exactly once per slot: a slot is a point in time (Unix ms). Whoever first inserts the
``(namespace, job, slot)`` row into ``cron_fires`` (its primary key) fires the slot; every
other worker's insert fails and it does nothing. No lease is held while the handler runs,
so a slow or crashed handler never makes another worker fire the slot again.

- A handler runs at most once per slot: it runs after its slot is recorded, so if its
  worker dies while running it, the slot is not run again. Work that must finish belongs
  in a workflow (``workflow=``), which is durable and retried.
- A workflow-starting job starts the workflow *before* recording the slot, with the
  idempotency key ``cron:<name>:<slot ms>``: a crash between the two cannot lose the slot
  (the next worker starts it again and gets the same execution), and two workers can
  never start it twice.

Missed slots (every worker was down): ``catch_up="latest"`` (default) fires the most
recent missed slot once, ``"all"`` fires every missed slot, oldest first (at most
``MAX_FIRES_PER_TICK`` per scheduler pass), ``"none"`` fires only a slot noticed within
``MISFIRE_GRACE_MS`` of its time. Slots before the job was registered (or before its
definition last changed) are never due.

Time zones: a spec is read as wall-clock time in ``timezone`` (default UTC), and slots
are real instants. Across DST changes hydra does what Vixie cron does: a spec whose hour
field is ``*`` (``30 * * * *``, ``*/10 * * * *``) follows real time, so it runs in both
copies of a repeated hour and not in a skipped one; a spec with fixed hours
(``0 2 * * *``) runs once per wall-clock time: in a repeated hour only the first time, and
a time inside a skipped hour (02:30 on the spring-forward night in Europe) runs at the
moment the clock jumps (03:00 local).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from hydra.logs import CRON_LOGGER_SUFFIX, HydraLogger
from hydra.status import Status
from hydra.store.base import CronFire, CronJobRow, ExecutionRow, Store

if TYPE_CHECKING:
    from hydra.engine import Engine

CatchUp = Literal["latest", "all", "none"]
CATCH_UP_POLICIES: tuple[CatchUp, ...] = ("latest", "all", "none")

#: the macros croniter understands, as the 5-field specs they stand for
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: ``catch_up="none"``: a slot noticed more than this late counts as missed
MISFIRE_GRACE_MS = 60_000
#: ``catch_up="all"``: most missed slots one scheduler pass fires (the rest follow)
MAX_FIRES_PER_TICK = 100
#: how often a scheduler re-reads the stored jobs (to see a definition changed elsewhere)
REFRESH_MS = 30_000
#: after a failed pass over a job (a database error), retry it this much later
ERROR_RETRY_MS = 1_000
#: ``unclaimed_executions``: the most pending executions of a workflow read to find a
#: job's (they are read newest first)
UNCLAIMED_SCAN = 200
#: ``hydra cron list`` warns about a job's executions unclaimed for longer than this
UNCLAIMED_GRACE_MS = 60_000

# DST shifts are at most 2 hours (historic "double summer time"); a wider margin is safe.
_MARGIN = timedelta(hours=3)
# Two offset changes within a week never happen: across a shorter span, equal UTC offsets
# at both ends mean no change in between, and local time maps to instants one-to-one.
_FAST_SPAN_MS = 7 * 24 * 3600 * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"timezone must be an IANA zone name like 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA zone name like 'Europe/Berlin' or 'UTC'"
        ) from exc


def _to_ms(when: datetime) -> int:
    return (when - _EPOCH) // _MS


class CronSchedule:
    """A 5-field cron spec (or a macro such as ``@daily``) in a time zone.

    Raises ``ValueError`` for an invalid spec, an unknown zone or a spec that matches no
    date (``0 0 30 2 *``). ``next_after`` and ``latest_at_or_before`` map between Unix
    milliseconds and slots with the DST rules in the module docstring.
    """

    def __init__(self, spec: str, timezone: str | None = None) -> None:
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"cron spec must be a non-empty string, got {spec!r}")
        self.spec = " ".join(spec.split())
        self.expression = MACROS.get(self.spec.lower(), self.spec)
        fields = self.expression.split()
        if self.expression.startswith("@"):
            raise ValueError(
                f"invalid cron spec {spec!r}: unknown macro; use one of {', '.join(MACROS)}"
            )
        if len(fields) != 5:
            raise ValueError(
                f"invalid cron spec {spec!r}: expected 5 fields (minute hour day-of-month "
                f"month day-of-week) or a macro like @daily, got {len(fields)} fields"
            )
        for part in (token for f in fields for token in f.split(",")):
            # Month and weekday names never start with H or R.
            if part[:1].upper() in ("H", "R"):
                raise ValueError(
                    f"invalid cron spec {spec!r}: hashed (H) and random (R) fields are not "
                    "supported: every worker must compute the same slots"
                )
        try:
            croniter(self.expression, datetime(2000, 1, 1))
        except (CroniterError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid cron spec {spec!r}: {exc}") from None
        self.timezone = timezone
        self.tz = _zone(timezone)
        # With the hour field "*" (or "*/n") the job follows real time through DST changes.
        self.wildcard_hour = fields[1].startswith("*")
        try:
            self.next_after(_to_ms(datetime(2000, 1, 1, tzinfo=UTC)))
        except CroniterBadDateError:
            raise ValueError(f"invalid cron spec {spec!r}: it matches no date") from None

    def __repr__(self) -> str:
        zone = f", {self.timezone!r}" if self.timezone else ""
        return f"CronSchedule({self.spec!r}{zone})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return (self.spec, self.timezone) == (other.spec, other.timezone)

    def __hash__(self) -> int:
        return hash((self.spec, self.timezone))

    # -- slots ------------------------------------------------------------------------
    def local(self, ms: int) -> datetime:
        """``ms`` as an aware datetime in the schedule's zone."""
        # replace(), not + timedelta: adding would reset ``fold`` in a repeated hour.
        when = datetime.fromtimestamp(ms // 1000, tz=self.tz)
        return when.replace(microsecond=ms % 1000 * 1000)

    def next_after(self, ms: int) -> int:
        """The first slot strictly after ``ms``."""
        w = croniter(self.expression, self._naive(ms)).get_next(datetime)
        found = self._instants(w)
        if (
            len(found) == 1
            and ms < found[0] < ms + _FAST_SPAN_MS
            and self._offset(ms) == self._offset(found[0])
        ):
            return found[0]
        return self._scan(ms, forward=True)

    def latest_at_or_before(self, ms: int) -> int:
        """The last slot at or before ``ms``."""
        start = self._naive(ms) + timedelta(microseconds=1)
        w = croniter(self.expression, start).get_prev(datetime)
        found = self._instants(w)
        if (
            len(found) == 1
            and ms - _FAST_SPAN_MS < found[0] <= ms
            and self._offset(ms) == self._offset(found[0])
        ):
            return found[0]
        return self._scan(ms, forward=False)

    def slots(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """Up to ``limit`` slots in ``(after_ms, until_ms]``, oldest first."""
        out: list[int] = []
        slot = after_ms
        while len(out) < limit:
            slot = self.next_after(slot)
            if slot > until_ms:
                break
            out.append(slot)
        return out

    # -- local time <-> instants -------------------------------------------------------
    def _naive(self, ms: int) -> datetime:
        return self.local(ms).replace(tzinfo=None)

    def _offset(self, ms: int) -> timedelta | None:
        return datetime.fromtimestamp(ms // 1000, tz=self.tz).utcoffset()

    def _instants(self, w: datetime) -> tuple[int, ...]:
        """The instants at which wall-clock time ``w`` fires (0, 1 or 2 of them)."""
        first = _to_ms(w.replace(tzinfo=self.tz))
        second = _to_ms(w.replace(tzinfo=self.tz, fold=1))
        if first == second:
            return (first,)
        if self._naive(first) != w:
            # ``w`` falls in a skipped hour. zoneinfo reads it with the offset from before
            # the change (``first``, after the jump) or after it (``second``, before it).
            return () if self.wildcard_hour else (self._jump(w, second, first),)
        # ``w`` happens twice (a repeated hour): ``first`` is the earlier.
        return (first, second) if self.wildcard_hour else (first,)

    def _jump(self, w: datetime, before: int, after: int) -> int:
        """The instant the clock jumps over the skipped wall time ``w``: the first instant
        in ``(before, after]`` whose local time is past ``w`` (a binary search)."""
        while after - before > 1:
            mid = (before + after) // 2
            if self._naive(mid) > w:
                after = mid
            else:
                before = mid
        return after

    def _scan(self, ms: int, *, forward: bool) -> int:
        """Near an offset change: look at every slot within the margin and pick the nearest."""
        pivot = self._naive(ms)
        if forward:
            it = croniter(self.expression, pivot - _MARGIN)
            step = it.get_next
        else:
            it = croniter(self.expression, pivot + _MARGIN + timedelta(microseconds=1))
            step = it.get_prev
        best: int | None = None
        best_w: datetime | None = None
        while True:
            w = step(datetime)
            if best is not None and best_w is not None and abs(w - best_w) > _MARGIN:
                return best
            for inst in self._instants(w):
                eligible = inst > ms if forward else inst <= ms
                nearer = best is None or (inst < best if forward else inst > best)
                if eligible and nearer:
                    best, best_w = inst, w


def with_next_run(row: CronJobRow, now_ms: int) -> CronJobRow:
    """``row`` with ``next_run_at`` set to the job's first slot after ``now_ms``, computed
    from its spec and time zone, when the stored one is missing (no worker has scheduled
    the job yet, or its definition just changed) or has passed (no worker is running
    it). A disabled job, and a stored spec this version cannot read, are left as stored."""
    if not row.enabled or (row.next_run_at is not None and row.next_run_at > now_ms):
        return row
    try:
        schedule = CronSchedule(row.spec, row.timezone)
    except ValueError:
        return row
    return dataclasses.replace(row, next_run_at=schedule.next_after(now_ms))


def unclaimed_executions(
    store: Store, namespace: str, job_name: str, workflow_name: str, *, created_before_ms: int
) -> list[ExecutionRow]:
    """The executions cron job ``job_name`` started (of ``workflow_name``) that no worker
    has claimed yet (``pending``, attempt 0), created before ``created_before_ms``, newest
    first; among the newest ``UNCLAIMED_SCAN`` pending executions of the workflow.

    A workflow no running worker registers piles up such executions, one per slot: the
    engine knows only its own process's registrations, so this is how a job's backlog
    shows."""
    pending = store.list_executions(
        namespace, status=Status.PENDING, workflow_name=workflow_name, limit=UNCLAIMED_SCAN
    )
    return [
        row
        for row in pending
        if row.trigger_type == "cron"
        and row.trigger_source == job_name
        and row.attempt == 0
        and row.created_at < created_before_ms
    ]


def _minutes(ms: int) -> str:
    minutes = max(ms, 0) // 60_000
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


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
        return _to_ms(self.scheduled_at)


Handler = Callable[[CronContext], Any]


@dataclass(frozen=True, eq=False)
class CronJob:
    """A cron job as registered on an engine (``engine.register_cron`` returns it)."""

    name: str
    schedule: CronSchedule
    catch_up: CatchUp
    handler: Handler | None = None
    workflow: str | None = None
    #: a payload value, or a callable taking the slot (aware datetime) and returning one
    payload: Any = None
    #: the encoded payload as stored (None for a handler or a per-slot payload)
    payload_data: bytes | None = None

    @property
    def spec(self) -> str:
        return self.schedule.spec

    @property
    def timezone(self) -> str | None:
        return self.schedule.timezone

    def idempotency_key(self, slot_ms: int) -> str:
        """The key a workflow-starting job starts its slot's execution with."""
        return f"cron:{self.name}:{slot_ms}"

    def __repr__(self) -> str:
        target = f"workflow={self.workflow!r}" if self.workflow else f"handler={self.handler!r}"
        return f"<CronJob {self.name!r} {self.schedule!r} {target} catch_up={self.catch_up!r}>"


def validate_catch_up(value: object) -> CatchUp:
    for policy in CATCH_UP_POLICIES:
        if value == policy:
            return policy
    raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, got {value!r}")


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
        version, jobs = self.engine._cron_snapshot()
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
            version, jobs = self.engine._cron_snapshot()
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
            row = self._rows[job.name] = engine._store_cron_job(job)
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
            _minutes(now - oldest),
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
                execution_id, _ = engine._start_execution(
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


__all__ = [
    "CATCH_UP_POLICIES",
    "MACROS",
    "CatchUp",
    "CronContext",
    "CronJob",
    "CronSchedule",
    "CronScheduler",
    "unclaimed_executions",
    "with_next_run",
]
