"""Sending domains: readiness from a real loopback DNS, DKIM keys, signing.

Every mail is sent through a real loopback SMTP server and its DKIM
signature verified by dkimpy against the loopback DNS.
"""

import logging

import dns.resolver

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged

from ..tools import dkim_sign
from .common import MailOutboundDnsCase, parameter_warnings

DOMAIN = "example.com"


@tagged("post_install", "-at_install", "mail_outbound")
class TestSendingDomain(MailOutboundDnsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp, cls.server = cls.start_smtp_server("Relay", DOMAIN)
        cls.Key = cls.env["mail.outbound.dkim.key"]

    def good_zone(
        self, *keys, spf="v=spf1 ip4:127.0.0.1 -all", dmarc="v=DMARC1; p=reject"
    ):
        txt = [(f"{DOMAIN}.", spf), (f"_dmarc.{DOMAIN}.", dmarc)]
        txt += [(f"{key.record_name}.", key.record_value) for key in keys]
        self.publish(f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.", txt=txt)

    def checks(self):
        return [
            (c.kind, c.status, c.result or "")
            for c in self.alias_domain.readiness_check_ids
        ]

    def new_key(self, selector="odoo1"):
        return self.Key.create(
            {"alias_domain_id": self.alias_domain.id, "selector": selector}
        )

    def verify(self, received):
        return dkim_sign.verify(received["data"], self.dkim_txt_lookup())

    # -- readiness ------------------------------------------------------------
    def test_all_green(self):
        key = self.new_key()
        self.good_zone(key)
        self.alias_domain.action_check_readiness()
        self.assertEqual(
            self.checks(),
            [
                ("mx", "ok", ""),
                ("spf", "ok", ""),
                ("spf", "ok", "pass"),
                ("dkim", "ok", ""),
                ("dmarc", "ok", ""),
            ],
        )
        self.assertEqual(self.alias_domain.readiness_state, "ok")
        self.assertEqual(self.alias_domain.dmarc_policy, "reject")
        spf_line = self.alias_domain.readiness_check_ids[2]
        self.assertEqual(spf_line.mail_server_id, self.server)
        # the check found the record: the key may now be enabled
        self.assertEqual(key.state, "published")

    def test_broken_records_each_name_the_record_to_publish(self):
        self.publish(
            f"{DOMAIN}. 300 IN A 192.0.2.10",
            txt=[
                (f"{DOMAIN}.", "v=spf1 ip4:192.0.2.1 -all"),
                (f"{DOMAIN}.", "v=spf1 mx -all"),
            ],
        )
        key = self.new_key()
        self.alias_domain.action_check_readiness()
        self.assertEqual(self.alias_domain.readiness_state, "error")
        lines = {c.kind: c for c in self.alias_domain.readiness_check_ids}
        self.assertEqual(lines["mx"].status, "warning")  # A fallback
        self.assertEqual(lines["spf"].status, "error")
        self.assertIn("2 SPF records", lines["spf"].detail)
        self.assertIn("ip4:127.0.0.1", lines["spf"].record)
        self.assertEqual(lines["dkim"].status, "error")
        self.assertEqual(lines["dmarc"].status, "error")
        self.assertIn(f"_dmarc.{DOMAIN}.", lines["dmarc"].record)
        self.assertFalse(self.alias_domain.dmarc_policy)
        # every record offered, published exactly as offered, gives the
        # promised verdict (a DNS server refuses TXT strings over 255)
        offered = [c.record for c in self.alias_domain.readiness_check_ids if c.record]
        self.assertIn('" "', lines["dkim"].record)
        self.publish(f"{DOMAIN}. 300 IN A 192.0.2.10", *dict.fromkeys(offered))
        self.alias_domain.action_check_readiness()
        self.assertEqual(
            self.checks(),
            [
                ("mx", "ok", ""),
                ("spf", "ok", ""),
                ("spf", "ok", "pass"),
                ("dkim", "ok", ""),
                ("dmarc", "warning", ""),  # p=none: offered to start with
            ],
        )
        self.assertEqual(key.state, "published")

    def test_softfail_for_the_sending_server(self):
        self.good_zone(spf="v=spf1 ip4:192.0.2.1 ~all")
        self.alias_domain.action_check_readiness()
        self.assertIn(("spf", "warning", "softfail"), self.checks())

    def test_cron_checks_every_domain(self):
        self.good_zone()
        self.env["mail.alias.domain"]._cron_check_readiness()
        self.assertEqual(self.alias_domain.readiness_state, "warning")  # no DKIM key
        self.assertTrue(self.alias_domain.readiness_checked_at)

    def test_bad_nameserver_parameter_falls_back_and_logs(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.dns_nameserver", "dns.example.com"
        )
        with parameter_warnings() as lines:
            resolver = self.env["mail.alias.domain"]._get_dns_resolver()
        self.assertEqual(resolver.nameservers, dns.resolver.Resolver().nameservers)
        (line,) = lines.naming("mail_outbound.dns_nameserver")
        self.assertIn("'dns.example.com', not IP addresses", line)

    # -- DKIM keys and signing ----------------------------------------------------
    def test_enable_refused_until_published_and_matching(self):
        key = self.new_key()
        self.assertTrue(key.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----"))
        self.good_zone()
        with self.assertRaisesRegex(UserError, "odoo1._domainkey.example.com"):
            key.action_enable()
        other = self.new_key("other")
        self.publish(txt=[(f"{key.record_name}.", other.record_value)])
        with self.assertRaisesRegex(UserError, "is not this key"):
            key.action_enable()
        self.assertEqual(key.state, "draft")

    def test_queue_mail_signed_and_verified(self):
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        self.assertEqual(key.state, "active")
        mail = self.queue_mail("notifications@example.com")
        self.assertEqual(mail.state, "sent")
        (received,) = self.received(self.smtp)
        signature = received["message"]["DKIM-Signature"]
        self.assertIn("d=example.com", signature)
        self.assertIn("s=odoo1", signature)
        self.assertTrue(self.verify(received))

    def test_rewritten_from_is_signed(self):
        """A customer's From is rewritten to the domain first, then signed."""
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        self.queue_mail('"Mary" <mary@customer.example>')
        (received,) = self.received(self.smtp)
        self.assertIn("@example.com", str(received["message"]["From"]))
        self.assertTrue(self.verify(received))

    def test_direct_send_email_signed(self):
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        IrMailServer = self.env["ir.mail_server"]
        message = IrMailServer.build_email(
            "notifications@example.com",
            ["someone@destination.example"],
            "Direct",
            "Bună ziua",
        )
        IrMailServer.send_email(message, mail_server_id=self.server.id)
        (received,) = self.received(self.smtp)
        self.assertTrue(self.verify(received))

    def test_test_connection_email_signed(self):
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        self.env.user.email = "admin@example.com"
        wizard = self.env["mail.outbound.connection.test"].create(
            {
                "mail_server_id": self.server.id,
                "send_test_email": True,
                "test_email_to": "me@destination.example",
            }
        )
        wizard.action_run()
        (received,) = self.received(self.smtp)
        self.assertIn("s=odoo1", received["message"]["DKIM-Signature"])
        self.assertTrue(self.verify(received))

    def test_other_domain_not_signed(self):
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        server = self.create_server("Open", False, sequence=1, smtp_port=self.smtp.port)
        self.set_enforce_fixed_filter(False)
        IrMailServer = self.env["ir.mail_server"]
        message = IrMailServer.build_email(
            "someone@other.example", ["x@destination.example"], "Other", "Body"
        )
        IrMailServer.send_email(message, mail_server_id=server.id)
        received = self.received(self.smtp)[0]
        self.assertIsNone(received["message"]["DKIM-Signature"])

    def test_rotation(self):
        old = self.new_key("old")
        self.good_zone(old)
        old.action_enable()
        new = self.new_key("new")
        # the new selector is not published yet: the old key keeps signing
        with self.assertRaises(UserError):
            new.action_enable()
        self.assertEqual(old.state, "active")
        self.good_zone(old, new)
        new.action_enable()
        self.assertEqual((old.state, new.state), ("retired", "active"))
        self.queue_mail("notifications@example.com")
        (received,) = self.received(self.smtp)
        self.assertIn("s=new", received["message"]["DKIM-Signature"])
        self.assertTrue(self.verify(received))

    def test_ed25519_signs_alongside_rsa(self):
        rsa_key = self.new_key("rsa1")
        ed_key = self.Key.create(
            {
                "alias_domain_id": self.alias_domain.id,
                "selector": "ed1",
                "algorithm": "ed25519",
            }
        )
        self.assertIn("k=ed25519", ed_key.record_value)
        self.good_zone(rsa_key, ed_key)
        rsa_key.action_enable()
        ed_key.action_enable()
        # enabling Ed25519 does not retire the RSA key
        self.assertEqual((rsa_key.state, ed_key.state), ("active", "active"))
        self.queue_mail("notifications@example.com")
        (received,) = self.received(self.smtp)
        signatures = received["message"].get_all("DKIM-Signature")
        self.assertEqual(len(signatures), 2)
        lookup = self.dkim_txt_lookup()
        for index in range(2):
            self.assertTrue(dkim_sign.verify(received["data"], lookup, index))
        with self.assertRaises(UserError):
            ed_key.algorithm = "rsa"

    def test_private_key_never_logged(self):
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        with self.assertLogs("odoo", logging.DEBUG) as logs:
            logging.getLogger("odoo").debug("marker")
            self.queue_mail("notifications@example.com")
        secret = key.private_key.splitlines()[3]
        self.assertFalse([line for line in logs.output if secret in line])

    # -- DMARC verdict -------------------------------------------------------------
    def test_preview_verdict(self):
        key = self.new_key()
        self.good_zone(key)
        key.action_enable()
        self.alias_domain.action_check_readiness()
        verdict = self.env["mail.alias.domain"]._get_dmarc_verdict(
            "notifications@example.com", "bounce@example.com", self.server
        )
        self.assertTrue(verdict.dmarc_pass and verdict.dkim_aligned)
        key.action_retire()
        self.good_zone(spf="v=spf1 ip4:192.0.2.1 -all")
        self.alias_domain.action_check_readiness()
        verdict = self.env["mail.alias.domain"]._get_dmarc_verdict(
            "notifications@example.com", "bounce@example.com", self.server
        )
        self.assertEqual(verdict.outcome, "reject")

    # -- access ---------------------------------------------------------------------
    def test_only_system_administrators(self):
        key = self.new_key()
        self.good_zone(key)
        self.alias_domain.action_check_readiness()
        for groups in ("base.group_user", "base.group_portal"):
            user = new_test_user(self.env, login=f"u_{groups}", groups=groups)
            env = self.env(user=user)
            with self.assertRaises(AccessError):
                env["mail.outbound.dkim.key"].browse(key.id).read(["selector"])
            with self.assertRaises(AccessError):
                env["mail.outbound.dkim.key"].browse(key.id).private_key  # noqa: B018
            with self.assertRaises(AccessError):
                env["mail.outbound.domain.check"].search([])
            with self.assertRaises(AccessError):
                env["mail.outbound.dkim.key"].create(
                    {"alias_domain_id": self.alias_domain.id, "selector": "x"}
                )
            with self.assertRaises(AccessError):
                self.alias_domain.with_user(user).action_check_readiness()
        user = new_test_user(self.env, login="emp2", groups="base.group_user")
        self.assertNotIn(
            "readiness_check_ids",
            self.env["mail.alias.domain"].with_user(user).fields_get(),
        )

    def test_reject_warning_on_server_preview_mail_and_test_connection(self):
        """A relayed customer From under p=reject: refused, shown everywhere."""
        self.good_zone(spf="v=spf1 ip4:192.0.2.1 -all")
        self.publish(
            f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.",
            txt=[
                (f"{DOMAIN}.", "v=spf1 ip4:127.0.0.1 -all"),
                (f"_dmarc.{DOMAIN}.", "v=DMARC1; p=none"),
                ("_dmarc.customer.example.", "v=DMARC1; p=reject"),
            ],
        )
        open_server = self.create_server(
            "Open relay", False, sequence=1, smtp_port=self.smtp.port
        )
        self.set_enforce_fixed_filter(False)
        self.env.user.email = "mary@customer.example"
        # forms never ask DNS: until a look-up, the policy is unknown
        self.assertFalse(open_server.dmarc_warning)
        self.alias_domain.action_check_readiness()
        self.alias_domain._cron_check_readiness()  # looks up users' domains
        open_server.invalidate_recordset(["dmarc_warning"])
        self.assertIn("p=reject", open_server.dmarc_warning)
        self.assertIn("customer.example", open_server.dmarc_warning)
        preview = self.env["mail.outbound.routing.preview"].create(
            {"email_from": "mary@customer.example", "mail_server_id": open_server.id}
        )
        self.assertTrue(preview.result_dmarc_reject)
        self.assertIn("SPF aligned: no", preview.result_dmarc)
        wizard = self.env["mail.outbound.connection.test"].create(
            {"mail_server_id": open_server.id}
        )
        self.assertIn("p=reject", wizard.dmarc_warning)
        mail = self.queue_mail("mary@customer.example", mail_server_id=open_server.id)
        self.assertEqual(mail.routing_email_from, "mary@customer.example")
        self.assertTrue(mail.routing_dmarc_reject)
        # with the fixed server's filter enforced, the From is rewritten to
        # the alias domain, which passes (its p=none would not refuse anyway)
        self.set_enforce_fixed_filter(True)
        preview.email_from = "notifications@example.com"
        preview.mail_server_id = self.server
        self.assertFalse(preview.result_dmarc_reject)
        self.assertIn("DMARC would pass", preview.result_dmarc)
        self.assertFalse(self.server.dmarc_warning)

    # -- issue #22: verdicts that stay true, forms that never ask DNS -------------
    def test_outage_keeps_the_verdicts_and_marks_them_stale(self):
        key = self.new_key()
        self.good_zone(key, dmarc="v=DMARC1; p=none; sp=reject")
        self.alias_domain.action_check_readiness()
        checked_at = self.alias_domain.readiness_checked_at
        Domain = self.env["mail.alias.domain"]
        sub = "news@shop.example.com"
        self.assertEqual(Domain._get_dmarc_verdict(sub, sub).policy, "reject")
        before = self.checks()
        with self.dns_outage():
            self.alias_domain.action_check_readiness()
        # sp=reject still applies to the subdomain; nothing was reset
        self.assertEqual(Domain._get_dmarc_verdict(sub, sub).policy, "reject")
        self.assertEqual(self.alias_domain.dmarc_policy, "none")
        self.assertEqual(self.alias_domain.dmarc_sp, "reject")
        self.assertTrue(self.alias_domain.readiness_stale)
        self.assertEqual(self.alias_domain.readiness_checked_at, checked_at)
        lines = self.alias_domain.readiness_check_ids
        kept = lines.filtered("stale")
        self.assertEqual([(c.kind, c.status, c.result or "") for c in kept], before)
        self.assertTrue(all(c.checked_at for c in kept))
        self.assertEqual(
            sorted(lines.filtered("no_answer").mapped("kind")),
            ["dkim", "dmarc", "mx", "spf"],
        )
        text, _rejected = Domain._get_dmarc_summary(sub, sub)
        self.assertIn("DNS did not answer", text)

    def test_preview_agrees_with_readiness(self):
        """Two SPF records and no DKIM key: the preview never says "pass"."""
        self.publish(
            f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.",
            txt=[
                (f"{DOMAIN}.", "v=spf1 ip4:127.0.0.1 -all"),
                (f"{DOMAIN}.", "v=spf1 mx -all"),
                (f"_dmarc.{DOMAIN}.", "v=DMARC1; p=reject"),
            ],
        )
        self.alias_domain.action_check_readiness()
        self.assertIn(("spf", "error", ""), self.checks())
        preview = self.env["mail.outbound.routing.preview"].create(
            {
                "email_from": "notifications@example.com",
                "mail_server_id": self.server.id,
            }
        )
        self.assertNotIn("DMARC would pass", preview.result_dmarc)
        self.assertIn(
            "SPF of example.com fails on the Readiness tab", preview.result_dmarc
        )
        self.assertTrue(preview.result_dmarc_reject)
        mail = self.queue_mail("notifications@example.com")
        self.assertEqual(mail.routing_dmarc, preview.result_dmarc)

    def test_forms_never_ask_dns(self):
        self.good_zone()
        self.env.user.email = "mary@elsewhere.example"
        self.dns_server.queries.clear()
        self.server.invalidate_recordset(["dmarc_warning"])
        self.assertFalse(self.server.dmarc_warning)
        preview = self.env["mail.outbound.routing.preview"].create(
            {"email_from": "mary@elsewhere.example"}
        )
        self.assertIn("has not been looked up yet", preview.result_dmarc)
        self.assertEqual(self.dns_server.queries, [])
        preview.action_lookup_dmarc()
        self.assertTrue(self.dns_server.queries)

    def test_domain_names_are_dns_names(self):
        for name in ("a" * 64 + ".example", "x" * 100_000, "a..example"):
            with self.assertRaises(ValidationError):
                self.env["mail.alias.domain"].create({"name": name})
        # core refuses Unicode names; their A-label form is a DNS name
        self.env["mail.alias.domain"].create({"name": "xn--bcher-kva.example"})

    def test_one_bad_domain_never_stops_the_others(self):
        """A name core accepted before this check (written in SQL here)."""
        bad = self.env["mail.alias.domain"].create({"name": "bad.example"})
        self.env.cr.execute(
            "UPDATE mail_alias_domain SET name = %s WHERE id = %s",
            ["a" * 64 + ".example", bad.id],
        )
        bad.invalidate_recordset(["name"])
        self.good_zone()
        self.env["mail.alias.domain"]._cron_check_readiness()
        self.assertEqual(self.alias_domain.readiness_state, "warning")  # no key
        self.assertEqual(bad.readiness_state, "error")
        self.assertIn("not a DNS domain name", bad.readiness_check_ids.detail)
        # the server form's compute reads stored results: no LabelTooLong
        self.server.invalidate_recordset(["dmarc_warning"])
        self.assertFalse(self.server.dmarc_warning)

    def test_enable_refusal_offers_a_record_dns_accepts(self):
        key = self.new_key()
        self.good_zone()
        with self.assertRaises(UserError) as refusal:
            key.action_enable()
        line = next(
            line for line in str(refusal.exception).splitlines() if " IN TXT " in line
        )
        self.assertIn('" "', line)
        self.assertIn(key.record_txt, line)  # the key form shows it split too
        # published exactly as offered, signing can be enabled
        self.publish(
            f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.",
            line,
            txt=[(f"{DOMAIN}.", "v=spf1 ip4:127.0.0.1 -all")],
        )
        key.action_enable()
        self.assertEqual(key.state, "active")

    def test_second_key_in_a_month_and_no_failed_insert(self):
        first = self.Key.create({"alias_domain_id": self.alias_domain.id})
        with self.assertNoLogs("odoo.sql_db", "ERROR"):
            second = self.alias_domain.action_new_dkim_key()
        second = self.Key.browse(second["res_id"])
        self.assertEqual(second.selector, f"{first.selector}-2")
        with (
            self.assertNoLogs("odoo.sql_db", "ERROR"),
            self.assertRaisesRegex(ValidationError, "already used"),
        ):
            self.new_key(first.selector)
        self.assertNotIn(
            "private_key",
            self.Key.get_views([(False, "form")])["views"]["form"]["arch"],
        )

    def test_readiness_uses_the_routing_matcher(self):
        """A FROM filter written with a trailing dot or in Unicode still
        names the server sending for the domain (core's matcher did not)."""
        self.server.from_filter = "EXAMPLE.com."
        self.good_zone()
        self.alias_domain.action_check_readiness()
        self.assertIn(("spf", "ok", "pass"), self.checks())

    # -- addresses Odoo sends as -----------------------------------------------------
    def test_sending_addresses(self):
        self.env.ref("base.user_admin").email = "admin@example.com"
        self.env.ref("base.partner_root").email = "odoobot@other.example"
        self.env["mail.template"].create(
            {
                "name": "Invoice",
                "model_id": self.env.ref("base.model_res_partner").id,
                "email_from": '"Billing" <billing@example.com>',
            }
        )
        self.env["mail.template"].create(
            {
                "name": "Dynamic",
                "model_id": self.env.ref("base.model_res_partner").id,
                "email_from": "{{ object.email_formatted }}",
            }
        )
        # the provider refuses one sender in MAIL FROM
        self.smtp.script("mail", 550, "5.7.1 SendAsDenied", match="billing@")
        self.alias_domain.action_test_sending_addresses()
        rows = [
            (r.email, r.mail_server_id.name, r.filter_accepts, r.provider_status)
            for r in self.alias_domain.sending_address_ids
        ]
        self.assertEqual(
            rows,
            [
                ("bounce@example.com", "Relay", True, "ok"),
                ("notifications@example.com", "Relay", True, "ok"),
                ("admin@example.com", "Relay", True, "ok"),
                ("billing@example.com", "Relay", True, "failed"),
            ],
        )
        self.assertIn(
            "SendAsDenied", self.alias_domain.sending_address_ids[3].provider_reply
        )
        # nothing was delivered: MAIL FROM only
        self.assertEqual(self.smtp.messages, [])

    def test_sending_addresses_filled_without_refresh(self):
        # issue #23 (19): the page opened empty until Refresh
        domain = self.env["mail.alias.domain"].create(
            {"name": "fresh.example", "bounce_alias": "bounce", "default_from": "info"}
        )
        self.assertEqual(
            domain.sending_address_ids.mapped("email"),
            ["bounce@fresh.example", "info@fresh.example"],
        )
        domain.default_from = "hello"
        self.assertIn("hello@fresh.example", domain.sending_address_ids.mapped("email"))

    def test_sending_addresses_include_mailings(self):
        if "mailing.mailing" not in self.env:
            self.skipTest("mass_mailing is not installed")
        self.env["mailing.mailing"].create(
            {
                "subject": "Spring sale",
                "email_from": '"Shop" <news@example.com>',
                "mailing_model_id": self.env.ref("base.model_res_partner").id,
            }
        )
        self.alias_domain.action_refresh_sending_addresses()
        row = self.alias_domain.sending_address_ids.filtered(
            lambda r: r.email == "news@example.com"
        )
        self.assertEqual(row.usage, "Mailing: Spring sale")
        self.assertTrue(row.filter_accepts)

    def test_settings_show_readiness(self):
        self.good_zone()
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.alias_domain_readiness_state, "unchecked")
        action = settings.action_check_alias_domain_readiness()
        self.assertEqual(action["res_id"], self.alias_domain.id)
        self.assertEqual(self.alias_domain.readiness_state, "warning")  # no DKIM key
