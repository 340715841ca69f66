"""Screens that agree with the queue: filters, headings and hints the
walk of every screen found missing (issue #23)."""

from odoo.tests import tagged

from .common import MailOutboundCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestScreens(MailOutboundCase):
    def arch(self, model, view_type):
        views = self.env[model].get_views([(False, view_type)])["views"]
        return views[view_type]["arch"]

    def test_delivery_attempts_failed_over_filter_and_reports_heading(self):
        # issue #23 (21): no "Failed Over" filter; the bounce events had no heading
        self.assertIn('name="failed_over"', self.arch("mail.delivery.log", "search"))
        self.assertIn(
            'string="Delivery Reports"', self.arch("mail.delivery.log", "form")
        )

    def test_preset_zero_reads_not_published(self):
        # issue #23 (22): "Rate per Minute 0" for a limit the provider does
        # not publish read as "no limit"
        form = self.arch("mail.outbound.provider.preset", "form")
        self.assertEqual(form.count("not published"), 3)
        health = self.env.ref("mail_outbound.ir_mail_server_view_list_health").arch
        self.assertIn('invisible="not rate_per_minute"', health)

    def test_settings_blacklist_has_its_own_help_and_servers_a_link(self):
        # issue #23 (18): "Blacklist After Hard Bounces" under "Daily Usage
        # and Limit" with no tooltip; no link to the servers list
        arch = self.arch("res.config.settings", "form")
        self.assertRegex(
            arch,
            r'id="mail_outbound_blacklist_setting"[^>]*help="An address whose mails '
            r"bounced",
        )
        server_list = self.env.ref("base.action_ir_mail_server_list")
        self.assertIn(f'name="{server_list.id}"', arch)

    def test_settings_alias_labels_in_romanian(self):
        # issue #23 (25): "Catchall" and "Bounce" stayed English in Romanian
        self.env["res.lang"]._activate_lang("ro_RO")
        self.env["ir.module.module"].search(
            [("name", "=", "mail_outbound")]
        )._update_translations(["ro_RO"])
        arch = (
            self.env["res.config.settings"]
            .with_context(lang="ro_RO")
            .get_views([(False, "form")])["views"]["form"]["arch"]
        )
        self.assertIn('string="Returnare"', arch)
        self.assertIn('string="Adresă generală (catchall)"', arch)

    def test_reworded_core_field_in_romanian(self):
        # issue #23 (6): "FROM Filtering" stayed English in Romanian and its
        # tooltip fell back to core's old help
        self.env["res.lang"]._activate_lang("ro_RO")
        self.env["ir.module.module"].search(
            [("name", "in", ("base", "mail", "mail_outbound"))]
        )._update_translations(["ro_RO"])
        env = self.env(context={"lang": "ro_RO"})
        field = env["ir.mail_server"]._fields["from_filter"]
        self.assertEqual(field._description_string(env), "Filtrare FROM")
        self.assertNotIn("Comma-separated list", field._description_help(env))

    def test_custom_email_servers_checked_while_servers_exist(self):
        # issue #23 (18): "Use Custom Email Servers" stayed unchecked while
        # five servers were used
        self.env["ir.config_parameter"].sudo().set_param(
            "base_setup.default_external_email_server", False
        )
        self.assertFalse(
            self.env["res.config.settings"].default_get(
                ["external_email_server_default"]
            )["external_email_server_default"]
        )
        self.create_server("Relay", "example.com")
        self.assertTrue(
            self.env["res.config.settings"].default_get(
                ["external_email_server_default"]
            )["external_email_server_default"]
        )
