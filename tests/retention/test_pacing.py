"""A purge's pacing (hydra.purging): batches kept short in time, never past the caller's
size, each followed by a rest as long as it took."""

from __future__ import annotations

import pytest

from hydra.purging import FIRST_BATCH_ONE_WRITER, MIN_PAUSE_S, TARGET_BATCH_S, PurgePacer


def test_with_one_writer_the_first_batch_is_small_and_grows_while_fast() -> None:
    pacer = PurgePacer(1000, one_writer=True)
    assert pacer.size == FIRST_BATCH_ONE_WRITER
    sizes = []
    for _ in range(6):
        pacer.after(TARGET_BATCH_S / 4)
        sizes.append(pacer.size)
    assert sizes == [100, 200, 400, 800, 1000, 1000]  # never past the caller's batch_size
    assert PurgePacer(20, one_writer=True).size == 20


def test_a_slow_batch_shrinks_the_next_and_a_fast_one_grows_it_back_to_the_most() -> None:
    pacer = PurgePacer(1000, one_writer=True)
    pacer.size = 1000
    rest = pacer.after(TARGET_BATCH_S * 4)  # 1,000 rows took four times the target
    assert pacer.size == 250
    assert rest == pytest.approx(TARGET_BATCH_S * 4)
    pacer.after(TARGET_BATCH_S / 4)
    assert pacer.size == 500
    pacer.after(TARGET_BATCH_S / 4)
    pacer.after(TARGET_BATCH_S / 4)
    assert pacer.size == 1000  # never past the caller's batch_size
    assert pacer.after(0.0) == MIN_PAUSE_S
    pacer.after(1000.0)
    assert pacer.size == 1


def test_with_row_locks_batches_keep_their_size_and_still_rest() -> None:
    pacer = PurgePacer(1000)
    assert pacer.after(TARGET_BATCH_S * 4) == pytest.approx(TARGET_BATCH_S * 4)
    assert pacer.size == 1000


class _SlowSettlingStore:
    """A store whose purge batches are instant and whose settle is slow."""

    one_writer = True

    def __init__(self, rows: int) -> None:
        self.left = rows
        self.limits: list[int] = []
        self.settles: list[bool] = []

    def purge_executions(self, namespace: str, *, limit: int, **_: object) -> list[str]:
        self.limits.append(limit)
        n = min(limit, self.left)
        self.left -= n
        return ["x"] * n

    def settle_purge(self, *, finished: bool = False) -> None:
        import time

        self.settles.append(finished)
        time.sleep(TARGET_BATCH_S * 2)


def test_the_settle_between_batches_does_not_shrink_them() -> None:
    """``Engine.purge`` times the batch alone for its size (a WAL checkpoint between
    batches is not the batch's), and settles after every batch and once at the end."""
    from typing import Any, cast

    import hydra
    from hydra.testing import MemoryStore

    engine = hydra.Engine(MemoryStore(), namespace="ns")
    fake = _SlowSettlingStore(50 + 100 + 200 + 10)
    engine.store = cast(Any, fake)
    assert engine.purge(older_than=0) == 360
    assert fake.limits == [50, 100, 200, 400]
    assert fake.settles == [False, False, False, True]
