"""Bounce classification: hard, soft, policy, from real report shapes."""

import time

import bounce_samples
import dsn
import pytest

from mail_outbound_tools import bounce
from mail_outbound_tools.bounce import (
    HARD,
    POLICY,
    SOFT,
    RecipientReport,
    classify,
    describe,
    parse,
)

BOUNCE = "bounce@company-a.example"
MSGID = "<1700000000.123456789.4242-mail.partner-7@company-a.example>"

# (label, action, status, diagnostic, expected class)
CLASSIFY = [
    ("unknown mailbox", "failed", "5.1.1", "550 5.1.1 user unknown", HARD),
    ("bad domain", "failed", "5.1.2", "host not found", HARD),
    ("null MX (RFC 7505)", "failed", "5.1.10", "nullMX", HARD),
    ("M365 not found", "failed", "5.1.10", "RecipientNotFound", HARD),
    ("disabled mailbox", "failed", "5.2.1", "account disabled", HARD),
    ("unroutable domain", "failed", "5.4.4", "", HARD),
    ("5.0.0 + user unknown", "failed", "5.0.0", "550 User unknown", HARD),
    ("no code, no words", "failed", "", "", HARD),
    ("mailbox full", "failed", "5.2.2", "552 mailbox full", SOFT),
    ("4xx gave up", "failed", "4.4.7", "retry timeout exceeded", SOFT),
    ("delayed", "delayed", "4.4.1", "connection timed out", SOFT),
    ("delayed without code", "delayed", "", "", SOFT),
    ("5.0.0 + quota", "failed", "5.0.0", "over quota", SOFT),
    ("message too big", "failed", "5.3.4", "message too big", SOFT),
    ("generic 5.7.1", "failed", "5.7.1", "relaying denied", POLICY),
    ("DMARC", "failed", "5.7.26", "unauthenticated email (DMARC)", POLICY),
    ("SPF in 5.0.0", "failed", "5.0.0", "550 SPF check failed", POLICY),
    ("blocklist", "failed", "5.0.0", "blocked using zen.spamhaus.org", POLICY),
    ("M365 IP refused", "failed", "5.7.708", "traffic not accepted", POLICY),
    ("4.7.1 greylist", "failed", "4.7.1", "greylisted", SOFT),
    ("delivered", "delivered", "2.0.0", "250 ok", ""),
    ("relayed", "relayed", "2.0.0", "", ""),
]


@pytest.mark.parametrize(
    "action,status,diagnostic,expected",
    [case[1:] for case in CLASSIFY],
    ids=[case[0] for case in CLASSIFY],
)
def test_classify(action, status, diagnostic, expected):
    assert classify(action, status, diagnostic) == expected


# (label, report bytes, recipient, action, status, class, diagnostic contains)
REPORTS = [
    (
        "gmail unknown",
        bounce_samples.gmail(BOUNCE, "Nobody@Gmail.example", MSGID),
        "nobody@gmail.example",
        "failed",
        "5.1.1",
        HARD,
        "does not exist",
    ),
    (
        "gmail DMARC",
        bounce_samples.gmail(
            BOUNCE,
            "ann@gmail.example",
            MSGID,
            status="5.7.26",
            diagnostic="smtp; 550-5.7.26 Unauthenticated email from "
            "company-a.example is not accepted due to domain's DMARC policy",
        ),
        "ann@gmail.example",
        "failed",
        "5.7.26",
        POLICY,
        "DMARC",
    ),
    (
        "gmail delayed",
        bounce_samples.gmail(
            BOUNCE,
            "ann@gmail.example",
            MSGID,
            status="4.2.2",
            action="delayed",
            diagnostic="smtp; 452-4.2.2 The recipient's inbox is out of storage",
        ),
        "ann@gmail.example",
        "delayed",
        "4.2.2",
        SOFT,
        "out of storage",
    ),
    (
        "microsoft not found",
        bounce_samples.microsoft(BOUNCE, "bob@contoso.example", MSGID),
        "bob@contoso.example",
        "failed",
        "5.1.10",
        HARD,
        "RecipientNotFound",
    ),
    (
        "microsoft IP blocked",
        bounce_samples.microsoft(
            BOUNCE,
            "bob@contoso.example",
            MSGID,
            status="5.7.708",
            diagnostic="smtp;550 5.7.708 Service unavailable. Access denied, "
            "traffic not accepted from this IP.",
        ),
        "bob@contoso.example",
        "failed",
        "5.7.708",
        POLICY,
        "traffic not accepted",
    ),
    (
        "microsoft 5.0.0 with quoted code",
        bounce_samples.microsoft(
            BOUNCE,
            "bob@contoso.example",
            MSGID,
            status="5.0.0",
            diagnostic="smtp;550 5.2.1 Mailbox disabled for this recipient",
        ),
        "bob@contoso.example",
        "failed",
        "5.2.1",
        HARD,
        "Mailbox disabled",
    ),
    (
        "exim mailbox full (classic text, flufl.bounce)",
        bounce_samples.exim(BOUNCE, "carl@isp.example", MSGID),
        "carl@isp.example",
        "failed",
        "5.2.2",
        SOFT,
        "mailbox full",
    ),
    (
        "exim unknown user",
        bounce_samples.exim(
            BOUNCE, "carl@isp.example", MSGID, reply="550 5.1.1 <{rcpt}>: No such user"
        ),
        "carl@isp.example",
        "failed",
        "5.1.1",
        HARD,
        "No such user",
    ),
    (
        "exim spamhaus without enhanced code",
        bounce_samples.exim(
            BOUNCE,
            "carl@isp.example",
            MSGID,
            reply="550 rejected because 192.0.2.1 is in a black list at "
            "zen.spamhaus.org",
        ),
        "carl@isp.example",
        "failed",
        "",
        POLICY,
        "spamhaus",
    ),
]


@pytest.mark.parametrize(
    "raw,recipient,action,status,klass,words",
    [case[1:] for case in REPORTS],
    ids=[case[0] for case in REPORTS],
)
def test_parse_report(raw, recipient, action, status, klass, words):
    report = parse(raw.encode())
    entry = report.for_recipient(recipient)
    assert entry is not None, report
    assert (entry.recipient, entry.action, entry.status, entry.bounce_class) == (
        recipient,
        action,
        status,
        klass,
    )
    assert words in entry.diagnostic
    assert report.original_message_id == MSGID


def test_sources():
    assert parse(bounce_samples.gmail(BOUNCE, "a@b.example", MSGID)).source == "dsn"
    assert parse(bounce_samples.exim(BOUNCE, "a@b.example", MSGID)).source == "detector"


def test_not_a_report():
    report = parse(
        b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hi\r\n\r\nHello\r\n"
    )
    assert report.recipients == ()
    assert report.for_recipient("c@d.example") is None


def test_several_recipients_each_classified():
    raw = bounce_samples.gmail(BOUNCE, "x@y.example", MSGID).replace(
        "Final-Recipient: rfc822; x@y.example\r\n",
        "Final-Recipient: rfc822; full@y.example\r\nAction: failed\r\n"
        "Status: 5.2.2\r\nDiagnostic-Code: smtp; 552 mailbox full\r\n\r\n"
        "Final-Recipient: rfc822; x@y.example\r\n",
    )
    report = parse(raw)
    assert [(e.recipient, e.bounce_class) for e in report.recipients] == [
        ("full@y.example", SOFT),
        ("x@y.example", HARD),
    ]
    assert report.for_recipient("X@Y.example").bounce_class == HARD
    # an address the report does not name: its first failure
    assert report.for_recipient("other@y.example").recipient == "full@y.example"


@pytest.mark.parametrize(
    "entry,expected",
    [
        (
            RecipientReport("a@b", "failed", "5.1.1", "550 5.1.1 nope", HARD),
            "Hard bounce: the address does not exist or cannot receive mail "
            "(5.1.1: the mailbox does not exist). It counts against the "
            'recipient. The receiving server said: "550 5.1.1 nope"',
        ),
        (
            RecipientReport("a@b", "delayed", "4.4.1", "", SOFT),
            "Delivery delayed: the receiving server keeps trying (4.4.1: the "
            "receiving server did not answer). "
            "Nothing has failed yet.",
        ),
        (
            RecipientReport("a@b", "failed", "", "", POLICY),
            "Policy bounce: the receiving server refused the mail because of "
            "the sender (no status code), e.g. SPF, DKIM, DMARC or a blocklist. "
            "Check the sending server and domain; it does not count against "
            "the recipient.",
        ),
    ],
)
def test_describe(entry, expected):
    assert describe(entry) == expected
    assert entry.failed == (entry.action != "delayed")


def test_describe_translates_templates_and_fills_after():
    entry = RecipientReport("a@b", "failed", "5.2.2", "full", SOFT)
    text = describe(entry, translate=lambda source: "[ro] " + source)
    assert text.startswith("[ro] Soft bounce")
    assert "(5.2.2: [ro] the mailbox is full)" in text
    assert text.endswith('[ro] The receiving server said: "full"')
    # what employees read: no word of the outsider's
    assert 'full"' not in describe(entry, diagnostic=False)


def test_a_detector_crash_is_no_report(monkeypatch, caplog):
    import mail_outbound_tools.bounce as module

    def broken(message):
        raise ValueError("detector bug")

    monkeypatch.setattr(module, "all_failures", broken)
    report = parse(bounce_samples.exim(BOUNCE, "a@b.example", MSGID))
    assert report.recipients == ()
    assert "flufl.bounce could not read a report" in caplog.text
    # RFC 3464 reports do not need the detectors
    assert parse(bounce_samples.gmail(BOUNCE, "a@b.example", MSGID)).recipients


@pytest.mark.parametrize(
    "status,words",
    [
        ("5.3.4", "the message is too large for the receiving server"),
        ("5.2.3", "the message is too large for the recipient"),
        ("4.4.1", "the receiving server did not answer"),
        ("5.4.6", "routing loop"),
        ("4.7.0", "a security or policy refusal"),
        ("5.7.26", "SPF, DKIM, DMARC"),
        ("5.7.708", "not trusted"),
    ],
)
def test_every_class_explained_by_its_own_code(status, words):
    entry = RecipientReport("a@b", "failed", status, "", classify("failed", status, ""))
    text = describe(entry)
    assert f"({status}: " in text and words in text
    # a size refusal is no full mailbox nor a temporary problem
    assert "mailbox is full" not in text and "temporary" not in text


def test_every_rfc3463_detail_has_words():
    # RFC 3463's subjects and their details (X.1.5 is a success: no words)
    for subject, last in (
        ("1", 8),
        ("2", 4),
        ("3", 5),
        ("4", 7),
        ("5", 5),
        ("6", 5),
        ("7", 8),
    ):
        for detail in range(last + 1):
            if (subject, detail) != ("1", 5):
                assert bounce.status_text(f"5.{subject}.{detail}"), (subject, detail)
    assert bounce.status_text("5.0.0")


def _text_mail(sender, size, parts=1):
    line = "short line of text\n"
    if parts == 1:
        return (
            f"From: {sender}\nTo: someone@example.com\nSubject: x\n\n"
            + line * (size // len(line))
        ).encode()
    body = "".join(f"--b\nContent-Type: text/plain\n\npart {n}\n" for n in range(parts))
    return (
        f"From: {sender}\nTo: someone@example.com\nSubject: x\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        f"{body}--b--\n"
    ).encode()


def test_cost_is_bounded_before_any_detector(monkeypatch):
    calls = []
    monkeypatch.setattr(
        bounce, "all_failures", lambda message: calls.append(1) or ((), ())
    )
    # a 10 MB text mail and 20,000 parts: the detectors never run
    for raw in (
        _text_mail("MAILER-DAEMON@mx.example", 10 * 1024 * 1024),
        _text_mail("MAILER-DAEMON@mx.example", 0, parts=20_000),
    ):
        message = bounce._message_from(raw)
        start = time.process_time()
        report = parse(message)
        assert time.process_time() - start < 0.5
        assert report.recipients == ()
    assert calls == []
    assert parse(_text_mail("x@y", 0, parts=20_000)).source == "too_large"
    # a small plain report still goes through them
    parse(bounce_samples.exim(BOUNCE, "a@b.example", MSGID))
    assert calls == [1]


def test_a_large_returned_copy_is_read_for_its_message_id_only():
    raw = bounce_samples.gmail(BOUNCE, "a@b.example", MSGID).replace(
        "\r\nHello\r\n", "\r\n" + "x" * 76 + "\r\n" * 1 + ("y" * 76 + "\r\n") * 40000
    )
    report = parse(raw.encode())
    assert report.original_message_id == MSGID
    assert [e.recipient for e in report.recipients] == ["a@b.example"]


# Reports written by a real Postfix 3.7 (tests/dsn/capture_postfix.py)
POSTFIX = [
    ("two-recipients", "fullbox@dest.example", "5.2.2", SOFT, "the mailbox is full"),
    ("two-recipients", "gone@dest.example", "5.1.1", HARD, "does not exist"),
    ("too-large", "big@dest.example", "5.3.4", SOFT, "too large"),
    ("policy", "policy@dest.example", "5.7.26", POLICY, "SPF, DKIM, DMARC"),
    ("no-domain", "nobody@dest.example", "5.1.2", HARD, "domain does not exist"),
]


@pytest.mark.parametrize("case,recipient,status,klass,words", POSTFIX)
def test_real_postfix_reports(case, recipient, status, klass, words):
    report = parse(dsn.report(case))
    assert report.source == "dsn"
    assert report.original_message_id == dsn.captured_message_id(case)
    assert [e.recipient for e in report.recipients] == list(
        dsn.CAPTURED_RECIPIENTS[case]
    )
    entry = report.for_recipient(recipient)
    assert (entry.status, entry.bounce_class, entry.action) == (status, klass, "failed")
    text = describe(entry, diagnostic=False)
    assert f"({status}: " in text and words in text
    assert entry.diagnostic[:3].isdigit()  # the reply, without "smtp;"
    if case == "too-large":
        assert "mailbox is full" not in describe(entry)
