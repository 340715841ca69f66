from odoo import api, fields, models


class MailAliasDomain(models.Model):
    _inherit = "mail.alias.domain"

    policy_bounce_count = fields.Integer(
        "Policy Bounces",
        readonly=True,
        help="Mails sent from this domain that receiving servers refused "
        "because of the sender (SPF, DKIM, DMARC, blocklists): check the "
        "domain's DNS records and the sending servers.",
    )
    last_policy_bounce = fields.Char(readonly=True)

    @api.model_create_multi
    def create(self, vals_list):
        domains = super().create(vals_list)
        self.env["ir.mail_server"]._clear_forced_from_cache()
        return domains

    def write(self, vals):
        result = super().write(vals)
        if {"default_from", "name"} & set(vals):
            self.env["ir.mail_server"]._clear_forced_from_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env["ir.mail_server"]._clear_forced_from_cache()
        return result

    def _count_policy_bounce(self, reason):
        """A mail from this domain was refused because of the sender."""
        if self:
            # one statement: two reports processed at once both count
            self.env.cr.execute(
                "UPDATE mail_alias_domain SET policy_bounce_count = "
                "COALESCE(policy_bounce_count, 0) + 1, last_policy_bounce = %s "
                "WHERE id IN %s",
                ((reason or "")[:500], tuple(self.ids)),
            )
            self.invalidate_recordset(["policy_bounce_count", "last_policy_bounce"])
