"""Hostile input: what the database or a header cannot hold is refused by
field, and a hostile server cannot hold Test Connection past its deadline."""

import resource
import time
from unittest import mock

from odoo.exceptions import ValidationError
from odoo.tests import Form, tagged

from ..tools import smtp_diagnosis
from .common import MailOutboundCase
from .loopback_smtp import HostileServer

TOO_BIG = 2**31


@tagged("post_install", "-at_install", "mail_outbound")
class TestHostileInput(MailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.create_server("Relay", "example.com")

    def assertRefused(self, field_label, function, *args):
        with self.assertRaises(ValidationError) as caught:
            function(*args)
        self.assertIn(field_label, str(caught.exception))

    def test_line_breaks_in_one_line_fields_are_refused(self):
        for value in ("Relay\r\nBcc: x@evil.example", "Relay\nX", "Relay\rX"):
            self.assertRefused("Name", self.create_server, value, "example.com")
            self.assertRefused("Name", self.server.write, {"name": value})
        self.assertRefused(
            "SMTP Server", self.server.write, {"smtp_host": "host\nexample.com"}
        )

    def test_nul_is_refused_with_the_field_name(self):
        cases = [
            (self.server, "name", "Name"),
            (self.server, "smtp_host", "SMTP Server"),
            (self.server, "smtp_user", "Username"),
            (self.alias_domain, "name", "Name"),
        ]
        for record, field, label in cases:
            with self.subTest(field=field):
                self.assertRefused(label, record.write, {field: "a\0b"})
        self.assertRefused(
            "Test Email To",
            self.env["mail.outbound.connection.test"].create,
            {
                "mail_server_id": self.server.id,
                "test_email_to": "me\0@example.com",
            },
        )
        self.assertRefused(
            "From",
            self.env["mail.outbound.routing.preview"].create,
            {"email_from": "me\0@example.com"},
        )

    def test_numbers_past_the_database_range_are_refused(self):
        for field in ("daily_limit", "hourly_limit", "rate_per_minute"):
            with self.subTest(field=field):
                label = self.server._fields[field]._description_string(self.env)
                self.assertRefused(label, self.server.write, {field: TOO_BIG})
        self.assertRefused("SMTP Port", self.server.write, {"smtp_port": TOO_BIG})
        self.assertRefused(
            "Daily",
            self.env["res.config.settings"].create,
            {"mail_outbound_daily_limit": TOO_BIG},
        )

    def test_settings_form_refuses_nul_in_its_own_fields(self):
        form = Form(self.env["res.config.settings"])
        form.mail_outbound_blocked_ports = "25\0"
        with self.assertRaises(ValidationError):
            form.save()


@tagged("post_install", "-at_install", "mail_outbound")
class TestHostileServer(MailOutboundCase):
    def test_endless_greeting_ends_at_the_deadline_with_bounded_memory(self):
        deadline = 3
        for behaviour in ("endless_greeting", "slow_greeting"):
            with (
                self.subTest(behaviour=behaviour),
                HostileServer(behaviour) as hostile,
                mock.patch.object(smtp_diagnosis, "DEADLINE", deadline),
            ):
                server = self.create_server(
                    f"Hostile {behaviour}", "example.com", smtp_port=hostile.port
                )
                wizard = self.env["mail.outbound.connection.test"].create(
                    {"mail_server_id": server.id}
                )
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                started = time.monotonic()
                wizard.action_run()
                elapsed = time.monotonic() - started
                rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                # bounds, not benchmarks: ru_maxrss is in KiB on Linux
                self.assertLessEqual(elapsed, deadline + 2)
                self.assertLess(rss_after - rss_before, 50 * 1024)
                self.assertEqual(wizard.result, "failed")
                failed = wizard.line_ids.filtered(lambda line: line.status == "failed")
                self.assertTrue(failed[:1].fix)
