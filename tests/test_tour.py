"""The administrator's walk through mail_outbound, in headless Chromium.

Odoo's ``HttpCase.start_tour`` drives the tours of
``static/tests/tours/mail_outbound_tour.js``; the browser talks to this
test's server, and Test Connection to a real loopback SMTP server. Odoo
skips browser tests when no Chromium is found (``scripts/test`` installs it).
"""

from datetime import timedelta

from odoo import fields, http
from odoo.tests import HttpCase, tagged

from .common import MailOutboundSmtpCase


@tagged("post_install", "-at_install", "mail_outbound", "mail_outbound_tour")
class TestAdministratorTour(MailOutboundSmtpCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The browser's first requests read every module's manifest in
        # parallel threads, and Python 3.11's parser is not thread-safe there
        # ("AST constructor recursion depth mismatch", CPython gh-106905): a
        # 500 on /web/webclient/load_menus. Read them once, before the browser.
        assert http.root.statics, "no module serves static files"
        cls.smtp, cls.server = cls.start_smtp_server("Tour Server", "example.com")
        cls.env["mail.outbound.provider.preset"].create(
            {
                "name": "Loopback (tour)",
                "smtp_host": "127.0.0.1",
                "smtp_port": cls.smtp.port,
                "smtp_encryption": "none",
                "daily_limit": 1000,
                "source": "tests/test_tour.py: the loopback SMTP server",
            }
        )

    def test_settings(self):
        self.start_tour("/odoo/settings", "mail_outbound_settings_tour", login="admin")
        # the tour changed the alias without saving
        self.assertEqual(self.alias_domain.catchall_alias, "catchall")

    def test_server_from_preset_test_connection_and_preview(self):
        self.start_tour(
            "/odoo/action-base.action_ir_mail_server_list",
            "mail_outbound_server_tour",
            login="admin",
        )
        server = self.env["ir.mail_server"].search([("name", "=", "Loopback Relay")])
        self.assertEqual(
            (server.smtp_host, server.smtp_port, server.daily_limit),
            ("127.0.0.1", self.smtp.port, 1000),
        )
        # Test Connection reached the loopback server and stopped at DATA
        self.assertEqual(self.smtp.messages, [])

    def test_sent_mail_routing_and_attempts(self):
        mail = self.queue_mail("someone@example.com")
        self.assertEqual(mail.state, "sent")
        self.start_tour(
            f"/odoo/action-mail.action_view_mail_mail/{mail.id}",
            "mail_outbound_mail_tour",
            login="admin",
        )

    def test_delivery_attempts_graph(self):
        self.queue_mail("someone@example.com")
        self.start_tour(
            "/odoo/action-mail_outbound.mail_delivery_log_action",
            "mail_outbound_log_graph_tour",
            login="admin",
        )

    def test_circuit_banner_and_try_now(self):
        # issue #23 (15)
        self.env.ref("base.user_admin").tz = "Europe/Bucharest"
        self.server.write(
            {
                "delivery_failures": 3,
                "unhealthy_until": fields.Datetime.now() + timedelta(hours=1),
                "last_delivery_error": "[Errno 111] Connection refused",
            }
        )
        self.start_tour(
            f"/odoo/action-base.action_ir_mail_server_list/{self.server.id}",
            "mail_outbound_circuit_tour",
            login="admin",
        )
        self.assertEqual(self.server.circuit_state, "closed")

    def test_failed_test_connection_stays_readable(self):
        # issue #23 (16)
        self.smtp.script("mail", 550, "5.7.1 Sender not allowed")
        try:
            self.start_tour(
                f"/odoo/action-base.action_ir_mail_server_list/{self.server.id}",
                "mail_outbound_failed_test_tour",
                login="admin",
            )
        finally:
            self.smtp.reset()
