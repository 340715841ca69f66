"""Addresses, domains and FROM filters as plain strings.

The routing core compares a message's From with servers' FROM filters. Odoo
core compares lower-cased strings, so ``bücher.example`` in a filter never
matches ``a@xn--bcher-kva.example`` and ``example.com.`` never matches
``example.com``. Here both sides are reduced to one key first: a lower-case
local part when it is ASCII (as ``odoo.tools.email_normalize`` does) and the
ASCII (IDNA A-label) form of the domain.

Nothing here imports odoo, so the pure test suite runs without it.
"""

import functools
import re
from email.utils import getaddresses

try:  # IDNA 2008, shipped with Odoo's requirements
    import idna as _idna
except ImportError:  # pragma: no cover - stdlib IDNA 2003 is close enough
    _idna = None

# RFC 5322 specials that must be escaped inside a quoted display name.
_QUOTE_ESCAPES = re.compile(r'[\\"]')
# DNS labels; "_" is legal in DNS (_dmarc) and seen in real filters.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# What an SMTP provider accepts as a local part in practice (dot-atom), without
# the quoted-string form nobody configures in a FROM filter.
_LOCAL_PART = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+$")


class FilterError(ValueError):
    """A FROM filter part that is neither a domain nor an address.

    ``part`` is the offending piece as typed and ``problem`` one of
    ``header_injection``, ``not_domain_or_address``, ``display_name``,
    ``empty_part``, so the caller can word a translatable message.
    """

    def __init__(self, part, problem):
        super().__init__(f"{problem}: {part!r}")
        self.part = part
        self.problem = problem


class DomainNameError(ValueError):
    """A name that is not a DNS domain name.

    ``problem`` is one of ``empty``, ``too_long`` (over 253 characters in
    ASCII form), ``label_too_long`` (a label over 63, ``label`` names it),
    ``empty_label``, ``bad_label`` (characters DNS hosts cannot carry, or an
    IDN that does not encode), so the caller can word a translatable message.
    """

    def __init__(self, name, problem, label=""):
        super().__init__(f"{problem}: {name[:80]!r}")
        self.name = name
        self.problem = problem
        self.label = label


# RFC 1035 2.3.4 and RFC 1123 2.1
DOMAIN_NAME_MAX = 253
LABEL_MAX = 63


def check_domain_name(name):
    """The ASCII (A-label) form of the domain ``name``, or DomainNameError.

    A trailing dot is accepted (absolute name) and dropped. IDNs are
    encoded with IDNA 2008 (UTS 46), as :func:`domain_key` does.
    """
    text = (name or "").strip().rstrip(".")
    if not text:
        raise DomainNameError(name or "", "empty")
    # cut short before encoding: a 100,000-character name is not looked at
    if len(text) > DOMAIN_NAME_MAX * 4:
        raise DomainNameError(text, "too_long")
    labels = text.split(".")
    for label in labels:
        if not label:
            raise DomainNameError(text, "empty_label")
        if label.isascii() and len(label) > LABEL_MAX:
            raise DomainNameError(text, "label_too_long", label)
    ascii_name = domain_key(text)
    if not ascii_name:
        raise DomainNameError(text, "bad_label")
    for label in ascii_name.split("."):
        if len(label) > LABEL_MAX:
            raise DomainNameError(text, "label_too_long", label)
        if not _LABEL.match(label):
            raise DomainNameError(text, "bad_label", label)
    if len(ascii_name) > DOMAIN_NAME_MAX:
        raise DomainNameError(text, "too_long")
    return ascii_name


def has_line_break(value):
    """True when ``value`` could inject a header (CR, LF or NUL)."""
    return bool(value) and any(char in value for char in "\r\n\0")


@functools.lru_cache(maxsize=4096)
def domain_key(domain):
    """Comparable form of a domain: lower case, no trailing dot, A-labels.

    Returns ``""`` for an empty or unencodable domain, so that it matches
    nothing rather than raising in the middle of a send.
    """
    domain = (domain or "").strip().rstrip(".").lower()
    if not domain:
        return ""
    if domain.isascii():
        return domain
    try:
        if _idna is not None:
            return _idna.encode(domain, uts46=True).decode("ascii")
        return domain.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        # idna.IDNAError subclasses UnicodeError
        return ""


# The forms Odoo itself writes (formataddr, bare addresses), ASCII addresses:
# what the email package's parser gives for them is certain, and reading them
# with a regular expression is a tenth of its cost (issue #10: the routing
# parses every message's From). Everything else goes to the parser.
_SIMPLE_ADDRESS = (
    r"[A-Za-z0-9_%+=-]+(?:\.[A-Za-z0-9_%+=-]+)*@[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*"
)
_SIMPLE_FORMS = re.compile(
    rf'(?:"(?P<quoted>[^"\\\x00-\x1f\x7f]*)" <(?P<in_quoted>{_SIMPLE_ADDRESS})>'
    rf"|(?P<words>[A-Za-z0-9]+(?: [A-Za-z0-9]+)*) <(?P<in_words>{_SIMPLE_ADDRESS})>"
    rf"|(?P<bare>{_SIMPLE_ADDRESS}))"
)


def _parse_simple_address(text):
    """``(name, address)`` for the simple forms, ``None`` for anything else."""
    match = _SIMPLE_FORMS.fullmatch(text)
    if match is None:
        return None
    if match["bare"]:
        return "", match["bare"]
    if match["in_quoted"]:
        return match["quoted"], match["in_quoted"]
    return match["words"], match["in_words"]


def _parse_any_address(text):
    """``(name, address)`` as the email package reads ``text``."""
    pairs = [pair for pair in getaddresses([text]) if pair[1] and "@" in pair[1]]
    if len(pairs) != 1:
        return "", ""
    name, address = pairs[0]
    local, _at, domain = address.rpartition("@")
    if not local or not domain:
        return "", ""
    return name, address


@functools.lru_cache(maxsize=4096)
def parse_address(text):
    """Return ``(name, address)`` for a single address in ``text``.

    ``text`` may be ``"Name" <local@domain>`` or a bare address. Anything that
    is not exactly one address with an ``@`` gives ``("", "")``: like
    ``email_normalize(strict=True)`` in core, a header holding two addresses is
    not a sender.
    """
    if not text or has_line_break(text):
        return "", ""
    return _parse_simple_address(text) or _parse_any_address(text)


@functools.lru_cache(maxsize=4096)
def address_key(text):
    """Comparable form of the address in ``text``, ``""`` when there is none."""
    _name, address = parse_address(text)
    if not address:
        return ""
    local, _at, domain = address.rpartition("@")
    key_domain = domain_key(domain)
    if not key_domain:
        return ""
    # Local parts are case-sensitive per RFC 5322 but no provider treats them
    # so; core lowers ASCII ones too, non-ASCII ones are SMTPUTF8 and kept.
    return f"{local.lower() if local.isascii() else local}@{key_domain}"


def address_domain_key(text):
    """Comparable domain of the address in ``text``."""
    key = address_key(text)
    return key.rpartition("@")[2] if key else ""


def format_address(name, address):
    """``"Name" <address>`` as core's ``formataddr`` writes it (UTF-8 charset).

    Non-ASCII names are kept as such: the ``email`` package encodes them
    (RFC 2047) when the message is serialised, which is also what core does.
    """
    if not name:
        return address
    quoted = _QUOTE_ESCAPES.sub(r"\\\g<0>", name)
    return f'"{quoted}" <{address}>'


def encapsulate(original_from, new_address):
    """Send as ``new_address`` but keep the sender's name, like core does.

    ``"Mary" <mary@customer.example>`` becomes ``"Mary" <notifications@x>``;
    a bare ``mary@customer.example`` becomes ``"mary" <notifications@x>``.
    """
    _new_name, address = parse_address(new_address)
    if not address:
        return new_address
    name, old_address = parse_address(original_from)
    if not old_address:
        return address
    return format_address(name or old_address.rpartition("@")[0], address)


def split_filter(from_filter):
    """The comma-separated parts of a FROM filter, stripped, empties dropped."""
    return [part.strip() for part in (from_filter or "").split(",") if part.strip()]


def check_filter_part(part):
    """Raise :class:`FilterError` unless ``part`` is a domain or an address."""
    if has_line_break(part):
        raise FilterError(part, "header_injection")
    if "<" in part or ">" in part or '"' in part:
        raise FilterError(part, "display_name")
    local, at, domain = part.rpartition("@")
    if at and not _LOCAL_PART.match(local):
        raise FilterError(part, "not_domain_or_address")
    key = domain_key(domain)
    labels = key.split(".") if key else []
    if not labels or not all(_LABEL.match(label) for label in labels):
        raise FilterError(part, "not_domain_or_address")


def check_filter(from_filter):
    """Validate a whole FROM filter; return its normalised text.

    Empty parts (``"a.com,,b.com"``) are tolerated and dropped, as core's
    parser does, but not a filter of nothing else; every other part must be
    a domain or an address.
    """
    if has_line_break(from_filter):
        raise FilterError(from_filter, "header_injection")
    parts = split_filter(from_filter)
    if from_filter and from_filter.strip() and not parts:
        # "," is no filter at all: stored, it would let the server send as anyone
        raise FilterError(from_filter, "empty_part")
    for part in parts:
        check_filter_part(part)
    return ", ".join(parts)


@functools.lru_cache(maxsize=1024)
def parse_filter(raw):
    """The :class:`FromFilter` for ``raw``, parsed once per distinct value.

    The routing reads every server's filter for every message; filters
    change rarely, so parsing them once matters with many servers.
    """
    return FromFilter(raw)


class FromFilter:
    """A parsed FROM filter: the addresses and domains a server may send as.

    An empty filter allows every sender (core's ``_match_from_filter``).
    Treat instances as immutable: :func:`parse_filter` shares them.
    """

    __slots__ = ("addresses", "domains", "raw")

    def __init__(self, raw):
        self.raw = raw or ""
        self.addresses = set()
        self.domains = set()
        for part in split_filter(raw):
            if "@" in part:
                key = address_key(part)
                if key:
                    self.addresses.add(key)
            else:
                key = domain_key(part)
                if key:
                    self.domains.add(key)

    def __bool__(self):
        return bool(self.raw.strip(", \t"))

    def matches_address(self, address):
        """The filter lists this exact address."""
        key = address_key(address)
        return bool(key) and key in self.addresses

    def matches_domain(self, address):
        """The filter lists the domain of this address."""
        key = address_domain_key(address)
        return bool(key) and key in self.domains

    def allows(self, address):
        """The server may send as ``address`` (an empty filter allows all)."""
        if not self:
            return True
        return self.matches_address(address) or self.matches_domain(address)
