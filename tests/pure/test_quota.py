"""Windows in the company's time zone; limits in messages or recipients
that hold whole messages, in queue order."""

from datetime import datetime

import pytest

from mail_outbound_tools.quota import (
    MESSAGE,
    RECIPIENT,
    Allowance,
    FanOut,
    Limit,
    day_window,
    fan_out,
    hour_window,
    minute_window,
    window,
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


def test_minute_and_hour_windows():
    now = datetime(2026, 1, 1, 10, 5, 42, 7)
    assert minute_window(now) == (
        datetime(2026, 1, 1, 10, 5),
        datetime(2026, 1, 1, 10, 6),
    )
    assert hour_window(now) == (datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 11))
    assert window("hour", now) == hour_window(now)
    assert window("day", now, "UTC") == (datetime(2026, 1, 1), datetime(2026, 1, 2))


@pytest.mark.parametrize(
    ("to", "cc", "partners", "messages", "recipients"),
    [
        (0, 0, [1, 1, 1, 1, 1], 5, 5),  # a chatter post to five followers
        (3, 0, [], 1, 3),  # one email_to message to three addresses
        (2, 1, [1, 2], 3, 6),  # email_to + cc together, then each partner
        (0, 2, [], 1, 2),  # cc alone is one message
        (0, 0, [0], 1, 1),  # a partner without a parsable email: one try
        (0, 0, [], 1, 1),  # no recipient: still never free
    ],
)
def test_fan_out_follows_cores_messages(to, cc, partners, messages, recipients):
    fanout = fan_out(to, cc, partners)
    assert fanout.count(MESSAGE) == messages
    assert fanout.count(RECIPIENT) == recipients


END = datetime(2026, 11, 25)


def limit(value, unit=MESSAGE, used=0, code="server_day", end=END):
    return Limit(code, value, unit, end, used)


def test_messages_are_counted_not_mails():
    # the review: a daily limit of 2, three mails to five contacts each
    allowance = Allowance([limit(2)])
    post = fan_out(0, 0, [1] * 5)
    first = allowance.grant(post)
    assert (first.messages, first.held_by.code) == (2, "server_day")
    # held from there on: the queue keeps its order
    assert allowance.grant(post).messages == 0
    assert allowance.grant(fan_out(1, 0, [])).messages == 0
    assert allowance.limits[0].used == 2


def test_recipients_counted_where_the_provider_counts_them():
    allowance = Allowance([limit(10, RECIPIENT)])
    assert allowance.grant(fan_out(4, 0, [])).whole  # 4 of 10
    assert allowance.grant(fan_out(0, 0, [1, 1, 1])).whole  # 7 of 10
    # one message to 4 recipients does not fit in 3: never split
    grant = allowance.grant(fan_out(4, 0, [1]))
    assert (grant.messages, grant.whole) == (0, False)
    assert allowance.limits[0].used == 7


def test_partial_fan_out_goes_message_by_message():
    allowance = Allowance([limit(5, RECIPIENT)])
    grant = allowance.grant(FanOut((2, 1, 1, 1, 1)))
    assert grant.messages == 4  # 2 + 1 + 1 + 1
    assert allowance.limits[0].used == 5


def test_an_empty_window_lets_one_oversized_message_through():
    allowance = Allowance([limit(3, RECIPIENT)])
    grant = allowance.grant(FanOut((10, 1)))
    assert (grant.messages, grant.held_by.value) == (1, 3)
    # not a second one: the window is no longer empty
    assert Allowance([limit(3, RECIPIENT, used=1)]).grant(FanOut((10,))).messages == 0


def test_the_tightest_limit_holds_and_the_latest_window_is_named():
    minute_end = datetime(2026, 11, 24, 12, 1)
    day = limit(100, used=98)
    minute = limit(30, code="server_minute", end=minute_end)
    grant = Allowance([day, minute]).grant(fan_out(0, 0, [1] * 5))
    assert (grant.messages, grant.held_by) == (2, day)
    both_full = Allowance(
        [limit(5, used=5, code="server_minute", end=minute_end), limit(9, used=9)]
    )
    assert both_full.grant(FanOut((1,))).held_by.window_end == END


def test_a_shared_limit_is_used_up_by_every_server():
    database = limit(3, code="database_day")
    first, second = Allowance([database]), Allowance([database, limit(100)])
    assert first.grant(FanOut((1, 1))).whole
    grant = second.grant(FanOut((1, 1)))
    assert (grant.messages, grant.held_by.code) == (1, "database_day")


@pytest.mark.parametrize(
    ("value", "used", "need", "fits"),
    [(10, 0, 10, True), (10, 1, 10, False), (10, 10, 0, True), (0, 0, 1, False)],
)
def test_fits_take_and_give_back(value, used, need, fits):
    allowance = Allowance([limit(value, used=used)])
    fanouts = [FanOut((1,))] * need
    assert allowance.fits(fanouts) is fits
    allowance.take(fanouts)
    assert allowance.limits[0].used == used + need
    allowance.give_back(fanouts)
    allowance.give_back(fanouts)
    assert allowance.limits[0].used == max(used - need, 0)
