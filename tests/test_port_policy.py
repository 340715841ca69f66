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
