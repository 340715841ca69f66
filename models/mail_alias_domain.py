from odoo import api, models


class MailAliasDomain(models.Model):
    _inherit = "mail.alias.domain"

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
