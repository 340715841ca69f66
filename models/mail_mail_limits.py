"""mail.mail: daily and per-minute limits.

What may go now, and what waits for the next window.
"""

import logging

from odoo import _, fields, models

from ..tools import delivery, quota
from ..tools.run import Batch

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

    def _get_delivery_limiter(self):
        """A function (server id, mail ids) -> the ids that may go now.

        Counts what was sent today (the company's calendar day) and this
        minute from the delivery log, once per queue run, then keeps the
        count as batches are handed out. The others are deferred to the
        start of the next window. No limit set: no query at all.
        """
        run = self.env.context.get("mail_outbound_run")
        Server = self.env["ir.mail_server"].sudo()
        db_limit = self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.daily_limit"
        )
        limited = Server.search(
            ["|", ("daily_limit", ">", 0), ("rate_per_minute", ">", 0)]
        )
        if run is None or not (db_limit or limited):
            return lambda server_id, mail_ids: mail_ids
        Log = self.env["mail.delivery.log"].sudo()
        now = fields.Datetime.now()
        day_start, day_end = quota.day_window(now, Log._company_tz())
        minute_start, minute_end = quota.minute_window(now)
        day_counts, day_total = Log._count_sent(day_start)
        minute_counts = Log._count_sent(minute_start)[0]
        used = {"total": day_total}

        def limit(server_id, mail_ids):
            server = Server.browse(server_id) if server_id else Server
            granted = quota.tightest(
                [
                    quota.allowance(db_limit, used["total"], day_end, "database_day"),
                    quota.allowance(
                        server.daily_limit,
                        day_counts.get(server_id, 0),
                        day_end,
                        "server_day",
                    ),
                    quota.allowance(
                        server.rate_per_minute,
                        minute_counts.get(server_id, 0),
                        minute_end,
                        "server_minute",
                    ),
                ]
            )
            now_ids, later_ids = quota.split(mail_ids, granted)
            used["total"] += len(now_ids)
            day_counts[server_id] = day_counts.get(server_id, 0) + len(now_ids)
            minute_counts[server_id] = minute_counts.get(server_id, 0) + len(now_ids)
            if later_ids:
                self.browse(later_ids)._defer_for_limit(granted, server, run, now)
            return now_ids

        return limit

    def _defer_for_limit(self, granted, server, run, now):
        if granted.limit == "database_day":
            reason = _(
                "The database's daily limit of %(limit)s mails is reached: this "
                "mail waits for the next day, from %(when)s (UTC).",
                limit=granted.value,
                when=fields.Datetime.to_string(granted.defer_until),
            )
        elif granted.limit == "server_day":
            reason = _(
                "The daily limit of %(limit)s mails of %(server)s is reached: this "
                "mail waits for the next day, from %(when)s (UTC).",
                limit=granted.value,
                server=server.name,
                when=fields.Datetime.to_string(granted.defer_until),
            )
        else:
            reason = _(
                "%(server)s sends at most %(limit)s mails a minute: this mail "
                "waits for the next minute.",
                limit=granted.value,
                server=server.name,
            )
        self.write(
            {
                "scheduled_date": granted.defer_until,
                "delivery_deferred": True,
                "failure_reason": reason,
            }
        )
        self._trigger_queue_at(granted.defer_until)
        limit_failure = delivery.Failure.held(reason)
        for mail in self:
            run.logs.extend(
                mail._prepare_delivery_log_values(
                    [],
                    run,
                    "deferred",
                    now,
                    granted.defer_until,
                    limit_failure,
                    # a limit is no attempt: no failover of a batch applies
                    batch=Batch(),
                )
            )
