from odoo import api, fields, models


class MailMail(models.Model):
    """The DMARC verdict on a sent mail's Routing tab, from the From and the
    envelope it left with and the DKIM keys and DNS policy as they are now."""

    _inherit = "mail.mail"

    routing_dmarc = fields.Text("DMARC", compute="_compute_routing_dmarc")
    routing_dmarc_reject = fields.Boolean(compute="_compute_routing_dmarc")

    @api.depends("routing_email_from", "routing_envelope_from", "routing_server_id")
    def _compute_routing_dmarc(self):
        AliasDomain = self.env["mail.alias.domain"]
        for mail in self:
            text, rejected = AliasDomain._get_dmarc_summary(
                mail.routing_email_from,
                mail.routing_envelope_from,
                mail.routing_server_id.sudo() or None,
            )
            mail.routing_dmarc = text
            mail.routing_dmarc_reject = rejected
