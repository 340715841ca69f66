"""mail.outbound.queue: claims, batch marks, hand-over records, settlement,
commit cadence.

A queue run claims its mails (``FOR UPDATE SKIP LOCKED``, committed), marks
each batch before it goes to a server and records each finished mail on a
side connection, commits every ``queue_commit_every`` mails, and releases
its claim; a dead or failed run's marks and records are settled by the
next one. ``mail.mail.process_email_queue`` and ``send`` delegate here.
"""

import logging
from datetime import timedelta

import psycopg2

from odoo import _, api, fields, models, sql_db

from ..tools import delivery, journal

_logger = logging.getLogger(__name__)


class MailOutboundQueue(models.AbstractModel):
    _inherit = "mail.outbound.queue"

    @api.model
    def _claim_timeout(self):
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.claim_timeout"
        )

    @api.model
    def _get_commit_every(self):
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.queue_commit_every"
        )

    @api.model
    def _claim_for_sending(self, token, ids, limit):
        Mail = self.env["mail.mail"]
        # the claim is SQL: pending ORM writes on the queue must be in first
        Mail.flush_model()
        now = fields.Datetime.now()
        # core sends the newest due mails first ("id desc"): claim the same.
        # Only unclaimed mails: a claim ends with its run (_release_claims)
        # or with its settlement (_recover_claims), never by its age alone
        query = """
            UPDATE mail_mail SET delivery_claim = %s, delivery_claim_date = %s,
                                 delivery_deferred = FALSE,
                                 delivery_hold = NULL, delivery_hold_data = NULL
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
        Mail.invalidate_model(
            [
                "delivery_claim",
                "delivery_claim_date",
                "delivery_deferred",
                "delivery_hold",
                "delivery_hold_data",
            ]
        )
        return sorted(claimed)

    @api.model
    def _mark_batch(self, run, mail_ids, width=1):
        """Say, durably, which mails go to a server now, in which order.

        A batch is sent mail by mail in this order, on up to ``width``
        sessions at once (``mail.outbound.queue``); each finished mail is
        recorded (_record_handover) before its session takes the next one,
        and each message's end of DATA is marked just before it is sent
        (_mark_data_end_in_loop, ``journal.data_end_marker``). If the worker
        dies, _settle_interrupted fails the unfinished mails so marked as
        "may have been delivered" and leaves the others to a later run.
        One INSERT per batch, committed synchronously under the cron: the
        mark must outlive a dead worker and a crash of PostgreSQL itself.
        """
        if run.journal is None:
            # one journal for the whole run: under the cron a connection of
            # its own (tools/journal.py)
            dbname = self.env.cr.dbname
            run.journal = run.strategy.open_journal(
                lambda: sql_db.db_connect(dbname).cursor(), self.env.cr
            )
        run.journal.mark_batch(run.claim, mail_ids, width)

    @api.model
    def _mark_data_end_in_loop(self, run):
        """Core's loop is about to end the DATA of a message of the mail it
        hands over: mark it durably first (see ``journal.data_end_marker``,
        the same for the parallel sessions). Its messages go in order, one
        ``send_email`` each: the attempts recorded so far say which one."""
        if run.journal is None or not run.batch.current_mail_id:
            return
        batch = run.batch
        item = len(batch.attempts)
        partners = batch.current_partner_ids
        run.journal.mark_data_end(
            run.claim,
            batch.current_mail_id,
            item,
            partners[item] if item < len(partners) else None,
        )

    @api.model
    def _commit_chunk(self, run):
        """Commit the chunk and its log lines; renew the run's claim in time.

        A live worker renews its claim and batch marks once a quarter of the
        claim timeout has passed, so that neither expires under it however
        long the run takes (a slow server), without rewriting every claimed
        row at every commit of a fast run.
        """
        Mail = self.env["mail.mail"]
        # kept until the commit holds: lost with it, they are written after
        logs = list(run.logs)
        self.env["mail.delivery.log"].sudo()._write_attempts(run)
        now = fields.Datetime.now()
        if now - run.claim_renewed > timedelta(seconds=self._claim_timeout() / 4):
            self.env.cr.execute(
                "UPDATE mail_mail SET delivery_claim_date = %s "
                "WHERE delivery_claim = %s",
                (now, run.claim),
            )
            self.env.cr.execute(
                "UPDATE mail_outbound_batch SET since = %s WHERE claim = %s",
                (now, run.claim),
            )
            Mail.invalidate_model(["delivery_claim_date"])
            run.claim_renewed = now
        try:
            run.strategy.commit(self.env.cr, self.env)
        except psycopg2.Error:
            run.logs[:0] = logs
            raise

    @api.model
    def _record_handover_values(
        self, run, mail_ids, delivered, success_pids, failure_type, reason
    ):
        """``_record_handover`` without reading the mails: also when the
        queue's transaction is already lost.

        The parallel sessions hold the records back (``handover_buffer``)
        until :meth:`_flush_handovers`, which they call before any session
        takes another mail: the records of the mails finished meanwhile go
        in one synchronous commit."""
        # core's ``_send`` collects ``res.partner`` records (its
        # ``_prepare_outgoing_list`` gives each message its partner), the
        # parallel sessions the same: the journal keeps their ids
        rows = [
            journal.handover_row(mail_id, delivered, success_pids, failure_type, reason)
            for mail_id in mail_ids
        ]
        if run.handover_buffer is not None:
            run.handover_buffer.extend(rows)
            return
        self._write_handovers(run, rows)

    @api.model
    def _flush_handovers(self, run):
        if run.handover_buffer:
            rows, run.handover_buffer[:] = list(run.handover_buffer), []
            self._write_handovers(run, rows)

    @api.model
    def _write_handovers(self, run, rows):
        run.journal.write_handovers(run.claim, rows)

    @api.model
    def _release_claims(self, token):
        Mail = self.env["mail.mail"]
        Mail.flush_model()
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
            "DELETE FROM mail_outbound_data_end WHERE claim = %s", (token,)
        )
        self.env.cr.execute(
            "UPDATE mail_mail SET delivery_claim = NULL, delivery_claim_date = NULL "
            "WHERE delivery_claim = %s",
            (token,),
        )
        Mail.invalidate_model(["delivery_claim", "delivery_claim_date"])

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
        Mail = self.env["mail.mail"]
        Mail.flush_model()
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
        again; refused or deferred ones stay queued. A mail never finished
        whose session marked the end of DATA of one of its messages
        (mail_outbound_data_end) may have reached its server: it is not
        sent again, but failed as "may have been delivered", per recipient
        (the messages marked before its last one were accepted). Every
        other unfinished mail never reached a recipient and goes with a
        later run. ``handing_over=False``: the worker knows nothing was in
        hand-over, so no mail is in doubt.
        """
        Mail = self.env["mail.mail"]
        Mail.flush_model()
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
        self.env.cr.execute(
            "DELETE FROM mail_outbound_data_end WHERE claim = ANY(%s) "
            "RETURNING mail_id, item, partner_id",
            (list(claims),),
        )
        ended = {}
        for mail_id, item, partner_id in self.env.cr.fetchall():
            ended.setdefault(mail_id, []).append((item, partner_id))
        Partner = self.env["res.partner"].sudo()
        mails = Mail.browse({i for _claim, ids, _width in marks for i in ids}).exists()
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
            ended=ended,
        )
        if not handing_over:
            interrupted_ids = []
        logs = []
        now = fields.Datetime.now()
        for mail in Mail.browse(delivered_ids):
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
            # core's own post-processing: notifications, auto-delete. Core
            # tells a served recipient's notification by its partner record
            # (``notif.res_partner_id not in success_pids``): records again
            served = list(Partner.browse(partner_ids or []))
            mail.with_context(mail_outbound_run=None)._postprocess_sent_message(
                served, failure_reason=reason, failure_type=failure_type
            )
        interrupted = Mail.browse(interrupted_ids)
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
                    # its form offers Send Again, as for a session lost
                    # after the end of DATA
                    "delivery_maybe_delivered": True,
                    "delivery_claim": False,
                    "delivery_claim_date": False,
                }
            )
            for mail in interrupted.with_context(mail_outbound_run=None):
                logs += mail._prepare_settled_log_values("failed", reason, now)
                # core's own post-processing, as for any failed mail, per
                # recipient: the partners whose copies the server accepted
                # before the one in doubt say sent, the others failed with
                # the reason (never left "ready"); mailing traces fail;
                # nothing is deleted
                served = Partner.browse(
                    delivery.served_before_doubt(ended.get(mail.id, []))
                )
                mail._postprocess_sent_message(
                    list(served), failure_reason=reason, failure_type="mail_smtp"
                )
        self.env["mail.delivery.log"].sudo()._write_logs(logs)
        # settled: the rest of these claims was never tried, free to go
        Mail.flush_model()
        self.env.cr.execute(
            "UPDATE mail_mail SET delivery_claim = NULL, delivery_claim_date = NULL "
            "WHERE delivery_claim = ANY(%s)",
            (list(claims),),
        )
        Mail.invalidate_model(["delivery_claim", "delivery_claim_date"])

    @api.model
    def _settle_after_failed_commit(self, run, handing_over=None):
        """The transaction is lost, the SMTP exchanges are not: what was
        delivered is marked so now, never sent again.

        Should the database refuse that too, the records stay on the side
        and the next run settles them once the claim expires
        (``_release_claims`` leaves them).
        """
        if not run.strategy.commits:
            # the journal was written in the lost transaction: the caller's
            # rollback takes the whole run with it, nothing is left to settle
            return
        if handing_over is None:
            # no attempt yet for the mail in hand: its hand-over never started
            handing_over = bool(run.batch.attempts)
        run.strategy.rollback(self.env.cr)
        try:
            self._settle_interrupted([run.claim], handing_over=handing_over)
            run.strategy.commit(self.env.cr)
        except psycopg2.Error:
            _logger.exception(
                "Mail queue: could not record the mails already delivered; "
                "they are settled by a later run once the claim expires"
            )
            run.strategy.rollback(self.env.cr)

    @api.model
    def _count_due(self):
        Mail = self.env["mail.mail"]
        now = fields.Datetime.now()
        return Mail.search_count(
            [
                ("state", "=", "outgoing"),
                "|",
                ("scheduled_date", "=", False),
                ("scheduled_date", "<=", now),
            ]
        )
