import tempfile
from types import SimpleNamespace

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, ValidationError

from ..tools import addresses, smtp_diagnosis


class MailOutboundConnectionTest(models.TransientModel):
    """Test Connection as a checklist an administrator can act on.

    Runs :func:`..tools.smtp_diagnosis.diagnose` against the server with the
    addresses it will really send as, and shows every step with the server's
    reply and, for each failure, the fix. Optionally sends a real test email
    built by the same pipeline as normal mail.
    """

    _name = "mail.outbound.connection.test"
    _inherit = ["mail.outbound.input.guard"]
    _description = "Outgoing Server Test Connection"

    mail_server_id = fields.Many2one(
        "ir.mail_server", "Server", required=True, ondelete="cascade"
    )
    send_test_email = fields.Boolean(
        "Send a Real Test Email",
        help="Complete the transaction with a real message, built and routed "
        "like any mail Odoo sends, and report the server's final reply.",
    )
    test_email_to = fields.Char(default=lambda self: self.env.user.email or "")
    state = fields.Selection([("draft", "Draft"), ("done", "Done")], default="draft")
    result = fields.Selection(
        [("ok", "Passed"), ("warning", "Passed with warnings"), ("failed", "Failed")],
        readonly=True,
    )
    test_email_from = fields.Char(
        "Sent As",
        readonly=True,
        help="The From of the real test email, as the server received it.",
    )
    test_envelope_from = fields.Char(
        "Envelope Sender",
        readonly=True,
        help="The MAIL FROM of the real test email: where delivery reports go.",
    )
    failed_steps = fields.Char(
        readonly=True, help="The steps that failed, named in the banner."
    )
    line_ids = fields.One2many(
        "mail.outbound.connection.test.line", "test_id", "Steps", readonly=True
    )

    @api.constrains("send_test_email", "test_email_to")
    def _check_test_email_to(self):
        for test in self.filtered("send_test_email"):
            if "@" not in (test.test_email_to or "") or any(
                char in test.test_email_to for char in "\r\n"
            ):
                raise ValidationError(
                    _(
                        "Test Email To: type one email address to send the test "
                        "email to, e.g. you@example.com."
                    )
                )

    def action_run(self):
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can test outgoing mail servers.")
            )
        # another company's server and credentials: refused before connecting
        self.mail_server_id.check_access("write")
        server = self.mail_server_id.sudo()
        IrMailServer = self.env["ir.mail_server"].sudo()
        with tempfile.TemporaryDirectory(prefix="mail_outbound_test_") as tempdir:
            config = server._get_smtp_config(tempdir)
            recipient = (
                self.test_email_to
                if self.send_test_email
                else IrMailServer._get_test_email_to()
            )
            message, envelope_from, header_from = (None, None, False)
            if self.send_test_email:
                message, envelope_from, header_from = self._prepare_test_message(server)
            steps = smtp_diagnosis.diagnose(
                config,
                server._get_test_senders(),
                recipient,
                message=message,
                envelope_from=envelope_from,
                blocked_ports=IrMailServer._get_blocked_ports()
                if server.smtp_authentication != "cli"
                else frozenset(),
            )
        self.line_ids.unlink()
        self.write(
            {
                "state": "done",
                "result": smtp_diagnosis.summary(steps),
                "test_email_from": header_from,
                "failed_steps": ", ".join(
                    step.label(self.env._)
                    for step in steps
                    if step.status == smtp_diagnosis.FAILED
                )
                or False,
                "test_envelope_from": envelope_from or False,
                "line_ids": [
                    fields.Command.create(self._prepare_line_values(index, step))
                    for index, step in enumerate(steps)
                ],
            }
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": _("Test Connection: %(server)s", server=server.name),
        }

    def _prepare_line_values(self, index, step):
        translate = self.env._
        return {
            "sequence": index,
            "step": step.label(translate),
            "status": step.status,
            "detail": step.detail_text(translate),
            "smtp_code": step.code,
            "smtp_reply": step.reply,
            "temporary": step.temporary,
            "fix": step.fix_text(translate),
            "duration_ms": step.duration_ms,
        }

    def _prepare_test_message(self, server):
        """The test email as bytes, and its envelope sender.

        Built by ``build_email`` and routed by the same decision as any mail
        through this server, then prepared by core's ``_prepare_email_message``
        so the From rewrite and Return-Path are the ones real mail gets.
        """
        IrMailServer = self.env["ir.mail_server"].sudo()
        alias_domain = self.env.company.alias_domain_id
        email_from = self._get_test_email_from(server, alias_domain)
        decision = IrMailServer._get_routing_decision(
            email_from, fixed_server=server, alias_domain=alias_domain or None
        )
        SendServer = IrMailServer.with_context(
            domain_notifications_email=alias_domain.default_from_email,
            domain_bounce_address=alias_domain.bounce_email,
        )
        message = SendServer.build_email(
            email_from,
            [self.test_email_to],
            _("Test email from %(server)s", server=server.name),
            _(
                "This test email was sent by Odoo through the outgoing server "
                "%(server)s, as %(sent_as)s.\n\n%(reason)s",
                server=server.name,
                sent_as=decision.header_from,
                reason=IrMailServer._explain_routing(decision),
            ),
        )
        session = SimpleNamespace(
            from_filter=server.from_filter, smtp_from=decision.smtp_from
        )
        envelope_from, _recipients, message = SendServer._prepare_email_message(
            message, session
        )
        return message.as_bytes(), envelope_from, message["From"]

    def _get_test_email_from(self, server, alias_domain):
        """The From the test email is written with.

        The user's own address when the server's FROM filter names it or its
        domain, or when it is on an alias domain: Odoo sends as it. Otherwise
        the user's name on the company's notification address, which is what
        Odoo really sends as (an empty filter would let
        admin@yourcompany.example.com through, an address nothing vouches for).
        """
        user = self.env.user
        email = user.email or ""
        server_filter = addresses.FromFilter(server.from_filter)
        alias_domains = {
            addresses.domain_key(name)
            for name in self.env["mail.alias.domain"].sudo().search([]).mapped("name")
        }
        if email and (
            (server_filter and server_filter.allows(email))
            or addresses.address_domain_key(email) in alias_domains
        ):
            return user.email_formatted
        fallback = alias_domain.default_from_email or server._get_test_email_from()
        if not fallback:
            return user.email_formatted or server._get_default_from_address()
        return addresses.format_address(user.name, fallback)
