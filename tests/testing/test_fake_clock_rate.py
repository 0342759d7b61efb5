"""``FakeClock(rate=...)``: frozen by default; with a rate it flows over its base clock
(``hydra dev run --fast-forward`` runs on one at rate 1), and jumps add to the flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hydra.testing import FakeClock

START = datetime(2030, 1, 1, tzinfo=UTC)


class ManualClock:
    """A base clock moved by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms
        self.reads = 0

    def now_ms(self) -> int:
        self.reads += 1
        return self.ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, tz=UTC)


def test_a_frozen_clock_never_reads_its_base() -> None:
    base = ManualClock(0)
    clock = FakeClock(START, base=base)
    base.ms += 60_000
    assert clock.now() == START
    clock.advance(timedelta(seconds=5))
    assert clock.now() == START + timedelta(seconds=5)
    assert base.reads == 0
    assert clock.skipped_ms == 5_000


@pytest.mark.parametrize("rate", [1.0, 2.5])
def test_a_clock_with_a_rate_flows_over_its_base_and_jumps_add_to_it(rate: float) -> None:
    base = ManualClock(1_000)
    clock = FakeClock(START, rate=rate, base=base)
    base.ms += 4_000
    assert clock.now() == START + timedelta(milliseconds=4_000 * rate)
    clock.advance(timedelta(hours=1))
    flowed = timedelta(milliseconds=4_000 * rate)
    assert clock.now() == START + flowed + timedelta(hours=1)
    base.ms += 2_000
    assert clock.now() == START + flowed + timedelta(hours=1, milliseconds=2_000 * rate)
    assert clock.skipped_ms == 3_600_000


def test_a_flowing_clock_never_goes_back() -> None:
    base = ManualClock(0)
    clock = FakeClock(START, rate=1.0, base=base)
    base.ms += 10_000
    clock.set_ms(0)  # in the past: ignored
    assert clock.now() == START + timedelta(seconds=10)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(START)
    assert clock.skipped_ms == 0


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be >= 0"):
        FakeClock(rate=-1)
