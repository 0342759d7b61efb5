"""What users read back: ``Execution``, ``StepRecord`` and ``StepAttempt``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from hydra.status import Status, StepStatus


@dataclass(frozen=True)
class StepAttempt:
    """One attempt of a step that reached a result (``completed``) or an error
    (``failed``, with the exception's type and message).

    ``number`` is the step's attempt number (1-based). A retried execution
    (``Engine.retry``) gives a failed step a fresh budget, so its numbers start at 1 again
    after the earlier round's.
    """

    number: int
    status: StepStatus
    started_at: datetime | None
    completed_at: datetime | None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def error(self) -> str | None:
        """``"Type: message"`` of a failed attempt, None for a completed one."""
        return f"{self.error_type}: {self.error_message}" if self.error_type else None

    @property
    def duration(self) -> timedelta | None:
        """How long the attempt ran (``completed_at - started_at``)."""
        if self.started_at is None or self.completed_at is None:
            return None
        return self.completed_at - self.started_at


@dataclass(frozen=True)
class StepRecord:
    """A step's (or a durable sleep's) checkpoint.

    ``output`` is the stored result decoded as plain JSON (for a sleep: the wake time in
    Unix milliseconds). ``attempts`` counts the attempts that reached a result or an error;
    an attempt in flight when its worker died leaves no trace. ``error``, ``started_at``
    and ``completed_at`` are the latest attempt's. ``kind`` is ``"sleep"`` for a durable
    sleep, ``"receive"``, ``"send"`` or ``"event"`` for those checkpoints, ``"step"``
    otherwise; ``detail`` says what such a checkpoint waited for or did: a receive's
    ``topic`` and ``deadline`` (a datetime, or None) and, once received, the
    ``message`` id; a send's ``to`` (the execution) , ``topic`` and ``message``; an
    event's ``key``; a ``hydra.start_child`` (``"child"``)'s ``child`` (its execution id)
    and ``workflow``; a ``hydra.wait_child`` (``"child_wait"``, named ``wait-<start
    name>``)'s ``child``, ``topic`` and ``deadline``. A receive's ``output`` is the message
    it took, an event's the value, a child wait's the child's end.

    ``status`` is read in the light of the execution (see ``StepStatus``): a sleep reads
    ``sleeping`` while the execution waits on it, ``slept`` once it has moved past it,
    ``cancelled`` or ``interrupted`` when the execution ended before its wake time; a step
    waiting for its next attempt reads ``cancelled`` or ``interrupted`` once the execution
    ended, as no attempt is coming.

    ``attempt_history`` lists every attempt that reached a result or an error, in the
    order they ran (filled by ``Engine.get_execution``); its last entry is the attempt
    the other fields describe. It is empty for a sleep, and for a step checkpointed by a
    hydra older than schema revision 0003, whose earlier attempts were not kept (its
    ``attempts``, ``error`` and times still describe the latest one).
    """

    name: str
    status: StepStatus
    attempts: int
    output: Any
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    order: int = 0
    error_type: str | None = None
    error_message: str | None = None
    kind: Literal["step", "sleep", "receive", "send", "event", "child", "child_wait"] = "step"
    attempt_history: list[StepAttempt] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    #: where in the workflow's code the checkpoint is (``file:line`` of the call, as it
    #: was when the checkpoint was written), or None for one written before hydra kept it
    at: str | None = None


@dataclass(frozen=True)
class Execution:
    """One execution of a workflow, as stored.

    ``input`` and ``output`` are decoded as plain JSON values (dicts, lists, scalars).
    ``error`` is ``"Type: message"`` of the last failure (kept while a retry is pending).
    ``attempt`` is the 1-based current (or next) attempt, 0 before the first start.
    ``steps`` is filled by ``Engine.get_execution``; ``list_executions`` leaves it empty.
    ``run_at`` is when it was (or is) first due (``start_workflow(run_at=...)``, else its
    creation); ``trigger_type`` says what started it (``"api"``, ``"cron"``) and
    ``trigger_source`` which one (the cron job's name). ``wait_topic``: the topic of the
    message a ``sleeping`` execution waits for (``hydra.receive``), ``sleep_until`` then
    its deadline (None: none).

    ``parks`` counts the times a run found the workflow's code no longer matching this
    execution's history (``NonDeterminismError``) and parked it; it is never reset. An
    execution is parked now while it is ``pending`` with ``parks > 0`` and ``error_type``
    ``"NonDeterminismError"`` (``parked``): ``run_at`` is then its next try (``Engine.retry``
    makes it due at once), and ``error`` says where the code and the history part.
    """

    id: str
    workflow_name: str
    namespace: str
    status: Status
    input: Any
    output: Any
    error: str | None
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    sleep_until: datetime | None
    next_retry_at: datetime | None = None
    timeout_at: datetime | None = None
    idempotency_key: str | None = None
    worker_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    run_at: datetime | None = None
    trigger_type: str | None = None
    trigger_source: str | None = None
    #: the topic of the ``hydra.receive`` a ``sleeping`` execution waits in, else None
    wait_topic: str | None = None
    #: the execution that started this one (``hydra.start_child``), else None
    parent_id: str | None = None
    #: how many times the execution was parked (its code no longer matched its history)
    parks: int = 0
    #: the queue it was started in (``"default"`` without ``queue=``), its priority there
    #: and its concurrency key (``hydra.Queue``)
    queue: str = "default"
    priority: int = 0
    concurrency_key: str | None = None

    @property
    def parked(self) -> bool:
        """Parked now: ``pending`` after a ``NonDeterminismError``, waiting for its next
        try (or for a deploy that matches its history)."""
        return (
            self.status == Status.PENDING
            and self.parks > 0
            and self.error_type == "NonDeterminismError"
        )

    @property
    def terminal(self) -> bool:
        """``completed``, ``failed`` or ``cancelled``."""
        return self.status.terminal

    def step(self, name: str) -> StepRecord | None:
        """The step record with that name, if any."""
        return next((s for s in self.steps if s.name == name), None)


@dataclass(frozen=True)
class Message:
    """A message sent to an execution (``Engine.send``, ``hydra.send``), as stored.

    ``payload`` is decoded as plain JSON; a child's end (sent to its parent on the
    reserved topic ``hydra.child:<child id>``) reads ``{"status", "output", "error"}``.
    ``sender_id`` is the sending execution (None
    from outside, ``Engine.send``). ``received_by`` names the ``hydra.receive``
    checkpoint that took it and ``received_at`` when; both None while it waits unread.
    """

    id: str
    execution_id: str
    topic: str
    payload: Any
    sent_at: datetime
    sender_id: str | None = None
    idempotency_key: str | None = None
    received_by: str | None = None
    received_at: datetime | None = None

    @property
    def received(self) -> bool:
        return self.received_by is not None
