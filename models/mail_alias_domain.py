import logging

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, ValidationError

from ..tools import addresses, dmarc, dns_check, readiness

_logger = logging.getLogger(__name__)

_SEVERITY = {"ok": 0, "warning": 1, "error": 2}
_KIND_ORDER = {"mx": 0, "spf": 1, "dkim": 2, "dmarc": 3}


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
    readiness_checked_at = fields.Datetime(
        "DNS Checked On",
        readonly=True,
        copy=False,
        help="The last check DNS answered in full.",
    )
    readiness_stale = fields.Boolean(
        "DNS Did Not Answer",
        readonly=True,
        copy=False,
        help="The last check got no answer from DNS for some records: their "
        "results are those of the check before, marked stale.",
    )
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
    dmarc_sp = fields.Selection(
        [("none", "none"), ("quarantine", "quarantine"), ("reject", "reject")],
        "DMARC Subdomain Policy",
        readonly=True,
        copy=False,
    )

    policy_bounce_count = fields.Integer(
        "Policy Bounces",
        readonly=True,
        help="Mails sent from this domain that receiving servers refused "
        "because of the sender (SPF, DKIM, DMARC, blocklists): check the "
        "domain's DNS records and the sending servers.",
    )
    last_policy_bounce = fields.Char(readonly=True)

    @api.constrains("name")
    def _check_name_dns(self):
        """The name is looked up in DNS: it must be a DNS domain name."""
        messages = {
            "empty": _("type a domain name"),
            "too_long": _("a domain name has at most 253 characters"),
            "label_too_long": _("each part between dots has at most 63 characters"),
            "empty_label": _("two dots follow each other"),
            "bad_label": _("use letters, digits and hyphens"),
        }
        for domain in self:
            try:
                addresses.check_domain_name(domain.name)
            except addresses.DomainNameError as error:
                raise ValidationError(
                    _(
                        "Alias domain %(name)s is not a DNS domain name: %(problem)s.",
                        name=(domain.name or "")[:80],
                        problem=messages[error.problem],
                    )
                ) from None

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
            # a domain without its required name or bounce alias is not one
            # yet (Odoo's own tests empty the bounce alias in the cache and
            # never flush it): refreshing would flush it into NOT NULL
            self.filtered(
                lambda domain: domain.name and domain.bounce_alias
            )._refresh_sending_addresses()
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
    def _check_company_access(self):
        """AccessError unless every domain is shared (no company) or one of
        the current user's companies is on it; called before any side effect."""
        if self.env.su:
            return
        companies = self.env.companies
        foreign = self.sudo().filtered(
            lambda d: d.company_ids and not d.company_ids & companies
        )
        if foreign:
            raise AccessError(
                _(
                    "%(domains)s: this alias domain belongs to companies you "
                    "cannot act for.",
                    domains=", ".join(foreign.mapped("name")),
                )
            )

    def action_check_readiness(self):
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can check sending domains.")
            )
        self._check_company_access()
        self._check_readiness()
        return True

    def action_new_dkim_key(self):
        """A new key (a new selector) for this domain: the rotation's first step."""
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(_("Only system administrators can manage DKIM keys."))
        self._check_company_access()
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
        self._check_company_access()
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
        # the From domains a server form warns about: looked up here, so
        # that forms read stored policies and never wait for DNS
        self.env["mail.outbound.dmarc.policy"]._refresh(self._get_watched_domains())

    @api.model
    def _get_watched_domains(self):
        """Domains of the default Froms, of internal users' addresses and of
        the policies already stored (kept fresh)."""
        emails = self.sudo().search([]).mapped("default_from_email")
        emails += (
            self.env["res.users"]
            .sudo()
            .with_context(active_test=False)  # OdooBot sends too
            .search([("share", "=", False), ("email", "!=", False)])
            .mapped("email")
        )
        domains = {addresses.address_domain_key(email) for email in emails if email}
        domains |= set(
            self.env["mail.outbound.dmarc.policy"].sudo().search([]).mapped("name")
        )
        domains -= set(self.sudo().search([]).mapped("name"))
        return sorted(d for d in domains if d)

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
        # the routing's matcher (IDN, trailing dot), not core's _match_from_filter
        return IrMailServer.search([]).filtered(
            lambda s: addresses.parse_filter(s.from_filter or "").allows(address)
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
        resolver = self._get_dns_resolver()
        for domain in self.sudo():
            try:
                with self.env.cr.savepoint():
                    domain._check_readiness_one(resolver)
            except Exception:  # noqa: BLE001 - one bad domain never stops the others
                _logger.exception(
                    "Sending readiness of alias domain %s could not be checked",
                    domain.id,
                )

    def _check_readiness_one(self, resolver):
        self.ensure_one()
        now = fields.Datetime.now()
        senders = self._prepare_readiness_senders(resolver)
        keys = self.dkim_key_ids.filtered(lambda k: k.state != "retired")
        checks = readiness.check_domain(
            resolver,
            self.name,
            [sender for _server, sender in senders],
            [(k.selector, k.record_value) for k in keys],
            [a for a in (self.catchall_email, self.bounce_email) if a],
        )
        servers = {sender[0]: server for server, sender in senders}
        silent = {c.kind for c in checks if c.data.get("dns_error")}
        old = self.readiness_check_ids
        # an outage keeps the last answered results of its kind, marked stale
        kept = old.filtered(lambda c: c.kind in silent and not c.no_answer)
        (old - kept).unlink()
        kept.write({"stale": True})
        self.env["mail.outbound.domain.check"].sudo().create(
            [
                self._prepare_check_values(index, check, servers, now)
                for index, check in enumerate(checks)
            ]
        )
        results = [c for c in checks if not c.data.get("dns_error")]
        results += [c for c in kept]
        severities = [_SEVERITY[c.status] for c in results]
        if {c.kind for c in checks if c.data.get("dns_error")} - set(
            kept.mapped("kind")
        ):
            severities.append(_SEVERITY["error"])  # nothing to fall back on
        worst = max(severities, default=0)
        values = {
            "readiness_state": {0: "ok", 1: "warning", 2: "error"}[worst],
            "readiness_stale": bool(silent),
        }
        if not silent:
            values["readiness_checked_at"] = now
        if "dmarc" not in silent:
            policy = next((c.data for c in checks if c.kind == "dmarc"), {})
            values.update(
                {
                    "dmarc_policy": policy.get("policy") or False,
                    "dmarc_sp": policy.get("sp") or False,
                    "dmarc_adkim": policy.get("adkim") or False,
                    "dmarc_aspf": policy.get("aspf") or False,
                    "dmarc_found_at": policy.get("found_at") or False,
                }
            )
            if not any(c.data.get("invalid_name") for c in checks):
                self.env["mail.outbound.dmarc.policy"]._store(
                    addresses.domain_key(self.name),
                    dmarc.Policy(
                        domain=policy["found_at"],
                        p=policy["p"],
                        sp=policy.get("sp") or "",
                        adkim=policy["adkim"],
                        aspf=policy["aspf"],
                    )
                    if policy.get("p")
                    else None,
                )
        else:
            self.env["mail.outbound.dmarc.policy"]._store(
                addresses.domain_key(self.name), answered=False
            )
        self.write(values)
        if "dkim" not in silent:
            keys.filtered(
                lambda k: k.state in ("draft", "published")
            )._check_published()

    def _prepare_check_values(self, index, check, servers, checked_at=False):
        server = servers.get(check.subject) if check.kind == "spf" else None
        return {
            "checked_at": checked_at,
            "no_answer": bool(check.data.get("dns_error")),
            "alias_domain_id": self.id,
            # kinds in the order fixed; a stale line kept keeps its place
            "sequence": _KIND_ORDER.get(check.kind, 9) * 1000 + index,
            "kind": check.kind,
            "subject": check.subject,
            "mail_server_id": server.id if server else False,
            "status": check.status,
            "result": check.data.get("result", ""),
            "detail": check.detail,
            "record": check.record,
        }

    # -- DMARC --------------------------------------------------------------
    # Everything below reads stored results (the Readiness tab, the stored
    # DMARC policies): it runs in form computes, which never ask DNS.
    @api.model
    def _get_dmarc_policy(self, from_domain):
        """The stored DMARC policy of ``from_domain`` (None without a record
        or never looked up)."""
        return self.env["mail.outbound.dmarc.policy"]._get_policy(from_domain)[0]

    def _get_readiness_lines(self, kind):
        self.ensure_one()
        return self.sudo().readiness_check_ids.filtered(
            lambda c: c.kind == kind and not c.no_answer
        )

    @api.model
    def _get_spf_readiness(self, envelope_from, server=None):
        """``(passes, note)``: does the Readiness tab of the envelope's alias
        domain say SPF passes for ``server`` (None: odoo-bin's server)?"""
        domain = addresses.address_domain_key(envelope_from or "")
        alias = (
            self.sudo().search([("name", "=ilike", domain)], limit=1)
            if domain
            else None
        )
        if not alias or not alias.readiness_check_ids:
            return False, _(
                "SPF of %(domain)s not checked (Check DNS on its alias domain).",
                domain=domain or "-",
            )
        lines = alias._get_readiness_lines("spf")
        record = lines.filtered(lambda c: not c.result and not c.mail_server_id)
        if not record or any(c.status == "error" for c in record):
            return False, _(
                "SPF of %(domain)s fails on the Readiness tab: %(detail)s",
                domain=alias.name,
                detail=record[:1].detail or _("no answer"),
            )
        evaluated = lines.filtered(
            lambda c: c.result
            and (c.mail_server_id == server if server else not c.mail_server_id)
        )
        if not evaluated:
            return False, _(
                "SPF of %(domain)s was not evaluated for this server on the "
                "Readiness tab.",
                domain=alias.name,
            )
        failed = evaluated.filtered(lambda c: c.result != "pass")
        if failed:
            return False, _(
                "SPF %(result)s for this server on the Readiness tab of %(domain)s.",
                result=failed[0].result,
                domain=alias.name,
            )
        return True, ""

    @api.model
    def _get_dkim_readiness(self, keys):
        """``(passes, note)``: are the signing ``keys`` found in DNS as the
        Readiness tab last saw them?"""
        if not keys:
            return False, ""
        for key in keys.sudo():
            lines = key.alias_domain_id._get_readiness_lines("dkim").filtered(
                lambda c, key=key: c.subject == key.record_name
            )
            if all(line.status == "ok" for line in lines):
                return True, ""
        return False, _(
            "The DKIM key of %(domain)s is not found in DNS on the Readiness tab.",
            domain=keys[:1].sudo().alias_domain_id.name,
        )

    @api.model
    def _get_dmarc_verdict(self, header_from, envelope_from, server=None):
        """The alignment verdict of a mail leaving with these addresses."""
        return self._get_dmarc_assessment(header_from, envelope_from, server)[0]

    @api.model
    def _get_dmarc_assessment(self, header_from, envelope_from, server=None):
        """``(verdict, notes, policy known)`` from the stored results."""
        address = tools.email_normalize(header_from or "") or ""
        from_domain = dmarc._domain(address)
        policy, row = self.env["mail.outbound.dmarc.policy"]._get_policy(from_domain)
        keys = self.env["mail.outbound.dkim.key"]._get_signing_key(address)
        spf_pass, spf_note = self._get_spf_readiness(envelope_from, server)
        dkim_pass, dkim_note = self._get_dkim_readiness(keys)
        verdict = dmarc.verdict(
            address,
            envelope_from,
            keys[:1].sudo().alias_domain_id.name if keys else "",
            policy,
            spf_pass=spf_pass,
            dkim_pass=dkim_pass,
        )
        notes = [note for note in (spf_note, dkim_note) if note]
        if row.stale:
            notes.append(
                _(
                    "DNS did not answer at the last look-up of %(domain)s: "
                    "policy as found on %(date)s.",
                    domain=row.name,
                    date=row.checked_at,
                )
            )
        return verdict, notes, bool(row)

    @api.model
    def _explain_dmarc_verdict(
        self, verdict, envelope_from, dkim_domain="", notes=(), known=True
    ):
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
        text = " ".join([text, *notes])
        if verdict.dmarc_pass:
            return text + " " + _("DMARC would pass.")
        if not known:
            return (
                text
                + " "
                + _(
                    "DMARC would fail; the DMARC policy of %(domain)s has not "
                    "been looked up yet (the daily check, or Look Up DMARC in "
                    "the Routing Preview).",
                    domain=verdict.from_domain,
                )
            )
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
        verdict, notes, known = self._get_dmarc_assessment(
            header_from, envelope_from, server
        )
        key = self.env["mail.outbound.dkim.key"]._get_signing_key(header_from)
        text = self._explain_dmarc_verdict(
            verdict,
            envelope_from,
            key[:1].sudo().alias_domain_id.name if key else "",
            notes=notes,
            known=known,
        )
        return text, verdict.rejected
