"""Delivery reports shaped like the ones real providers send.

Hand-written after reports received from Gmail, Microsoft 365 (Exchange
Online) and Exim, keeping their structure: Gmail's and Microsoft's are RFC
3464 ``multipart/report`` messages with their own wording and fields
(``X-Display-Name``, ``Remote-MTA``, Microsoft's ``5.1.10`` for an unknown
recipient); Exim's classic report is plain text with an
``X-Failed-Recipients`` header and a pasted copy of the headers. Used by the
pure suite (``tools/bounce.py``) and by the gateway tests, so both read the
same bytes. No odoo import.
"""

import itertools

BOUNDARY = "=_report_boundary"
_SEQUENCE = itertools.count(1)


def _headers(msg_from, to, subject, extra=""):
    return (
        f"From: {msg_from}\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        f"Message-ID: <report-{next(_SEQUENCE)}@mta.example>\r\n"
        f"{extra}"
    )


def _original(original_from, recipient, message_id, subject="Your quotation"):
    return (
        f"From: {original_from}\r\n"
        f"To: {recipient}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Tue, 24 Nov 2026 09:59:00 +0000\r\n"
    )


def gmail(
    bounce_to,
    recipient,
    message_id,
    status="5.1.1",
    diagnostic=None,
    action="failed",
    original_from="sales@company-a.example",
):
    """Gmail's "Address not found" / "Message blocked" report."""
    diagnostic = diagnostic or (
        "smtp; 550-5.1.1 The email account that you tried to reach does not "
        "exist. Please try double-checking the recipient's email address for "
        "typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser"
    )
    return (
        _headers(
            "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            bounce_to,
            "Delivery Status Notification (Failure)",
            "Auto-Submitted: auto-replied\r\n"
            f'Content-Type: multipart/report; boundary="{BOUNDARY}"; '
            "report-type=delivery-status\r\n",
        )
        + "\r\n"
        f"--{BOUNDARY}\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
        "** Address not found **\r\n\r\n"
        f"Your message wasn't delivered to {recipient} because the address "
        "couldn't be found, or is unable to receive mail.\r\n\r\n"
        f"--{BOUNDARY}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; googlemail.com\r\n"
        "Received-From-MTA: dns; sales@company-a.example\r\n"
        "Arrival-Date: Tue, 24 Nov 2026 01:59:00 -0800 (PST)\r\n"
        "X-Original-Message-ID: " + message_id + "\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450::1b, the "
        "server for the domain.)\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n"
        "Last-Attempt-Date: Tue, 24 Nov 2026 01:59:01 -0800 (PST)\r\n\r\n"
        f"--{BOUNDARY}\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        + _original(original_from, recipient, message_id)
        + "\r\nHello\r\n\r\n"
        f"--{BOUNDARY}--\r\n"
    )


def microsoft(
    bounce_to,
    recipient,
    message_id,
    status="5.1.10",
    diagnostic=None,
    action="failed",
    original_from="sales@company-a.example",
):
    """Exchange Online's "Undeliverable" report (headers only returned)."""
    diagnostic = diagnostic or (
        "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found "
        "by SMTP address lookup"
    )
    return (
        _headers(
            "Microsoft Outlook <postmaster@outlook.com>",
            bounce_to,
            "Undeliverable: Your quotation",
            "X-MS-Exchange-Message-Is-Ndr: \r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; "
            f'boundary="{BOUNDARY}"\r\n',
        )
        + "\r\n"
        f"--{BOUNDARY}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"Your message to {recipient} couldn't be delivered.\r\n"
        "Remote Server returned '" + diagnostic.split(";", 1)[1] + "'\r\n\r\n"
        f"--{BOUNDARY}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\r\n"
        "Received-From-MTA: dns;mail.company-a.example\r\n"
        "Arrival-Date: Tue, 24 Nov 2026 09:59:02 +0000\r\n\r\n"
        f"Final-recipient: RFC822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-code: {diagnostic}\r\n"
        f"X-Display-Name: {recipient.split('@')[0].title()}\r\n\r\n"
        f"--{BOUNDARY}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        + _original(original_from, recipient, message_id)
        + f"\r\n--{BOUNDARY}--\r\n"
    )


def exim(
    bounce_to,
    recipient,
    message_id,
    reply="550 5.2.2 <{rcpt}>: mailbox full",
    original_from="sales@company-a.example",
):
    """Exim's classic plain-text report with X-Failed-Recipients."""
    reply = reply.format(rcpt=recipient)
    return (
        _headers(
            "Mail Delivery System <Mailer-Daemon@mx.isp.example>",
            bounce_to,
            "Mail delivery failed: returning message to sender",
            f"X-Failed-Recipients: {recipient}\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n",
        )
        + "\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) "
        "failed:\r\n\r\n"
        f"  {recipient}\r\n"
        "    host mx.isp.example [192.0.2.25]\r\n"
        f"    SMTP error from remote mail server after RCPT TO:<{recipient}>:\r\n"
        f"    {reply}\r\n\r\n"
        "------ This is a copy of the message, including all the headers. "
        "------\r\n\r\n"
        + _original(original_from, recipient, message_id)
        + "\r\nHello\r\n"
    )


def postfix(bounce_to, failures, message_id, original_from="sales@company-a.example"):
    """Postfix 3.7's "Undelivered Mail Returned to Sender": one report for
    several recipients, one block each. ``failures``: ``(recipient, status,
    reply)`` tuples, e.g. ``("gone@x.example", "5.1.1", "550 5.1.1 <gone@
    x.example>: Recipient address rejected: User unknown")``."""
    boundary = "4B2F81A0C3.1795082400/mx.relay.example"
    notes = "".join(
        f"<{rcpt}>: host mx.dest.example[192.0.2.25] said: {reply} (in reply to "
        "RCPT TO command)\r\n\r\n"
        for rcpt, _status, reply in failures
    )
    blocks = "".join(
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.dest.example\r\n"
        f"Diagnostic-Code: smtp; {reply}\r\n\r\n"
        for rcpt, status, reply in failures
    )
    return (
        _headers(
            "MAILER-DAEMON@mx.relay.example (Mail Delivery System)",
            bounce_to,
            "Undelivered Mail Returned to Sender",
            "Auto-Submitted: auto-replied\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            f'\tboundary="{boundary}"\r\n'
            "Content-Transfer-Encoding: 8bit\r\n",
        )
        + "\r\nThis is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "This is the mail system at host mx.relay.example.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n\r\n"
        "                   The mail system\r\n\r\n" + notes + f"--{boundary}\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.relay.example\r\n"
        "X-Postfix-Queue-ID: 4B2F81A0C3\r\n"
        f"X-Postfix-Sender: rfc822; {bounce_to}\r\n"
        "Arrival-Date: Tue, 24 Nov 2026 09:59:00 +0000 (UTC)\r\n\r\n"
        + blocks
        + f"--{boundary}\r\n"
        "Content-Description: Undelivered Message\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        + _original(original_from, ", ".join(f[0] for f in failures), message_id)
        + "\r\nHello\r\n\r\n"
        f"--{boundary}--\r\n"
    )


def qmail(
    bounce_to, recipient, message_id, reply="Sorry, no mailbox here by that name."
):
    """qmail's plain-text QSBMF report, from MAILER-DAEMON@; only
    flufl.bounce's detectors read it."""
    return (
        _headers(
            "MAILER-DAEMON@mx.qmail.example",
            bounce_to,
            "failure notice",
            "Content-Type: text/plain; charset=us-ascii\r\n",
        )
        + "\r\nHi. This is the qmail-send program at mx.qmail.example.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following "
        "addresses.\r\nThis is a permanent error; I've given up. Sorry it "
        "didn't work out.\r\n\r\n"
        f"<{recipient}>:\r\n{reply} (#5.1.1)\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        + _original("sales@company-a.example", recipient, message_id)
        + "\r\nHello\r\n"
    )


def original_recipient_only(to, recipient, message_id, **values):
    """A Gmail-shaped report naming the recipient only in
    ``Original-Recipient`` (core reads only ``Final-Recipient``)."""
    return gmail(to, recipient, message_id, **values).replace(
        "Final-Recipient:", "Original-Recipient:"
    )
