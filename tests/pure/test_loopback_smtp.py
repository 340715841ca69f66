"""The loopback SMTP server's latency and connection limit (issue #10).

The benchmark's sink and the queue-safety scenarios trust them to model a
provider a round trip away that takes N sessions at once: checked here with
smtplib, the client Odoo uses.
"""

import json
import pathlib
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest
from loopback_smtp import LoopbackSmtp, closed_port, message_id

ROOT = pathlib.Path(__file__).resolve().parents[2]


def mail(index, message_id_header=True):
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = f"rcpt{index}@example.org"
    message["Subject"] = f"Mail {index}"
    if message_id_header:
        message["Message-Id"] = f"<{index}@example.com>"
    message.set_content("Hello")
    return message


def timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def test_every_reply_waits_the_delay_greeting_and_ehlo_included():
    delay = 0.1
    with LoopbackSmtp(reply_delay=delay) as smtp:
        client, greeting = timed(lambda: smtplib.SMTP(smtp.host, smtp.port))
        (code, _), ehlo = timed(lambda: client.ehlo("client.example"))
        assert code == 250
        # MAIL, RCPT, DATA's 354 and the end of data: four round trips
        _, send = timed(lambda: client.send_message(mail(1)))
        client.quit()
        assert smtp.count == 1
    assert greeting >= delay
    # EHLO is one multi-line reply: one round trip, not one per line
    assert delay <= ehlo < 3 * delay
    assert 4 * delay <= send < 8 * delay


def test_pipelined_commands_are_answered_after_one_delay():
    """The delay is a round trip, not a pause per reply: MAIL, RCPT and DATA
    sent in one write are all answered one delay after they arrived."""
    with LoopbackSmtp(reply_delay=0.1, pipelining=True) as smtp:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=5)
        client.ehlo()
        assert client.has_extn("pipelining")
        client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        replies, seconds = timed(lambda: [client.getreply() for _ in range(3)])
        assert [code for code, _text in replies] == [250, 250, 354]
        assert 0.09 <= seconds < 0.18
        # one at a time: a delay each
        client.send(b"Subject: x\r\n\r\nhello\r\n.\r\n")
        client.getreply()
        _reply, seconds = timed(
            lambda: (client.mail("a@example.com"), client.rcpt("c@example.org"))
        )
        assert seconds >= 0.19
        client.close()


def test_no_delay_by_default():
    with LoopbackSmtp() as smtp:
        _, elapsed = timed(
            lambda: smtplib.SMTP(smtp.host, smtp.port).send_message(mail(1))
        )
    assert elapsed < 0.1


def test_connection_past_the_limit_is_refused_with_421():
    with LoopbackSmtp(max_connections=3) as smtp:
        clients = [smtplib.SMTP(smtp.host, smtp.port) for _ in range(3)]
        for client in clients:
            assert client.noop()[0] == 250
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP(smtp.host, smtp.port)
        assert refused.value.smtp_code == 421
        assert b"4.7.0 Too many connections" in refused.value.smtp_error
        assert (smtp.sessions, smtp.peak_sessions, smtp.refused_connections) == (
            3,
            3,
            1,
        )
        # the sessions still open work, and a session that ends frees its slot
        clients[0].send_message(mail(1))
        clients[0].quit()
        # a client that drops without QUIT frees it too
        clients[1].sock.shutdown(socket.SHUT_RDWR)
        clients[1].close()
        deadline = time.monotonic() + 5
        while smtp.sessions > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert smtp.sessions == 1
        again = [smtplib.SMTP(smtp.host, smtp.port) for _ in range(2)]
        with pytest.raises(smtplib.SMTPConnectError):
            smtplib.SMTP(smtp.host, smtp.port)
        for client in [clients[2], *again]:
            client.send_message(mail(2))
            client.quit()
        assert smtp.count == 4
        assert (smtp.peak_sessions, smtp.refused_connections) == (3, 2)


def test_message_ids_counted_without_keeping_messages():
    with LoopbackSmtp(record=False) as smtp:
        client = smtplib.SMTP(smtp.host, smtp.port)
        for index in (1, 2, 2, 3):
            client.send_message(mail(index))
        client.send_message(mail(4, message_id_header=False))
        client.quit()
        assert smtp.messages == []
        assert smtp.count == 5
        assert smtp.message_ids == {
            "<1@example.com>",
            "<2@example.com>",
            "<3@example.com>",
            "",
        }
        smtp.reset()
        assert (smtp.count, smtp.message_ids) == (0, set())


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"Subject: x\r\nMessage-Id: <a@b>\r\n\r\nbody", "<a@b>"),
        (b"MESSAGE-ID:\r\n <folded@b>\r\nSubject: x\r\n\r\n", "<folded@b>"),
        (b"Subject: x\r\n\r\nMessage-Id: <in-body@b>\r\n", ""),
        (b"Subject: x\n\nbody", ""),
    ],
)
def test_message_id_read_from_the_header_only(raw, expected):
    assert message_id(raw) == expected


def test_sink_script_delays_limits_and_counts(tmp_path):
    """scripts/smtp_sink.py as the benchmark runs it, stopped with SIGTERM."""
    port = closed_port()
    counts = tmp_path / "counts.json"
    sink = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "smtp_sink.py"),
            f"--port={port}",
            "--quiet",
            "--reply-delay=50",
            "--max-connections=1",
            f"--count-file={counts}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in sink.stdout.readline()
        client, greeting = timed(lambda: smtplib.SMTP("127.0.0.1", port))
        assert greeting >= 0.05
        with pytest.raises(smtplib.SMTPConnectError):
            smtplib.SMTP("127.0.0.1", port)
        for index in (1, 2, 2):
            client.send_message(mail(index))
        client.quit()
    finally:
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(timeout=10) == 0
    assert json.loads(counts.read_text()) == {
        "messages": 3,
        "distinct_message_ids": 2,
        "peak_sessions": 1,
        "refused_connections": 1,
    }
