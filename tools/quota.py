"""Sending limits in the provider's units, that hold mail and never fail it.

Providers publish limits per day, per hour and per minute, and count either
SMTP messages or recipients (Microsoft 365: "10,000 recipients a day"). One
``mail.mail`` is not one message: core sends one SMTP message to its
``email_to`` and ``email_cc`` together, then one per notified partner, so a
chatter post to five followers is five messages. Here each mail is seen as
its :class:`FanOut`, the recipients of each message it will send, in core's
order, and each limit counts in its own unit.

A limit grants whole messages: a mail whose fan-out passes a limit sends the
messages that fit and holds the rest (the caller splits it), never part of
one message's recipients. A window in which nothing was sent lets its first
message go even if it alone is larger than the limit, else that message
would wait for ever; the provider then decides. Mail over a limit waits for
the next window; nothing here fails a mail.

A day is the company's calendar day (its time zone, DST days being 23 or 25
hours long); hours and minutes are UTC ones, which are the same everywhere
but for half-hour time zones, whose providers count in UTC anyway. Plain
functions and frozen dataclasses; times are naive UTC datetimes, as Odoo
stores them.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

MESSAGE = "message"
RECIPIENT = "recipient"
UNITS = (MESSAGE, RECIPIENT)

DAY, HOUR, MINUTE = "day", "hour", "minute"
WINDOWS = (DAY, HOUR, MINUTE)


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


def hour_window(now):
    start = now.replace(minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def minute_window(now):
    start = now.replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)


def window(kind, now, tz_name="UTC"):
    """``(start, end)`` of the ``kind`` window (day, hour, minute) at ``now``."""
    if kind == DAY:
        return day_window(now, tz_name)
    if kind == HOUR:
        return hour_window(now)
    return minute_window(now)


@dataclass(frozen=True)
class FanOut:
    """The SMTP messages one mail will send: each message's recipients.

    >>> FanOut((3, 1, 1)).count(MESSAGE), FanOut((3, 1, 1)).count(RECIPIENT)
    (3, 5)
    """

    recipients: tuple = ()

    def count(self, unit, messages=None):
        """Its first ``messages`` messages (all by default) in ``unit``."""
        chosen = self.recipients if messages is None else self.recipients[:messages]
        return len(chosen) if unit == MESSAGE else sum(chosen)


def fan_out(email_to, email_cc, partner_recipients):
    """A mail's :class:`FanOut` as core's ``_prepare_outgoing_list`` sends it.

    ``email_to``, ``email_cc``: how many addresses each holds; they go in one
    message. ``partner_recipients``: per notified partner, the addresses of
    its email (usually 1), one message each. A mail with no recipient at all
    still counts one message: core tries it and fails it, which costs
    nothing at the provider, but a mail must never be free of every limit.

    >>> fan_out(2, 1, [1, 1]).recipients
    (3, 1, 1)
    """
    messages = []
    if email_to or email_cc:
        messages.append(email_to + email_cc)
    messages.extend(max(count, 1) for count in partner_recipients)
    return FanOut(tuple(messages) or (1,))


@dataclass
class Limit:
    """One limit and what was used of it in its current window.

    ``code`` names it for the mail and the log (``server_day``,
    ``server_hour``, ``server_minute``, ``database_day``); ``used`` counts
    what servers accepted in the window (the delivery log), plus what this
    run granted since.
    """

    code: str
    value: int
    unit: str
    window_end: datetime
    used: int = 0

    @property
    def left(self):
        return max(self.value - self.used, 0)


@dataclass(frozen=True)
class Grant:
    """What a set of limits lets one mail send now.

    ``messages``: how many of its messages go now (all, some, or 0).
    ``held_by``: the :class:`Limit` that holds the rest, None when all go.
    """

    messages: int
    held_by: Limit | None = None

    @property
    def whole(self):
        return self.held_by is None


@dataclass
class Allowance:
    """The limits that apply to one server's mail, granted mail by mail.

    ``limits`` share :class:`Limit` objects with the other servers'
    allowances where they are shared (the database's daily limit), so that
    what one server takes, the others no longer have. Once a mail was held,
    the mails after it are held too: the queue stays in its order, and a
    small mail never overtakes a held one for the same window.
    """

    limits: list = field(default_factory=list)
    blocked: Limit | None = None

    def grant(self, fanout):
        """How many of ``fanout``'s messages go now; uses them up."""
        if self.blocked is not None:
            return Grant(0, self.blocked)
        total = len(fanout.recipients)
        messages, held_by = total, None
        for limit in self.limits:
            fit = 0
            while fit < total and (
                fanout.count(limit.unit, fit + 1) <= limit.left
                # an empty window lets one oversized message through
                or (fit == 0 and limit.used == 0)
            ):
                fit += 1
            if fit < total:
                # every limit short of the whole mail holds its rest
                messages, held_by = min(messages, fit), _later(held_by, limit)
        for limit in self.limits:
            limit.used += fanout.count(limit.unit, messages)
        if held_by is not None:
            self.blocked = held_by
        return Grant(messages, held_by)

    def fits(self, fanouts):
        """Whether every one of ``fanouts`` would go whole, using nothing."""
        for limit in self.limits:
            need = sum(f.count(limit.unit) for f in fanouts)
            if need > limit.left:
                return False
        return self.blocked is None or not fanouts

    def take(self, fanouts):
        """Count ``fanouts`` as sent (a batch this server took over)."""
        for limit in self.limits:
            limit.used += sum(f.count(limit.unit) for f in fanouts)

    def give_back(self, fanouts):
        """Uncount ``fanouts`` (a batch another server took over)."""
        for limit in self.limits:
            limit.used = max(limit.used - sum(f.count(limit.unit) for f in fanouts), 0)


def _later(current, candidate):
    """Of two limits holding a mail, the one whose window ends last: the mail
    may go only once both have room again."""
    if current is None or candidate.window_end > current.window_end:
        return candidate
    return current


@dataclass(frozen=True)
class ServerLimits:
    """One server's limits (0: none) and the unit they count."""

    unit: str = MESSAGE
    day: int = 0
    hour: int = 0
    minute: int = 0

    def __bool__(self):
        return bool(self.day or self.hour or self.minute)


class Quotas:
    """Every limit of one queue run, with what was used of each.

    ``usage``: ``{server_id: {window: (messages, recipients)}}`` accepted
    by the servers in each current window (the delivery log);
    ``database_used``: messages accepted today by every server. The
    database's daily limit counts SMTP messages: it is the administrator's
    own cap, not a provider's.
    """

    def __init__(self, database_day, servers, usage, database_used, windows):
        self.windows = windows  # {window: (start, end)}
        self.servers = servers  # {server_id: ServerLimits}
        self.usage = usage
        self.database = (
            Limit("database_day", database_day, MESSAGE, windows[DAY][1], database_used)
            if database_day
            else None
        )
        self._allowances = {}

    def allowance(self, server_id):
        """The :class:`Allowance` of ``server_id``'s mail, None when no limit
        applies to it."""
        if server_id not in self._allowances:
            self._allowances[server_id] = self._build(server_id)
        return self._allowances[server_id]

    def _build(self, server_id):
        limits = [self.database] if self.database else []
        server = self.servers.get(server_id) or ServerLimits()
        used = self.usage.get(server_id, {})
        for kind, value in (
            (DAY, server.day),
            (HOUR, server.hour),
            (MINUTE, server.minute),
        ):
            if value:
                messages, recipients = used.get(kind, (0, 0))
                limits.append(
                    Limit(
                        f"server_{kind}",
                        value,
                        server.unit,
                        self.windows[kind][1],
                        recipients if server.unit == RECIPIENT else messages,
                    )
                )
        return Allowance(limits) if limits else None
