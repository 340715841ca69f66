from datetime import datetime

import pytest

from mail_outbound_tools import health

NOW = datetime(2026, 12, 1, 10, 0)


@pytest.mark.parametrize(
    "count, limit, sent, rate, bound, done, per",
    [
        # nothing queued
        (0, 500, 0, 0, "none", NOW, 0),
        # no limit at all: the next queue runs send it
        (12000, 0, 0, 0, "none", NOW, 0),
        # fits in what is left today
        (100, 500, 300, 0, "day", NOW, 500),
        # the example: 12,000 at 500 a day, nothing sent yet today:
        # 500 today, 11,500 over 23 more days
        (12000, 500, 0, 0, "day", datetime(2026, 12, 24), 500),
        # today's allowance used up: 1,000 more take two days
        (1000, 500, 500, 0, "day", datetime(2026, 12, 3), 500),
        # sent over the limit (limit lowered today) counts as used up
        (1, 500, 800, 0, "day", datetime(2026, 12, 2), 500),
        # a rate only: 120 mails at 30 a minute, 4 minutes
        (120, 0, 0, 30, "minute", datetime(2026, 12, 1, 10, 4), 30),
        # both: the last day's 100 mails at 30 a minute from midnight
        (600, 500, 0, 30, "day", datetime(2026, 12, 2, 0, 4), 500),
    ],
)
def test_queue_eta(count, limit, sent, rate, bound, done, per):
    eta = health.queue_eta(count, NOW, limit, sent, rate)
    assert (eta.bound, eta.done, eta.per_period) == (bound, done, per)
    assert eta.count == count


def test_queue_eta_refuses_negatives_as_zero():
    eta = health.queue_eta(-5, NOW, -1, -1, -1)
    assert (eta.count, eta.bound) == (0, "none")


@pytest.mark.parametrize(
    "until, failures, state",
    [
        (None, 0, health.CLOSED),
        (datetime(2026, 12, 1, 10, 5), 3, health.OPEN),
        # the rest is over: tried again at the next send, no longer "skipped"
        (datetime(2026, 12, 1, 9, 55), 3, health.RETRY),
        (None, 1, health.RETRY),
    ],
)
def test_circuit_state(until, failures, state):
    assert health.circuit_state(until, failures, NOW) == state
