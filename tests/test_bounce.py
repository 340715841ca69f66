"""Bounces through Odoo's real mail gateway, classified, with their effects.

Each test sends a real notification through the queue to a loopback SMTP
server, takes the Message-ID the server received, and delivers a report
shaped like Gmail's, Microsoft 365's or Exim's to the bounce alias with
``message_process``. Then it checks who was blamed: the recipient (hard),
nobody (soft, delayed) or the sending server and domain (policy).
"""

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from . import bounce_samples
from .common import MailOutboundSmtpCase, parameter_warnings


@tagged("post_install", "-at_install", "mail_outbound")
class TestBounce(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp, cls.server = cls.start_smtp_server("Example", "example.com")
        cls.customer = cls.env["res.partner"].create(
            {"name": "Nobody", "email": "nobody@gmail.example"}
        )
        cls.record = cls.env["res.partner"].create({"name": "Quotation thread"})

    def send(self):
        """A notification to the customer; the Message-ID that really left."""
        message = self.post_and_send(self.record, self.customer)
        (received,) = self.received(self.smtp)
        self.smtp.reset()
        self.assertEqual(received["rcpt_tos"], ["nobody@gmail.example"])
        self.assertEqual(received["mail_from"], "bounce@example.com")
        return message, received["message"]["Message-ID"]

    def notification(self, message):
        return message.notification_ids.filtered(
            lambda n: n.res_partner_id == self.customer
        )

    def log(self, message_id):
        return self.env["mail.delivery.log"].search([("message_id", "=", message_id)])

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_gmail_unknown_address_is_hard_and_counts(self):
        message, message_id = self.send()
        self.assertEqual(self.notification(message).notification_status, "sent")
        self.receive(
            bounce_samples.gmail(
                "bounce@example.com", "nobody@gmail.example", message_id
            )
        )
        self.assertEqual(self.customer.message_bounce, 1)
        notification = self.notification(message)
        self.assertEqual(notification.notification_status, "bounce")
        self.assertEqual(notification.failure_type, "mail_bounce")
        self.assertIn("Hard bounce", notification.failure_reason)
        self.assertIn("5.1.1: the mailbox does not exist", notification.failure_reason)
        # the receiving server's words (whoever wrote them) stay with the
        # administrators, on the delivery log
        self.assertNotIn("Please try", notification.failure_reason)
        self.assertNotIn("Address not found", notification.failure_reason)
        # the red envelope's resend dialog: the explanation, not only "Bounce"
        self.assertTrue(
            notification.format_failure_reason().startswith(
                "Bounce: Hard bounce: the address does not exist"
            )
        )
        (event,) = self.log(message_id).event_ids
        self.assertEqual(
            (event.bounce_class, event.status, event.action, event.recipient),
            ("hard", "5.1.1", "failed", "nobody@gmail.example"),
        )
        self.assertIn("does not exist. Please try", event.diagnostic)
        self.assertEqual(event.log_id.mail_server_id, self.server)
        self.assertEqual(self.server.policy_bounce_count, 0)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_exim_mailbox_full_is_soft_and_never_counts(self):
        message, message_id = self.send()
        # Exim's classic report: plain text, only flufl.bounce recognises it
        self.receive(
            bounce_samples.exim(
                "bounce@example.com", "nobody@gmail.example", message_id
            )
        )
        self.assertEqual(self.customer.message_bounce, 0)
        notification = self.notification(message)
        self.assertEqual(notification.notification_status, "bounce")
        self.assertIn("Soft bounce", notification.failure_reason)
        self.assertIn("5.2.2: the mailbox is full", notification.failure_reason)
        (event,) = self.log(message_id).event_ids
        self.assertEqual((event.bounce_class, event.status), ("soft", "5.2.2"))

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_delayed_report_fails_nothing(self):
        message, message_id = self.send()
        self.receive(
            bounce_samples.gmail(
                "bounce@example.com",
                "nobody@gmail.example",
                message_id,
                status="4.2.2",
                action="delayed",
                diagnostic="smtp; 452-4.2.2 The recipient's inbox is out of storage",
            )
        )
        self.assertEqual(self.customer.message_bounce, 0)
        self.assertEqual(self.notification(message).notification_status, "sent")
        self.assertFalse(self.notification(message).failure_type)
        log = self.log(message_id)
        self.assertEqual(log.outcome, "sent")
        (event,) = log.event_ids
        self.assertEqual((event.action, event.bounce_class), ("delayed", "soft"))
        self.assertIn("Nothing has failed yet", event.description)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_microsoft_policy_counts_against_server_and_domain(self):
        message, message_id = self.send()
        self.receive(
            bounce_samples.microsoft(
                "bounce@example.com",
                "nobody@gmail.example",
                message_id,
                status="5.7.708",
                diagnostic="smtp;550 5.7.708 Service unavailable. Access denied, "
                "traffic not accepted from this IP.",
            )
        )
        self.assertEqual(self.customer.message_bounce, 0)
        self.assertEqual(self.server.policy_bounce_count, 1)
        self.assertIn("Policy bounce", self.server.last_policy_bounce)
        self.assertEqual(self.alias_domain.policy_bounce_count, 1)
        notification = self.notification(message)
        self.assertEqual(notification.notification_status, "bounce")
        self.assertIn("5.7.708", notification.failure_reason)
        (event,) = self.log(message_id).event_ids
        self.assertEqual(event.bounce_class, "policy")

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_hard_bounces_blacklist_after_the_setting(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.bounce_blacklist_after", "2"
        )
        Blacklist = self.env["mail.blacklist"].sudo()
        for count in (1, 2):
            _message, message_id = self.send()
            self.assertFalse(Blacklist.search([("email", "=", "nobody@gmail.example")]))
            self.receive(
                bounce_samples.microsoft(
                    "bounce@example.com", "nobody@gmail.example", message_id
                )
            )
            self.assertEqual(self.customer.message_bounce, count)
        self.assertTrue(Blacklist.search([("email", "=", "nobody@gmail.example")]))

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_soft_bounces_never_blacklist(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.bounce_blacklist_after", "1"
        )
        _message, message_id = self.send()
        self.receive(
            bounce_samples.exim(
                "bounce@example.com", "nobody@gmail.example", message_id
            )
        )
        self.assertFalse(
            self.env["mail.blacklist"]
            .sudo()
            .search([("email", "=", "nobody@gmail.example")])
        )

    def test_blacklist_setting_in_settings(self):
        # installed with 5
        self.assertEqual(self.env["mail.thread"]._get_bounce_blacklist_after(), 5)
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.mail_outbound_bounce_blacklist_after, 5)
        for value in (3, 0):
            settings.mail_outbound_bounce_blacklist_after = value
            settings.execute()
            self.assertEqual(
                self.env["mail.thread"]._get_bounce_blacklist_after(), value
            )
            settings = self.env["res.config.settings"].create({})
            self.assertEqual(settings.mail_outbound_bounce_blacklist_after, value)
        with self.assertRaisesRegex(ValidationError, "Blacklist After Hard Bounces"):
            self.env["res.config.settings"].create(
                {"mail_outbound_bounce_blacklist_after": -1}
            )

    def test_blacklist_setting_typo_logs_and_falls_back(self):
        Thread = self.env["mail.thread"]
        params = self.env["ir.config_parameter"].sudo()
        key = "mail_outbound.bounce_blacklist_after"
        # no value is the table's default, the one installed
        for value, expected in (("3", 3), ("0", 0), ("", 5), (False, 5)):
            params.set_param(key, value)
            self.assertEqual(Thread._get_bounce_blacklist_after(), expected)
        for value, expected, words in (
            ("-2", 0, "outside 0 to 1000: using 0"),
            ("five", 5, "'five', not a whole number: using the default 5"),
            ("1e309", 5, "'1e309', not a whole number: using the default 5"),
        ):
            params.set_param(key, value)
            with parameter_warnings() as lines:
                self.assertEqual(Thread._get_bounce_blacklist_after(), expected)
                self.assertEqual(Thread._get_bounce_blacklist_after(), expected)
            (line,) = lines.naming(key)
            self.assertIn(words, line)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_unreadable_bounce_keeps_core_behaviour(self):
        message, message_id = self.send()
        # a report in no shape anyone knows: a note and the returned mail
        raw = (
            "From: MAILER-DAEMON@mx.example\r\nTo: bounce@example.com\r\n"
            "Subject: failure\r\nMessage-ID: <odd-report@mx.example>\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nSomething went wrong.\r\n"
            "--b\r\nContent-Type: message/rfc822\r\n\r\n"
            f"From: a@example.com\r\nMessage-ID: {message_id}\r\n\r\nHello\r\n"
            "--b--\r\n"
        )
        self.receive(raw)
        # core: any bounce counts, the notification is marked
        self.assertEqual(self.customer.message_bounce, 1)
        self.assertEqual(self.notification(message).notification_status, "bounce")
        self.assertFalse(self.log(message_id).event_ids)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_least_privileged_callers_see_no_events(self):
        _message, message_id = self.send()
        self.receive(
            bounce_samples.gmail(
                "bounce@example.com", "nobody@gmail.example", message_id
            )
        )
        event = self.log(message_id).event_ids
        self.assertTrue(event)
        for login, groups in (
            ("bounce_emp", "base.group_user"),
            ("bounce_portal", "base.group_portal"),
        ):
            user = new_test_user(self.env, login=login, groups=groups)
            with self.assertRaises(AccessError):
                event.with_user(user).read(["diagnostic"])
            with self.assertRaises(AccessError):
                self.server.with_user(user).read(["policy_bounce_count"])
