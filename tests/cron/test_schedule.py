"""``hydra.cron.CronSchedule``: parsing, macros, names, and slot times across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hydra.clock import to_ms
from hydra.cron import CronSchedule

BERLIN = ZoneInfo("Europe/Berlin")


def slots(schedule: CronSchedule, start: datetime, n: int) -> list[str]:
    """The next ``n`` slots after ``start``, as local ISO times."""
    out, ms = [], to_ms(start)
    for _ in range(n):
        ms = schedule.next_after(ms)
        out.append(schedule.local(ms).isoformat())
    return out


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("61 * * * *", "invalid cron spec"),
        ("* 24 * * *", "invalid cron spec"),
        ("* * * * funday", "invalid cron spec"),
        ("@often", "unknown macro"),
        ("H * * * *", "hashed (H) and random (R)"),
        ("R * * * *", "hashed (H) and random (R)"),
        ("0 0 30 2 *", "matches no date"),
    ],
)
def test_invalid_specs_raise_value_error(spec: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        CronSchedule(spec)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "Europe/"])
def test_unknown_timezone_raises_value_error(zone: str) -> None:
    with pytest.raises(ValueError, match="timezone"):
        CronSchedule("* * * * *", zone)


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro: str, same_as: str) -> None:
    start = datetime(2030, 1, 1, 0, 30, tzinfo=UTC)
    assert slots(CronSchedule(macro), start, 4) == slots(CronSchedule(same_as), start, 4)


def test_month_and_weekday_names() -> None:
    # 2030-01-01 is a Tuesday.
    schedule = CronSchedule("0 9 * jan,feb mon-fri")
    got = slots(schedule, datetime(2030, 1, 1, tzinfo=UTC), 4)
    assert got == [
        "2030-01-01T09:00:00+00:00",
        "2030-01-02T09:00:00+00:00",
        "2030-01-03T09:00:00+00:00",
        "2030-01-04T09:00:00+00:00",
    ]
    assert slots(schedule, datetime(2030, 2, 28, 10, tzinfo=UTC), 1) == [
        "2031-01-01T09:00:00+00:00"
    ]


def test_whitespace_is_normalised() -> None:
    assert CronSchedule("  0   2 * *  * ").spec == "0 2 * * *"
    assert CronSchedule("0 2 * * *") == CronSchedule(" 0 2 * * * ")


def test_next_is_strictly_after_and_latest_is_at_or_before() -> None:
    schedule = CronSchedule("0 * * * *")
    ten = to_ms(datetime(2030, 1, 1, 10, tzinfo=UTC))
    assert schedule.next_after(ten) == ten + 3_600_000
    assert schedule.next_after(ten - 1) == ten
    assert schedule.latest_at_or_before(ten) == ten
    assert schedule.latest_at_or_before(ten - 1) == ten - 3_600_000
    assert schedule.slots(ten - 1, ten + 2 * 3_600_000, 10) == [
        ten,
        ten + 3_600_000,
        ten + 2 * 3_600_000,
    ]
    assert schedule.slots(ten - 1, ten + 2 * 3_600_000, 2) == [ten, ten + 3_600_000]


def test_spring_forward_in_berlin() -> None:
    # 2030-03-31: at 02:00 CET the clocks jump to 03:00 CEST.
    start = datetime(2030, 3, 30, 22, 0, tzinfo=BERLIN)
    # Fixed hours: once per day; the skipped 02:00 runs when the clock jumps (03:00 CEST).
    assert slots(CronSchedule("0 2 * * *", "Europe/Berlin"), start, 3) == [
        "2030-03-31T03:00:00+02:00",
        "2030-04-01T02:00:00+02:00",
        "2030-04-02T02:00:00+02:00",
    ]
    # Several fixed times in the skipped hour run once, at the jump.
    assert slots(CronSchedule("*/20 2 * * *", "Europe/Berlin"), start, 4) == [
        "2030-03-31T03:00:00+02:00",
        "2030-04-01T02:00:00+02:00",
        "2030-04-01T02:20:00+02:00",
        "2030-04-01T02:40:00+02:00",
    ]
    # Every hour: follows real time, one run an hour; there is no 02:30 that night.
    assert slots(CronSchedule("30 * * * *", "Europe/Berlin"), start, 6) == [
        "2030-03-30T22:30:00+01:00",
        "2030-03-30T23:30:00+01:00",
        "2030-03-31T00:30:00+01:00",
        "2030-03-31T01:30:00+01:00",
        "2030-03-31T03:30:00+02:00",
        "2030-03-31T04:30:00+02:00",
    ]


def test_fall_back_in_berlin() -> None:
    # 2030-10-27: at 03:00 CEST the clocks go back to 02:00 CET; 02:xx happens twice.
    start = datetime(2030, 10, 26, 23, 0, tzinfo=BERLIN)
    # Fixed hours: once per wall-clock time, the first time.
    assert slots(CronSchedule("0 2 * * *", "Europe/Berlin"), start, 3) == [
        "2030-10-27T02:00:00+02:00",
        "2030-10-28T02:00:00+01:00",
        "2030-10-29T02:00:00+01:00",
    ]
    assert slots(CronSchedule("*/30 2 * * *", "Europe/Berlin"), start, 3) == [
        "2030-10-27T02:00:00+02:00",
        "2030-10-27T02:30:00+02:00",
        "2030-10-28T02:00:00+01:00",
    ]
    # Every hour: real time, so both 02:30s.
    assert slots(CronSchedule("30 * * * *", "Europe/Berlin"), start, 6) == [
        "2030-10-26T23:30:00+02:00",
        "2030-10-27T00:30:00+02:00",
        "2030-10-27T01:30:00+02:00",
        "2030-10-27T02:30:00+02:00",
        "2030-10-27T02:30:00+01:00",
        "2030-10-27T03:30:00+01:00",
    ]


# The 2030 DST changes of each zone (Lord Howe shifts by 30 minutes).
CHANGES = {
    "Europe/Berlin": ((3, 31), (10, 27)),
    "America/New_York": ((3, 10), (11, 3)),
    "Australia/Lord_Howe": ((4, 7), (10, 6)),
}


@pytest.mark.parametrize(
    "spec", ["30 * * * *", "*/20 * * * *", "0 2 * * *", "*/20 2 * * *", "15 1-3 * * *"]
)
@pytest.mark.parametrize("zone", sorted(CHANGES))
def test_next_and_latest_agree_around_both_changes(spec: str, zone: str) -> None:
    """Walking forward and backward over a DST change gives the same slots, strictly
    increasing, and latest_at_or_before(t) is the last slot at or before t for any t."""
    schedule = CronSchedule(spec, zone)
    for month, day in CHANGES[zone]:
        start = to_ms(datetime(2030, month, day, tzinfo=UTC)) - 2 * 86_400_000
        end = start + 4 * 86_400_000
        forward = schedule.slots(start, end, 10_000)
        assert forward == sorted(set(forward)), "slots not strictly increasing"
        backward: list[int] = []
        ms = end
        while (ms := schedule.latest_at_or_before(ms)) > start:
            backward.append(ms)
            ms -= 1
        assert backward[::-1] == forward
        for probe in range(start + 1, end, 3_600_000 + 1_234):
            at_or_before = [s for s in forward if s <= probe]
            if at_or_before:
                assert schedule.latest_at_or_before(probe) == at_or_before[-1]


def test_local_keeps_the_second_copy_of_a_repeated_hour() -> None:
    schedule = CronSchedule("30 * * * *", "Europe/Berlin")
    second = to_ms(datetime(2030, 10, 27, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert schedule.local(second).isoformat() == "2030-10-27T02:30:00+01:00"
    assert schedule.local(second + 1_234).isoformat() == "2030-10-27T02:30:01.234000+01:00"


def test_repr_and_timezone() -> None:
    berlin = CronSchedule("@daily", "Europe/Berlin")
    assert repr(berlin) == "CronSchedule('@daily', 'Europe/Berlin')"
    assert CronSchedule("@daily").local(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert CronSchedule("@daily").next_after(0) == to_ms(datetime(1970, 1, 2, tzinfo=UTC))
    tokyo = CronSchedule("@daily", "Asia/Tokyo")
    assert tokyo.next_after(0) == to_ms(datetime(1970, 1, 2, tzinfo=ZoneInfo("Asia/Tokyo")))
    assert tokyo.local(0).utcoffset() == timedelta(hours=9)
