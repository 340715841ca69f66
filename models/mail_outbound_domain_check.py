from odoo import fields, models


class MailOutboundDomainCheck(models.Model):
    """One result of an alias domain's readiness check (MX, SPF, DKIM, DMARC).

    Rewritten at each check; a failure carries the record to publish.
    """

    _name = "mail.outbound.domain.check"
    _description = "Sending Domain Check"
    _order = "alias_domain_id, sequence, id"

    alias_domain_id = fields.Many2one(
        "mail.alias.domain", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer()
    kind = fields.Selection(
        [("mx", "MX"), ("spf", "SPF"), ("dkim", "DKIM"), ("dmarc", "DMARC")],
        required=True,
    )
    subject = fields.Char("Checked", help="The DNS name or the server checked.")
    mail_server_id = fields.Many2one("ir.mail_server", ondelete="cascade")
    status = fields.Selection(
        [("ok", "OK"), ("warning", "Warning"), ("error", "Error")], required=True
    )
    result = fields.Char(help="The SPF result of a server: pass, fail, softfail...")
    detail = fields.Text()
    record = fields.Text(
        "Record to Publish", help="Copy this line into the domain's DNS zone."
    )
