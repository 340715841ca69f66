"""The documented routing on the real send paths, as SMTP servers see it.

Each server record points to its own SMTP server on loopback; the tests send
through the queue (``mail.mail``), the chatter (``message_post`` and the
mail gateway) and ``send_email``, and assert on the envelope and headers the
servers received.
"""

from odoo.tests import tagged

from .common import MailOutboundSmtpCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestRoutingSend(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp_example, cls.server_example = cls.start_smtp_server(
            "Example", "example.com", sequence=1
        )
        cls.smtp_mass, cls.server_mass = cls.start_smtp_server(
            "Mass provider", "mass.example", sequence=3
        )
        cls.smtp_open, cls.server_open = cls.start_smtp_server("Open relay", sequence=5)

    def test_sender_domain_keeps_from_and_bounce_envelope(self):
        mail = self.queue_mail('"Bob" <bob@example.com>')
        self.assertEqual(mail.state, "sent")
        (received,) = self.received(self.smtp_example)
        self.received(self.smtp_open, 0)
        self.assertAddress(received["message"]["From"], "Bob", "bob@example.com")
        self.assertEqual(received["mail_from"], "bounce@example.com")
        self.assertEqual(received["rcpt_tos"], ["customer@destination.example"])
        # mail.message's default Reply-To: the company's catchall
        self.assertAddress(
            received["message"]["Reply-To"], "Example Company", "catchall@example.com"
        )
        self.assertEqual(mail.routing_server_id, self.server_example)
        self.assertEqual(mail.routing_rule, "from_domain")
        self.assertEqual(mail.routing_email_from, '"Bob" <bob@example.com>')
        self.assertIn("lists the sender's domain example.com", mail.routing_reason)

    def test_foreign_sender_goes_out_as_notification_address(self):
        mail = self.queue_mail('"Mary" <mary@customer.example>')
        (received,) = self.received(self.smtp_example)
        self.assertAddress(
            received["message"]["From"], "Mary", "notifications@example.com"
        )
        self.assertEqual(received["mail_from"], "bounce@example.com")
        # replies go to the catchall, where Odoo routes them to the document
        self.assertAddress(
            received["message"]["Reply-To"], "Example Company", "catchall@example.com"
        )
        self.assertEqual(mail.routing_rule, "notification_domain")

    def test_first_server_without_filter_when_nothing_matches(self):
        self.server_example.active = False
        mail = self.queue_mail("mary@customer.example")
        (received,) = self.received(self.smtp_open)
        self.received(self.smtp_mass, 0)
        self.assertAddress(
            received["message"]["From"], "mary", "notifications@example.com"
        )
        self.assertEqual(mail.routing_rule, "no_filter")

    def test_ties_broken_by_name_on_the_queue_path(self):
        smtp_zulu, _zulu = self.start_smtp_server("zulu", sequence=4)
        smtp_alpha, _alpha = self.start_smtp_server("Alpha", sequence=4)
        self.server_example.active = False
        self.queue_mail("mary@customer.example")
        # core would take zulu, created first (lower id)
        self.received(smtp_alpha, 1)
        self.received(smtp_zulu, 0)
        self.received(self.smtp_open, 0)

    def test_authenticated_server_on_the_queue_path(self):
        smtp, server = self.start_smtp_server(
            "Authenticated",
            "auth.example",
            sequence=0,
            users={"odoo": "secret"},
            auth_required=True,
            smtp_user="odoo",
            smtp_pass="secret",
        )
        mail = self.queue_mail("robot@auth.example")
        (received,) = self.received(smtp)
        self.assertTrue(received["authenticated"])
        self.assertEqual(mail.routing_server_id, server)

    def send_direct(self, email_from):
        IrMailServer = self.env["ir.mail_server"]
        message = IrMailServer.build_email(
            email_from, ["customer@destination.example"], "Direct", "Body"
        )
        IrMailServer.send_email(message)

    def test_ties_broken_by_name_on_the_direct_path(self):
        smtp_zulu, _zulu = self.start_smtp_server("zulu", sequence=4)
        smtp_alpha, _alpha = self.start_smtp_server("Alpha", sequence=4)
        self.server_example.active = False
        self.send_direct("mary@customer.example")
        (received,) = self.received(smtp_alpha)
        self.received(smtp_zulu, 0)
        self.assertAddress(
            received["message"]["From"], "mary", "notifications@example.com"
        )

    def test_full_address_default_from_on_the_direct_path(self):
        self.alias_domain.default_from = "noreply@example.com"
        self.send_direct('"Bob" <bob@example.com>')
        (received,) = self.received(self.smtp_example)
        self.assertAddress(received["message"]["From"], "Bob", "noreply@example.com")

    def test_full_address_default_from_overrides_every_from(self):
        self.alias_domain.default_from = "noreply@example.com"
        mail = self.queue_mail('"Bob" <bob@example.com>')
        (received,) = self.received(self.smtp_example)
        self.assertAddress(received["message"]["From"], "Bob", "noreply@example.com")
        self.assertTrue(mail.routing_data["forced"])

    def test_named_server_not_enforced_keeps_from_like_core(self):
        mail = self.queue_mail("bob@example.com", mail_server_id=self.server_mass.id)
        (received,) = self.received(self.smtp_mass)
        self.assertAddress(received["message"]["From"], "", "bob@example.com")
        self.assertEqual(mail.routing_rule, "fixed_unenforced")
        self.assertIn("does not allow bob@example.com", mail.routing_reason)

    def test_named_server_enforced_rewrites_from_it_may_not_send(self):
        self.set_enforce_fixed_filter(True)
        self.server_mass.from_filter = "mass.example, notifications@example.com"
        mail = self.queue_mail(
            '"Bob" <bob@example.com>', mail_server_id=self.server_mass.id
        )
        (received,) = self.received(self.smtp_mass)
        self.received(self.smtp_example, 0)
        self.assertAddress(
            received["message"]["From"], "Bob", "notifications@example.com"
        )
        self.assertEqual(mail.routing_rule, "fixed_notification")

    def test_send_email_with_named_server_enforced(self):
        self.set_enforce_fixed_filter(True)
        self.server_mass.from_filter = "mass.example, example.com"
        IrMailServer = self.env["ir.mail_server"]
        message = IrMailServer.build_email(
            '"Eve" <eve@elsewhere.example>',
            ["customer@destination.example"],
            "Direct",
            "Body",
        )
        IrMailServer.send_email(message, mail_server_id=self.server_mass.id)
        (received,) = self.received(self.smtp_mass)
        self.assertAddress(
            received["message"]["From"], "Eve", "notifications@example.com"
        )
        self.assertEqual(received["mail_from"], "bounce@example.com")

    def test_send_email_without_server_uses_routing(self):
        IrMailServer = self.env["ir.mail_server"]
        message = IrMailServer.build_email(
            "x@mass.example", ["customer@destination.example"], "Direct", "Body"
        )
        IrMailServer.send_email(message)
        (received,) = self.received(self.smtp_mass)
        self.assertAddress(received["message"]["From"], "", "x@mass.example")
        # the mass provider may not send as bounce@example.com
        self.assertEqual(received["mail_from"], "x@mass.example")


@tagged("post_install", "-at_install", "mail_outbound")
class TestRoutingChatter(MailOutboundSmtpCase):
    """message_post and the mail gateway, two companies, two alias domains."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp_example, cls.server_example = cls.start_smtp_server(
            "Example", "example.com", sequence=1
        )
        cls.smtp_other, cls.server_other = cls.start_smtp_server(
            "Other", "other.example", sequence=2
        )
        cls.other_domain = cls.env["mail.alias.domain"].create(
            {"name": "other.example", "default_from": "notifications"}
        )
        cls.other_company = cls.env["res.company"].create(
            {"name": "Other Company", "alias_domain_id": cls.other_domain.id}
        )
        cls.follower = cls.env["res.partner"].create(
            {"name": "Follower", "email": "follower@destination.example"}
        )

    def make_record(self, company):
        record = self.env["res.partner"].create(
            {"name": f"Record of {company.name}", "company_id": company.id}
        )
        record.message_subscribe(partner_ids=self.follower.ids)
        return record

    def flush_queue(self):
        self.env["mail.mail"].process_email_queue()

    def test_message_post_per_company_alias_domain(self):
        for company, smtp, domain in (
            (self.company, self.smtp_example, "example.com"),
            (self.other_company, self.smtp_other, "other.example"),
        ):
            with self.subTest(company=company.name):
                record = self.make_record(company)
                record.message_post(
                    body="Hello",
                    author_id=self.env.user.partner_id.id,
                    email_from='"Admin" <admin@somewhere.example>',
                    message_type="comment",
                    subtype_xmlid="mail.mt_comment",
                )
                self.flush_queue()
                (received,) = self.received(smtp)
                smtp.messages.clear()
                self.assertAddress(
                    received["message"]["From"], "Admin", f"notifications@{domain}"
                )
                self.assertEqual(received["mail_from"], f"bounce@{domain}")
                reply_to = received["message"]["Reply-To"].addresses
                self.assertEqual(
                    [a.addr_spec for a in reply_to], [f"catchall@{domain}"]
                )
                self.assertEqual(received["rcpt_tos"], ["follower@destination.example"])

    def test_customer_reply_relayed_as_notification_address(self):
        record = self.make_record(self.company)
        sent = record.message_post(
            body="Your quotation",
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
        )
        self.flush_queue()
        self.smtp_example.messages.clear()
        # Mary answers the notification: the gateway finds the record through
        # In-Reply-To and relays her answer to the followers
        raw = (
            'From: "Mary" <mary@customer.example>\r\n'
            "To: catchall@example.com\r\n"
            "Subject: Re: your quotation\r\n"
            "Message-ID: <reply-1@customer.example>\r\n"
            f"In-Reply-To: {sent.message_id}\r\n"
            f"References: {sent.message_id}\r\n"
            "Content-Type: text/plain\r\n\r\n"
            "Thanks, that works for us.\r\n"
        )
        self.env["mail.thread"].message_process(False, raw)
        self.assertIn("that works for us", record.message_ids[0].body)
        self.flush_queue()
        (received,) = self.received(self.smtp_example)
        self.assertAddress(
            received["message"]["From"], "Mary", "notifications@example.com"
        )
        self.assertEqual(received["mail_from"], "bounce@example.com")
        reply_to = received["message"]["Reply-To"].addresses
        self.assertEqual([a.addr_spec for a in reply_to], ["catchall@example.com"])
        self.assertEqual(received["rcpt_tos"], ["follower@destination.example"])
