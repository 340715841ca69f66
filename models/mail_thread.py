import logging

from odoo import api, models, tools
from odoo.tools import SQL

from ..tools import bounce

_logger = logging.getLogger(__name__)


class MailThread(models.AbstractModel):
    """Bounces that count only when they answer a mail really sent.

    Core counts every bounce against the recipient it names. Here the report
    is read (``tools/bounce.py``) and each recipient it names is matched to
    the delivery log: a mail with the returned Message-ID, accepted by the
    server, sent to that recipient (``mail.delivery.log._find_sent_to``).
    Anyone can write to a bounce address; only a matched recipient has an
    effect, each with its own class:

    * hard: core's counting (``_message_receive_bounce``, the partner's
      bounce counter) and, after ``mail_outbound.bounce_blacklist_after`` of
      them, the mass-mailing blacklist;
    * soft and policy: the notification is marked, nothing is counted; a
      policy bounce counts against the sending server and the alias domain;
    * delayed: nothing but the event on the delivery log.

    A recipient that matches no mail sent is logged and has none of the
    addon's effects: no event, no policy count, and it never brings an
    address closer to the blacklist, which counts matched hard bounces
    (``mail.delivery.event``), not core's counter. Core still counts such a
    report as stock Odoo does (its own partner counter, notifications):
    Odoo's own gateway tests feed reports for mails created in the database
    and never sent, and their result must stay stock's.
    """

    _inherit = "mail.thread"

    @api.model
    def _message_parse_extract_bounce(self, email_message, message_dict):
        values = super()._message_parse_extract_bounce(email_message, message_dict)
        if values.get("is_bounce"):
            values["bounce_report"] = bounce.parse(email_message)
        return values

    @api.model
    def _routing_handle_bounce(self, email_message, message_dict):
        report = message_dict.get("bounce_report")
        if report is None:
            return super()._routing_handle_bounce(email_message, message_dict)
        message_ids = self._get_bounce_message_ids(message_dict)
        entries = report.recipients or self._get_unread_bounce_entries(message_dict)
        counted = matched = False
        for entry in entries:
            log = self.env["mail.delivery.log"]._find_sent_to(
                message_ids, entry.recipient
            )
            if not log:
                _logger.info(
                    "Bounce report %s from %s: %s (%s) matches no mail sent to it "
                    "(Message-ID %s); ignored",
                    message_dict.get("message_id"),
                    message_dict.get("email_from"),
                    entry.recipient,
                    entry.bounce_class or entry.action or "unread",
                    ", ".join(message_ids) or "-",
                )
                continue
            matched = True
            entry_dict = self._prepare_bounce_entry_values(message_dict, entry, log)
            counted |= self._handle_bounce_entry(email_message, entry_dict, entry, log)
        if not matched:
            # nothing of ours: core's own handling, as stock Odoo does
            return super()._routing_handle_bounce(email_message, message_dict)
        if not counted:
            # matched but not counted (soft, policy, delayed): core is not
            # given the address to count
            super()._routing_handle_bounce(
                email_message, self._prepare_bounce_uncounted_values(message_dict)
            )
        return None

    @api.model
    def _get_bounce_message_ids(self, message_dict):
        """The Message-IDs a report carries back: the returned mail's (or
        its headers'), and those core found."""
        report = message_dict["bounce_report"]
        ids = [report.original_message_id, *(message_dict.get("bounced_msg_ids") or [])]
        return list(dict.fromkeys(mid.strip() for mid in ids if mid))

    @api.model
    def _get_unread_bounce_entries(self, message_dict):
        """A report the addon cannot read: the recipient core found, if any,
        without a class (core's behaviour, once matched)."""
        email = message_dict.get("bounced_email")
        if not email:
            return []
        return [bounce.RecipientReport(email, "", "", "", "")]

    @api.model
    def _prepare_bounce_uncounted_values(self, message_dict):
        return dict(
            message_dict,
            bounced_email=False,
            bounced_partner=self.env["res.partner"],
            bounced_message=self.env["mail.message"],
            bounced_msg_ids=[],
        )

    @api.model
    def _prepare_bounce_entry_values(self, message_dict, entry, log):
        """Core's bounce values for one matched recipient of a report."""
        email = tools.email_normalize(entry.recipient)
        partners = (
            self.env["res.partner"].sudo().search([("email_normalized", "=", email)])
        )
        bounced_message = (
            self.env["mail.message"]
            .sudo()
            .search(
                [("message_id", "=", log.message_id)],
                order="create_date DESC, id DESC",
                limit=1,
            )
        )
        return dict(
            message_dict,
            bounced_email=email,
            bounced_partner=partners,
            bounced_message=bounced_message,
            bounced_msg_ids=[log.message_id],
        )

    @api.model
    def _handle_bounce_entry(self, email_message, entry_dict, entry, log):
        """The effects of one matched recipient; whether core counted it."""
        if not entry.bounce_class and not entry.action:
            # unread report: core's behaviour for a mail really sent
            super()._routing_handle_bounce(email_message, entry_dict)
            return True
        self.env["mail.delivery.event"]._record_bounce(log, entry)
        counted = False
        if entry.bounce_class == bounce.HARD and not entry.delayed:
            super()._routing_handle_bounce(email_message, entry_dict)
            self._blacklist_after_hard_bounces(entry_dict, entry)
            counted = True
        if entry.bounce_class == bounce.POLICY and entry.failed:
            bounced_message = entry_dict["bounced_message"]
            alias_domain = (
                bounced_message.record_alias_domain_id if bounced_message else False
            ) or self._get_bounce_alias_domain(entry_dict)
            # what employees read: class, code and meaning, no outsider's words
            reason = bounce.describe(entry, translate=self.env._, diagnostic=False)
            self._count_policy_bounce(log.mail_server_id, reason)
            if alias_domain:
                self._count_policy_bounce(alias_domain, reason)
        if entry.failed:
            self._mark_bounced_notifications(entry_dict, entry)
        return counted

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
        """The red envelope: the class, the code and their meaning. The
        receiving server's own words stay on the delivery log, for
        administrators: whoever wrote the report wrote them."""
        partners = message_dict.get("bounced_partner")
        bounced_message = message_dict.get("bounced_message")
        if not (partners and bounced_message):
            return
        self.env["mail.notification"].sudo().search(
            [
                ("mail_message_id", "=", bounced_message.id),
                ("res_partner_id", "in", partners.ids),
            ]
        ).write(
            {
                "failure_type": "mail_bounce",
                "failure_reason": bounce.describe(
                    entry, translate=self.env._, diagnostic=False
                ),
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
        # matched hard bounces only: core's partner counter also counts
        # reports for mails never sent, which anyone can write
        hard = (
            self.env["mail.delivery.event"]
            .sudo()
            .search_count(
                [
                    ("recipient", "=ilike", email),
                    ("bounce_class", "=", bounce.HARD),
                    ("action", "not ilike", "delayed"),
                ]
            )
        )
        if hard >= limit:
            self.env["mail.blacklist"].sudo()._add(
                email,
                message=self.env._(
                    "Blacklisted after %(count)s hard bounces. Last one: %(reason)s",
                    count=limit,
                    reason=bounce.describe(
                        entry, translate=self.env._, diagnostic=False
                    ),
                ),
            )
