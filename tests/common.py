"""Shared fixtures for mail_outbound's Odoo tests.

``MailOutboundCase`` gives every test class a company on the alias domain
``example.com`` (bounce, catchall, notifications), no other outgoing server,
and helpers to create servers. ``MailOutboundSmtpCase`` adds real SMTP
servers on loopback (``tests/loopback_smtp.py``), one per server record, with
sending re-enabled: Odoo skips SMTP entirely while tests run, which would
make every send test pass without sending anything.

Other modules reuse them::

    from odoo.addons.mail_outbound.tests.common import MailOutboundSmtpCase

    class TestMine(MailOutboundSmtpCase):
        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.smtp, cls.server = cls.start_smtp_server("Mine", "example.com")
"""

from unittest.mock import patch

from odoo import modules
from odoo.tests import TransactionCase
from odoo.tools import config

from odoo.addons.base.models import ir_mail_server as base_ir_mail_server

from ..tools import dns_check
from .loopback_dns import LoopbackDns, zone_txt
from .loopback_smtp import LoopbackSmtp


class MailOutboundCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # routing reads every server: start from none, whatever the database has
        cls.env["ir.mail_server"].sudo().search([]).active = False
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail.default.from_filter", False
        )
        cls.alias_domain = cls.env["mail.alias.domain"].create(
            {
                "name": "example.com",
                "bounce_alias": "bounce",
                "catchall_alias": "catchall",
                "default_from": "notifications",
                "sequence": 0,
            }
        )
        cls.company = cls.env.company
        cls.company.alias_domain_id = cls.alias_domain
        cls.company.name = "Example Company"

    @classmethod
    def create_server(cls, name, from_filter=False, sequence=10, **values):
        return cls.env["ir.mail_server"].create(
            {
                "name": name,
                "from_filter": from_filter,
                "sequence": sequence,
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                **values,
            }
        )

    @classmethod
    def create_company_with_domain(cls, name, domain):
        """A company on its own alias domain (bounce, catchall, notifications)."""
        alias_domain = cls.env["mail.alias.domain"].create(
            {
                "name": domain,
                "bounce_alias": "bounce",
                "catchall_alias": "catchall",
                "default_from": "notifications",
            }
        )
        return cls.env["res.company"].create(
            {"name": name, "alias_domain_id": alias_domain.id}
        )

    @classmethod
    def set_enforce_fixed_filter(cls, enforce):
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.enforce_fixed_server_filter", str(bool(enforce))
        )


class MailOutboundSmtpCase(MailOutboundCase):
    """Real loopback SMTP servers, and Odoo allowed to talk to them.

    Odoo skips SMTP while tests run (``modules.module.current_test``); here
    it is switched back on for the class, so that every send reaches a real
    server and the tests assert on what that server received.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.startClassPatcher(patch.object(modules.module, "current_test", False))
        # never the odoo-bin SMTP server of the machine running the tests
        cls.startClassPatcher(patch.dict(config.options, {"smtp_server": ""}))
        cls.startClassPatcher(patch.object(base_ir_mail_server, "SMTP_TIMEOUT", 5))
        cls.loopback_servers = []

    @classmethod
    def start_smtp_server(
        cls,
        name,
        from_filter=False,
        sequence=10,
        tls="none",
        certificate=None,
        users=None,
        auth_required=False,
        tokens=None,
        **values,
    ):
        """A loopback SMTP server and the ir.mail_server record using it.

        With TLS the record connects to ``localhost``, the name the test
        certificates are issued for.
        """
        smtp = LoopbackSmtp(
            tls=tls,
            certificate=certificate,
            users=users,
            auth_required=auth_required,
            tokens=tokens,
        ).start()
        cls.addClassCleanup(smtp.stop)
        cls.loopback_servers.append(smtp)
        if tls != "none":
            values.setdefault("smtp_host", "localhost")
            values.setdefault("smtp_encryption", tls)
        server = cls.create_server(
            name, from_filter, sequence, smtp_port=smtp.port, **values
        )
        return smtp, server

    def setUp(self):
        super().setUp()
        for smtp in self.loopback_servers:
            smtp.reset()

    def create_mails(self, count=1, **values):
        """The tests' one mail factory: ``count`` queued mails to
        rcpt<N>@destination.example, from bob@example.com unless ``values``
        say otherwise."""
        return self.env["mail.mail"].create(
            [
                {
                    "email_from": "bob@example.com",
                    "email_to": f"rcpt{index}@destination.example",
                    "subject": f"mail_outbound test {index}",
                    "body_html": "<p>Hello</p>",
                    "auto_delete": False,
                    **values,
                }
                for index in range(count)
            ]
        )

    def queue_mail(self, email_from, **values):
        """Create one mail and send it through the real queue."""
        values.setdefault("email_to", "customer@destination.example")
        mail = self.create_mails(email_from=email_from, **values)
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        return mail

    def post_and_send(self, record, partners, subject="mail_outbound test"):
        """Post on ``record``'s chatter to ``partners`` and run the real queue:
        the path of a customer notification. Returns the mail.message."""
        message = record.message_post(
            body="<p>Hello</p>",
            subject=subject,
            partner_ids=partners.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            # through the queue, and kept, to compare it with what was received
            force_send=False,
            mail_auto_delete=False,
        )
        mails = (
            self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        )
        mails.auto_delete = False
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        return message

    def receive(self, raw):
        """``raw`` through Odoo's real mail gateway, as the fetchmail cron does."""
        return self.env["mail.thread"].sudo().message_process(False, raw)

    def assertAddress(self, header, name, address):
        """``header`` (a parsed From/Reply-To) holds exactly ``name <address>``.

        Compared parsed, not as text: quoting and RFC 2047 encoding of the
        display name are the serialiser's business.
        """
        self.assertEqual(
            [(a.display_name, a.addr_spec) for a in header.addresses],
            [(name, address)],
        )

    def received(self, smtp, count=1):
        """The messages ``smtp`` received, checking how many there are."""
        self.assertEqual(
            len(smtp.messages),
            count,
            f"expected {count} message(s), got "
            f"{[m['message']['From'] for m in smtp.messages]}",
        )
        return smtp.messages


class MailOutboundDnsCase(MailOutboundSmtpCase):
    """A real DNS server on loopback answering for the test's domains.

    ``mail_outbound.dns_nameserver`` points the addon's resolver at it;
    ``publish`` replaces the zone it serves.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns_server = LoopbackDns().start()
        cls.addClassCleanup(cls.dns_server.stop)
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.dns_nameserver", cls.dns_server.nameserver
        )

    def publish(self, *lines, txt=()):
        """Serve ``lines`` (zone-file syntax) and ``txt`` ``(name, text)`` pairs."""
        self.dns_server.load(
            "\n".join([*lines, *(zone_txt(name, text) for name, text in txt)]) + "\n"
        )

    def dkim_txt_lookup(self):
        """dkimpy's ``dnsfunc``, asking the loopback DNS."""
        resolver = self.env["mail.alias.domain"]._get_dns_resolver()

        def get_txt(name, timeout=5):
            found = dns_check.txt(resolver, name.decode().rstrip("."))
            return found[0].encode() if found else None

        return get_txt
