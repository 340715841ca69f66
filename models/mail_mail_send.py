"""mail.mail: the queue's send.

Commits in chunks, each finished mail recorded on the side connection.
"""

import json
import logging
import smtplib
from datetime import timedelta

import psycopg2

from odoo import api, fields, models, tools

from ..tools import delivery
from . import queue_log

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

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
        Queue = mails.env["mail.outbound.queue"]
        try:
            result = super(MailMail, mails).send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
            # the last mails the parallel sessions still hand over
            Queue._finish_lanes(mails)
            return result
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
            Queue._stop_lanes(mails)
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
        if auto_commit is True and every:
            Queue = self.env["mail.outbound.queue"]
            width = Queue._get_lane_width(self, smtp_session)
            if width > 1:
                return Queue._send_in_lanes(
                    self,
                    smtp_session,
                    width,
                    alias_domain_id=alias_domain_id,
                    mail_server=mail_server,
                    post_send_callback=post_send_callback,
                )
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

    def _settle_after_failed_commit(self, tracker, handing_over=None):
        """The transaction is lost, the SMTP exchanges are not: what was
        delivered is marked so now, never sent again.

        Should the database refuse that too, the records stay on the side
        and the next run settles them once the claim expires
        (``_release_claims`` leaves them).
        """
        if handing_over is None:
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
        self._record_handover_values(
            tracker,
            self.ids,
            delivered,
            success_pids,
            failure_type,
            (self[:1].failure_reason or None) if failure_type else None,
        )

    @api.model
    def _record_handover_values(
        self, tracker, mail_ids, delivered, success_pids, failure_type, reason
    ):
        """``_record_handover`` without reading the mails: also when the
        queue's transaction is already lost."""
        tracker.side_cursor.execute(
            "INSERT INTO mail_outbound_handover "
            "(claim, mail_id, delivered, partner_ids, failure_type, failure_reason) "
            "SELECT %s, unnest(%s::int[]), %s, %s::jsonb, %s, %s",
            (
                tracker.claim,
                list(mail_ids),
                bool(delivered),
                json.dumps([pid for pid in success_pids if pid]),
                failure_type or None,
                reason if failure_type else None,
            ),
        )
        tracker.side_cursor.commit()

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
