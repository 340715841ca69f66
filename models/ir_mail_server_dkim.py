from odoo import fields, models


class IrMailServer(models.Model):
    """DKIM signing on every send path, and the DMARC warning of a server.

    Core's ``_prepare_email_message`` is the last step before SMTP shared by
    the queue, a direct ``send_email`` and the Test Connection's real test
    email, and it is where the From is rewritten: signing after it signs the
    headers that leave. Kept apart from ``ir_mail_server.py`` (routing) as
    its own concern.
    """

    _inherit = "ir.mail_server"

    dmarc_warning = fields.Text(
        "DMARC Warning",
        compute="_compute_dmarc_warning",
        groups="base.group_system",
        help="Mails this server would send that the From domain's DMARC policy "
        "p=reject makes receivers refuse.",
    )

    def _compute_dmarc_warning(self):
        for server in self:
            server.dmarc_warning = "\n\n".join(server._get_dmarc_rejections())

    def _get_dmarc_rejections(self):
        """Why mail from each alias domain's default From and from the current
        user, sent through this server, would be refused under p=reject."""
        self.ensure_one()
        AliasDomain = self.env["mail.alias.domain"].sudo()
        # the current user's companies' domains and the shared ones only
        companies = self.env.companies
        domains = AliasDomain.search([]).filtered(
            lambda d: not d.company_ids or d.company_ids & companies
        )
        senders = [(d.default_from_email, d) for d in domains]
        if self.env.user.email:
            senders.append((self.env.user.email, self.env.company.alias_domain_id))
        texts = []
        for email_from, alias_domain in senders:
            if not email_from:
                continue
            decision = self.sudo()._get_routing_decision(
                email_from, fixed_server=self.sudo(), alias_domain=alias_domain or None
            )
            text, rejected = AliasDomain._get_dmarc_summary(
                decision.header_from, decision.envelope_from, self
            )
            if rejected and text not in texts:
                texts.append(text)
        return texts

    def _prepare_email_message(self, message, smtp_session):
        smtp_from, smtp_to_list, message = super()._prepare_email_message(
            message, smtp_session
        )
        self._dkim_sign_message(message)
        return smtp_from, smtp_to_list, message

    def _dkim_sign_message(self, message):
        """Sign ``message`` in place with the active DKIM keys of its From."""
        keys = (
            self.env["mail.outbound.dkim.key"].sudo()._get_signing_key(message["From"])
        )
        for key in keys:
            key._sign(message)
