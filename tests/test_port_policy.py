from odoo.exceptions import UserError, ValidationError
from odoo.tests import Form, tagged

from .common import MailOutboundCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestPortPolicy(MailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.blocked_ports", "25"
        )

    def test_saving_a_server_on_a_blocked_port_is_refused(self):
        with self.assertRaises(ValidationError) as caught:
            self.create_server("Port 25", smtp_port=25)
        message = str(caught.exception)
        self.assertIn("Port 25 of Port 25 is blocked", message)
        self.assertIn("587", message)
        self.assertIn("465", message)

    def test_nothing_is_blocked_by_default(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.blocked_ports", False
        )
        self.create_server("Port 25", smtp_port=25)

    def test_cli_and_archived_servers_are_not_checked(self):
        self.create_server("CLI", smtp_port=25, smtp_authentication="cli")
        self.create_server("Old", smtp_port=25, active=False)

    def test_sending_through_a_server_blocked_after_saving_is_refused(self):
        server = self.create_server("Was fine", smtp_port=2526)
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.blocked_ports", "25, 2526"
        )
        with self.assertRaises(UserError) as caught:
            self.env["ir.mail_server"].connect(mail_server_id=server.id)
        self.assertIn("Port 2526", str(caught.exception))

    def test_encryption_proposes_submission_ports(self):
        form = Form(self.env["ir.mail_server"])
        form.name = "New"
        form.smtp_host = "smtp.example.com"
        form.smtp_encryption = "starttls"
        self.assertEqual(form.smtp_port, 587)
        form.smtp_encryption = "ssl"
        self.assertEqual(form.smtp_port, 465)
        # core proposes 25 for no encryption; blocked here, so 587
        form.smtp_encryption = "none"
        self.assertEqual(form.smtp_port, 587)

    def test_blocked_ports_setting_is_validated(self):
        settings = Form(self.env["res.config.settings"])
        settings.mail_outbound_blocked_ports = "25, smtp"
        with self.assertRaises(ValidationError) as caught:
            settings.save()
        self.assertIn('"smtp" is not a port number', str(caught.exception))

    def test_blocking_a_port_in_use_warns_and_shows_on_health(self):
        # issue #23 (3): "25, 2601" saved while two servers use 2601: no
        # warning, and the list and Delivery Health still said "Healthy"
        first = self.create_server("First", smtp_port=2601)
        second = self.create_server("Second", smtp_port=2601)
        other = self.create_server("Other", smtp_port=587)
        settings = Form(self.env["res.config.settings"])
        with self.assertLogs("odoo.tests.form.onchange", level="WARNING") as logs:
            settings.mail_outbound_blocked_ports = "25, 2601"
        warning = "\n".join(logs.output)
        self.assertIn("First (2601)", warning)
        self.assertIn("Second (2601)", warning)
        self.assertNotIn("Other", warning)
        settings.save().execute()
        (first | second | other).invalidate_recordset(["circuit_state"])
        self.assertEqual(
            (first | second | other).mapped("circuit_state"),
            ["port_blocked", "port_blocked", "closed"],
        )
        Server = self.env["ir.mail_server"]
        self.assertEqual(
            Server.search([("circuit_state", "=", "port_blocked")]), first | second
        )
        self.assertNotIn(first, Server.search([("circuit_state", "=", "closed")]))

    def test_new_server_shows_no_health_and_port_unformatted(self):
        # issue #23 (25): an unsaved server showed "Healthy", the port "2,601"
        arch = self.env["ir.mail_server"].get_views([(False, "form")])["views"]["form"][
            "arch"
        ]
        self.assertRegex(arch, r'name="circuit_state"[^>]*invisible="not id"')
        self.assertRegex(arch, r'name="smtp_port"[^>]*enable_formatting')
