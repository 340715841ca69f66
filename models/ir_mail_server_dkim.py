from odoo import models


class IrMailServer(models.Model):
    """DKIM signing on every send path.

    Core's ``_prepare_email_message`` is the last step before SMTP shared by
    the queue, a direct ``send_email`` and the Test Connection's real test
    email, and it is where the From is rewritten: signing after it signs the
    headers that leave. Kept apart from ``ir_mail_server.py`` (routing) as
    its own concern.
    """

    _inherit = "ir.mail_server"

    def _prepare_email_message(self, message, smtp_session):
        smtp_from, smtp_to_list, message = super()._prepare_email_message(
            message, smtp_session
        )
        self._dkim_sign_message(message)
        return smtp_from, smtp_to_list, message

    def _dkim_sign_message(self, message):
        """Sign ``message`` in place if its From has an active DKIM key."""
        key = (
            self.env["mail.outbound.dkim.key"].sudo()._get_signing_key(message["From"])
        )
        if key:
            key._sign(message)
