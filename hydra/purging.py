"""How a purge paces itself (``Engine.purge``; the retention runner and the claim-at-scale
benchmark purge through it).

Each batch is one transaction, and while it runs the workers' writes wait for it: for
SQLite's one write lock, elsewhere for the write-ahead log and the disk it fills. So a
purge keeps its batches short in time, not only in rows (it shrinks a batch that took
longer than ``TARGET_BATCH_S`` and grows it back, never past the caller's
``batch_size``), and after each batch it rests as long as the batch took: it never has
the database more than half the time.
"""

from __future__ import annotations

#: ``Engine.purge``'s default batch (as fixed by the API): the most rows one batch takes
PURGE_BATCH = 1000
#: how long one batch should take at most
TARGET_BATCH_S = 0.025
#: the rest after a batch, as a multiple of the batch's time (and at least MIN_PAUSE_S)
PURGE_PACING = 1.0
MIN_PAUSE_S = 0.005


class PurgePacer:
    """The size of a purge's next batch and the rest before it."""

    def __init__(self, batch_size: int = PURGE_BATCH) -> None:
        self.most = batch_size
        #: the size of the next batch
        self.size = batch_size

    def after(self, took_s: float) -> float:
        """A batch of ``self.size`` took ``took_s`` seconds: size the next one so that it
        takes about TARGET_BATCH_S, and return how long to rest first."""
        if took_s > TARGET_BATCH_S:
            self.size = max(1, int(self.size * TARGET_BATCH_S / took_s))
        elif took_s < TARGET_BATCH_S / 2:
            self.size = min(self.most, self.size * 2)
        return max(MIN_PAUSE_S, took_s * PURGE_PACING)
