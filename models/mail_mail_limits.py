"""mail.mail: sending limits, counted in each provider's units.

Before a batch goes to its server, each mail's messages (``tools.quota``
``FanOut``) are granted against the limits of that server and of the
database. A mail that fits goes; one that fits in part is split, so that
the messages that fit go now and the others wait in a mail of their own;
one that does not fit waits, held (``delivery_hold``), for the window the
limit names. Holding is no attempt and no failure: the log says "Waiting
for a Limit", not "Deferred", and no server reply is made up.
"""

import logging
from collections import defaultdict
from zoneinfo import ZoneInfo

from odoo import _, api, fields, models
from odoo.tools.mail import email_split

from ..tools import quota

_logger = logging.getLogger(__name__)

HOLDS = [
    ("database_day", "The database's daily limit"),
    ("server_day", "The server's daily limit"),
    ("server_hour", "The server's hourly limit"),
    ("server_minute", "The server's rate per minute"),
]


class MailMail(models.Model):
    _inherit = "mail.mail"

    delivery_hold = fields.Selection(
        HOLDS,
        "Waiting For",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="A sending limit holds this mail until its next window (the "
        "Scheduled Send Date); it is no failure. Raising the limit releases "
        "it at once.",
        prefetch=False,
    )
    delivery_hold_data = fields.Json(readonly=True, copy=False, prefetch=False)
    delivery_hold_reason = fields.Text(
        "Why It Waits", compute="_compute_delivery_hold_reason"
    )

    @api.depends("delivery_hold", "delivery_hold_data", "scheduled_date")
    def _compute_delivery_hold_reason(self):
        for mail in self:
            mail.delivery_hold_reason = mail.delivery_hold and mail._describe_hold(
                mail.delivery_hold, mail.delivery_hold_data or {}, mail.scheduled_date
            )

    @api.model
    def _describe_hold(self, code, data, until):
        """The sentence for a hold, in the reader's language: codes and
        values are stored, the sentence is made when shown."""
        unit = _("recipients") if data.get("unit") == quota.RECIPIENT else _("messages")
        values = {
            "limit": data.get("limit", 0),
            "unit": unit,
            "server": data.get("server", ""),
            "when": "",
            "tz": "",
        }
        if until:
            # in the reader's time zone, named: the Next Attempt field beside
            # the reason shows the same time
            tz = self.env.user.tz or self.env.company.partner_id.tz or "UTC"
            local = until.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz))
            values.update(when=local.strftime("%Y-%m-%d %H:%M:%S"), tz=tz)
        if code == "database_day":
            return _(
                "The database's daily limit of %(limit)s %(unit)s is reached: "
                "this mail waits for the next day, from %(when)s (%(tz)s).",
                **values,
            )
        if code == "server_day":
            return _(
                "The daily limit of %(limit)s %(unit)s of %(server)s is reached: "
                "this mail waits for the next day, from %(when)s (%(tz)s).",
                **values,
            )
        if code == "server_hour":
            return _(
                "The hourly limit of %(limit)s %(unit)s of %(server)s is "
                "reached: this mail waits for the next hour, from %(when)s (%(tz)s).",
                **values,
            )
        return _(
            "%(server)s sends at most %(limit)s %(unit)s a minute: this mail "
            "waits for the next minute, from %(when)s (%(tz)s).",
            **values,
        )

    def _get_delivery_limiter(self, run):
        """A function (server id, mail ids) -> the ids that may go now.

        Counts what servers accepted in each window (the delivery log),
        once per run, then keeps the count as batches are handed out. No
        limit set, or no run: every mail goes, and no query is made.
        """
        Server = self.env["ir.mail_server"].sudo()
        db_limit = self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.daily_limit"
        )
        limited = Server.search(
            [
                "|",
                "|",
                ("daily_limit", ">", 0),
                ("hourly_limit", ">", 0),
                ("rate_per_minute", ">", 0),
            ]
        )
        if run is None or not (db_limit or limited):
            return lambda server_id, mail_ids: mail_ids
        run.quotas = self._prepare_quotas(db_limit, limited)

        def limit(server_id, mail_ids):
            allowance = run.quotas.allowance(server_id or None)
            if allowance is None:
                return mail_ids
            fanouts = self._get_fan_outs(mail_ids)
            run.fanouts.update(fanouts)
            go, held = [], defaultdict(list)
            for mail in self.browse(mail_ids):
                grant = allowance.grant(fanouts[mail.id])
                if grant.whole:
                    go.append(mail.id)
                    continue
                if grant.messages:
                    go.append(mail.id)
                    mail = mail._split_for_limit(grant.messages)
                held[id(grant.held_by)].append((grant.held_by, mail.id))
            server = Server.browse(server_id) if server_id else Server
            for pairs in held.values():
                self.browse([mail_id for _limit, mail_id in pairs])._hold_for_limit(
                    pairs[0][0], server, run
                )
            return go

        return limit

    @api.model
    def _prepare_quotas(self, db_limit, servers):
        """The run's :class:`~..tools.quota.Quotas`: each window's start and
        end, and what servers accepted in it."""
        Log = self.env["mail.delivery.log"].sudo()
        now = fields.Datetime.now()
        tz = Log._company_tz()
        windows = {kind: quota.window(kind, now, tz) for kind in quota.WINDOWS}
        usage, totals = Log._count_usage(
            {kind: start for kind, (start, _end) in windows.items()}
        )
        return quota.Quotas(
            db_limit,
            {server.id: server._get_server_limits() for server in servers},
            usage,
            totals[quota.DAY],
            windows,
        )

    def _get_fan_outs(self, mail_ids):
        """``{mail_id: FanOut}``: the SMTP messages each mail will send, as
        core's ``_prepare_outgoing_list`` builds them (To and Cc together,
        then one per partner in core's order). One query for the batch."""
        self.env["mail.mail"].flush_model(["email_to", "email_cc", "recipient_ids"])
        self.env.cr.execute(
            """
            SELECT mail.id, mail.email_to, mail.email_cc,
                   ARRAY(SELECT partner.email
                           FROM mail_mail_res_partner_rel rel
                           JOIN res_partner partner
                             ON partner.id = rel.res_partner_id
                          WHERE rel.mail_mail_id = mail.id
                          ORDER BY partner.complete_name, partner.id DESC)
              FROM mail_mail mail
             WHERE mail.id = ANY(%s)
            """,
            (list(mail_ids),),
        )
        return {
            mail_id: quota.fan_out(
                len(email_split(email_to or "")),
                len(email_split(email_cc or "")),
                [len(email_split(email or "")) for email in partner_emails],
            )
            for mail_id, email_to, email_cc, partner_emails in self.env.cr.fetchall()
        }

    def _split_for_limit(self, messages):
        """Keep this mail's first ``messages`` messages here and move the
        others to a new mail, returned, on the same message (same
        Message-ID, as core would send them). Its partners' notifications
        follow it, so that the chatter says what each recipient got.
        """
        self.ensure_one()
        partners = self.recipient_ids  # core's order
        own_message = 1 if (self.email_to or self.email_cc) else 0
        moved = partners[max(messages - own_message, 0) :]
        rest = self.copy(
            {
                "mail_message_id": self.mail_message_id.id,
                "email_to": False,
                "email_cc": False,
                "recipient_ids": [(6, 0, moved.ids)],
                "state": "outgoing",
            }
        )
        self.recipient_ids = [(3, partner.id) for partner in moved]
        if not self.is_notification:
            # core deletes a non-notification mail's message with the mail:
            # that would take the rest with it
            self.auto_delete = False
        self.env["mail.notification"].sudo().search(
            [
                ("mail_mail_id", "=", self.id),
                ("res_partner_id", "in", moved.ids),
            ]
        ).mail_mail_id = rest
        if "mailing_trace_ids" in self._fields and self.mailing_trace_ids:
            # one trace per mail: a mailing's mail has one recipient, never
            # split; say so if a custom one ever is
            _logger.warning(
                "Mail %s of a mailing split for a limit: its trace follows "
                "the first part",
                self.id,
            )
        _logger.info(
            "Mail %s: %s message(s) go now, %s wait for a limit in mail %s",
            self.id,
            messages,
            len(moved),
            rest.id,
        )
        return rest

    def _hold_for_limit(self, limit, server, run):
        """Hold these mails until ``limit``'s next window: no attempt, no
        failure; one log line each saying what they wait for."""
        now = fields.Datetime.now()
        data = {"limit": limit.value, "unit": limit.unit, "server": server.name or ""}
        self.write(
            {
                "scheduled_date": limit.window_end,
                "delivery_hold": limit.code,
                "delivery_hold_data": data,
            }
        )
        self._trigger_queue_at(limit.window_end)
        reason = self._describe_hold(limit.code, data, limit.window_end)
        for mail in self:
            run.logs.append(mail._prepare_hold_log_values(run, server, reason, now))
        _logger.info(
            "Mail queue: %s mail(s) wait for %s of %s until %s",
            len(self),
            limit.code,
            server.name or "the database",
            limit.window_end,
        )

    def _prepare_hold_log_values(self, run, server, reason, now):
        self.ensure_one()
        known = run.decisions.get(self.id)
        return {
            "mail_id": self.id,
            "message_id": self.message_id,
            "subject": (self.subject or "")[:200],
            "mail_server_id": server.id or False,
            "email_from": known.decision.header_from
            if known
            else self.routing_email_from,
            "recipients": ", ".join(
                filter(None, [self.email_to, *self.recipient_ids.mapped("email")])
            )[:500],
            "traffic": self.routing_traffic or "transactional",
            "attempt": (self.delivery_attempts or 0) + 1,
            "outcome": "held",
            "failure_stage": "limit",
            "reason": reason,
            "next_attempt": self.scheduled_date,
            "company_id": known.company_id
            if known
            else self._get_outbound_company().id,
        }
