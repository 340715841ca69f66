"""Every ``mail_outbound.*`` system parameter: its type, range and default.

A system parameter is typed by hand in Settings > Technical; one typo must
not stop the queue. :func:`parse` reads a raw value the tolerant way: a
value that does not parse falls back to the default, one out of range is
clamped to it, and in both cases a warning in English says what was used.
The Odoo layer (``ir.config_parameter._mail_outbound_get``) logs that
warning once per value, and the Settings form refuses the same value with
the range of this table, so that the form and the run never disagree.

:data:`PARAMS` is the only place a default is written: the code reads every
key through :func:`parse`, the data file and the README's table are checked
against it by the pure suite.

Nothing here imports odoo.
"""

import ipaddress
import math
import os
from dataclasses import dataclass

from . import ports

MAX_BATCH_SIZE = 10000

# what each kind of parameter is made of, in the warning's words
KINDS = {
    "int": "a whole number",
    "float": "a number",
    "choice": "one of the listed words",
    "bool": "True or False",
    "ports": "port numbers from 1 to 65535 separated by commas",
    "path": "the absolute path of a readable file",
    "nameservers": "IP addresses with an optional port, separated by commas",
}


@dataclass(frozen=True)
class Param:
    key: str
    kind: str  # one of KINDS
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    doc: str = ""
    unit: str = ""  # of the range, in the README's table
    # the default in the README's table when ``repr`` would not say it
    default_text: str = ""


def _param(key, kind, default, minimum=None, maximum=None, **extra):
    return Param(key, kind, default, minimum, maximum, **extra)


PARAMS = {
    p.key: p
    for p in (
        _param(
            "mail_outbound.claim_timeout",
            "int",
            900,
            1,
            86400,
            unit="s",
            doc="a silent worker's claim is settled after this",
        ),
        _param(
            "mail_outbound.queue_commit_every",
            "int",
            50,
            1,
            1000,
            unit="mails",
            doc="mails between two commits of the queue",
        ),
        _param(
            "mail_outbound.daily_limit",
            "int",
            0,
            0,
            10**9,
            doc="SMTP messages the database sends a day; 0: no limit",
        ),
        _param(
            "mail_outbound.retry_min_backoff",
            "int",
            300,
            1,
            86400,
            unit="s",
            doc="wait before the first retry, doubling",
        ),
        _param(
            "mail_outbound.retry_max_backoff",
            "int",
            4000,
            1,
            7 * 86400,
            unit="s",
            doc="longest wait between retries (never below the minimum)",
        ),
        _param(
            "mail_outbound.retry_lifetime_days",
            "float",
            5.0,
            0.01,
            60,
            unit="days",
            doc="a temporarily refused mail is retried this long",
        ),
        _param(
            "mail_outbound.circuit_threshold",
            "int",
            3,
            1,
            1000,
            doc="failures in a row before a server is paused",
        ),
        _param(
            "mail_outbound.circuit_cooldown",
            "int",
            300,
            1,
            86400,
            unit="s",
            doc="how long it is paused",
        ),
        _param(
            "mail_outbound.delivery_log_days",
            "int",
            30,
            0,
            3650,
            unit="days",
            doc="delivery log kept; 0: forever",
        ),
        _param(
            "mail_outbound.after_data_drop",
            "choice",
            "fail",
            choices=("fail", "retry"),
            doc='a session lost after the end of DATA: fail as "may have been '
            'delivered", or retry (duplicates possible)',
        ),
        _param(
            "mail_outbound.smtp_pipelining",
            "choice",
            "on",
            choices=("on", "off"),
            doc="parallel sessions send MAIL, RCPT and DATA in one round trip "
            "where the server offers PIPELINING (RFC 2920)",
        ),
        _param(
            "mail_outbound.bounce_blacklist_after",
            "int",
            5,
            0,
            1000,
            unit="hard bounces",
            doc="an address is blacklisted for mass mailings after this many "
            "hard bounces; 0: never",
        ),
        _param(
            "mail_outbound.blocked_ports",
            "ports",
            frozenset(),
            default_text="none",
            doc="SMTP ports no outgoing server may use (e.g. 25, blocked by "
            "the hosting operator); a server on one cannot be saved, tested or "
            "used",
        ),
        _param(
            "mail_outbound.enforce_fixed_server_filter",
            "bool",
            False,
            doc="a mail that asks for a server whose FROM filter refuses its "
            "From is sent as the notification address; off: the From is kept, "
            "as in standard Odoo",
        ),
        _param(
            "mail_outbound.smtp_ca_file",
            "path",
            "",
            default_text="none",
            doc="a CA file Test Connection trusts besides the system's "
            "(a private relay)",
        ),
        _param(
            "mail_outbound.dns_nameserver",
            "nameservers",
            "",
            default_text="the system's",
            doc="the DNS resolver asked for the sending domains' records and "
            "DMARC policies",
        ),
    )
}


def parse_nameserver(text):
    """``"127.0.0.1:5353, 10.0.0.1"`` -> ``[("127.0.0.1", 5353), ("10.0.0.1", 53)]``.

    Raises ValueError for anything that is not an IP address and a port.
    """
    servers = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):  # [::1]:5353
            host, _sep, rest = item[1:].partition("]")
            port = rest.lstrip(":") or 53
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            ipaddress.ip_address(host)
            port = int(port)
        except ValueError as error:
            raise ValueError(f"not an IP address and port: {item!r}") from error
        if not 0 < port < 65536:
            raise ValueError(f"port out of range: {item!r}")
        servers.append((host, port))
    return servers


_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def _number(kind, text):
    """``text`` as an int or a float; ValueError for anything else, NaN and
    infinities included (``float("1e309")`` is inf: ``int`` of it would
    raise OverflowError, which nobody expects from a typo)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    if kind == "int":
        if value != int(value):
            raise ValueError(text)
        return int(value)
    return value


def _value(param, text):
    """``text`` (stripped, not empty) read as ``param``'s kind; ValueError
    when it is not one."""
    kind = param.kind
    if kind in ("int", "float"):
        return _number(kind, text)
    if kind == "choice":
        value = text.lower()
        if value not in param.choices:
            raise ValueError(text)
        return value
    if kind == "bool":
        value = text.lower()
        if value not in _TRUE + _FALSE:
            raise ValueError(text)
        return value in _TRUE
    if kind == "ports":
        return frozenset(ports.parse_blocked_ports(text))
    if kind == "path":
        # relative to what? the server's working directory is nobody's
        # choice; a file that is not there would fail every TLS probe
        if not os.path.isabs(text) or not os.path.isfile(text):
            raise ValueError(text)
        return text
    if kind == "nameservers":
        parse_nameserver(text)
        return text
    raise ValueError(f"unknown kind {kind}")


def _shown(param, value):
    if param.default_text and value == param.default:
        return f"({param.default_text})"
    return repr(value) if isinstance(value, str) else str(value)


def parse(key, raw):
    """``(value, warning)`` for the raw text of parameter ``key``.

    ``raw`` None, False (``get_param``'s answer for a parameter that does not
    exist) or blank: the default, no warning. Otherwise a value that is not
    of the parameter's kind, holds a control character (CR, LF, NUL: a
    paste gone wrong) or is not finite gives the default; a number out of
    range gives the nearest bound. ``warning`` is None when the value was
    used as typed, else one English sentence naming ``key``.
    """
    param = PARAMS[key]
    if raw is None or raw is False:
        return param.default, None
    text = str(raw)
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        return param.default, (
            f"{key} is {raw!r}, which holds a control character (CR, LF, NUL...): "
            f"using the default {_shown(param, param.default)}"
        )
    text = text.strip()
    if not text:
        return param.default, None
    try:
        value = _value(param, text)
    except (TypeError, ValueError):
        expected = KINDS[param.kind]
        if param.kind == "choice":
            expected = f"one of {', '.join(param.choices)}"
        return param.default, (
            f"{key} is {raw!r}, not {expected}: using the default "
            f"{_shown(param, param.default)}"
        )
    if param.kind not in ("int", "float"):
        return value, None
    clamped = type(param.default)(min(max(value, param.minimum), param.maximum))
    if clamped != value:
        return clamped, (
            f"{key} is {raw!r}, outside {bound(param, param.minimum)} to "
            f"{bound(param, param.maximum)}: using {clamped}"
        )
    return type(param.default)(value), None


def bound(param, number):
    """A bound of ``param``'s range as its users type it (``1000000000``,
    not ``1e+09``; ``0.01``, not ``0.010000``)."""
    return str(int(number)) if param.kind == "int" else f"{number:g}"


def check(key, value):
    """None when ``value`` is what :func:`parse` uses as typed, else the
    warning :func:`parse` would log (the Settings form refuses it)."""
    return parse(key, value)[1]


def to_text(key, value):
    """The text to store for ``value`` of ``key``, read back the same by
    :func:`parse`; False (no parameter) for an empty value."""
    param = PARAMS[key]
    if param.kind == "bool":
        return str(bool(value))
    if param.kind == "ports":
        return ", ".join(str(port) for port in sorted(value)) or False
    if param.kind in ("int", "float"):
        return repr(type(param.default)(value))
    return str(value).strip() or False


def range_text(param):
    """The range of ``param`` in the README's words."""
    if param.kind == "choice":
        return ", ".join(f"`{choice}`" for choice in param.choices)
    if param.kind not in ("int", "float"):
        return KINDS[param.kind]
    low, high = (f"{bound(param, n)}" for n in (param.minimum, param.maximum))
    if param.kind == "int":
        low, high = (f"{int(n):,}" for n in (param.minimum, param.maximum))
    return f"{low} to {high}" + (f" {param.unit}" if param.unit else "")


def markdown_table():
    """The README's table of parameters, generated from :data:`PARAMS`."""
    lines = ["| parameter | default | range | meaning |", "|---|---|---|---|"]
    for param in PARAMS.values():
        if param.kind == "choice":
            default = f"`{param.default}`"
        elif param.default_text:
            default = param.default_text
        elif isinstance(param.default, bool):
            default = str(param.default)
        else:
            default = f"{param.default:,g}"
        lines.append(
            f"| `{param.key}` | {default} | {range_text(param)} | {param.doc} |"
        )
    lines.append(
        f"| `mail.mail.queue.batch.size` (core's) | 1,000 | 1 to "
        f"{MAX_BATCH_SIZE:,} | mails per queue run |"
    )
    return "\n".join(lines) + "\n"


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
