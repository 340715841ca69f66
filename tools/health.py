"""How long the queue takes at the current limits, and circuit states.

The delivery health page shows, per server, "12,000 mails at 500 a day:
done on 18 Dec". The arithmetic lives here, without Odoo: a daily limit
lets ``limit - sent_today`` mails go today and ``limit`` every following
calendar day; a rate per minute spreads them over minutes. Times are naive
datetimes in the company's time zone (the day the limits count in).
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

CLOSED, OPEN, RETRY = "closed", "open", "retry"


@dataclass(frozen=True)
class QueueEta:
    """When a queue of ``count`` mails is done, and what bounds it.

    ``bound`` is ``none`` (no limit: the next queue runs send it), ``day``
    (the daily limit) or ``minute`` (the rate per minute).
    """

    count: int
    bound: str
    done: datetime | None = None
    per_period: int = 0


def queue_eta(count, now, daily_limit=0, sent_today=0, rate_per_minute=0):
    """When ``count`` queued mails are sent, at the limits of one server.

    :param datetime now: local time (the company's calendar day)
    :param int daily_limit: mails per day, 0 for no limit
    :param int sent_today: mails already sent today
    :param int rate_per_minute: mails per minute, 0 for no limit
    """
    count = max(int(count or 0), 0)
    daily_limit = max(int(daily_limit or 0), 0)
    rate = max(int(rate_per_minute or 0), 0)
    if not count:
        return QueueEta(0, "none", now)
    left_today = max(daily_limit - max(int(sent_today or 0), 0), 0)
    if not daily_limit or count <= left_today:
        if rate:
            minutes = math.ceil(count / rate)
            return QueueEta(count, "minute", now + timedelta(minutes=minutes), rate)
        if daily_limit:
            return QueueEta(count, "day", now, daily_limit)
        return QueueEta(count, "none", now)
    days = math.ceil((count - left_today) / daily_limit)
    last_day = count - left_today - (days - 1) * daily_limit
    done = datetime(now.year, now.month, now.day) + timedelta(days=days)
    if rate:
        done += timedelta(minutes=math.ceil(last_day / rate))
    return QueueEta(count, "day", done, daily_limit)


def circuit_state(unhealthy_until, failures, now):
    """``open`` while the server rests, ``retry`` when it failed lately but
    may be tried again, else ``closed``."""
    if unhealthy_until and unhealthy_until > now:
        return OPEN
    if failures:
        return RETRY
    return CLOSED
