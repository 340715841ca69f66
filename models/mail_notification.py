from odoo import models


class MailNotification(models.Model):
    _inherit = "mail.notification"

    def format_failure_reason(self):
        """A bounce says why: its explanation, not only "Bounce".

        The red envelope's resend dialog shows this line per recipient; the
        gateway writes the explanation as the reason's first paragraph.
        """
        label = super().format_failure_reason()
        if self.failure_type == "mail_bounce" and self.failure_reason:
            return f"{label}: {self.failure_reason.split(chr(10) * 2, 1)[0]}"
        return label
