"""Every ``mail_outbound.*`` system parameter: its type, range and default.

A system parameter is typed by hand in Settings > Technical; one typo must
not stop the queue. :func:`parse` reads a raw value the tolerant way: a
value that does not parse falls back to the default, one out of range is
clamped to it, and in both cases a warning in English says what was used.
The Odoo layer logs that warning once and refuses the same value on a form.

Nothing here imports odoo.
"""

from dataclasses import dataclass

MAX_BATCH_SIZE = 10000


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # int, float, bool, choice
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    doc: str = ""


PARAMS = {
    p.key: p
    for p in (
        Param(
            "mail_outbound.claim_timeout",
            "int",
            900,
            1,
            86400,
            doc="seconds after which a silent worker's claim is settled",
        ),
        Param(
            "mail_outbound.queue_commit_every",
            "int",
            50,
            1,
            1000,
            doc="mails the queue sends between two commits",
        ),
        Param(
            "mail_outbound.daily_limit",
            "int",
            0,
            0,
            10**9,
            doc="mails the database may send per day; 0: no limit",
        ),
        Param(
            "mail_outbound.retry_min_backoff",
            "int",
            300,
            1,
            86400,
            doc="seconds before the first retry, doubling",
        ),
        Param(
            "mail_outbound.retry_max_backoff",
            "int",
            4000,
            1,
            7 * 86400,
            doc="longest wait between two retries, in seconds",
        ),
        Param(
            "mail_outbound.retry_lifetime_days",
            "float",
            5.0,
            0.01,
            60,
            doc="days a temporarily refused mail is retried",
        ),
        Param(
            "mail_outbound.circuit_threshold",
            "int",
            3,
            1,
            1000,
            doc="server failures in a row before it is paused",
        ),
        Param(
            "mail_outbound.circuit_cooldown",
            "int",
            300,
            1,
            86400,
            doc="seconds a failing server is paused",
        ),
        Param(
            "mail_outbound.delivery_log_days",
            "int",
            30,
            0,
            3650,
            doc="days the delivery log is kept; 0: forever",
        ),
        Param(
            "mail_outbound.after_data_drop",
            "choice",
            "fail",
            choices=("fail", "retry"),
            doc="a connection lost after the end of DATA: fail as "
            '"may have been delivered", or retry (duplicates possible)',
        ),
        Param(
            "mail_outbound.smtp_pipelining",
            "choice",
            "on",
            choices=("on", "off"),
            doc="parallel sessions send MAIL, RCPT and DATA in one round trip "
            "where the server offers PIPELINING (RFC 2920)",
        ),
    )
}


def _number(kind, raw):
    text = str(raw).strip()
    if kind == "int":
        number = float(text)
        if number != int(number):
            raise ValueError(text)
        return int(number)
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):  # NaN, inf
        raise ValueError(text)
    return value


def parse(key, raw):
    """``(value, warning)`` for the raw text of parameter ``key``.

    ``raw`` None or empty: the default, no warning. ``warning`` is None when
    the value was used as typed.
    """
    param = PARAMS[key]
    # get_param answers False for a parameter that does not exist
    if raw is None or raw is False or str(raw).strip() == "":
        return param.default, None
    if param.kind == "choice":
        value = str(raw).strip().lower()
        if value in param.choices:
            return value, None
        return param.default, (
            f"{key} is {raw!r}, not one of {', '.join(param.choices)}: "
            f"using {param.default!r}"
        )
    try:
        value = _number(param.kind, raw)
    except (TypeError, ValueError):
        return param.default, (
            f"{key} is {raw!r}, not a number: using the default {param.default}"
        )
    clamped = min(max(value, param.minimum), param.maximum)
    if clamped != value:
        clamped = type(param.default)(clamped)
        return clamped, (
            f"{key} is {raw!r}, outside {param.minimum} to {param.maximum}: "
            f"using {clamped}"
        )
    return type(param.default)(value), None


def check(key, value):
    """None when ``value`` is acceptable as typed, else the range in words."""
    _value, warning = parse(key, value)
    if warning is None:
        return None
    param = PARAMS[key]
    if param.kind == "choice":
        return ", ".join(param.choices)
    return f"{param.minimum:g} to {param.maximum:g}"


def valid_batch_size(value):
    """``value`` as a whole number of mails from 1 to :data:`MAX_BATCH_SIZE`,
    else None (0 would mean "the whole queue" to core)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= MAX_BATCH_SIZE else None


def batch_size(raw, asked):
    """``(value, warning)``: core's parameter ``raw`` when it is valid, else
    ``asked`` (already validated by the caller)."""
    if raw is None or raw is False or str(raw).strip() == "":
        return asked, None
    value = valid_batch_size(raw)
    if value is None:
        return asked, (
            f"mail.mail.queue.batch.size is {raw!r}, not 1 to {MAX_BATCH_SIZE}: "
            f"using {asked}"
        )
    return value, None
