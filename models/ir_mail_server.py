import base64
import dataclasses
import functools
import logging
import os
import smtplib
import time

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.osv import expression

from odoo.addons.base.models import ir_mail_server as base_ir_mail_server

from ..tools import addresses, delivery, lanes, ports, routing, smtp_diagnosis
from ..tools.run import Failover
from . import queue_log

_logger = logging.getLogger(__name__)


def _elapsed_ms(started):
    return int((time.monotonic() - started) * 1000)


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

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
    daily_limit = fields.Integer(
        help="Mails this server may send per day (the company's calendar day). "
        "Mail over it waits for the next day; it is never failed. 0: no limit.",
    )
    rate_per_minute = fields.Integer(
        "Rate per Minute",
        help="Mails this server may send per minute; the others wait for the "
        "next minute. 0: no limit.",
    )
    sent_today = fields.Integer(compute="_compute_sent_today")
    delivery_failures = fields.Integer(
        "Failures in a Row",
        readonly=True,
        help="Consecutive connection or authentication failures. At the "
        "threshold the server is skipped (circuit open) for a while.",
    )
    unhealthy_until = fields.Datetime(
        readonly=True,
        help="Until then the server is skipped and mail fails over to the next "
        "server of the same kind, or waits.",
    )
    last_delivery_error = fields.Char(readonly=True)
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

    def _compute_sent_today(self):
        counts = self.env["mail.delivery.log"]._count_sent_today(self.ids)
        for server in self:
            server.sent_today = counts.get(server.id, 0)

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

    @api.constrains("daily_limit", "rate_per_minute")
    def _check_delivery_limits(self):
        for server in self:
            if server.daily_limit < 0:
                raise ValidationError(
                    _(
                        "Daily Limit of %(server)s: type 0 for no limit, or a "
                        "number of mails.",
                        server=server.name,
                    )
                )
            if server.rate_per_minute < 0:
                raise ValidationError(
                    _(
                        "Rate per Minute of %(server)s: type 0 for no limit, or "
                        "a number of mails.",
                        server=server.name,
                    )
                )

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
        value = (
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("mail_outbound.blocked_ports", "")
        )
        try:
            return ports.parse_blocked_ports(value)
        except ValueError:
            # the setting validates on save; a hand-edited parameter must not
            # stop every send, so it blocks nothing and says so
            _logger.warning("Ignoring invalid mail_outbound.blocked_ports %r", value)
            return set()

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
        return tools.str2bool(
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("mail_outbound.enforce_fixed_server_filter")
            or "0"
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
        timeout = base_ir_mail_server.SMTP_TIMEOUT
        cafile = (
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("mail_outbound.smtp_ca_file")
            or ""
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
            host=server.smtp_host or "",
            port=server.smtp_port,
            encryption=server.smtp_encryption or "none",
            user=(server.smtp_user or "") if login or oauth else "",
            password=(server.smtp_pass or "") if login else "",
            certfile=certfile,
            keyfile=keyfile,
            cafile=cafile,
            timeout=timeout,
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

    def connect(
        self,
        host=None,
        port=None,
        user=None,
        password=None,
        encryption=None,
        smtp_from=None,
        ssl_certificate=None,
        ssl_private_key=None,
        smtp_debug=False,
        mail_server_id=None,
        allow_archived=False,
    ):
        """Refuse a blocked port; in the queue, fail over to a healthy server.

        ``mail.mail.send`` puts its :class:`~..tools.run.QueueRun` in the
        context. Then a server that cannot be reached or refuses the
        login counts a failure in its circuit breaker, and the next server
        carrying the same kind of mail is tried, with a From it may send
        (the routing's rule for a named server). Without a run (direct
        calls, Test Connection), core's behaviour: one server, or an error.
        """
        kwargs = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "encryption": encryption,
            "smtp_from": smtp_from,
            "ssl_certificate": ssl_certificate,
            "ssl_private_key": ssl_private_key,
            "smtp_debug": smtp_debug,
            "allow_archived": allow_archived,
        }
        run = self.env.context.get("mail_outbound_run")
        server = self.sudo().browse(mail_server_id) if mail_server_id else self.browse()
        if run is not None:
            # one connect per batch: what the previous batch met is over
            run.start_batch()
            ticket = server._get_lane_ticket(run, smtp_from) if server else None
            if ticket is not None:
                return ticket
        if not server or run is None:
            if server and server.exists() and server._is_port_blocked():
                raise UserError(server._blocked_port_message())
            try:
                return super().connect(mail_server_id=mail_server_id, **kwargs)
            except Exception as error:
                if run is not None:
                    run.batch.connect_failure = delivery.classify(error)
                raise
        now = fields.Datetime.now()
        first_error = None
        for candidate in server._get_failover_candidates(now):
            candidate_from = (
                smtp_from
                if candidate == server
                else candidate._get_failover_from(smtp_from)
            )
            if candidate._is_port_blocked():
                # a configuration problem of that server: try the next one
                blocked = candidate._blocked_port_message()
                failure = delivery.Failure.unreachable(blocked)
                first_error = first_error or (failure, UserError(blocked))
                continue
            try:
                connection = super().connect(
                    mail_server_id=candidate.id,
                    **dict(kwargs, smtp_from=candidate_from),
                )
            except Exception as error:
                failure = delivery.classify(error)
                if not failure.server_health:
                    raise
                run.batch.skipped.append(
                    delivery.Attempt(
                        server_id=candidate.id,
                        ok=False,
                        code=failure.code,
                        text=failure.text,
                        failure=failure,
                    )
                )
                candidate._record_server_failure(
                    failure, now, apart=run.strategy.commits
                )
                first_error = first_error or (failure, error)
                continue
            candidate._record_server_success(apart=run.strategy.commits)
            if candidate != server:
                run.batch.failover = Failover(server.id, candidate.id)
            if connection is not None:
                self._track_session(connection, candidate)
            return connection
        if first_error is None:
            # every server of this kind is resting after failures
            failure = delivery.Failure.unreachable(
                _("Every server for this mail is paused after repeated failures.")
            )
            run.batch.connect_failure = failure
            raise UserError(failure.text)
        run.batch.connect_failure = first_error[0]
        raise first_error[1]

    def _track_session(self, connection, server):
        """Let the queue know which server a session reached, and its reply.

        smtplib's ``send_message`` drops the final DATA reply, which carries
        the provider's queue id ("250 2.0.0 Ok: queued as 4FGH2"); it is kept
        on the session for the delivery log.
        """
        connection.mail_outbound_server_id = server.id
        # sessions are whatever smtplib.SMTP is (test doubles included):
        # wrap what they have
        send_data = getattr(connection, "data", None)
        # core's SMTPConnection proxies a few smtplib methods; send is not
        # one of them: wrap it on the smtplib object itself
        session = getattr(connection, "__obj__", connection)
        send_raw = getattr(session, "send", None)
        if send_data is not None:
            ended = {"data": False}

            def send(payload):
                send_raw(payload)
                # smtplib sends the body and its final "." in one call
                if isinstance(payload, bytes) and payload.endswith(b"\r\n.\r\n"):
                    ended["data"] = True

            def data(msg):
                ended["data"] = False
                try:
                    code, reply = send_data(msg)
                except smtplib.SMTPServerDisconnected as error:
                    if ended["data"]:
                        # the server may have it: not a temporary failure
                        raise delivery.DroppedAfterData(
                            f"connection lost after the end of DATA: {error}"
                        ) from error
                    raise
                connection.mail_outbound_reply = (code, reply)
                return code, reply

            if send_raw is not None:
                session.send = send
            connection.data = data
        send_message = getattr(connection, "send_message", None)
        if send_message is not None:

            def send_message_(msg, from_addr=None, to_addrs=None, *args, **kwargs):
                # what this server really receives, after core's rewriting
                connection.mail_outbound_sent = (msg["From"] or "", from_addr or "")
                return send_message(msg, from_addr, to_addrs, *args, **kwargs)

            connection.send_message = send_message_
        send_quit = getattr(connection, "quit", None)
        if send_quit is not None:

            def quit_():
                if getattr(connection, "mail_outbound_adopted", False):
                    # a lane of the queue now: the lanes end it
                    return None
                # core quits every session in a finally: a session the server
                # dropped would raise there and abort the remaining batches
                try:
                    return send_quit()
                except smtplib.SMTPServerDisconnected:
                    connection.close()
                    return None

            connection.quit = quit_

    def _get_failover_candidates(self, now):
        """This server, then the others carrying the same kind of mail.

        In the documented order; servers whose circuit is open are skipped.
        """
        self.ensure_one()
        mass = (
            self.outbound_traffic == "mass" or self == self._get_dedicated_mass_server()
        )
        traffic = routing.TRAFFIC_MASS if mass else routing.TRAFFIC_TRANSACTIONAL
        ordered = routing.failover_scope(
            self._get_routing_server(),
            routing.sort_servers(self._get_routing_servers()),
        )
        servers = self | self.browse([s.id for s in ordered])
        return self.browse(
            delivery.failover_candidates(
                self.id,
                [s.id for s in ordered],
                {s.id for s in ordered if s.carries(traffic)},
                {server.id: server.unhealthy_until for server in servers},
                now,
            )
        )

    def _get_failover_from(self, smtp_from):
        """The From this server may send for a mail meant for another one."""
        decision = routing.route(
            smtp_from or "",
            [],
            self._get_routing_identity(),
            fixed_server=self._get_routing_server(),
            enforce_fixed_filter=True,
        )
        return decision.smtp_from

    @api.model
    def send_email(
        self,
        message,
        mail_server_id=None,
        smtp_server=None,
        smtp_port=None,
        smtp_user=None,
        smtp_password=None,
        smtp_encryption=None,
        smtp_ssl_certificate=None,
        smtp_ssl_private_key=None,
        smtp_debug=False,
        smtp_session=None,
    ):
        """Core's send_email, routed, and in the queue each hand-over logged.

        In the queue (a run in the context, a session open), each call is
        recorded with the server's reply, for the delivery log and for the
        mail's deferral or failure.
        """
        kwargs = {
            "mail_server_id": mail_server_id,
            "smtp_server": smtp_server,
            "smtp_port": smtp_port,
            "smtp_user": smtp_user,
            "smtp_password": smtp_password,
            "smtp_encryption": smtp_encryption,
            "smtp_ssl_certificate": smtp_ssl_certificate,
            "smtp_ssl_private_key": smtp_ssl_private_key,
            "smtp_debug": smtp_debug,
            "smtp_session": smtp_session,
        }
        run = self.env.context.get("mail_outbound_run")
        if run is None or smtp_session is None:
            return self._send_email_routed(message, **kwargs)
        if getattr(
            smtp_session, "mail_outbound_server_id", None
        ) and lanes.session_is_dead(smtp_session):
            # dropped by the server at an earlier mail of this batch: this
            # one was never tried; core aborts the batch, it stays queued
            run.batch.session_lost = True
            queue_log.quiet_core_error(True)
            raise smtplib.SMTPServerDisconnected("session lost at an earlier mail")
        queue_log.quiet_core_error(False)
        started = time.monotonic()
        # core passes the validated recipients along; parsing the headers
        # again costs more than the rest of this method
        recipients = self._count_recipients(message)
        server_id = getattr(smtp_session, "mail_outbound_server_id", mail_server_id)
        try:
            result = self._send_email_routed(message, **kwargs)
        except Exception as error:
            attempt = self._prepare_attempt(
                server_id,
                recipients,
                lanes.Sent(ok=False, error=error, duration_ms=_elapsed_ms(started)),
            )
            # a temporary failure is deferred and logged once as a WARNING
            queue_log.quiet_core_error(attempt.failure.temporary)
            run.batch.record(attempt)
            raise
        code, reply = getattr(smtp_session, "mail_outbound_reply", (250, b""))
        email_from, envelope_from = getattr(
            smtp_session, "mail_outbound_sent", ("", "")
        )
        sent = lanes.Sent(
            ok=True,
            code=code,
            reply=lanes.decode(reply),
            email_from=email_from,
            envelope_from=envelope_from,
            duration_ms=_elapsed_ms(started),
        )
        run.batch.record(self._prepare_attempt(server_id, recipients, sent))
        return result

    @api.model
    def _send_email_routed(self, message, **kwargs):
        """``send_email``, never sending a From the named server may not send.

        ``kwargs`` are ``send_email``'s. Core connects a named server with
        the message's From unchanged; here the session is opened with the
        From the routing allows, and core's ``_prepare_email_message``
        rewrites the header from it.
        """
        mail_server_id = kwargs.get("mail_server_id")
        if mail_server_id and not kwargs.get("smtp_session"):
            server = self.sudo().browse(mail_server_id)
            # the caller named the server: route within its company
            decision = self._get_routing_decision(
                message["From"], fixed_server=server, company=server.company_id
            )
            if decision.rewritten:
                smtp_session = self.connect(
                    mail_server_id=mail_server_id,
                    smtp_from=decision.smtp_from,
                    smtp_debug=kwargs.get("smtp_debug", False),
                )
                if smtp_session:
                    try:
                        return super().send_email(
                            message,
                            mail_server_id=mail_server_id,
                            smtp_session=smtp_session,
                        )
                    finally:
                        self._close_session(smtp_session)
        return super().send_email(message, **kwargs)

    @api.model
    def _close_session(self, smtp_session):
        try:
            smtp_session.quit()
        except Exception:  # noqa: BLE001 - a dead session has nothing to close
            _logger.debug("SMTP session already closed", exc_info=True)
