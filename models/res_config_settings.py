from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..tools import (
    ports,
    settings as params_table,
)


class ResConfigSettings(models.TransientModel):
    _name = "res.config.settings"
    _inherit = ["res.config.settings", "mail.outbound.input.guard"]

    # The fields of this form that edit a parameter of tools/settings.py, by
    # name. Not core's ``config_parameter``: core stores 0 as no parameter
    # (which reads as the table's default, 5 for the blacklist) and reads a
    # malformed value its own way; here the form shows what the run uses
    # (``_mail_outbound_get``) and refuses what the run would not
    # use as typed.
    _mail_outbound_params = {
        "mail_outbound_enforce_fixed_filter": (
            "mail_outbound.enforce_fixed_server_filter"
        ),
        "mail_outbound_blocked_ports": "mail_outbound.blocked_ports",
        "mail_outbound_daily_limit": "mail_outbound.daily_limit",
        "mail_outbound_retry_lifetime_days": "mail_outbound.retry_lifetime_days",
        "mail_outbound_bounce_blacklist_after": "mail_outbound.bounce_blacklist_after",
    }

    alias_domain_bounce_alias = fields.Char(
        related="alias_domain_id.bounce_alias", readonly=False
    )
    alias_domain_catchall_alias = fields.Char(
        related="alias_domain_id.catchall_alias", readonly=False
    )
    alias_domain_default_from = fields.Char(
        related="alias_domain_id.default_from", readonly=False
    )
    alias_domain_bounce_email = fields.Char(related="alias_domain_id.bounce_email")
    alias_domain_catchall_email = fields.Char(related="alias_domain_id.catchall_email")
    alias_domain_default_from_email = fields.Char(
        related="alias_domain_id.default_from_email"
    )
    alias_domain_notification_example = fields.Char(
        "Notification Address", compute="_compute_alias_domain_notification_example"
    )
    mail_outbound_reply_address = fields.Char(
        "Reply Address", compute="_compute_alias_domain_notification_example"
    )
    mail_outbound_bounce_address = fields.Char(
        "Bounce Address", compute="_compute_alias_domain_notification_example"
    )
    mail_outbound_enforce_fixed_filter = fields.Boolean(
        "Enforce FROM Filters on a Mail's Own Server",
        help="A mail that asks for a server (a mass mailing's dedicated server, "
        "a template's server) is sent as the notification address when that "
        "server's FROM filter does not allow its From. Off: the From is kept, "
        "as in standard Odoo, and the mail records a warning.",
    )

    # Same parameters as mass_mailing's "Dedicated Server": one setting,
    # shown here without mass_mailing and there with it (see set_values).
    mail_outbound_mass_server_enabled = fields.Boolean(
        "Dedicated Mass-Mailing Server",
        help="Send mass mailings through one server, and only mass mailings "
        "through it; transactional mail uses the other servers.",
    )
    mail_outbound_mass_server_id = fields.Many2one(
        "ir.mail_server", "Mass-Mailing Server", domain=[("active", "=", True)]
    )
    # filled by get_values: whether mass_mailing's own fields are there
    mail_outbound_mass_mailing_installed = fields.Boolean(readonly=True)

    @api.model
    def _mail_outbound_guarded(self, field):
        # this form's own fields only: the other modules' settings are theirs
        return field._module == "mail_outbound"

    def _mass_mailing_owns_setting(self):
        return "mass_mailing_mail_server_id" in self._fields

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        if "external_email_server_default" in values and not values.get(
            "external_email_server_default"
        ):
            # core's checkbox reads a parameter nobody sets when servers are
            # created from their list: unchecked while servers send the mail
            values["external_email_server_default"] = bool(
                self.env["ir.mail_server"].sudo().search_count([], limit=1)
            )
        if not self.env.is_system():
            # core reads every setting as superuser, also for an onchange of
            # anyone: the database's usage and limits are not theirs to see
            for name in values:
                if name.startswith("mail_outbound_"):
                    values[name] = False
        return values

    @api.model
    def get_values(self):
        values = super().get_values()
        server = self.env["ir.mail_server"]._get_dedicated_mass_server()
        values["mail_outbound_mass_server_enabled"] = bool(server)
        values["mail_outbound_mass_server_id"] = server.id
        values["mail_outbound_mass_mailing_installed"] = (
            self._mass_mailing_owns_setting()
        )
        params = self.env["ir.config_parameter"]
        for name, key in self._mail_outbound_params.items():
            value = params._mail_outbound_get(key)
            if params_table.PARAMS[key].kind == "ports":
                value = params_table.to_text(key, value)
            values[name] = value
        if not self.env.is_system():
            return values
        Log = self.env["mail.delivery.log"].sudo()
        values["mail_outbound_sent_today"] = Log._count_messages_today()
        return values

    def set_values(self):
        super().set_values()
        params = self.env["ir.config_parameter"].sudo()
        for name, key in self._mail_outbound_params.items():
            value = self[name]
            if params_table.PARAMS[key].kind == "ports":
                # validated by _check_mail_outbound_params
                value = params_table.parse(key, value)[0]
            # written only when the run would read something else: saving
            # the form writes no default that was not there
            if params_table.parse(key, params.get_param(key)) != (value, None):
                params.set_param(key, params_table.to_text(key, value))
        if self._mass_mailing_owns_setting():
            # mass_mailing's own fields wrote the same parameters
            return
        enabled = self.mail_outbound_mass_server_enabled
        params.set_param("mass_mailing.outgoing_mail_server", enabled)
        params.set_param(
            "mass_mailing.mail_server_id",
            enabled and self.mail_outbound_mass_server_id.id or False,
        )

    mail_outbound_blocked_ports = fields.Char(
        "Blocked SMTP Ports",
        help="Comma-separated ports outgoing servers may not use, e.g. 25 as "
        "hosting operators block it. Servers on these ports cannot be saved, "
        "tested or used.",
    )

    mail_outbound_daily_limit = fields.Integer(
        "Daily Limit",
        help="SMTP messages the whole database may send per day (the company's "
        "calendar day; a chatter post to five followers is five messages); "
        "over it, mail waits for the next day. 0: no limit.",
    )
    mail_outbound_sent_today = fields.Integer("Sent Today", readonly=True)
    mail_outbound_retry_lifetime_days = fields.Float(
        "Retry For (Days)",
        help="A mail refused temporarily is tried again, less and less often, "
        "for this long after its first attempt; then it fails.",
    )

    mail_outbound_bounce_blacklist_after = fields.Integer(
        "Blacklist After Hard Bounces",
        help="An address whose mails bounced this many times for good (the "
        "address does not exist) goes to the blacklist used by mass mailings. "
        "Soft and policy bounces never count. 0: never.",
    )

    @api.constrains(*_mail_outbound_params)
    def _check_mail_outbound_params(self):
        """What the run would not use as typed is refused, with the range of
        tools/settings.py: the form and the run never disagree."""
        for record in self:
            for name, key in self._mail_outbound_params.items():
                param = params_table.PARAMS[key]
                value = record[name]
                if param.kind == "ports":
                    record._check_mail_outbound_ports(value)
                elif param.kind in ("int", "float") and params_table.check(key, value):
                    raise ValidationError(
                        _(
                            "%(field)s: %(value)s is outside the range. Type a "
                            "number from %(minimum)s to %(maximum)s.",
                            field=self._fields[name]._description_string(self.env),
                            value=value,
                            minimum=params_table.bound(param, param.minimum),
                            maximum=params_table.bound(param, param.maximum),
                        )
                    )

    def _check_mail_outbound_ports(self, value):
        try:
            ports.parse_blocked_ports(value)
        except ValueError as error:
            raise ValidationError(
                _(
                    'Blocked SMTP Ports: "%(part)s" is not a port number. '
                    "Type port numbers between 1 and 65535 separated by "
                    'commas, e.g. "25, 2526".',
                    part=error.args[0] if error.args else "",
                )
            ) from error

    @api.depends(
        "alias_domain_id",
        "alias_domain_default_from",
        "alias_domain_catchall_alias",
        "alias_domain_bounce_alias",
    )
    def _compute_alias_domain_notification_example(self):
        # from the aliases as typed, so that the addresses follow the form
        # before it is saved (the related emails only change on save)
        for settings in self:
            notification, catchall, bounce = settings._get_typed_alias_addresses()
            settings.alias_domain_notification_example = notification and (
                f'"{self.env.user.name}" <{notification}>'
            )
            settings.mail_outbound_reply_address = catchall
            settings.mail_outbound_bounce_address = bounce

    def _get_typed_alias_addresses(self):
        """Notification, catchall and bounce addresses of the typed aliases."""
        self.ensure_one()
        return self._alias_addresses(
            self.alias_domain_id.name,
            self.alias_domain_default_from,
            self.alias_domain_catchall_alias,
            self.alias_domain_bounce_alias,
        )

    @api.model
    def _alias_addresses(self, domain, default_from, catchall, bounce):
        """As mail.alias.domain computes them: a Default From may be a full
        address, the other aliases are left parts."""

        def address(alias, full_allowed=False):
            if not domain or not alias:
                return ""
            return alias if full_allowed and "@" in alias else f"{alias}@{domain}"

        return (
            address(default_from, full_allowed=True),
            address(catchall),
            address(bounce),
        )

    @api.onchange("mail_outbound_blocked_ports")
    def _onchange_mail_outbound_blocked_ports(self):
        """Blocking a port servers use stops them: say which, before saving."""
        try:
            blocked = ports.parse_blocked_ports(self.mail_outbound_blocked_ports)
        except ValueError:
            return None  # the constraint words it on save
        servers = (
            self.env["ir.mail_server"]
            .sudo()
            .search([])
            .filtered(lambda server: server._is_port_blocked(blocked))
        )
        if not servers:
            return None
        return {
            "warning": {
                "title": _("Warning"),
                "message": _(
                    "These servers use a port you are blocking and will send "
                    "nothing until their port changes: %(servers)s.",
                    servers=", ".join(
                        f"{server.name} ({server.smtp_port})" for server in servers
                    ),
                ),
            }
        }

    @api.onchange(
        "alias_domain_bounce_alias",
        "alias_domain_catchall_alias",
        "alias_domain_default_from",
    )
    def _onchange_alias_domain_aliases(self):
        domain = self.alias_domain_id
        if not domain:
            return None
        # the related fields already hold the new values in this record's
        # cache: compare with what the database has
        self.env.cr.execute(
            "SELECT bounce_alias, catchall_alias, default_from "
            "FROM mail_alias_domain WHERE id = %s",
            (domain.id,),
        )
        stored = self.env.cr.fetchone() or (None, None, None)
        typed = (
            self.alias_domain_bounce_alias,
            self.alias_domain_catchall_alias,
            self.alias_domain_default_from,
        )
        if all(
            (new or None) == (old or None)
            for new, old in zip(typed, stored, strict=True)
        ):
            return None
        # (notification, catchall, bounce) before and after the change
        before = self._alias_addresses(domain.name, stored[2], stored[1], stored[0])
        after = self._get_typed_alias_addresses()
        # each address says what it receives: the bounce address gets
        # delivery reports, not replies
        changes = "\n\n".join(
            self._describe_alias_change(index, old or "-", new or "-")
            for index, (old, new) in enumerate(zip(before, after, strict=True))
            if old != new
        )
        return {"warning": {"title": _("Warning"), "message": changes}}

    @api.model
    def _describe_alias_change(self, index, old, new):
        """Index 0: notification address, 1: catchall, 2: bounce."""
        if index == 0:
            return _(
                "Notifications: %(old)s \u2192 %(new)s. Mail is sent from the "
                "new address; check that your servers' FROM filters allow it.",
                old=old,
                new=new,
            )
        if index == 1:
            return _(
                "Replies: %(old)s \u2192 %(new)s. Replies to emails already "
                "sent with the old address will no longer be routed to Odoo "
                "unless your mail server redirects it to the new one: keep the "
                "old mailbox forwarding for a while.",
                old=old,
                new=new,
            )
        return _(
            "Delivery reports (bounces): %(old)s \u2192 %(new)s. Reports about "
            "emails already sent go to the old address: keep it forwarding to "
            "the new one for a while.",
            old=old,
            new=new,
        )
