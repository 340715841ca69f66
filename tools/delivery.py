"""Delivery failures, retries and server health, as a mail transfer agent does.

Odoo core puts a mail in exception at the first failure of any kind and
never retries. A mail transfer agent (Postfix's deferred queue) tells
temporary failures (4xx replies, a server that cannot be reached) from
permanent ones (5xx), retries the former with an exponential backoff up to a
queue lifetime, and stops sending to a server that keeps failing. This
module is that policy as plain functions over plain data; the Odoo layer
classifies what ``smtplib`` raised, writes the decision back on the mail and
logs the attempt.

Nothing here imports odoo; the clock and the randomness are passed in.
"""

import random
import smtplib
import socket
import ssl
from dataclasses import dataclass
from datetime import timedelta

TEMPORARY, PERMANENT = "temporary", "permanent"

# What became of one mail's attempt (see attempt_outcome).
SENT, PARTIAL, DEFERRED, FAILED, MAYBE_DELIVERED = (
    "sent",
    "partial",
    "deferred",
    "failed",
    "maybe_delivered",
)


class DroppedAfterData(smtplib.SMTPException):
    """The whole message went out, then the session was lost (no reply, a
    timeout): the server may have queued it. Not a SMTPServerDisconnected on
    purpose: core aborts a batch on that, while this is one mail's outcome."""


@dataclass(frozen=True)
class Failure:
    """What went wrong with one attempt, and what it means for the mail.

    ``server_health``: the failure says the *server* is unusable (cannot be
    reached, refuses the login, TLS breaks), so other mails would fail the
    same way there: fail over, count it for the circuit breaker. Otherwise
    it concerns this message only (a refused recipient).
    """

    kind: str
    code: int
    text: str
    stage: str
    server_health: bool
    failure_type: str

    @property
    def temporary(self):
        return self.kind == TEMPORARY

    @classmethod
    def unreachable(cls, text, code=0):
        """No session to the server (it refused, closed every session, or
        its port is blocked): temporary, and about the server."""
        return cls(TEMPORARY, code, text, "connect", True, "mail_smtp")

    @classmethod
    def held(cls, text):
        """Held back before any server saw it (a limit): temporary."""
        return cls(TEMPORARY, 0, text, "limit", False, "mail_smtp")


def last_failure(attempts, connect_failure=None):
    """What a mail's attempts met last: the batch's connection failure, else
    the last failed attempt's; None when nothing failed.

    >>> ok, bad = Attempt(1, True), Attempt(1, False, failure="451")
    >>> last_failure([bad, ok]), last_failure([ok]), last_failure([], "refused")
    ('451', None, 'refused')
    """
    if connect_failure is not None:
        return connect_failure
    return next(
        (attempt.failure for attempt in reversed(attempts) if attempt.failure), None
    )


def classify_reply(code, text, stage="data"):
    """A failure from an SMTP reply code (4xx temporary, 5xx permanent)."""
    code = int(code or 0)
    temporary = 400 <= code < 500
    if stage == "mail_from":
        failure_type = "mail_smtp" if temporary else "mail_from_invalid"
    elif stage == "rcpt":
        failure_type = "mail_smtp" if temporary else "mail_email_invalid"
    else:
        failure_type = "mail_smtp"
    return Failure(
        kind=TEMPORARY if temporary else PERMANENT,
        code=code,
        text=text,
        stage=stage,
        # 421 means "service not available, closing": the server, not the mail
        server_health=code == 421,
        failure_type=failure_type,
    )


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _cause(exc):
    """The smtplib/socket error inside an Odoo MailDeliveryException.

    Core wraps the original error as ``MailDeliveryException(title, msg)``
    with the exception chained; duck-typed so this module needs no odoo.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (smtplib.SMTPException, OSError)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def classify(exc):
    """A :class:`Failure` for an exception raised while sending."""
    error = _cause(exc)
    if isinstance(error, DroppedAfterData):
        return Failure(
            PERMANENT,
            0,
            str(error) or "connection lost after the end of DATA",
            "after_data",
            False,
            "mail_smtp",
        )
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in error.recipients.values()]
        texts = "; ".join(
            f"{rcpt}: {code} {_decode(text)}"
            for rcpt, (code, text) in error.recipients.items()
        )
        # any temporary refusal: retry; only permanent ones: the address
        temporary = any(400 <= code < 500 for code in codes)
        return Failure(
            kind=TEMPORARY if temporary else PERMANENT,
            code=min(codes) if temporary else max(codes),
            text=texts,
            stage="rcpt",
            server_health=False,
            failure_type="mail_smtp" if temporary else "mail_email_invalid",
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        # the mail is fine, the server's account is not: defer and fail over
        return Failure(
            TEMPORARY,
            error.smtp_code,
            _decode(error.smtp_error),
            "auth",
            True,
            "mail_smtp",
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        if error.smtp_code == 530:
            # "authentication required": the server's login did not hold
            # (an OAuth login whose refusal its module ignored), not the
            # sender's fault: defer, as for a refused login
            return Failure(
                TEMPORARY,
                530,
                _decode(error.smtp_error),
                "auth",
                True,
                "mail_smtp",
            )
        failure = classify_reply(
            error.smtp_code, _decode(error.smtp_error), "mail_from"
        )
        return failure
    if isinstance(error, smtplib.SMTPResponseException):
        stage = "connect" if isinstance(error, smtplib.SMTPConnectError) else "data"
        failure = classify_reply(error.smtp_code, _decode(error.smtp_error), stage)
        if stage == "connect":
            return Failure(
                failure.kind, failure.code, failure.text, stage, True, "mail_smtp"
            )
        return failure
    if isinstance(error, ssl.SSLError):
        return Failure(TEMPORARY, 0, str(error), "tls", True, "mail_smtp")
    if isinstance(
        error,
        (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, OSError),
    ):
        return Failure(
            TEMPORARY,
            0,
            str(error) or error.__class__.__name__,
            "connect",
            True,
            "mail_smtp",
        )
    # not an SMTP or network error: a bug or bad data, retrying will not help
    text = str(exc) or exc.__class__.__name__
    return Failure(PERMANENT, 0, text, "unknown", False, "unknown")


def attempt_outcome(failure, delivered, retry_after_data=False):
    """What to do with a mail after its attempt.

    ``failure``: the attempt's :class:`Failure`, None when nothing failed.
    ``delivered``: a server accepted it for at least one recipient.
    ``retry_after_data``: a session lost after the end of DATA is retried
    (Postfix's way, duplicates possible) instead of failed as
    "may have been delivered" (the default: never twice).

    A copy lost after the end of DATA is in doubt even when the mail's
    earlier copies were accepted (a notification, one copy per follower):
    "may have been delivered", never "refused", and never retried then,
    which would send the accepted copies again.
    """
    if failure is None:
        return SENT
    if failure.stage == "after_data":
        if retry_after_data and not delivered:
            return DEFERRED
        return MAYBE_DELIVERED
    if delivered:
        return PARTIAL
    return DEFERRED if failure.temporary else FAILED


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again; defaults after Postfix.

    ``minimal_backoff`` (Postfix ``minimal_backoff_time``, 300 s) doubles at
    each attempt up to ``maximal_backoff`` (``maximal_backoff_time``,
    4000 s); a mail still undelivered ``lifetime`` after its first attempt
    (``maximal_queue_lifetime``, 5 days) gives up. ``jitter`` spreads the
    retries of a batch so they do not all hit the server at once.
    """

    minimal_backoff: int = 300
    maximal_backoff: int = 4000
    lifetime: int = 5 * 24 * 3600
    jitter: float = 0.2


def next_attempt(policy, attempts, now, first_attempt, rng=None):
    """After ``attempts`` failed attempts: ``(when, None)`` or ``(None, reason)``.

    ``reason`` is English for the log; the Odoo layer words its own message.
    """
    rng = rng or random.Random()
    delay = min(
        policy.minimal_backoff * 2 ** max(attempts - 1, 0), policy.maximal_backoff
    )
    delay *= 1 + rng.uniform(-policy.jitter, policy.jitter)
    when = now + timedelta(seconds=max(delay, 1))
    deadline = (first_attempt or now) + timedelta(seconds=policy.lifetime)
    if when > deadline:
        return None, "queue lifetime exceeded"
    return when, None


@dataclass(frozen=True)
class CircuitPolicy:
    """After ``threshold`` server failures in a row, rest it ``cooldown`` s."""

    threshold: int = 3
    cooldown: int = 300


def circuit_after_failure(failures, now, policy):
    """``(failures, open_until)`` once a server failed once more."""
    failures += 1
    if failures >= policy.threshold:
        return failures, now + timedelta(seconds=policy.cooldown)
    return failures, None


def circuit_is_open(open_until, now):
    """Skip the server until ``open_until``; after it, one try (half-open)."""
    return bool(open_until) and now < open_until


def settle_interrupted(batches, pending, handed_over, widths=None, ended=None):
    """What a worker that stopped mid-queue leaves to settle.

    ``batches``: the mail ids of each batch the worker marked, in the order
    it sends them. ``pending``: the ids still queued (and not deferred) in
    the database, i.e. whose outcome was never committed. ``handed_over``:
    ``{mail_id: delivered}`` for every mail the worker finished with, as it
    recorded them outside its transaction. ``ended``: the ids of the mails
    one of whose messages was about to end its DATA, as the worker marked
    them outside its transaction before sending that end (the only moment
    after which a server may deliver a message).

    Returns ``(delivered, interrupted)``. ``delivered``: finished and
    accepted by a server (to at least one recipient), but not recorded so:
    they must be marked sent, never sent again. ``interrupted``: pending,
    never finished, and marked as ending their DATA: the server may have
    them. Every other unfinished mail certainly reached no recipient and is
    queued again. Finished but undelivered mails (refused, deferred) are in
    neither: trying them again sends nothing twice.

    Without ``ended`` (records of a run that made no such marks), the
    first ``width`` pending mails the worker never finished in each batch
    (``widths``, 1 when not given): a worker starts mails in the batch's
    order and records each before its session takes another, so the mails
    it was handing over are among them.

    >>> settle_interrupted([[1, 2, 3, 4]], {2, 3, 4}, {2: True}, [4], ended={3})
    ([2], [3])
    """
    delivered, interrupted = [], []
    for index, mail_ids in enumerate(batches):
        width = max(1, int(widths[index] or 1)) if widths else 1
        unfinished = 0
        for mail_id in mail_ids:
            if mail_id not in pending:
                continue
            if mail_id in handed_over:
                if handed_over[mail_id]:
                    delivered.append(mail_id)
                continue
            if ended is not None:
                if mail_id in ended:
                    interrupted.append(mail_id)
            elif unfinished < width:
                interrupted.append(mail_id)
                unfinished += 1
    return delivered, interrupted


def served_before_doubt(marks):
    """The partners a mail in doubt certainly reached, from its end-of-DATA
    marks ``[(item, partner_id)]``: a session sends a mail's messages one
    after the other and stops at the first error, so every message marked
    before the last one was accepted; the last one is the one in doubt.

    >>> served_before_doubt([(1, 8), (0, 7), (2, 9)])
    [7, 8]
    >>> served_before_doubt([(0, None), (1, 5)]), served_before_doubt([(0, 4)])
    ([], [])
    """
    ordered = sorted(marks, key=lambda mark: mark[0])
    return [partner_id for _item, partner_id in ordered[:-1] if partner_id]


@dataclass
class Attempt:
    """One hand-over to a server (one ``send_email``), as the log shows it."""

    server_id: int | None
    ok: bool
    code: int = 0
    text: str = ""
    recipients: int = 0
    duration_ms: int = 0
    failure: Failure | None = None
    email_from: str = ""  # the From header the server received
    envelope_from: str = ""  # the MAIL FROM it received


def failover_candidates(server_id, ordered, carries, open_until, now):
    """The servers a batch meant for ``server_id`` tries, in order.

    ``ordered``: server ids in the documented order, within the batch's
    failover scope (``routing.failover_scope``). ``carries``: the ids of
    those carrying the batch's kind of mail (transactional or mass).
    ``open_until``: ``{server_id: end of its pause or None}``.

    The batch's own server first, then the others carrying the same kind of
    mail in the documented order; a server whose circuit is open is skipped,
    the batch's own one included.
    """
    ids = [server_id, *(i for i in ordered if i in carries and i != server_id)]
    return [i for i in ids if not circuit_is_open(open_until.get(i), now)]
