from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, tagged

from .common import MailOutboundCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestFromFilterValidation(MailOutboundCase):
    def test_valid_filters_are_accepted(self):
        for from_filter in (
            "example.com",
            "notifications@example.com",
            " example.com , Other.ORG,a@b.example ",
            "bücher.example",
            "xn--bcher-kva.example",
            "mail_relay.example.com",
        ):
            with self.subTest(from_filter=from_filter):
                self.create_server(f"S {from_filter}", from_filter)

    def test_invalid_filters_name_the_bad_part(self):
        for from_filter, bad_part in (
            ("example.com, not a domain", "not a domain"),
            ("example..com", "example..com"),
            ('"Sales" <sales@example.com>', '"Sales" <sales@example.com>'),
            ("-bad.example", "-bad.example"),
            ("@example.com", "@example.com"),
        ):
            with self.subTest(from_filter=from_filter):
                with self.assertRaises(ValidationError) as caught:
                    self.create_server("Bad", from_filter)
                self.assertIn(bad_part, str(caught.exception))

    def test_line_break_is_header_injection(self):
        server = self.create_server("Ok", "example.com")
        with self.assertRaises(ValidationError) as caught:
            server.from_filter = "example.com\r\nBcc: victim@example.org"
        self.assertIn("line break", str(caught.exception))


@tagged("post_install", "-at_install", "mail_outbound")
class TestRoutingDecision(MailOutboundCase):
    """The model layer feeds the core the right data: records, alias domain."""

    def decide(self, email_from, **kwargs):
        return self.env["ir.mail_server"]._get_routing_decision(email_from, **kwargs)

    def test_ties_broken_by_name_on_the_direct_path(self):
        zulu = self.create_server("zulu", sequence=5)
        alpha = self.create_server("Alpha", sequence=5)
        self.assertLess(zulu.id, alpha.id)
        server, smtp_from = self.env["ir.mail_server"]._find_mail_server(
            "someone@customer.example"
        )
        self.assertEqual(server, alpha)
        self.assertEqual(smtp_from, "notifications@example.com")

    def test_archived_server_is_never_chosen(self):
        self.create_server("Archived", "example.com", sequence=1, active=False)
        fallback = self.create_server("Open", sequence=20)
        server, smtp_from = self.env["ir.mail_server"]._find_mail_server(
            "bob@example.com"
        )
        self.assertEqual(server, fallback)
        self.assertEqual(smtp_from, "notifications@example.com")

    def test_full_address_default_from_replaces_every_from(self):
        domain_server = self.create_server("Domain", "example.com")
        self.alias_domain.default_from = "noreply@example.com"
        server, smtp_from = self.env["ir.mail_server"]._find_mail_server(
            '"Bob" <bob@example.com>'
        )
        # core keeps bob@example.com here, the filter being the domain
        self.assertEqual(server, domain_server)
        self.assertEqual(smtp_from, "noreply@example.com")
        decision = self.decide('"Bob" <bob@example.com>')
        self.assertTrue(decision.forced)
        self.assertEqual(decision.header_from, '"Bob" <noreply@example.com>')
        # back to a local part: the cache of forced addresses follows
        self.alias_domain.default_from = "notifications"
        self.assertFalse(self.decide("bob@example.com").forced)

    def test_alias_domain_of_the_record_is_used(self):
        other = self.env["mail.alias.domain"].create(
            {"name": "other.example", "default_from": "robot"}
        )
        self.create_server("Other", "other.example")
        decision = self.decide("mary@customer.example", alias_domain=other)
        self.assertEqual(decision.rule, "notification_domain")
        self.assertEqual(decision.header_from, '"mary" <robot@other.example>')
        self.assertEqual(decision.envelope_from, "bounce@other.example")

    def test_cli_server_when_no_record(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail.default.from_filter", "example.com"
        )
        decision = self.decide("mary@customer.example")
        self.assertEqual(
            (decision.rule, decision.server_id), ("cli_notification", None)
        )

    def test_fixed_server_enforcement_follows_the_setting(self):
        mass = self.create_server("Mass", "mass.example")
        decision = self.decide("bob@customer.example", fixed_server=mass)
        self.assertEqual(decision.rule, "fixed_unenforced")
        self.set_enforce_fixed_filter(True)
        decision = self.decide("bob@customer.example", fixed_server=mass)
        self.assertEqual(decision.rule, "fixed_mismatch")
        self.assertEqual(decision.header_from, '"bob" <notifications@example.com>')

    def test_new_company_gets_lowest_sequence_alias_domain(self):
        self.env["mail.alias.domain"].create({"name": "late.example", "sequence": 50})
        company = self.env["res.company"].create({"name": "New Co"})
        self.assertEqual(company.alias_domain_id, self.alias_domain)


@tagged("post_install", "-at_install", "mail_outbound")
class TestRoutingPreview(MailOutboundCase):
    def test_preview_relayed_customer_reply(self):
        self.create_server("Ours", "example.com", sequence=1)
        self.create_server("Open", sequence=2)
        preview = Form(self.env["mail.outbound.routing.preview"])
        preview.email_from = '"Mary" <mary@customer.example>'
        self.assertEqual(preview.result_server, "Ours")
        self.assertEqual(
            preview.result_email_from, '"Mary" <notifications@example.com>'
        )
        self.assertEqual(preview.result_envelope_from, "bounce@example.com")
        self.assertEqual(
            preview.result_reply_to, '"Example Company" <catchall@example.com>'
        )
        self.assertEqual(
            preview.result_rule, "Server filter lists the notification domain"
        )
        self.assertIn(
            "lists the notification domain example.com", preview.result_reason
        )
        self.assertFalse(preview.result_warning)
        preview.from_chatter = False
        self.assertEqual(preview.result_reply_to, '"Mary" <mary@customer.example>')

    def test_preview_warns_when_server_filter_refuses(self):
        self.create_server("Elsewhere", "elsewhere.example")
        preview = Form(self.env["mail.outbound.routing.preview"])
        preview.email_from = "bob@customer.example"
        self.assertEqual(preview.result_rule, "First server (no filter matches)")
        self.assertTrue(preview.result_warning)
        self.assertIn("Add example.com to its FROM filter", preview.result_reason)

    def test_preview_on_a_requested_server(self):
        # issue #23 (13): advised adding the customer's domain to the filter;
        # transactional mail through a mass-only server was not flagged
        self.set_enforce_fixed_filter(False)
        mass = self.create_server("Mass", "example.com", outbound_traffic="mass")
        preview = Form(self.env["mail.outbound.routing.preview"])
        preview.mail_server_id = mass
        preview.email_from = "mary@gmail.example"
        self.assertTrue(preview.result_warning)
        self.assertNotIn("Add gmail.example", preview.result_reason)
        self.assertIn("do not add it to the filter", preview.result_reason)
        self.assertIn("carries mass mail only", preview.result_reason)
        preview.traffic = "mass"
        self.assertNotIn("carries mass mail only", preview.result_reason)

    def test_preview_line_break_is_refused(self):
        preview = Form(self.env["mail.outbound.routing.preview"])
        preview.email_from = "a@example.com\nBcc: x@example.org"
        self.assertTrue(preview.result_warning)
        self.assertFalse(preview.result_server)
        self.assertIn("line break", preview.result_reason)

    def test_preview_invalid_from_is_a_warning(self):
        self.create_server("Ours", "example.com")
        preview = Form(self.env["mail.outbound.routing.preview"])
        preview.email_from = "not an address"
        self.assertTrue(preview.result_warning)
        self.assertFalse(preview.result_server)
        self.assertIn('"not an address" is not an email address', preview.result_reason)

    def test_preview_from_a_server_prefills_it(self):
        server = self.create_server("Ours", "example.com")
        preview = Form(
            self.env["mail.outbound.routing.preview"].with_context(
                active_model="ir.mail_server", active_id=server.id
            )
        )
        self.assertEqual(preview.mail_server_id, server)
        self.assertEqual(preview.result_server, "Ours")
        # single company: the company field is in the view, invisible, so the
        # alias domain is shown
        self.assertEqual(preview.alias_domain_id, self.alias_domain)

    def test_preview_is_for_system_administrators_only(self):
        user = self.env["res.users"].create(
            {
                "name": "Internal",
                "login": "internal_preview",
                "groups_id": [(6, 0, [self.env.ref("base.group_user").id])],
            }
        )
        with self.assertRaises(AccessError):
            self.env["mail.outbound.routing.preview"].with_user(user).create(
                {"email_from": "a@example.com"}
            )


@tagged("post_install", "-at_install", "mail_outbound")
class TestSettings(MailOutboundCase):
    def test_alias_addresses_shown_and_change_warns(self):
        settings = Form(self.env["res.config.settings"])
        self.assertEqual(settings.mail_outbound_bounce_address, "bounce@example.com")
        self.assertEqual(settings.mail_outbound_reply_address, "catchall@example.com")
        self.assertEqual(
            settings.alias_domain_notification_example,
            f'"{self.env.user.name}" <notifications@example.com>',
        )
        with self.assertLogs("odoo.tests.form.onchange", level="WARNING") as logs:
            settings.alias_domain_catchall_alias = "replies"
        warning = "\n".join(logs.output)
        self.assertIn("will no longer be routed", warning)
        # both addresses named; the unchanged ones are not listed
        self.assertIn("catchall@example.com \u2192 replies@example.com", warning)
        self.assertNotIn("bounce@example.com \u2192", warning)
        # the shown address follows the typed alias before saving
        self.assertEqual(settings.mail_outbound_reply_address, "replies@example.com")
        # issue #23 (17): the bounce address receives delivery reports
        with self.assertLogs("odoo.tests.form.onchange", level="WARNING") as logs:
            settings.alias_domain_bounce_alias = "reports"
        warning = "\n".join(logs.output)
        self.assertIn(
            "Delivery reports (bounces): bounce@example.com \u2192 reports@example.com",
            warning,
        )
        self.assertNotIn("Replies to emails", warning.split("Delivery reports")[1])
        settings.alias_domain_bounce_alias = "bounce"
        settings.save().execute()
        self.assertEqual(self.alias_domain.catchall_email, "replies@example.com")

    def test_full_address_default_from_is_kept(self):
        settings = Form(self.env["res.config.settings"])
        with self.assertLogs("odoo.tests.form.onchange", level="WARNING") as logs:
            settings.alias_domain_default_from = "info@other.example"
        self.assertEqual(
            settings.alias_domain_notification_example,
            f'"{self.env.user.name}" <info@other.example>',
        )
        self.assertIn(
            "notifications@example.com \u2192 info@other.example",
            "\n".join(logs.output),
        )

    def test_enforce_setting_is_a_parameter(self):
        settings = Form(self.env["res.config.settings"])
        settings.mail_outbound_enforce_fixed_filter = True
        settings.save().execute()
        self.assertTrue(self.env["ir.mail_server"]._is_fixed_filter_enforced())


@tagged("post_install", "-at_install", "mail_outbound")
class TestTranslation(MailOutboundCase):
    def test_decision_explained_in_romanian(self):
        self.env["res.lang"]._activate_lang("ro_RO")
        self.env["ir.module.module"].search(
            [("name", "=", "mail_outbound")]
        )._update_translations(["ro_RO"])
        self.create_server("Ours", "example.com")
        decision = self.env["ir.mail_server"]._get_routing_decision(
            '"Mary" <mary@customer.example>'
        )
        reason = (
            self.env["ir.mail_server"]
            .with_context(lang="ro_RO")
            ._explain_routing(decision)
        )
        self.assertEqual(
            reason,
            "Niciun server nu poate trimite ca mary@customer.example; Ours are "
            "domeniul de notificare example.com în filtrul FROM, deci trimite "
            "mesajul ca adresa de notificare notifications@example.com.",
        )
        field = (
            self.env["ir.mail_server"]
            .with_context(lang="ro_RO")
            ._fields["outbound_traffic"]
        )
        self.assertEqual(
            field._description_string(self.env(context={"lang": "ro_RO"})), "Transportă"
        )
