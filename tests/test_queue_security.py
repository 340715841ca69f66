"""Issue #9: access before effect, and broken parameters, met as an
attacker or a typo would meet them."""

from unittest.mock import patch

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from odoo.addons.base.models.ir_mail_server import IrMailServer as CoreIrMailServer
from odoo.addons.mail.models.mail_mail import MailMail as CoreMailMail

from .common import MailOutboundSmtpCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestQueueSecurity(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp_primary, cls.primary = cls.start_smtp_server("Primary", sequence=1)
        Users = cls.env["res.users"].with_context(no_reset_password=True)
        cls.portal = Users.create(
            {
                "name": "Paula Portal",
                "login": "paula_portal_queue",
                "groups_id": [(6, 0, cls.env.ref("base.group_portal").ids)],
            }
        )
        cls.employee = Users.create(
            {
                "name": "Eric Employee",
                "login": "eric_employee_queue",
                "groups_id": [(6, 0, cls.env.ref("base.group_user").ids)],
            }
        )
        cls.admin = Users.create(
            {
                "name": "Sam System",
                "login": "sam_system_queue",
                "groups_id": [(6, 0, cls.env.ref("base.group_system").ids)],
            }
        )

    def test_queue_refused_before_anything_is_claimed(self):
        mails = self.create_mails(3)
        for user in (self.portal, self.employee):
            for batch_size in (1000, 0):
                with self.assertRaises(AccessError):
                    self.env["mail.mail"].with_user(user).process_email_queue(
                        batch_size=batch_size
                    )
        self.env.flush_all()
        self.assertFalse(any(mails.mapped("delivery_claim")))
        self.assertEqual(set(mails.mapped("state")), {"outgoing"})
        self.received(self.smtp_primary, 0)
        # an administrator may run it
        self.env["mail.mail"].with_user(self.admin).process_email_queue(ids=mails.ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})

    def test_batch_size_is_validated(self):
        mails = self.create_mails(2)
        for batch_size in (0, -1, "x", 10**9):
            with self.assertRaises(UserError):
                self.env["mail.mail"].process_email_queue(batch_size=batch_size)
        self.env.flush_all()
        self.assertFalse(any(mails.mapped("delivery_claim")))
        # core's parameter at 0 would mean "the whole queue": the asked size
        self.env["ir.config_parameter"].sudo().set_param(
            "mail.mail.queue.batch.size", "0"
        )
        self.assertEqual(self.env["mail.mail"]._get_queue_batch_size(7), 7)

    def test_a_typo_in_any_parameter_does_not_stop_the_queue(self):
        Params = self.env["ir.config_parameter"].sudo()
        for key in (
            "mail_outbound.claim_timeout",
            "mail_outbound.daily_limit",
            "mail_outbound.retry_min_backoff",
            "mail_outbound.retry_max_backoff",
            "mail_outbound.retry_lifetime_days",
            "mail_outbound.circuit_threshold",
            "mail_outbound.circuit_cooldown",
            "mail_outbound.queue_commit_every",
            "mail_outbound.delivery_log_days",
            "mail_outbound.after_data_drop",
        ):
            Params.set_param(key, "x")
        with self.assertLogs(
            "odoo.addons.mail_outbound.models.ir_config_parameter", "WARNING"
        ):
            mails = self.create_mails(2)
            self.env["mail.mail"].process_email_queue(ids=mails.ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.env["mail.delivery.log"]._gc_delivery_log()

    def test_negative_values_are_clamped(self):
        Params = self.env["ir.config_parameter"].sudo()
        Params.set_param("mail_outbound.daily_limit", "-1")
        Params.set_param("mail_outbound.retry_lifetime_days", "0")
        mails = self.create_mails()
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        # -1 is no limit, not "defer everything forever"
        self.assertEqual(mails.state, "sent")
        # a lifetime of 0 would fail at the first 4xx: the smallest one
        policy = self.env["mail.mail"]._get_retry_policy()
        self.assertEqual(policy.lifetime, 864)

    def test_server_limits_refuse_negative_values(self):
        for field in ("daily_limit", "rate_per_minute"):
            with self.assertRaises(ValidationError) as caught:
                self.primary.write({field: -1})
            self.assertIn(self.primary._fields[field].string, str(caught.exception))

    def test_parallel_connections_out_of_range(self):
        for value in (0, -1, 51):
            with self.assertRaises(ValidationError) as caught:
                self.primary.write({"parallel_connections": value})
            self.assertIn("Parallel Connections", str(caught.exception))
        self.primary.write({"parallel_connections": 50})
        self.assertEqual(self.primary._get_lane_width(), 50)
        # an employee never reaches the field: servers are system-only
        employee = self.env["res.users"].create(
            {
                "name": "Employee",
                "login": "employee_lanes",
                "groups_id": [(6, 0, [self.env.ref("base.group_user").id])],
            }
        )
        with self.assertRaises(AccessError):
            self.primary.with_user(employee).write({"parallel_connections": 10})
        self.assertEqual(self.primary.parallel_connections, 50)

    def test_parallel_sessions_only_where_nothing_overrides_send_email(self):
        Servers = self.env["ir.mail_server"]
        expected = ["mail_tracking"] if "mail.tracking.email" in self.env else []
        self.assertEqual(Servers._get_lane_blockers(), expected)
        # a test double of send_email on the registry's class
        with patch.object(type(Servers), "send_email", lambda *a, **k: None):
            self.assertTrue(Servers._get_lane_blockers())
        # ... and on core's own class, as Odoo's mail tests patch it
        # (mock_mail_gateway): the lanes would bypass it
        with patch.object(
            CoreIrMailServer, "send_email", autospec=True, wraps=CoreIrMailServer
        ):
            self.assertEqual(
                Servers._get_lane_blockers(), [*expected, "base (send_email replaced)"]
            )
        Queue = self.env["mail.outbound.queue"]
        mails = self.env["mail.mail"]
        self.assertEqual(Queue._get_send_overrides(mails), [])
        with patch.object(CoreMailMail, "_send", autospec=True, wraps=CoreMailMail):
            self.assertEqual(
                Queue._get_send_overrides(mails), ["mail (_send replaced)"]
            )

    def test_from_filter_nul_and_empty(self):
        for value, words in (
            ("example.com\x00", "NUL"),
            (",", "no address or domain"),
            (" , ", "no address or domain"),
        ):
            with self.assertRaises(ValidationError) as caught:
                self.primary.write({"from_filter": value})
            self.assertIn(words, str(caught.exception))
            with self.assertRaises(ValidationError):
                self.env["ir.mail_server"].create(
                    {"name": "Other", "smtp_host": "127.0.0.1", "from_filter": value}
                )

    def test_default_from_with_a_line_break_is_refused(self):
        domain = self.env["mail.alias.domain"].search([], limit=1)
        for value in ("notifications\r\nBcc: x@evil.test", "a\nb", "x\x00"):
            with self.assertRaises(ValidationError) as caught:
                domain.write({"default_from": value})
            self.assertIn("Default From", str(caught.exception))

    def test_claimed_mails_outside_cores_search_window_are_sent(self):
        """Issue #9, point 8: core keeps only the claimed ids among the newest
        batch_size * 10 due mails."""
        oldest = self.create_mails()
        newer = self.create_mails(12)
        self.env["mail.mail"].process_email_queue(ids=oldest.ids, batch_size=1)
        self.assertEqual(oldest.state, "sent")
        self.assertEqual(set(newer.mapped("state")), {"outgoing"})

    def test_a_typo_in_the_batch_size_parameter(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail.mail.queue.batch.size", "x"
        )
        mails = self.create_mails(2)
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})

    def test_routing_preview_with_the_callers_rights(self):
        """Issue #9, point 3: onchange on the wizard needs no access right."""
        self.primary.from_filter = "secret-domain.example"
        for user in (self.employee, self.portal):
            Preview = self.env["mail.outbound.routing.preview"].with_user(user)
            result = Preview.onchange(
                {"email_from": "bob@secret-domain.example"},
                ["email_from"],
                {"email_from": {}, "result_server": {}, "result_reason": {}},
            )
            shown = str(result)
            self.assertNotIn("Primary", shown)
            self.assertNotIn("secret-domain", shown.replace("bob@secret-domain", ""))
        preview = self.env["mail.outbound.routing.preview"].create(
            {"email_from": "bob@secret-domain.example"}
        )
        self.assertEqual(preview.result_server, "Primary")

    def test_settings_hide_usage_and_limits_from_others(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.daily_limit", 1234
        )
        names = ["mail_outbound_daily_limit", "mail_outbound_sent_today"]
        for user in (self.employee, self.portal):
            values = self.env["res.config.settings"].with_user(user).default_get(names)
            self.assertFalse(values.get("mail_outbound_daily_limit"))
            self.assertFalse(values.get("mail_outbound_sent_today"))
        values = self.env["res.config.settings"].default_get(names)
        self.assertEqual(values["mail_outbound_daily_limit"], 1234)

    def test_hand_over_records_are_models_for_administrators_only(self):
        """Issue #9: no raw-SQL tables; access rules; removed on uninstall
        with the module's models."""
        for model in (
            "mail.outbound.batch",
            "mail.outbound.handover",
            "mail.outbound.data.end",
        ):
            Model = self.env[model]
            self.assertFalse(Model._log_access)
            self.assertTrue(Model.with_user(self.admin).has_access("read"))
            self.assertFalse(Model.with_user(self.admin).has_access("write"))
            with self.assertRaises(AccessError):
                Model.with_user(self.employee).search([])
