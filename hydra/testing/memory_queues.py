"""``MemoryStore``'s queues: registered limits, slots and rate rows, and the admission
of claimable executions under them (the same rules as ``SQLStore``; ``hydra.queues``)."""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hydra.status import Status
from hydra.store.admission import Admission
from hydra.store.base import ExecutionRow
from hydra.store.queues import (
    QueueRow,
    QueueStats,
    SlotRow,
    claim_lane,
    free_numbers,
)

#: the time of a rate row never used (before any time a clock gives)
NEVER = -(2**62)
SlotId = tuple[str, str, str, str, int]  # namespace, queue, scope, key, number


class MemoryQueues:
    """The queue half of ``MemoryStore`` (a mixin: the store's lock guards every call)."""

    _executions: dict[str, ExecutionRow]
    _lock: threading.RLock

    def _init_queues(self) -> None:
        # (namespace, name) -> registered limits
        self._queues: dict[tuple[str, str], QueueRow] = {}
        # slot -> holder; execution id -> its slots
        self._slots: dict[SlotId, SlotRow] = {}
        self._slots_of: dict[str, list[SlotId]] = {}
        # (namespace, queue) -> a min-heap of the time of each rate row's last first start
        # (NEVER for a row not used yet): the row used longest ago is the first
        self._rate: dict[tuple[str, str], list[int]] = {}
        # ids of executions their full concurrency key holds back (lane 'h...')
        self._held: set[str] = set()

    def _lane_of(self, row: ExecutionRow) -> str | None:
        """The row's claim lane (``hydra.store.queues.claim_lane``)."""
        return claim_lane(
            row.status,
            row.queue,
            row.priority,
            started=row.started_at is not None,
            held=row.id in self._held,
        )

    def _index(self, row: ExecutionRow) -> None:  # MemoryStore's
        raise NotImplementedError

    # -- QueueStore -------------------------------------------------------------------
    def upsert_queue(self, row: QueueRow, *, now_ms: int) -> QueueRow:
        with self._lock:
            old = self._queues.get((row.namespace, row.name))
            stored = replace(row, created_at=old.created_at if old else now_ms, updated_at=now_ms)
            self._queues[(row.namespace, row.name)] = stored
            key = (row.namespace, row.name)
            if old is None or (old.concurrency, old.key_concurrency) != (
                row.concurrency,
                row.key_concurrency,
            ):
                # New limits: whatever a full key held back is looked at again.
                for held_id in list(self._held):
                    held_row = self._executions.get(held_id)
                    if held_row is not None and (held_row.namespace, held_row.queue) == key:
                        self._held.discard(held_id)
                        self._index(held_row)
            if row.rate_limit is None:
                self._rate.pop(key, None)
            else:
                # Keep the newest first starts that fit: the window stays exact.
                used = sorted(self._rate.get(key, []), reverse=True)[: row.rate_limit]
                used += [NEVER] * (row.rate_limit - len(used))
                heapq.heapify(used)
                self._rate[key] = used
            return stored

    def get_queue(self, namespace: str, name: str) -> QueueRow | None:
        with self._lock:
            return self._queues.get((namespace, name))

    def list_queues(self, namespace: str) -> list[QueueRow]:
        with self._lock:
            return sorted(
                (q for (ns, _), q in self._queues.items() if ns == namespace),
                key=lambda q: q.name,
            )

    def queue_stats(self, namespace: str, *, now_ms: int) -> list[QueueStats]:
        with self._lock:
            names = {q.name for q in self.list_queues(namespace)}
            counts: dict[str, list[int | None]] = {}
            for row in self._executions.values():
                if row.namespace != namespace or row.status.terminal:
                    continue
                names.add(row.queue)
                c = counts.setdefault(row.queue, [0, None, 0, 0])
                if row.status == Status.RUNNING:
                    c[3] = (c[3] or 0) + 1
                elif row.wake_at is not None and row.wake_at <= now_ms:
                    c[0] = (c[0] or 0) + 1
                    c[1] = row.wake_at if c[1] is None else min(c[1], row.wake_at)
                else:
                    c[2] = (c[2] or 0) + 1
            held: dict[str, int] = {}
            for slot in self._slots.values():
                if slot.namespace == namespace and slot.scope == "q":
                    held[slot.queue] = held.get(slot.queue, 0) + 1
            stats = []
            for name in sorted(names):
                backlog, oldest, scheduled, running = counts.get(name, [0, None, 0, 0])
                stats.append(
                    QueueStats(
                        name=name,
                        config=self._queues.get((namespace, name)),
                        backlog=backlog or 0,
                        oldest_due_at=oldest,
                        scheduled=scheduled or 0,
                        running=running or 0,
                        slots_held=held.get(name, 0),
                    )
                )
            return stats

    def list_slots(self, namespace: str, queue: str | None = None) -> list[SlotRow]:
        with self._lock:
            return sorted(
                (
                    s
                    for s in self._slots.values()
                    if s.namespace == namespace and (queue is None or s.queue == queue)
                ),
                key=lambda s: (s.queue, s.scope, s.key, s.number),
            )

    def next_rate_at(self, namespace: str, *, now_ms: int) -> int | None:
        with self._lock:
            found: int | None = None
            for (ns, name), used in self._rate.items():
                queue = self._queues.get((ns, name))
                if ns != namespace or queue is None or queue.rate_per_ms is None:
                    continue
                if not used or used[0] == NEVER:
                    continue  # a row never used: not exhausted
                free_at = used[0] + queue.rate_per_ms
                if free_at > now_ms and (found is None or free_at < found):
                    found = free_at
            return found

    # -- the claim's admission --------------------------------------------------------
    def _admit(
        self,
        namespace: str,
        worker_id: str,
        candidates: Sequence[ExecutionRow],
        *,
        limit: int,
        held: Mapping[str, int] | None,
        now_ms: int,
    ) -> list[ExecutionRow]:
        """The candidates (in claim order) this claim takes (``Admission.admit``)."""
        configs = {name: q for (ns, name), q in self._queues.items() if ns == namespace}
        admission = _MemoryAdmission(self, worker_id, now_ms)
        return admission.admit(candidates, configs, limit=limit, held=held)[0]

    def _take_slot(
        self, row: ExecutionRow, scope: str, key: str, limit: int, start: int, now_ms: int
    ) -> SlotId | None:
        taken = [
            number
            for (ns, queue, sc, k, number) in self._slots
            if (ns, queue, sc, k) == (row.namespace, row.queue, scope, key)
        ]
        if any(n >= limit for n in taken):
            return None  # the limit was lowered: those above it finish first
        free = free_numbers(limit, taken, start)
        if not free:
            return None
        slot: SlotId = (row.namespace, row.queue, scope, key, free[0])
        self._slots[slot] = SlotRow(row.namespace, row.queue, scope, key, free[0], row.id, now_ms)
        self._slots_of.setdefault(row.id, []).append(slot)
        return slot

    def _take_rate(self, namespace: str, queue: str, config: QueueRow, now_ms: int) -> bool:
        assert config.rate_limit is not None and config.rate_per_ms is not None
        used = self._rate.setdefault((namespace, queue), [NEVER] * config.rate_limit)
        # The row used longest ago is the heap's first.
        if used[0] != NEVER and used[0] > now_ms - config.rate_per_ms:
            return False
        heapq.heapreplace(used, now_ms)
        return True

    def _hold_key(self, row: ExecutionRow, now_ms: int) -> None:
        """Hold back every due execution of ``row``'s concurrency key in its lane."""
        lane = self._lane_of(row)
        for other in self._executions.values():
            if (
                other.namespace == row.namespace
                and other.queue == row.queue
                and other.concurrency_key == row.concurrency_key
                and other.wake_at is not None
                and other.wake_at <= now_ms
                and self._lane_of(other) == lane
            ):
                self._held.add(other.id)
                self._index(other)

    def _wake_held(self, namespace: str, queue: str, key: str) -> None:
        """A slot of ``key`` freed: its first held-back execution (priority, then wake
        time) goes back to its lane."""
        held = [
            r
            for i in self._held
            if (r := self._executions.get(i)) is not None
            and (r.namespace, r.queue, r.concurrency_key) == (namespace, queue, key)
        ]
        if held:
            first = min(held, key=lambda r: (self._lane_of(r), r.wake_at or 0, r.created_at, r.id))
            self._held.discard(first.id)
            self._index(first)

    def _drop(self, execution_id: str, slots: Sequence[SlotId]) -> None:
        for slot in slots:
            self._slots.pop(slot, None)
            held = self._slots_of.get(execution_id)
            if held is not None and slot in held:
                held.remove(slot)

    def _free_slots(self, execution_id: str) -> None:
        """The execution left ``running``: every slot it holds is free again, and a slot
        of its concurrency key brings the first execution that key held back."""
        self._held.discard(execution_id)
        for slot in self._slots_of.pop(execution_id, []):
            self._slots.pop(slot, None)
            namespace, queue, scope, key, _ = slot
            if scope == "k":
                self._wake_held(namespace, queue, key)


class _MemoryAdmission(Admission[SlotId]):
    """``Admission`` on ``MemoryQueues`` (its lock held by the claim)."""

    def __init__(self, store: MemoryQueues, worker_id: str, now_ms: int) -> None:
        super().__init__(worker_id, now_ms)
        self.store = store

    def take_slot(
        self, row: ExecutionRow, scope: str, key: str, limit: int
    ) -> tuple[SlotId | None, bool]:
        slot = self.store._take_slot(row, scope, key, limit, self.start, self.now_ms)
        return slot, slot is None  # one claimer at a time here: no slot is full

    def take_rate(self, row: ExecutionRow, config: QueueRow) -> bool:
        return self.store._take_rate(row.namespace, row.queue, config, self.now_ms)

    def drop_slots(self, row: ExecutionRow, slots: Sequence[SlotId]) -> None:
        self.store._drop(row.id, slots)

    def hold_key(self, row: ExecutionRow) -> None:
        self.store._hold_key(row, self.now_ms)
