from odoo import _, api, models
from odoo.exceptions import ValidationError

from ..tools import inputs


class MailOutboundInputGuard(models.AbstractModel):
    """Refuse what the database or a mail header cannot hold, by field.

    Inherit it beside the model to guard its one-line texts (no CR, LF nor
    NUL), its texts (no NUL) and its integers (PostgreSQL's range)::

        class IrMailServer(models.Model):
            _name = "ir.mail_server"
            _inherit = ["ir.mail_server", "mail.outbound.input.guard"]

    The check runs in ``create`` and ``write``, before the SQL that would
    fail with a raw PostgreSQL error. ``_mail_outbound_guarded`` chooses the
    fields (all of the model's by default).
    """

    _name = "mail.outbound.input.guard"
    _description = "Outgoing Mail Input Guard"

    @api.model
    def _mail_outbound_guarded(self, field):
        return True

    @api.model
    def _mail_outbound_check_input(self, vals):
        for name, value in vals.items():
            field = self._fields.get(name)
            if field is None or not self._mail_outbound_guarded(field):
                continue
            label = field._description_string(self.env)
            if field.type in ("char", "text"):
                char = inputs.refused_character(value, multiline=field.type == "text")
                if char == "\0":
                    raise ValidationError(
                        _("%(field)s: remove the NUL character.", field=label)
                    )
                if char:
                    raise ValidationError(
                        _(
                            "%(field)s: remove the line break; this field "
                            "holds one line.",
                            field=label,
                        )
                    )
            elif field.type == "integer" and inputs.integer_out_of_range(value):
                raise ValidationError(
                    _(
                        "%(field)s: %(value)s is out of range; enter a number "
                        "between %(min)s and %(max)s.",
                        field=label,
                        value=value,
                        min=inputs.INT_MIN,
                        max=inputs.INT_MAX,
                    )
                )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._mail_outbound_check_input(vals)
        return super().create(vals_list)

    def write(self, vals):
        self._mail_outbound_check_input(vals)
        return super().write(vals)
