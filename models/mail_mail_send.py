"""mail.mail: the queue's send.

Commits in chunks, each finished mail recorded on the side connection.
"""

import functools
import logging
import smtplib

import psycopg2

from odoo import fields, models, tools

from ..tools import delivery, journal
from ..tools.run import QueueRun
from . import queue_log

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

    def send(self, auto_commit=False, raise_exception=False, post_send_callback=None):
        """Core's send, with temporary failures deferred and every attempt logged.

        An interactive send (``raise_exception``) keeps core's behaviour: the
        person who clicked sees the error at once.
        """
        if raise_exception or "mail_outbound_run" in self.env.context:
            return super().send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
        with queue_log.quieting_core_errors():
            return self._send_in_run(auto_commit, raise_exception, post_send_callback)

    def _send_in_run(self, auto_commit, raise_exception, post_send_callback):
        """``send`` with its run: the run's state, core's send, the end of
        the parallel sessions, the log lines."""
        # core's auto_commit (True under the cron, False in a caller's
        # transaction) chooses how the run commits; the steps are the same
        run = QueueRun(
            strategy=journal.strategy_for(auto_commit),
            claim=self.env.context.get("mail_outbound_claim"),
        )
        if run.is_queue:
            run.commit_every = self.env["mail.outbound.queue"]._get_commit_every()
            # claimed just before this send (process_email_queue): the claim
            # holds before the first mail leaves
            run.claim_renewed = fields.Datetime.now()
            run.strategy.commit(self.env.cr, self.env)
        mails = self.with_context(mail_outbound_run=run)
        Queue = mails.env["mail.outbound.queue"]
        try:
            result = super(MailMail, mails).send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                post_send_callback=post_send_callback,
            )
            # the last mails the parallel sessions still hand over
            Queue._finish_lanes(mails, run)
            return result
        except smtplib.SMTPServerDisconnected as error:
            # Core lets a dropped session abort the batch (its own tests rely
            # on it); the mail being handed over is deferred on the way out,
            # the rest of the batch is still queued for the next run.
            if run.batch.session_lost:
                # never tried: queued again as it was, for the next run
                mails.browse(run.batch.current_mail_id)._requeue_untried()
            elif run.batch.current_mail_id:
                failure = delivery.last_failure(run.batch.take()) or delivery.classify(
                    error
                )
                mails.browse(run.batch.current_mail_id)._defer_delivery(
                    failure, fields.Datetime.now(), run
                )
            raise
        finally:
            Queue._stop_lanes(mails, run)
            if run.journal is not None:
                run.journal.close()
            self.env["mail.delivery.log"].sudo()._write_attempts(run)

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
        run = self.env.context.get("mail_outbound_run")
        if run is None or not run.is_queue:
            return super()._send(
                auto_commit=auto_commit,
                raise_exception=raise_exception,
                smtp_session=smtp_session,
                alias_domain_id=alias_domain_id,
                mail_server=mail_server,
                post_send_callback=post_send_callback,
            )
        Queue = self.env["mail.outbound.queue"]
        width = Queue._get_lane_width(self, run, smtp_session)
        if width > 1:
            return Queue._send_in_lanes(
                self,
                run,
                smtp_session,
                width,
                alias_domain_id=alias_domain_id,
                mail_server=mail_server,
                post_send_callback=post_send_callback,
            )
        if smtp_session is not None:
            # core's loop sends on the batch's session: each message's end
            # of DATA is marked first, as on the parallel sessions
            smtp_session.mail_outbound_before_end = functools.partial(
                Queue._mark_data_end_in_loop, run
            )
        for chunk_ids in tools.split_every(run.commit_every, self.ids):
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
                Queue._commit_chunk(run)
            except psycopg2.Error:
                Queue._settle_after_failed_commit(run)
                raise
        return True

    def _get_outgoing_prefetch_fields(self):
        """Fields core's ``_send`` reads, one of each table: read per chunk."""
        return ["body_html", "subject", "recipient_ids", "attachment_ids"]

    def _prefetch_outgoing(self):
        for fname in self._get_outgoing_prefetch_fields():
            self.mapped(fname)

    def _record_handover(self, run, delivered, success_pids, failure_type):
        """Say, durably and outside the queue's transaction, that these mails
        are finished and whether a server accepted them.

        Written before core goes on to the next mail; committed
        synchronously, like the batch marks (see ``_mark_batch``), so that it
        survives a crash of PostgreSQL too.
        """
        if run.journal is None:
            return
        self.env["mail.outbound.queue"]._record_handover_values(
            run,
            self.ids,
            delivered,
            success_pids,
            failure_type,
            (self[:1].failure_reason or None) if failure_type else None,
        )

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
