from odoo import api, fields, models

from ..tools import bounce


class MailDeliveryEvent(models.Model):
    """Something the receiving side told about a delivery attempt: a bounce.

    Attached to the delivery log line of the attempt it answers (matched by
    Message-ID), so that "what happened to this mail?" has the whole story:
    the SMTP server's acceptance, then the recipient's server's report.
    """

    _name = "mail.delivery.event"
    _description = "Mail Delivery Event"
    _order = "create_date desc, id desc"
    _rec_name = "recipient"

    log_id = fields.Many2one(
        "mail.delivery.log",
        "Delivery Attempt",
        required=True,
        ondelete="cascade",
        index=True,
    )
    company_id = fields.Many2one(related="log_id.company_id", store=True, index=True)
    mail_server_id = fields.Many2one(related="log_id.mail_server_id")
    kind = fields.Selection([("bounce", "Bounce")], required=True, default="bounce")
    recipient = fields.Char()
    bounce_class = fields.Selection(
        [
            (bounce.HARD, "Hard"),
            (bounce.SOFT, "Soft"),
            (bounce.POLICY, "Policy"),
        ],
        "Class",
    )
    action = fields.Char(help="The report's action: failed, delayed...")
    status = fields.Char(
        "Status Code", help="RFC 3463 enhanced status code, e.g. 5.1.1."
    )
    # written by whoever wrote the report, who may be anyone: administrators
    # only, and shown quoted (issue #21)
    diagnostic = fields.Text(
        help="What the receiving server said, as the report quotes it.",
        groups="base.group_system",
    )
    description = fields.Text("Explanation")

    @api.model
    def _record_bounce(self, log, entry):
        """One bounce event on ``log`` for a report's ``entry``."""
        return self.sudo().create(
            {
                "log_id": log.id,
                "kind": "bounce",
                "recipient": entry.recipient[:250],
                "bounce_class": entry.bounce_class or False,
                "action": entry.action,
                "status": entry.status,
                "diagnostic": entry.diagnostic,
                # the explanation is ours; the server's words stay in diagnostic
                "description": bounce.describe(
                    entry, translate=self.env._, diagnostic=False
                ),
            }
        )
