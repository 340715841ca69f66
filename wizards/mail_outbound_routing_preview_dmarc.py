from odoo import api, fields, models


class MailOutboundRoutingPreview(models.TransientModel):
    """The preview's decision, judged by DMARC: would the From that leaves,
    with this envelope sender and Odoo's DKIM signature, pass?"""

    _inherit = "mail.outbound.routing.preview"

    result_dmarc = fields.Text("DMARC", compute="_compute_result_dmarc")
    result_dmarc_reject = fields.Boolean(compute="_compute_result_dmarc")

    @api.depends("result_email_from", "result_envelope_from", "result_server_id")
    def _compute_result_dmarc(self):
        AliasDomain = self.env["mail.alias.domain"]
        for preview in self:
            text, rejected = AliasDomain._get_dmarc_summary(
                preview.result_email_from,
                preview.result_envelope_from,
                # the server the decision named, not one found by its name
                preview.result_server_id.sudo() or None,
            )
            preview.result_dmarc = text
            preview.result_dmarc_reject = rejected
