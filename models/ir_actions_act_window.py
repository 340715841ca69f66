from odoo import _, models
from odoo.exceptions import AccessError


class IrActionsActWindow(models.Model):
    _inherit = "ir.actions.act_window"

    def _get_action_dict(self):
        # core's /web/action/load (a URL such as
        # /odoo/action-mail_outbound.mail_outbound_health_action) reads an
        # action whatever its groups, which only filter menus and bindings:
        # the addon's own screens refuse users outside their groups
        for action in self:
            if (
                action.groups_id
                and (action.xml_id or "").startswith("mail_outbound.")
                and not action.groups_id & self.env.user.groups_id
            ):
                raise AccessError(
                    _(
                        "%(screen)s is for system administrators.",
                        screen=action.name,
                    )
                )
        return super()._get_action_dict()
