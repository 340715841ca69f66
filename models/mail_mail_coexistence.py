"""What other mail modules see of a deferred, refused or failed-over mail.

Modules beside this one hook into ``mail.mail._postprocess_sent_message``
(mass_mailing's traces, the notifications) and ``ir.mail_server.send_email``
(OCA mail_tracking). This file makes sure they are told what really
happened, without depending on any of them:

- a module that wraps ``send_email`` and swallows its exceptions (OCA
  mail_tracking records the error and returns ``False``) hides the server's
  refusal from core, which then counts the recipients as served. The
  attempts the server layer recorded say otherwise: the refusal is handed on
  as a failure, so that the mail is deferred (4xx) or failed (5xx);
- when OCA mail_tracking is installed (its model is in the registry), the
  tracking of a deferred mail says *deferred* with the server's reply, not
  *error*, and the recipient is not flagged as bounced for it; the *sent*
  event of a failed-over mail names the server that really sent it.
"""

from odoo import models

from ..tools import delivery


class MailMail(models.Model):
    _inherit = "mail.mail"

    def _postprocess_sent_message(
        self, success_pids, failure_reason=False, failure_type=None
    ):
        run = self.env.context.get("mail_outbound_run")
        if run is None:
            return super()._postprocess_sent_message(
                success_pids, failure_reason=failure_reason, failure_type=failure_type
            )
        # read before the queue's own post-processing takes them
        failure = delivery.last_failure(run.batch.attempts, run.batch.connect_failure)
        failover = run.batch.failover
        swallowed = self._get_swallowed_failure(run.batch.attempts, failure_type)
        if swallowed:
            success_pids, failure_type = [], swallowed.failure_type
            failure_reason = self._describe_failure(swallowed)
        tracked = "mail.tracking.email" in self.env
        if tracked and failover and not failure_type:
            # before core deletes the auto-delete mails (and unlinks their
            # trackings from them)
            self._mail_tracking_failover(failover.to_server_id)
        result = super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type
        )
        if tracked and failure:
            # deferred mails are never auto-deleted: still there
            deferred = self.exists().filtered(
                lambda mail: mail.state == "outgoing" and mail.delivery_deferred
            )
            if deferred:
                deferred._mail_tracking_deferred(failure)
        return result

    def _get_swallowed_failure(self, attempts, failure_type):
        """The server's refusal, when something between core and the server
        layer swallowed it: every attempt failed yet core saw no error."""
        if failure_type or not attempts or any(a.ok for a in attempts):
            return None
        return delivery.last_failure(attempts)

    def _mail_tracking_deferred(self, failure):
        """OCA mail_tracking: these mails are deferred, not in error.

        Its ``send_email`` marked this attempt's trackings *error* and the
        recipients as bounced; a temporary refusal is neither. The deferral
        goes through mail_tracking's own event API (``deferral`` event, state
        *deferred*), with the server's reply.
        """
        Tracking = self.env["mail.tracking.email"].sudo()
        trackings = Tracking.search(
            [("mail_id", "in", self.ids), ("state", "in", [False, "error"])]
        )
        if not trackings:
            return
        reply = self._describe_failure(failure)
        trackings.write({"error_type": "deferred", "error_description": reply[:250]})
        trackings.event_create(
            "deferral",
            {
                "error_type": "deferred",
                "error_description": reply,
                "error_details": failure.text,
            },
        )
        messages = trackings.mail_message_id
        failed_states = list(self.env["mail.message"].get_failed_states())
        still_failed = Tracking.search(
            [("mail_message_id", "in", messages.ids), ("state", "in", failed_states)]
        ).mail_message_id
        (messages - still_failed).sudo().write({"mail_tracking_needs_action": False})
        # mail_tracking's own rule: bounced when the latest tracking says so
        for address in set(trackings.mapped("recipient_address")) - {False}:
            partners = (
                self.env["res.partner"]
                .sudo()
                .search([("email", "=ilike", address), ("email_bounced", "=", True)])
            )
            if partners and not Tracking.email_is_bounced(address):
                partners.with_context(write_loop=True).write({"email_bounced": False})

    def _mail_tracking_failover(self, server_id):
        """OCA mail_tracking: the *sent* event names the server that sent it.

        mail_tracking guesses the server from the mail's own server or the
        first one; after a failover that is the server that failed.
        """
        server = self.env["ir.mail_server"].sudo().browse(server_id)
        events = (
            self.env["mail.tracking.event"]
            .sudo()
            .search(
                [
                    ("tracking_email_id.mail_id", "in", self.ids),
                    ("event_type", "=", "sent"),
                ]
            )
        )
        events.write({"smtp_server": server.smtp_host})
