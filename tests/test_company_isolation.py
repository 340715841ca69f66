"""An administrator of company B reaches nothing of company A's (issue #22).

Every call goes over real JSON-RPC (``/web/dataset/call_kw``) as that
administrator, as the web client or an integration would make it: record
rules and the actions' own checks are what stands in the way, and each
refusal comes before any side effect.
"""

from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import JsonRpcException

from .common import MailOutboundCase

ACCESS_ERROR = "odoo.exceptions.AccessError"


@tagged("post_install", "-at_install", "mail_outbound")
class TestCompanyIsolation(MailOutboundCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.create_company_with_domain("Company A", "a.example")
        cls.company_b = cls.create_company_with_domain("Company B", "b.example")
        cls.domain_a = cls.company_a.alias_domain_id
        cls.server_a = cls.create_server(
            "A relay",
            "a.example",
            company_id=cls.company_a.id,
            smtp_user="a-user",
            smtp_pass="a-secret",
            delivery_failures=5,
            unhealthy_until=fields.Datetime.now() + timedelta(hours=1),
        )
        cls.key_a = cls.env["mail.outbound.dkim.key"].create(
            {"alias_domain_id": cls.domain_a.id}
        )
        cls.key_b = cls.env["mail.outbound.dkim.key"].create(
            {"alias_domain_id": cls.company_b.alias_domain_id.id}
        )
        cls.admin_b = new_test_user(
            cls.env,
            login="admin_b",
            password="admin_b_password",
            groups="base.group_system",
            company_id=cls.company_b.id,
            company_ids=[(6, 0, cls.company_b.ids)],
        )

    def setUp(self):
        super().setUp()
        self.authenticate("admin_b", "admin_b_password")

    def call(self, model, method, *args, **kwargs):
        return self.make_jsonrpc_request(
            "/web/dataset/call_kw",
            {
                "model": model,
                "method": method,
                "args": list(args),
                "kwargs": {
                    "context": {"allowed_company_ids": self.company_b.ids},
                    **kwargs,
                },
            },
        )

    def assertRefused(self, model, method, *args, **kwargs):
        with self.assertRaises(JsonRpcException) as error:
            self.call(model, method, *args, **kwargs)
        self.assertEqual(str(error.exception), ACCESS_ERROR)

    def test_dkim_keys_of_another_company(self):
        Key = "mail.outbound.dkim.key"
        found = self.call(Key, "search_read", [], fields=["selector"])
        self.assertEqual([row["id"] for row in found], self.key_b.ids)
        self.assertRefused(Key, "read", self.key_a.ids, ["private_key"])
        self.assertRefused(Key, "export_data", self.key_a.ids, ["private_key"])
        self.assertRefused(Key, "write", self.key_a.ids, {"selector": "stolen"})
        self.assertRefused(Key, "unlink", self.key_a.ids)
        self.assertRefused(Key, "action_enable", self.key_a.ids)
        self.assertRefused(Key, "create", {"alias_domain_id": self.domain_a.id})
        self.assertTrue(self.key_a.exists())
        # its own company's key: readable by its system administrator
        (own,) = self.call(Key, "read", self.key_b.ids, ["private_key"])
        self.assertTrue(own["private_key"].startswith("-----BEGIN"))

    def test_domain_checks_and_keys_of_another_company(self):
        Domain = "mail.alias.domain"
        self.assertRefused(Domain, "action_check_readiness", self.domain_a.ids)
        self.assertRefused(Domain, "action_new_dkim_key", self.domain_a.ids)
        self.assertRefused(
            Domain, "action_refresh_sending_addresses", self.domain_a.ids
        )
        self.assertFalse(self.domain_a.readiness_checked_at)
        self.assertEqual(len(self.domain_a.dkim_key_ids), 1)
        self.assertEqual(
            self.call("mail.outbound.domain.check", "search_read", [], fields=["id"]),
            [],
        )

    def test_servers_of_another_company(self):
        Server = "ir.mail_server"
        self.assertRefused(Server, "action_reset_circuit", self.server_a.ids)
        self.assertRefused(Server, "action_try_now", self.server_a.ids)
        self.assertRefused(Server, "action_test_connection", self.server_a.ids)
        self.assertEqual(self.server_a.delivery_failures, 5)
        self.assertTrue(self.server_a.unhealthy_until)
        # a Test Connection wizard made on A's server never connects with
        # A's credentials
        wizard = self.call(
            "mail.outbound.connection.test",
            "create",
            {"mail_server_id": self.server_a.id},
        )
        self.assertRefused("mail.outbound.connection.test", "action_run", [wizard])

    def test_routing_preview_of_another_company(self):
        Preview = "mail.outbound.routing.preview"
        for values in (
            {"company_id": self.company_a.id, "email_from": "x@a.example"},
            {
                "company_id": self.company_b.id,
                "email_from": "x@a.example",
                "mail_server_id": self.server_a.id,
            },
        ):
            preview = self.call(Preview, "create", values)
            (result,) = self.call(
                Preview, "read", [preview], ["result_server", "result_reason"]
            )
            self.assertFalse(result["result_server"])
            self.assertIn("your own companies", result["result_reason"])
