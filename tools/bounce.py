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

#: Plain words for the status codes people meet most.
STATUS_TEXTS = {
    "5.1.1": _lt("the mailbox does not exist"),
    "5.1.2": _lt("the recipient's domain does not exist or receives no mail"),
    "5.1.3": _lt("the recipient's address is not valid"),
    "5.1.6": _lt("the mailbox has moved"),
    "5.1.10": _lt("the recipient was not found (or the domain accepts no mail)"),
    "5.2.1": _lt("the mailbox is disabled"),
    "5.2.2": _lt("the mailbox is full"),
    "5.2.3": _lt("the message is too large for the recipient"),
    "5.4.4": _lt("the recipient's domain cannot be reached"),
    "5.7.1": _lt("the receiving server refused the sender"),
    "5.7.23": _lt("the sender's SPF check failed"),
    "5.7.25": _lt("the sending server's IP address has no reverse DNS name"),
    "5.7.26": _lt("the sender's authentication (SPF, DKIM, DMARC) failed"),
    "5.7.606": _lt("the sending server's IP address is on a blocklist"),
    "5.7.708": _lt("the sending server's IP address is not trusted"),
}

#: One sentence per class, then what the receiving server said.
CLASS_TEXTS = {
    HARD: _lt(
        "Hard bounce: the address does not exist or cannot receive mail "
        "(%(status)s%(meaning)s). It counts against the recipient."
    ),
    SOFT: _lt(
        "Soft bounce: the mailbox is full or the receiving server had a "
        "temporary problem (%(status)s%(meaning)s). It does not count against "
        "the recipient."
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
DIAGNOSTIC_TEXT = _lt("The receiving server said: %(diagnostic)s")
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


def describe(entry, translate=None):
    """The class and the diagnostic in plain words, in one paragraph."""
    translate = translate or (lambda source: source)
    meaning = STATUS_TEXTS.get(entry.status)
    params = {
        "status": entry.status or translate(NO_STATUS),
        "meaning": f": {translate(meaning)}" if meaning else "",
    }
    key = "delayed" if entry.delayed else entry.bounce_class
    text = translate(CLASS_TEXTS[key]) % params
    if entry.diagnostic:
        text += " " + translate(DIAGNOSTIC_TEXT) % {"diagnostic": entry.diagnostic}
    return text


def parse(message):
    """A :class:`Report` for a received message (``email.message.Message``
    or ``bytes``); an empty one when it is no delivery report."""
    if isinstance(message, bytes | str):
        message = _message_from(message)
    original = _original_message_id(message)
    entries = _dsn_entries(message)
    if entries:
        return Report(tuple(entries), original, "dsn")
    entries = _detector_entries(message)
    if entries:
        return Report(tuple(entries), original, "detector")
    return Report((), original, "")


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


def _dsn_entries(message):
    entries = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        if not blocks and isinstance(payload, str):
            # some agents send the blocks base64-encoded or as a single text
            text = part.get_payload(decode=True) or payload.encode()
            blocks = [
                _message_from(chunk)
                for chunk in text.decode("utf-8", "replace").split("\n\n")
                if chunk.strip()
            ]
        for block in blocks:
            recipient = _field_value(block, "Final-Recipient") or _field_value(
                block, "Original-Recipient"
            )
            if not recipient:
                continue  # the per-message block (Reporting-MTA, Arrival-Date)
            action = _field_value(block, "Action").lower()
            diagnostic = _field_value(block, "Diagnostic-Code")
            status = _best_status(_field_value(block, "Status"), diagnostic)
            entries.append(
                _recipient_report(recipient.strip("<>"), action, status, diagnostic)
            )
    return entries


def _recipient_report(recipient, action, status, diagnostic):
    return RecipientReport(
        recipient=recipient.lower(),
        action=action,
        status=status,
        diagnostic=diagnostic,
        bounce_class=classify(action, status, diagnostic),
    )


def _detector_entries(message):
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - one odd report must not stop the gateway
        _logger.warning("flufl.bounce could not read a report", exc_info=True)
        return []
    if not (temporary or permanent):
        return []
    diagnostic = _first_status_line(message)
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


def _human_text(message):
    """The report's first text/plain part, without the returned copy."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            return text.split("------ This is a copy of the message")[0]
    return ""


def _first_status_line(message):
    lines = [" ".join(line.split()) for line in _human_text(message).splitlines()]
    for index, line in enumerate(lines):
        if _STATUS_CODE.search(line):
            # Exim puts "SMTP error from remote mail server after RCPT TO:"
            # on the line before the reply: keep the reply itself
            return line[:500]
        if line.lower().startswith(("smtp error", "remote host said")):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            return (line + " " + following).strip()[:500]
    return ""


def _original_message_id(message):
    """The bounced mail's Message-ID: from the returned message or headers,
    else from a copy pasted into the text (Exim's classic report)."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if inner is not None and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            headers = _message_from(text)
            if headers.get("Message-ID"):
                return str(headers["Message-ID"]).strip()
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            _before, marker, copy = text.partition(
                "------ This is a copy of the message"
            )
            if marker:
                copied = _message_from(copy.split("\n", 1)[-1].lstrip())
                if copied.get("Message-ID"):
                    return str(copied["Message-ID"]).strip()
    return ""
