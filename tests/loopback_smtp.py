"""Real SMTP servers on loopback for every test suite (no odoo import).

Built on aiosmtpd. A server records what it receives and can be scripted to
fail the way real providers do::

    with LoopbackSmtp(
        tls="starttls", certificate=certs.valid, users={"me": "secret"}
    ) as smtp:
        smtp.script("mail", 550, "5.7.1 Sender refused", match="bad@example.com")
        smtp.script("rcpt", 451, "4.7.1 Try later", times=2)  # then accepts
        smtp.script("data", 554, "5.6.0 Rejected")
        smtp.script("ehlo", action="close")  # drop the connection after EHLO
        smtp.script("data", action="hang")  # never answer (client timeout)
        smtp.script("data", action="accept_hang", match="rcpt40@")  # take it, hang
        smtp.script("data", action="accept_close", match="rcpt7@")  # take it, drop
        ...

    # a provider 20 ms away that takes at most 4 sessions at once: every
    # reply (greeting and EHLO included) waits 20 ms; a 5th connection is
    # greeted with 421 and closed
    LoopbackSmtp(reply_delay=0.02, max_connections=4)
        ...
        smtp.peak_sessions, smtp.refused_connections, smtp.message_ids

    # OAuth (Gmail, Outlook): AUTH XOAUTH2 with a bearer token per user
    LoopbackSmtp(tls="starttls", certificate=certs.valid, tokens={"me": "token"})
        ...
        smtp.messages[0]["message"]["From"]

``certificates(tmpdir)`` makes a CA and server certificates (valid, expired,
for another host name, self-signed) with the ``cryptography`` package.
"""

import asyncio
import base64
import binascii
import collections
import datetime
import email
import email.policy
import pathlib
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

# The Message-Id header of a raw message, folded or not.
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)", re.I | re.M)


@dataclass
class Rule:
    """One scripted answer: ``command`` in connect, ehlo, mail, rcpt, data."""

    command: str
    code: int = 0
    text: str = ""
    match: str = ""
    times: int = 0  # 0: every time
    action: str = "reply"  # reply, close, hang, accept_hang, accept_close
    used: int = field(default=0)

    def applies(self, argument):
        if self.times and self.used >= self.times:
            return False
        return not self.match or self.match.lower() in (argument or "").lower()


class _Handler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.owner.pipelining:
            # aiosmtpd reads pipelined commands in order; it only never says so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = await self.owner._scripted("mail", address, server)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await self.owner._scripted("rcpt", address, server)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        # the whole message is in: a real server may deliver it from now on,
        # whatever becomes of its reply (a client killed meanwhile)
        self.owner.data_ends.append(
            (message_id(envelope.original_content or envelope.content),)
            + tuple(envelope.rcpt_tos)
        )
        self.owner.in_data += 1
        self.owner.in_data_peak = max(self.owner.in_data_peak, self.owner.in_data)
        try:
            return await self._handle_data(server, session, envelope)
        finally:
            self.owner.in_data -= 1

    async def _handle_data(self, server, session, envelope):
        if self.owner.data_delay:
            await asyncio.sleep(self.owner.data_delay)
        rule = self.owner._take("data", " ".join(envelope.rcpt_tos))
        if rule and rule.action == "accept_hang":
            # the message is in, the client never hears it: the moment a
            # crash makes "was it delivered?" a real question
            self.owner._record(session, envelope)
            await self.owner._hang()
            return "421 4.3.0 Shutting down"
        if rule and rule.action == "accept_close":
            # the message is in, the session dies before the final reply
            self.owner._record(session, envelope)
            server.transport.close()
            return "421 4.3.0 Closing"
        reply = await self.owner._reply(rule, server)
        if reply:
            return reply
        self.owner._record(session, envelope)
        return "250 2.0.0 Ok: queued"


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP with hooks at connect and EHLO."""

    owner = None
    # the previous line pushed was a continuation ("250-..."): the rest of a
    # multi-line reply follows at once, its round trip is already paid
    _continuing = False

    async def push(self, status):
        if self.owner.reply_delay and not self._continuing:
            # a round trip: the reply leaves ``reply_delay`` after the bytes
            # it answers arrived. One command at a time, that is a pause
            # before every reply; commands a client pipelined (RFC 2920)
            # arrived together and are answered together, as over a network
            self._start_clock()
            wait = self._answered_arrival() + self.owner.reply_delay - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        line = status.decode() if isinstance(status, bytes) else status
        self._continuing = line[3:4] == "-"
        await super().push(status)

    def data_received(self, data):
        if self.owner.reply_delay:
            self._start_clock()
            self._received += len(data)
            self._arrivals.append((self.loop.time(), self._received))
        return super().data_received(data)

    _arrivals = None

    def _start_clock(self):
        if self._arrivals is None:
            # the greeting answers the connection itself
            self._arrivals = collections.deque([(self.loop.time(), 0)])
            self._received = self._consumed = 0
            self._count_consumed()

    def _answered_arrival(self):
        """When the last byte read so far reached the server."""
        arrivals = self._arrivals
        while len(arrivals) > 1 and arrivals[0][1] < self._consumed:
            arrivals.popleft()
        return arrivals[0][0]

    def _count_consumed(self):
        reader = self._reader
        for name in ("readuntil", "readline", "read", "readexactly"):
            original = getattr(reader, name)

            async def counted(*args, _original=original, **kwargs):
                data = await _original(*args, **kwargs)
                self._consumed += len(data)
                return data

            setattr(reader, name, counted)

    async def _handle_client(self):
        owner = self.owner
        if owner.reply_delay:
            self._start_clock()
        if owner.max_connections and owner.sessions >= owner.max_connections:
            # what providers answer past their limit of concurrent sessions
            owner.refused_connections += 1
            await self.push("421 4.7.0 Too many connections")
            self.transport.close()
            return
        owner.sessions += 1
        owner.peak_sessions = max(owner.peak_sessions, owner.sessions)
        try:
            await self._handle_session()
        finally:
            # also when aiosmtpd cancels the task: QUIT, a drop, a timeout
            owner.sessions -= 1

    async def _handle_session(self):
        rule = self.owner._take("connect", "")
        if rule and rule.action == "reply":
            await self.push(f"{rule.code} {rule.text}")
            self.transport.close()
            return
        if rule and rule.action == "close":
            self.transport.close()
            return
        if rule and rule.action == "hang":
            await self.owner._hang()
            return
        await super()._handle_client()

    async def auth_XOAUTH2(self, _server, args):
        """XOAUTH2 as Gmail and Outlook speak it (RFC 7628's precursor):
        base64 of ``user=U\x01auth=Bearer T\x01\x01``, in one command."""
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
            values = dict(f.split("=", 1) for f in fields if "=" in f)
        except (IndexError, ValueError, binascii.Error):
            return AuthResult(success=False, handled=False)
        user, bearer = values.get("user", ""), values.get("auth", "")
        token = self.owner.tokens.get(user)
        return AuthResult(
            success=bool(token) and bearer == f"Bearer {token}", handled=False
        )

    async def smtp_EHLO(self, hostname):
        rule = self.owner._take("ehlo", hostname)
        if rule and rule.action == "close":
            await super().smtp_EHLO(hostname)
            self.transport.close()
            return
        if rule and rule.action == "reply":
            await self.push(f"{rule.code} {rule.text}")
            return
        await super().smtp_EHLO(hostname)


class _Controller(Controller):
    def __init__(self, owner, **kwargs):
        self.owner = owner
        super().__init__(_Handler(owner), **kwargs)

    def factory(self):
        smtp_class = type("OwnedSMTP", (_ScriptedSMTP,), {"owner": self.owner})
        return smtp_class(self.handler, **self.SMTP_kwargs)


class LoopbackSmtp:
    """An SMTP server on 127.0.0.1, on a free port, in a background thread."""

    def __init__(
        self,
        tls="none",
        certificate=None,
        users=None,
        auth_required=False,
        exclude_auth=(),
        data_delay=0,
        tokens=None,
        port=None,
        on_message=None,
        record=True,
        pipelining=False,
        reply_delay=0,
        max_connections=0,
    ):
        """``port``: a fixed one (the demo's sink), else a free one.
        ``on_message(received)``: called with each recorded message.
        ``record=False``: count the messages and their Message-Ids only (the
        benchmark's sink).
        ``reply_delay``: seconds to wait before each reply, the greeting and
        EHLO included: a provider's round trip.
        ``max_connections``: sessions at once; past them a connection is
        greeted with ``421 4.7.0 Too many connections`` and closed (0: no
        limit)."""
        assert tls in ("none", "starttls", "ssl")
        self.tls = tls
        self.users = users or {}
        # OAuth bearer tokens by user: XOAUTH2 is offered only with them
        self.tokens = tokens or {}
        # seconds before answering each DATA: a slow provider, so that a
        # test can interrupt a client in the middle of a batch
        self.data_delay = data_delay
        # advertise PIPELINING (RFC 2920) in the EHLO reply
        self.pipelining = pipelining
        # sessions between the end of their DATA and its final reply now
        self.in_data = 0
        self.in_data_peak = 0  # the most sessions ever at that point at once
        self.reply_delay = reply_delay
        self.max_connections = max_connections
        self.messages = []
        self.count = 0
        # Message-Id header of each message taken ("" when it has none)
        self.message_ids = set()
        # (Message-Id, *recipients) of each message whose DATA ended, taken
        # or not (its final reply delayed, refused, or never sent)
        self.data_ends = []
        # sessions open now, the most at once, connections refused (421)
        self.sessions = 0
        self.peak_sessions = 0
        self.refused_connections = 0
        self.on_message = on_message
        self.keep = record
        self.rules = []
        self._condition = threading.Condition()
        self._release = threading.Event()
        if port:
            self.port = port
        else:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self.host = "127.0.0.1"
        context = None
        if tls != "none":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate.cert, certificate.key)
        kwargs = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "localhost",
            "auth_required": auth_required,
            # cleartext AUTH is what some tests check; never in production
            "auth_require_tls": False,
        }
        kwargs["auth_exclude_mechanism"] = list(exclude_auth)
        if not self.tokens:
            kwargs["auth_exclude_mechanism"].append("XOAUTH2")
        if self.users:
            kwargs["authenticator"] = self._authenticate
        if tls == "starttls":
            kwargs["tls_context"] = context
        elif tls == "ssl":
            kwargs["ssl_context"] = context
        self.controller = _Controller(self, **kwargs)

    # -- lifecycle --------------------------------------------------------
    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self._release.set()
        self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- scripting ----------------------------------------------------------
    def script(self, command, code=0, text="", match="", times=0, action="reply"):
        self.rules.append(Rule(command, code, text, match, times, action))

    def reset(self):
        with self._condition:
            self.messages.clear()
            self.rules.clear()
            self.message_ids.clear()
            self.data_ends.clear()
            self.count = 0
            self.peak_sessions = self.sessions
            self.refused_connections = 0

    def _take(self, command, argument):
        for rule in self.rules:
            if rule.command == command and rule.applies(argument):
                rule.used += 1
                return rule
        return None

    async def _hang(self):
        # holds the client until the test ends or the server stops
        while not self._release.is_set():
            await asyncio.sleep(0.05)

    async def _scripted(self, command, argument, server):
        return await self._reply(self._take(command, argument), server)

    async def _reply(self, rule, server):
        if not rule:
            return None
        if rule.action == "hang":
            await self._hang()
            return "421 4.3.0 Shutting down"
        if rule.action == "close":
            server.transport.close()
            return "421 4.3.0 Closing"
        return f"{rule.code} {rule.text}"

    # -- recording ----------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if auth_data.login else ""
        password = auth_data.password.decode() if auth_data.password else ""
        # handled=False: let aiosmtpd answer 535 to a refusal
        return AuthResult(success=self.users.get(login) == password, handled=False)

    def _record(self, session, envelope):
        raw = envelope.original_content or envelope.content
        self.count += 1
        self.message_ids.add(message_id(raw))
        if not self.keep:
            return
        message = email.message_from_bytes(raw, policy=email.policy.default)
        received = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message": message,
            "data": raw,
            "authenticated": bool(session.authenticated),
        }
        with self._condition:
            self.messages.append(received)
            self._condition.notify_all()
        if self.on_message:
            self.on_message(received)

    def wait_for(self, count, timeout=5):
        with self._condition:
            return self._condition.wait_for(
                lambda: len(self.messages) >= count, timeout
            )


def message_id(raw):
    """The Message-Id of a raw message, unfolded, ``""`` when it has none.

    Read from the header block only, without parsing the message: cheap
    enough for a sink taking thousands of mails.
    """
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    if not found:
        return ""
    return b" ".join(found[1].split()).decode("ascii", "replace")


class HostileServer:
    """A raw TCP server on loopback that misbehaves before any SMTP::

        with HostileServer("endless_greeting") as server:  # "220-..." forever
            ...server.port, server.sent
        HostileServer("slow_greeting", interval=0.2)  # one byte per interval
        HostileServer("endless_line")  # one line that never ends
        HostileServer("silent")  # accepts, never speaks (TLS on a plain port)

    Each connection gets its own thread; ``stop`` closes them all.
    """

    def __init__(self, behaviour, interval=0.2):
        self.behaviour = behaviour
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads = []

    def __enter__(self):
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _address = self._listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _payload(self):
        if self.behaviour == "endless_greeting":
            return b"220-" + b"x" * 60 + b"\r\n"
        if self.behaviour == "endless_line":
            return b"220 " + b"x" * 4096
        if self.behaviour == "slow_greeting":
            return b"2"
        return b""

    def _serve(self, conn):
        payload = self._payload()
        with conn:
            conn.settimeout(1)
            while not self._stop.is_set():
                if self.behaviour in ("slow_greeting", "silent"):
                    self._stop.wait(self.interval)
                if not payload:
                    continue
                try:
                    conn.sendall(payload)
                except OSError:
                    return
                self.sent += len(payload)


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class CertificatePair:
    cert: str
    key: str


@dataclass
class Certificates:
    ca: str
    valid: CertificatePair
    expired: CertificatePair
    wrong_host: CertificatePair
    self_signed: CertificatePair


def certificates(directory, host="localhost"):
    """A CA and server certificates for ``host`` in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = pathlib.Path(directory)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(name, key):
        path = directory / f"{name}.key.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(path)

    def write_cert(name, cert):
        path = directory / f"{name}.cert.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("mail_outbound test CA"))
        .issuer_name(name("mail_outbound test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(ca_key, hashes.SHA256())
    )

    def server(label, common_name, start, end, issuer_key=ca_key, issuer=ca_cert):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(issuer.subject if issuer else name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(common_name)]), False
            )
        )
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return CertificatePair(write_cert(label, cert), write_key(label, key))

    day = datetime.timedelta(days=1)
    return Certificates(
        ca=write_cert("ca", ca_cert),
        valid=server("valid", host, now - day, now + 30 * day),
        expired=server("expired", host, now - 30 * day, now - day),
        wrong_host=server("wrong_host", "other.invalid", now - day, now + 30 * day),
        self_signed=server("self_signed", host, now - day, now + 30 * day, None, None),
    )
