from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    """The company's alias domain readiness in Settings, next to its addresses."""

    _inherit = "res.config.settings"

    alias_domain_readiness_state = fields.Selection(
        related="alias_domain_id.readiness_state", groups="base.group_system"
    )
    alias_domain_readiness_checked_at = fields.Datetime(
        related="alias_domain_id.readiness_checked_at", groups="base.group_system"
    )

    def action_check_alias_domain_readiness(self):
        """Check the alias domain's DNS now and open its readiness tab."""
        self.ensure_one()
        self.alias_domain_id.action_check_readiness()
        return {
            "type": "ir.actions.act_window",
            "res_model": "mail.alias.domain",
            "res_id": self.alias_domain_id.id,
            "view_mode": "form",
            "target": "current",
        }
