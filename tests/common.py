"""Shared fixtures for mail_outbound's Odoo tests.

``MailOutboundCase`` gives every test class a company on the alias domain
``example.com`` (bounce, catchall, notifications), no other outgoing server,
and helpers to create servers. ``MailOutboundSmtpCase`` adds real SMTP
servers on loopback (``tests/smtp_servers.py``), one per server record, with
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

from odoo.tests import TransactionCase


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
    def set_enforce_fixed_filter(cls, enforce):
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.enforce_fixed_server_filter", str(bool(enforce))
        )
