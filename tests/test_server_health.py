"""Provider presets, the delivery health figures and the server buttons."""

from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import Form, tagged

from .common import MailOutboundCase, MailOutboundSmtpCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestProviderPresets(MailOutboundCase):
    def test_every_documented_provider_has_a_sourced_preset(self):
        presets = self.env["mail.outbound.provider.preset"].search([])
        names = presets.mapped("name")
        for provider in (
            "Gmail / Google Workspace",
            "Microsoft 365",
            "Amazon SES",
            "Brevo",
            "Mailgun",
            "SendGrid",
            "Mailjet",
        ):
            self.assertTrue(any(name.startswith(provider) for name in names), provider)
        for preset in presets:
            self.assertIn("https://", preset.source, preset.name)
            self.assertGreater(preset.daily_limit, 0, preset.name)

    def test_choosing_a_preset_fills_the_new_server(self):
        form = Form(self.env["ir.mail_server"])
        form.name = "Transactional"
        with self.assertLogs("odoo.tests.form.onchange", level="WARNING") as logs:
            form.provider_preset_id = self.env.ref(
                "mail_outbound.provider_preset_microsoft"
            )
        # issue #23 (22): not silently
        self.assertIn('sets Carries to "Transactional only"', logs.output[0])
        # a name typed is kept
        self.assertEqual(
            (
                form.smtp_host,
                form.smtp_port,
                form.smtp_encryption,
                form.daily_limit,
                form.rate_per_minute,
                form.outbound_traffic,
            ),
            ("smtp.office365.com", 587, "starttls", 10000, 30, "transactional"),
        )
        server = form.save()
        self.assertEqual(server.daily_limit, 10000)
        self.assertEqual(server.name, "Transactional")

    def test_preset_names_an_unnamed_server(self):
        # issue #23 (22): the server name was not filled
        form = Form(self.env["ir.mail_server"])
        form.provider_preset_id = self.env.ref(
            "mail_outbound.provider_preset_amazon_ses"
        )
        self.assertEqual(form.name, "Amazon SES (us-east-1)")
        self.assertEqual(form.outbound_traffic, "both")

    def test_preset_port_survives_the_encryption_onchange(self):
        # core proposes 25 for no encryption, 465 for SSL: the preset's wins
        preset = self.env["mail.outbound.provider.preset"].create(
            {
                "name": "Relay",
                "smtp_host": "relay.example",
                "smtp_port": 2525,
                "smtp_encryption": "none",
            }
        )
        form = Form(self.env["ir.mail_server"])
        form.name = "Relay"
        form.smtp_encryption = "ssl"
        form.provider_preset_id = preset
        self.assertEqual((form.smtp_port, form.smtp_encryption), (2525, "none"))


@tagged("post_install", "-at_install", "mail_outbound")
class TestServerHealth(MailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.create_server("Ours", "example.com", daily_limit=500)

    def queue(self, count, **values):
        return self.env["mail.mail"].create(
            [
                {
                    "email_from": "someone@example.com",
                    "email_to": "customer@destination.example",
                    "subject": "queued",
                    **values,
                }
                for _index in range(count)
            ]
        )

    def test_queue_figures_and_time_to_send_it(self):
        self.queue(3)
        later = fields.Datetime.now() + timedelta(hours=1)
        self.queue(
            2,
            delivery_deferred=True,
            routing_server_id=self.server.id,
            scheduled_date=later,
        )
        # a mail scheduled for later is neither due nor deferred
        self.queue(1, scheduled_date=later)
        self.server.invalidate_recordset()
        self.assertEqual((self.server.queue_due, self.server.queue_deferred), (3, 2))
        self.assertEqual(self.server.usage_display, "0 / 500")
        self.assertEqual(self.server.queue_eta, "5 mails at 500 a day: done today")
        self.server.daily_limit = 2
        self.server.invalidate_recordset(["queue_eta"])
        # 2 today, 2 tomorrow, 1 the day after
        day = fields.Date.today() + timedelta(days=2)  # company time zone: UTC
        self.assertEqual(
            self.server.queue_eta,
            f"5 mails at 2 a day: done on {day.day} {day.strftime('%b')}",
        )

    def test_failures_leave_out_mail_waiting_for_a_limit(self):
        log = {"mail_server_id": self.server.id, "attempt": 1}
        self.env["mail.delivery.log"]._insert(
            [
                {**log, "outcome": "failed", "smtp_code": 550, "duration_ms": 12},
                {**log, "outcome": "deferred", "smtp_code": 421, "duration_ms": 8},
                # a refused connection on loopback: no code, not even 1 ms
                {**log, "outcome": "deferred", "failure_stage": "connect"},
                # over the daily limit: waiting is no failure
                {**log, "outcome": "deferred", "failure_stage": "limit"},
                {**log, "outcome": "sent", "smtp_code": 250, "duration_ms": 5},
                # failed, then sent by another server: one failure
                {**log, "outcome": "failed_over", "failure_stage": "connect"},
                {
                    "mail_server_id": self.create_server("Other").id,
                    "failover_from_id": self.server.id,
                    "outcome": "sent",
                    "attempt": 1,
                },
            ]
        )
        self.assertEqual(self.server.failures_24h, 4)

    def test_circuit_state_is_never_stale(self):
        now = fields.Datetime.now()
        self.server.write(
            {"delivery_failures": 3, "unhealthy_until": now + timedelta(minutes=5)}
        )
        self.assertEqual(self.server.circuit_state, "open")
        Server = self.env["ir.mail_server"]
        self.assertEqual(Server.search([("circuit_state", "=", "open")]), self.server)
        self.server.unhealthy_until = now - timedelta(minutes=1)
        self.assertEqual(self.server.circuit_state, "retry")
        self.assertEqual(
            Server.search([("circuit_state", "in", ("open", "retry"))]), self.server
        )
        self.server.action_reset_circuit()
        self.assertEqual(self.server.circuit_state, "closed")
        self.assertFalse(Server.search([("circuit_state", "!=", "closed")]))

    def test_try_now_sends_the_deferred_mail_at_once(self):
        later = fields.Datetime.now() + timedelta(hours=1)
        deferred = self.queue(
            2,
            delivery_deferred=True,
            routing_server_id=self.server.id,
            scheduled_date=later,
        )
        self.server.write({"delivery_failures": 3, "unhealthy_until": later})
        self.server.action_try_now()
        self.assertEqual(self.server.circuit_state, "closed")
        self.assertTrue(
            all(mail.scheduled_date <= fields.Datetime.now() for mail in deferred)
        )

    def test_circuit_banner_is_one_sentence_with_the_error_worded(self):
        # issue #23 (15): raw "[Errno 111] Connection refused" in the banner
        # and the Delivery tab, where Test Connection words it well
        later = fields.Datetime.now() + timedelta(hours=1)
        self.env.user.tz = "Europe/Bucharest"
        self.server.write(
            {
                "delivery_failures": 3,
                "unhealthy_until": later,
                "last_delivery_error": "[Errno 111] Connection refused",
                "smtp_port": 2601,
            }
        )
        summary = self.server.circuit_summary
        self.assertIn("Nothing accepts connections on 127.0.0.1 port 2601", summary)
        self.assertNotIn("Errno", summary)
        self.assertIn("(Europe/Bucharest)", summary)
        self.assertNotIn("Errno", self.server.last_delivery_error_text)
        # a server's own reply is shown as it is
        self.server.last_delivery_error = "5.7.8 Username and Password not accepted"
        self.assertIn("5.7.8 Username", self.server.last_delivery_error_text)

    def test_try_now_says_what_it_did_and_reloads(self):
        later = fields.Datetime.now() + timedelta(hours=1)
        self.server.write({"delivery_failures": 3, "unhealthy_until": later})
        action = self.server.action_try_now()
        self.assertEqual(action["tag"], "display_notification")
        self.assertIn(self.server.name, action["params"]["message"])
        self.assertEqual(action["params"]["next"]["tag"], "soft_reload")

    def test_buttons_refuse_non_administrators_before_any_change(self):
        user = self.env["res.users"].create(
            {
                "name": "Settings, not system",
                "login": "erp_manager_health",
                "groups_id": [(6, 0, [self.env.ref("base.group_erp_manager").id])],
            }
        )
        self.server.write({"delivery_failures": 3})
        for action in ("action_reset_circuit", "action_try_now", "action_view_mails"):
            with self.assertRaises(AccessError):
                getattr(self.server.with_user(user), action)()
        self.assertEqual(self.server.delivery_failures, 3)

    def test_smart_buttons_count_the_servers_mails_and_attempts(self):
        self.queue(2, mail_server_id=self.server.id)
        other = self.create_server("Other")
        self.env["mail.delivery.log"]._insert(
            [
                {"mail_server_id": self.server.id, "outcome": "sent", "attempt": 1},
                # failed here, sent by the other server
                {
                    "mail_server_id": other.id,
                    "failover_from_id": self.server.id,
                    "outcome": "sent",
                    "attempt": 1,
                },
                {"mail_server_id": other.id, "outcome": "sent", "attempt": 1},
            ]
        )
        self.assertEqual(
            (self.server.mail_count, self.server.delivery_log_count), (2, 2)
        )
        action = self.server.action_view_delivery_log()
        self.assertEqual(len(self.env["mail.delivery.log"].search(action["domain"])), 2)


@tagged("post_install", "-at_install", "mail_outbound")
class TestServerHealthQueue(MailOutboundSmtpCase):
    def test_real_queue_limit_and_refusal(self):
        smtp, server = self.start_smtp_server("Limited", "example.com", daily_limit=1)
        mails = self.env["mail.mail"].create(
            [
                {
                    "email_from": "someone@example.com",
                    "email_to": f"c{n}@destination.example",
                    "subject": "limited",
                    "auto_delete": False,
                }
                for n in range(3)
            ]
        )
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        self.received(smtp, 1)
        logs = self.env["mail.delivery.log"].search(
            [("mail_server_id", "=", server.id)]
        )
        self.assertEqual(
            sorted(logs.mapped(lambda log: (log.outcome, log.failure_stage or ""))),
            [("held", "limit"), ("held", "limit"), ("sent", "")],
        )
        self.assertIn("c0@destination.example", logs.mapped("recipients"))
        server.invalidate_recordset()
        self.assertEqual(server.failures_24h, 0)
        # waiting for a limit is neither due nor a deferral (issue #20)
        self.assertEqual(
            (server.queue_due, server.queue_deferred, server.queue_held), (0, 0, 2)
        )
        self.assertEqual(server.usage_display, "1 / 1")
        # the server now refuses every sender: a real failure, counted
        smtp.script("mail", 451, "4.3.0 Try later")
        mails.filtered(lambda mail: mail.state == "outgoing").scheduled_date = False
        self.env["mail.delivery.log"].search([]).unlink()
        server.daily_limit = 0
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        server.invalidate_recordset()
        self.assertEqual(server.failures_24h, 2)
