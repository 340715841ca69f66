import logging

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_normalize

from ..tools import dkim_sign, dns_check

_logger = logging.getLogger(__name__)


class MailOutboundDkimKey(models.Model):
    """A DKIM key of an alias domain: generated here, published by the
    administrator at ``selector._domainkey.domain``, then used to sign.

    Life of a key: *Not Published* until the TXT record is found and
    matches; *Published* (verified, not used yet); *Signing* once enabled,
    which retires the domain's previous signing key only then (rotation);
    *Retired*. The private key is readable by system administrators only
    (the model's access rules and the field's groups) and never logged.
    """

    _name = "mail.outbound.dkim.key"
    _description = "DKIM Signing Key"
    _order = "alias_domain_id, id desc"
    _rec_name = "selector"

    alias_domain_id = fields.Many2one(
        "mail.alias.domain", required=True, ondelete="cascade"
    )
    selector = fields.Char(
        required=True,
        default=lambda self: self._get_free_selector(
            self.env.context.get("default_alias_domain_id")
        ),
        help="The name under which the key is published: "
        "<selector>._domainkey.<domain>. A new key needs a new selector.",
    )
    algorithm = fields.Selection(
        [("rsa", "RSA 2048"), ("ed25519", "Ed25519")],
        default="rsa",
        required=True,
        help="RSA 2048 is verified by every receiver. Ed25519 (RFC 8463) signs "
        "alongside an RSA key: receivers that do not know it ignore it.",
    )
    # never shown (the form shows the public record); readable over RPC by
    # system administrators of the key's company only (security/*.xml)
    private_key = fields.Text(groups="base.group_system", copy=False, readonly=True)
    public_key = fields.Text(copy=False, readonly=True)
    state = fields.Selection(
        [
            ("draft", "Not Published"),
            ("published", "Published"),
            ("active", "Signing"),
            ("retired", "Retired"),
        ],
        default="draft",
        required=True,
        readonly=True,
        copy=False,
    )
    record_name = fields.Char("DNS Name", compute="_compute_record")
    record_value = fields.Text("TXT Value (one string)", compute="_compute_record")
    record_txt = fields.Text(
        "TXT Value",
        compute="_compute_record",
        help="The value in strings of at most 255 characters, as DNS requires "
        "(RFC 1035); DNS joins them back into one.",
    )
    zone_line = fields.Text("Zone File Line", compute="_compute_record")
    check_detail = fields.Text("Last Check", readonly=True, copy=False)
    checked_at = fields.Datetime("Checked On", readonly=True, copy=False)

    _sql_constraints = [
        (
            "selector_unique",
            "unique(alias_domain_id, selector)",
            "A selector is used once per alias domain.",
        ),
    ]

    @api.depends("selector", "alias_domain_id.name", "public_key", "algorithm")
    def _compute_record(self):
        for key in self:
            domain = key.alias_domain_id.name or ""
            key.record_name = dns_check.dkim_record_name(key.selector or "", domain)
            key.record_value = (
                dkim_sign.txt_record(key.public_key, key.algorithm)
                if key.public_key
                else ""
            )
            key.record_txt = (
                dns_check.zone_txt_line(key.record_name, key.record_value).split(
                    " IN TXT ", 1
                )[1]
                if key.public_key
                else ""
            )
            key.zone_line = (
                dkim_sign.zone_line(key.selector, domain, key.public_key, key.algorithm)
                if key.public_key
                else ""
            )

    @api.constrains("selector")
    def _check_selector(self):
        for key in self:
            if not dkim_sign.valid_selector(key.selector):
                raise ValidationError(
                    _(
                        "Selector %(selector)r: use lowercase letters, digits and "
                        "hyphens only (e.g. odoo202601).",
                        selector=key.selector,
                    )
                )

    @api.model
    def _get_free_selector(self, alias_domain_id, taken=()):
        """``odooYYYYMM``, else ``odooYYYYMM-2``, ``-3``...: the first selector
        of the month no key of the domain uses (a second key in a month)."""
        base = "odoo" + fields.Date.context_today(self).strftime("%Y%m")
        used = set(taken) | set(
            self.sudo()
            .with_context(active_test=False)
            .search(
                [
                    ("alias_domain_id", "=", alias_domain_id),
                    ("selector", "=like", f"{base}%"),
                ]
            )
            .mapped("selector")
        )
        selector, index = base, 1
        while selector in used:
            index += 1
            selector = f"{base}-{index}"
        return selector

    @api.model_create_multi
    def create(self, vals_list):
        # The key pair is written after the row exists: a refused INSERT
        # (a constraint, a lock) is logged with its parameters by odoo.sql_db
        # and by PostgreSQL, and the private key must never be among them.
        # For the same reason a taken selector is refused before any INSERT.
        secrets, taken = [], {}
        for vals in vals_list:
            domain_id = vals.get("alias_domain_id")
            used = taken.setdefault(domain_id, set())
            if not vals.get("selector"):
                vals["selector"] = self._get_free_selector(domain_id, used)
            elif domain_id and (
                vals["selector"] in used
                or self.sudo().search_count(
                    [
                        ("alias_domain_id", "=", domain_id),
                        ("selector", "=", vals["selector"]),
                    ]
                )
            ):
                raise ValidationError(
                    _(
                        "Selector %(selector)s is already used by a key of this "
                        "domain: a new key needs a new selector (e.g. %(free)s).",
                        selector=vals["selector"],
                        free=self._get_free_selector(domain_id, used),
                    )
                )
            used.add(vals["selector"])
            secrets.append(
                {
                    "private_key": vals.pop("private_key", False),
                    "public_key": vals.pop("public_key", False),
                }
            )
        keys = super().create(vals_list)
        for key, secret in zip(keys, secrets, strict=True):
            if not secret["private_key"]:
                generate = dkim_sign.GENERATORS[key.algorithm or "rsa"]
                secret["private_key"], secret["public_key"] = generate()
            # sudo: the private key is groups=base.group_system, and a
            # creator of another group never reaches here (access rules)
            super(MailOutboundDkimKey, key.sudo()).write(secret)
        self.env.registry.clear_cache()
        return keys

    def write(self, vals):
        if "algorithm" in vals and "private_key" not in vals:
            raise UserError(
                _("The algorithm of a key cannot change: create a new key instead.")
            )
        if {"selector", "alias_domain_id"} & set(vals) and self.filtered(
            lambda k: k.state != "draft"
        ):
            raise UserError(
                _(
                    "The selector of a published key cannot change: create a new "
                    "key instead."
                )
            )
        result = super().write(vals)
        if "state" in vals:
            self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result

    # -- actions ----------------------------------------------------------
    def action_check(self):
        self._check_published()
        return True

    def action_enable(self):
        """Sign with this key from now on; refused until its record matches.

        The domain's previous signing key of the same algorithm is retired
        only now, after the new selector was verified: both stay published
        meanwhile. An RSA and an Ed25519 key sign side by side.
        """
        self.ensure_one()
        check = self._check_published()[self.id]
        if check.status != dns_check.OK:
            raise UserError(
                _(
                    "DKIM signing cannot be enabled: %(detail)s\n\nPublish this "
                    "record, wait for DNS to update, then try again:\n%(record)s",
                    detail=check.detail,
                    record=check.record,
                )
            )
        self.search(
            [
                ("alias_domain_id", "=", self.alias_domain_id.id),
                ("state", "=", "active"),
                ("algorithm", "=", self.algorithm),
                ("id", "!=", self.id),
            ]
        ).write({"state": "retired"})
        self.state = "active"
        return True

    def action_retire(self):
        self.write({"state": "retired"})
        return True

    # -- business -----------------------------------------------------------
    def _check_published(self):
        """Look each key up in DNS; ``{key id: Check}``."""
        resolver = self.env["mail.alias.domain"]._get_dns_resolver()
        results = {}
        for key in self:
            try:
                check = dns_check.check_dkim(
                    resolver, key.selector, key.alias_domain_id.name, key.record_value
                )
            except dns_check.DnsError as error:
                check = dns_check.Check(
                    "dkim", key.record_name, dns_check.ERROR, str(error)
                )
                # an outage says nothing about the record: the state stays
                key.write({"check_detail": check.detail})
                results[key.id] = check
                continue
            values = {"check_detail": check.detail, "checked_at": fields.Datetime.now()}
            if key.state == "draft" and check.status == dns_check.OK:
                values["state"] = "published"
            elif key.state == "published" and check.status != dns_check.OK:
                values["state"] = "draft"
            key.write(values)
            results[key.id] = check
        return results

    @api.model
    def _get_signing_key(self, email_from):
        """The active keys signing mail from ``email_from`` (RSA first, then
        Ed25519), or an empty record.

        A key of ``example.com`` signs ``example.com`` and its subdomains;
        the closest domain wins.
        """
        active = self._get_active_keys()
        if not active:
            # the common case costs no query: every send path comes here
            return self.browse()
        domain = dkim_sign.domain_of(email_normalize(email_from or "") or "")
        labels = domain.split(".")
        for candidate in (".".join(labels[i:]) for i in range(len(labels) - 1)):
            if candidate in active:
                return self.sudo().browse(active[candidate])
        return self.browse()

    @api.model
    @tools.ormcache()
    def _get_active_keys(self):
        """``{alias domain name: active key ids}``, cached until a key changes."""
        active = {}
        for key in (
            self.sudo()
            .search([("state", "=", "active")])
            .sorted(lambda k: (k.algorithm != "rsa", k.id))
        ):
            active.setdefault(key.alias_domain_id.name.lower(), []).append(key.id)
        return {name: tuple(ids) for name, ids in active.items()}

    def _sign(self, message):
        """Add the DKIM-Signature of this key to ``message`` (in place)."""
        self.ensure_one()
        try:
            dkim_sign.sign_message(
                message,
                self.selector,
                self.alias_domain_id.name,
                self.sudo().private_key,
                self.algorithm,
            )
        except dkim_sign.SigningError as error:
            # the error text never holds the key; the mail leaves unsigned
            _logger.warning("%s", error)
            return False
        return True
