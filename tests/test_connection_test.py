"""Test Connection as a checklist, against real SMTP servers on loopback."""

import tempfile

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import tagged

from .common import MailOutboundSmtpCase
from .loopback_smtp import certificates, closed_port


@tagged("post_install", "-at_install", "mail_outbound")
class TestConnectionTest(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tempdir = tempfile.TemporaryDirectory(prefix="mail_outbound_certs_")
        cls.addClassCleanup(tempdir.cleanup)
        cls.certs = certificates(tempdir.name)
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.smtp_ca_file", cls.certs.ca
        )
        cls.env.user.email = "admin@example.com"

    def run_test(self, server, **values):
        wizard = self.env["mail.outbound.connection.test"].create(
            {"mail_server_id": server.id, **values}
        )
        wizard.action_run()
        return wizard

    def steps(self, wizard):
        return [(line.step, line.status) for line in wizard.line_ids]

    def test_starttls_auth_and_every_sender_pass(self):
        smtp, server = self.start_smtp_server(
            "Provider",
            "example.com",
            tls="starttls",
            certificate=self.certs.valid,
            users={"odoo": "secret"},
            smtp_user="odoo",
            smtp_pass="secret",
        )
        wizard = self.run_test(server)
        self.assertEqual(wizard.result, "ok")
        self.assertEqual(
            self.steps(wizard),
            [
                ("Host name resolves", "ok"),
                ("TCP connection and greeting", "ok"),
                ("EHLO", "ok"),
                ("TLS", "ok"),
                ("Authentication", "ok"),
                ("MAIL FROM notifications@example.com", "ok"),
                ("MAIL FROM bounce@example.com", "ok"),
                ("RCPT TO noreply@odoo.com", "ok"),
                ("DATA", "ok"),
            ],
        )
        tls = wizard.line_ids.filtered(lambda line: line.step == "TLS")
        self.assertIn("certificate valid until", tls.detail)
        self.assertFalse(smtp.messages, "without a test email nothing is delivered")

    def test_expired_certificate_is_reported_at_the_tls_step(self):
        _smtp, server = self.start_smtp_server(
            "Expired", tls="starttls", certificate=self.certs.expired
        )
        wizard = self.run_test(server)
        self.assertEqual(wizard.result, "failed")
        tls = wizard.line_ids.filtered(lambda line: line.step == "TLS")
        self.assertEqual(tls.status, "failed")
        self.assertIn("certificate has expired", tls.fix)

    def test_wrong_host_name_on_implicit_tls(self):
        _smtp, server = self.start_smtp_server(
            "Wrong name", tls="ssl", certificate=self.certs.wrong_host
        )
        wizard = self.run_test(server)
        tls = wizard.line_ids.filtered(lambda line: line.step == "TLS")
        self.assertEqual(tls.status, "failed")
        self.assertIn("Hostname mismatch", tls.fix)

    def test_bad_password(self):
        _smtp, server = self.start_smtp_server(
            "Auth", users={"odoo": "secret"}, smtp_user="odoo", smtp_pass="nope"
        )
        wizard = self.run_test(server)
        auth = wizard.line_ids.filtered(lambda line: line.step == "Authentication")
        self.assertEqual((auth.status, auth.smtp_code), ("failed", 535))
        self.assertIn("refused the username or password", auth.fix)

    def test_server_refusing_the_bounce_envelope(self):
        smtp, server = self.start_smtp_server("Picky", "example.com")
        smtp.script("mail", 550, "5.7.1 Sender not owned", match="bounce@")
        wizard = self.run_test(server)
        line = wizard.line_ids.filtered(
            lambda line: line.step == "MAIL FROM bounce@example.com"
        )
        self.assertEqual(
            (line.status, line.smtp_code, line.temporary), ("failed", 550, False)
        )
        self.assertEqual(
            line.fix,
            "The server refuses to send as bounce@example.com (550 5.7.1 Sender "
            "not owned), which its FROM filter already allows: allow that "
            "sender, or its domain example.com, at your provider.",
        )

    def test_filter_addresses_and_alias_domains_are_the_senders(self):
        self.env["mail.alias.domain"].create({"name": "other.example"})
        _smtp, server = self.start_smtp_server(
            "Mixed", "noreply@mass.example, other.example"
        )
        self.assertEqual(
            server._get_test_senders(),
            [
                "noreply@mass.example",
                "notifications@other.example",
                "bounce@other.example",
            ],
        )

    def test_server_closing_after_ehlo(self):
        smtp, server = self.start_smtp_server("Closer")
        smtp.script("ehlo", action="close")
        wizard = self.run_test(server)
        failed = wizard.line_ids.filtered(lambda line: line.status == "failed")
        self.assertEqual(len(failed), 1)
        self.assertIn("closed the connection", failed.fix)

    def test_closed_port(self):
        server = self.create_server("Nothing there", smtp_port=closed_port())
        wizard = self.run_test(server)
        self.assertEqual(
            self.steps(wizard)[:3],
            [
                ("Host name resolves", "ok"),
                ("TCP connection and greeting", "failed"),
                ("TLS", "skipped"),
            ],
        )
        self.assertIn("Nothing accepts connections", wizard.line_ids[1].fix)
        # what did not run is listed, each step saying why, in the user's words
        not_run = wizard.line_ids[2:]
        self.assertEqual(
            not_run.mapped("step"),
            [
                "TLS",
                "EHLO",
                "Authentication",
                "MAIL FROM notifications@example.com, bounce@example.com",
                "RCPT TO noreply@odoo.com",
                "DATA",
            ],
        )
        self.assertEqual(
            set(not_run.mapped("detail")), {"Not run: an earlier step failed."}
        )

    def test_blocked_port_is_refused_before_connecting(self):
        server = self.create_server("Old", smtp_port=2526)
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.blocked_ports", "2526"
        )
        wizard = self.run_test(server)
        self.assertEqual(self.steps(wizard), [("Port allowed", "failed")])

    def test_real_test_email_goes_through_the_pipeline(self):
        self.set_enforce_fixed_filter(True)
        smtp, server = self.start_smtp_server("Provider", "example.com")
        self.env.user.email = "someone@gmail.example"
        wizard = self.run_test(
            server, send_test_email=True, test_email_to="me@destination.example"
        )
        self.assertEqual(wizard.result, "ok")
        (received,) = self.received(smtp)
        # the same From rewrite and envelope as real mail through this server
        self.assertAddress(
            received["message"]["From"], self.env.user.name, "notifications@example.com"
        )
        self.assertEqual(received["mail_from"], "bounce@example.com")
        self.assertEqual(received["rcpt_tos"], ["me@destination.example"])
        send = wizard.line_ids[-1]
        self.assertEqual((send.status, send.smtp_code), ("ok", 250))

    def test_real_test_email_sends_as_an_address_odoo_vouches_for(self):
        # issue #23 (14): an empty filter let the user's own address out,
        # on no filter and no alias domain, and the wizard never said so
        smtp, server = self.start_smtp_server("Open relay")
        self.env.user.email = "admin@yourcompany.example.com"
        wizard = self.run_test(
            server, send_test_email=True, test_email_to="me@destination.example"
        )
        (received,) = self.received(smtp)
        self.assertAddress(
            received["message"]["From"], self.env.user.name, "notifications@example.com"
        )
        self.assertIn("notifications@example.com", wizard.test_email_from)
        self.assertEqual(wizard.test_envelope_from, received["mail_from"])
        # an address on an alias domain is the user's to send as
        smtp.reset()
        self.env.user.email = "someone@example.com"
        wizard = self.run_test(
            server, send_test_email=True, test_email_to="me@destination.example"
        )
        (received,) = self.received(smtp)
        self.assertAddress(
            received["message"]["From"], self.env.user.name, "someone@example.com"
        )

    def test_failed_steps_are_named_in_the_banner(self):
        # issue #23 (16): the banner did not name the failed step
        smtp, server = self.start_smtp_server("Provider", "example.com")
        smtp.script("mail", 550, "5.7.1 Sender not allowed")
        wizard = self.run_test(server)
        self.assertEqual(wizard.result, "failed")
        self.assertIn("MAIL FROM notifications@example.com", wizard.failed_steps)

    def test_test_email_address_is_validated(self):
        _smtp, server = self.start_smtp_server("Provider")
        with self.assertRaises(ValidationError):
            self.env["mail.outbound.connection.test"].create(
                {
                    "mail_server_id": server.id,
                    "send_test_email": True,
                    "test_email_to": "me@example.com\r\nBcc: x@example.org",
                }
            )

    def test_only_system_administrators(self):
        _smtp, server = self.start_smtp_server("Provider")
        settings_user = self.env["res.users"].create(
            {
                "name": "Settings but not system",
                "login": "erp_manager_test",
                "groups_id": [(6, 0, [self.env.ref("base.group_erp_manager").id])],
            }
        )
        with self.assertRaises(AccessError):
            server.with_user(settings_user).action_test_connection()
        with self.assertRaises(AccessError):
            self.env["mail.outbound.connection.test"].with_user(settings_user).create(
                {"mail_server_id": server.id}
            )
