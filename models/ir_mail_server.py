import base64
import dataclasses
import functools
import logging
import os

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, ValidationError
from odoo.osv import expression

from odoo.addons.base.models import ir_mail_server as base_ir_mail_server

from ..tools import addresses, ports, routing, smtp_diagnosis

_logger = logging.getLogger(__name__)


class IrMailServer(models.Model):
    _name = "ir.mail_server"
    _inherit = ["ir.mail_server", "mail.outbound.input.guard"]

    from_filter = fields.Char(
        help="Comma-separated addresses or domains this server may send as, as "
        'your provider trusts them, e.g. "example.com" or '
        '"notifications@example.com, example.org". A message whose From is '
        "not listed goes through another server, or is sent as the "
        "notification address. Empty: the server may send as anyone, and is "
        "used for senders no filter lists.",
    )

    outbound_traffic = fields.Selection(
        [
            ("both", "Transactional and mass mailing"),
            ("transactional", "Transactional only"),
            ("mass", "Mass mailing only"),
        ],
        string="Carries",
        default="both",
        # not NOT NULL: core inserts servers while mail_outbound is not loaded
        # yet (at_install tests of mail on a database that has the addon)
        help="Which mail this server sends. Transactional mail (notifications, "
        "quotations, invoices) goes to the first server carrying it; mass "
        "mailings to the dedicated mass-mailing server set in Settings, else to "
        "the first server carrying them. The dedicated server carries mass "
        "mailings only.",
    )
    delivery_failures = fields.Integer(
        "Failures in a Row",
        readonly=True,
        groups="base.group_system",
        help="Consecutive connection or authentication failures. At the "
        "threshold the server is skipped (circuit open) for a while.",
    )
    unhealthy_until = fields.Datetime(
        readonly=True,
        groups="base.group_system",
        help="Until then the server is skipped and mail fails over to the next "
        "server of the same kind, or waits.",
    )
    last_delivery_error = fields.Char(readonly=True, groups="base.group_system")
    company_id = fields.Many2one(
        "res.company",
        index=True,
        help="The company whose mail this server sends. Empty: shared by all "
        "companies. A company's mail goes through its own servers, and "
        "through the shared ones for what none of its servers may send.",
    )
    policy_bounce_count = fields.Integer(
        "Policy Bounces",
        readonly=True,
        help="Mails sent by this server that receiving servers refused because "
        "of the sender (SPF, DKIM, DMARC, blocklists): check the server's "
        "sending domain and IP address.",
    )
    last_policy_bounce = fields.Char(readonly=True)
    is_dedicated_mass_server = fields.Boolean(
        "Dedicated Mass-Mailing Server", compute="_compute_is_dedicated_mass_server"
    )

    def _compute_is_dedicated_mass_server(self):
        dedicated = self._get_dedicated_mass_server()
        for server in self:
            server.is_dedicated_mass_server = server == dedicated

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._check_from_filter_value(vals.get("from_filter"), vals.get("name"))
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("from_filter"):
            for server in self:
                server._check_from_filter_value(
                    vals["from_filter"], vals.get("name", server.name)
                )
        return super().write(vals)

    @api.model
    def _check_from_filter_value(self, value, name):
        """Refused before it is written: a NUL would reach PostgreSQL as a raw
        error, and a filter of only commas would mean "anyone" once stored."""
        if not value or not isinstance(value, str):
            return
        try:
            addresses.check_filter(value)
        except addresses.FilterError as error:
            raise ValidationError(
                self._from_filter_error_message(self.new({"name": name}), error)
            ) from error

    @api.constrains("from_filter")
    def _check_from_filter(self):
        for server in self.filtered("from_filter"):
            try:
                addresses.check_filter(server.from_filter)
            except addresses.FilterError as error:
                raise ValidationError(
                    self._from_filter_error_message(server, error)
                ) from error

    # The multi-company rule, in code rather than an ir.rule: a rule naming
    # company_id breaks Odoo's own at_install mail tests, which create and
    # write servers while this addon's field is not loaded yet.

    @api.model
    def _get_company_access_domain(self):
        """Servers of the current user's companies, and the shared ones."""
        return [
            "|",
            ("company_id", "=", False),
            ("company_id", "in", self.env.companies.ids),
        ]

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        if not self.env.su:
            domain = expression.AND([domain or [], self._get_company_access_domain()])
        return super()._search(domain, offset=offset, limit=limit, order=order)

    def _check_access(self, operation):
        result = super()._check_access(operation)
        if result or self.env.su or operation == "create" or not any(self._ids):
            # create: _check_company_id names the field
            return result
        allowed = self.sudo().filtered_domain(self._get_company_access_domain())
        forbidden = self - allowed.with_env(self.env)
        if forbidden:
            return forbidden, functools.partial(
                self.env["ir.rule"]._make_access_error, operation, forbidden
            )
        return None

    @api.constrains("company_id")
    def _check_company_id(self):
        """A company's administrator binds servers to their own companies only."""
        if self.env.su:
            return
        allowed = self.env.user.company_ids
        for server in self:
            if server.company_id and server.company_id not in allowed:
                raise ValidationError(
                    _(
                        "%(server)s: you cannot bind a server to %(company)s, "
                        "which is not one of your companies (field Company).",
                        server=server.name,
                        company=server.company_id.name,
                    )
                )

    @api.constrains("smtp_port", "smtp_authentication", "active")
    def _check_smtp_port_not_blocked(self):
        blocked = self._get_blocked_ports()
        for server in self:
            if server._is_port_blocked(blocked):
                raise ValidationError(server._blocked_port_message())

    def _is_port_blocked(self, blocked=None):
        self.ensure_one()
        if self.smtp_authentication == "cli" or not self.active:
            return False
        blocked = self._get_blocked_ports() if blocked is None else blocked
        return ports.is_port_blocked(self.smtp_port, blocked)

    def _blocked_port_message(self):
        return _(
            "Port %(port)s of %(server)s is blocked on this database (Settings > "
            "General Settings > Emails > Blocked SMTP Ports). Use 465 with SSL/TLS, "
            "or 587 or 2525 with STARTTLS, as your provider documents.",
            port=self.smtp_port,
            server=self.name,
        )

    @api.model
    def _get_blocked_ports(self):
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.blocked_ports"
        )

    @api.onchange("smtp_encryption")
    def _onchange_encryption(self):
        """Propose the submission port, never one this database blocks.

        Core proposes 25 for STARTTLS; submission with STARTTLS is 587
        (RFC 6409), implicit TLS 465 (RFC 8314).
        """
        result = super()._onchange_encryption()
        if self.smtp_encryption == "starttls":
            self.smtp_port = ports.suggested_port("starttls")
        elif ports.is_port_blocked(self.smtp_port, self._get_blocked_ports()):
            self.smtp_port = ports.suggested_port(self.smtp_encryption)
        return result

    def _from_filter_error_message(self, server, error):
        if error.problem == "header_injection":
            return _(
                "The FROM Filtering of %(server)s contains a line break or a NUL "
                "character. Type the addresses or domains on one line, separated "
                "by commas.",
                server=server.name,
            )
        if error.problem == "empty_part":
            return _(
                'The FROM Filtering of %(server)s is "%(part)s": no address or '
                "domain. Type them separated by commas, or leave the field empty "
                "to let the server send as anyone.",
                server=server.name,
                part=error.part,
            )
        if error.problem == "display_name":
            return _(
                'The FROM Filtering of %(server)s contains "%(part)s": use the '
                "bare address (name@example.com) or domain (example.com), "
                "without a name or angle brackets.",
                server=server.name,
                part=error.part,
            )
        return _(
            'The FROM Filtering of %(server)s contains "%(part)s", which is '
            "neither a domain (example.com) nor an address "
            "(notifications@example.com). Separate several values with commas.",
            server=server.name,
            part=error.part,
        )

    # ------------------------------------------------------------
    # Routing: records to plain data, the decision from tools.routing
    # ------------------------------------------------------------

    def _get_routing_server(self):
        """This server as the routing core sees it (extension point)."""
        self.ensure_one()
        return routing.Server(
            id=self.id,
            name=self.name or "",
            priority=self.sequence,
            from_filter=self.from_filter or "",
            active=self.active,
            traffic=self.outbound_traffic or routing.TRAFFIC_BOTH,
            company_id=self.company_id.id or None,
        )

    @api.model
    def _get_routing_servers(self, mail_servers=None):
        if mail_servers is None:
            mail_servers = self.sudo().search([])
        servers = [server._get_routing_server() for server in mail_servers]
        dedicated = self._get_dedicated_mass_server()
        # documented: the server selected for mass mailings sends those only
        return [
            dataclasses.replace(server, traffic=routing.TRAFFIC_MASS)
            if server.id == dedicated.id
            else server
            for server in servers
        ]

    @api.model
    def _get_dedicated_mass_server(self):
        """The server chosen for mass mailings in Settings, if any.

        Same parameters as mass_mailing's "Dedicated Server", so that both
        settings are one, with or without that module.
        """
        params = self.env["ir.config_parameter"].sudo()
        if not tools.str2bool(
            params.get_param("mass_mailing.outgoing_mail_server") or "0"
        ):
            return self.browse()
        server_id = params.get_param("mass_mailing.mail_server_id")
        server = (
            self.sudo().browse(int(server_id))
            if server_id and server_id.isdigit()
            else self.browse()
        )
        return server.exists().filtered("active")

    @api.model
    def _get_routing_identity(self, alias_domain=None):
        """Notification, bounce and catchall addresses the routing may use.

        Without ``alias_domain``, core's contextual values win
        (``domain_notifications_email`` and ``domain_bounce_address`` set by
        the queue for the mail's record), then the company's alias domain.
        """
        if alias_domain:
            notification = alias_domain.default_from_email
            bounce = alias_domain.bounce_email
            catchall = alias_domain.catchall_email
        else:
            context = self.env.context
            notification = (
                context.get("domain_notifications_email")
                or self._get_default_from_address()
            )
            bounce = (
                context.get("domain_bounce_address")
                or self._get_default_bounce_address()
            )
            catchall = self.env.company.catchall_email
        notification = tools.email_normalize(notification) or ""
        return routing.Identity(
            notification_email=notification,
            bounce_email=tools.email_normalize(bounce) or "",
            catchall_email=catchall or "",
            forced=notification in self._get_forced_default_from(),
        )

    @api.model
    @tools.ormcache()
    def _get_forced_default_from(self):
        """Alias domains' Default From typed as full addresses.

        Such an address replaces every From (documentation: "Using a unique
        email address for all outgoing emails"). Cached: the routing asks for
        every group of mails; mail.alias.domain clears the cache on change.
        """
        domains = (
            self.env["mail.alias.domain"]
            .sudo()
            .search_read([("default_from", "like", "@")], ["default_from"])
        )
        return frozenset(
            tools.email_normalize(domain["default_from"]) for domain in domains
        ) - {False}

    @api.model
    def _clear_forced_from_cache(self):
        """Forget the cached full-address Default Froms (alias domains changed)."""
        self.env.registry.clear_cache()

    @api.model
    def _get_routing_decision(
        self,
        email_from,
        mail_servers=None,
        fixed_server=None,
        alias_domain=None,
        reply_to="",
        traffic=routing.TRAFFIC_TRANSACTIONAL,
        company=None,
    ):
        """The routing core's :class:`~..tools.routing.Decision` for one From.

        A mass mail that names no server goes to the dedicated mass-mailing
        server when there is one, as documented; otherwise to the servers
        carrying mass mail. Only ``company``'s servers (default: the current
        company) and the shared ones are considered.
        """
        company = company or self.env.company
        if traffic == routing.TRAFFIC_MASS and not fixed_server:
            fixed_server = self._get_dedicated_mass_server() or None
        return routing.route(
            email_from or "",
            self._get_routing_servers(mail_servers),
            self._get_routing_identity(alias_domain),
            cli_from_filter=self._get_default_from_filter() or "",
            fixed_server=fixed_server._get_routing_server() if fixed_server else None,
            reply_to=reply_to or "",
            enforce_fixed_filter=self._is_fixed_filter_enforced(),
            traffic=traffic,
            company_id=company.id,
        )

    @api.model
    def _is_fixed_filter_enforced(self):
        """Rewrite a From that a mail's own server may not send.

        Off by default: core sends it unchanged and Odoo's own tests
        (test_mail TestMailMailServer) rely on that.
        """
        return self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.enforce_fixed_server_filter"
        )

    @api.model
    def _explain_routing(self, decision):
        """The decision's reason in the user's language."""
        return routing.explain(decision, translate=self.env._)

    # ------------------------------------------------------------
    # Test Connection
    # ------------------------------------------------------------

    def action_test_connection(self):
        """Open the Test Connection checklist for this server."""
        self.ensure_one()
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can test outgoing mail servers.")
            )
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": _("Test Connection: %(server)s", server=self.name),
            "res_model": "mail.outbound.connection.test",
            "view_mode": "form",
            "target": "new",
            "context": {"default_mail_server_id": self.id},
        }

    def _get_test_senders(self):
        """Every address this server will really send as.

        The full addresses of its FROM filter, then, for each alias domain,
        the notification address and the bounce envelope when the filter
        allows them: those are what Odoo puts in MAIL FROM, so those are what
        the provider must accept.
        """
        self.ensure_one()
        server_filter = addresses.FromFilter(self.from_filter)
        senders = [
            part for part in addresses.split_filter(self.from_filter) if "@" in part
        ]
        for domain in self.env["mail.alias.domain"].sudo().search([]):
            for address in (domain.default_from_email, domain.bounce_email):
                if address and server_filter.allows(address):
                    senders.append(address)
        if not senders:
            senders.append(self._get_test_email_from())
        return list(dict.fromkeys(senders))

    @api.model
    def _get_oauth_providers(self):
        """Authentications that log in with an OAuth token (google_gmail,
        microsoft_outlook), by their provider's name."""
        return {"gmail": "Gmail", "outlook": "Outlook"}

    def _get_smtp_config(self, tempdir):
        """This server's connection settings as plain data for the probe.

        Certificates stored on the record are written to ``tempdir`` because
        ``ssl`` loads them from files.
        """
        self.ensure_one()
        config = tools.config
        # core waits 60 s per read; Test Connection answers a person waiting
        # at the screen, within smtp_diagnosis.DEADLINE in all
        timeout = min(base_ir_mail_server.SMTP_TIMEOUT, 15)
        cafile = self.env["ir.config_parameter"]._mail_outbound_get(
            "mail_outbound.smtp_ca_file"
        )
        if self.smtp_authentication == "cli":
            return smtp_diagnosis.SmtpConfig(
                host=config.get("smtp_server") or "",
                port=int(config.get("smtp_port") or 25),
                encryption="starttls" if config.get("smtp_ssl") else "none",
                user=config.get("smtp_user") or "",
                password=config.get("smtp_password") or "",
                certfile=config.get("smtp_ssl_certificate_filename") or "",
                keyfile=config.get("smtp_ssl_private_key_filename") or "",
                cafile=cafile,
                timeout=timeout,
                deadline=smtp_diagnosis.DEADLINE,
            )
        server = self.sudo()
        certfile = keyfile = ""
        if server.smtp_authentication == "certificate":
            certfile = os.path.join(tempdir, "client.cert.pem")
            keyfile = os.path.join(tempdir, "client.key.pem")
            with open(certfile, "wb") as cert:
                cert.write(base64.b64decode(server.smtp_ssl_certificate))
            with open(keyfile, "wb") as key:
                key.write(base64.b64decode(server.smtp_ssl_private_key))
        login = server.smtp_authentication == "login"
        oauth = self._get_oauth_providers().get(server.smtp_authentication, "")
        return smtp_diagnosis.SmtpConfig(
            oauth=oauth,
            from_filter=server.from_filter or "",
            host=server.smtp_host or "",
            port=server.smtp_port,
            encryption=server.smtp_encryption or "none",
            user=(server.smtp_user or "") if login or oauth else "",
            password=(server.smtp_pass or "") if login else "",
            certfile=certfile,
            keyfile=keyfile,
            cafile=cafile,
            timeout=timeout,
            deadline=smtp_diagnosis.DEADLINE,
        )

    # ------------------------------------------------------------
    # Send pipeline
    # ------------------------------------------------------------

    def _find_mail_server(self, email_from, mail_servers=None):
        """Documented server choice, from the routing core.

        Core's own sequence is not called: it differs from the documentation
        on ordering (ties by id) and on a full-address Default From, and the
        whole point is that one implementation decides, explains and is
        tested. The return contract is core's: (server or None, smtp_from).
        """
        if mail_servers is None:
            mail_servers = self.sudo().search([])
        decision = self._get_routing_decision(email_from, mail_servers=mail_servers)
        if decision.warnings:
            _logger.warning("Mail routing: %s", decision.reason)
        server = mail_servers.browse(decision.server_id) if decision.server_id else None
        return server, decision.smtp_from
