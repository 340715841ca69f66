from odoo import fields, models


class MailOutboundProviderPreset(models.Model):
    """A mail provider's published SMTP settings and sending limits.

    Choosing one on a new outgoing server fills its host, port, encryption
    and limits. The figures are data (``data/mail_outbound_provider_preset_data.xml``),
    each with the page it comes from, so that an administrator can check
    them against the plan they really have.
    """

    _name = "mail.outbound.provider.preset"
    _inherit = ["mail.outbound.input.guard"]
    _description = "Mail Provider Preset"
    _order = "sequence, name"

    name = fields.Char(required=True, translate=False)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    smtp_host = fields.Char("SMTP Server", required=True)
    smtp_port = fields.Integer("SMTP Port", required=True)
    smtp_encryption = fields.Selection(
        [("none", "None"), ("starttls", "TLS (STARTTLS)"), ("ssl", "SSL/TLS")],
        "Connection Encryption",
        required=True,
    )
    outbound_traffic = fields.Selection(
        [
            ("both", "Transactional and mass mailing"),
            ("transactional", "Transactional only"),
            ("mass", "Mass mailing only"),
        ],
        "Carries",
        required=True,
        default="both",
    )
    limit_unit = fields.Selection(
        [("message", "SMTP messages"), ("recipient", "Recipients")],
        "Limits Count",
        required=True,
        default="message",
        help="What the provider's published limits count.",
    )
    daily_limit = fields.Integer(help="Published limit per day; 0: none published.")
    hourly_limit = fields.Integer(help="Published limit per hour; 0: none published.")
    rate_per_minute = fields.Integer(
        "Rate per Minute", help="Published limit per minute; 0: none published."
    )
    source = fields.Text(
        "Source of the Figures",
        help="Where the provider publishes these settings and limits, and for "
        "which plan.",
    )

    _sql_constraints = [
        (
            "limits_not_negative",
            "CHECK(daily_limit >= 0 AND hourly_limit >= 0 AND rate_per_minute >= 0 "
            "AND smtp_port > 0)",
            "A preset's limits cannot be negative and its port must be above 0.",
        ),
    ]

    def _prepare_server_values(self):
        """What choosing this preset writes on an outgoing server."""
        self.ensure_one()
        return {
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "smtp_encryption": self.smtp_encryption,
            "outbound_traffic": self.outbound_traffic,
            "limit_unit": self.limit_unit,
            "daily_limit": self.daily_limit,
            "hourly_limit": self.hourly_limit,
            "rate_per_minute": self.rate_per_minute,
        }
