"""Bounces count only against a mail really sent to the recipient they name.

Real traffic goes through the queue to a loopback SMTP server (a chatter
notification, a template); the reports for those real Message-IDs are then
fed to Odoo's mail gateway (``message_process``), beside forged ones: a
Message-ID never sent, a recipient the mail never had, each shape core or
the addon used to count. Forged ones change nothing, however many.
"""

import logging
import time

from odoo.tests import tagged
from odoo.tools import mute_logger

from . import bounce_samples, dsn
from .common import MailOutboundSmtpCase

_logger = logging.getLogger(__name__)

BOUNCE = "bounce@example.com"
LURE = "urgently call +1-555-0100 and read your admin password"


@tagged("post_install", "-at_install", "mail_outbound")
class TestBounceMatching(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp, cls.server = cls.start_smtp_server("Example", "example.com")
        cls.customer = cls.env["res.partner"].create(
            {"name": "Customer", "email": "customer@dest.example"}
        )
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.bounce_blacklist_after", "2"
        )

    def send_notification(self, partners=2):
        """A chatter notification through the real queue; its mail (kept)."""
        mail = self.queue_notification(partners=partners)
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        self.assertEqual(mail.state, "sent")
        self.assertEqual(len(self.smtp.messages), partners)
        self.assertEqual(
            {m["message"]["Message-ID"] for m in self.smtp.messages},
            {mail.message_id},
        )
        self.smtp.reset()
        return mail

    def events(self):
        return self.env["mail.delivery.event"].sudo().search([])

    def assertNothingChanged(self, events_before):
        # core's own counter counts what stock Odoo counts (its gateway
        # tests expect it); the addon's effects never follow from it
        self.assertFalse(
            self.env["mail.blacklist"]
            .sudo()
            .search([("email", "=", self.customer.email)])
        )
        self.assertEqual(self.events(), events_before)
        self.assertEqual(self.server.policy_bounce_count, 0)
        self.assertEqual(self.alias_domain.policy_bounce_count, 0)
        self.assertFalse(self.alias_domain.last_policy_bounce)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_forged_reports_change_nothing(self):
        # real traffic exists, to other people: its Message-ID is known
        mail = self.send_notification()
        real_id = mail.message_id
        events = self.events()
        customer = self.customer.email
        for attempt in range(10):
            forged_id = f"<forged-{attempt}.1795082400@example.com>"
            for raw in (
                # RFC 3464 to the bounce address, a Message-ID never sent
                bounce_samples.gmail(BOUNCE, customer, forged_id),
                bounce_samples.microsoft(BOUNCE, customer, forged_id),
                # two recipients, neither sent that mail
                bounce_samples.postfix(
                    BOUNCE,
                    [
                        (customer, "5.1.1", "550 5.1.1 User unknown"),
                        ("other@dest.example", "5.1.1", "550 5.1.1 nope"),
                    ],
                    forged_id,
                ),
                # only Original-Recipient, to an ordinary address (core
                # ignores it; the addon counted it)
                bounce_samples.original_recipient_only(
                    "catchall@example.com", customer, forged_id
                ),
                # plain-text qmail from MAILER-DAEMON@ (flufl.bounce reads it)
                bounce_samples.qmail("info@example.com", customer, forged_id),
                # a real Message-ID, but the mail never went to the customer
                bounce_samples.gmail(BOUNCE, customer, real_id),
                bounce_samples.qmail(BOUNCE, customer, real_id),
                # the outsider's words, on a policy bounce never sent
                bounce_samples.gmail(
                    BOUNCE,
                    customer,
                    forged_id,
                    status="5.7.26",
                    diagnostic=f"smtp; 550 5.7.26 Unauthenticated: {LURE}",
                ),
                # no report we can read, a partner core finds by address
                bounce_samples.gmail(BOUNCE, customer, forged_id).replace(
                    "message/delivery-status", "text/plain"
                ),
            ):
                self.receive(raw)
        self.assertNothingChanged(events)
        # core counted the forged hard bounces, as stock Odoo does, far past
        # the blacklist's threshold: the blacklist counts matched ones only
        self.assertGreater(
            self.customer.message_bounce,
            self.env["mail.thread"]._get_bounce_blacklist_after(),
        )
        # the real recipients were never touched either
        self.assertEqual(set(mail.recipient_ids.mapped("message_bounce")), {0})
        self.assertEqual(
            set(mail.mail_message_id.notification_ids.mapped("notification_status")),
            {"sent"},
        )

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_two_recipients_of_one_report_each_recorded(self):
        mail = self.send_notification(partners=2)
        fullbox, gone = mail.recipient_ids.sorted("id")
        self.receive(
            bounce_samples.postfix(
                BOUNCE,
                [
                    (
                        fullbox.email,
                        "5.2.2",
                        f"552 5.2.2 <{fullbox.email}>: Mailbox full",
                    ),
                    (
                        gone.email,
                        "5.1.1",
                        f"550 5.1.1 <{gone.email}>: Recipient address rejected: "
                        "User unknown in virtual mailbox table",
                    ),
                ],
                mail.message_id,
            )
        )
        log = self.env["mail.delivery.log"].search(
            [("message_id", "=", mail.message_id)]
        )
        self.assertEqual(
            sorted(log.event_ids.mapped(lambda e: (e.recipient, e.bounce_class))),
            sorted([(fullbox.email, "soft"), (gone.email, "hard")]),
        )
        self.assertEqual((fullbox.message_bounce, gone.message_bounce), (0, 1))
        notifications = mail.mail_message_id.notification_ids
        by_partner = {n.res_partner_id: n for n in notifications}
        self.assertEqual(by_partner[fullbox].notification_status, "bounce")
        self.assertIn("Soft bounce", by_partner[fullbox].failure_reason)
        self.assertIn("5.2.2: the mailbox is full", by_partner[fullbox].failure_reason)
        self.assertEqual(by_partner[gone].notification_status, "bounce")
        self.assertIn("Hard bounce", by_partner[gone].failure_reason)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_template_bounces_blacklist_only_their_recipient(self):
        Blacklist = self.env["mail.blacklist"].sudo()
        for _count in (1, 2):
            mail = self.queue_template(partners=2)
            self.env["mail.mail"].process_email_queue(ids=mail.ids)
            self.assertEqual(len(self.smtp.messages), 2)
            self.smtp.reset()
            first, second = mail.recipient_ids.sorted("id")
            self.receive(bounce_samples.microsoft(BOUNCE, first.email, mail.message_id))
            # the same Message-ID naming someone it never went to
            self.receive(
                bounce_samples.microsoft(BOUNCE, self.customer.email, mail.message_id)
            )
            self.assertEqual((first.message_bounce, second.message_bounce), (1, 0))
        # each template mail has its own partners: one hard bounce each
        self.assertFalse(Blacklist.search([("email", "=", first.email)]))
        # the customer was named by reports for mails never sent to it: core
        # counts them as stock Odoo does, the addon records nothing
        self.assertFalse(
            self.events().filtered(lambda event: event.recipient == self.customer.email)
        )
        self.assertFalse(Blacklist.search([("email", "=", self.customer.email)]))

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_blacklist_after_real_hard_bounces(self):
        Blacklist = self.env["mail.blacklist"].sudo()
        partner = self.env["res.partner"].create(
            {"name": "Twice", "email": "twice@dest.example"}
        )
        for count in (1, 2):
            record = self.env["res.partner"].create({"name": f"Thread {count}"})
            message = self.post_and_send(record, partner)
            self.smtp.reset()
            self.receive(
                bounce_samples.postfix(
                    BOUNCE,
                    [(partner.email, "5.1.1", "550 5.1.1 User unknown")],
                    message.message_id,
                )
            )
            self.assertEqual(partner.message_bounce, count)
        entry = Blacklist.search([("email", "=", partner.email)])
        self.assertTrue(entry)

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_outsider_text_stays_with_administrators(self):
        mail = self.send_notification(partners=1)
        self.receive(
            bounce_samples.gmail(
                BOUNCE,
                mail.recipient_ids.email,
                mail.message_id,
                status="5.7.26",
                diagnostic=f"smtp; 550 5.7.26 Unauthenticated email: {LURE}",
            )
        )
        self.assertEqual(self.server.policy_bounce_count, 1)
        self.assertEqual(self.alias_domain.policy_bounce_count, 1)
        for text in (
            self.server.last_policy_bounce,
            self.alias_domain.last_policy_bounce,
            mail.mail_message_id.notification_ids.failure_reason,
        ):
            self.assertIn("Policy bounce", text)
            self.assertIn("5.7.26: the sender's authentication", text)
            self.assertNotIn("555-0100", text)
        (event,) = self.events()
        self.assertNotIn("555-0100", event.description)
        self.assertIn(LURE, event.diagnostic)
        self.assertEqual(
            self.env["mail.delivery.event"]._fields["diagnostic"].groups,
            "base.group_system",
        )
        # an employee reads the alias domain, never the words
        employee = self.env["res.users"].create(
            {
                "name": "Employee",
                "login": "bounce_matching_emp",
                "groups_id": [(6, 0, [self.env.ref("base.group_user").id])],
            }
        )
        self.assertNotIn(
            "555-0100",
            self.alias_domain.with_user(employee).read(["last_policy_bounce"])[0][
                "last_policy_bounce"
            ],
        )

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_a_large_report_costs_what_an_ordinary_mail_costs(self):
        bodies = {
            # 1 MB of one-letter lines: 4.7 s in the detectors alone before
            "1 MB of short lines": (
                "Content-Type: text/plain\r\n\r\n" + "x\r\n" * (1024 * 1024 // 3)
            ),
            "2,000 text parts": (
                'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
                "\r\n\r\n"
                + "".join(
                    f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n"
                    for n in range(2000)
                )
                + "--b--\r\n"
            ),
        }

        def cost(body, sender, to, model=None):
            best = None
            for _run in range(3):
                raw = (
                    f"From: {sender}\r\nTo: {to}\r\nSubject: hello\r\n"
                    f"Message-ID: <{time.time_ns()}@mx.example>\r\n{body}"
                )
                start = time.process_time()
                self.env["mail.thread"].sudo().message_process(model, raw)
                spent = time.process_time() - start
                best = spent if best is None else min(best, spent)
            return best

        for label, body in bodies.items():
            # an ordinary mail: a new document through the gateway
            ordinary = cost(
                body, "someone@sender.example", "info@example.com", "res.partner"
            )
            # the same as a "report" from MAILER-DAEMON@ to the bounce address
            report = cost(body, "MAILER-DAEMON@mx.example", BOUNCE)
            _logger.info(
                "%s: ordinary mail %.3f s, report %.3f s CPU", label, ordinary, report
            )
            self.assertLessEqual(report, 3 * ordinary, (label, report, ordinary))
        self.assertNothingChanged(self.events())

    @mute_logger("odoo.addons.mail.models.mail_thread")
    def test_real_postfix_reports_through_the_gateway(self):
        # one report, two blocks, for a notification to two partners
        mail = self.send_notification(partners=2)
        fullbox, gone = mail.recipient_ids.sorted("id")
        self.receive(
            dsn.report(
                "two-recipients", mail.message_id, BOUNCE, (fullbox.email, gone.email)
            )
        )
        self.assertEqual(
            sorted(self.events().mapped(lambda e: (e.recipient, e.status))),
            sorted([(fullbox.email, "5.2.2"), (gone.email, "5.1.1")]),
        )
        self.assertEqual((fullbox.message_bounce, gone.message_bounce), (0, 1))
        # 5.3.4 for a template mail: soft, explained as a size refusal
        mail = self.queue_template(partners=1)
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        self.smtp.reset()
        partner = mail.recipient_ids
        self.receive(dsn.report("too-large", mail.message_id, BOUNCE, [partner.email]))
        (event,) = (
            self.env["mail.delivery.log"]
            .search([("message_id", "=", mail.message_id)])
            .event_ids
        )
        self.assertEqual((event.status, event.bounce_class), ("5.3.4", "soft"))
        self.assertIn("too large for the receiving server", event.description)
        self.assertNotIn("mailbox is full", event.description)
        self.assertEqual(partner.message_bounce, 0)
        # 5.1.2 for a notification: hard, counted
        mail = self.send_notification(partners=1)
        partner = mail.recipient_ids
        self.receive(dsn.report("no-domain", mail.message_id, BOUNCE, [partner.email]))
        self.assertEqual(partner.message_bounce, 1)
        # 5.7.26 with an outsider's words: on the server, class and code only
        mail = self.send_notification(partners=1)
        self.receive(
            dsn.report("policy", mail.message_id, BOUNCE, [mail.recipient_ids.email])
        )
        self.assertEqual(self.server.policy_bounce_count, 1)
        self.assertIn("5.7.26", self.server.last_policy_bounce)
        self.assertNotIn("555-0100", self.server.last_policy_bounce)
        # the same real reports for a Message-ID never sent: nothing at all
        events = self.events()
        for _attempt in range(10):
            for case in dsn.CASES:
                self.receive(
                    dsn.report(
                        case,
                        f"<forged-{case}@example.com>",
                        BOUNCE,
                        [self.customer.email] * 2,
                    )
                )
        self.assertEqual(self.events(), events)
        # core's own counter moved as stock's does; the blacklist did not
        self.assertFalse(
            self.env["mail.blacklist"]
            .sudo()
            .search([("email", "=", self.customer.email)])
        )
        self.assertEqual(self.server.policy_bounce_count, 1)
