"""mail.mail: who may run the queue, and its entry point; the queue itself
is mail.outbound.queue (claims, settlement: mail_outbound_queue_claims.py)."""

import logging
import uuid

from odoo import _, api, models
from odoo.exceptions import AccessError, UserError

from ..tools import settings
from ..tools.run import QueueRun
from . import queue_log

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
        Queue = self.env["mail.outbound.queue"]
        token = uuid.uuid4().hex
        Queue._recover_claims()
        # committed by the run's strategy before its first mail leaves
        # (``send``): core's ``auto_commit`` says whether it really commits
        claimed = Queue._claim_for_sending(token, ids, batch_size)
        if not claimed:
            return None
        try:
            # core searches the newest batch_size * 10 due mails, then keeps
            # those in ids: claimed mails outside that window would never be
            # sent. A filter on the claimed ids makes its search find them.
            filters = [*self.env.context.get("filters", []), ("id", "in", claimed)]
            # core logs an aborted queue after send returned: still the run's
            with queue_log.quieting_core_errors():
                return super(
                    MailMail,
                    self.with_context(mail_outbound_claim=token, filters=filters),
                ).process_email_queue(ids=claimed, batch_size=batch_size)
        finally:
            Queue._release_claims(token)
            if not ids:
                self.env["ir.cron"]._notify_progress(
                    done=len(claimed), remaining=Queue._count_due()
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

    def _prepare_settled_log_values(self, outcome, reason, now):
        """The log line of an attempt whose worker stopped before logging it."""
        values = self._prepare_delivery_log_values([], QueueRun(), outcome, now)
        for line in values:
            line["reason"] = reason
        return values
