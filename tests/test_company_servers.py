"""Servers bound to companies, on real loopback SMTP servers.

Two companies with their own alias domains and servers, and a shared
server. Company B's server has no filter and the best priority: without the
company scope it would take company A's mail. Every test compares what the
records say with what each SMTP server really received.
"""

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, new_test_user, tagged

from .common import MailOutboundSmtpCase, capture_delivery_logs, mail_pairs
from .loopback_smtp import closed_port


@tagged("post_install", "-at_install", "mail_outbound")
class TestCompanyServers(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.create_company_with_domain("Company A", "a.example")
        cls.company_b = cls.create_company_with_domain("Company B", "b.example")
        cls.smtp_a, cls.server_a = cls.start_smtp_server(
            "A relay",
            "a.example",
            sequence=5,
            company_id=cls.company_a.id,
            outbound_traffic="transactional",
        )
        cls.smtp_b, cls.server_b = cls.start_smtp_server(
            "B open relay", sequence=1, company_id=cls.company_b.id
        )
        cls.smtp_shared, cls.server_shared = cls.start_smtp_server(
            "Shared relay", sequence=9
        )
        # created before the tests: its invitation mail is not theirs
        cls.user_b = new_test_user(
            cls.env,
            login="author_b",
            groups="base.group_user",
            company_id=cls.company_b.id,
            company_ids=[(6, 0, cls.company_b.ids)],
        )
        cls.customer = cls.env["res.partner"].create(
            {"name": "Customer", "email": "customer@destination.example"}
        )
        cls.record_a = cls.env["res.partner"].create(
            {"name": "A's deal", "company_id": cls.company_a.id}
        )
        cls.record_b = cls.env["res.partner"].create(
            {"name": "B's deal", "company_id": cls.company_b.id}
        )

    def assertOnlyReceivedBy(self, smtp):
        got = {
            name: [(m["mail_from"], m["message"]["Subject"]) for m in server.messages]
            for name, server in (
                ("A", self.smtp_a),
                ("B", self.smtp_b),
                ("shared", self.smtp_shared),
            )
        }
        for other in (self.smtp_a, self.smtp_b, self.smtp_shared):
            self.assertEqual(len(other.messages), 1 if other is smtp else 0, got)
        return smtp.messages[0]

    def test_each_company_mail_reaches_only_its_servers(self):
        message = self.post_and_send(self.record_a.sudo(), self.customer)
        self.assertEqual(message.record_company_id, self.company_a)
        received = self.assertOnlyReceivedBy(self.smtp_a)
        self.assertEqual(received["mail_from"], "bounce@a.example")
        self.assertEqual(
            received["message"]["From"].addresses[0].addr_spec,
            "notifications@a.example",
        )
        for smtp in self.loopback_servers:
            smtp.reset()
        message = self.post_and_send(self.record_b.sudo(), self.customer)
        received = self.assertOnlyReceivedBy(self.smtp_b)
        self.assertEqual(received["mail_from"], "bounce@b.example")
        mail = (
            self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        )
        self.assertEqual(mail.routing_server_id, self.server_b)
        log = self.env["mail.delivery.log"].search(
            [("message_id", "=", message.message_id)]
        )
        self.assertEqual(
            (log.mail_server_id, log.company_id, log.outcome),
            (self.server_b, self.company_b, "sent"),
        )
        self.assertEqual(received["message"]["Message-ID"], log.message_id)

    def mass_mail(self, company, **values):
        return self.queue_mail(
            "ann@a.example",
            record_company_id=company.id,
            record_alias_domain_id=company.alias_domain_id.id,
            routing_traffic="mass",
            **values,
        )

    def test_shared_server_takes_what_no_own_server_may_send(self):
        # A's only server carries transactional mail: B's open relay (priority
        # 1) would be chosen without the company scope; the shared one is
        mail = self.mass_mail(self.company_a)
        self.assertOnlyReceivedBy(self.smtp_shared)
        self.assertEqual(mail.routing_server_id, self.server_shared)

    def test_own_server_comes_before_shared(self):
        mail = self.mass_mail(self.company_b)
        self.assertOnlyReceivedBy(self.smtp_b)
        self.assertEqual(mail.routing_server_id, self.server_b)

    def test_named_server_of_another_company_is_refused(self):
        mail = self.queue_mail(
            "ann@a.example",
            record_company_id=self.company_a.id,
            record_alias_domain_id=self.company_a.alias_domain_id.id,
            mail_server_id=self.server_b.id,
        )
        self.assertOnlyReceivedBy(self.smtp_a)
        self.assertEqual(mail.routing_server_id, self.server_a)
        self.assertIn(
            "B open relay, which belongs to another company", mail.routing_reason
        )

    def test_log_takes_the_mails_company_not_the_queue_runners(self):
        # the queue runs as a user of company A; the mail is B's, without a
        # document: its company is its author's
        mail = (
            self.env["mail.mail"]
            .with_user(self.user_b)
            .sudo()
            .create(
                {
                    "email_from": "bob@b.example",
                    "email_to": "customer@destination.example",
                    "subject": "B without a document",
                    "body_html": "<p>x</p>",
                    "auto_delete": False,
                }
            )
        )
        self.assertFalse(mail.record_company_id)
        runner = self.env["mail.mail"].with_company(self.company_a)
        self.assertEqual(runner.env.company, self.company_a)
        runner.process_email_queue(ids=mail.ids)
        self.assertOnlyReceivedBy(self.smtp_b)
        log = self.env["mail.delivery.log"].search(
            [("message_id", "=", mail.message_id)]
        )
        self.assertEqual(log.company_id, self.company_b)

    def test_company_administrators_see_own_and_shared_only(self):
        self.post_and_send(self.record_a.sudo(), self.customer)
        self.post_and_send(self.record_b.sudo(), self.customer)
        admin_a = new_test_user(
            self.env,
            login="admin_a",
            groups="base.group_system",
            company_id=self.company_a.id,
            company_ids=[(6, 0, self.company_a.ids)],
        )
        Server = self.env["ir.mail_server"].with_user(admin_a)
        visible = Server.search([])
        self.assertIn(self.server_a, visible)
        self.assertIn(self.server_shared, visible)
        self.assertNotIn(self.server_b, visible)
        with self.assertRaises(AccessError):
            self.server_b.with_user(admin_a).read(["smtp_pass"])
        with self.assertRaises(AccessError):
            self.server_b.with_user(admin_a).write({"company_id": False})
        with self.assertRaisesRegex(ValidationError, "not one of your companies"):
            Server.create({"name": "Sneaky", "company_id": self.company_b.id})
        with self.assertRaisesRegex(ValidationError, "not one of your companies"):
            self.server_a.with_user(admin_a).write({"company_id": self.company_b.id})
        self.assertEqual(self.server_b.company_id, self.company_b)
        logs = self.env["mail.delivery.log"].with_user(admin_a).search([])
        self.assertTrue(logs)
        self.assertEqual(set(logs.company_id.ids), {self.company_a.id})

    def test_least_privileged_callers_cannot_read_servers(self):
        for login, groups in (
            ("emp", "base.group_user"),
            ("portal", "base.group_portal"),
        ):
            user = new_test_user(self.env, login=login, groups=groups)
            with self.assertRaises(AccessError):
                self.server_a.with_user(user).read(["company_id"])
            with self.assertRaises(AccessError):
                self.server_a.with_user(user).write({"company_id": False})
        self.assertEqual(self.server_a.company_id, self.company_a)

    def test_routing_preview_uses_the_chosen_company(self):
        for company, traffic, server in (
            (self.company_a, "transactional", self.server_a),
            (self.company_a, "mass", self.server_shared),
            (self.company_b, "transactional", self.server_b),
        ):
            with Form(self.env["mail.outbound.routing.preview"]) as preview:
                preview.company_id = company
                preview.email_from = "ann@a.example"
                preview.traffic = traffic
            self.assertEqual(
                preview.record.result_server, server.name, (company, traffic)
            )


@tagged("post_install", "-at_install", "mail_outbound")
class TestCompanyFailover(MailOutboundSmtpCase):
    """Issue #20: company B's server refuses connections; the shared relay
    may send as acme-example.com only. Failover keeps every rule of the
    routing: the relay sends as the notification address of its own domain,
    with the sender's name, never as company B's sender."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.create_company_with_domain("Acme", "acme-example.com")
        cls.company_b = cls.create_company_with_domain("Beta", "beta-example.org")
        cls.smtp_b, cls.server_b = cls.start_smtp_server(
            "Beta relay", "beta-example.org", sequence=1, company_id=cls.company_b.id
        )
        cls.smtp_acme, cls.server_acme = cls.start_smtp_server(
            "Acme relay", "acme-example.com", sequence=5
        )
        cls.mitchell = cls.env["res.partner"].create(
            {"name": "Mitchell Admin", "email": "hello@beta-example.org"}
        )
        cls.customers = cls.env["res.partner"].create(
            [
                {"name": f"Customer {n}", "email": f"customer{n}@destination.example"}
                for n in range(3)
            ]
        )
        cls.record_b = cls.env["res.partner"].create(
            {"name": "B's deal", "company_id": cls.company_b.id}
        )

    def setUp(self):
        super().setUp()
        self.server_b.smtp_port = closed_port()
        self.logs = capture_delivery_logs(self.env)

    def queue_posts(self):
        """Three chatter posts of company B, by Mitchell, queued."""
        Mail = self.env["mail.mail"].sudo()
        mails = Mail
        for customer in self.customers:
            message = self.record_b.message_post(
                body="<p>Hello</p>",
                subject="Beta news",
                author_id=self.mitchell.id,
                email_from=self.mitchell.email_formatted,
                partner_ids=customer.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                force_send=False,
                mail_auto_delete=False,
            )
            mails |= Mail.search([("mail_message_id", "=", message.id)])
        self.assertEqual(len(mails), 3)
        return mails

    def test_failover_sends_as_the_fallbacks_domain(self):
        for width in (1, 4):
            with self.subTest(parallel_connections=width):
                (self.server_b | self.server_acme).write(
                    {
                        "parallel_connections": width,
                        "delivery_failures": 0,
                        "unhealthy_until": False,
                    }
                )
                self.smtp_acme.reset()
                logs = capture_delivery_logs(self.env)
                mails = self.queue_posts()
                self.env["mail.mail"].process_email_queue(ids=mails.ids)
                self.assertEqual(set(mails.mapped("state")), {"sent"})
                received = self.received(self.smtp_acme, 3)
                # the production path: the relay's parallel sessions
                self.assertEqual(self.smtp_acme.peak_sessions > 1, width > 1)
                self.assertDeliveredOnce(self.smtp_acme, mail_pairs(mails))
                self.assertChatter(mails, sent=self.customers)
                for copy in received:
                    self.assertAddress(
                        copy["message"]["From"],
                        "Mitchell Admin",
                        "notifications@acme-example.com",
                    )
                    # company B's bounce address is not the relay's to send
                    self.assertEqual(
                        copy["mail_from"], "notifications@acme-example.com"
                    )
                for mail in mails:
                    self.assertEqual(mail.routing_server_id, self.server_acme)
                    self.assertEqual(mail.routing_rule, "failover_domain")
                    self.assertIn(
                        "<notifications@acme-example.com>", mail.routing_email_from
                    )
                    self.assertIn("Mitchell Admin", mail.routing_email_from)
                    self.assertEqual(
                        mail.routing_envelope_from, "notifications@acme-example.com"
                    )
                    self.assertIn(
                        "Beta relay could not be reached", mail.routing_reason
                    )
                    self.assertIn("notifications@acme-example.com", mail.routing_reason)
                sent = logs().filtered(lambda log: log.outcome == "sent")
                self.assertEqual(sent.mail_id, mails)
                self.assertEqual(sent.mail_server_id, self.server_acme)
                self.assertEqual(sent.failover_from_id, self.server_b)
                for log in sent:
                    self.assertIn("<notifications@acme-example.com>", log.email_from)
                    self.assertIn("Mitchell Admin", log.email_from)
                tried = logs() - sent
                self.assertEqual(tried.mapped("outcome"), ["failed_over"])
                self.assertEqual(tried.mail_server_id, self.server_b)
                self.assertEqual(self.server_b.delivery_failures, 1)

    def test_fallback_that_may_send_nothing_is_no_candidate(self):
        self.server_acme.from_filter = "other-example.net"
        mails = self.queue_posts()
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        self.assertFalse(self.smtp_acme.messages)
        self.assertEqual(set(mails.mapped("state")), {"outgoing"})
        self.assertTrue(all(mails.mapped("delivery_deferred")))
        self.assertChatter(mails, ready=self.customers)
        for mail in mails:
            self.assertIn("Connection refused", mail.failure_reason)
        logs = self.logs()
        self.assertEqual(set(logs.mapped("outcome")), {"deferred"})
        self.assertEqual(logs.mail_server_id, self.server_b)
        self.assertFalse(logs.failover_from_id)
        self.assertEqual(self.server_acme.delivery_failures, 0)
