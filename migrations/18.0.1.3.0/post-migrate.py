"""Limits count what providers count (issue #20): the presets are data
under noupdate, so the providers that count recipients are set here, on
presets an administrator left as shipped. Servers are left as they are:
their administrator chose their limits, in mails, which is closest to
messages."""

RECIPIENT_PRESETS = (
    "provider_preset_microsoft",
    "provider_preset_amazon_ses",
    "provider_preset_brevo",
    "provider_preset_mailgun",
    "provider_preset_sendgrid",
    "provider_preset_mailjet",
)


def migrate(cr, version):
    cr.execute(
        """
        UPDATE mail_outbound_provider_preset preset
           SET limit_unit = 'recipient'
          FROM ir_model_data data
         WHERE data.module = 'mail_outbound'
           AND data.model = 'mail.outbound.provider.preset'
           AND data.res_id = preset.id
           AND data.name = ANY(%s)
        """,
        (list(RECIPIENT_PRESETS),),
    )
