"""Several SMTP sessions to one server at once: the queue's lanes.

Against a real server each SMTP command waits for a round trip; one session
hands over one mail at a time, so a provider 20 ms away caps a worker at a
dozen mails a second however fast the rest is. Postfix keeps many sessions
per destination open for that reason. :class:`Lanes` keeps up to ``width``
sessions to one server, each used by one thread at a time; the caller (the
worker's own thread, which owns the database transaction) prepares every
message, hands it to a free lane, and takes the results back in the order
they finish. Only ``session.send_message`` runs in the lanes' threads.

Guarantee kept for the queue: the caller submits mails in the order it
marked them, and takes a lane back only after it recorded the mail that
lane finished, so at most ``width`` mails are ever handed over and not yet
recorded; of those, :func:`~.delivery.settle_interrupted` fails as "may
have been delivered" after a crash only the ones whose end of DATA the
caller marked (``Job.before_end``), the others are queued again.

Never imports odoo: sessions are whatever ``connect`` returns (smtplib).
"""

import functools
import logging
import queue
import smtplib
import threading
import time
from dataclasses import dataclass, field

from .delivery import DroppedAfterData

_logger = logging.getLogger(__name__)


@dataclass
class Sent:
    """One message handed to a session: the server's reply or the error."""

    ok: bool
    error: BaseException | None = None
    code: int = 0
    reply: str = ""
    email_from: str = ""  # the From header the server received
    envelope_from: str = ""  # the MAIL FROM it received
    duration_ms: int = 0


@dataclass
class Job:
    """One mail: its messages, sent one after the other on one session.

    ``items``: ``(message, smtp_from, smtp_to_list)`` as prepared by the
    caller; ``data``: whatever the caller needs back with the result;
    ``before_end``: called in the lane's thread just before each message
    ends its DATA (the session layer calls its ``mail_outbound_before_end``;
    a session without that layer never calls it).
    """

    items: list
    data: object = None
    before_end: object = None
    results: list = field(default_factory=list)
    lane: object = None  # the session that sent it (its server)


def decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value or "")


def elapsed_ms(started):
    return int((time.monotonic() - started) * 1000)


def read_sent(session, started, envelope_from=""):
    """What ``session``'s server answered for the message just handed over
    on it, as the session reader noted it (``ir.mail_server._track_session``):
    the final DATA reply with the provider's queue id
    (``mail_outbound_reply``), the From and envelope it received
    (``mail_outbound_sent``); a session without the reader (a test double)
    gives 250 and ``envelope_from``."""
    code, reply = getattr(session, "mail_outbound_reply", (250, b""))
    email_from, envelope = getattr(session, "mail_outbound_sent", ("", envelope_from))
    return Sent(
        ok=True,
        code=code,
        reply=decode(reply),
        email_from=email_from,
        envelope_from=envelope,
        duration_ms=elapsed_ms(started),
    )


def send_items(session, items):
    """Hand ``items`` over on ``session``, stopping at the first error.

    Reads what the session layer noted for each message (the final reply,
    what was sent as) when it has it: ``mail_outbound_reply`` and
    ``mail_outbound_sent`` (see ``ir.mail_server._track_session``).
    """
    results = []
    for message, smtp_from, smtp_to_list in items:
        started = time.monotonic()
        try:
            session.send_message(message, smtp_from, smtp_to_list)
        except Exception as error:  # noqa: BLE001 - handed back to the caller
            results.append(Sent(ok=False, error=error, duration_ms=elapsed_ms(started)))
            return results
        results.append(read_sent(session, started, smtp_from))
    return results


def _optionlist(smtp, options):
    return " " + " ".join(options) if options and smtp.does_esmtp else ""


def _close_or_reset(smtp, code):
    # smtplib's rule: a 421 closes the session, anything else resets it
    if code == 421:
        smtp.close()
    else:
        smtp._rset()


def _envelope_commands(smtp, from_addr, to_addrs, size, mail_options, rcpt_options):
    """MAIL, RCPT and DATA as ``sendmail`` would send them one by one."""
    options = []
    if smtp.does_esmtp:
        if smtp.has_extn("size"):
            options.append(f"size={size}")
        options.extend(mail_options)
        if any(option.lower() == "smtputf8" for option in options):
            if not smtp.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            smtp.command_encoding = "utf-8"
    quote = smtplib.quoteaddr
    return [
        f"mail FROM:{quote(from_addr)}{_optionlist(smtp, options)}",
        *(
            f"rcpt TO:{quote(rcpt)}{_optionlist(smtp, rcpt_options)}"
            for rcpt in to_addrs
        ),
        "data",
    ]


def _read_replies(smtp, count):
    """``count`` replies, or those before the server closed the session."""
    replies = []
    try:
        while len(replies) < count:
            replies.append(smtp.getreply())
    except smtplib.SMTPServerDisconnected:
        # a server closes after a 421 without answering the rest; a session
        # lost with nothing refused yet is a lost session
        if all(code in (250, 251) for code, _reply in replies):
            raise
        smtp.close()
    return replies


def _judge_envelope(smtp, from_addr, to_addrs, replies):
    """Raise what ``sendmail`` raises for these replies; else the refused
    recipients."""
    mail_code, mail_reply = replies[0]
    complete = len(replies) == len(to_addrs) + 2
    if mail_code != 250:
        if complete:
            _close_or_reset(smtp, mail_code)
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, from_addr)
    refused = {}
    for rcpt, (code, reply) in zip(to_addrs, replies[1:], strict=False):
        if code not in (250, 251):
            refused[rcpt] = (code, reply)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if not complete:
        # closed before answering DATA: the refusals say it all, or the
        # session was lost
        if len(refused) == len(to_addrs):
            raise smtplib.SMTPRecipientsRefused(refused)
        raise smtplib.SMTPServerDisconnected("connection lost before DATA")
    data_code, data_reply = replies[-1]
    if len(refused) == len(to_addrs):
        if data_code == 354:
            # a server that opened DATA anyway: an empty message, refused
            # for want of recipients, ends it
            smtp.send(b".\r\n")
            smtp.getreply()
        smtp._rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    if data_code != 354:
        _close_or_reset(smtp, data_code)
        raise smtplib.SMTPDataError(data_code, data_reply)
    return refused


def pipelined_sendmail(
    smtp, from_addr, to_addrs, msg, mail_options=(), rcpt_options=(), outer=None
):
    """``smtplib.SMTP.sendmail`` with MAIL, RCPT and DATA in one round trip.

    RFC 2920 (PIPELINING): a client may send MAIL, every RCPT and DATA in
    one write and read their replies afterwards; the message then follows
    the 354. Two round trips a mail instead of three plus one per
    recipient. Every reply is read and judged as ``sendmail`` judges it,
    with the same exceptions: a refused sender raises
    ``SMTPSenderRefused``, every recipient refused ``SMTPRecipientsRefused``,
    a refused DATA or message ``SMTPDataError``; some recipients refused
    are returned, as ``sendmail`` does. A session lost once the whole
    message was sent raises :class:`~.delivery.DroppedAfterData`. Without
    PIPELINING in the server's EHLO, plain ``sendmail``.

    ``outer``: the object the queue reads the final reply from
    (``mail_outbound_reply``), when ``smtp`` is wrapped.
    """
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("pipelining"):
        return smtplib.SMTP.sendmail(
            smtp, from_addr, to_addrs, msg, mail_options, rcpt_options
        )
    if isinstance(msg, str):
        msg = smtplib._fix_eols(msg).encode("ascii")
    if isinstance(to_addrs, str):
        to_addrs = [to_addrs]
    commands = _envelope_commands(
        smtp, from_addr, to_addrs, len(msg), mail_options, rcpt_options
    )
    # one write: several small ones would wait for each other's ACK (Nagle)
    smtp.send("".join(f"{command}\r\n" for command in commands))
    refused = _judge_envelope(
        smtp, from_addr, to_addrs, _read_replies(smtp, len(commands))
    )
    quoted = smtplib._quote_periods(msg)
    if quoted[-2:] != b"\r\n":
        quoted += b"\r\n"
    smtp.send(quoted + b".\r\n")
    try:
        code, reply = smtp.getreply()
    except smtplib.SMTPServerDisconnected as error:
        # the server may have it: not a temporary failure
        raise DroppedAfterData(
            f"connection lost after the end of DATA: {error}"
        ) from error
    if outer is not None:
        outer.mail_outbound_reply = (code, reply)
    if code != 250:
        _close_or_reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


def enable_pipelining(connection):
    """Send through :func:`pipelined_sendmail` on this session
    (``send_message`` calls ``sendmail``)."""
    session = getattr(connection, "__obj__", connection)
    session.sendmail = functools.partial(pipelined_sendmail, session, outer=connection)
    return connection


class LaneTicket:
    """What a batch gets instead of a new session when the run's lanes to
    its server are open: the From and filter the messages are prepared
    with (``ir.mail_server._prepare_email_message`` reads only those), no
    connection. Quitting it does nothing; the lanes send."""

    def __init__(self, server_id, smtp_from, from_filter):
        self.mail_outbound_server_id = server_id
        self.smtp_from = smtp_from
        self.from_filter = from_filter

    def quit(self):
        return None

    close = quit


def session_is_dead(session):
    """A session the server dropped (smtplib closes its socket)."""
    inner = getattr(session, "__obj__", session)
    return getattr(inner, "sock", True) is None


class Lanes:
    """Up to ``width`` sessions to one server, each with its own thread.

    ``connect()`` opens a session (called in the caller's thread, lazily,
    only when every open lane is busy) or raises; :meth:`adopt` takes one the
    caller already opened; ``close(session)`` ends one. A server that refuses
    another connection (``421 Too many connections``) limits the width to
    what it accepted. A lane whose session the server dropped is opened
    again at its next use. Each session's thread lives as long as the
    session: starting a thread per mail costs more than an SMTP command on
    loopback.
    """

    def __init__(self, width, connect, close, send=send_items, key=None):
        self.width = max(1, int(width))
        self.key = key  # what the caller opened them for (a server)
        self._connect = connect
        self._close = close
        self._send = send
        self._done = queue.SimpleQueue()
        self._inboxes = {}  # session -> its thread's queue of jobs
        self._free = []
        self.busy = 0
        # why no more lanes open (the last connection error), for the log
        self.refused = None

    @property
    def opened(self):
        return len(self._inboxes)

    def has_room(self):
        return bool(self._free) or (
            self.refused is None and len(self._inboxes) < self.width
        )

    def submit(self, job):
        """Start ``job`` on a free lane; False when none can take it."""
        session = self._take_session()
        if session is None:
            return False
        job.lane = session
        self.busy += 1
        self._inboxes[session].put(job)
        return True

    def adopt(self, session):
        """Take an open session as a lane; False when the lanes are full."""
        if len(self._inboxes) >= self.width or session in self._inboxes:
            return False
        self._open(session)
        return True

    def _open(self, session):
        inbox = queue.SimpleQueue()
        self._inboxes[session] = inbox
        self._free.append(session)
        threading.Thread(
            target=self._run, args=(session, inbox), daemon=True, name="mail-lane"
        ).start()

    def _take_session(self):
        while self._free:
            session = self._free.pop()
            if not session_is_dead(session):
                return session
            self._forget(session)
        if self.refused is not None or len(self._inboxes) >= self.width:
            return None
        try:
            session = self._connect()
        except Exception as error:  # noqa: BLE001 - the width is what it took
            self.refused = error
            _logger.info(
                "Outgoing server accepted %s of %s sessions: %s",
                len(self._inboxes),
                self.width,
                error,
            )
            return None
        if session is None:
            self.refused = RuntimeError("no session")
            return None
        self._open(session)
        return self._free.pop()

    def _run(self, session, inbox):
        while True:
            job = inbox.get()
            if job is None:
                return
            try:
                # the session is this thread's alone while it sends the job
                session.mail_outbound_before_end = job.before_end
                job.results = self._send(session, job.items)
            except BaseException as error:  # noqa: BLE001 - never lose a job
                job.results = [Sent(ok=False, error=error)]
            self._done.put(job)

    def wait(self, timeout=None):
        """The next finished job; its lane is free again once taken."""
        return self._taken(self._done.get(timeout=timeout))

    def _taken(self, job):
        self.busy -= 1
        if session_is_dead(job.lane):
            self._forget(job.lane)
        else:
            self._free.append(job.lane)
        return job

    def poll(self):
        """A finished job if one is waiting, else None."""
        try:
            job = self._done.get_nowait()
        except queue.Empty:
            return None
        return self._taken(job)

    def drain(self):
        """Every job still running, as it finishes."""
        while self.busy:
            yield self.wait()

    def _forget(self, session):
        inbox = self._inboxes.pop(session, None)
        if inbox is not None:
            inbox.put(None)  # its thread ends
        try:
            self._close(session)
        except Exception:  # noqa: BLE001 - a dead session has nothing to close
            _logger.debug("SMTP session already closed", exc_info=True)

    def close(self):
        """Quit every idle session and end its thread."""
        for session in list(self._free):
            self._forget(session)
        self._free = []
