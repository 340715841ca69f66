"""Beside the mail modules people install with it (issue #14).

These classes need a module this addon does not depend on; each skips
itself on a database without it. scripts/test runs them on the databases of
its compatibility phase, where those modules are installed.
"""

import tempfile
import time
import unittest

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.base.models import ir_module

from .common import MailOutboundSmtpCase
from .loopback_smtp import certificates, closed_port

RECIPIENT = "customer@destination.example"


@tagged("post_install", "-at_install", "mail_outbound")
class TestMailTrackingInterplay(MailOutboundSmtpCase):
    """OCA mail_tracking sees what really happened to each mail."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if "mail.tracking.email" not in cls.env:
            raise unittest.SkipTest("mail_tracking is not installed on this database")
        cls.smtp_primary, cls.primary = cls.start_smtp_server("Primary", sequence=1)
        cls.smtp_secondary, cls.secondary = cls.start_smtp_server(
            "Secondary", sequence=2
        )
        cls.customer = cls.env["res.partner"].create(
            {"name": "Customer", "email": RECIPIENT}
        )

    def tracking(self, mail):
        return self.env["mail.tracking.email"].search(
            [("mail_id", "=", mail.id)], order="id"
        )

    def test_parallel_sessions_step_aside(self):
        """mail_tracking records each message in ``send_email``: the queue
        then sends through it, one mail at a time."""
        self.assertEqual(
            self.env["ir.mail_server"]._get_lane_blockers(), ["mail_tracking"]
        )

    def test_deferred_mail_is_tracked_deferred_with_the_reply(self):
        self.smtp_primary.script("rcpt", 451, "4.7.1 Greylisted, try later", times=1)
        mail = self.queue_mail("bob@example.com")
        self.received(self.smtp_primary, 0)
        self.assertEqual((mail.state, mail.delivery_deferred), ("outgoing", True))
        self.assertIn("451 4.7.1 Greylisted", mail.failure_reason)
        tracking = self.tracking(mail)
        self.assertEqual(tracking.state, "deferred")
        self.assertIn("451 4.7.1 Greylisted, try later", tracking.error_description)
        event = tracking.tracking_event_ids.filtered(
            lambda e: e.event_type == "deferral"
        )
        self.assertIn("451", event.error_description)
        # a temporary refusal says nothing against the address
        self.assertFalse(self.customer.email_bounced)
        self.assertFalse(mail.mail_message_id.mail_tracking_needs_action)

        # the next attempt is delivered: a new tracking says sent
        mail.scheduled_date = fields.Datetime.now()
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        self.assertEqual(mail.state, "sent")
        (received,) = self.received(self.smtp_primary)
        self.assertEqual(received["rcpt_tos"], [RECIPIENT])
        self.assertEqual(self.tracking(mail).mapped("state"), ["deferred", "sent"])
        self.assertEqual(
            received["message"]["X-Odoo-MailTracking-ID"],
            str(self.tracking(mail)[-1].id),
        )

    def test_failover_is_tracked_sent_through_the_server_that_sent_it(self):
        # mail_tracking names the first server; that one cannot be reached
        self.primary.write({"smtp_host": "localhost", "smtp_port": closed_port()})
        mail = self.queue_mail("bob@example.com")
        self.assertEqual(mail.state, "sent")
        self.received(self.smtp_secondary)
        self.assertEqual(mail.routing_server_id, self.secondary)
        tracking = self.tracking(mail)
        self.assertEqual(tracking.state, "sent")
        sent = tracking.tracking_event_ids.filtered(lambda e: e.event_type == "sent")
        self.assertEqual(sent.smtp_server, "127.0.0.1")

    def test_refused_recipient_is_tracked_as_error(self):
        self.smtp_primary.script("rcpt", 550, "5.1.1 No such user")
        mail = self.queue_mail("bob@example.com")
        self.received(self.smtp_primary, 0)
        self.assertEqual(mail.state, "exception")
        self.assertEqual(mail.failure_type, "mail_email_invalid")
        self.assertIn("550 5.1.1 No such user", mail.failure_reason)
        tracking = self.tracking(mail)
        self.assertEqual(tracking.state, "error")
        self.assertIn("550", tracking.error_description)
        # a permanent refusal: mail_tracking's own verdict on the address
        self.assertTrue(self.customer.email_bounced)

    def test_bounce_after_delivery_reaches_the_tracking(self):
        mail = self.queue_mail("bob@example.com")
        (received,) = self.received(self.smtp_primary)
        # the envelope sender the routing chose is where the bounce goes
        self.assertEqual(received["mail_from"], "bounce@example.com")
        message_id = received["message"]["Message-Id"]
        dsn = (
            "From: MAILER-DAEMON@destination.example\r\n"
            "To: bounce@example.com\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "Message-Id: <dsn-1@destination.example>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"'
            "\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; destination.example\r\n\r\n"
            f"Final-Recipient: rfc822; {RECIPIENT}\r\nAction: failed\r\n"
            "Status: 5.1.1\r\n\r\n"
            "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"Message-Id: {message_id}\r\nFrom: bob@example.com\r\n"
            f"To: {RECIPIENT}\r\nSubject: mail_outbound test\r\n\r\n--b--\r\n"
        )
        self.env["mail.thread"].message_process(False, dsn)
        tracking = self.tracking(mail)
        self.assertEqual(tracking.state, "soft-bounced")
        self.assertEqual(self.customer.message_bounce, 1)


@tagged("post_install", "-at_install", "mail_outbound")
class TestOAuthServers(MailOutboundSmtpCase):
    """Gmail and Outlook servers are routed, failed over and limited alike."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        selection = dict(
            cls.env["ir.mail_server"]._fields["smtp_authentication"].selection
        )
        if "gmail" not in selection or "outlook" not in selection:
            raise unittest.SkipTest(
                "google_gmail and microsoft_outlook are not installed here"
            )
        tempdir = tempfile.TemporaryDirectory()
        cls.addClassCleanup(tempdir.cleanup)
        cls.certs = certificates(tempdir.name)
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.smtp_ca_file", cls.certs.ca
        )
        expires = int(time.time()) + 3600
        cls.smtp_gmail, cls.gmail = cls.start_smtp_server(
            "Gmail",
            "bob@example.com",
            sequence=1,
            tls="starttls",
            certificate=cls.certs.valid,
            auth_required=True,
            tokens={"bob@example.com": "gmail-token"},
            smtp_authentication="gmail",
            smtp_user="bob@example.com",
            google_gmail_refresh_token="refresh",
            google_gmail_access_token="gmail-token",
            google_gmail_access_token_expiration=expires,
        )
        cls.smtp_outlook, cls.outlook = cls.start_smtp_server(
            "Outlook",
            "example.com",
            sequence=2,
            tls="starttls",
            certificate=cls.certs.valid,
            auth_required=True,
            tokens={"team@example.com": "outlook-token"},
            smtp_authentication="outlook",
            smtp_user="team@example.com",
            microsoft_outlook_refresh_token="refresh",
            microsoft_outlook_access_token="outlook-token",
            microsoft_outlook_access_token_expiration=expires,
        )

    def test_routed_by_filter_and_logged_in_with_the_token(self):
        bob = self.queue_mail('"Bob" <bob@example.com>')
        alice = self.queue_mail('"Alice" <alice@example.com>')
        (to_gmail,) = self.received(self.smtp_gmail)
        (to_outlook,) = self.received(self.smtp_outlook)
        self.assertTrue(to_gmail["authenticated"] and to_outlook["authenticated"])
        self.assertAddress(to_gmail["message"]["From"], "Bob", "bob@example.com")
        self.assertAddress(to_outlook["message"]["From"], "Alice", "alice@example.com")
        self.assertEqual(
            (bob.routing_server_id, bob.routing_rule), (self.gmail, "from_address")
        )
        self.assertEqual(
            (alice.routing_server_id, alice.routing_rule),
            (self.outlook, "from_domain"),
        )

    def test_failover_from_an_unreachable_gmail(self):
        self.gmail.smtp_port = closed_port()
        mail = self.queue_mail('"Bob" <bob@example.com>')
        (received,) = self.received(self.smtp_outlook)
        self.assertTrue(received["authenticated"])
        self.assertEqual(mail.state, "sent")
        self.assertEqual(mail.routing_server_id, self.outlook)
        self.assertEqual(self.gmail.delivery_failures, 1)

    def test_daily_limit_of_a_gmail_server(self):
        self.gmail.daily_limit = 1
        first = self.queue_mail("bob@example.com")
        second = self.queue_mail("bob@example.com")
        self.received(self.smtp_gmail, 1)
        self.assertEqual(first.state, "sent")
        # held for the limit (issue #20): no deferral, the reason on its form
        self.assertEqual(
            (second.state, second.delivery_hold), ("outgoing", "server_day")
        )
        self.assertIn("daily limit of 1 messages", second.delivery_hold_reason)

    def test_refused_token_defers_the_mail(self):
        # google_gmail ignores the answer to its AUTH: the refusal shows at
        # MAIL FROM as "530 authentication required", about the server
        self.smtp_gmail.tokens["bob@example.com"] = "another-token"
        try:
            mail = self.queue_mail("bob@example.com")
        finally:
            self.smtp_gmail.tokens["bob@example.com"] = "gmail-token"
        self.received(self.smtp_gmail, 0)
        self.assertEqual((mail.state, mail.delivery_deferred), ("outgoing", True))
        self.assertIn("530", mail.failure_reason)

    def test_connection_test_says_what_it_cannot_check(self):
        wizard = self.env["mail.outbound.connection.test"].create(
            {"mail_server_id": self.gmail.id}
        )
        wizard.action_run()
        self.assertEqual(wizard.result, "warning")
        self.assertEqual(
            [(line.step, line.status) for line in wizard.line_ids],
            [
                ("Host name resolves", "ok"),
                ("TCP connection and greeting", "ok"),
                ("EHLO", "ok"),
                ("TLS", "ok"),
                ("Authentication", "warning"),
                # what a token would have let it check, listed as not run
                ("MAIL FROM bob@example.com", "skipped"),
                ("RCPT TO noreply@odoo.com", "skipped"),
                ("DATA", "skipped"),
            ],
        )
        auth = wizard.line_ids.filtered(lambda line: line.step == "Authentication")
        self.assertEqual(auth.detail, "XOAUTH2")
        self.assertIn("Gmail OAuth", auth.fix)
        self.assertIn("not the login, the senders", auth.fix)
        self.assertFalse(self.smtp_gmail.messages)


@tagged("post_install", "-at_install", "mail_outbound")
class TestOutboundStaticExcluded(MailOutboundSmtpCase):
    """OCA mail_outbound_static is refused beside this module, saying why."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.static = cls.env["ir.module.module"].search(
            [("name", "=", "mail_outbound_static")]
        )
        if not cls.static:
            raise unittest.SkipTest("mail_outbound_static is not in the addons path")

    def test_installing_it_is_refused_with_the_reason(self):
        with self.assertRaises(UserError) as refused:
            self.static.button_install()
        message = str(refused.exception)
        self.assertIn("mail_outbound_static", message)
        self.assertIn("FROM Filtering", message)
        self.assertEqual(self.static.state, "uninstalled")

    def test_core_refuses_it_too(self):
        """The manifest's exclusion: core's own check, also when Mail
        Outbound is the one being installed on a database that has it."""
        ours = self.env["ir.module.module"].search([("name", "=", "mail_outbound")])
        self.assertEqual(ours.exclusion_ids.mapped("name"), ["mail_outbound_static"])
        with self.assertRaises(UserError) as refused:
            # core's method alone, without this module's override
            ir_module.Module.button_install(self.static)
        self.assertIn("incompatible", str(refused.exception))
