"""The Test Connection checklist against real SMTP servers on loopback."""

import socket
import time
import tracemalloc

import pytest
from loopback_smtp import HostileServer, LoopbackSmtp, certificates, closed_port

from mail_outbound_tools.smtp_diagnosis import (
    FAILED,
    OK,
    SKIPPED,
    WARNING,
    SmtpConfig,
    diagnose,
    explain_error,
    fix_text,
    summary,
)

SENDERS = ["notifications@example.com", "bounce@example.com"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return certificates(tmp_path_factory.mktemp("certs"))


def run(smtp, host="127.0.0.1", **kwargs):
    config_keys = ("encryption", "user", "password", "cafile", "timeout")
    config = SmtpConfig(
        host=host,
        port=smtp.port,
        **{key: kwargs.pop(key) for key in config_keys if key in kwargs},
    )
    return diagnose(
        config, kwargs.pop("senders", SENDERS), "rcpt@destination.example", **kwargs
    )


def ran(steps):
    return [step for step in steps if step.skip_reason != "not_run"]


def by_key(steps):
    result = {}
    for step in steps:
        result.setdefault(step.key, []).append(step)
    return result


def statuses(steps, not_run=False):
    """Keys and statuses of the steps that ran (``not_run``: all of them)."""
    return [
        (step.key, step.status)
        for step in steps
        if not_run or step.skip_reason != "not_run"
    ]


def test_plain_server_every_step_ok():
    with LoopbackSmtp() as smtp:
        steps = run(smtp)
    assert statuses(steps) == [
        ("resolve", OK),
        ("connect", OK),
        ("ehlo", OK),
        ("tls", SKIPPED),
        ("auth", SKIPPED),
        ("mail_from", OK),
        ("mail_from", OK),
        ("rcpt", OK),
        ("data", OK),
    ]
    assert steps[0].detail == "127.0.0.1"
    assert [s.detail_text() for s in steps if s.status == SKIPPED] == [
        "Not encrypted: this server's Connection Encryption is None.",
        "No Username on this server: it is used without authentication.",
    ]
    assert [s.params["sender"] for s in steps if s.key == "mail_from"] == SENDERS
    assert by_key(steps)["data"][0].code == 354
    assert summary(steps) == OK
    # DATA stopped at 354: nothing was delivered
    assert smtp.messages == []


def test_one_refused_sender_is_reported_with_its_fix():
    with LoopbackSmtp() as smtp:
        smtp.script("mail", 550, "5.7.1 Sender not allowed", match="bounce@")
        steps = run(smtp)
    refused = by_key(steps)["mail_from"][1]
    assert (refused.status, refused.code, refused.temporary) == (FAILED, 550, False)
    assert refused.reply == "5.7.1 Sender not allowed"
    assert refused.fix_text() == (
        "The server refuses to send as bounce@example.com (550 5.7.1 Sender not "
        "allowed): add example.com to its FROM filter, or allow that sender at "
        "your provider."
    )
    assert by_key(steps)["mail_from"][0].status == OK
    assert by_key(steps)["rcpt"][0].status == OK
    assert summary(steps) == FAILED


@pytest.mark.parametrize(
    "from_filter",
    ["forbidden@acme-example.com", "acme-example.com", "x@y.example, ACME-example.com"],
)
def test_refused_sender_the_filter_already_allows_is_the_providers(from_filter):
    # issue #23 (12): "add acme-example.com to its FROM filter" to a filter
    # that already lists forbidden@acme-example.com
    with LoopbackSmtp() as smtp:
        smtp.script("mail", 550, "5.7.1 Sender not allowed")
        config = SmtpConfig(host="127.0.0.1", port=smtp.port, from_filter=from_filter)
        steps = diagnose(
            config, ["forbidden@acme-example.com"], "rcpt@destination.example"
        )
    refused = by_key(steps)["mail_from"][0]
    assert refused.fix == "sender_refused_provider"
    assert "add acme-example.com" not in refused.fix_text()
    assert "already allows" in refused.fix_text()


def test_temporary_refusal_is_told_apart():
    with LoopbackSmtp() as smtp:
        smtp.script("mail", 451, "4.7.1 Greylisted, try later")
        steps = run(smtp, senders=["notifications@example.com"])
    step = by_key(steps)["mail_from"][0]
    assert (step.status, step.code, step.temporary) == (FAILED, 451, True)
    assert "temporary refusal (4xx)" in step.fix_text()
    rcpt = by_key(steps)["rcpt"][0]
    assert (rcpt.status, rcpt.detail_text()) == (
        SKIPPED,
        "Not run: the server accepted none of the senders.",
    )
    assert by_key(steps)["data"][0].skip_reason == "not_run"


@pytest.mark.parametrize("code,temporary", [(550, False), (452, True)])
def test_recipient_refused(code, temporary):
    with LoopbackSmtp() as smtp:
        smtp.script("rcpt", code, "Relaying denied")
        steps = run(smtp)
    step = by_key(steps)["rcpt"][0]
    assert (step.status, step.fix, step.temporary) == (
        FAILED,
        "recipient_refused",
        temporary,
    )
    # the steps that did not run are listed, each saying why
    data = by_key(steps)["data"][0]
    assert (data.status, data.detail_text()) == (
        SKIPPED,
        "Not run: an earlier step failed.",
    )


def test_starttls_with_valid_certificate(certs):
    with LoopbackSmtp(tls="starttls", certificate=certs.valid) as smtp:
        steps = run(smtp, host="localhost", encryption="starttls", cafile=certs.ca)
    tls = by_key(steps)["tls"][0]
    assert tls.status == OK
    assert tls.detail.startswith("TLSv1.")
    assert "certificate valid until" in tls.detail
    assert summary(steps) == OK


@pytest.mark.parametrize(
    "which,message",
    [
        ("expired", "certificate has expired"),
        ("wrong_host", "Hostname mismatch"),
        ("self_signed", "self-signed certificate"),
    ],
)
@pytest.mark.parametrize("encryption", ["starttls", "ssl"])
def test_bad_certificates_are_reported_not_accepted(certs, which, message, encryption):
    pair = getattr(certs, which)
    with LoopbackSmtp(tls=encryption, certificate=pair) as smtp:
        steps = run(smtp, host="localhost", encryption=encryption, cafile=certs.ca)
    tls = by_key(steps)["tls"][0]
    assert (tls.status, tls.fix) == (FAILED, "tls_certificate")
    assert message in tls.params["error"]
    # the checklist goes on, over an unverified connection, to find more
    assert by_key(steps)["mail_from"][0].status == OK
    assert summary(steps) == FAILED


def test_implicit_tls_with_valid_certificate(certs):
    with LoopbackSmtp(tls="ssl", certificate=certs.valid) as smtp:
        steps = run(smtp, host="localhost", encryption="ssl", cafile=certs.ca)
    assert [k for k, s in statuses(steps) if s != OK] == ["auth"]
    assert by_key(steps)["tls"][0].detail.startswith("TLSv1.")


def test_starttls_not_offered():
    with LoopbackSmtp() as smtp:
        steps = run(smtp, encryption="starttls")
    assert by_key(steps)["tls"][0].fix == "starttls_not_offered"
    assert by_key(steps)["mail_from"][0].skip_reason == "not_run"


@pytest.mark.parametrize(
    "password,status,fix", [("secret", OK, ""), ("wrong", FAILED, "auth_refused")]
)
def test_authentication(password, status, fix):
    with LoopbackSmtp(users={"me": "secret"}) as smtp:
        steps = run(smtp, user="me", password=password)
    auth = by_key(steps)["auth"][0]
    assert (auth.status, auth.fix) == (status, fix)
    if fix:
        assert auth.code == 535


@pytest.mark.parametrize(
    "password,status,fix", [("secret", OK, ""), ("wrong", FAILED, "auth_refused")]
)
def test_authentication_login_mechanism(password, status, fix):
    with LoopbackSmtp(users={"me": "secret"}, exclude_auth=["PLAIN"]) as smtp:
        steps = run(smtp, user="me", password=password)
    auth = by_key(steps)["auth"][0]
    assert (auth.status, auth.fix, auth.params["mechanism"]) == (status, fix, "LOGIN")


def test_server_closing_after_ehlo():
    with LoopbackSmtp() as smtp:
        smtp.script("ehlo", action="close")
        steps = run(smtp)
    failed = [s for s in steps if s.status == FAILED]
    assert [(s.key, s.fix) for s in failed] == [("mail_from", "disconnected")]


def test_closed_port():
    config = SmtpConfig(host="127.0.0.1", port=closed_port())
    steps = diagnose(config, SENDERS, "rcpt@destination.example")
    assert statuses(steps) == [("resolve", OK), ("connect", FAILED)]
    assert ran(steps)[-1].fix == "connection_refused"


def test_greeting_refused_421_is_temporary():
    with LoopbackSmtp() as smtp:
        smtp.script("connect", 421, "4.3.2 Too busy")
        steps = run(smtp)
    assert (ran(steps)[-1].key, ran(steps)[-1].code, ran(steps)[-1].temporary) == (
        "connect",
        421,
        True,
    )


def test_hanging_server_times_out_without_hanging_the_caller():
    with LoopbackSmtp() as smtp:
        smtp.script("connect", action="hang")
        started = time.monotonic()
        steps = run(smtp, timeout=1)
        elapsed = time.monotonic() - started
    assert (ran(steps)[-1].key, ran(steps)[-1].fix) == ("connect", "timeout")
    assert elapsed < 5


def test_blocked_port_is_refused_before_any_packet():
    config = SmtpConfig(host="127.0.0.1", port=25)
    steps = diagnose(config, SENDERS, "rcpt@destination.example", blocked_ports={25})
    assert statuses(steps) == [("port", FAILED)]
    assert "use 465 with SSL/TLS, or 587 or 2525" in steps[0].fix_text()


def test_unresolvable_host():
    def resolver(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    config = SmtpConfig(host="smtp.nowhere.invalid", port=587)
    steps = diagnose(config, SENDERS, "rcpt@x.example", resolver=resolver)
    assert statuses(steps) == [("resolve", FAILED)]
    assert steps[0].fix_text().startswith("smtp.nowhere.invalid does not resolve")


def test_real_test_email_completes_data():
    message = (
        b"From: notifications@example.com\r\nTo: rcpt@destination.example\r\n"
        b"Subject: Test\r\n\r\nHello\r\n"
    )
    with LoopbackSmtp() as smtp:
        steps = run(smtp, message=message, envelope_from="bounce@example.com")
        assert smtp.wait_for(1)
    send = by_key(steps)["send"][0]
    assert (send.status, send.code) == (OK, 250)
    assert smtp.messages[0]["mail_from"] == "bounce@example.com"
    assert smtp.messages[0]["message"]["Subject"] == "Test"


def test_real_test_email_refused_at_end_of_data():
    with LoopbackSmtp() as smtp:
        smtp.script("data", 554, "5.6.0 Message rejected")
        steps = run(smtp, message=b"Subject: x\r\n\r\nx\r\n", envelope_from=SENDERS[0])
    send = by_key(steps)["send"][0]
    assert (send.status, send.code, send.fix) == (FAILED, 554, "message_refused")


def test_no_sender_to_test():
    with LoopbackSmtp() as smtp:
        steps = run(smtp, senders=[])
    assert by_key(steps)["mail_from"][0].fix == "no_sender"


@pytest.mark.parametrize(
    "tokens,status,fix",
    [
        ({"me@gmail.example": "token"}, WARNING, "oauth_not_checked"),
        (None, FAILED, "oauth_not_offered"),
    ],
)
def test_oauth_server_checked_up_to_the_login(certs, tokens, status, fix):
    """Gmail/Outlook: no token here, so the checklist says what it could not
    check and stops before MAIL FROM, which would only be refused."""
    with LoopbackSmtp(tls="starttls", certificate=certs.valid, tokens=tokens) as smtp:
        config = SmtpConfig(
            host="localhost",
            port=smtp.port,
            encryption="starttls",
            user="me@gmail.example",
            cafile=certs.ca,
            oauth="Gmail",
        )
        steps = diagnose(config, SENDERS, "rcpt@destination.example")
        assert smtp.messages == []
    assert statuses(steps) == [
        ("resolve", OK),
        ("connect", OK),
        ("ehlo", OK),
        ("tls", OK),
        ("auth", status),
    ]
    # the steps after it are listed as not run
    auth = next(step for step in steps if step.key == "auth")
    assert auth.fix == fix
    assert "Gmail" in auth.fix_text()
    assert summary(steps) == status


def test_steps_after_a_refused_connection_are_listed_as_not_run():
    config = SmtpConfig(host="127.0.0.1", port=closed_port(), timeout=2)
    steps = diagnose(config, SENDERS, "rcpt@destination.example")
    assert statuses(steps, not_run=True) == [
        ("resolve", OK),
        ("connect", FAILED),
        ("tls", SKIPPED),
        ("ehlo", SKIPPED),
        ("auth", SKIPPED),
        ("mail_from", SKIPPED),
        ("rcpt", SKIPPED),
        ("data", SKIPPED),
    ]
    assert steps[5].label() == "MAIL FROM notifications@example.com, bounce@example.com"
    assert {s.skip_reason for s in steps[2:]} == {"not_run"}


@pytest.mark.parametrize(
    "behaviour, encryption, timeout, fix",
    [
        # "220-..." lines without end: smtplib alone kept every one of them
        ("endless_greeting", "none", 5, "reply_too_long"),
        ("endless_line", "none", 5, "reply_too_long"),
        # a byte every 0.2 s never trips a per-read timeout of 1 s
        ("slow_greeting", "none", 1, "deadline"),
        ("silent", "none", 1, "timeout"),
        ("silent", "none", 5, "deadline"),
        # implicit TLS against a server that never answers the handshake
        ("silent", "ssl", 5, "deadline"),
    ],
)
def test_hostile_server_cannot_hold_nor_grow_the_checklist(
    behaviour, encryption, timeout, fix
):
    deadline = 2.5
    with HostileServer(behaviour) as server:
        config = SmtpConfig(
            host="127.0.0.1",
            port=server.port,
            encryption=encryption,
            timeout=timeout,
            deadline=deadline,
        )
        tracemalloc.start()
        started = time.monotonic()
        try:
            steps = diagnose(config, SENDERS, "rcpt@destination.example")
            elapsed = time.monotonic() - started
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # bounds, not benchmarks
    assert elapsed <= deadline + 1.5, elapsed
    assert peak < 2 * 1024 * 1024, peak
    failed = [step for step in steps if step.status == FAILED]
    assert failed, statuses(steps)
    assert failed[0].fix == fix, (failed[0].key, failed[0].fix, failed[0].params)
    assert failed[0].fix_text()


@pytest.mark.parametrize(
    "text, key",
    [
        ("[Errno 111] Connection refused", "connection_refused"),
        ("timed out", "timeout"),
        ("[Errno -2] Name or service not known", "dns"),
        (
            "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)",
            "tls_handshake",
        ),
        ("[Errno 113] No route to host", "unreachable"),
        ("Connection unexpectedly closed", "disconnected"),
        ("5.7.1 Relaying denied", None),
    ],
)
def test_send_errors_worded_as_test_connection_words_them(text, key):
    # issue #23 (15): "[Errno 111] Connection refused" raw in the circuit
    # banner, where Test Connection words the same error well
    explained = explain_error(text, "smtp.example.com", 2601)
    assert (explained and explained[0]) == key
    if key:
        worded = fix_text(*explained)
        assert "%(" not in worded
        if key == "connection_refused":
            assert worded.startswith("Nothing accepts connections on smtp.example.com")
