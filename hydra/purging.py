"""How a purge paces itself (``Engine.purge``; the retention runner and the claim-at-scale
benchmark purge through it)."""

from __future__ import annotations

#: a purge rests after each batch as long as the batch took, times this (and at least
#: PURGE_MIN_PAUSE_S): it never has the database more than half the time, so the
#: workers' claims and checkpoints do not queue behind its writes (SQLite's one write
#: lock; elsewhere its write-ahead log and disk)
PURGE_PACING = 1.0
PURGE_MIN_PAUSE_S = 0.005
#: ``Engine.purge``'s default batch (as fixed by the API)
PURGE_BATCH = 1000


def purge_pause_s(batch_s: float) -> float:
    """How long a purge rests after a batch that took ``batch_s`` seconds."""
    return max(PURGE_MIN_PAUSE_S, batch_s * PURGE_PACING)
