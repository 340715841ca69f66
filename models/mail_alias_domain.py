from odoo import _, api, models
from odoo.exceptions import ValidationError

from ..tools import addresses


class MailAliasDomain(models.Model):
    _inherit = "mail.alias.domain"

    @api.model
    def _check_default_from_value(self, value):
        # core would rewrite "a\r\nBcc: x" into another full address, which
        # the routing then forces on every mail: refuse it as typed
        if value and isinstance(value, str) and addresses.has_line_break(value):
            raise ValidationError(
                _(
                    "Default From: remove the line break or NUL character; type "
                    "one name (notifications) or address."
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._check_default_from_value(vals.get("default_from"))
        domains = super().create(vals_list)
        self.env["ir.mail_server"]._clear_forced_from_cache()
        return domains

    def write(self, vals):
        self._check_default_from_value(vals.get("default_from"))
        result = super().write(vals)
        if {"default_from", "name"} & set(vals):
            self.env["ir.mail_server"]._clear_forced_from_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env["ir.mail_server"]._clear_forced_from_cache()
        return result
