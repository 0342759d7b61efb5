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
