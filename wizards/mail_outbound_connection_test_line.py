from odoo import fields, models


class MailOutboundConnectionTestLine(models.TransientModel):
    """One step of a Test Connection checklist."""

    _name = "mail.outbound.connection.test.line"
    _description = "Outgoing Server Test Step"
    _order = "sequence, id"

    test_id = fields.Many2one(
        "mail.outbound.connection.test", required=True, ondelete="cascade"
    )
    sequence = fields.Integer()
    step = fields.Text(required=True)  # wrapped, never cut
    status = fields.Selection(
        [
            ("ok", "OK"),
            ("warning", "Warning"),
            ("failed", "Failed"),
            ("skipped", "Skipped"),
        ],
        required=True,
    )
    # Text: wrapped in the checklist, never cut
    detail = fields.Text()
    smtp_code = fields.Integer("SMTP Code")
    smtp_reply = fields.Text("Server Reply")
    temporary = fields.Boolean(help="A 4xx reply: the server asks to retry later.")
    fix = fields.Text("How to Fix")
    duration_ms = fields.Integer("Time (ms)")
