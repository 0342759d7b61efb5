"""Queues: flow control for executions (``hydra.Queue``, ``hydra.RateLimit``).

A queue is a name an execution is started in (``start_workflow(..., queue=...)``) and
the limits every worker applies when it claims executions of it. The configuration is
stored (``Store.upsert_queue``), so every worker of the database enforces the same
limits, whoever registered the queue last. Executions started without ``queue=`` are in
``"default"``, which has no limits and cannot be registered.

How the limits hold (the store does it, inside the claim's transaction):

- ``concurrency`` and ``key_concurrency``: a running execution holds a *slot*, a row of
  ``workflow_queue_slots`` whose primary key is (queue, scope, key, slot number) with
  the number below the limit. A claimer takes a slot by inserting its row: a uniqueness
  constraint sees rows other transactions inserted and have not committed yet (the insert
  waits for them, then finds the key taken), where a count of running executions would
  not, so no number of concurrent claimers can hold more slots than there are numbers.
  The slot belongs to the execution: a lease takeover keeps it, and every move out of
  ``running`` (sleep, wait, retry, release, finish, cancel) deletes it in the same
  transaction. A claim that finds every slot of a concurrency key held sets that key's
  due executions aside (claim lane ``h``), so that other keys' executions behind them
  are claimed; each slot of the key that frees brings the first of them back.
- ``rate_limit``: ``limit`` rows per queue in ``workflow_queue_rate``, each the time of
  one first start. A first start takes the row used longest ago if that was at least
  ``per`` ago, and writes its own time there: one indexed read and one write per start
  (no count over a window), and never more than ``limit`` first starts in any window of
  length ``per``. Resumes after a sleep or a retry are not first starts and are free,
  and they are claimed from a lane of their own (``w``, first starts ``f``): they never
  wait behind first starts the limit holds back.
- ``worker_concurrency``: each worker counts its own runs of the queue in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from hydra.store.base import Store
from hydra.store.queues import DEFAULT_QUEUE, QueueRow, QueueStore
from hydra.workflow import validate_name

__all__ = ["DEFAULT_QUEUE", "Queue", "QueueCheck", "RateLimit", "queue_of", "queue_row"]
#: queue names are shorter than other names: the claim index holds them (``claim_lane``)
MAX_QUEUE_NAME = 100
#: the largest ``RateLimit.limit``: the store keeps one row per start in a window
MAX_RATE_LIMIT = 100_000
#: the largest ``concurrency`` / ``key_concurrency`` / ``worker_concurrency``
MAX_CONCURRENCY = 100_000
#: priorities are stored as 32-bit integers
MAX_PRIORITY = 2**31 - 1


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` first starts of a queue's executions in any window of ``per``."""

    limit: int
    per: timedelta = timedelta(seconds=1)

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise TypeError(f"RateLimit limit must be an int, got {self.limit!r}")
        if not 1 <= self.limit <= MAX_RATE_LIMIT:
            raise ValueError(
                f"RateLimit limit must be from 1 to {MAX_RATE_LIMIT}, got {self.limit}"
            )
        if not isinstance(self.per, timedelta):
            raise TypeError(f"RateLimit per must be a timedelta, got {self.per!r}")
        if self.per < timedelta(milliseconds=1) or self.per > timedelta(days=366):
            raise ValueError(f"RateLimit per must be from 1 ms to 366 days, got {self.per}")

    @property
    def per_ms(self) -> int:
        """The window in milliseconds."""
        return int(self.per / timedelta(milliseconds=1))

    def __str__(self) -> str:
        return f"{self.limit}/{_short(self.per)}"


@dataclass(frozen=True)
class Queue:
    """A queue's limits (every one optional; None means no limit).

    ``concurrency``: executions of the queue running at once, across every worker and
    process. ``worker_concurrency``: running at once in one worker. ``key_concurrency``:
    running at once per ``concurrency_key`` (executions started without a key are not
    limited by it). ``rate_limit``: first starts per period. Executions that sleep or
    wait for a message hold no slot while they do.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: RateLimit | None = None
    key_concurrency: int | None = None

    def __post_init__(self) -> None:
        validate_queue_name(self.name)
        if self.name == DEFAULT_QUEUE:
            raise ValueError(
                f"queue {DEFAULT_QUEUE!r} is the unlimited queue of executions started "
                "without queue=; register a queue of another name to limit executions"
            )
        for field in ("concurrency", "worker_concurrency", "key_concurrency"):
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Queue {field} must be an int or None, got {value!r}")
            if not 1 <= value <= MAX_CONCURRENCY:
                raise ValueError(
                    f"Queue {field} must be from 1 to {MAX_CONCURRENCY} (or None), got {value}"
                )
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise TypeError(f"Queue rate_limit must be a hydra.RateLimit, got {self.rate_limit!r}")

    @property
    def limited(self) -> bool:
        """Whether any limit applies."""
        return any(
            v is not None
            for v in (
                self.concurrency,
                self.worker_concurrency,
                self.rate_limit,
                self.key_concurrency,
            )
        )

    def describe(self) -> str:
        """The limits in a few words (``hydra queues list``)."""
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.worker_concurrency is not None:
            parts.append(f"per worker {self.worker_concurrency}")
        if self.key_concurrency is not None:
            parts.append(f"per key {self.key_concurrency}")
        if self.rate_limit is not None:
            parts.append(f"rate {self.rate_limit}")
        return ", ".join(parts) or "no limits"


def validate_queue_name(name: object) -> str:
    """A queue name: a stored name (``validate_name``) of at most 100 characters."""
    validate_name(name, "queue name")
    assert isinstance(name, str)
    if len(name) > MAX_QUEUE_NAME:
        raise ValueError(f"queue name must be at most {MAX_QUEUE_NAME} characters, got {len(name)}")
    return name


def validate_priority(priority: object) -> int:
    """A priority: an int that fits in 32 bits (higher runs first)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, got {priority!r}")
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be from {-MAX_PRIORITY} to {MAX_PRIORITY}, got {priority}")
    return priority


def held_back_until(
    store: Store, namespace: str, workflow_names: Sequence[str], *, now_ms: int
) -> int | None:
    """With due executions that no claim takes (a queue's limits hold them back), the
    next time that may change: a rate window reopening, or something waking later than
    ``now_ms``; None if nothing will (a slot frees only when a run ends)."""
    later = [
        store.next_rate_at(namespace, now_ms=now_ms),
        store.next_wake_at(namespace, workflow_names, after_ms=now_ms),
    ]
    known = [t for t in later if t is not None and t > now_ms]
    return min(known) if known else None


def _short(per: timedelta) -> str:
    seconds = per.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count}{unit}"
    return f"{int(per / timedelta(milliseconds=1))}ms"


def queue_row(queue: Queue, namespace: str) -> QueueRow:
    """What ``Engine.register_queue`` stores for ``queue``."""
    rate = queue.rate_limit
    return QueueRow(
        namespace=namespace,
        name=queue.name,
        concurrency=queue.concurrency,
        worker_concurrency=queue.worker_concurrency,
        key_concurrency=queue.key_concurrency,
        rate_limit=None if rate is None else rate.limit,
        rate_per_ms=None if rate is None else rate.per_ms,
    )


def queue_of(row: QueueRow) -> Queue:
    """The ``hydra.Queue`` a stored row describes."""
    rate = None
    if row.rate_limit is not None and row.rate_per_ms is not None:
        rate = RateLimit(row.rate_limit, timedelta(milliseconds=row.rate_per_ms))
    return Queue(
        row.name,
        concurrency=row.concurrency,
        worker_concurrency=row.worker_concurrency,
        rate_limit=rate,
        key_concurrency=row.key_concurrency,
    )


class QueueCheck:
    """Which queues a start may name: ``"default"``, or one registered in the namespace
    (by any process). A queue seen registered once is remembered: registrations are
    never removed."""

    def __init__(self, store: QueueStore, namespace: str) -> None:
        self._store = store
        self._namespace = namespace
        self._known: set[str] = set()

    def registered(self, name: str) -> None:
        self._known.add(name)

    def check(
        self, queue: str | None, priority: int, concurrency_key: str | None
    ) -> tuple[str, int, str | None]:
        """``start_workflow``'s queue arguments, checked; raises before anything is stored."""
        validate_priority(priority)
        if concurrency_key is not None:
            validate_name(concurrency_key, "concurrency_key")
        if queue is None or queue == DEFAULT_QUEUE:
            return DEFAULT_QUEUE, priority, concurrency_key
        validate_queue_name(queue)
        if queue not in self._known:
            if self._store.get_queue(self._namespace, queue) is None:
                raise ValueError(
                    f"queue {queue!r} is not registered in namespace {self._namespace!r}: "
                    f"register it first (engine.register_queue(hydra.Queue({queue!r}, ...))), "
                    "or start without queue= for the unlimited queue 'default'; nothing was "
                    "stored"
                )
            self._known.add(queue)
        return queue, priority, concurrency_key
