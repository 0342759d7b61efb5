"""``hydra.Retention``: workers that purge finished executions periodically.

``Worker(engine, retention=hydra.Retention(completed=timedelta(days=7),
failed=timedelta(days=30)))``: once per period (``every``, default an hour) one worker of
the namespace runs ``engine.purge`` for each status given an age. Which worker does is
decided as cron slots are (``Store.claim_cron_fire`` under the reserved job name
``hydra.retention``): the first to record the period's slot purges, the others skip it,
whatever their number and their processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from hydra.clock import duration_ms

if TYPE_CHECKING:
    from hydra.engine import Engine

#: the cron-fire job name under which a period's purge is claimed
RETENTION_JOB = "hydra.retention"


@dataclass(frozen=True)
class Retention:
    """How long finished executions are kept, by final status (None: kept forever), how
    often a worker purges (``every``) and in batches of how many (``batch_size``)."""

    completed: timedelta | None = None
    failed: timedelta | None = None
    cancelled: timedelta | None = None
    every: timedelta = timedelta(hours=1)
    batch_size: int = 1000

    def __post_init__(self) -> None:
        for status, age in self.ages().items():
            duration_ms(age, f"Retention.{status}")
        if duration_ms(self.every, "Retention.every") <= 0:
            raise ValueError("Retention.every must be positive")
        if self.batch_size < 1:
            raise ValueError(f"Retention.batch_size must be >= 1, got {self.batch_size}")

    def ages(self) -> dict[str, timedelta]:
        """The statuses purged, with the age past which they are."""
        given = {"completed": self.completed, "failed": self.failed, "cancelled": self.cancelled}
        return {status: age for status, age in given.items() if age is not None}


class RetentionRunner:
    """One worker's side of the periodic purge: ``tick`` purges once per period if this
    worker is the one that records the period's slot."""

    def __init__(self, engine: Engine, retention: Retention, worker_id: str) -> None:
        self.engine = engine
        self.retention = retention
        self.worker_id = worker_id
        self._every_ms = duration_ms(retention.every, "Retention.every")
        self._done_slot: int | None = None

    def tick(self) -> int | None:
        """Purge if this period's slot is not done yet and this worker wins it: the
        number of executions deleted; None when there was nothing to do here."""
        now = self.engine.clock.now_ms()
        slot = now - now % self._every_ms
        if self._done_slot == slot:
            return None
        self._done_slot = slot
        won = self.engine.store.claim_cron_fire(
            self.engine.namespace, RETENTION_JOB, slot, now_ms=now, worker_id=self.worker_id
        )
        if not won:
            return None
        deleted = 0
        for status, age in self.retention.ages().items():
            deleted += self.engine.purge(
                older_than=age, statuses=[status], batch_size=self.retention.batch_size
            )
        if deleted:
            self.engine.logger.info(
                "retention: purged %d finished execution(s) of namespace %s",
                deleted,
                self.engine.namespace,
            )
        return deleted

    def run_until(self, stopped: threading.Event, interval_s: float = 30.0) -> None:
        """A worker's retention thread: ``tick`` every ``interval_s`` (at most) until
        ``stopped``; a failed purge is logged and tried again at the next period."""
        interval_s = min(interval_s, self._every_ms / 1000)
        while not stopped.is_set():
            try:
                self.tick()
            except Exception as exc:
                self._done_slot = None  # try this period again
                self.engine.logger.warning(
                    "retention: purge failed (%s: %s); tried again", type(exc).__name__, exc
                )
            stopped.wait(interval_s)


__all__ = ["RETENTION_JOB", "Retention", "RetentionRunner"]
