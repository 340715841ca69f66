"""The queue's parallel sessions: what each session's server answered,
written back in the worker's thread, and what the sessions still hand over
when a run stops."""

import logging

import psycopg2

from odoo import _, api, fields, models, tools

from ..tools import delivery

_logger = logging.getLogger(__name__)


class MailOutboundQueue(models.AbstractModel):
    _inherit = "mail.outbound.queue"

    @api.model
    def _finish_lane_job(self, mails, run, job):
        """What a lane's server answered, written as core writes it."""
        data = job.data
        mail = mails.browse(data.mail_id).with_prefetch(data.prefetch)
        # the batch this mail came with may be over: it is the current one
        # while its result is written (its failover is this mail's, and the
        # first mail back logs the servers it skipped)
        current, run.batch = run.batch, data.batch
        try:
            self._write_lane_result(mail, run, job)
        finally:
            run.batch = current

    @api.model
    def _write_lane_result(self, mail, run, job):
        IrMailServer = self.env["ir.mail_server"]
        data = job.data
        server_id = getattr(job.lane, "mail_outbound_server_id", None)
        success_pids, message_id, error = [], None, None
        for index, sent in enumerate(job.results):
            run.batch.record(
                IrMailServer._prepare_attempt(server_id, data.recipients[index], sent)
            )
            if not sent.ok:
                error = sent.error
                break
            message_id = data.message_ids[index]
            if data.partner_ids[index]:
                success_pids.append(data.partner_ids[index])
        if error is None:
            values = {"state": "sent", "failure_reason": False}
            if message_id != mail.message_id:
                # core writes it always: on the mail's message, with the
                # recomputations that brings, for the value it already has
                values["message_id"] = message_id
            mail.write(values)
            _logger.info(
                "Mail with ID %r and Message-Id %r successfully sent",
                mail.id,
                message_id,
            )
            mail._postprocess_sent_message(
                success_pids=success_pids, failure_type=data.failure_type
            )
            return
        reason = tools.exception_to_unicode(error)
        mail.write(
            {"state": "exception", "failure_reason": reason, "failure_type": "unknown"}
        )
        # the queue's post-processing tells deferred from failed, from the
        # attempts just recorded, and words the reason
        mail._postprocess_sent_message(
            success_pids=success_pids, failure_reason=reason, failure_type="unknown"
        )

    @api.model
    def _defer_without_session(self, mails, run, error):
        """The server took no more sessions (every lane dropped, none
        reopened): the mails not handed over wait, as after a failed
        connection."""
        failure = delivery.classify(error) if error else None
        if failure is None or not failure.temporary:
            failure = delivery.Failure.unreachable(
                str(error or _("The server closed every session.")),
                code=getattr(failure, "code", 0),
            )
        run.batch.connect_failure = failure
        try:
            mails.filtered(
                lambda mail: mail.state == "outgoing"
            )._postprocess_sent_message(
                success_pids=[], failure_reason=failure.text, failure_type="mail_smtp"
            )
        finally:
            run.batch.connect_failure = None

    @api.model
    def _record_drained(self, mails, lane_set, run):
        """Wait for the lanes still handing over, and record what their
        servers said on the side connection (the transaction may be gone).
        Returns those jobs."""
        jobs = list(lane_set.drain())
        for job in jobs:
            ok = [sent for sent in job.results if sent.ok]
            errors = [sent.error for sent in job.results if not sent.ok]
            failure = delivery.classify(errors[0]) if errors else None
            maybe = failure is not None and failure.stage == "after_data"
            pids = [
                pid
                for pid, sent in zip(job.data.partner_ids, job.results, strict=False)
                if sent.ok and pid
            ]
            self._record_handover_values(
                run,
                [job.data.mail_id],
                bool(ok) or maybe,
                pids,
                "mail_smtp" if failure else None,
                failure.text if failure else None,
            )
        try:
            self._flush_handovers(run)
        except psycopg2.Error:
            _logger.exception(
                "Mail queue: could not record the mails the sessions handed "
                "over; they are settled as 'may have been delivered'"
            )
        return jobs

    @api.model
    def _log_drained(self, run, jobs):
        """One log line for each mail a session finished after the run's
        transaction was lost, once the settlement gave it its state."""
        IrMailServer = self.env["ir.mail_server"]
        now = fields.Datetime.now()
        for job in jobs:
            server_id = getattr(job.lane, "mail_outbound_server_id", None)
            attempts = [
                IrMailServer._prepare_attempt(server_id, recipients, sent)
                for recipients, sent in zip(
                    job.data.recipients, job.results, strict=False
                )
            ]
            failures = [a.failure for a in attempts if a.failure]
            if not failures:
                outcome = "sent"
            elif any(a.ok for a in attempts) or failures[0].stage == "after_data":
                outcome = "failed"
            else:
                outcome = "deferred"
            mail = self.env["mail.mail"].browse(job.data.mail_id)
            run.logs.extend(
                mail._prepare_delivery_log_values(
                    attempts, run, outcome, now, batch=job.data.batch
                )
            )
