"""The queue's parallel sessions: each mail built and routed before a lane
takes it, in the worker's thread, with core's building blocks.

With ``mail_outbound_queue_results.py`` this is core's per-mail loop,
``mail.mail._send`` (addons/mail/models/mail_mail.py, lines 657-836 at
Odoo 18.0; ``tests/test_core_pins.py`` pins its source), split in two so
that several sessions hand mails over at once:

- here, the body of core's ``try`` up to ``send_email``: the follower
  status, ``_prepare_outgoing_list``, the alias domain's context,
  ``build_email`` with core's arguments, the partner of each message, and
  ``_prepare_email_message`` (what ``send_email`` does before the SMTP
  exchange, DKIM signing included), with core's reading of
  ``NO_VALID_RECIPIENT`` and of the other address assertions;
- in ``_results``, what core writes after: ``state`` ``sent`` with the
  Message-Id, or ``exception`` with the reason, then
  ``_postprocess_sent_message`` with the partners served.

Intended differences: no "exception" mark on the mail and its
notifications before the hand-over (core's guard against a rollback after
sending; here the hand-over record, committed before a session takes
another mail, is that guard), the Message-Id written only when it changed,
and the SMTP exchange in a lane's thread (``tools/lanes.py``).
"""

import logging
from dataclasses import dataclass, field

from odoo import _, api, models, tools

from ..tools import lanes

_logger = logging.getLogger(__name__)


@dataclass
class LaneMail:
    """What the worker keeps of a mail while a lane hands it over."""

    mail_id: int
    partner_ids: list = field(default_factory=list)
    recipients: list = field(default_factory=list)
    message_ids: list = field(default_factory=list)
    # core's "no valid recipient" for some of its messages
    failure_type: str | None = None
    # its batch (tools.run.Batch): a failover, the servers it skipped
    batch: object = None
    # the mails read with it, read again with it once a commit emptied the cache
    prefetch: tuple = ()


class MailOutboundQueue(models.AbstractModel):
    _inherit = "mail.outbound.queue"

    @api.model
    def _prefetch_window(self, window):
        """Read the next mails in one query per table, as core's ``_send``
        reads its batch; returns their recipients' follower status."""
        window._prefetch_outgoing()
        unfollow = window.filtered(
            lambda mail: mail.body_html and "/mail/unfollow" in mail.body_html
        )
        if not unfollow:
            return None
        return self.env["mail.followers"]._get_mail_recipients_follower_status(
            unfollow.ids
        )

    @api.model
    def _prepare_lane_job(
        self, mail, smtp_session, alias_domain_id, mail_server, follower_status
    ):
        """Build and route ``mail``'s messages, as core's ``_send`` does
        before ``send_email``; None when there is nothing to hand over (the
        mail is finished then)."""
        if mail.state != "outgoing":
            return None
        IrMailServer = self.env["ir.mail_server"]
        data = LaneMail(mail.id, prefetch=tuple(mail._prefetch_ids))
        items = []
        try:
            emails_from = tools.mail.email_split_and_format(mail.email_from)
            email_from = emails_from[0] if emails_from else mail.email_from
            for email in mail._prepare_outgoing_list(
                mail_server=mail_server or mail.mail_server_id,
                recipients_follower_status=follower_status,
            ):
                sender = self._get_lane_sender(email, alias_domain_id)
                message = sender.build_email(
                    email_from=email_from,
                    **self._get_build_email_values(email),
                )
                partner_id = email.pop("partner_id", None)
                try:
                    prepared = sender._prepare_email_message(message, smtp_session)
                except AssertionError as error:
                    if str(error) != IrMailServer.NO_VALID_RECIPIENT:
                        raise
                    data.failure_type = (
                        "mail_email_missing"
                        if not email.get("email_to")
                        and data.failure_type != "mail_email_invalid"
                        else "mail_email_invalid"
                    )
                    continue
                smtp_from, smtp_to_list, message = prepared
                items.append((message, smtp_from, smtp_to_list))
                data.partner_ids.append(partner_id)
                data.recipients.append(sender._count_recipients(message))
                data.message_ids.append(message["Message-Id"])
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - the mail fails, not the run
            self._fail_unsent(mail, error)
            return None
        if not items:
            self._fail_unsent(mail, None, data.failure_type)
            return None
        return lanes.Job(items=items, data=data)

    @api.model
    def _get_lane_sender(self, email, alias_domain_id):
        """``ir.mail_server`` in the context core's ``_send`` gives it."""
        IrMailServer = self.env["ir.mail_server"]
        validated = email.pop("email_to_normalized", [])
        if not alias_domain_id:
            return IrMailServer.with_context(send_validated_to=validated)
        alias_domain = self.env["mail.alias.domain"].sudo().browse(alias_domain_id)
        return IrMailServer.with_context(
            domain_notifications_email=alias_domain.default_from_email,
            domain_bounce_address=email["headers"].get("Return-Path")
            or alias_domain.bounce_email,
            send_validated_to=validated,
        )

    @api.model
    def _get_build_email_values(self, email):
        """``build_email``'s arguments from one of ``_prepare_outgoing_list``'s
        messages, as core's ``_send`` passes them."""
        return {
            "email_to": email["email_to"],
            "subject": email["subject"],
            "body": email["body"],
            "body_alternative": email["body_alternative"],
            "email_cc": email["email_cc"],
            "reply_to": email["reply_to"],
            "attachments": email["attachments"],
            "message_id": email["message_id"],
            "references": email["references"],
            "object_id": email["object_id"],
            "subtype": "html",
            "subtype_alternative": "plain",
            "headers": email["headers"],
        }

    @api.model
    def _fail_unsent(self, mail, error, failure_type=None):
        """A mail that could not be built or addressed: nothing was sent."""
        if error is None:
            reason = _("No valid recipient address: nothing was sent.")
        elif isinstance(error, AssertionError):
            failure_type, reason = self._get_assertion_failure(error)
        else:
            reason = tools.exception_to_unicode(error)
        failure_type = failure_type or "unknown"
        _logger.warning(
            "Mail %s not sent: %s", mail.id, reason, exc_info=error is not None
        )
        mail.write(
            {
                "state": "exception",
                "failure_reason": reason,
                "failure_type": failure_type,
            }
        )
        mail._postprocess_sent_message(
            success_pids=[], failure_reason=reason, failure_type=failure_type
        )

    @api.model
    def _get_assertion_failure(self, error):
        """Core's reading of ``ir.mail_server``'s address assertions."""
        IrMailServer = self.env["ir.mail_server"]
        code = error.args[0] if error.args else str(error)
        if code == IrMailServer.NO_VALID_FROM:
            return "mail_from_invalid", str(
                error.args[1] if len(error.args) > 1 else code
            )
        if code in (IrMailServer.NO_FOUND_FROM, IrMailServer.NO_FOUND_SMTP_FROM):
            return "mail_from_missing", code
        return "unknown", code
