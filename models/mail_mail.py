import logging
import smtplib
import threading
import uuid
from collections import defaultdict
from datetime import timedelta

import psycopg2

from odoo import _, api, fields, models, sql_db, tools
from odoo.exceptions import AccessError, UserError

from ..tools import delivery, quota, routing, settings
from . import queue_log

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

    # Not prefetched: core commits after every mail and then reads the mails of
    # the batch again; these columns would ride along in every such read.
    routing_server_id = fields.Many2one(
        "ir.mail_server",
        string="Routed Through",
        readonly=True,
        index="btree_not_null",
        help="Outgoing server the routing chose when the mail was sent. Empty "
        "with a rule: the command-line (odoo-bin) server.",
        prefetch=False,
    )
    routing_email_from = fields.Char(
        "Sent As",
        readonly=True,
        help="From header as the mail left Odoo.",
        prefetch=False,
    )
    routing_envelope_from = fields.Char(
        "Envelope Sender",
        readonly=True,
        help="Return-Path: where delivery errors (bounces) are sent.",
        prefetch=False,
    )
    routing_rule = fields.Selection(
        [
            ("from_address", "Server filter lists the sender address"),
            ("from_domain", "Server filter lists the sender domain"),
            ("notification_address", "Server filter lists the notification address"),
            ("notification_domain", "Server filter lists the notification domain"),
            ("no_filter", "First server without filter"),
            ("first_server", "First server (no filter matches)"),
            ("cli_from", "Command-line server, sender kept"),
            ("cli_notification", "Command-line server, notification address"),
            ("cli_fallback", "Command-line server (no filter matches)"),
            ("fixed_from", "Requested server, sender kept"),
            ("fixed_notification", "Requested server, notification address"),
            ("fixed_mismatch", "Requested server (filter does not match)"),
            ("fixed_unenforced", "Requested server, sender kept (not enforced)"),
        ],
        readonly=True,
        prefetch=False,
    )
    routing_traffic = fields.Selection(
        [("transactional", "Transactional"), ("mass", "Mass Mailing")],
        string="Traffic",
        default="transactional",
        # not NOT NULL: mails are created while mail_outbound is not loaded yet
        # (at_install tests of earlier modules on a database that has the addon)
        help="Mass mail (from a mailing, or flagged so by the code that created "
        "it) is sent through the dedicated mass-mailing server or the servers "
        "carrying mass mail; everything else through transactional servers.",
        prefetch=False,
    )
    routing_data = fields.Json(readonly=True, copy=False, prefetch=False)
    delivery_attempts = fields.Integer(
        readonly=True,
        copy=False,
        help="Attempts to hand this mail to a server.",
        prefetch=False,
    )
    delivery_first_attempt = fields.Datetime(readonly=True, copy=False, prefetch=False)
    delivery_deferred = fields.Boolean(
        "Deferred",
        readonly=True,
        copy=False,
        help="A temporary failure or a sending limit: the mail waits in the "
        "queue and is sent at its Scheduled Send Date.",
        prefetch=False,
    )
    delivery_maybe_delivered = fields.Boolean(
        "May Have Been Delivered",
        readonly=True,
        copy=False,
        help="The session was lost after the server got the whole message, "
        "before its answer: the mail is not sent again by itself.",
        prefetch=False,
    )
    delivery_claim = fields.Char(
        readonly=True, copy=False, index="btree_not_null", prefetch=False
    )
    delivery_claim_date = fields.Datetime(readonly=True, copy=False, prefetch=False)
    routing_reason = fields.Text(compute="_compute_routing_reason")

    @api.depends("routing_rule", "routing_data")
    def _compute_routing_reason(self):
        explain = self.env["ir.mail_server"]._explain_routing
        for mail in self:
            data = mail.routing_data or {}
            mail.routing_reason = mail.routing_rule and explain(
                routing.Decision(
                    rule=mail.routing_rule,
                    server_id=mail.routing_server_id.id or None,
                    server_name=mail.routing_server_id.name or "",
                    smtp_from="",
                    header_from=mail.routing_email_from or "",
                    envelope_from=mail.routing_envelope_from or "",
                    reply_to="",
                    rewritten=bool(data.get("rewritten")),
                    forced=bool(data.get("forced")),
                    warnings=tuple(data.get("warnings", ())),
                    params=data.get("params", {}),
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        # mass_mailing's mailing_id, when that module is installed
        if "mailing_id" in self._fields:
            for vals in vals_list:
                if vals.get("mailing_id") and "routing_traffic" not in vals:
                    vals["routing_traffic"] = routing.TRAFFIC_MASS
        return super().create(vals_list)

    # ------------------------------------------------------------
    # Send pipeline
    # ------------------------------------------------------------

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

    def init(self):
        # One row per batch handed to a server, in the order core sends it;
        # written on a connection of its own so that the queue's transaction
        # (and its cache) stays whole. See _mark_batch and _recover_claims.
        self.env.cr.execute(
            """
            CREATE TABLE IF NOT EXISTS mail_outbound_batch (
                claim VARCHAR NOT NULL,
                mail_ids INTEGER[] NOT NULL,
                since TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
            );
            CREATE INDEX IF NOT EXISTS mail_outbound_batch_claim_index
                ON mail_outbound_batch (claim);
            CREATE TABLE IF NOT EXISTS mail_outbound_handover (
                claim VARCHAR NOT NULL,
                mail_id INTEGER NOT NULL,
                delivered BOOLEAN NOT NULL,
                partner_ids INTEGER[] NOT NULL,
                failure_type VARCHAR,
                failure_reason TEXT
            );
            CREATE INDEX IF NOT EXISTS mail_outbound_handover_claim_index
                ON mail_outbound_handover (claim);
            """
        )
        return super().init()

    def _mark_batch(self, claim, mail_ids):
        """Say, durably, which mails go to a server now, in which order.

        Core sends a batch mail by mail, in this order; each finished mail is
        recorded too (_record_handover). If the worker dies, the first mail
        of the list neither committed nor recorded is the one it was handing
        over: _settle_interrupted fails that one as "may have been
        delivered" and leaves the later ones to a later run. One INSERT per
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
            "INSERT INTO mail_outbound_batch (claim, mail_ids) VALUES (%s, %s)",
            (claim, list(mail_ids)),
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
        of a batch was never tried and goes with a later run.
        """
        self.flush_model()
        self.env.cr.execute(
            "DELETE FROM mail_outbound_batch WHERE claim = ANY(%s) "
            "RETURNING claim, mail_ids",
            (list(claims),),
        )
        marks = self.env.cr.fetchall()
        self.env.cr.execute(
            "DELETE FROM mail_outbound_handover WHERE claim = ANY(%s) "
            "RETURNING mail_id, delivered, partner_ids, failure_type, failure_reason",
            (list(claims),),
        )
        handovers = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        mails = self.browse({i for _claim, ids in marks for i in ids}).exists()
        pending = set(
            mails.filtered(
                lambda mail: mail.state == "outgoing" and not mail.delivery_deferred
            ).ids
        )
        delivered_ids, interrupted_ids = delivery.settle_interrupted(
            [ids for _claim, ids in marks],
            pending,
            {mail_id: values[0] for mail_id, values in handovers.items()},
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
                partner_ids, failure_reason=reason, failure_type=failure_type
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

    def action_send_again(self):
        """Queue again mails a person checked were not delivered."""
        self._check_queue_access()
        self.write({"delivery_maybe_delivered": False})
        return self.mark_outgoing()

    def _requeue_untried(self):
        """Undo core's pre-send 'exception' mark on a mail never tried."""
        self.write({"state": "outgoing", "failure_reason": False})
        self._reset_exception_notifications()

    def _reset_exception_notifications(self):
        # core flagged their notifications in exception before sending
        self.env["mail.notification"].sudo().search(
            [
                ("mail_mail_id", "in", self.ids),
                ("notification_type", "=", "email"),
                ("notification_status", "=", "exception"),
            ]
        ).write(
            {
                "notification_status": "ready",
                "failure_type": False,
                "failure_reason": False,
            }
        )

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

    def send(self, auto_commit=False, raise_exception=False, post_send_callback=None):
        """Core's send, with temporary failures deferred and every attempt logged.

        An interactive send (``raise_exception``) keeps core's behaviour: the
        person who clicked sees the error at once.
        """
        if raise_exception or "mail_outbound_tracker" in self.env.context:
            return super().send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
        queue_log.quiet_core_error(False)
        tracker = delivery.AttemptTracker()
        tracker.claim = self.env.context.get("mail_outbound_claim")
        if auto_commit is True and tracker.claim:
            tracker.commit_every = self._get_commit_every()
            # claimed just before this send (process_email_queue)
            tracker.claim_renewed = fields.Datetime.now()
        mails = self.with_context(
            mail_outbound_tracker=tracker,
            mail_outbound_mark_before_send=auto_commit is True,
        )
        try:
            return super(MailMail, mails).send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
        except smtplib.SMTPServerDisconnected as error:
            # Core lets a dropped session abort the batch (its own tests rely
            # on it); the mail being handed over is deferred on the way out,
            # the rest of the batch is still queued for the next run.
            if tracker.session_lost:
                # never tried: queued again as it was, for the next run
                mails.browse(tracker.current_mail_id)._requeue_untried()
            elif tracker.current_mail_id:
                failure = next(
                    (a.failure for a in reversed(tracker.take()) if a.failure),
                    None,
                ) or delivery.classify(error)
                mails.browse(tracker.current_mail_id)._defer_delivery(
                    failure, fields.Datetime.now(), tracker
                )
            raise
        finally:
            if tracker.side_cursor is not None:
                tracker.side_cursor.close()
            self.env["mail.delivery.log"].sudo()._write_attempts(tracker)

    @api.model
    def _get_commit_every(self):
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.queue_commit_every"
        )

    def _send(
        self,
        auto_commit=False,
        raise_exception=False,
        smtp_session=None,
        alias_domain_id=False,
        mail_server=False,
        post_send_callback=None,
    ):
        """Core's ``_send``, committed every few mails instead of after each.

        Core commits after every mail so that a sent mail is never sent again
        once its worker fails; each commit also empties the ORM cache, and the
        next mail reads its record, its message, its recipients, the server
        and the company again: most of the queue's time. In the queue, the
        addon records each finished mail on its side connection instead
        (``_record_handover``, one small synchronous commit), which keeps
        that guarantee, and commits the queue's transaction every
        ``mail_outbound.queue_commit_every`` mails (50; 1 commits after every
        mail, as core does).
        Should the transaction fail, the recorded mails are settled at once
        (``_settle_interrupted``); should the worker die, by the next run.
        """
        tracker = self.env.context.get("mail_outbound_tracker")
        every = tracker.commit_every if tracker is not None else 0
        if auto_commit is not True or not every:
            return super()._send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                smtp_session=smtp_session,
                alias_domain_id=alias_domain_id,
                mail_server=mail_server,
                post_send_callback=post_send_callback,
            )
        for chunk_ids in tools.split_every(every, self.ids):
            chunk = self.browse(chunk_ids)
            try:
                chunk._prefetch_outgoing()
                super(MailMail, chunk)._send(
                    auto_commit=False,
                    raise_exception=raise_exception,
                    smtp_session=smtp_session,
                    alias_domain_id=alias_domain_id,
                    mail_server=mail_server,
                    post_send_callback=post_send_callback,
                )
                self._commit_chunk(tracker)
            except psycopg2.Error:
                self._settle_after_failed_commit(tracker)
                raise
        return True

    def _settle_after_failed_commit(self, tracker):
        """The transaction is lost, the SMTP exchanges are not: what was
        delivered is marked so now, never sent again.

        Should the database refuse that too, the records stay on the side
        and the next run settles them once the claim expires
        (``_release_claims`` leaves them).
        """
        # no attempt yet for the mail in hand: its hand-over never started
        handing_over = bool(tracker.attempts)
        self.env.cr.rollback()
        try:
            self._settle_interrupted([tracker.claim], handing_over=handing_over)
            self.env.cr.commit()  # pylint: disable=invalid-commit
        except psycopg2.Error:
            _logger.exception(
                "Mail queue: could not record the mails already delivered; "
                "they are settled by a later run once the claim expires"
            )
            self.env.cr.rollback()

    def _get_outgoing_prefetch_fields(self):
        """Fields core's ``_send`` reads, one of each table: read per chunk."""
        return ["body_html", "subject", "recipient_ids", "attachment_ids"]

    def _prefetch_outgoing(self):
        for fname in self._get_outgoing_prefetch_fields():
            self.mapped(fname)

    def _commit_chunk(self, tracker):
        """Commit the chunk and its log lines; renew the run's claim in time.

        A live worker renews its claim and batch marks once a quarter of the
        claim timeout has passed, so that neither expires under it however
        long the run takes (a slow server), without rewriting every claimed
        row at every commit of a fast run.
        """
        # kept until the commit holds: lost with it, they are written after
        logs = list(tracker.logs)
        self.env["mail.delivery.log"].sudo()._write_attempts(tracker)
        now = fields.Datetime.now()
        if now - tracker.claim_renewed > timedelta(seconds=self._claim_timeout() / 4):
            self.env.cr.execute(
                "UPDATE mail_mail SET delivery_claim_date = %s "
                "WHERE delivery_claim = %s",
                (now, tracker.claim),
            )
            self.env.cr.execute(
                "UPDATE mail_outbound_batch SET since = %s WHERE claim = %s",
                (now, tracker.claim),
            )
            self.invalidate_model(["delivery_claim_date"])
            tracker.claim_renewed = now
        try:
            self.env.cr.commit()  # pylint: disable=invalid-commit
        except psycopg2.Error:
            tracker.logs[:0] = logs
            raise

    def _record_handover(self, tracker, delivered, success_pids, failure_type):
        """Say, durably and outside the queue's transaction, that these mails
        are finished and whether a server accepted them.

        Written before core goes on to the next mail; committed
        synchronously, like the batch marks (see ``_mark_batch``), so that it
        survives a crash of PostgreSQL too.
        """
        if tracker.side_cursor is None:
            return
        tracker.side_cursor.execute(
            "INSERT INTO mail_outbound_handover "
            "(claim, mail_id, delivered, partner_ids, failure_type, failure_reason) "
            "SELECT %s, unnest(%s::int[]), %s, %s, %s, %s",
            (
                tracker.claim,
                self.ids,
                bool(delivered),
                [pid for pid in success_pids if pid],
                failure_type or None,
                (self[:1].failure_reason or None) if failure_type else None,
            ),
        )
        tracker.side_cursor.commit()

    def _prepare_outgoing_list(
        self, mail_server=False, recipients_follower_status=None
    ):
        tracker = self.env.context.get("mail_outbound_tracker")
        if tracker is not None and len(self) == 1:
            tracker.current_mail_id = self.id
        return super()._prepare_outgoing_list(
            mail_server=mail_server,
            recipients_follower_status=recipients_follower_status,
        )

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        """Defer what failed temporarily, explain what failed for good, log.

        Core calls this once per mail after its sends, or once for a whole
        batch whose connection failed. The tracker says what the servers
        answered; core only saw an exception.
        """
        tracker = self.env.context.get("mail_outbound_tracker")
        if tracker is None:
            return super()._postprocess_sent_message(
                success_pids, failure_reason=failure_reason, failure_type=failure_type
            )
        attempts = tracker.take()
        failure = tracker.connect_failure or next(
            (attempt.failure for attempt in reversed(attempts) if attempt.failure),
            None,
        )
        delivered = bool(any(attempt.ok for attempt in attempts) or success_pids)
        outcome = delivery.attempt_outcome(
            failure if failure_type else None,
            delivered,
            retry_after_data=failure is not None
            and failure.stage == "after_data"
            and self.env["ir.config_parameter"]._mail_outbound_get(
                "mail_outbound.after_data_drop"
            )
            == "retry",
        )
        now = fields.Datetime.now()
        if failure_type and failure and outcome == delivery.DEFERRED:
            if tracker.commit_every:
                self._record_handover(tracker, False, success_pids, failure_type)
            # nobody got it yet (or the setting accepts duplicates): safe to
            # try again later, as a whole
            deferred = self._defer_delivery(failure, now, tracker)
            failed = self - deferred
            if failed:
                failed._fail_delivery_given_up(failure, now, tracker)
            return True
        # only SMTP and network failures are reworded: core's own reasons for
        # a malformed From or no recipient are already precise
        maybe = outcome == delivery.MAYBE_DELIVERED
        if failure_type and failure and failure.stage != "unknown":
            reason = self._delivery_failure_reason(failure, delivered, maybe)
            failure_type = failure.failure_type if not delivered else "mail_smtp"
            self.write(
                {
                    "failure_reason": reason,
                    "failure_type": failure_type,
                    "delivery_maybe_delivered": maybe,
                }
            )
            failure_reason = reason
        if tracker.commit_every:
            # after the reason is written: a settlement reuses it
            self._record_handover(
                tracker, delivered or maybe, success_pids, failure_type
            )
        for mail in self:
            for skipped in tracker.skipped:
                # the server this batch failed over from: its own log line
                tracker.logs.extend(
                    mail._prepare_delivery_log_values(
                        [skipped], delivery.AttemptTracker(), "failed_over", now
                    )
                )
            tracker.skipped = []
            tracker.logs.extend(
                mail._prepare_delivery_log_values(
                    attempts, tracker, "failed" if failure_type else "sent", now
                )
            )
        self._write_delivered_truth(attempts, delivered, now)
        return super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )

    def _write_delivered_truth(self, attempts, delivered, now):
        """The Routing tab and counters say what the receiving server got:
        the server that took the mail, the From and envelope it received."""
        if not delivered:
            return
        taken = next((attempt for attempt in reversed(attempts) if attempt.ok), None)
        for mail in self:
            values = {
                "delivery_attempts": mail.delivery_attempts + 1,
                "delivery_first_attempt": mail.delivery_first_attempt or now,
            }
            # after a failover, what the other server received; else the
            # decision already says it, as it was formatted
            if (
                taken
                and taken.server_id
                and taken.server_id != (mail.routing_server_id.id)
            ):
                values["routing_server_id"] = taken.server_id
                if taken.email_from:
                    values["routing_email_from"] = str(taken.email_from)
                if taken.envelope_from:
                    values["routing_envelope_from"] = taken.envelope_from
            mail.write(values)

    def _split_by_mail_configuration(self):
        """Core's grouping, with each mail's routing decided and recorded.

        Core already asked ``_find_mail_server`` (our routing) for mails
        without a server, but as transactional mail; mails that name their
        server were grouped with their From unchanged, which core would send
        as is. Each distinct (From, server, alias domain, traffic, Reply-To)
        is decided again here — a pure, microsecond call — so that the
        decision is written on the mails, mass mail reaches mass servers and
        a named server's batch gets the From its filter allows.
        """
        decide = self._get_routing_decision_memo()
        limit = self._get_delivery_limiter()
        tracker = self.env.context.get("mail_outbound_tracker")
        claim = self.env.context.get("mail_outbound_claim")
        mark = self.env.context.get("mail_outbound_mark_before_send")
        for (
            _server_id,
            alias_domain_id,
            smtp_from,
            batch_ids,
        ) in super()._split_by_mail_configuration():
            # core grouped by server and From without knowing the traffic
            # class or a named server's filter: regroup by the decision
            per_session = defaultdict(list)
            # decisions are memoised, so identity groups equal decisions
            per_decision = defaultdict(list)
            for mail in self.browse(batch_ids):
                decision = decide(mail)
                if tracker is not None:
                    # what the log needs later, read now, before core's
                    # per-mail commits empty the cache
                    tracker.decisions[mail.id] = (
                        decision,
                        mail.record_company_id.id,
                        mail.delivery_attempts,
                    )
                session_key = (
                    decision.server_id or False,
                    decision.smtp_from or smtp_from,
                )
                per_session[session_key].append(mail.id)
                per_decision[id(decision)].append((decision, mail.id))
            for pairs in per_decision.values():
                mails = self.browse([mail_id for _decision, mail_id in pairs])
                mails.write(self._prepare_routing_values(pairs[0][0]))
            for (session_server_id, session_from), mail_ids in per_session.items():
                # over a daily limit or a rate: deferred to the next window
                mail_ids = limit(session_server_id, mail_ids)
                if mail_ids and claim and mark:
                    self._mark_batch(claim, mail_ids)
                if mail_ids:
                    yield session_server_id, alias_domain_id, session_from, mail_ids

    def _get_delivery_limiter(self):
        """A function (server id, mail ids) -> the ids that may go now.

        Counts what was sent today (the company's calendar day) and this
        minute from the delivery log, once per queue run, then keeps the
        count as batches are handed out. The others are deferred to the
        start of the next window. No limit set: no query at all.
        """
        tracker = self.env.context.get("mail_outbound_tracker")
        Server = self.env["ir.mail_server"].sudo()
        db_limit = self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.daily_limit"
        )
        limited = Server.search(
            ["|", ("daily_limit", ">", 0), ("rate_per_minute", ">", 0)]
        )
        if tracker is None or not (db_limit or limited):
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
                self.browse(later_ids)._defer_for_limit(granted, server, tracker, now)
            return now_ids

        return limit

    def _defer_for_limit(self, granted, server, tracker, now):
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
        limit_failure = delivery.Failure(
            delivery.TEMPORARY, 0, reason, "limit", False, "mail_smtp"
        )
        # a limit is no attempt: no failover of an earlier batch applies
        fresh = delivery.AttemptTracker()
        for mail in self:
            tracker.logs.extend(
                mail._prepare_delivery_log_values(
                    [], fresh, "deferred", now, granted.defer_until, limit_failure
                )
            )

    def _get_routing_decision_memo(self):
        """A function mail -> Decision, computed once per distinct input."""
        IrMailServer = self.env["ir.mail_server"].sudo()
        servers = IrMailServer.search([])
        memo = {}

        formatted = {}

        def decide(mail):
            # same protection as core against an already formatted From,
            # parsed once per distinct value: a queue has few senders
            raw = mail.email_from
            if raw not in formatted:
                emails_from = tools.mail.email_split_and_format(raw)
                formatted[raw] = emails_from[0] if emails_from else raw
            email_from = formatted[raw]
            key = (
                email_from,
                mail.mail_server_id.id,
                mail.record_alias_domain_id.id,
                mail.routing_traffic or routing.TRAFFIC_TRANSACTIONAL,
                mail.reply_to,
            )
            if key not in memo:
                memo[key] = IrMailServer._get_routing_decision(
                    email_from,
                    mail_servers=servers,
                    fixed_server=mail.mail_server_id.sudo() or None,
                    alias_domain=mail.record_alias_domain_id.sudo() or None,
                    reply_to=mail.reply_to,
                    traffic=mail.routing_traffic or routing.TRAFFIC_TRANSACTIONAL,
                )
            return memo[key]

        return decide

    def _prepare_routing_values(self, decision):
        return {
            "routing_server_id": decision.server_id or False,
            "routing_email_from": decision.header_from,
            "routing_envelope_from": decision.envelope_from,
            "routing_rule": decision.rule,
            "routing_traffic": decision.traffic,
            "routing_data": {
                "params": decision.params,
                "warnings": list(decision.warnings),
                "forced": decision.forced,
                "rewritten": decision.rewritten,
            },
        }

    # ------------------------------------------------------------
    # Delivery: deferral, failure, log
    # ------------------------------------------------------------

    @api.model
    def _get_retry_policy(self):
        get = self.env["ir.config_parameter"]._mail_outbound_get
        minimal = get("mail_outbound.retry_min_backoff")
        return delivery.RetryPolicy(
            minimal_backoff=minimal,
            maximal_backoff=max(get("mail_outbound.retry_max_backoff"), minimal),
            lifetime=int(get("mail_outbound.retry_lifetime_days") * 86400),
        )

    def _defer_delivery(self, failure, now, tracker):
        """Queue again the mails still within the queue lifetime; return them."""
        policy = self._get_retry_policy()
        deferred = self.browse()
        whens = []
        for mail in self:
            attempts = mail.delivery_attempts + 1
            first = mail.delivery_first_attempt or now
            when, _give_up = delivery.next_attempt(policy, attempts, now, first)
            if when is None:
                continue
            # stored to the second, like every Odoo datetime
            when = when.replace(microsecond=0)
            reason = _(
                "Deferred after attempt %(attempt)s: %(error)s. Next attempt at "
                "%(when)s (UTC).",
                attempt=attempts,
                error=self._describe_failure(failure),
                when=fields.Datetime.to_string(when),
            )
            mail.write(
                {
                    "state": "outgoing",
                    "scheduled_date": when,
                    "delivery_attempts": attempts,
                    "delivery_first_attempt": first,
                    "delivery_deferred": True,
                    "failure_reason": reason,
                    "failure_type": False,
                }
            )
            tracker.logs.extend(
                mail._prepare_delivery_log_values(
                    [], tracker, "deferred", now, when, failure
                )
            )
            _logger.warning(
                "Mail %s %s deferred after attempt %s via %s: %s; next attempt "
                "at %s UTC",
                mail.id,
                mail.message_id,
                attempts,
                self._describe_server(mail, tracker),
                self._describe_failure(failure),
                fields.Datetime.to_string(when),
            )
            whens.append(when)
            deferred |= mail
        deferred._reset_exception_notifications()
        if "mailing_trace_ids" in self._fields:
            # mass_mailing's override, outside this one, already marked them
            # failed: a deferred mail's trace is still outgoing
            deferred.mailing_trace_ids.sudo().write(
                {"trace_status": "outgoing", "failure_type": False}
            )
        if whens:
            self._trigger_queue_at(min(whens))
        return deferred

    @api.model
    def _describe_server(self, mail, tracker):
        server_id = (tracker.failover[1] if tracker.failover else None) or (
            mail.routing_server_id.id or mail.mail_server_id.id
        )
        return (
            self.env["ir.mail_server"].sudo().browse(server_id).name
            if server_id
            else "the command-line server"
        )

    @api.model
    def _trigger_queue_at(self, when):
        """Wake the queue's cron when a deferred mail is due, not at its next
        hourly run."""
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action", False)
        if cron:
            cron.sudo()._trigger(when)

    def _fail_delivery_given_up(self, failure, now, tracker):
        reason = _(
            "Not delivered: the server refused it temporarily for longer than the "
            "queue lifetime (%(days)s days, %(attempts)s attempts). Last error: "
            "%(error)s. Check the server (Test Connection), then Retry.",
            days=round(self._get_retry_policy().lifetime / 86400, 1),
            attempts=max(self.mapped("delivery_attempts") or [0]) + 1,
            error=self._describe_failure(failure),
        )
        self.write(
            {
                "state": "exception",
                "failure_reason": reason,
                "failure_type": "mail_smtp",
                "delivery_deferred": False,
            }
        )
        for mail in self:
            tracker.logs.extend(
                mail._prepare_delivery_log_values(
                    [], tracker, "failed", now, None, failure
                )
            )
        return super()._postprocess_sent_message(
            [], failure_reason=reason, failure_type="mail_smtp"
        )

    @api.model
    def _describe_failure(self, failure):
        if failure.code:
            return f"{failure.code} {failure.text}".strip()
        return failure.text or failure.stage

    def _delivery_failure_reason(self, failure, delivered, maybe=False):
        if maybe:
            return _(
                "The connection was lost after the whole message was sent, "
                "before the server answered (%(error)s): it may have been "
                "delivered. Not sent again by itself, so that nobody gets it "
                "twice; check the server's log or ask the recipient, then click "
                "Send Again if it did not arrive.",
                error=self._describe_failure(failure),
            )
        if delivered:
            return _(
                "Sent to some recipients only; the server refused the others: "
                "%(error)s. Not retried, so that nobody gets it twice.",
                error=self._describe_failure(failure),
            )
        return _(
            "The server refused this mail for good: %(error)s.",
            error=self._describe_failure(failure),
        )

    def _prepare_delivery_log_values(
        self, attempts, tracker, outcome, now, next_attempt=None, failure=None
    ):
        """One log line for this mail's attempt (all its recipients)."""
        self.ensure_one()
        last = attempts[-1] if attempts else None
        failure = failure or (last.failure if last else None) or tracker.connect_failure
        known = tracker.decisions.get(self.id)
        if known:
            decision, company_id, attempt = known
            decided_server, sent_as = decision.server_id, decision.header_from
            traffic = decision.traffic
        else:  # decided by another run (a deferral at the start of this one)
            decided_server = self.routing_server_id.id or self.mail_server_id.id
            sent_as, traffic = self.routing_email_from, self.routing_traffic
            company_id, attempt = self.record_company_id.id, self.delivery_attempts
        server_id = (
            (last.server_id if last else None)
            or (tracker.failover[1] if tracker.failover else None)
            or decided_server
        )
        return [
            {
                "mail_id": self.id,
                "message_id": self.message_id,
                "subject": (self.subject or "")[:200],
                "mail_server_id": server_id or False,
                "email_from": (last.email_from if last else "") or sent_as,
                "recipient_count": sum(a.recipients for a in attempts),
                "traffic": traffic or "transactional",
                "attempt": (attempt or 0) + 1,
                "outcome": outcome,
                "smtp_code": (last.code if last else 0)
                or (failure.code if failure else 0),
                "smtp_reply": (
                    (last.text if last and last.ok else "")
                    or (failure.text if failure else "")
                )[:500],
                "reason": failure and self._describe_failure(failure) or False,
                "next_attempt": next_attempt or False,
                "failover_from_id": tracker.failover[0] if tracker.failover else False,
                "duration_ms": sum(a.duration_ms for a in attempts),
                "company_id": company_id or self.env.company.id,
            }
        ]
