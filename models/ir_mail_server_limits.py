"""ir.mail_server: sending limits in the provider's units, and their usage.

The queue applies them (``mail_mail_limits.py``, ``tools/quota.py``); this
file holds the fields, their checks, what was used today, and the rule that
a changed limit takes effect at once: held mail is released for the next
queue run, which holds again what still does not fit, with its reason
updated.
"""

import logging

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..tools import quota

_logger = logging.getLogger(__name__)

# a change to one of these may let held mail go now
LIMIT_FIELDS = (
    "limit_unit",
    "daily_limit",
    "hourly_limit",
    "rate_per_minute",
    "active",
    "outbound_traffic",
    "from_filter",
    "sequence",
)


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    limit_unit = fields.Selection(
        [
            (quota.MESSAGE, "SMTP messages"),
            (quota.RECIPIENT, "Recipients"),
        ],
        "Limits Count",
        default=quota.MESSAGE,
        help="What this server's limits count, as its provider counts it. "
        "SMTP messages: a chatter post to five followers is five messages. "
        "Recipients: one message to three addresses counts three (Microsoft "
        "365 and most sending services count recipients). Only what the "
        "server accepted is counted.",
    )
    daily_limit = fields.Integer(
        help="What this server may send per day (the company's calendar day), "
        "in the unit of Limits Count. A mail over it sends the messages that "
        "fit and holds the others until the next day; it is never failed. "
        "0: no limit.",
    )
    hourly_limit = fields.Integer(
        help="What this server may send per hour, in the unit of Limits Count; "
        "the rest waits for the next hour. 0: no limit.",
    )
    rate_per_minute = fields.Integer(
        "Rate per Minute",
        help="What this server may send per minute, in the unit of Limits "
        "Count; the rest waits for the next minute. 0: no limit.",
    )
    sent_today = fields.Integer(
        compute="_compute_sent_today",
        groups="base.group_system",
        help="What this server accepted today, in the unit of Limits Count: "
        "messages or recipients. Refusals and deferrals are not counted.",
    )

    limit_time_zone = fields.Char(
        "Windows' Time Zone",
        compute="_compute_limit_time_zone",
        help="The day and hour the limits count start at midnight and on the "
        "hour in this time zone: the company's, set on its address.",
    )

    def _compute_limit_time_zone(self):
        tz = self.env["mail.delivery.log"]._company_tz()
        text = (
            tz
            if self.env.company.partner_id.tz
            else _("UTC (the company's address has no time zone)")
        )
        for server in self:
            server.limit_time_zone = text

    def _compute_sent_today(self):
        usage = self.env["mail.delivery.log"]._count_usage_today(self.ids)
        for server in self:
            messages, recipients = usage.get(server._origin.id, (0, 0))
            server.sent_today = (
                recipients if server.limit_unit == quota.RECIPIENT else messages
            )

    @api.constrains("daily_limit", "hourly_limit", "rate_per_minute")
    def _check_delivery_limits(self):
        labels = {
            "daily_limit": _("Daily Limit"),
            "hourly_limit": _("Hourly Limit"),
            "rate_per_minute": _("Rate per Minute"),
        }
        for server in self:
            for name, label in labels.items():
                if server[name] < 0:
                    raise ValidationError(
                        _(
                            "%(field)s of %(server)s: type 0 for no limit, or a "
                            "number of messages or recipients.",
                            field=label,
                            server=server.name,
                        )
                    )

    def _get_server_limits(self):
        """This server's limits as ``tools.quota`` reads them."""
        self.ensure_one()
        return quota.ServerLimits(
            self.limit_unit or quota.MESSAGE,
            self.daily_limit,
            self.hourly_limit,
            self.rate_per_minute,
        )

    def write(self, vals):
        result = super().write(vals)
        if any(name in vals for name in LIMIT_FIELDS):
            self._release_held_mail()
        return result

    def _release_held_mail(self):
        """Mail held for a limit of these servers (or of the database) is
        due now: the next queue run sends what fits and holds the rest again,
        its reason updated. The queue is woken for it."""
        Mail = self.env["mail.mail"].sudo()
        domain = [("state", "=", "outgoing"), ("delivery_hold", "!=", False)]
        if self:
            domain += [
                "|",
                ("delivery_hold", "=", "database_day"),
                ("routing_server_id", "in", self.ids),
            ]
        return Mail.search(domain)._make_due_now()

    def _take_failover_batch(self, run, server):
        """Whether this server, a failover target, may take the batch meant
        for ``server`` within its own limits; if so the batch counts on it
        and no longer on ``server``. The whole batch or nothing: core sends
        the batch on one session."""
        self.ensure_one()
        if run.quotas is None or not run.batch_mail_ids:
            return True
        allowance = run.quotas.allowance(self.id)
        if allowance is None:
            return True
        missing = [i for i in run.batch_mail_ids if i not in run.fanouts]
        if missing:
            run.fanouts.update(self.env["mail.mail"]._get_fan_outs(missing))
        fanouts = [run.fanouts[i] for i in run.batch_mail_ids]
        if not allowance.fits(fanouts):
            _logger.info(
                "Mail queue: %s is at its limits, the batch for %s does not "
                "fail over to it",
                self.name,
                server.name,
            )
            return False
        allowance.take(fanouts)
        own = run.quotas.allowance(server.id)
        if own is not None:
            own.give_back(fanouts)
        return True
