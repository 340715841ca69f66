"""Daily limits and rates that defer mail, never fail it.

The documentation promises a daily limit and shows daily usage; hosting
operators count it per calendar day. Here a day is the company's calendar
day (its time zone, DST days being 23 or 25 hours long) and a mail over a
limit waits for the next window, as Postal holds mail over its send limit.

Plain functions; times are naive UTC datetimes, as Odoo stores them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def day_window(now, tz_name):
    """``(start, end)`` in naive UTC of the calendar day containing ``now``."""
    zone = ZoneInfo(tz_name or "UTC")
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    following = start.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    to_utc = ZoneInfo("UTC")
    return (
        start.astimezone(to_utc).replace(tzinfo=None),
        end.astimezone(to_utc).replace(tzinfo=None),
    )


def minute_window(now):
    start = now.replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)


@dataclass(frozen=True)
class Allowance:
    """How many mails may go now, and when the others may.

    ``limit`` names what bounds it (``server_day``, ``database_day``,
    ``server_minute``) so the deferral can say why.
    """

    count: int | None  # None: unlimited
    defer_until: datetime | None = None
    limit: str = ""
    value: int = 0


UNLIMITED = Allowance(None)


def allowance(limit, used, window_end, name):
    """What a limit of ``limit`` per window allows after ``used`` mails.

    ``limit`` 0 or None means no limit.
    """
    if not limit:
        return UNLIMITED
    left = max(limit - used, 0)
    return Allowance(left, window_end, name, limit)


def tightest(allowances):
    """The most restrictive of several allowances."""
    best = UNLIMITED
    for candidate in allowances:
        if candidate.count is None:
            continue
        if (
            best.count is None
            or candidate.count < best.count
            or (
                candidate.count == best.count
                and (candidate.defer_until or datetime.max)
                > (best.defer_until or datetime.max)
            )
        ):
            best = candidate
    return best


def split(items, granted):
    """``(now, later)``: the first ``granted`` items go, the rest wait."""
    if granted.count is None:
        return list(items), []
    items = list(items)
    return items[: granted.count], items[granted.count :]
