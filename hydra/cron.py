"""Cron jobs: schedules parsed by croniter, each slot fired exactly once across workers.

``engine.register_cron(spec, name, handler)`` (or ``workflow="name", payload=...``) stores
the job in the ``cron_jobs`` table and keeps the handler in the engine's ``CronRegistry``
(``engine.cron``). Every ``hydra.Worker`` of that engine runs a ``CronScheduler``
(``hydra.scheduler``) on its own thread; so does every simulated worker of
``hydra.testing.TestEnvironment``, on the fake clock.

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

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from hydra.errors import InvalidNameError
from hydra.runtime import Runtime
from hydra.status import Status
from hydra.store.base import CronJobRow, ExecutionRow, Store
from hydra.workflow import Workflow, validate_name

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


def instant_ms(when: datetime) -> int:
    """An aware datetime as Unix milliseconds (how slots are stored)."""
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
            self.next_after(instant_ms(datetime(2000, 1, 1, tzinfo=UTC)))
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
        first = instant_ms(w.replace(tzinfo=self.tz))
        second = instant_ms(w.replace(tzinfo=self.tz, fold=1))
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


def minutes_text(ms: int) -> str:
    """A duration in ms as ``"25 min"`` or ``"3 h 05 min"``, for warnings."""
    minutes = max(ms, 0) // 60_000
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# Called with a ``hydra.CronContext`` (``hydra.scheduler``), which holds the engine: it
# is typed loosely here so that this module, which the engine imports, need not import
# the engine back.
Handler = Callable[[Any], Any]


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


class CronRegistry:
    """The cron jobs registered on one engine (``engine.cron``): what its workers'
    schedulers fire. ``register`` validates a job, stores its definition and keeps its
    handler here; ``snapshot`` is what a scheduler reads (the version changes with every
    registration, so schedulers notice)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._jobs: dict[str, CronJob] = {}
        self._version = 0

    def register(
        self,
        spec: str,
        name: str,
        handler: Handler | None = None,
        *,
        workflow: str | Workflow[Any] | None = None,
        payload: Any = None,
        timezone: str | None = None,
        catch_up: str = "latest",
    ) -> CronJob:
        """``Engine.register_cron`` (see there): validate, store, keep."""
        validate_name(name, "cron job name")
        schedule = CronSchedule(spec, timezone)
        policy = validate_catch_up(catch_up)
        workflow_name = workflow.name if isinstance(workflow, Workflow) else workflow
        if (handler is None) == (workflow_name is None):
            raise TypeError(
                f"register_cron({name!r}) takes a handler or workflow=..., exactly one of them"
            )
        if handler is not None and not callable(handler):
            raise TypeError(f"the handler of cron job {name!r} must be callable, got {handler!r}")
        if handler is not None and payload is not None:
            raise TypeError(f"cron job {name!r}: payload= goes with workflow=, not a handler")
        if workflow_name is not None:
            validate_name(workflow_name, "workflow name")
            # Each slot starts its workflow with the key "cron:<name>:<slot ms>" (13 digits
            # until the year 2286), itself a name of at most 255 characters.
            room = 255 - len("cron::") - 13
            if len(name) > room:
                raise InvalidNameError(
                    f"cron job name must be at most {room} characters for a job that starts "
                    f"a workflow (its idempotency key is 'cron:<name>:<slot ms>'), got {len(name)}"
                )
        # A static payload is encoded now: an unencodable one fails registration, not a slot.
        data = None
        if workflow_name is not None and not callable(payload):
            data = self._runtime.payloads.check(
                self._runtime.marshaller.marshal(payload), f"the payload of cron job {name!r}"
            )
        job = CronJob(name, schedule, policy, handler, workflow_name, payload, data)
        self.store_job(job)
        with self._lock:
            self._jobs[name] = job
            self._version += 1
        self._runtime.logger.info("registered cron job %r", job)
        return job

    def store_job(self, job: CronJob) -> CronJobRow:
        """Write ``job``'s definition to the store (unchanged if it is the same)."""
        runtime = self._runtime
        return runtime.store.upsert_cron_job(
            runtime.namespace,
            job.name,
            spec=job.schedule.spec,
            timezone=job.schedule.timezone,
            workflow_name=job.workflow,
            payload=job.payload_data,
            now_ms=runtime.clock.now_ms(),
        )

    def snapshot(self) -> tuple[int, dict[str, CronJob]]:
        """(version, the jobs by name): the version changes with every registration."""
        with self._lock:
            return self._version, dict(self._jobs)


__all__ = [
    "CATCH_UP_POLICIES",
    "MACROS",
    "CatchUp",
    "CronJob",
    "CronRegistry",
    "CronSchedule",
    "Handler",
    "instant_ms",
    "unclaimed_executions",
    "with_next_run",
]
