"""Delivery reports (bounces): who bounced, why, and what kind of bounce.

Odoo 18 core recognises a bounce and finds the address from the first
``Final-Recipient`` it sees, but every bounce is the same to it: a dead
mailbox, a full one and a spam block all count against the recipient. This
module reads the report and classifies each recipient's failure:

``hard``
    the address does not exist or cannot receive mail (RFC 3463 ``5.1.x``,
    a disabled mailbox ``5.2.1``, a domain that accepts no mail: null MX);
``soft``
    temporary, or the mailbox is full (``4.x.x``, ``5.2.2``), and every
    ``Action: delayed`` report (:attr:`RecipientReport.delayed`);
``policy``
    refused because of the sender (``5.7.x``, SPF, DKIM or DMARC failures,
    blocklists): the sending server or domain is at fault, not the recipient.

Standard reports (RFC 3464 ``message/delivery-status``) are read with the
standard library's ``email`` package, one block per recipient (action,
status, diagnostic). Reports in other shapes (Exim's classic text, old
Exchange, qmail...) are recognised by ``flufl.bounce``'s detectors, which
say which addresses failed for good or for now; the diagnostic line is then
the first line of the human-readable part that carries a status code.

Plain Python, no Odoo: the Odoo layer turns a received message into a
:class:`Report` with :func:`parse` and writes the effects.
"""

import email
import email.message
import email.policy
import itertools
import logging
import re
from dataclasses import dataclass

from flufl.bounce import all_failures

_logger = logging.getLogger(__name__)


def _lt(source):
    """Mark ``source`` for translation; the Odoo layer translates it."""
    return source


HARD, SOFT, POLICY = "hard", "soft", "policy"

#: RFC 3463 enhanced status code, as written in a diagnostic text.
_STATUS_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")

#: Words in a diagnostic that say the sender was refused (checked first).
POLICY_WORDS = (
    "spf",
    "dkim",
    "dmarc",
    "blocklist",
    "blacklist",
    "block list",
    "black list",
    "spamhaus",
    "barracuda",
    "spamcop",
    "listed at",
    "listed on",
    "reputation",
    "not accepted from this ip",
    "policy",
    "spam",
)
#: Words that say the mailbox is full or the trouble is temporary.
SOFT_WORDS = (
    "mailbox full",
    "mailbox is full",
    "quota",
    "over quota",
    "insufficient storage",
    "try again later",
    "temporarily",
)
#: Words that say the address cannot receive mail.
HARD_WORDS = (
    "user unknown",
    "unknown user",
    "no such user",
    "does not exist",
    "doesn't exist",
    "not found",
    "recipient not found",
    "invalid recipient",
    "recipient address rejected",
    "mailbox unavailable",
    "mailbox disabled",
    "account disabled",
    "address rejected",
    "nullmx",
    "null mx",
    "does not accept mail",
)

#: RFC 3463 (and RFC 7372, RFC 7505) meanings by subject and detail: the
#: class (2, 4 or 5) says whether it is final, these say what it is about.
DETAIL_TEXTS = {
    "0.0": _lt("no further detail"),
    "1.0": _lt("a problem with the recipient's address"),
    "1.1": _lt("the mailbox does not exist"),
    "1.2": _lt("the recipient's domain does not exist or receives no mail"),
    "1.3": _lt("the recipient's address is not valid"),
    "1.4": _lt("the recipient's address is ambiguous"),
    "1.6": _lt("the mailbox has moved"),
    "1.7": _lt("the sender's address is not valid"),
    "1.8": _lt("the sender's domain is not valid"),
    "1.10": _lt("the recipient was not found (or the domain accepts no mail)"),
    "2.0": _lt("a problem with the recipient's mailbox"),
    "2.1": _lt("the mailbox is disabled"),
    "2.2": _lt("the mailbox is full"),
    "2.3": _lt("the message is too large for the recipient"),
    "2.4": _lt("a mailing list could not be expanded"),
    "3.0": _lt("a problem with the receiving mail system"),
    "3.1": _lt("the receiving mail system is full"),
    "3.2": _lt("the receiving system does not accept mail now"),
    "3.3": _lt("the receiving system lacks a feature the message needs"),
    "3.4": _lt("the message is too large for the receiving server"),
    "3.5": _lt("the receiving system is misconfigured"),
    "4.0": _lt("a network or routing problem"),
    "4.1": _lt("the receiving server did not answer"),
    "4.2": _lt("the connection to the receiving server was lost"),
    "4.3": _lt("a directory (DNS) lookup failed"),
    "4.4": _lt("the recipient's domain cannot be reached"),
    "4.5": _lt("the mail system is congested"),
    "4.6": _lt("the message was caught in a routing loop"),
    "4.7": _lt("the delivery time expired"),
    "5.0": _lt("a mail protocol problem"),
    "5.1": _lt("the receiving server refused a command"),
    "5.2": _lt("the receiving server saw a syntax error"),
    "5.3": _lt("the message has too many recipients"),
    "5.4": _lt("the receiving server refused a command's arguments"),
    "5.5": _lt("the mail protocol versions do not match"),
    "6.0": _lt("a problem with the message's content"),
    "6.1": _lt("the message's content type is not accepted"),
    "6.2": _lt("the content needed a conversion that is not allowed"),
    "6.3": _lt("the content needed a conversion that is not possible"),
    "6.4": _lt("the content was converted with loss"),
    "6.5": _lt("the content conversion failed"),
    "7.0": _lt("a security or policy refusal"),
    "7.1": _lt("the receiving server refused the sender"),
    "7.2": _lt("the mailing list may not be expanded"),
    "7.3": _lt("a security conversion was required"),
    "7.4": _lt("a security feature is not supported"),
    "7.5": _lt("a cryptographic check failed"),
    "7.6": _lt("a cryptographic algorithm is not supported"),
    "7.7": _lt("the message's integrity check failed"),
    "7.8": _lt("the sender's credentials were refused"),
    "7.23": _lt("the sender's SPF check failed"),
    "7.25": _lt("the sending server's IP address has no reverse DNS name"),
    "7.26": _lt("the sender's authentication (SPF, DKIM, DMARC) failed"),
    "7.27": _lt("the sender's domain accepts no mail (null MX)"),
}
#: Provider codes outside RFC 3463 (Microsoft 365), by the whole code.
STATUS_TEXTS = {
    "5.7.606": _lt("the sending server's IP address is on a blocklist"),
    "5.7.708": _lt("the sending server's IP address is not trusted"),
}


def status_text(status):
    """The untranslated meaning of an RFC 3463 ``status``, or ``None``."""
    if status in STATUS_TEXTS:
        return STATUS_TEXTS[status]
    _klass, subject, detail = _split_status(status)
    return DETAIL_TEXTS.get(f"{subject}.{detail}") if subject else None


#: One sentence per class, then what the receiving server said.
CLASS_TEXTS = {
    HARD: _lt(
        "Hard bounce: the address does not exist or cannot receive mail "
        "(%(status)s%(meaning)s). It counts against the recipient."
    ),
    SOFT: _lt(
        "Soft bounce: the mail was not delivered, but the address itself is "
        "not at fault (%(status)s%(meaning)s). It does not count against the "
        "recipient."
    ),
    POLICY: _lt(
        "Policy bounce: the receiving server refused the mail because of the "
        "sender (%(status)s%(meaning)s), e.g. SPF, DKIM, DMARC or a blocklist. "
        "Check the sending server and domain; it does not count against the "
        "recipient."
    ),
    "delayed": _lt(
        "Delivery delayed: the receiving server keeps trying "
        "(%(status)s%(meaning)s). Nothing has failed yet."
    ),
}
DIAGNOSTIC_TEXT = _lt('The receiving server said: "%(diagnostic)s"')
NO_STATUS = _lt("no status code")


@dataclass(frozen=True)
class RecipientReport:
    """What a report says about one recipient."""

    recipient: str
    action: str
    status: str
    diagnostic: str
    bounce_class: str

    @property
    def delayed(self):
        return self.action == "delayed"

    @property
    def failed(self):
        """A failure (hard, soft or policy) that is not only a delay."""
        return bool(self.bounce_class) and not self.delayed


@dataclass(frozen=True)
class Report:
    """A delivery report: one entry per recipient it speaks of.

    ``original_message_id`` is the Message-ID of the mail that bounced, read
    from the returned message or its headers (empty when not returned);
    ``source`` is ``dsn`` (RFC 3464) or ``detector`` (another shape).
    """

    recipients: tuple = ()
    original_message_id: str = ""
    source: str = ""

    def for_recipient(self, address):
        """The entry for ``address`` (compared without case), else the first
        failure, else ``None``."""
        address = (address or "").strip().lower()
        for entry in self.recipients:
            if entry.recipient == address:
                return entry
        return next((e for e in self.recipients if e.bounce_class), None)


def classify(action, status, diagnostic):
    """``hard``, ``soft``, ``policy``, or ``""`` when nothing failed.

    :param str action: the DSN action (``failed``, ``delayed``, ...), or
        ``failed`` / ``delayed`` for a detector's permanent / temporary
    :param str status: RFC 3463 code, e.g. ``5.1.1`` (may be empty)
    :param str diagnostic: the receiving server's text (may be empty)
    """
    action = (action or "").strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return ""
    if action == "delayed":
        return SOFT
    text = (diagnostic or "").lower()
    klass, subject, _detail = _split_status(status)
    # a precise code wins over words; words decide for 5.0.0 or no code
    if klass == "4":
        return SOFT
    if subject == "7":
        return POLICY
    if status == "5.2.2":
        return SOFT
    if subject == "1" or status in ("5.2.1", "5.4.4"):
        return HARD
    for words, bounce_class in (
        (POLICY_WORDS, POLICY),
        (SOFT_WORDS, SOFT),
        (HARD_WORDS, HARD),
    ):
        if any(word in text for word in words):
            return bounce_class
    if subject in ("2", "3", "4", "5", "6"):
        # message size, the remote system, network or protocol: not the address
        return SOFT
    # a permanent failure with nothing more specific: the address refuses mail
    return HARD


def describe(entry, translate=None, diagnostic=True):
    """The class and the diagnostic in plain words, in one paragraph.

    The diagnostic is the receiving server's text, and whoever can write to
    the bounce address can write it: it is quoted, and ``diagnostic=False``
    leaves it out for what employees read (class, code and meaning only).
    """
    translate = translate or (lambda source: source)
    meaning = status_text(entry.status)
    params = {
        "status": entry.status or translate(NO_STATUS),
        "meaning": f": {translate(meaning)}" if meaning else "",
    }
    key = "delayed" if entry.delayed else entry.bounce_class
    text = translate(CLASS_TEXTS[key]) % params
    if diagnostic and entry.diagnostic:
        text += " " + translate(DIAGNOSTIC_TEXT) % {"diagnostic": entry.diagnostic}
    return text


#: What a report may hold before it is read (issue #21): whoever can write
#: to a bounce address can send anything, and the gateway must not pay more
#: for a forged "report" than for an ordinary mail of the same size. A real
#: report has two to four parts, one block per recipient, and a returned copy
#: that is never read beyond its headers.
MAX_PARTS = 50
#: A ``message/delivery-status`` part larger than this is not read.
MAX_STATUS_BYTES = 64 * 1024
#: Recipient blocks read from one report.
MAX_RECIPIENTS = 100
#: Human-readable text scanned for a status line or a pasted copy's headers.
MAX_TEXT_BYTES = 64 * 1024
#: ``flufl.bounce``'s detectors (quadratic on some inputs) run only on a mail
#: this small, of at most ``MAX_DETECTOR_PARTS`` parts, all of them text.
MAX_DETECTOR_BYTES = 64 * 1024
MAX_DETECTOR_PARTS = 4


def parse(message):
    """A :class:`Report` for a received message (``email.message.Message``
    or ``bytes``); an empty one when it is no delivery report, or one beyond
    the limits above (``source`` ``too_large``): its first ``MAX_PARTS``
    parts are walked once, and nothing larger than the limits is decoded."""
    if isinstance(message, bytes | str):
        message = _message_from(message)
    parts = list(itertools.islice(message.walk(), MAX_PARTS + 1))
    if len(parts) > MAX_PARTS:
        _logger.info("A report of more than %s parts was not read", MAX_PARTS)
        return Report((), "", "too_large")
    original = _original_message_id(parts)
    entries = _dsn_entries(parts)
    if entries:
        return Report(tuple(entries), original, "dsn")
    if _detectors_may_read(parts):
        entries = _detector_entries(message, parts)
        if entries:
            return Report(tuple(entries), original, "detector")
    return Report((), original, "")


def _raw_size(part):
    """The size of a leaf part as received, without decoding it."""
    payload = part.get_payload()
    return len(payload) if isinstance(payload, str | bytes) else 0


def _detectors_may_read(parts):
    if len(parts) > MAX_DETECTOR_PARTS:
        return False
    size = 0
    for part in parts:
        if part.is_multipart():
            continue
        if part.get_content_maintype() != "text":
            return False
        size += _raw_size(part)
    return size <= MAX_DETECTOR_BYTES


def _text(part, limit=MAX_TEXT_BYTES):
    """At most ``limit`` characters of a text part, decoded; a part whose
    encoded form is much larger is cut before it is decoded."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return ""
    if len(payload) > 2 * limit:
        encoding = str(part.get("Content-Transfer-Encoding") or "").lower()
        if encoding in ("base64", "quoted-printable"):
            return ""  # an encoded giant: no report writes its text so
        return payload[:limit].replace("\r\n", "\n")
    data = part.get_payload(decode=True) or b""
    return data[:limit].decode("utf-8", "replace").replace("\r\n", "\n")


def _message_from(raw):
    if isinstance(raw, str):
        return email.message_from_string(raw, policy=email.policy.compat32)
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _split_status(status):
    parts = (status or "").strip().split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return "", "", ""
    return parts[0], parts[1], parts[2]


def _best_status(status, diagnostic):
    """The DSN's Status, or the more precise code its diagnostic quotes.

    Many MTAs write ``Status: 5.0.0`` and put the real code in the
    diagnostic (``550 5.1.1 user unknown``).
    """
    status = (status or "").strip().split(" ")[0]
    klass, subject, detail = _split_status(status)
    quoted = _STATUS_CODE.search(diagnostic or "")
    if quoted and (not klass or (subject, detail) == ("0", "0")):
        if not klass or quoted.group(1) == klass:
            return ".".join(quoted.groups())
    return status if klass else ""


def _field_value(block, name):
    """A DSN field without its type prefix (``rfc822;``, ``smtp;``)."""
    value = block.get(name) or ""
    value = " ".join(str(value).split())
    if ";" in value:
        value = value.split(";", 1)[1]
    return value.strip()


def _dsn_entries(parts):
    entries = []
    for part in parts:
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        if not blocks and isinstance(payload, str):
            if len(payload) > MAX_STATUS_BYTES:
                continue
            # some agents send the blocks base64-encoded or as a single text
            text = part.get_payload(decode=True) or payload.encode()
            blocks = [
                _message_from(chunk)
                for chunk in text.decode("utf-8", "replace").split("\n\n")[
                    : MAX_RECIPIENTS + 1
                ]
                if chunk.strip()
            ]
        for block in blocks[: MAX_RECIPIENTS + 1]:
            recipient = _field_value(block, "Final-Recipient") or _field_value(
                block, "Original-Recipient"
            )
            if not recipient:
                continue  # the per-message block (Reporting-MTA, Arrival-Date)
            action = _field_value(block, "Action").lower()
            diagnostic = _field_value(block, "Diagnostic-Code")[:1000]
            status = _best_status(_field_value(block, "Status"), diagnostic)
            entries.append(
                _recipient_report(recipient.strip("<>"), action, status, diagnostic)
            )
            if len(entries) >= MAX_RECIPIENTS:
                return entries
    return entries


def _recipient_report(recipient, action, status, diagnostic):
    return RecipientReport(
        recipient=recipient.lower(),
        action=action,
        status=status,
        diagnostic=diagnostic,
        bounce_class=classify(action, status, diagnostic),
    )


def _detector_entries(message, parts):
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - one odd report must not stop the gateway
        _logger.warning("flufl.bounce could not read a report", exc_info=True)
        return []
    if not (temporary or permanent):
        return []
    diagnostic = _first_status_line(parts)
    status = _best_status("", diagnostic)
    entries = []
    for action, addresses in (("failed", permanent), ("delayed", temporary)):
        for address in sorted(addresses):
            entries.append(
                _recipient_report(
                    address.decode("ascii", "replace"), action, status, diagnostic
                )
            )
    return entries


def _human_text(parts):
    """The report's first text/plain part, without the returned copy."""
    for part in parts:
        if part.get_content_type() == "text/plain":
            return _text(part).split("------ This is a copy of the message")[0]
    return ""


def _first_status_line(parts):
    lines = [" ".join(line.split()) for line in _human_text(parts).splitlines()]
    for index, line in enumerate(lines):
        if _STATUS_CODE.search(line):
            # Exim puts "SMTP error from remote mail server after RCPT TO:"
            # on the line before the reply: keep the reply itself
            return line[:500]
        if line.lower().startswith(("smtp error", "remote host said")):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            return (line + " " + following).strip()[:500]
    return ""


def _original_message_id(parts):
    """The bounced mail's Message-ID: from the returned message or headers,
    else from a copy pasted into the text (Exim's classic report)."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if inner is not None and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            headers = _message_from(_text(part).split("\n\n", 1)[0])
            if headers.get("Message-ID"):
                return str(headers["Message-ID"]).strip()
    for part in parts:
        if part.get_content_type() != "text/plain":
            continue
        text = _text(part)
        for marker in _COPY_MARKERS:
            _before, found, copy = text.partition(marker)
            if found:
                headers = copy.split("\n", 1)[-1].lstrip().split("\n\n", 1)[0]
                copied = _message_from(headers)
                if copied.get("Message-ID"):
                    return str(copied["Message-ID"]).strip()
    return ""


#: The lines after which a plain-text report pastes the returned mail.
_COPY_MARKERS = (
    "------ This is a copy of the message",  # Exim
    "--- Below this line is a copy of the message",  # qmail
)
