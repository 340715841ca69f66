"""Delivery Health is for system administrators: its fields, its actions and
its URL refuse everyone else, even a user core lets read the servers."""

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import MailOutboundCase

HEALTH_FIELDS = [
    "circuit_state",
    "mail_count",
    "delivery_log_count",
    "queue_due",
    "queue_deferred",
    "queue_held",
    "failures_24h",
    "usage_display",
    "queue_eta",
    "sent_today",
    "delivery_failures",
    "unhealthy_until",
    "last_delivery_error",
    "last_delivery_error_text",
    "circuit_summary",
]


@tagged("post_install", "-at_install", "mail_outbound")
class TestHealthAccess(MailOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.create_server("Relay", "example.com")
        cls.employee = new_test_user(
            cls.env, login="health_employee", groups="base.group_user"
        )
        # as mass_mailing does for its users: core's servers are readable
        cls.env["ir.model.access"].create(
            {
                "name": "test read ir.mail_server",
                "model_id": cls.env.ref("base.model_ir_mail_server").id,
                "group_id": cls.env.ref("base.group_user").id,
                "perm_read": True,
            }
        )

    def test_health_fields_are_refused_to_an_employee(self):
        server = self.server.with_user(self.employee)
        server.read(["name"])  # core's own permission stays
        for field in HEALTH_FIELDS:
            with self.subTest(field=field), self.assertRaises(AccessError):
                server.read([field])
        self.assertFalse(
            set(HEALTH_FIELDS) & set(server.fields_get()),
            "fields_get hides the health fields",
        )
        # the administrator sees them
        self.server.read(HEALTH_FIELDS)

    def test_health_actions_are_refused_to_an_employee(self):
        server = self.server.with_user(self.employee)
        for action in (
            "action_view_mails",
            "action_view_delivery_log",
            "action_try_now",
            "action_reset_circuit",
        ):
            with self.subTest(action=action), self.assertRaises(AccessError):
                getattr(server, action)()

    def test_health_screen_refused_by_url(self):
        action = self.env.ref("mail_outbound.mail_outbound_health_action")
        # /web/action/load reads the action with sudo, as the user
        as_employee = action.with_user(self.employee).sudo()
        with self.assertRaises(AccessError):
            as_employee._get_action_dict()
        self.assertEqual(action.sudo()._get_action_dict()["id"], action.id)

    def test_employee_who_may_read_servers_still_opens_their_screens(self):
        # the health fields are gone from their views, not an error
        Server = self.env["ir.mail_server"].with_user(self.employee)
        views = Server.get_views([(False, "list"), (False, "form")])
        for view_type in ("list", "form"):
            arch = views["views"][view_type]["arch"]
            self.assertNotIn('name="queue_eta"', arch)
            self.assertNotIn('name="circuit_summary"', arch)
        fields_spec = {
            name: {}
            for name in views["models"]["ir.mail_server"]["fields"]
            if name in Server._fields and Server._fields[name].type != "one2many"
        }
        Server.web_search_read([], fields_spec)
