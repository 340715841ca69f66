from odoo import _, api, fields, models, tools

from ..tools import addresses


class MailOutboundRoutingPreview(models.TransientModel):
    """Which server would send a mail from this address, and why.

    Runs the same routing as the send pipeline (``ir.mail_server``'s
    ``_get_routing_decision``) on the company's alias domain and the servers
    as they are now, so an administrator can check a configuration before a
    customer's mail takes the wrong way.
    """

    _name = "mail.outbound.routing.preview"
    _inherit = ["mail.outbound.input.guard"]
    _description = "Outgoing Mail Routing Preview"

    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    alias_domain_id = fields.Many2one(related="company_id.alias_domain_id")
    email_from = fields.Char(
        "From",
        required=True,
        default=lambda self: self.env.user.email_formatted,
        help="The From of the mail as Odoo would write it, e.g. "
        '"Mary" <mary@customer.example> for a customer\'s reply relayed to '
        "followers.",
    )
    mail_server_id = fields.Many2one(
        "ir.mail_server",
        "Requested Server",
        domain="['|', ('company_id', '=', False), ('company_id', '=', company_id)]",
        default=lambda self: self._default_mail_server_id(),
        help="A server the mail asks for (a template's or a mailing's). Empty: "
        "the routing chooses.",
    )
    from_chatter = fields.Boolean(
        "Sent From the Chatter",
        default=True,
        help="Chatter notifications reply to the catchall address; other mails "
        "without a Reply-To reply to their original From.",
    )
    traffic = fields.Selection(
        [("transactional", "Transactional"), ("mass", "Mass Mailing")],
        default="transactional",
        required=True,
    )
    result_server = fields.Char("Server", compute="_compute_result")
    result_server_id = fields.Many2one(
        "ir.mail_server", string="Routed Through", compute="_compute_result"
    )
    result_email_from = fields.Char("From Sent", compute="_compute_result")
    result_envelope_from = fields.Char("Envelope Sender", compute="_compute_result")
    result_reply_to = fields.Char("Reply-To", compute="_compute_result")
    result_rule = fields.Char("Rule", compute="_compute_result")
    result_reason = fields.Text("Why", compute="_compute_result")
    result_warning = fields.Boolean(compute="_compute_result")

    @api.model
    def _default_mail_server_id(self):
        """The server whose list or form the preview was opened from."""
        context = self.env.context
        if context.get("active_model") == "ir.mail_server" and context.get("active_id"):
            return context["active_id"]
        return False

    @api.depends(
        "company_id", "email_from", "mail_server_id", "from_chatter", "traffic"
    )
    def _compute_result(self):
        if not self.env.is_system():
            # onchange computes on a new record without any access check:
            # server names and filters are for system administrators only
            for preview in self:
                preview._set_result_error(
                    _("Only system administrators may preview the routing.")
                )
            return
        IrMailServer = self.env["ir.mail_server"].sudo()
        rules = dict(
            self.env["mail.mail"]
            ._fields["routing_rule"]
            ._description_selection(self.env)
        )
        for preview in self:
            if (
                preview.company_id and preview.company_id not in self.env.companies
            ) or (
                preview.mail_server_id and not preview.mail_server_id.has_access("read")
            ):
                # another company's routing and servers: nothing is shown
                preview._set_result_error(
                    _("You can preview the routing of your own companies only.")
                )
                continue
            if addresses.has_line_break(preview.email_from):
                preview._set_result_error(
                    _(
                        "The From contains a line break, which Odoo refuses to "
                        "send: remove it."
                    )
                )
                continue
            if preview.email_from and not tools.email_normalize(preview.email_from):
                preview._set_result_error(
                    _(
                        '"%(email)s" is not an email address: type one such as '
                        '"Mary" <mary@customer.example>.',
                        email=preview.email_from,
                    )
                )
                continue
            company = preview.company_id or self.env.company
            alias_domain = company.alias_domain_id
            reply_to = ""
            if preview.from_chatter and alias_domain.catchall_email:
                reply_to = tools.formataddr((company.name, alias_domain.catchall_email))
            decision = IrMailServer.with_company(company)._get_routing_decision(
                preview.email_from,
                fixed_server=preview.mail_server_id.sudo() or None,
                alias_domain=alias_domain or None,
                reply_to=reply_to,
                traffic=preview.traffic,
                # the company's servers and the shared ones
                company=company,
            )
            preview.result_server = decision.server_name or _(
                "Command-line server (odoo-bin options)"
            )
            preview.result_server_id = decision.server_id or False
            preview.result_email_from = decision.header_from
            preview.result_envelope_from = decision.envelope_from
            preview.result_reply_to = decision.reply_to
            preview.result_rule = rules.get(decision.rule, decision.rule)
            preview.result_reason = IrMailServer._explain_routing(decision)
            preview.result_warning = bool(decision.warnings)

    def _set_result_error(self, message):
        self.update(
            {
                "result_server": False,
                "result_server_id": False,
                "result_email_from": False,
                "result_envelope_from": False,
                "result_reply_to": False,
                "result_rule": False,
                "result_reason": message,
                "result_warning": True,
            }
        )
