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
    def get_param(self, key, default=False):
        value = super().get_param(key, default)
        if key == "mail.mail.queue.batch.size" and value not in (default, False):
            # core reads it with int() and would abort every queue run on a
            # typo, or claim the whole queue on 0
            if settings.valid_batch_size(value) is None:
                if (key, value) not in _WARNED:
                    _WARNED.add((key, value))
                    # the default is the caller's (the queue's batch size);
                    # False when the caller has its own fallback
                    _logger.warning(
                        "System parameter %s is %r, not 1 to %s: ignored, the "
                        "queue's own batch size is used",
                        key,
                        value,
                        settings.MAX_BATCH_SIZE,
                    )
                return default
        return value

    @api.model
    def _mail_outbound_get(self, key):
        """The value of ``mail_outbound.*`` parameter ``key``, parsed and
        clamped to its range (tools/settings.py, the only place its default
        is written); a bad value gives the default or the nearest bound, and
        one warning in the log per value and process, never an exception:
        the queue, the mail gateway and the forms read these."""
        raw = self.sudo().get_param(key)
        value, warning = settings.parse(key, raw)
        if warning and (key, raw) not in _WARNED:
            _WARNED.add((key, raw))
            _logger.warning("System parameter %s", warning)
        return value

    def write(self, vals):
        blocked_before = self._mail_outbound_blocked_ports_if_touched()
        result = super().write(vals)
        self._mail_outbound_wake_unblocked(blocked_before)
        return result

    def unlink(self):
        blocked_before = self._mail_outbound_blocked_ports_if_touched()
        result = super().unlink()
        self._mail_outbound_wake_unblocked(blocked_before)
        return result

    def _mail_outbound_blocked_ports_if_touched(self):
        if any(param.key == "mail_outbound.blocked_ports" for param in self):
            return self._mail_outbound_get("mail_outbound.blocked_ports")
        return None

    def _mail_outbound_wake_unblocked(self, blocked_before):
        """A port no longer blocked takes effect now (issue #20): the mail
        deferred on a server using it is due, and the queue is woken."""
        if blocked_before is None:
            return
        # core's write and unlink cleared get_param's cache
        blocked = set(self._mail_outbound_get("mail_outbound.blocked_ports"))
        freed = set(blocked_before) - blocked
        if not freed:
            return
        servers = (
            self.env["ir.mail_server"]
            .sudo()
            .search([("smtp_port", "in", sorted(freed))])
        )
        if servers:
            servers._wake_deferred_mail()
