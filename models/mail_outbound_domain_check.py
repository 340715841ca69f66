from odoo import fields, models


class MailOutboundDomainCheck(models.Model):
    """One result of an alias domain's readiness check (MX, SPF, DKIM, DMARC).

    Rewritten at each check; a failure carries the record to publish. When
    DNS does not answer for a kind, that kind's last answered results stay,
    marked stale, beside a "DNS did not answer" line: an outage never
    erases what the last successful look-up found.
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
    checked_at = fields.Datetime("Looked Up On", readonly=True)
    stale = fields.Boolean(
        readonly=True,
        help="A later check got no answer from DNS: this is the result of "
        "Looked Up On.",
    )
    no_answer = fields.Boolean("DNS Did Not Answer", readonly=True)
