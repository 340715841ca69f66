import logging

from odoo import api, models, tools
from odoo.tools import SQL

from ..tools import bounce

_logger = logging.getLogger(__name__)


class MailThread(models.AbstractModel):
    """Bounces classified before core counts them.

    Core counts every bounce against the recipient. Here the report is read
    (``tools/bounce.py``): only a hard bounce goes through core's counting
    (``_message_receive_bounce``, the partner's bounce counter) and, after
    ``mail_outbound.bounce_blacklist_after`` of them, to the mass-mailing
    blacklist; a soft or policy bounce marks the notification without
    counting; a delayed report changes nothing but the delivery log. Every
    report becomes an event on the delivery log line it answers, and a
    policy bounce counts against the sending server and the alias domain.
    """

    _inherit = "mail.thread"

    @api.model
    def _message_parse_extract_bounce(self, email_message, message_dict):
        values = super()._message_parse_extract_bounce(email_message, message_dict)
        if not values.get("is_bounce"):
            return values
        report = bounce.parse(email_message)
        entry = report.for_recipient(values.get("bounced_email") or "")
        values.update(self._prepare_bounce_values(values, report, entry))
        return values

    @api.model
    def _prepare_bounce_values(self, values, report, entry):
        """What the report adds to core's bounce values: the recipient and
        the bounced message when core found none, and the classification."""
        extra = {"bounce_report": report, "bounce_entry": entry}
        if entry and not values.get("bounced_email"):
            email = tools.email_normalize(entry.recipient)
            extra["bounced_email"] = email
            extra["bounced_partner"] = (
                self.env["res.partner"]
                .sudo()
                .search([("email_normalized", "=", email)])
                if email
                else self.env["res.partner"].sudo()
            )
        if report.original_message_id and not values.get("bounced_message"):
            extra["bounced_message"] = (
                self.env["mail.message"]
                .sudo()
                .search(
                    [("message_id", "=", report.original_message_id)],
                    order="create_date DESC, id DESC",
                    limit=1,
                )
            )
            extra["bounced_msg_ids"] = [report.original_message_id]
        return extra

    @api.model
    def _routing_handle_bounce(self, email_message, message_dict):
        entry = message_dict.get("bounce_entry")
        if entry is None:
            # not a report we can read: core's behaviour, counted as before
            return super()._routing_handle_bounce(email_message, message_dict)
        self._record_bounce_event(message_dict, entry)
        if entry.bounce_class == bounce.HARD and not entry.delayed:
            super()._routing_handle_bounce(email_message, message_dict)
            self._blacklist_after_hard_bounces(message_dict, entry)
        else:
            # core without an address: it only logs, counts nothing
            super()._routing_handle_bounce(
                email_message, dict(message_dict, bounced_email=False)
            )
        if entry.failed:
            self._mark_bounced_notifications(message_dict, entry)
        return None

    @api.model
    def _record_bounce_event(self, message_dict, entry):
        report = message_dict["bounce_report"]
        bounced_message = message_dict.get("bounced_message")
        message_ids = [
            report.original_message_id,
            *(message_dict.get("bounced_msg_ids") or []),
        ]
        if bounced_message:
            message_ids.append(bounced_message.message_id)
        log = self.env["mail.delivery.log"]._find_answered_attempt(message_ids)
        if log:
            self.env["mail.delivery.event"]._record_bounce(log, entry)
        else:
            _logger.info(
                "Bounce for %s (%s): no delivery attempt with Message-ID %s",
                entry.recipient,
                entry.bounce_class,
                ", ".join(filter(None, message_ids)) or "-",
            )
        if entry.bounce_class == bounce.POLICY and entry.failed:
            alias_domain = (
                bounced_message.record_alias_domain_id if bounced_message else False
            ) or self._get_bounce_alias_domain(message_dict)
            reason = bounce.describe(entry, translate=self.env._)
            self._count_policy_bounce(log.mail_server_id, reason)
            if alias_domain:
                self._count_policy_bounce(alias_domain, reason)

    @api.model
    def _count_policy_bounce(self, records, reason):
        """A receiving server refused a mail because of its sender: counted
        on the server that sent it and on its domain, not against the
        recipient (``policy_bounce_count`` of ir.mail_server and
        mail.alias.domain)."""
        if not records:
            return
        # one statement: two reports processed at once both count
        self.env.cr.execute(
            SQL(
                "UPDATE %s SET policy_bounce_count = "
                "COALESCE(policy_bounce_count, 0) + 1, last_policy_bounce = %s "
                "WHERE id IN %s",
                SQL.identifier(records._table),
                (reason or "")[:500],
                tuple(records.ids),
            )
        )
        records.invalidate_recordset(["policy_bounce_count", "last_policy_bounce"])

    @api.model
    def _get_bounce_alias_domain(self, message_dict):
        """The alias domain whose bounce address received the report."""
        recipients = {
            tools.email_normalize(address)
            for address in tools.email_split(message_dict.get("to") or "")
        }
        return (
            self.env["mail.alias.domain"]
            .sudo()
            .search([])
            .filtered(lambda domain: domain.bounce_email in recipients)[:1]
        )

    @api.model
    def _mark_bounced_notifications(self, message_dict, entry):
        """The red envelope: the class and the diagnostic in plain words,
        then the report itself as core keeps it."""
        partners = message_dict.get("bounced_partner")
        bounced_message = message_dict.get("bounced_message")
        if not (partners and bounced_message):
            return
        reason = bounce.describe(entry, translate=self.env._)
        report = tools.html2plaintext(message_dict.get("body") or "").strip()
        self.env["mail.notification"].sudo().search(
            [
                ("mail_message_id", "=", bounced_message.id),
                ("res_partner_id", "in", partners.ids),
            ]
        ).write(
            {
                "failure_type": "mail_bounce",
                "failure_reason": f"{reason}\n\n{report}" if report else reason,
                "notification_status": "bounce",
            }
        )

    @api.model
    def _get_bounce_blacklist_after(self):
        """Hard bounces after which an address is blacklisted (0: never)."""
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.bounce_blacklist_after"
        )

    @api.model
    def _blacklist_after_hard_bounces(self, message_dict, entry):
        email = message_dict.get("bounced_email")
        limit = self._get_bounce_blacklist_after()
        if not (email and limit):
            return
        partners = message_dict.get("bounced_partner") or self.env["res.partner"]
        if any(partner.message_bounce >= limit for partner in partners.sudo()):
            self.env["mail.blacklist"].sudo()._add(
                email,
                message=self.env._(
                    "Blacklisted after %(count)s hard bounces. Last one: %(reason)s",
                    count=limit,
                    reason=bounce.describe(entry, translate=self.env._),
                ),
            )
