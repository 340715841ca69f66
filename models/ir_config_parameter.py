import logging

from odoo import api, models

from ..tools import settings

_logger = logging.getLogger(__name__)

# (key, raw value) already warned about by this process: one warning, not one
# per queue run
_WARNED = set()


class IrConfigParameter(models.Model):
    _inherit = "ir.config_parameter"

    @api.model
    def _mail_outbound_get(self, key):
        """The value of ``mail_outbound.*`` parameter ``key``, parsed and
        clamped to its range (tools/settings.py); a bad value gives the
        default or the nearest bound, and one warning in the log."""
        raw = self.sudo().get_param(key)
        value, warning = settings.parse(key, raw)
        if warning and (key, raw) not in _WARNED:
            _WARNED.add((key, raw))
            _logger.warning("System parameter %s", warning)
        return value
