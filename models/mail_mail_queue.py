"""mail.mail: claims, batch marks, hand-over records, settlement."""

import json
import logging
import threading
import uuid
from datetime import timedelta

from odoo import _, api, fields, models, sql_db
from odoo.exceptions import AccessError, UserError

from ..tools import delivery, settings

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

    @api.model
    def process_email_queue(self, ids=None, batch_size=1000):
        """Claim the due mails before sending, so workers share the queue.

        Core picks its batch with a plain SELECT: two workers running at once
        pick the same mails and one of them aborts on a serialisation error.
        Here the batch is claimed with ``FOR UPDATE SKIP LOCKED`` and the
        claim committed, so a second worker takes the next mails. A claim is
        only ever released by its own worker or, once that worker is dead,
        by the settlement of what it handed over (``_recover_claims``): no
        mail of a dead worker is sent again before that.

        Only the superuser (the cron) and system administrators may run the
        queue: anyone else is refused before anything is claimed.
        """
        self._check_queue_access()
        batch_size = self._get_queue_batch_size(batch_size)
        # a system service: an administrator runs it as the cron does
        self = self.sudo()  # noqa: PLW0642
        testing = getattr(threading.current_thread(), "testing", False)
        token = uuid.uuid4().hex
        self._recover_claims()
        claimed = self._claim_for_sending(token, ids, batch_size)
        if not testing:
            self.env.cr.commit()  # pylint: disable=invalid-commit
        if not claimed:
            return None
        try:
            # core searches the newest batch_size * 10 due mails, then keeps
            # those in ids: claimed mails outside that window would never be
            # sent. A filter on the claimed ids makes its search find them.
            filters = [*self.env.context.get("filters", []), ("id", "in", claimed)]
            return super(
                MailMail,
                self.with_context(mail_outbound_claim=token, filters=filters),
            ).process_email_queue(ids=claimed, batch_size=batch_size)
        finally:
            self._release_claims(token)
            if not ids:
                self.env["ir.cron"]._notify_progress(
                    done=len(claimed), remaining=self._count_due()
                )

    @api.model
    def _check_queue_access(self):
        if not (self.env.su or self.env.is_system()):
            raise AccessError(
                _(
                    "Only system administrators may run the outgoing mail queue; "
                    "it is run by its scheduled action."
                )
            )

    @api.model
    def _get_queue_batch_size(self, batch_size):
        asked = settings.valid_batch_size(batch_size)
        if asked is None:
            raise UserError(
                _(
                    "Batch size: type a number of mails from 1 to %(max)s.",
                    max=settings.MAX_BATCH_SIZE,
                )
            )
        raw = (
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("mail.mail.queue.batch.size")
        )
        value, warning = settings.batch_size(raw, asked)
        if warning:
            _logger.warning("Mail queue: %s", warning)
        return value

    @api.model
    def _claim_timeout(self):
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.claim_timeout"
        )

    @api.model
    def _claim_for_sending(self, token, ids, limit):
        # the claim is SQL: pending ORM writes on the queue must be in first
        self.flush_model()
        now = fields.Datetime.now()
        # core sends the newest due mails first ("id desc"): claim the same.
        # Only unclaimed mails: a claim ends with its run (_release_claims)
        # or with its settlement (_recover_claims), never by its age alone
        query = """
            UPDATE mail_mail SET delivery_claim = %s, delivery_claim_date = %s,
                                 delivery_deferred = FALSE
             WHERE id IN (
                SELECT id FROM mail_mail
                 WHERE state = 'outgoing'
                   AND (scheduled_date IS NULL OR scheduled_date <= %s)
                   AND delivery_claim IS NULL
                   AND (%s IS NULL OR id = ANY(%s))
                 ORDER BY id DESC
                 LIMIT %s
                 FOR UPDATE SKIP LOCKED)
            RETURNING id
        """
        id_list = list(ids) if ids else None
        self.env.cr.execute(
            query,
            # core reads a batch size of 0 as "no limit" (LIMIT NULL here)
            (
                token,
                now,
                now,
                id_list,
                id_list,
                (limit * 10 if ids else limit) or None,
            ),
        )
        claimed = [row[0] for row in self.env.cr.fetchall()]
        self.invalidate_model(
            ["delivery_claim", "delivery_claim_date", "delivery_deferred"]
        )
        return sorted(claimed)

    @api.model
    def _release_claims(self, token):
        self.flush_model()
        # a mail recorded as handed over but still queued as if untried: its
        # outcome was never committed (see _send). Keep the records and the
        # claim for _recover_claims, which settles them once it expires.
        self.env.cr.execute(
            """
            SELECT 1 FROM mail_outbound_handover handover
              JOIN mail_mail mail ON mail.id = handover.mail_id
             WHERE handover.claim = %s AND mail.state = 'outgoing'
               AND NOT COALESCE(mail.delivery_deferred, FALSE)
             LIMIT 1
            """,
            (token,),
        )
        if self.env.cr.fetchone():
            _logger.warning(
                "Mail queue: mails handed over by this run are not recorded as "
                "such; they are settled once the claim expires"
            )
            return
        self.env.cr.execute(
            "DELETE FROM mail_outbound_batch WHERE claim = %s", (token,)
        )
        self.env.cr.execute(
            "DELETE FROM mail_outbound_handover WHERE claim = %s", (token,)
        )
        self.env.cr.execute(
            "UPDATE mail_mail SET delivery_claim = NULL, delivery_claim_date = NULL "
            "WHERE delivery_claim = %s",
            (token,),
        )
        self.invalidate_model(["delivery_claim", "delivery_claim_date"])

    def _mark_batch(self, claim, mail_ids, width=1):
        """Say, durably, which mails go to a server now, in which order.

        A batch is sent mail by mail in this order, on up to ``width``
        sessions at once (``mail.outbound.queue``); each finished mail is
        recorded (_record_handover) before its session takes the next one.
        If the worker dies, the first ``width`` mails of the list neither
        committed nor recorded include the ones it was handing over:
        _settle_interrupted fails those as "may have been delivered" and
        leaves the later ones to a later run. One INSERT per
        batch, committed synchronously: the mark must outlive a dead worker
        and a crash of PostgreSQL itself.
        """
        tracker = self.env.context.get("mail_outbound_tracker")
        if tracker.side_cursor is None:
            # one connection for the whole run
            tracker.side_cursor = sql_db.db_connect(self.env.cr.dbname).cursor()
            # whatever the server's default: a record lost in a crash of
            # PostgreSQL is a mail sent twice (one WAL flush per hand-over)
            tracker.side_cursor.execute("SET synchronous_commit TO on")
        tracker.side_cursor.execute(
            "INSERT INTO mail_outbound_batch (claim, mail_ids, width, since) "
            "VALUES (%s, %s::jsonb, %s, now() AT TIME ZONE 'UTC')",
            (claim, json.dumps(list(mail_ids)), max(1, int(width or 1))),
        )
        tracker.side_cursor.commit()

    @api.model
    def _recover_claims(self):
        """Settle, then release, the claims of workers that died.

        One rule: a claim is dead when neither its mails' claim date nor its
        batch marks were renewed within the claim timeout (a live worker
        renews both in time, see _commit_chunk). Its hand-over records are
        settled and its mails released in one transaction; until then no
        other worker can claim them (_claim_for_sending takes only unclaimed
        mails). Two workers recovering at once serialise on the marks' rows.
        """
        self.flush_model()
        stale = fields.Datetime.now() - timedelta(seconds=self._claim_timeout())
        self.env.cr.execute(
            """
            SELECT claim FROM (
                SELECT delivery_claim AS claim, delivery_claim_date AS seen
                  FROM mail_mail WHERE delivery_claim IS NOT NULL
                 UNION ALL
                SELECT claim, since FROM mail_outbound_batch
            ) claims GROUP BY claim HAVING max(seen) < %s
            """,
            (stale,),
        )
        claims = [claim for (claim,) in self.env.cr.fetchall()]
        if claims:
            self._settle_interrupted(claims, log_recovered=True)

    @api.model
    def _settle_interrupted(self, claims, handing_over=True, log_recovered=False):
        """Give the mails of interrupted batches the outcome they really had.

        The batch marks of ``claims`` (mail_outbound_batch) are taken out
        with the mails their worker recorded as handed over on its side
        connection (mail_outbound_handover). Of those whose state its
        transaction never committed, delivered ones are marked sent (or
        failed for the refused recipients of a partial delivery), never sent
        again; refused or deferred ones stay queued. In each batch, the
        first mail the worker never finished was being handed over when it
        stopped: the server may have accepted it, so it is not sent again,
        but said so. ``handing_over=False``: the worker knows it had not
        started that hand-over, so that mail simply stays queued. The rest
        of a batch was never tried and goes with a later run. A batch sent
        on several sessions had up to that many mails in hand-over: its first
        that many unfinished mails are failed so.
        """
        self.flush_model()
        self.env.cr.execute(
            "DELETE FROM mail_outbound_batch WHERE claim = ANY(%s) "
            "RETURNING claim, mail_ids, width",
            (list(claims),),
        )
        marks = self.env.cr.fetchall()
        self.env.cr.execute(
            "DELETE FROM mail_outbound_handover WHERE claim = ANY(%s) "
            "RETURNING mail_id, delivered, partner_ids, failure_type, failure_reason",
            (list(claims),),
        )
        handovers = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        mails = self.browse({i for _claim, ids, _width in marks for i in ids}).exists()
        pending = set(
            mails.filtered(
                lambda mail: mail.state == "outgoing" and not mail.delivery_deferred
            ).ids
        )
        delivered_ids, interrupted_ids = delivery.settle_interrupted(
            [ids for _claim, ids, _width in marks],
            pending,
            {mail_id: values[0] for mail_id, values in handovers.items()},
            [width for _claim, _ids, width in marks],
        )
        if not handing_over:
            interrupted_ids = []
        logs = []
        now = fields.Datetime.now()
        for mail in self.browse(delivered_ids):
            _delivered, partner_ids, failure_type, failure_reason = handovers[mail.id]
            # the reason the worker wrote (partial delivery, or a session
            # lost after the end of DATA)
            reason = failure_type and (failure_reason or failure_type)
            mail.write(
                {
                    "state": "exception" if failure_type else "sent",
                    "failure_type": failure_type or False,
                    "failure_reason": reason or False,
                    "delivery_claim": False,
                    "delivery_claim_date": False,
                }
            )
            if log_recovered:
                logs += mail._prepare_settled_log_values(
                    "failed" if failure_type else "sent",
                    _(
                        "Accepted by the server; recorded after the worker "
                        "sending it stopped."
                    ),
                    now,
                )
            # core's own post-processing: notifications, auto-delete
            mail.with_context(mail_outbound_tracker=None)._postprocess_sent_message(
                partner_ids or [], failure_reason=reason, failure_type=failure_type
            )
        interrupted = self.browse(interrupted_ids)
        if interrupted:
            reason = _(
                "The worker sending this mail stopped during the hand-over to "
                "the server: it may have been delivered. It is not sent "
                "again by itself; check the server's log or the recipient, "
                "then Retry if it did not arrive."
            )
            interrupted.write(
                {
                    "state": "exception",
                    "failure_type": "mail_smtp",
                    "failure_reason": reason,
                    "delivery_claim": False,
                    "delivery_claim_date": False,
                }
            )
            for mail in interrupted:
                logs += mail._prepare_settled_log_values("failed", reason, now)
        self.env["mail.delivery.log"].sudo()._write_logs(logs)
        # settled: the rest of these claims was never tried, free to go
        self.flush_model()
        self.env.cr.execute(
            "UPDATE mail_mail SET delivery_claim = NULL, delivery_claim_date = NULL "
            "WHERE delivery_claim = ANY(%s)",
            (list(claims),),
        )
        self.invalidate_model(["delivery_claim", "delivery_claim_date"])

    def _prepare_settled_log_values(self, outcome, reason, now):
        """The log line of an attempt whose worker stopped before logging it."""
        values = self._prepare_delivery_log_values(
            [], delivery.AttemptTracker(), outcome, now
        )
        for line in values:
            line["reason"] = reason
        return values

    @api.model
    def _count_due(self):
        now = fields.Datetime.now()
        return self.search_count(
            [
                ("state", "=", "outgoing"),
                "|",
                ("scheduled_date", "=", False),
                ("scheduled_date", "<=", now),
            ]
        )
