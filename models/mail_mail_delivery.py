"""mail.mail: each attempt's outcome and its log line.

Sent, deferred, failed, or "may have been delivered"; retries on time.
"""

import logging

from odoo import _, api, fields, models

from ..tools import delivery
from ..tools.run import Batch

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        """Defer what failed temporarily, explain what failed for good, log.

        Core calls this once per mail after its sends, or once for a whole
        batch whose connection failed. The run says what the servers
        answered; core only saw an exception.
        """
        run = self.env.context.get("mail_outbound_run")
        if run is None:
            return super()._postprocess_sent_message(
                success_pids, failure_reason=failure_reason, failure_type=failure_type
            )
        attempts = run.batch.take()
        failure = delivery.last_failure(attempts, run.batch.connect_failure)
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
        # the servers this batch tried before: a line each, with the batch's
        # first mail, whatever became of it
        for skipped in run.batch.take_skipped():
            run.logs.extend(
                self[:1]._prepare_delivery_log_values(
                    [skipped], run, "failed_over", now, batch=Batch()
                )
            )
        if failure_type and failure and outcome == delivery.DEFERRED:
            if run.is_queue:
                self._record_handover(run, False, success_pids, failure_type)
            # nobody got it yet (or the setting accepts duplicates): safe to
            # try again later, as a whole
            deferred = self._defer_delivery(failure, now, run)
            failed = self - deferred
            if failed:
                failed._fail_delivery_given_up(failure, now, run)
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
        if run.is_queue:
            # after the reason is written: a settlement reuses it
            self._record_handover(run, delivered or maybe, success_pids, failure_type)
        for mail in self:
            run.logs.extend(
                mail._prepare_delivery_log_values(
                    attempts, run, "failed" if failure_type else "sent", now
                )
            )
        if attempts or run.batch.connect_failure or delivered:
            # handed to a server (or tried): an attempt, whatever came of it
            self._write_attempt_truth(attempts, delivered, now, run)
        return super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )

    def _write_attempt_truth(self, attempts, delivered, now, run):
        """The counters say one more attempt, and the mail waits no more;
        when a server took it, the Routing tab says what it received: the
        server, the From and envelope, and after a failover the rule.

        Reads what the run noted before sending (``run.decisions``): our
        columns are not prefetched, and reading them here would cost a query
        per mail.
        """
        taken = next((attempt for attempt in reversed(attempts) if attempt.ok), None)
        failover = run.batch.failover
        for mail in self:
            known = run.decisions.get(mail.id)
            if known:
                decided_server = known.decision.server_id
                before = known.attempts_before or 0
            else:
                decided_server = mail.routing_server_id.id
                before = mail.delivery_attempts
            # sent or failed for good: no longer deferred (the form then
            # shows no next attempt)
            values = {"delivery_attempts": before + 1, "delivery_deferred": False}
            if not before:
                # a mail deferred before has its first attempt already
                values["delivery_first_attempt"] = now
            # after a failover, what the other server received; else the
            # decision already says it, as it was formatted
            if (
                delivered
                and taken
                and taken.server_id
                and taken.server_id != decided_server
            ):
                values.update(mail._prepare_failover_routing_values(failover, run))
                values["routing_server_id"] = taken.server_id
                if taken.email_from:
                    values["routing_email_from"] = str(taken.email_from)
                if taken.envelope_from:
                    values["routing_envelope_from"] = taken.envelope_from
            mail.write(values)

    def _prepare_failover_routing_values(self, failover, run):
        """The Routing tab's rule and reason for a mail a fallback server
        took: the routing of that server for this mail."""
        self.ensure_one()
        if not failover or not failover.decision:
            return {}
        Server = self.env["ir.mail_server"].sudo()
        fallback = Server.browse(failover.to_server_id)
        decision = (
            fallback._get_failover_decision(
                run,
                Server.browse(failover.from_server_id),
                failover.smtp_from,
                mail=self,
            )
            or failover.decision
        )
        values = self._prepare_routing_values(decision)
        values.pop("routing_traffic")
        return values

    @api.model
    def _get_retry_policy(self):
        get = self.env["ir.config_parameter"]._mail_outbound_get
        minimal = get("mail_outbound.retry_min_backoff")
        return delivery.RetryPolicy(
            minimal_backoff=minimal,
            maximal_backoff=max(get("mail_outbound.retry_max_backoff"), minimal),
            lifetime=int(get("mail_outbound.retry_lifetime_days") * 86400),
        )

    def _defer_delivery(self, failure, now, run):
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
            data = {"attempt": attempts, "error": self._describe_failure(failure)}
            mail.write(
                {
                    "state": "outgoing",
                    "scheduled_date": when,
                    "delivery_attempts": attempts,
                    "delivery_first_attempt": first,
                    "delivery_deferred": True,
                    "delivery_deferral_data": data,
                    # core's field keeps a sentence, in the writer's language
                    "failure_reason": self._describe_deferral(data),
                    "failure_type": False,
                }
            )
            run.logs.extend(
                mail._prepare_delivery_log_values(
                    [], run, "deferred", now, when, failure
                )
            )
            _logger.warning(
                "Mail %s %s deferred after attempt %s via %s: %s; next attempt "
                "at %s UTC",
                mail.id,
                mail.message_id,
                attempts,
                self._describe_server(mail, run),
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
    def _describe_server(self, mail, run):
        failover = run.batch.failover
        server_id = (failover and failover.to_server_id) or (
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

    def _make_due_now(self):
        """These waiting mails are due now and the queue is woken for them:
        a change that lets them go (a limit, a circuit, a port) takes effect
        at once."""
        if self:
            now = fields.Datetime.now()
            self.write({"scheduled_date": now})
            self._trigger_queue_at(now)
        return self

    def _fail_delivery_given_up(self, failure, now, run):
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
            run.logs.extend(
                mail._prepare_delivery_log_values([], run, "failed", now, None, failure)
            )
            # this last attempt counts too
            mail.delivery_attempts += 1
        return super()._postprocess_sent_message(
            [], failure_reason=reason, failure_type="mail_smtp"
        )

    @api.model
    def _describe_failure(self, failure):
        # the templates end their sentence: a reply's own full stop would
        # make "as your provider documents.. Next attempt"
        if failure.code:
            return f"{failure.code} {failure.text}".strip().rstrip(". ")
        return (failure.text or failure.stage or "").strip().rstrip(". ")

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
        self, attempts, run, outcome, now, next_attempt=None, failure=None, batch=None
    ):
        """One log line for this mail's attempt (all its recipients).
        ``batch``: the batch the attempt belongs to, the run's by default."""
        self.ensure_one()
        batch = batch or run.batch
        last = attempts[-1] if attempts else None
        failure = failure or (last.failure if last else None) or batch.connect_failure
        known = run.decisions.get(self.id)
        if known:
            decision, company_id = known.decision, known.company_id
            attempt = known.attempts_before
            decided_server, sent_as = decision.server_id, decision.header_from
            traffic = decision.traffic
        else:  # decided by another run (a deferral at the start of this one)
            decided_server = self.routing_server_id.id or self.mail_server_id.id
            sent_as, traffic = self.routing_email_from, self.routing_traffic
            company_id = self._get_outbound_company().id
            attempt = self.delivery_attempts
        server_id = (
            (last.server_id if last else None)
            or (batch.failover and batch.failover.to_server_id)
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
                # what limits count: only what a server accepted
                "accepted_messages": sum(1 for a in attempts if a.ok),
                "accepted_recipients": sum(a.recipients for a in attempts if a.ok),
                "failure_stage": failure.stage if failure else False,
                "recipients": ", ".join(
                    filter(None, [self.email_to, *self.recipient_ids.mapped("email")])
                )[:500],
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
                "failover_from_id": (batch.failover and batch.failover.from_server_id)
                or False,
                "duration_ms": sum(a.duration_ms for a in attempts),
                "company_id": company_id or self.env.company.id,
            }
        ]
