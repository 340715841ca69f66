import tempfile

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import email_normalize

from ..tools import smtp_diagnosis


class MailOutboundSendingAddress(models.Model):
    """An address Odoo sends as on an alias domain (the documentation's
    "Local-part values"), with the server that sends it, whether that
    server's FROM filter accepts it, and whether the provider accepted it in
    MAIL FROM the last time it was tested.

    Rebuilt by the alias domain's *Refresh*; the provider column by *Test
    with Providers* (a real MAIL FROM per address, nothing is sent).
    """

    _name = "mail.outbound.sending.address"
    _description = "Address Odoo Sends As"
    _order = "alias_domain_id, sequence, id"

    alias_domain_id = fields.Many2one(
        "mail.alias.domain", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer()
    email = fields.Char(required=True)
    usage = fields.Char("Used As", required=True)
    mail_server_id = fields.Many2one("ir.mail_server", "Sent By", ondelete="set null")
    filter_accepts = fields.Boolean(
        "FROM Filter Accepts",
        help="Unchecked: the routing rewrites this From to the notification "
        "address, as the server's FROM filter does not allow it.",
    )
    provider_status = fields.Selection(
        [
            ("untested", "Not Tested"),
            ("ok", "Accepted"),
            ("failed", "Refused"),
        ],
        "Provider",
        default="untested",
        required=True,
    )
    provider_reply = fields.Char()

    @api.model
    def _get_domain_addresses(self, alias_domain):
        """``[(email, usage)]`` sent as on ``alias_domain``, in the doc's order."""
        found = [
            (alias_domain.bounce_email, _("Bounce alias (envelope sender)")),
            (alias_domain.default_from_email, _("Default From (notifications)")),
        ]
        admin = self.env.ref("base.user_admin", raise_if_not_found=False)
        if admin:
            found.append((admin.sudo().email, _("Administrator")))
        root = self.env.ref("base.partner_root", raise_if_not_found=False)
        if root:
            found.append((root.sudo().email, _("OdooBot")))
        if "mailing.mailing" in self.env:
            for mailing in self.env["mailing.mailing"].sudo().search([]):
                found.append(
                    (mailing.email_from, _("Mailing: %(name)s", name=mailing.subject))
                )
        for template in (
            self.env["mail.template"]
            .sudo()
            .search([("email_from", "ilike", "@" + alias_domain.name)])
        ):
            found.append(
                (template.email_from, _("Template: %(name)s", name=template.name))
            )
        suffix = "@" + alias_domain.name.lower()
        result, seen = [], set()
        for address, usage in found:
            normalized = email_normalize(address or "") or ""
            # a dynamic template From ({{ ... }}) is not one address
            if not normalized.endswith(suffix) or (normalized, usage) in seen:
                continue
            seen.add((normalized, usage))
            result.append((normalized, usage))
        return result

    @api.model
    def _refresh(self, alias_domain):
        IrMailServer = self.env["ir.mail_server"].sudo()
        alias_domain.sending_address_ids.sudo().unlink()
        values = []
        for index, (address, usage) in enumerate(
            self._get_domain_addresses(alias_domain)
        ):
            decision = IrMailServer._get_routing_decision(
                address, alias_domain=alias_domain
            )
            values.append(
                {
                    "alias_domain_id": alias_domain.id,
                    "sequence": index,
                    "email": address,
                    "usage": usage,
                    "mail_server_id": decision.server_id or False,
                    "filter_accepts": not decision.rewritten,
                }
            )
        return self.sudo().create(values)

    def _test_with_providers(self, recipient):
        """MAIL FROM each address at the server sending it (DATA is not sent)."""
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can test outgoing mail servers.")
            )
        IrMailServer = self.env["ir.mail_server"].sudo()
        for server in self.mail_server_id:
            rows = self.filtered(lambda r, s=server: r.mail_server_id == s)
            with tempfile.TemporaryDirectory(prefix="mail_outbound_test_") as tmp:
                steps = smtp_diagnosis.diagnose(
                    server._get_smtp_config(tmp),
                    rows.mapped("email"),
                    recipient,
                    blocked_ports=IrMailServer._get_blocked_ports(),
                )
            results = {
                step.params.get("sender"): step
                for step in steps
                if step.key == "mail_from"
            }
            for row in rows:
                step = results.get(row.email)
                row.write(
                    {
                        "provider_status": step.status
                        if step and step.status in ("ok", "failed")
                        else "untested",
                        "provider_reply": f"{step.code} {step.reply}".strip()
                        if step
                        else _("The test stopped before MAIL FROM."),
                    }
                )
