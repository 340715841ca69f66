"""Test Connection as a diagnosis: the SMTP checklist, step by step.

Core's Test Connection tries one MAIL FROM and one RCPT TO and answers
"successful" or one error. A working connection can still refuse the
addresses Odoo really sends as (the notification address, the bounce
envelope), a certificate can be expired and silently accepted, and a reply
can be temporary (come back later) or permanent (fix something). This module
runs the whole conversation and reports every step with what the server
said and, when a step fails, what to change.

Plain Python (``socket``, ``ssl``, ``smtplib``); the Odoo layer passes plain
configuration and translates the step labels and fixes, which are English
templates here (``STEP_LABELS``, ``FIXES``) filled with each step's
``params``.

Every network operation has a timeout, so a server that never answers makes
the step fail after ``timeout`` seconds instead of hanging the worker. The
whole checklist also has a deadline (``SmtpConfig.deadline``) and replies are
read with caps (``MAX_LINE``, ``MAX_REPLY``): a server that answers one byte
at a time, or never stops answering, cannot hold the worker past the deadline
nor grow its memory (smtplib alone keeps every continuation line of a reply).
"""

import contextlib
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field

from .addresses import FromFilter


def _lt(source):
    """Mark ``source`` for translation; the Odoo layer translates it."""
    return source


OK, WARNING, FAILED, SKIPPED = "ok", "warning", "failed", "skipped"

STEP_LABELS = {
    "port": _lt("Port allowed"),
    "resolve": _lt("Host name resolves"),
    "connect": _lt("TCP connection and greeting"),
    "tls": _lt("TLS"),
    "ehlo": _lt("EHLO"),
    "auth": _lt("Authentication"),
    "mail_from": _lt("MAIL FROM %(sender)s"),
    "rcpt": _lt("RCPT TO %(recipient)s"),
    "data": _lt("DATA"),
    "send": _lt("Test email to %(recipient)s"),
}

FIXES = {
    "blocked_port": _lt(
        "Port %(port)s is blocked on this database: use 465 with SSL/TLS, or 587 "
        "or 2525 with STARTTLS."
    ),
    "dns": _lt(
        "%(host)s does not resolve: check the SMTP Server name, or the DNS of "
        "the machine running Odoo."
    ),
    "connection_refused": _lt(
        "Nothing accepts connections on %(host)s port %(port)s: check the port "
        "(465 for SSL/TLS, 587 for STARTTLS) and that the server runs."
    ),
    "unreachable": _lt(
        "%(host)s port %(port)s cannot be reached (%(error)s): a firewall may "
        "block outgoing connections on this port."
    ),
    "timeout": _lt(
        "The server did not answer within %(timeout)s seconds at this step: "
        "check the port and encryption (SSL/TLS on 465, STARTTLS on 587), or a "
        "firewall dropping the connection."
    ),
    "disconnected": _lt(
        "The server closed the connection: check the encryption setting for "
        "this port, and the server's logs for the reason."
    ),
    "greeting_refused": _lt("The server refused the connection (%(code)s %(reply)s)."),
    "tls_handshake": _lt(
        "The TLS handshake failed (%(error)s): check the Connection Encryption "
        "(SSL/TLS for port 465, STARTTLS for 587)."
    ),
    "tls_certificate": _lt(
        "The server's certificate is not valid for %(host)s: %(error)s. Ask the "
        "provider for a valid certificate, or use the host name the "
        "certificate was issued for."
    ),
    "starttls_not_offered": _lt(
        "The server does not offer STARTTLS on this port: choose SSL/TLS (port "
        "465) or no encryption, as the provider documents."
    ),
    "auth_not_offered": _lt(
        "The server does not offer authentication here: leave Username empty, "
        "or use the encrypted port where it offers AUTH."
    ),
    "auth_refused": _lt(
        "The server refused the username or password (%(code)s %(reply)s): "
        "check them, or use an application password if the account has "
        "two-factor authentication."
    ),
    "sender_refused": _lt(
        "The server refuses to send as %(sender)s (%(code)s %(reply)s): add "
        "%(domain)s to its FROM filter, or allow that sender at your provider."
    ),
    # the filter already lists the sender or its domain: adding it again
    # changes nothing, the refusal is the provider's
    "sender_refused_provider": _lt(
        "The server refuses to send as %(sender)s (%(code)s %(reply)s), which "
        "its FROM filter already allows: allow that sender, or its domain "
        "%(domain)s, at your provider."
    ),
    "recipient_refused": _lt(
        "The server refused the recipient %(recipient)s (%(code)s %(reply)s): "
        "it may not relay for this account; check the authentication."
    ),
    "data_refused": _lt("The server refused the message data (%(code)s %(reply)s)."),
    "message_refused": _lt("The server refused the test email (%(code)s %(reply)s)."),
    "temporary": _lt(
        "This is a temporary refusal (4xx): the server asks to try again later."
    ),
    "oauth_not_checked": _lt(
        "%(user)s logs in with %(provider)s OAuth (XOAUTH2, offered by the "
        "server), with an access token Odoo obtains from %(provider)s when it "
        "sends. Test Connection has no token: it checked the host name, the "
        "connection, TLS and EHLO, but not the login, the senders, the "
        "recipients nor the message. Send a mail through this server to check "
        "those; a refused token shows in its Delivery Attempts."
    ),
    "oauth_not_offered": _lt(
        "The server does not offer XOAUTH2, which %(provider)s OAuth needs: "
        "check the SMTP Server (smtp.gmail.com or smtp.office365.com), port 587 "
        "and STARTTLS."
    ),
    "deadline": _lt(
        "The server did not complete the test within %(deadline)s seconds: "
        "it answers too slowly, or speaks another protocol on this port (TLS "
        "on a plain port: choose SSL/TLS for port 465)."
    ),
    "reply_too_long": _lt(
        "The server's reply exceeded %(limit)s bytes: this is not an SMTP "
        "server, or it misbehaves. Check the host name and port."
    ),
    "no_sender": _lt(
        "No sender address to test: set a Default From on the alias domain or a "
        "FROM filter on the server."
    ),
}


# why a step was skipped: shown in its detail, so "Skipped" is never bare
SKIP_REASONS = {
    "no_encryption": _lt("Not encrypted: this server's Connection Encryption is None."),
    "no_user": _lt("No Username on this server: it is used without authentication."),
    "no_sender_accepted": _lt("Not run: the server accepted none of the senders."),
    "not_run": _lt("Not run: an earlier step failed."),
}

# the checklist's steps in order, to list those an abort left out
PLAN = ("resolve", "connect", "tls", "ehlo", "auth", "mail_from", "rcpt", "data")


# An SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5) and a whole
# reply, EHLO's list of extensions included, a few kilobytes: anything
# longer is not a server to keep reading from.
MAX_LINE = 2048
MAX_REPLY = 64 * 1024
# the whole checklist, every retry included
DEADLINE = 30


class DeadlineExceeded(TimeoutError):
    """The checklist's overall deadline has passed."""


class ReplyTooLong(smtplib.SMTPException):
    """A reply line or a whole reply went over ``MAX_LINE``/``MAX_REPLY``."""


class _Bounded:
    """smtplib with an overall deadline and capped replies.

    ``getreply`` reads from the socket itself instead of smtplib's unbounded
    list of continuation lines, and every read, write and connect gets the
    time left until ``deadline`` (a ``time.monotonic()`` value), so a
    server sending one byte every few seconds still stops at the deadline.
    """

    deadline = None
    op_timeout = 10
    _rsock = None
    _rbuf = b""

    def _time_left(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded()
        return min(self.op_timeout, left)

    def _expired(self, error):
        """``error`` as ``DeadlineExceeded`` when the deadline cut it short."""
        if time.monotonic() >= self.deadline:
            return DeadlineExceeded()
        return error

    def _get_socket(self, host, port, timeout):
        # implicit TLS shakes hands here, bounded by this same timeout
        try:
            return super()._get_socket(host, port, self._time_left())
        except OSError as error:
            raise self._expired(error) from error

    def send(self, s):
        try:
            if self.sock:
                self.sock.settimeout(self._time_left())
            return super().send(s)
        except OSError as error:
            raise self._expired(error) from error

    def starttls(self, *args, **kwargs):
        try:
            if self.sock:
                self.sock.settimeout(self._time_left())
            return super().starttls(*args, **kwargs)
        except OSError as error:
            raise self._expired(error) from error

    def _readline(self):
        if self._rsock is not self.sock:
            # a new socket (connect, STARTTLS): nothing read before counts
            self._rsock, self._rbuf = self.sock, b""
        while True:
            end = self._rbuf.find(b"\n")
            if end >= 0 or len(self._rbuf) > MAX_LINE:
                line = self._rbuf[: end + 1] if end >= 0 else self._rbuf
                if len(line) > MAX_LINE:
                    self.close()
                    raise ReplyTooLong(MAX_LINE)
                self._rbuf = self._rbuf[end + 1 :]
                return line
            try:
                self.sock.settimeout(self._time_left())
                chunk = self.sock.recv(4096)
            except DeadlineExceeded:
                self.close()
                raise
            except OSError as error:
                self.close()
                if time.monotonic() >= self.deadline:
                    raise DeadlineExceeded() from error
                raise smtplib.SMTPServerDisconnected(
                    f"Connection unexpectedly closed: {error}"
                ) from error
            if not chunk:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            self._rbuf += chunk

    def getreply(self):
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        lines, size = [], 0
        while True:
            line = self._readline()
            size += len(line)
            if size > MAX_REPLY:
                self.close()
                raise ReplyTooLong(MAX_REPLY)
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                return -1, b"\n".join(lines)
            if line[3:4] != b"-":
                return code, b"\n".join(lines)

    def close(self):
        self._rsock, self._rbuf = None, b""
        return super().close()


class _BoundedSMTP(_Bounded, smtplib.SMTP):
    pass


class _BoundedSMTP_SSL(_Bounded, smtplib.SMTP_SSL):
    pass


@dataclass
class SmtpConfig:
    """How to reach one SMTP server (plain data from an ir.mail_server)."""

    host: str
    port: int
    encryption: str = "none"  # none, starttls, ssl
    user: str = ""
    password: str = ""
    certfile: str = ""  # client certificate authentication
    keyfile: str = ""
    cafile: str = ""  # extra CA to trust (tests, private CAs)
    # "Gmail" or "Outlook": OAuth (XOAUTH2) login with a token this probe
    # does not have
    oauth: str = ""
    timeout: float = 10
    deadline: float = DEADLINE  # for the whole checklist
    from_filter: str = ""  # the server's FROM filter, to word a refused sender


@dataclass
class Step:
    key: str
    status: str
    params: dict = field(default_factory=dict)
    detail: str = ""
    code: int = 0
    reply: str = ""
    temporary: bool = False
    fix: str = ""
    duration_ms: int = 0
    skip_reason: str = ""  # a key of SKIP_REASONS

    def label(self, translate=None):
        translate = translate or (lambda source: source)
        return translate(STEP_LABELS[self.key]) % self.params

    def detail_text(self, translate=None):
        """The detail, or for a skipped step why it was skipped."""
        if not self.skip_reason:
            return self.detail
        translate = translate or (lambda source: source)
        return translate(SKIP_REASONS[self.skip_reason]) % self.params

    def fix_text(self, translate=None):
        if not self.fix:
            return ""
        translate = translate or (lambda source: source)
        text = translate(FIXES[self.fix]) % self.params
        if self.temporary:
            text = f"{text} {translate(FIXES['temporary'])}"
        return text


class _Abort(Exception):
    """A step failed in a way that makes the next ones pointless."""


def _decode(reply):
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace").strip()
    return str(reply or "").strip()


def _reply_params(code, reply):
    return {"code": code, "reply": _decode(reply)}


class _Diagnosis:
    def __init__(self, config, resolver):
        self.config = config
        self.resolver = resolver
        self.steps = []
        self.smtp = None
        self.deadline = time.monotonic() + config.deadline

    def add(self, key, status, started=None, **values):
        params = {"host": self.config.host, "port": self.config.port}
        params["timeout"] = self.config.timeout
        params["deadline"] = self.config.deadline
        params.update(values.pop("params", {}))
        step = Step(key, status, params=params, **values)
        if started is not None:
            step.duration_ms = int((time.monotonic() - started) * 1000)
        self.steps.append(step)
        return step

    def refused(self, key, started, code, reply, fix, params):
        """Record a step the server answered with a refusal (4xx or 5xx)."""
        params.update(_reply_params(code, reply))
        self.add(
            key,
            FAILED,
            started,
            code=code,
            reply=_decode(reply),
            temporary=400 <= code < 500,
            fix=fix,
            params=params,
        )

    def fail(self, key, started, error, **values):
        """Record ``error`` as the failure of ``key``, with the right fix."""
        params = values.pop("params", {})
        params["error"] = _decode(error) or error.__class__.__name__
        if isinstance(error, smtplib.SMTPResponseException):
            code, reply = error.smtp_code, _decode(error.smtp_error)
            params.update(_reply_params(code, reply))
            values.setdefault("code", code)
            values.setdefault("reply", reply)
            values.setdefault("temporary", 400 <= code < 500)
        if isinstance(error, DeadlineExceeded):
            fix = "deadline"
        elif isinstance(error, ReplyTooLong):
            fix = "reply_too_long"
            params["limit"] = error.args[0] if error.args else MAX_REPLY
        elif isinstance(error, (socket.timeout, TimeoutError)) or (
            # smtplib turns a read timeout into "Connection unexpectedly
            # closed: timed out"
            isinstance(error, smtplib.SMTPServerDisconnected)
            and "timed out" in str(error)
        ):
            fix = "timeout"
        elif isinstance(error, smtplib.SMTPServerDisconnected):
            fix = "disconnected"
        elif isinstance(error, ssl.SSLCertVerificationError):
            fix = "tls_certificate"
            params["error"] = error.verify_message or str(error)
        elif isinstance(error, ssl.SSLError):
            fix = "tls_handshake"
        else:
            fix = values.pop("fix", "disconnected")
        values.pop("fix", None)
        self.add(key, FAILED, started, fix=fix, params=params, **values)

    # -- the checklist ------------------------------------------------------
    def ssl_context(self, verify=True):
        context = ssl.create_default_context(cafile=self.config.cafile or None)
        if self.config.certfile:
            context.load_cert_chain(self.config.certfile, self.config.keyfile or None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def resolve(self):
        started = time.monotonic()
        try:
            infos = self.resolver(
                self.config.host, self.config.port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as error:
            self.add(
                "resolve", FAILED, started, fix="dns", params={"error": str(error)}
            )
            raise _Abort() from error
        addresses = sorted({info[4][0] for info in infos})
        self.add("resolve", OK, started, detail=", ".join(addresses))
        return addresses

    def connect(self, verify=True):
        """Open the SMTP session; TLS first for implicit TLS (port 465)."""
        config = self.config
        if config.encryption == "ssl":
            smtp = _BoundedSMTP_SSL(
                timeout=config.timeout, context=self.ssl_context(verify)
            )
        else:
            smtp = _BoundedSMTP(timeout=config.timeout)
        smtp.deadline, smtp.op_timeout = self.deadline, config.timeout
        # smtplib keeps the host name for TLS (SNI, name check) only when its
        # constructor connects; we connect separately to time and catch it
        smtp._host = config.host
        code, reply = smtp.connect(config.host, config.port)
        return smtp, code, reply

    def open(self):
        started = time.monotonic()
        try:
            self.smtp, code, reply = self.connect()
        except ssl.SSLCertVerificationError as error:
            # report it, then look further with an unverified connection
            self.add("connect", OK, started)
            self.fail("tls", started, error)
            try:
                self.smtp, code, reply = self.connect(verify=False)
            except (OSError, smtplib.SMTPException) as retry_error:
                self.fail("connect", started, retry_error)
                raise _Abort() from retry_error
            self.tls_done = True
            self.greeting(code, reply, started, record_connect=False)
            return
        except ConnectionRefusedError as error:
            self.fail("connect", started, error, fix="connection_refused")
            raise _Abort() from error
        except (OSError, smtplib.SMTPException) as error:
            fix = "tls_handshake" if isinstance(error, ssl.SSLError) else "unreachable"
            key = "tls" if fix == "tls_handshake" else "connect"
            self.fail(key, started, error, fix=fix)
            raise _Abort() from error
        self.tls_done = False
        self.greeting(code, reply, started)
        if self.config.encryption == "ssl":
            self.tls_done = True
            self.add("tls", OK, started, detail=self.tls_detail(verified=True))

    def greeting(self, code, reply, started, record_connect=True):
        if code != 220:
            self.add(
                "connect",
                FAILED,
                started,
                code=code,
                reply=_decode(reply),
                temporary=400 <= code < 500,
                fix="greeting_refused",
                params=_reply_params(code, reply),
            )
            raise _Abort()
        if record_connect:
            self.add("connect", OK, started, code=code, reply=_decode(reply))

    def tls_detail(self, verified):
        sock = self.smtp.sock
        version = sock.version() if hasattr(sock, "version") else ""
        cipher = sock.cipher()[0] if hasattr(sock, "cipher") and sock.cipher() else ""
        parts = [part for part in (version, cipher) if part]
        if verified:
            cert = sock.getpeercert() or {}
            if cert.get("notAfter"):
                parts.append(f"certificate valid until {cert['notAfter']}")
        return ", ".join(parts)

    def ehlo(self):
        started = time.monotonic()
        try:
            code, reply = self.smtp.ehlo()
        except (OSError, smtplib.SMTPException) as error:
            self.fail("ehlo", started, error)
            raise _Abort() from error
        if code != 250:
            self.add(
                "ehlo",
                FAILED,
                started,
                code=code,
                reply=_decode(reply),
                fix="greeting_refused",
                params=_reply_params(code, reply),
            )
            raise _Abort()
        features = self.smtp.esmtp_features
        detail = []
        if "size" in features:
            detail.append(f"SIZE {features['size']}")
        if "starttls" in features:
            detail.append("STARTTLS")
        if "auth" in features:
            detail.append(f"AUTH {features['auth'].strip()}")
        self.add("ehlo", OK, started, code=code, detail=", ".join(detail))

    def starttls(self):
        if self.config.encryption != "starttls" or self.tls_done:
            if self.config.encryption == "none":
                self.add("tls", SKIPPED, skip_reason="no_encryption")
            return
        started = time.monotonic()
        if not self.smtp.has_extn("starttls"):
            self.add("tls", FAILED, started, fix="starttls_not_offered")
            raise _Abort()
        try:
            self.smtp.starttls(context=self.ssl_context())
        except ssl.SSLCertVerificationError as error:
            self.fail("tls", started, error)
            # the socket is dead after a failed handshake: start over, unverified
            self.close()
            try:
                self.smtp, _code, _reply = self.connect()
                self.smtp.ehlo()
                self.smtp.starttls(context=self.ssl_context(verify=False))
            except (OSError, smtplib.SMTPException) as retry_error:
                raise _Abort() from retry_error
        except (OSError, smtplib.SMTPException) as error:
            self.fail("tls", started, error)
            raise _Abort() from error
        else:
            self.add("tls", OK, started, detail=self.tls_detail(verified=True))
        # capabilities change after STARTTLS (RFC 3207): AUTH often appears
        started = time.monotonic()
        try:
            self.smtp.ehlo()
        except (OSError, smtplib.SMTPException) as error:
            self.fail("ehlo", started, error)
            raise _Abort() from error

    def auth(self):
        if self.config.oauth:
            self.oauth()
        if not self.config.user:
            self.add("auth", SKIPPED, skip_reason="no_user")
            return
        started = time.monotonic()
        if not self.smtp.has_extn("auth"):
            self.add("auth", FAILED, started, fix="auth_not_offered")
            raise _Abort()
        # one mechanism, not smtplib.login()'s loop: servers often drop the
        # connection after a refusal, and the next try would report that
        # instead of the refusal itself
        offered = self.smtp.esmtp_features["auth"].upper().split()
        mechanism = next(
            (m for m in ("PLAIN", "LOGIN", "CRAM-MD5") if m in offered), None
        )
        params = {"user": self.config.user, "mechanism": mechanism or ""}
        if mechanism is None:
            self.add("auth", FAILED, started, fix="auth_not_offered", params=params)
            raise _Abort()
        self.smtp.user, self.smtp.password = self.config.user, self.config.password
        authobject = getattr(self.smtp, "auth_" + mechanism.lower().replace("-", "_"))
        try:
            self.smtp.auth(mechanism, authobject)
        except smtplib.SMTPAuthenticationError as error:
            self.fail("auth", started, error, fix="auth_refused", params=params)
            raise _Abort() from error
        except (OSError, smtplib.SMTPException) as error:
            self.fail("auth", started, error, params=params)
            raise _Abort() from error
        self.add("auth", OK, started, detail=mechanism, params=params)

    def oauth(self):
        """Say what can be checked of an OAuth login without its token.

        The steps after the login would only collect "authentication
        required" refusals: the checklist stops here, with a warning.
        """
        started = time.monotonic()
        params = {"user": self.config.user, "provider": self.config.oauth}
        offered = (self.smtp.esmtp_features.get("auth") or "").upper().split()
        if "XOAUTH2" not in offered:
            self.add("auth", FAILED, started, fix="oauth_not_offered", params=params)
        else:
            self.add(
                "auth",
                WARNING,
                started,
                detail="XOAUTH2",
                fix="oauth_not_checked",
                params=params,
            )
        raise _Abort()

    def mail_from(self, senders):
        accepted = []
        if not senders:
            self.add("mail_from", FAILED, fix="no_sender", params={"sender": ""})
            return accepted
        for sender in senders:
            started = time.monotonic()
            params = {"sender": sender, "domain": sender.rpartition("@")[2]}
            try:
                code, reply = self.smtp.mail(sender)
                self.smtp.rset()
            except (OSError, smtplib.SMTPException) as error:
                self.fail("mail_from", started, error, params=params)
                raise _Abort() from error
            if code == 250:
                accepted.append(sender)
                self.add(
                    "mail_from",
                    OK,
                    started,
                    code=code,
                    reply=_decode(reply),
                    params=params,
                )
            else:
                from_filter = FromFilter(self.config.from_filter)
                fix = (
                    "sender_refused_provider"
                    if from_filter and from_filter.allows(sender)
                    else "sender_refused"
                )
                self.refused("mail_from", started, code, reply, fix, params)
        return accepted

    def rcpt(self, sender, recipient):
        params = {"recipient": recipient}
        if not sender:
            self.add("rcpt", SKIPPED, params=params, skip_reason="no_sender_accepted")
            raise _Abort()
        started = time.monotonic()
        try:
            self.smtp.mail(sender)
            code, reply = self.smtp.rcpt(recipient)
        except (OSError, smtplib.SMTPException) as error:
            self.fail("rcpt", started, error, params=params)
            raise _Abort() from error
        if code not in (250, 251):
            self.refused("rcpt", started, code, reply, "recipient_refused", params)
            raise _Abort()
        self.add("rcpt", OK, started, code=code, reply=_decode(reply), params=params)

    def data(self, message, recipient):
        started = time.monotonic()
        if message is None:
            # as core does: a 354 proves the server takes data from this
            # sender; closing before the final dot sends nothing
            try:
                self.smtp.putcmd("data")
                code, reply = self.smtp.getreply()
            except (OSError, smtplib.SMTPException) as error:
                self.fail("data", started, error)
                raise _Abort() from error
            status = OK if code == 354 else FAILED
            self.add(
                "data",
                status,
                started,
                code=code,
                reply=_decode(reply),
                temporary=400 <= code < 500,
                fix="" if status == OK else "data_refused",
                params=_reply_params(code, reply),
            )
            self.close()
            return
        params = {"recipient": recipient}
        try:
            code, reply = self.smtp.data(message)
        except smtplib.SMTPDataError as error:
            self.fail("send", started, error, fix="message_refused", params=params)
            return
        except (OSError, smtplib.SMTPException) as error:
            self.fail("send", started, error, params=params)
            return
        params.update(_reply_params(code, reply))
        status = OK if code == 250 else FAILED
        self.add(
            "send",
            status,
            started,
            code=code,
            reply=_decode(reply),
            temporary=400 <= code < 500,
            fix="" if status == OK else "message_refused",
            params=params,
        )

    def close(self):
        if self.smtp is not None:
            # closing a connection the server already dropped can only fail
            with contextlib.suppress(OSError):
                self.smtp.close()
        self.smtp = None


def diagnose(
    config,
    senders,
    recipient,
    message=None,
    envelope_from=None,
    blocked_ports=frozenset(),
    resolver=socket.getaddrinfo,
):
    """Run the checklist against ``config`` and return its steps.

    :param SmtpConfig config: the server
    :param senders: addresses the server will really send as; each is tried
        in MAIL FROM (with RSET between them)
    :param str recipient: the address tried in RCPT TO
    :param bytes message: when given, a real message is sent to
        ``recipient`` from ``envelope_from`` (DATA completed); otherwise DATA
        stops at the server's 354
    :param blocked_ports: ports this database refuses to use
    :param resolver: ``socket.getaddrinfo`` or a replacement
    :rtype: list[Step]
    """
    run = _Diagnosis(config, resolver)
    if config.port in blocked_ports:
        run.add("port", FAILED, fix="blocked_port")
        return run.steps
    # a failed step that makes the next ones pointless ends the checklist
    try:
        with contextlib.suppress(_Abort):
            run.resolve()
            run.open()
            run.ehlo()
            run.starttls()
            run.auth()
            accepted = run.mail_from(list(dict.fromkeys(senders)))
            sender = envelope_from if message is not None else None
            sender = sender or (accepted[0] if accepted else None)
            run.rcpt(sender, recipient)
            run.data(message, recipient)
    finally:
        run.close()
    _list_not_run(run, senders, recipient, message)
    return run.steps


def _list_not_run(run, senders, recipient, message):
    """Append the steps a failure left out, so the checklist is complete."""
    done = {step.key for step in run.steps}
    if "send" in done or not done & {"resolve", "connect"}:
        return
    last = PLAN.index(max((k for k in done if k in PLAN), key=PLAN.index))
    params = {
        "sender": ", ".join(dict.fromkeys(senders)),
        "recipient": recipient,
    }
    for key in PLAN[last + 1 :]:
        if key == "data" and message is not None:
            key = "send"
        run.add(key, SKIPPED, params=dict(params), skip_reason="not_run")


# what a send's error text says, as Test Connection would word it: the
# circuit breaker keeps the raw text ("[Errno 111] Connection refused")
_ERROR_FIXES = (
    (("errno 111", "connection refused"), "connection_refused"),
    (("timed out", "timeout"), "timeout"),
    (
        (
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "errno -2",
            "errno -3",
        ),
        "dns",
    ),
    (("certificate_verify_failed", "certificate verify failed"), "tls_certificate"),
    (("ssl", "wrong_version_number", "tls"), "tls_handshake"),
    (
        ("network is unreachable", "no route to host", "errno 101", "errno 113"),
        "unreachable",
    ),
    (("connection unexpectedly closed", "connection reset"), "disconnected"),
)


def explain_error(text, host, port, timeout=10):
    """``(fix key, params)`` for a send's error ``text``, or ``None`` when
    the text is the server's own reply (shown as it is)."""
    lowered = (text or "").lower()
    for needles, key in _ERROR_FIXES:
        if any(needle in lowered for needle in needles):
            return key, {"host": host, "port": port, "timeout": timeout, "error": text}
    return None


def fix_text(key, params, translate=None):
    """The translated fix of ``key`` filled with ``params``."""
    translate = translate or (lambda source: source)
    return translate(FIXES[key]) % params


def summary(steps):
    """``ok``, ``warning`` or ``failed`` for the whole checklist."""
    statuses = {step.status for step in steps}
    if FAILED in statuses:
        return FAILED
    if WARNING in statuses:
        return WARNING
    return OK
