"""Transactional and mass mail reach their own servers, as Settings say."""

import unittest

from odoo.tests import Form, tagged

from .common import MailOutboundSmtpCase


class TrafficCase(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # documented setup: transactional server first by priority, the mass
        # server selected in settings; here the mass server even has the
        # lower priority value and an exact filter for Bob, to show that the
        # dedicated server never takes transactional mail
        cls.smtp_mass, cls.server_mass = cls.start_smtp_server(
            "Mass provider", "bob@example.com, mass.example", sequence=0
        )
        cls.smtp_trans, cls.server_trans = cls.start_smtp_server(
            "Transactional provider", "example.com", sequence=5
        )

    @classmethod
    def set_dedicated(cls, server):
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("mass_mailing.outgoing_mail_server", bool(server))
        params.set_param("mass_mailing.mail_server_id", server.id if server else False)


@tagged("post_install", "-at_install", "mail_outbound")
class TestTraffic(TrafficCase):
    def test_transactional_mail_never_uses_the_dedicated_server(self):
        self.set_dedicated(self.server_mass)
        mail = self.queue_mail('"Bob" <bob@example.com>')
        self.received(self.smtp_mass, 0)
        (received,) = self.received(self.smtp_trans)
        self.assertAddress(received["message"]["From"], "Bob", "bob@example.com")
        self.assertEqual(mail.routing_traffic, "transactional")
        self.assertEqual(mail.routing_server_id, self.server_trans)

    def test_without_dedicated_server_routing_is_unchanged(self):
        self.set_dedicated(False)
        self.queue_mail('"Bob" <bob@example.com>')
        # the exact address filter wins, as in standard Odoo
        self.received(self.smtp_mass, 1)

    def test_mass_mail_goes_to_the_dedicated_server(self):
        self.set_dedicated(self.server_mass)
        mail = self.queue_mail('"Bob" <bob@example.com>', routing_traffic="mass")
        self.received(self.smtp_trans, 0)
        (received,) = self.received(self.smtp_mass)
        self.assertAddress(received["message"]["From"], "Bob", "bob@example.com")
        self.assertEqual(mail.routing_traffic, "mass")
        self.assertEqual(mail.routing_rule, "fixed_from")

    def test_mass_mail_gets_a_from_the_dedicated_server_may_send(self):
        self.set_dedicated(self.server_mass)
        self.set_enforce_fixed_filter(True)
        self.server_mass.from_filter = "mass.example"
        self.alias_domain.default_from = "news@mass.example"
        mail = self.queue_mail('"Alice" <alice@example.com>', routing_traffic="mass")
        (received,) = self.received(self.smtp_mass)
        self.assertAddress(received["message"]["From"], "Alice", "news@mass.example")
        self.assertTrue(mail.routing_data["rewritten"])

    def test_mass_servers_without_dedicated_server(self):
        self.set_dedicated(False)
        self.server_mass.outbound_traffic = "mass"
        self.server_trans.outbound_traffic = "transactional"
        self.queue_mail("bob@example.com", routing_traffic="mass")
        self.received(self.smtp_mass, 1)
        self.queue_mail("bob@example.com")
        self.received(self.smtp_trans, 1)

    def test_mass_and_transactional_in_one_queue_run(self):
        self.set_dedicated(self.server_mass)
        mails = self.env["mail.mail"].create(
            [
                {
                    "email_from": "bob@example.com",
                    "email_to": f"c{index}@destination.example",
                    "subject": "Mixed",
                    "body_html": "<p>x</p>",
                    "routing_traffic": "mass" if index % 2 else "transactional",
                }
                for index in range(6)
            ]
        )
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        self.assertEqual(
            sorted(m["rcpt_tos"][0] for m in self.smtp_mass.messages),
            [
                "c1@destination.example",
                "c3@destination.example",
                "c5@destination.example",
            ],
        )
        self.assertEqual(len(self.smtp_trans.messages), 3)

    def test_settings_choose_the_dedicated_server_without_mass_mailing(self):
        if "mass_mailing_mail_server_id" in self.env["res.config.settings"]._fields:
            raise unittest.SkipTest("mass_mailing owns this setting here")
        settings = Form(self.env["res.config.settings"])
        settings.mail_outbound_mass_server_enabled = True
        settings.mail_outbound_mass_server_id = self.server_mass
        settings.save().execute()
        self.assertEqual(
            self.env["ir.mail_server"]._get_dedicated_mass_server(), self.server_mass
        )
        self.assertTrue(self.server_mass.is_dedicated_mass_server)
        settings = Form(self.env["res.config.settings"])
        self.assertEqual(settings.mail_outbound_mass_server_id, self.server_mass)
        settings.mail_outbound_mass_server_enabled = False
        settings.save().execute()
        self.assertFalse(self.env["ir.mail_server"]._get_dedicated_mass_server())

    def test_preview_shows_the_traffic_class(self):
        self.set_dedicated(self.server_mass)
        preview = Form(self.env["mail.outbound.routing.preview"])
        preview.email_from = "bob@example.com"
        self.assertEqual(preview.result_server, "Transactional provider")
        preview.traffic = "mass"
        self.assertEqual(preview.result_server, "Mass provider")


@tagged("post_install", "-at_install", "mail_outbound")
class TestTrafficMassMailing(TrafficCase):
    """With mass_mailing installed: one setting, and mailings are mass mail.

    scripts/test runs these on a second database that has mass_mailing.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if "mailing.mailing" not in cls.env:
            raise unittest.SkipTest("mass_mailing is not installed on this database")

    def test_one_setting_shared_with_mass_mailing(self):
        settings = Form(self.env["res.config.settings"])
        settings.mass_mailing_outgoing_mail_server = True
        settings.mass_mailing_mail_server_id = self.server_mass
        settings.save().execute()
        self.assertEqual(
            self.env["ir.mail_server"]._get_dedicated_mass_server(), self.server_mass
        )
        settings = Form(self.env["res.config.settings"])
        self.assertTrue(settings.mail_outbound_mass_mailing_installed)
        self.assertEqual(settings.mail_outbound_mass_server_id, self.server_mass)

    def test_mailing_reaches_the_dedicated_server(self):
        self.set_dedicated(self.server_mass)
        contacts = self.env["res.partner"].create(
            [
                {"name": f"Customer {index}", "email": f"c{index}@destination.example"}
                for index in range(3)
            ]
        )
        mailing = self.env["mailing.mailing"].create(
            {
                "subject": "Newsletter",
                "email_from": '"News" <news@mass.example>',
                "mailing_model_id": self.env["ir.model"]._get_id("res.partner"),
                "mailing_domain": [("id", "in", contacts.ids)],
                "body_html": "<p>Hello</p>",
                # keep the sent mails, to read their decision
                "keep_archives": True,
            }
        )
        self.assertEqual(mailing.mail_server_id, self.server_mass)
        mailing.action_send_mail()
        self.env["mail.mail"].process_email_queue()
        mails = self.env["mail.mail"].search([("mailing_id", "=", mailing.id)])
        self.assertEqual(mails.mapped("routing_traffic"), ["mass"] * 3)
        self.received(self.smtp_mass, 3)
        self.received(self.smtp_trans, 0)
        self.assertEqual(set(mails.mapped("routing_server_id")), {self.server_mass})
        self.assertEqual(set(mails.mapped("state")), {"sent"})
