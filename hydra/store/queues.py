"""Queues in the store: the records of ``QueueStore`` and the claim lanes.

``hydra.queues`` says what the limits mean and how they hold; this module is what every
store shares to keep them: the rows, the lane an execution is in, and the one definition
of which claimable execution needs what (``needs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hydra.status import Status

#: the queue of executions started without ``queue=``: never limited
DEFAULT_QUEUE = "default"
#: the claim lane of running executions: a claim of one is a takeover, which keeps the
#: slots the execution holds, so it never waits for one
RUNNING_LANE = "r"
#: priorities are written into lanes as PRIORITY_BASE - priority: 11 digits for every
#: 32-bit priority, so that lanes of one kind and queue sort highest priority first
PRIORITY_BASE = 12_147_483_648


def waiting_lane(queue: str, priority: int, *, started: bool) -> str:
    """The claim lane of a pending or sleeping execution: ``f`` (a first start, which a
    rate limit counts) or ``w`` (a resume or retry, which it does not), the priority,
    the queue. First starts held back by a rate limit never hold up resumes."""
    return f"{'w' if started else 'f'}{PRIORITY_BASE - priority}:{queue}"


def claim_lane(
    status: Status, queue: str, priority: int, *, started: bool, held: bool = False
) -> str | None:
    """The lane an execution in ``status`` is in (``workflow_executions.claim_lane``)."""
    if status.terminal:
        return None
    if status == Status.RUNNING:
        return RUNNING_LANE
    lane = waiting_lane(queue, priority, started=started)
    return held_lane(lane) if held else lane


def held_lane(lane: str) -> str:
    """The lane of an execution its concurrency key holds back (``h``): never claimed;
    a slot of its key freeing moves the first one back (``is_held``)."""
    return "h" + lane[1:]


def is_held(lane: str) -> bool:
    return lane.startswith("h")


def lane_is_unlimited(lane: str) -> bool:
    """A lane whose claims never take a slot or a rate row: the running lane, and the
    lanes of the default queue."""
    return lane == RUNNING_LANE or lane.endswith(":" + DEFAULT_QUEUE)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One row of ``workflow_queues``: a registered queue's limits (None: no limit)."""

    namespace: str
    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    key_concurrency: int | None = None
    rate_limit: int | None = None
    rate_per_ms: int | None = None
    created_at: int = 0
    updated_at: int = 0

    @property
    def limited(self) -> bool:
        """A claim of one of its executions takes a slot or a rate row."""
        return (
            self.concurrency is not None
            or self.key_concurrency is not None
            or self.rate_limit is not None
            or self.worker_concurrency is not None
        )


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One row of ``workflow_queue_slots``: a slot a running execution holds. ``scope``
    is ``"q"`` (the queue's ``concurrency``; ``key`` is "") or ``"k"`` (``key``'s)."""

    namespace: str
    queue: str
    scope: str
    key: str
    number: int
    execution_id: str
    taken_at: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue as ``hydra queues list`` shows it: ``backlog`` executions due and waiting
    for a worker (the oldest due since ``oldest_due_at``), ``scheduled`` pending or
    sleeping until later, ``running`` now; ``config`` None for a queue never registered
    (``default``, or one whose registration is gone)."""

    name: str
    config: QueueRow | None
    backlog: int
    oldest_due_at: int | None
    scheduled: int
    running: int
    slots_held: int


@dataclass(slots=True)
class QueueBudget:
    """What one claim may still take from one queue (``SQLStore``/``MemoryStore`` claim):
    ``worker`` runs left under ``worker_concurrency`` (None: no bound), and whether the
    queue's concurrency or rate was found exhausted during this claim."""

    worker: int | None
    full: bool = False
    rate_spent: bool = False
    #: concurrency keys found with every slot held (their executions were held back)
    full_keys: set[str] = field(default_factory=set)


def budgets(configs: dict[str, QueueRow], held: dict[str, int] | None) -> dict[str, QueueBudget]:
    """A claim's starting budget per registered queue, from the worker's runs in flight."""
    held = held or {}
    return {
        name: QueueBudget(
            None
            if row.worker_concurrency is None
            else max(row.worker_concurrency - held.get(name, 0), 0)
        )
        for name, row in configs.items()
    }


class QueueStore(Protocol):
    """Registered queues, and what the claim reads and writes to keep their limits
    (every store's ``claim`` applies them: see ``hydra.queues``)."""

    def upsert_queue(self, row: QueueRow, *, now_ms: int) -> QueueRow:
        """Store a queue's limits (replacing any registered before; ``created_at`` of
        the first registration kept) and return them as stored. A changed ``rate_limit``
        keeps the recent first starts it can (the newest ones)."""
        ...

    def get_queue(self, namespace: str, name: str) -> QueueRow | None: ...

    def list_queues(self, namespace: str) -> list[QueueRow]:
        """The registered queues of a namespace, by name."""
        ...

    def queue_stats(self, namespace: str, *, now_ms: int) -> list[QueueStats]:
        """Every queue with a registration or an unfinished execution, by name."""
        ...

    def list_slots(self, namespace: str, queue: str | None = None) -> list[SlotRow]:
        """The slots held now, by queue, scope, key and number."""
        ...

    def next_rate_at(self, namespace: str, *, now_ms: int) -> int | None:
        """The earliest time after ``now_ms`` at which a rate-limited queue of the
        namespace whose every row was used within its window gets one back: when a
        first start that waits for its turn may go (None if no queue is exhausted)."""
        ...


class QueueChecker(Protocol):
    """What a start checks its queue arguments with (``hydra.queues.QueueCheck``)."""

    def check(
        self, queue: str | None, priority: int, concurrency_key: str | None
    ) -> tuple[str, int, str | None]: ...


def order_key(
    priority: int, wake_at: int | None, created_at: int, id_: str
) -> tuple[int, int, int, str]:
    """Claim order across lanes: higher priority first, then the wake time, creation
    and id (FIFO within a priority)."""
    return (-priority, wake_at or 0, created_at, id_)


def free_numbers(limit: int, taken: Sequence[int], start: int) -> list[int]:
    """The slot numbers below ``limit`` not in ``taken``, from ``start`` round: claimers
    start at different numbers so that concurrent ones seldom try the same."""
    used = set(taken)
    return [n for n in ((start + i) % limit for i in range(limit)) if n not in used]
