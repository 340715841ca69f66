from odoo import _, api, fields, models
from odoo.exceptions import AccessError

from ..tools import addresses


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

    def action_lookup_dmarc(self):
        """Look the From domains' DMARC policies up now, then show the preview
        again: the verdict itself only ever reads the stored policies."""
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(_("Only system administrators may preview the routing."))
        if self.company_id and self.company_id not in self.env.companies:
            raise AccessError(
                _("You can preview the routing of your own companies only.")
            )
        domains = {
            addresses.address_domain_key(email)
            for email in (self.email_from, self.result_email_from)
            if email
        }
        self.env["mail.outbound.dmarc.policy"]._refresh(d for d in domains if d)
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }
