from datetime import timedelta

from odoo import api, fields, models, tools
from odoo.tools import SQL

from ..tools import quota


class MailDeliveryLog(models.Model):
    """One delivery attempt of one mail: who sent it where, and what came back.

    Written by the send pipeline for every attempt (sent, deferred or failed),
    so that an administrator can answer "what happened to this mail?" and
    "how is this server doing?" without reading server logs. Kept for a
    configurable number of days (``mail_outbound.delivery_log_days``).
    """

    _name = "mail.delivery.log"
    _description = "Mail Delivery Attempt"
    _order = "create_date desc, id desc"
    _rec_name = "subject"

    mail_id = fields.Many2one(
        "mail.mail",
        ondelete="set null",
        # sent mails are often auto-deleted: the log outlives them
        index="btree_not_null",
    )
    message_id = fields.Char("Message-ID", index=True)
    subject = fields.Char()
    mail_server_id = fields.Many2one(
        "ir.mail_server", "Server", ondelete="set null", index=True
    )
    server_name = fields.Char(help="Kept when the server record is deleted.")
    email_from = fields.Char("Sent As")
    recipients = fields.Char(
        "To",
        help="The mail's recipients: its To addresses and the partners it notifies.",
    )
    recipient_count = fields.Integer("Recipients")
    accepted_messages = fields.Integer(
        "Messages Accepted",
        help="SMTP messages the server accepted in this attempt: one per "
        "notified partner, one for the To and Cc addresses. What limits "
        "counted in messages count.",
    )
    accepted_recipients = fields.Integer(
        "Recipients Accepted",
        help="Recipients of the messages the server accepted: what limits "
        "counted in recipients count.",
    )
    traffic = fields.Selection(
        [("transactional", "Transactional"), ("mass", "Mass Mailing")]
    )
    attempt = fields.Integer(default=1)
    outcome = fields.Selection(
        [
            ("sent", "Sent"),
            ("deferred", "Deferred"),
            ("failed", "Failed"),
            # a server that could not be reached; the mail went to the next one
            ("failed_over", "Failed Over"),
            # no attempt: a sending limit holds the mail until its next window
            ("held", "Waiting for a Limit"),
        ],
        required=True,
        index=True,
    )
    smtp_code = fields.Integer("SMTP Code")
    smtp_reply = fields.Char("SMTP Reply")
    reason = fields.Text()
    failure_stage = fields.Char(
        "Failed At",
        help="The step that failed (connect, auth, mail, rcpt, data...); "
        '"limit": the mail waits for a sending limit, which is no failure.',
    )
    next_attempt = fields.Datetime()
    failover_from_id = fields.Many2one(
        "ir.mail_server", "Failed Over From", ondelete="set null"
    )
    duration_ms = fields.Integer("Duration (ms)", aggregator="avg")
    company_id = fields.Many2one("res.company", index=True)
    event_ids = fields.One2many("mail.delivery.event", "log_id", "Events")

    @api.model
    def _write_attempts(self, run):
        """Write the attempts a send collected, in one INSERT."""
        if run.logs:
            logs, run.logs = run.logs, []
            self._write_logs(logs)

    @api.model
    def _write_logs(self, logs):
        """Log lines, with server names, and mails deleted since left out."""
        if logs:
            server_names = dict(
                self.env["ir.mail_server"]
                .sudo()
                .browse(
                    {log["mail_server_id"] for log in logs if log["mail_server_id"]}
                )
                .mapped(lambda server: (server.id, server.name))
            )
            # sent mails are often auto-deleted by now: keep the Message-ID only
            alive = set(
                self.env["mail.mail"]
                .browse({log["mail_id"] for log in logs})
                .exists()
                .ids
            )
            for log in logs:
                log["server_name"] = server_names.get(log["mail_server_id"], "")
                if log["mail_id"] not in alive:
                    log["mail_id"] = False
            self._insert(logs)

    def _insert(self, logs):
        """One multi-row INSERT, without the ORM.

        A queue run writes one line per mail: through ``create()`` that is
        about 0.3 ms of Python each, as much as the rest of our per-mail work.
        The values are plain columns (no computed or related field), already
        checked by the code that built them; the caller is sudo anyway.
        """
        columns = [
            "mail_id",
            "message_id",
            "subject",
            "mail_server_id",
            "server_name",
            "email_from",
            "recipients",
            "recipient_count",
            "accepted_messages",
            "accepted_recipients",
            "traffic",
            "attempt",
            "outcome",
            "smtp_code",
            "smtp_reply",
            "reason",
            "failure_stage",
            "next_attempt",
            "failover_from_id",
            "duration_ms",
            "company_id",
        ]
        now, uid = fields.Datetime.now(), self.env.uid
        rows = [
            [log.get(column) or None for column in columns] + [uid, now, uid, now]
            for log in logs
        ]
        query = SQL(
            "INSERT INTO mail_delivery_log (%s, create_uid, create_date, "
            "write_uid, write_date) VALUES %s",
            SQL(", ").join(SQL.identifier(column) for column in columns),
            SQL(", ").join(SQL("%s", tuple(row)) for row in rows),
        )
        self.env.cr.execute(query)
        self.invalidate_model()

    @api.model
    def _find_sent_to(self, message_ids, address):
        """The latest attempt that handed a mail with one of ``message_ids``
        to ``address``, accepted by the server; else an empty recordset.

        A delivery report counts only against a mail really sent to the
        address it names: anyone may write to a bounce address, but only a
        mail we sent carries a Message-ID we logged. ``recipients`` is cut
        at 500 characters; a recipient cut off is then found among the
        partners the mail's message notified.
        """
        email = tools.email_normalize(address or "")
        message_ids = [mid for mid in message_ids if mid]
        if not (email and message_ids):
            return self.browse()
        logs = self.sudo().search(
            [("message_id", "in", message_ids), ("outcome", "=", "sent")]
        )
        for log in logs:
            recipients = {
                tools.email_normalize(item)
                for item in tools.email_split(log.recipients or "")
            }
            if email in recipients:
                return log
        for log in logs.filtered(lambda log: len(log.recipients or "") >= 490):
            notified = (
                self.env["mail.message"]
                .sudo()
                .search([("message_id", "=", log.message_id)])
                .notification_ids.res_partner_id
            )
            if email in notified.mapped("email_normalized"):
                return log
        return self.browse()

    @api.model
    def _count_usage(self, starts, server_ids=None):
        """What servers accepted since each of ``starts`` (``{window: start}``):
        ``{server_id: {window: (messages, recipients)}}`` (``server_id`` None:
        the command-line server) and, per window, the messages of all.

        Lines written before these counts existed (NULL) count as core
        counted them: one message for a mail sent, none for the others.
        """
        self.flush_model()
        windows = list(starts)
        if not windows:
            return {}, {}
        columns = SQL(", ").join(
            SQL(
                "COALESCE(SUM(messages) FILTER (WHERE create_date >= %s), 0), "
                "COALESCE(SUM(recipients) FILTER (WHERE create_date >= %s), 0)",
                starts[window],
                starts[window],
            )
            for window in windows
        )
        query = SQL(
            """
            SELECT mail_server_id, %s FROM (
                SELECT mail_server_id, create_date,
                       COALESCE(accepted_messages, (outcome = 'sent')::int)
                           AS messages,
                       COALESCE(accepted_recipients, CASE WHEN outcome = 'sent'
                                THEN recipient_count ELSE 0 END) AS recipients
                  FROM mail_delivery_log
                 WHERE create_date >= %s AND outcome != 'held' %s
            ) accepted GROUP BY mail_server_id
            """,
            columns,
            min(starts.values()),
            SQL("AND mail_server_id = ANY(%s)", list(server_ids))
            if server_ids is not None
            else SQL(""),
        )
        self.env.cr.execute(query)
        usage, totals = {}, dict.fromkeys(windows, 0)
        for row in self.env.cr.fetchall():
            per_window = {}
            for index, window in enumerate(windows):
                messages, recipients = row[1 + 2 * index], row[2 + 2 * index]
                per_window[window] = (messages, recipients)
                totals[window] += messages
            usage[row[0] or None] = per_window
        return usage, totals

    @api.model
    def _count_usage_today(self, server_ids):
        """``{server_id: (messages, recipients)}`` accepted today."""
        start, _end = quota.day_window(fields.Datetime.now(), self._company_tz())
        usage = self._count_usage({quota.DAY: start}, server_ids)[0]
        return {server_id: used[quota.DAY] for server_id, used in usage.items()}

    @api.model
    def _count_messages_today(self):
        """Messages every server accepted today (the database's limit)."""
        start, _end = quota.day_window(fields.Datetime.now(), self._company_tz())
        return self._count_usage({quota.DAY: start})[1][quota.DAY]

    @api.model
    def _company_tz(self):
        return self.env.company.partner_id.tz or "UTC"

    @api.model
    def _gc_delivery_log(self):
        """Cron: drop attempts older than the retention setting."""
        days = self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.delivery_log_days"
        )
        if days <= 0:
            return
        limit = fields.Datetime.now() - timedelta(days=days)
        # this table grows by one row per attempt: delete in SQL, not by ORM
        self.env.cr.execute(
            "DELETE FROM mail_delivery_log WHERE create_date < %s", (limit,)
        )
