from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..tools import ports, quota


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

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
    mail_outbound_enforce_fixed_filter = fields.Boolean(
        "Enforce FROM Filters on a Mail's Own Server",
        config_parameter="mail_outbound.enforce_fixed_server_filter",
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

    def _mass_mailing_owns_setting(self):
        return "mass_mailing_mail_server_id" in self._fields

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
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
        if not self.env.is_system():
            return values
        Log = self.env["mail.delivery.log"].sudo()
        start, _end = quota.day_window(fields.Datetime.now(), Log._company_tz())
        values["mail_outbound_sent_today"] = Log._count_sent(start)[1]
        return values

    def set_values(self):
        super().set_values()
        if self._mass_mailing_owns_setting():
            # mass_mailing's own fields wrote the same parameters
            return
        params = self.env["ir.config_parameter"].sudo()
        enabled = self.mail_outbound_mass_server_enabled
        params.set_param("mass_mailing.outgoing_mail_server", enabled)
        params.set_param(
            "mass_mailing.mail_server_id",
            enabled and self.mail_outbound_mass_server_id.id or False,
        )

    mail_outbound_blocked_ports = fields.Char(
        "Blocked SMTP Ports",
        config_parameter="mail_outbound.blocked_ports",
        help="Comma-separated ports outgoing servers may not use, e.g. 25 as "
        "hosting operators block it. Servers on these ports cannot be saved, "
        "tested or used.",
    )

    mail_outbound_daily_limit = fields.Integer(
        "Daily Limit",
        config_parameter="mail_outbound.daily_limit",
        help="Mails the whole database may send per day (the company's calendar "
        "day); over it, mail waits for the next day. 0: no limit.",
    )
    mail_outbound_sent_today = fields.Integer("Sent Today", readonly=True)
    mail_outbound_retry_lifetime_days = fields.Float(
        "Retry For (Days)",
        config_parameter="mail_outbound.retry_lifetime_days",
        default=5,
        help="A mail refused temporarily is tried again, less and less often, "
        "for this long after its first attempt; then it fails.",
    )

    @api.constrains("mail_outbound_daily_limit", "mail_outbound_retry_lifetime_days")
    def _check_mail_outbound_delivery_settings(self):
        for settings in self:
            if settings.mail_outbound_daily_limit < 0:
                raise ValidationError(
                    _("Daily Limit: type 0 for no limit, or a number of mails.")
                )
            if settings.mail_outbound_retry_lifetime_days <= 0:
                raise ValidationError(
                    _("Retry For (Days): type a number of days above 0, e.g. 5.")
                )

    @api.constrains("mail_outbound_blocked_ports")
    def _check_mail_outbound_blocked_ports(self):
        for settings in self.filtered("mail_outbound_blocked_ports"):
            try:
                ports.parse_blocked_ports(settings.mail_outbound_blocked_ports)
            except ValueError as error:
                raise ValidationError(
                    _(
                        'Blocked SMTP Ports: "%(part)s" is not a port number. '
                        "Type port numbers between 1 and 65535 separated by "
                        'commas, e.g. "25, 2526".',
                        part=error.args[0] if error.args else "",
                    )
                ) from error

    @api.depends("alias_domain_default_from_email", "company_id")
    def _compute_alias_domain_notification_example(self):
        for settings in self:
            email = settings.alias_domain_default_from_email
            settings.alias_domain_notification_example = email and (
                f'"{self.env.user.name}" <{email}>'
            )

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
        return {
            "warning": {
                "title": _("Changing an alias of %(domain)s", domain=domain.name),
                "message": _(
                    "Replies to emails already sent with the previous bounce, "
                    "catchall or default From address will no longer be routed "
                    "to Odoo unless your mail server redirects the old address "
                    "to the new one. Keep the old mailbox forwarding for a while."
                ),
            }
        }
