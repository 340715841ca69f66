from odoo import api, fields, models


class MailOutboundConnectionTest(models.TransientModel):
    """Test Connection also says when the server's mail would fail DMARC
    under p=reject: the SMTP session may be perfect and the mail refused."""

    _inherit = "mail.outbound.connection.test"

    dmarc_warning = fields.Text("DMARC Warning", compute="_compute_dmarc_warning")

    @api.depends("mail_server_id")
    def _compute_dmarc_warning(self):
        for wizard in self:
            server = wizard.mail_server_id
            if server and not server.has_access("read"):
                wizard.dmarc_warning = False
                continue
            server = server.sudo()
            wizard.dmarc_warning = (
                "\n\n".join(server._get_dmarc_rejections()) if server else False
            )
