"""Daily windows in the company's time zone; limits that defer."""

from datetime import datetime

import pytest

from mail_outbound_tools.quota import (
    UNLIMITED,
    Allowance,
    allowance,
    day_window,
    minute_window,
    split,
    tightest,
)


@pytest.mark.parametrize(
    "now,tz,start,end",
    [
        (
            datetime(2026, 11, 24, 12),
            "UTC",
            datetime(2026, 11, 24),
            datetime(2026, 11, 25),
        ),
        # Bucharest is UTC+2 in winter: the local day starts at 22:00 UTC
        (
            datetime(2026, 11, 24, 23),
            "Europe/Bucharest",
            datetime(2026, 11, 24, 22),
            datetime(2026, 11, 25, 22),
        ),
        # spring forward: 23 hours
        (
            datetime(2026, 3, 29, 12),
            "Europe/Bucharest",
            datetime(2026, 3, 28, 22),
            datetime(2026, 3, 29, 21),
        ),
        # fall back: 25 hours
        (
            datetime(2026, 10, 25, 12),
            "Europe/Bucharest",
            datetime(2026, 10, 24, 21),
            datetime(2026, 10, 25, 22),
        ),
        (
            datetime(2026, 3, 8, 12),
            "America/New_York",
            datetime(2026, 3, 8, 5),
            datetime(2026, 3, 9, 4),
        ),
        (
            datetime(2026, 11, 1, 12),
            "America/New_York",
            datetime(2026, 11, 1, 4),
            datetime(2026, 11, 2, 5),
        ),
        (
            datetime(2026, 11, 24, 12),
            False,
            datetime(2026, 11, 24),
            datetime(2026, 11, 25),
        ),
    ],
)
def test_day_window(now, tz, start, end):
    assert day_window(now, tz) == (start, end)


def test_minute_window():
    assert minute_window(datetime(2026, 1, 1, 10, 5, 42, 7)) == (
        datetime(2026, 1, 1, 10, 5),
        datetime(2026, 1, 1, 10, 6),
    )


def test_allowance():
    end = datetime(2026, 11, 25)
    assert allowance(0, 500, end, "server_day") is UNLIMITED
    assert allowance(100, 40, end, "server_day") == Allowance(
        60, end, "server_day", 100
    )
    assert allowance(100, 140, end, "server_day").count == 0


def test_tightest_prefers_the_fewest_then_the_latest_window():
    day_end, minute_end = datetime(2026, 11, 25), datetime(2026, 11, 24, 12, 1)
    day = Allowance(10, day_end, "database_day", 100)
    minute = Allowance(3, minute_end, "server_minute", 5)
    assert tightest([UNLIMITED, day, minute]) == minute
    both_full = [
        Allowance(0, minute_end, "server_minute", 5),
        Allowance(0, day_end, "server_day", 9),
    ]
    assert tightest(both_full).defer_until == day_end
    assert tightest([UNLIMITED, UNLIMITED]) is UNLIMITED


def test_split_mid_batch():
    granted = Allowance(2, datetime(2026, 11, 25), "server_day", 10)
    assert split([1, 2, 3, 4], granted) == ([1, 2], [3, 4])
    assert split([1, 2], UNLIMITED) == ([1, 2], [])


END = datetime(2026, 11, 25)


@pytest.mark.parametrize(
    ("limit", "used", "count"),
    [
        (0, 500, None),  # no limit
        (None, 0, None),
        (100, 0, 100),
        (100, 40, 60),
        (100, 100, 0),
        (100, 140, 0),  # sent over the limit (lowered during the day)
        (1, 0, 1),
    ],
)
def test_allowance_table(limit, used, count):
    granted = allowance(limit, used, END, "server_day")
    assert granted.count == count
    if count is not None:
        assert (granted.defer_until, granted.limit, granted.value) == (
            END,
            "server_day",
            limit,
        )


@pytest.mark.parametrize(
    ("count", "items", "now", "later"),
    [
        (None, [1, 2, 3], [1, 2, 3], []),
        (0, [1, 2, 3], [], [1, 2, 3]),
        (2, [1, 2, 3, 4], [1, 2], [3, 4]),
        (5, [1, 2], [1, 2], []),
        (3, [], [], []),
    ],
)
def test_split_table(count, items, now, later):
    granted = UNLIMITED if count is None else Allowance(count, END, "server_day", 9)
    assert split(items, granted) == (now, later)
