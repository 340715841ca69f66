import logging

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, ValidationError

from ..tools import addresses, dmarc, dns_check, readiness

_logger = logging.getLogger(__name__)

_SEVERITY = {"ok": 0, "warning": 1, "error": 2}


class MailAliasDomain(models.Model):
    _name = "mail.alias.domain"
    _inherit = ["mail.alias.domain", "mail.outbound.input.guard"]

    # readiness of the domain for sending (issue 12): system administrators only
    dkim_key_ids = fields.One2many(
        "mail.outbound.dkim.key",
        "alias_domain_id",
        "DKIM Keys",
        groups="base.group_system",
    )
    readiness_check_ids = fields.One2many(
        "mail.outbound.domain.check",
        "alias_domain_id",
        "DNS Checks",
        groups="base.group_system",
    )
    sending_address_ids = fields.One2many(
        "mail.outbound.sending.address",
        "alias_domain_id",
        "Addresses Odoo Sends As",
        groups="base.group_system",
    )
    readiness_state = fields.Selection(
        [
            ("unchecked", "Not Checked"),
            ("ok", "Ready"),
            ("warning", "Ready, with Warnings"),
            ("error", "Not Ready"),
        ],
        "Sending Readiness",
        default="unchecked",
        readonly=True,
        copy=False,
    )
    readiness_checked_at = fields.Datetime("DNS Checked On", readonly=True, copy=False)
    dmarc_policy = fields.Selection(
        [("none", "none"), ("quarantine", "quarantine"), ("reject", "reject")],
        "DMARC Policy",
        readonly=True,
        copy=False,
        help="The DMARC policy found at the last check, at _dmarc.<domain> or "
        "at its organizational domain.",
    )
    dmarc_adkim = fields.Selection(
        [("r", "Relaxed"), ("s", "Strict")], "DKIM Alignment", readonly=True
    )
    dmarc_aspf = fields.Selection(
        [("r", "Relaxed"), ("s", "Strict")], "SPF Alignment", readonly=True
    )
    dmarc_found_at = fields.Char("DMARC Record Of", readonly=True)

    policy_bounce_count = fields.Integer(
        "Policy Bounces",
        readonly=True,
        help="Mails sent from this domain that receiving servers refused "
        "because of the sender (SPF, DKIM, DMARC, blocklists): check the "
        "domain's DNS records and the sending servers.",
    )
    last_policy_bounce = fields.Char(readonly=True)

    @api.model
    def _check_default_from_value(self, value):
        # core would rewrite "a\r\nBcc: x" into another full address, which
        # the routing then forces on every mail: refuse it as typed
        if value and isinstance(value, str) and addresses.has_line_break(value):
            raise ValidationError(
                _(
                    "Default From: remove the line break or NUL character; type "
                    "one name (notifications) or address."
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._check_default_from_value(vals.get("default_from"))
        domains = super().create(vals_list)
        self.env["ir.mail_server"]._clear_forced_from_cache()
        # "Addresses Odoo Sends As" opened empty until Refresh
        domains._refresh_sending_addresses()
        return domains

    def write(self, vals):
        self._check_default_from_value(vals.get("default_from"))
        result = super().write(vals)
        if {"default_from", "name"} & set(vals):
            self.env["ir.mail_server"]._clear_forced_from_cache()
        if {"default_from", "name", "bounce_alias"} & set(vals):
            self._refresh_sending_addresses()
        return result

    def _refresh_sending_addresses(self):
        Address = self.env["mail.outbound.sending.address"].sudo()
        for domain in self.sudo():
            Address._refresh(domain)

    def unlink(self):
        result = super().unlink()
        self.env["ir.mail_server"]._clear_forced_from_cache()
        return result

    # -- readiness --------------------------------------------------------
    def action_check_readiness(self):
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can check sending domains.")
            )
        self._check_readiness()
        return True

    def action_new_dkim_key(self):
        """A new key (a new selector) for this domain: the rotation's first step."""
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(_("Only system administrators can manage DKIM keys."))
        key = self.env["mail.outbound.dkim.key"].create({"alias_domain_id": self.id})
        return {
            "type": "ir.actions.act_window",
            "res_model": key._name,
            "res_id": key.id,
            "view_mode": "form",
        }

    def action_refresh_sending_addresses(self):
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can check sending domains.")
            )
        for domain in self:
            self.env["mail.outbound.sending.address"]._refresh(domain)
        return True

    def action_test_sending_addresses(self):
        """Refresh, then MAIL FROM each address at its server."""
        self.action_refresh_sending_addresses()
        recipient = self.env["ir.mail_server"].sudo()._get_test_email_to()
        self.sudo().sending_address_ids._test_with_providers(recipient)
        return True

    @api.model
    def _cron_check_readiness(self):
        domains = self.search([])
        # domains created before the list was filled on create
        domains.filtered(
            lambda d: not d.sending_address_ids
        )._refresh_sending_addresses()
        domains._check_readiness()

    @api.model
    def _get_dns_resolver(self, timeout=dns_check.TIMEOUT):
        """The resolver asking ``mail_outbound.dns_nameserver``, else the system's."""
        nameserver = self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.dns_nameserver"
        )
        return dns_check.make_resolver(nameserver, timeout)

    def _get_sending_servers(self):
        """The outgoing servers that send for this domain's bounce address."""
        self.ensure_one()
        IrMailServer = self.env["ir.mail_server"].sudo()
        address = self.bounce_email or f"{self.bounce_alias or 'bounce'}@{self.name}"
        return IrMailServer.search([]).filtered(
            lambda s: not s.from_filter
            or IrMailServer._match_from_filter(address, s.from_filter)
        )

    def _prepare_readiness_senders(self, resolver):
        """``[(server, (name, ip, envelope sender))]`` for the SPF evaluation."""
        self.ensure_one()
        envelope = self.bounce_email or f"bounce@{self.name}"
        senders = []
        for server in self._get_sending_servers():
            try:
                ips = dns_check.addresses_of(resolver, server.smtp_host or "")
            except dns_check.DnsError:
                ips = []
            for ip in ips or [""]:
                senders.append((server, (server.name, ip, envelope)))
        host = tools.config.get("smtp_server")
        if not senders and host:
            # no server record: odoo-bin's --smtp server sends everything
            name = f"odoo-bin ({host})"
            try:
                ips = dns_check.addresses_of(resolver, host)
            except dns_check.DnsError:
                ips = []
            senders += [(None, (name, ip, envelope)) for ip in ips or [""]]
        return senders

    def _check_readiness(self):
        Check = self.env["mail.outbound.domain.check"].sudo()
        resolver = self._get_dns_resolver()
        for domain in self.sudo():
            senders = domain._prepare_readiness_senders(resolver)
            keys = domain.dkim_key_ids.filtered(lambda k: k.state != "retired")
            checks = readiness.check_domain(
                resolver,
                domain.name,
                [sender for _server, sender in senders],
                [(k.selector, k.record_value) for k in keys],
                [a for a in (domain.catchall_email, domain.bounce_email) if a],
            )
            servers = {sender[0]: server for server, sender in senders}
            domain.readiness_check_ids.unlink()
            Check.create(
                [
                    domain._prepare_check_values(index, check, servers)
                    for index, check in enumerate(checks)
                ]
            )
            worst = max((_SEVERITY[c.status] for c in checks), default=0)
            policy = next((c.data for c in checks if c.kind == "dmarc" and c.data), {})
            domain.write(
                {
                    "readiness_state": {0: "ok", 1: "warning", 2: "error"}[worst],
                    "readiness_checked_at": fields.Datetime.now(),
                    "dmarc_policy": policy.get("policy") or False,
                    "dmarc_adkim": policy.get("adkim") or False,
                    "dmarc_aspf": policy.get("aspf") or False,
                    "dmarc_found_at": policy.get("found_at") or False,
                }
            )
            keys.filtered(
                lambda k: k.state in ("draft", "published")
            )._check_published()

    def _prepare_check_values(self, index, check, servers):
        server = servers.get(check.subject) if check.kind == "spf" else None
        return {
            "alias_domain_id": self.id,
            "sequence": index,
            "kind": check.kind,
            "subject": check.subject,
            "mail_server_id": server.id if server else False,
            "status": check.status,
            "result": check.data.get("result", ""),
            "detail": check.detail,
            "record": check.record,
        }

    # -- DMARC --------------------------------------------------------------
    @api.model
    def _get_dmarc_policy(self, from_domain):
        """The DMARC policy of ``from_domain``: the last check's for an alias
        domain, else looked up now. None without a record or an answer."""
        from_domain = (from_domain or "").lower()
        own = self.sudo().search([("name", "=", from_domain)], limit=1)
        if own.readiness_checked_at:
            if not own.dmarc_policy:
                return None
            return dmarc.Policy(
                domain=own.dmarc_found_at or from_domain,
                p=own.dmarc_policy,
                adkim=own.dmarc_adkim or "r",
                aspf=own.dmarc_aspf or "r",
            )
        if not from_domain:
            return None
        try:
            # shown on forms: a slow DNS must not hold the screen long
            return dmarc.lookup(self._get_dns_resolver(timeout=2), from_domain)
        except dns_check.DnsError:
            _logger.info("DMARC of %s: DNS did not answer", from_domain)
            return None

    @api.model
    def _get_dmarc_verdict(self, header_from, envelope_from, server=None):
        """The alignment verdict of a mail leaving with these addresses."""
        address = tools.email_normalize(header_from or "") or ""
        policy = self._get_dmarc_policy(dmarc._domain(address))
        key = self.env["mail.outbound.dkim.key"]._get_signing_key(address)
        spf_pass = True
        if server:
            # the last readiness check's SPF result for this server, if any
            results = (
                self.env["mail.outbound.domain.check"]
                .sudo()
                .search(
                    [
                        ("mail_server_id", "in", server.ids),
                        ("kind", "=", "spf"),
                        ("result", "!=", False),
                    ]
                )
            )
            spf_pass = not results or all(r.result == "pass" for r in results)
        return dmarc.verdict(
            address,
            envelope_from,
            key[:1].alias_domain_id.name if key else "",
            policy,
            spf_pass=spf_pass,
        )

    @api.model
    def _explain_dmarc_verdict(self, verdict, envelope_from, dkim_domain=""):
        """One paragraph for an administrator: aligned or not, and what follows."""
        yes, no = _("yes"), _("no")
        text = _(
            "DMARC for %(domain)s: SPF aligned: %(spf)s (envelope %(envelope)s); "
            "DKIM aligned: %(dkim)s (%(signature)s).",
            domain=verdict.from_domain,
            spf=yes if verdict.spf_aligned else no,
            envelope=envelope_from or "-",
            dkim=yes if verdict.dkim_aligned else no,
            signature=_("signed d=%(d)s", d=dkim_domain)
            if dkim_domain
            else _("not signed by Odoo"),
        )
        if verdict.dmarc_pass:
            return text + " " + _("DMARC would pass.")
        if not verdict.policy:
            return (
                text
                + " "
                + _(
                    "DMARC would fail, but %(domain)s publishes no DMARC policy.",
                    domain=verdict.from_domain,
                )
            )
        if verdict.rejected:
            return (
                text
                + " "
                + _(
                    "DMARC would fail and %(domain)s publishes p=reject: receivers "
                    "refuse this mail. Send from an address of a domain this server "
                    "may send for, or sign it with a DKIM key of that domain.",
                    domain=verdict.from_domain,
                )
            )
        return (
            text
            + " "
            + _(
                "DMARC would fail; under p=%(policy)s receivers %(effect)s.",
                policy=verdict.policy,
                effect=_("file it as spam")
                if verdict.policy == "quarantine"
                else _("only report it"),
            )
        )

    @api.model
    def _get_dmarc_summary(self, header_from, envelope_from, server=None):
        """``(text, would be rejected)`` for a From, envelope and server."""
        if not header_from:
            return "", False
        verdict = self._get_dmarc_verdict(header_from, envelope_from, server)
        key = self.env["mail.outbound.dkim.key"]._get_signing_key(header_from)
        text = self._explain_dmarc_verdict(
            verdict, envelope_from, key[:1].alias_domain_id.name if key else ""
        )
        return text, verdict.rejected
