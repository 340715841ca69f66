from odoo import api, fields, models

from ..tools import addresses, dmarc, dns_check


class MailOutboundDmarcPolicy(models.Model):
    """The DMARC policy of a From domain, as the last successful look-up found it.

    Forms (a server's DMARC warning, the Routing Preview, a mail's Routing
    tab) read these rows and never ask DNS: a slow or dead resolver must not
    hold a screen. The rows are written by the checks that may take time:
    an alias domain's *Check DNS*, the daily check (alias domains, the
    addresses of users and default Froms) and the preview's *Look Up DMARC*.

    A look-up DNS does not answer marks the row stale and keeps its
    verdict: an outage never turns ``p=reject`` into "no policy".
    """

    _name = "mail.outbound.dmarc.policy"
    _description = "DMARC Policy of a From Domain"
    _order = "name"

    name = fields.Char("Domain", required=True, index=True)
    found = fields.Boolean("Record Found")
    found_at = fields.Char("Record Of")
    policy_p = fields.Char("Policy (p)")
    policy_sp = fields.Char("Subdomain Policy (sp)")
    adkim = fields.Char("DKIM Alignment")
    aspf = fields.Char("SPF Alignment")
    checked_at = fields.Datetime("Looked Up On", help="The last look-up DNS answered.")
    stale = fields.Boolean(
        help="The last look-up got no answer from DNS: the policy shown is "
        "the one found on Looked Up On."
    )

    _sql_constraints = [
        ("name_unique", "unique(name)", "One DMARC policy row per domain."),
    ]

    @api.model
    def _store(self, domain, policy=None, answered=True):
        """Record the look-up of ``domain``: ``policy`` (a ``dmarc.Policy`` or
        None without a record), or ``answered=False`` for an outage."""
        row = self.sudo().search([("name", "=", domain)], limit=1)
        if not answered:
            if row:
                row.stale = True
            return row
        values = {
            "name": domain,
            "found": bool(policy),
            "found_at": policy.domain if policy else False,
            "policy_p": policy.p if policy else False,
            "policy_sp": policy.sp if policy else False,
            "adkim": policy.adkim if policy else False,
            "aspf": policy.aspf if policy else False,
            "checked_at": fields.Datetime.now(),
            "stale": False,
        }
        if row:
            row.write(values)
            return row
        return self.sudo().create(values)

    @api.model
    def _refresh(self, domains, resolver=None):
        """Look each domain's policy up now (never from a form's compute)."""
        resolver = resolver or self.env["mail.alias.domain"]._get_dns_resolver()
        for name in sorted(set(domains)):
            try:
                domain = addresses.check_domain_name(name)
            except addresses.DomainNameError:
                continue
            try:
                policy = dmarc.lookup(resolver, domain)
            except dns_check.DnsError:
                self._store(domain, answered=False)
                continue
            self._store(domain, policy)

    @api.model
    def _get_policy(self, from_domain):
        """``(Policy or None, row)`` from the stored look-ups: the domain's own
        row, else the closest parent whose record is its organizational
        domain's (its ``sp=`` applies to subdomains); ``row`` is empty when
        the domain's policy was never looked up."""
        domain = addresses.domain_key(from_domain)
        if not domain:
            return None, self.browse()
        labels = domain.split(".")
        org = dmarc.organizational_domain(domain)
        rows = self.sudo().search(
            [("name", "in", [".".join(labels[i:]) for i in range(len(labels) - 1)])]
        )
        by_name = {row.name: row for row in rows}
        own = by_name.get(domain)
        if own:
            return own._as_policy(), own
        for index in range(1, len(labels) - 1):
            parent = by_name.get(".".join(labels[index:]))
            if parent and (
                parent.found_at == org or (not parent.found and parent.name == org)
            ):
                return parent._as_policy(), parent
        return None, self.browse()

    def _as_policy(self):
        self.ensure_one()
        if not self.found:
            return None
        return dmarc.Policy(
            domain=self.found_at,
            p=self.policy_p or "none",
            sp=self.policy_sp or "",
            adkim=self.adkim or "r",
            aspf=self.aspf or "r",
        )
