"""The claim's admission under the queues' limits: one algorithm for every store.

A claim picks its candidates (due executions, in claim order); ``Admission.admit`` then
decides which of them it takes, asking the store (a subclass) to take slots and rate rows
(``take_slot``, ``take_rate``), to give back the slots of a candidate it could not admit
after all (``drop_slots``) and to hold back the due executions of a concurrency key whose
slots are all held (``hold_key``). ``hydra.queues`` says what the limits mean.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from hydra.status import Status
from hydra.store.base import ExecutionRow
from hydra.store.queues import DEFAULT_QUEUE, QueueBudget, QueueRow, budgets

SlotT = TypeVar("SlotT")

#: how many times one claim picks again after holding back a full key's executions
PICK_ROUNDS = 3


class Admission(ABC, Generic[SlotT]):
    """One claim's admission. ``start``: where this claimer starts looking for a free slot
    number (claimers start at different ones, so that concurrent ones seldom collide)."""

    def __init__(self, worker_id: str, now_ms: int) -> None:
        self.start = zlib.crc32(worker_id.encode())
        self.now_ms = now_ms

    def admit(
        self,
        candidates: Sequence[ExecutionRow],
        configs: Mapping[str, QueueRow],
        *,
        limit: int,
        held: Mapping[str, int] | None,
    ) -> tuple[list[ExecutionRow], bool]:
        """The candidates (in claim order) this claim takes: a takeover and an execution
        of an unlimited or unregistered queue always; one of a limited queue if every
        limit lets it, taking its slots and rate row. Stops at ``limit``. Also says
        whether it held back the executions of a full concurrency key."""
        limited = {name: q for name, q in configs.items() if q.limited}
        budget = budgets(limited, dict(held) if held else None)
        admitted: list[ExecutionRow] = []
        for row in candidates:
            if len(admitted) >= limit:
                break
            config = limited.get(row.queue)
            if (
                row.status == Status.RUNNING
                or config is None
                or row.queue == DEFAULT_QUEUE
                or self.take(row, config, budget[row.queue])
            ):
                admitted.append(row)
        return admitted, any(b.full_keys for b in budget.values())

    def take(self, row: ExecutionRow, config: QueueRow, budget: QueueBudget) -> bool:
        """Take what ``row`` needs of ``config``'s limits, all or nothing."""
        if budget.full or (budget.worker is not None and budget.worker <= 0):
            return False
        first = row.started_at is None
        if first and config.rate_limit is not None and budget.rate_spent:
            return False
        taken: list[SlotT] = []
        if config.concurrency is not None:
            slot, _ = self.take_slot(row, "q", "", config.concurrency)
            if slot is None:
                budget.full = True  # nothing more of this queue in this claim
                return False
            taken.append(slot)
        if config.key_concurrency is not None and row.concurrency_key is not None:
            key = row.concurrency_key
            slot, full = None, True
            if key not in budget.full_keys:
                slot, full = self.take_slot(row, "k", key, config.key_concurrency)
            if slot is None:
                if full:
                    # Every slot of the key is held: its due executions leave their lane
                    # so that other keys' behind them are claimed; a slot of the key
                    # freeing brings the first back.
                    budget.full_keys.add(key)
                    self.hold_key(row)
                self.drop_slots(row, taken)
                return False
            taken.append(slot)
        if first and config.rate_limit is not None and not self.take_rate(row, config):
            budget.rate_spent = True
            self.drop_slots(row, taken)
            return False
        if budget.worker is not None:
            budget.worker -= 1
        return True

    @abstractmethod
    def take_slot(
        self, row: ExecutionRow, scope: str, key: str, limit: int
    ) -> tuple[SlotT | None, bool]:
        """A free slot of ``scope``/``key`` below ``limit``, taken for ``row``; or None
        and whether every number is held (True: full; False: another claim is taking
        the last free ones, or the limit was lowered below what is held: full too)."""

    @abstractmethod
    def take_rate(self, row: ExecutionRow, config: QueueRow) -> bool:
        """A rate row of the queue used at least ``per`` ago, taken now; False if none."""

    @abstractmethod
    def drop_slots(self, row: ExecutionRow, slots: Sequence[SlotT]) -> None:
        """Give back slots taken for ``row`` by this claim."""

    @abstractmethod
    def hold_key(self, row: ExecutionRow) -> None:
        """Hold back the due executions of ``row``'s concurrency key in its lane."""
