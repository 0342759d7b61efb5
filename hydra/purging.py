"""How a purge paces itself (``Engine.purge``; the retention runner and the claim-at-scale
benchmark purge through it).

Each batch is one transaction. On SQLite the workers' writes wait for it (one write lock
for the whole database), so there a purge keeps its batches short in time, not only in
rows: it starts with a small batch, grows it while a batch takes under half of
``TARGET_BATCH_S`` and shrinks one that took longer, never past the caller's
``batch_size``. On PostgreSQL and MySQL/MariaDB a batch locks
only the rows it deletes, which no claim reads; what the workers share with it is the
write-ahead log and the disk. Everywhere, after each batch the purge rests as long as
the batch took: it never has the database more than half the time.
"""

from __future__ import annotations

#: ``Engine.purge``'s default batch (as fixed by the API): the most rows one batch takes
PURGE_BATCH = 1000
#: how long one batch should take at most where one writer at a time holds the database
#: (SQLite): a worker's write waits for it. Batches vary (measured: a 25 ms target gave
#: batches up to 108 ms, and a claim that waited 61 ms for one), hence this margin.
TARGET_BATCH_S = 0.010
#: the rest after a batch, as a multiple of the batch's time (and at least MIN_PAUSE_S)
PURGE_PACING = 1.0
MIN_PAUSE_S = 0.005
#: the first batch's size where one writer at a time holds the database (SQLite)
FIRST_BATCH_ONE_WRITER = 50


class PurgePacer:
    """The size of a purge's next batch and the rest before it."""

    def __init__(self, batch_size: int = PURGE_BATCH, *, one_writer: bool = False) -> None:
        self.most = batch_size
        #: batches shrink to TARGET_BATCH_S (a database with one writer at a time)
        self.one_writer = one_writer
        #: the size of the next batch: with one writer, the first is small and the next
        #: ones grow to TARGET_BATCH_S (a first batch of 1,000 held SQLite's write lock
        #: 140 ms, and a worker's claim waited as long: docs/benchmarks.md)
        self.size = min(batch_size, FIRST_BATCH_ONE_WRITER) if one_writer else batch_size

    def after(self, took_s: float) -> float:
        """A batch of ``self.size`` took ``took_s`` seconds: size the next one so that it
        takes about TARGET_BATCH_S, and return how long to rest first."""
        if self.one_writer and took_s > TARGET_BATCH_S:
            self.size = max(1, int(self.size * TARGET_BATCH_S / took_s))
        elif self.one_writer and took_s < TARGET_BATCH_S / 2:
            self.size = min(self.most, self.size * 2)
        return max(MIN_PAUSE_S, took_s * PURGE_PACING)
