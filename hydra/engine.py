"""``hydra.Engine``: starting, inspecting, waiting for and cancelling executions."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from hydra.clock import Clock, default_clock, duration_ms, from_ms, to_ms
from hydra.cron import CronJob, CronRegistry, Handler, with_next_run
from hydra.errors import ExecutionNotFoundError, PayloadError, WaitTimeoutError
from hydra.events import Observer, Observers
from hydra.finished import FinishedWatch
from hydra.logs import HydraLogger
from hydra.marshal import JSONMarshaller, Marshaller, type_name
from hydra.purging import PURGE_BATCH, PURGE_PACING, PurgePacer
from hydra.queues import Queue, QueueCheck, queue_of, queue_row
from hydra.records import Execution, Message, StepAttempt, StepRecord
from hydra.retry import validate_max_attempts
from hydra.runtime import PayloadLimit, RunRegistry, Runtime
from hydra.status import Status, StepStatus, read_step_status
from hydra.store.base import (
    RESERVED_TOPIC_PREFIX,
    CronJobRow,
    ExecutionRow,
    NewExecution,
    NewMessage,
    StepAttemptRow,
    StepRow,
    Store,
    detail_of,
    parse_child_end,
)
from hydra.tracecontext import encode_trace_context
from hydra.workflow import (
    Workflow,
    resolved_input_type,
    user_topic,
    validate_name,
)

if TYPE_CHECKING:
    from hydra.metrics import Metrics

#: ``Engine(max_payload_bytes=...)`` by default: the largest encoded input, step result,
#: output or cron payload stored, the same on every backend.
DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
#: The largest ``max_payload_bytes`` accepted: PostgreSQL's and MySQL's own 1 GiB ceiling.
MAX_PAYLOAD_BYTES_CEILING = 1024 * 1024 * 1024


class Engine:
    """The front door to a store: start workflows, read executions, wait, cancel.

    An engine does not run workflows; ``hydra.Worker`` does (in this process or others).
    Workers built on this engine are woken directly when it starts a workflow, and
    ``wait`` returns as soon as a local worker finishes the execution. ``observers``
    (``hydra.Observer``; more with ``add_observer``) are told what those workers do with
    each execution: see docs/observers.md.

    ``max_payload_bytes`` (default 8 MiB, at most 1 GiB) bounds every value stored: a
    workflow's input, a step's result, a workflow's output, a cron job's payload, each
    as encoded by the marshaller. A store may advertise a lower limit of its own
    (``store.max_value_bytes``: MySQL/MariaDB's follows ``max_allowed_packet``); the
    smaller one applies (``payload_limit``). A larger value raises ``PayloadError``
    before anything is written: at ``start_workflow``/``register_cron``; for a step's
    result, the step fails at once without retries (``StepFailedError`` in the
    workflow); for a workflow's output, the execution fails.
    """

    def __init__(
        self,
        store: Store,
        namespace: str = "default",
        clock: Clock | None = None,
        marshaller: Marshaller | None = None,
        logger: logging.Logger | None = None,
        metrics: Metrics | None = None,
        id_factory: Callable[[], str] | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        observers: Iterable[Observer] = (),
    ) -> None:
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int):
            raise TypeError(f"max_payload_bytes must be an int, got {max_payload_bytes!r}")
        if not 1 <= max_payload_bytes <= MAX_PAYLOAD_BYTES_CEILING:
            raise ValueError(
                f"max_payload_bytes must be between 1 and {MAX_PAYLOAD_BYTES_CEILING} "
                f"(1 GiB), got {max_payload_bytes!r}"
            )
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        payloads = _payload_limit(store, max_payload_bytes)
        #: the limit that applies: the smaller of max_payload_bytes and the store's own
        self.payload_limit = payloads.limit
        self.namespace = validate_name(namespace, "namespace")
        self.clock: Clock = clock if clock is not None else default_clock(store)
        self.marshaller: Marshaller = marshaller if marshaller is not None else JSONMarshaller()
        self.logger = HydraLogger(logger if logger is not None else logging.getLogger("hydra"))
        self.metrics: Metrics | None = None
        # Execution ids: random UUIDs; hydra.testing passes a seeded factory for
        # reproducible histories.
        self._new_id: Callable[[], str] = id_factory or (lambda: str(uuid.uuid4()))
        #: every observer of the runs of this engine's workers (``add_observer``)
        self.observers = Observers((), self.logger.logger)
        # The queues a start may name (``start_workflow(queue=...)``, a child's too).
        self._queues = QueueCheck(store, self.namespace)
        #: what a run uses (``hydra.runner.execute``): built once, shared by every worker
        self.runtime = Runtime(
            store=store,
            clock=self.clock,
            marshaller=self.marshaller,
            observers=self.observers,
            logger=self.logger,
            namespace=self.namespace,
            registry=RunRegistry(),
            payloads=payloads,
            queues=self._queues,
        )
        #: the cron jobs registered here; every worker of this engine schedules them
        self.cron = CronRegistry(self.runtime)
        # wait() on a store with notifications: one LISTEN for finished executions shared
        # by every wait, and how often a listening wait re-reads anyway (a notification
        # lost to a reconnect).
        self._watch = FinishedWatch(
            lambda: self.store.open_listener(self.namespace, channel="finished"),
            self.runtime.registry.notify_finished,
        )
        self._finished_poll_s = 1.0
        if metrics is not None:
            self.use_metrics(metrics)
        for observer in observers:
            self.add_observer(observer)

    def __repr__(self) -> str:
        return f"Engine({self.store!r}, namespace={self.namespace!r})"

    def check_payload_size(self, data: bytes, what: str) -> bytes:
        """``data`` if it is within ``payload_limit``, else ``PayloadError`` naming the
        size and the limit that applied (``what`` names the value)."""
        return self.runtime.payloads.check(data, what)

    # -- starting -------------------------------------------------------------------------
    def start_workflow(
        self,
        name: str | Workflow[Any],
        payload: Any = None,
        *,
        max_attempts: int = 3,
        retry_backoff: timedelta | float = timedelta(seconds=1),
        timeout: timedelta | float | None = None,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
        queue: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
    ) -> str:
        """Store a new execution and return its id; workers pick it up.

        ``max_attempts`` (an int from 1 to 2**31 - 1) bounds workflow attempts (a lease
        takeover after a crash uses one); retries wait ``retry_backoff * 2 ** (attempt - 1)``
        (at most a day). ``timeout`` bounds the whole execution from its first start.
        Durations are at most 100 years. With an ``idempotency_key`` already used in
        this namespace, the existing execution's id is returned and nothing is written.
        ``run_at`` delays the first start. ``queue`` names a registered queue
        (``register_queue``) whose limits apply (None: the unlimited ``"default"``);
        among due executions of a queue, higher ``priority`` runs first (FIFO within
        one); ``concurrency_key`` is what the queue's ``key_concurrency`` counts by.
        An unregistered queue raises ``ValueError``. The payload is encoded before anything is
        stored: an unencodable payload raises ``PayloadError`` and writes nothing. Given
        the workflow itself (not its name), the payload must also decode into the
        workflow's input type, as a worker will decode it (else ``PayloadError``, nothing
        written); by name it is stored unchecked, since the code may live elsewhere.
        Observers get ``execution_started`` for each new execution.
        """
        execution_id, _ = self.start_execution(
            name,
            payload,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            timeout=timeout,
            idempotency_key=idempotency_key,
            run_at=run_at,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
        )
        return execution_id

    def start_execution(
        self,
        name: str | Workflow[Any],
        payload: Any = None,
        *,
        max_attempts: int = 3,
        retry_backoff: timedelta | float = timedelta(seconds=1),
        timeout: timedelta | float | None = None,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
        trigger_type: str = "api",
        trigger_source: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
    ) -> tuple[str, bool]:
        """``start_workflow``, also naming what started it (``trigger_type`` such as
        ``"cron"``, ``trigger_source`` such as the cron job's name: ``hydra executions``
        shows them); returns ``(id, created)``: ``created`` is False when the
        ``idempotency_key`` named an existing execution."""
        workflow_name = name.name if isinstance(name, Workflow) else name
        validate_name(workflow_name, "workflow name")
        validate_max_attempts(max_attempts)
        backoff_ms = duration_ms(retry_backoff, "retry_backoff")
        timeout_ms = None if timeout is None else duration_ms(timeout, "timeout")
        if timeout_ms == 0:
            raise ValueError("timeout must be positive (or None for no timeout)")
        if idempotency_key is not None:
            validate_name(idempotency_key, "idempotency_key")
        if run_at is not None and not isinstance(run_at, datetime):
            raise TypeError(f"run_at must be a datetime, got {run_at!r}")
        queue, priority, concurrency_key = self._queues.check(queue, priority, concurrency_key)
        data = self.check_payload_size(
            self.marshaller.marshal(payload), f"the payload of {workflow_name!r}"
        )
        if isinstance(name, Workflow):
            self._check_input(name, payload, data)
        now = self.clock.now_ms()
        new = NewExecution(
            id=self._new_id(),
            namespace=self.namespace,
            workflow_name=workflow_name,
            input=data,
            max_attempts=max_attempts,
            retry_backoff_ms=backoff_ms,
            timeout_ms=timeout_ms,
            idempotency_key=idempotency_key,
            run_at_ms=max(now, to_ms(run_at)) if run_at is not None else now,
            created_at_ms=now,
            trigger_type=trigger_type,
            trigger_source=trigger_source,
            queue=queue,
            priority=priority,
            concurrency_key=concurrency_key,
            # The caller's trace context, for the runs to continue (hydra.otel).
            trace_context=encode_trace_context(self.observers.start_context(None)),
        )
        execution_id, created = self.store.create_execution(new)
        if created:
            self.logger.bind(execution_id=execution_id, workflow_name=workflow_name).debug(
                "started execution %s of %s", execution_id, workflow_name
            )
            self.observers.execution_started(execution_id, workflow_name)
            self.runtime.registry.wake_workers()
        return execution_id, created

    def _check_input(self, workflow: Workflow[Any], payload: Any, data: bytes) -> None:
        """Given the workflow itself, a start decodes the encoded payload into its input
        type as a worker will before ``run``, and refuses one the code cannot take
        (``PayloadError``) before anything is stored. A start by name stores the payload
        unchecked: the code that runs it may live in another process, at another version."""
        try:
            self.marshaller.unmarshal(data, resolved_input_type(workflow))
        except PayloadError as exc:
            given = repr(payload)
            if len(given) > 200:
                given = given[:199] + "\u2026"
            raise PayloadError(
                f"workflow {workflow.name!r} takes {type_name(resolved_input_type(workflow))}, "
                f"not {given}: {exc}; nothing was stored"
            ) from None

    # -- queues ---------------------------------------------------------------------------
    def register_queue(self, queue: Queue) -> None:
        """Store ``queue``'s limits for this namespace (replacing those registered
        before, by any process): every worker of the database enforces them from its
        next claim. Executions are started in it with ``start_workflow(..., queue=)``.
        Lowering ``concurrency`` or ``key_concurrency`` stops nothing running: no
        execution of the queue (or key) starts until those running above the new limit
        have finished."""
        if not isinstance(queue, Queue):
            raise TypeError(f"register_queue takes a hydra.Queue, got {queue!r}")
        self.store.upsert_queue(queue_row(queue, self.namespace), now_ms=self.clock.now_ms())
        self._queues.registered(queue.name)
        self.runtime.registry.wake_workers()

    def list_queues(self) -> list[Queue]:
        """The queues registered in this namespace, by name."""
        return [queue_of(row) for row in self.store.list_queues(self.namespace)]

    # -- cron -----------------------------------------------------------------------------
    def register_cron(
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
        """Run ``handler(ctx: hydra.CronContext)``, or start ``workflow`` with ``payload``,
        on every slot of the cron ``spec``.

        ``spec``: 5 fields (``"*/15 * * * *"``, ``"0 9 * * mon-fri"``) or a macro
        (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``), read as wall-clock
        time in ``timezone`` (an IANA name; default UTC). The job is stored in the database
        and every worker of this engine schedules it; each slot fires exactly once across
        all workers and processes. A handler runs at most once per slot (not again if its
        worker dies meanwhile); a workflow is started with the idempotency key
        ``cron:<name>:<slot ms>``. ``payload`` may be a callable taking the slot (an aware
        datetime) and returning the payload. ``catch_up`` decides what happens to slots
        missed while no worker ran: ``"latest"`` fires the most recent one, ``"all"``
        every one, ``"none"`` none. Registering a name again replaces the job here and
        updates the stored definition. Raises ``ValueError`` for an invalid spec, an
        unknown timezone, an empty name or an unknown ``catch_up``.
        """
        return self.cron.register(
            spec,
            name,
            handler,
            workflow=workflow,
            payload=payload,
            timezone=timezone,
            catch_up=catch_up,
        )

    def list_cron_jobs(self) -> list[CronJobRow]:
        """The cron jobs stored for this namespace (by any process), by name, each with
        its next slot (``next_run_at``): the one the scheduling worker stored, or, when
        none is stored or it has passed (no worker has run the job yet), the first slot
        after now computed from the spec and time zone (``cron.with_next_run``)."""
        now = self.clock.now_ms()
        return [with_next_run(row, now) for row in self.store.list_cron_jobs(self.namespace)]

    # -- observers and metrics ------------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        """Hand the events of every later run of this engine's workers to ``observer``
        too (a ``hydra.Observer``; see docs/observers.md). An observer that raises is
        logged and ignored: it never breaks a run."""
        if not isinstance(observer, Observer):
            raise TypeError(f"add_observer() takes a hydra.Observer, got {observer!r}")
        self.observers.add(observer)

    def use_metrics(self, metrics: Metrics) -> None:
        """Count into ``metrics`` from now on (its observer joins the engine's); what
        ``Engine(metrics=...)`` does. ``ValueError`` if it already counts elsewhere."""
        if self.metrics is metrics:
            return
        if self.metrics is not None:
            raise ValueError(f"{self!r} already counts into {self.metrics!r}")
        self.metrics = metrics
        self.observers.add(metrics.observer(self.namespace, self.clock))

    # -- reading --------------------------------------------------------------------------
    def get_execution(self, execution_id: str) -> Execution:
        """The execution with its steps (each with its attempts);
        ``ExecutionNotFoundError`` if unknown here."""
        return self._with_steps(self._row(execution_id))

    def _with_steps(self, row: ExecutionRow) -> Execution:
        """``row`` as an ``Execution`` with its steps and their attempts (two reads)."""
        steps = self.store.list_steps(row.id)
        attempts = self.store.list_step_attempts(row.id) if steps else []
        return self._to_execution(row, steps, attempts)

    def _row(self, execution_id: str) -> ExecutionRow:
        """The execution's row alone (one read, no steps): what ``wait`` polls."""
        row = self.store.get_execution(self.namespace, execution_id)
        if row is None:
            raise ExecutionNotFoundError(
                f"no execution {execution_id!r} in namespace {self.namespace!r}"
            )
        return row

    def list_executions(
        self,
        status: Status | str | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        *,
        parent_id: str | None = None,
        queue: str | None = None,
        created_after: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> list[Execution]:
        """Newest first, without their steps; with ``parent_id``, the children that
        execution started (``hydra.start_child``); ``queue``, ``created_after`` and
        ``idempotency_key`` narrow it further."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        rows = self.store.list_executions(
            self.namespace,
            status=Status(status) if status is not None else None,
            workflow_name=workflow_name,
            limit=limit,
            parent_id=parent_id,
            queue=queue,
            created_after_ms=None if created_after is None else to_ms(created_after),
            idempotency_key=idempotency_key,
        )
        return [self._to_execution(r, []) for r in rows]

    def wait(self, execution_id: str, timeout: timedelta | float | None = None) -> Execution:
        """Block until the execution is terminal and return it.

        Raises ``TimeoutError`` after ``timeout`` (real time) and ``ExecutionNotFoundError``
        for an unknown id. Returns as soon as a worker of this engine finishes it. On a
        store with notifications (PostgreSQL), executions finished or cancelled
        elsewhere wake it too (one LISTEN on the namespace's "finished" channel per engine,
        shared by its waits and closed 2 s after the last one); otherwise they are seen by
        polling (10 ms, growing to 500 ms).
        """
        limit = None if timeout is None else duration_ms(timeout, "timeout") / 1000
        deadline = None if limit is None else time.monotonic() + limit
        # Subscribed before the first read, so a finish between the two still wakes us.
        listening = self._watch.join()
        try:
            return self._wait(execution_id, limit, deadline, listening)
        finally:
            self._watch.leave()

    def _wait(
        self, execution_id: str, limit: float | None, deadline: float | None, listening: bool
    ) -> Execution:
        # Listening: any finish in the namespace (or a local worker's) wakes us and the
        # re-read tells if it was ours; a lost notification is caught by the re-read every
        # _finished_poll_s. Otherwise poll, 10 ms growing to 500 ms (a local worker's
        # finish still wakes us at once).
        pause = self._finished_poll_s if listening else 0.01
        while True:
            with self.runtime.registry.finished:
                row = self._row(execution_id)
                if row.status.terminal:
                    # The steps are read once, at the end (a terminal execution's are final).
                    return self._with_steps(row)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"execution {execution_id} is still {row.status.value} after {limit:g} s"
                    )
                self.runtime.registry.finished.wait(
                    pause if remaining is None else min(pause, remaining)
                )
            if not listening:
                pause = min(pause * 1.5, 0.5)

    # -- control --------------------------------------------------------------------------
    def cancel(self, execution_id: str) -> bool:
        """Cancel a non-terminal execution and its unfinished descendants (the children
        it started, theirs, and so on); a running worker stops at its next step.

        Returns True if the execution was cancelled now, False if it had already ended.
        An execution cancelled before has its unfinished descendants cancelled again (a
        cascade cut short by a crash is finished so); one that completed or failed
        leaves them as they are.
        """
        cancelled = self.store.cancel(self.namespace, execution_id, now_ms=self.clock.now_ms())
        if not cancelled:
            row = self._row(execution_id)  # raises ExecutionNotFoundError if unknown
            if row.status == Status.CANCELLED:
                # Cancelled before, perhaps by a cancel whose cascade was cut short (its
                # process died): walk the descendants again, cancelling what still runs.
                self._cancel_descendants(execution_id)
            return False
        self.runtime.registry.stop(execution_id)
        self._cancel_descendants(execution_id)
        self.runtime.registry.notify_finished()
        return True

    def _cancel_descendants(self, execution_id: str) -> None:
        """Cancel every unfinished descendant, breadth first. Children started after
        this read are none: their parent is cancelled (its writes are fenced out)."""
        pending = [execution_id]
        while pending:
            parent = pending.pop()
            for child in self.store.list_executions(
                self.namespace, parent_id=parent, limit=1_000_000
            ):
                if child.status.terminal:
                    continue
                if self.store.cancel(self.namespace, child.id, now_ms=self.clock.now_ms()):
                    self.runtime.registry.stop(child.id)
                pending.append(child.id)

    def retry(self, execution_id: str) -> None:
        """Re-run a ``failed`` or ``cancelled`` execution from its checkpoints; a parked
        one (``Execution.parked``) is made due at once, nothing else changed.

        Completed steps keep their results; steps that used up their attempts get a fresh
        budget, and receives that timed out wait again (a new deadline); the execution
        gets one more workflow attempt and its timeout restarts.
        Raises ``ValueError`` if the execution is not failed, cancelled or parked.
        """
        if self.store.retry_execution(self.namespace, execution_id, now_ms=self.clock.now_ms()):
            self.runtime.registry.wake_workers()
            return
        status = self.get_execution(execution_id).status  # ExecutionNotFoundError if unknown
        raise ValueError(
            f"execution {execution_id} is {status.value}: only failed, cancelled or parked "
            "executions can be retried"
        )

    # -- retention ------------------------------------------------------------------------
    def purge(
        self,
        *,
        older_than: timedelta | float,
        statuses: Iterable[Status | str] = ("completed", "failed", "cancelled"),
        workflow_name: str | None = None,
        batch_size: int = PURGE_BATCH,
        dry_run: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete this namespace's finished executions (``statuses``: completed, failed,
        cancelled) that ended before ``now - older_than``, each with everything stored for
        it (checkpoints, attempts, messages sent to it, events); returns how many were (or,
        with ``dry_run``, would be) deleted. Never an unfinished execution, nor one with
        an unfinished descendant. Runs in batches of ``batch_size``, each one transaction
        (an interrupted purge leaves no orphan) of at most ``batch_size`` rows, kept short
        in time and followed by a rest as long (``hydra.purging``), so that the workers'
        claims and checkpoints do not queue behind its writes. ``on_batch(total)`` is
        called after each batch with the count so far. A purged execution's idempotency
        key can be used again."""
        wanted = [Status(s) for s in statuses]
        unfinished = [s.value for s in wanted if not s.terminal]
        if unfinished:
            raise ValueError(f"purge deletes finished executions only, not {unfinished}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        cutoff = self.clock.now_ms() - duration_ms(older_than, "older_than")
        if dry_run:
            found = self.store.purge_executions(
                self.namespace,
                ended_before_ms=cutoff,
                statuses=wanted,
                workflow_name=workflow_name,
                limit=2**31 - 1,
                dry_run=True,
            )
            return len(found)
        total = 0
        pacer = PurgePacer(batch_size, one_writer=getattr(self.store, "one_writer", False))
        # What the database does about the deleted rows between batches (SQLite: a WAL
        # checkpoint), where the store has anything to do.
        settle: Callable[..., None] = getattr(self.store, "settle_purge", _no_settling)
        while True:
            began = time.monotonic()
            size = pacer.size
            deleted = self.store.purge_executions(
                self.namespace,
                ended_before_ms=cutoff,
                statuses=wanted,
                workflow_name=workflow_name,
                limit=size,
            )
            took = time.monotonic() - began
            total += len(deleted)
            if on_batch is not None:
                on_batch(total)
            if len(deleted) < size:
                settle(finished=True)
                return total
            # The batch alone sizes the next one; the rest follows the settle too.
            settled = time.monotonic()
            settle()
            time.sleep(pacer.after(took) + (time.monotonic() - settled) * PURGE_PACING)

    # -- messages and events -------------------------------------------------------------
    def send(
        self,
        execution_id: str,
        topic: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Send ``payload`` on ``topic`` to an execution: its ``hydra.receive(ctx, topic)``
        gets it (the oldest unread first). An execution waiting in that receive is woken
        at once. ``ExecutionNotFoundError`` if the id is unknown in this namespace,
        ``ExecutionFinishedError`` if the execution has ended; nothing is stored then.
        With an ``idempotency_key`` already used for a message to this execution,
        nothing is stored (a webhook delivered twice is received once). The payload is
        encoded (and checked against ``payload_limit``) before anything is stored.
        """
        user_topic(topic)
        if idempotency_key is not None:
            validate_name(idempotency_key, "idempotency_key")
        data = self.check_payload_size(
            self.marshaller.marshal(payload), f"the message on topic {topic!r}"
        )
        now = self.clock.now_ms()
        message = NewMessage(
            id=self._new_id(),
            namespace=self.namespace,
            execution_id=execution_id,
            topic=topic,
            payload=data,
            sent_at_ms=now,
            idempotency_key=idempotency_key,
        )
        _, created = self.store.send_message(message, now_ms=now)
        if created:
            self.observers.message_sent(execution_id, topic, None)
            self.runtime.registry.wake_workers()

    def get_events(self, execution_id: str) -> dict[str, Any]:
        """The events the execution has published (``hydra.set_event``), by key, each
        its latest value; ``ExecutionNotFoundError`` if unknown here."""
        self._row(execution_id)
        return {e.key: self._decode(e.value) for e in self.store.get_events(execution_id)}

    def get_event(self, execution_id: str, key: str, *, timeout: timedelta | float = 0.0) -> Any:
        """The latest value the execution published under ``key``, waiting up to
        ``timeout`` (a timedelta or seconds) for it to be set. ``WaitTimeoutError`` if it
        is not set by then, or at once if the execution has ended without setting it.

        Needs no worker here: on PostgreSQL it listens for the event, elsewhere it reads
        again every few tens of milliseconds (at once when a run of this process sets
        it)."""
        validate_name(key, "event key")
        timeout_s = duration_ms(timeout, "get_event timeout") / 1000
        deadline = time.monotonic() + timeout_s
        listener = None
        if timeout_s > 0 and self.store.supports_notify:
            # Listening before the first read: an event set in between is not missed.
            listener = self.store.open_listener(self.namespace, channel="events")
        try:
            pause = 0.01
            while True:
                # The status first: an execution that had ended before the events were
                # read will never set the key.
                ended = self._row(execution_id).status.terminal
                for event in self.store.get_events(execution_id):
                    if event.key == key:
                        return self._decode(event.value)
                left = deadline - time.monotonic()
                if ended or left <= 0:
                    why = "ended without setting it" if ended else f"not set within {timeout_s:g} s"
                    raise WaitTimeoutError(f"execution {execution_id}: event {key!r} {why}")
                if listener is not None:
                    listener.wait(min(left, 1.0))
                    continue
                with self.runtime.registry.finished:
                    self.runtime.registry.finished.wait(min(left, pause))
                pause = min(pause * 2, 0.25)
        finally:
            if listener is not None:
                listener.close()

    def list_messages(self, execution_id: str, *, sent: bool = False) -> list[Message]:
        """The messages sent to the execution, read or not, oldest first; with ``sent``,
        those it sent (``hydra.send``). ``ExecutionNotFoundError`` if unknown here."""
        self._row(execution_id)
        rows = (
            self.store.list_sent_messages(execution_id)
            if sent
            else self.store.list_messages(execution_id)
        )
        return [
            Message(
                id=m.id,
                execution_id=m.execution_id,
                topic=m.topic,
                payload=self._message_payload(m.topic, m.payload),
                sent_at=from_ms(m.sent_at) or datetime.fromtimestamp(0, UTC),
                sender_id=m.sender_id,
                idempotency_key=m.idempotency_key,
                received_by=m.consumed_by,
                received_at=from_ms(m.consumed_at),
            )
            for m in rows
        ]

    # -- conversion -----------------------------------------------------------------------
    def _message_payload(self, topic: str, payload: bytes) -> Any:
        """A message's payload as the user reads it; a child's end (on its reserved
        topic) as ``{"status", "output", "error"}``."""
        if not topic.startswith(RESERVED_TOPIC_PREFIX):
            return self._decode(payload)
        status, output, error_type, error_message = parse_child_end(payload)
        error = f"{error_type}: {error_message}" if error_type else None
        return {"status": status.value, "output": self._decode(output), "error": error}

    def _decode(self, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return self.marshaller.unmarshal(data, Any)
        except Exception:
            return data  # not decodable by this marshaller: show the raw bytes

    def _to_execution(
        self,
        row: ExecutionRow,
        steps: list[StepRow],
        attempts: list[StepAttemptRow] | None = None,
    ) -> Execution:
        error = f"{row.error_type}: {row.error_message}" if row.error_type else None
        created = from_ms(row.created_at)
        assert created is not None
        history = _attempts_by_step(attempts or [])
        return Execution(
            id=row.id,
            workflow_name=row.workflow_name,
            namespace=row.namespace,
            status=row.status,
            input=self._decode(row.input),
            output=self._decode(row.output),
            error=error,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            created_at=created,
            started_at=from_ms(row.started_at),
            completed_at=from_ms(row.completed_at),
            sleep_until=from_ms(row.sleep_until),
            next_retry_at=from_ms(row.next_retry_at),
            timeout_at=from_ms(row.timeout_at),
            idempotency_key=row.idempotency_key,
            worker_id=row.lease_owner,
            error_type=row.error_type,
            error_message=row.error_message,
            steps=self._to_steps(row, steps, history),
            run_at=from_ms(row.run_at),
            trigger_type=row.trigger_type,
            trigger_source=row.trigger_source,
            wait_topic=row.wait_topic if row.status == Status.SLEEPING else None,
            parent_id=row.parent_id,
            queue=row.queue,
            priority=row.priority,
            concurrency_key=row.concurrency_key,
            parks=row.parks,
        )

    def _to_steps(
        self,
        execution: ExecutionRow,
        rows: list[StepRow],
        history: dict[str, list[StepAttempt]],
    ) -> list[StepRecord]:
        """The step records, each status read in the light of the execution (see
        ``read_step_status``): nothing derived is stored, so old rows read the same."""
        if not rows:
            return []
        now_ms = self.clock.now_ms()
        last_order = max(r.order for r in rows)
        return [
            self._to_step(r, execution, r.order < last_order, now_ms, history.get(r.name, []))
            for r in rows
        ]

    def _to_step(
        self,
        row: StepRow,
        execution: ExecutionRow,
        moved_past: bool,
        now_ms: int,
        history: list[StepAttempt],
    ) -> StepRecord:
        sleep = row.status == StepStatus.SLEEPING
        if sleep and row.output:
            output = json.loads(row.output)
        elif row.kind == "child_wait" and row.output:
            output = self._decode(parse_child_end(row.output)[1])  # the child's output
        else:
            output = self._decode(row.output)
        status = read_step_status(
            row.status,
            execution.status,
            moved_past=moved_past,
            wake_ms=output if sleep and isinstance(output, int) else None,
            ended_ms=execution.completed_at,
            now_ms=now_ms,
        )
        detail = _detail_of(row)
        at = detail.pop("at", None)
        return StepRecord(
            name=row.name,
            status=status,
            attempts=row.attempts,
            output=output,
            error=f"{row.error_type}: {row.error_message}" if row.error_type else None,
            started_at=from_ms(row.started_at),
            completed_at=from_ms(row.completed_at),
            order=row.order,
            error_type=row.error_type,
            error_message=row.error_message,
            kind=_kind_of(row),
            attempt_history=history,
            detail=detail,
            at=at,
        )


Kind = Literal["step", "sleep", "receive", "send", "event", "child", "child_wait"]
_KINDS: dict[str, Kind] = {
    "step": "step",
    "sleep": "sleep",
    "receive": "receive",
    "send": "send",
    "event": "event",
    "child": "child",
    "child_wait": "child_wait",
}


def _kind_of(row: StepRow) -> Kind:
    # A sleep stored before schema revision 0004 has no kind of its own: its status says.
    if row.status == StepStatus.SLEEPING:
        return "sleep"
    return _KINDS.get(row.kind, "step")


def _detail_of(row: StepRow) -> dict[str, Any]:
    """The checkpoint's detail as the user reads it: a receive's deadline as a datetime."""
    found = detail_of(row.detail)
    if isinstance(found.get("deadline"), int):
        found["deadline"] = from_ms(found["deadline"])
    return found


def _attempts_by_step(rows: list[StepAttemptRow]) -> dict[str, list[StepAttempt]]:
    """Each step's attempts, in the order the store lists them (the order they ran)."""
    history: dict[str, list[StepAttempt]] = {}
    for r in rows:
        history.setdefault(r.step_name, []).append(
            StepAttempt(
                number=r.attempt,
                status=r.status,
                started_at=from_ms(r.started_at),
                completed_at=from_ms(r.completed_at),
                error_type=r.error_type,
                error_message=r.error_message,
            )
        )
    return history


def _payload_limit(store: Store, max_payload_bytes: int) -> PayloadLimit:
    """The smaller of ``max_payload_bytes`` and the store's own limit, and its source."""
    # A store written before max_value_bytes existed simply has no limit of its own.
    store_limit: int | None = getattr(store, "max_value_bytes", None)
    if store_limit is not None and store_limit < max_payload_bytes:
        return PayloadLimit(
            store_limit,
            f"the store's max_value_bytes ({store!r}; on MySQL/MariaDB it follows the "
            "server's max_allowed_packet)",
        )
    return PayloadLimit(max_payload_bytes, "Engine(max_payload_bytes=...)")


def _no_settling(*, finished: bool = False) -> None:
    """``Engine.purge``'s settle for a store with nothing to do between batches."""
