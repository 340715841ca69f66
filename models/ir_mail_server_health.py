"""Outgoing servers at a glance: presets, health, the buttons that act on it.

Kept apart from ``ir_mail_server.py`` (routing and the send pipeline): this
file only reads what the pipeline records (the delivery log, the circuit
fields, the queue) and shows it, plus the provider presets that fill a new
server. The figures come from ``tools.health``.
"""

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools.misc import format_date, format_datetime, formatLang

from odoo.addons.base.models.ir_mail_server import SMTP_TIMEOUT

from ..tools import health, smtp_diagnosis

# Delivery Health is for system administrators: what each server sent, its
# failures and its queue. Core lets other groups read ir.mail_server
# (mass_mailing's users), so its health fields carry the group themselves.
SYSTEM = "base.group_system"
# a server on a port Settings blocks sends nothing, whatever its circuit says
PORT_BLOCKED = "port_blocked"


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    provider_preset_id = fields.Many2one(
        "mail.outbound.provider.preset",
        ondelete="set null",
        help="Fills the host, port, encryption, what the server carries and "
        "the provider's published daily and per-minute limits. Check them "
        "against your own plan: the preset says where each figure comes from.",
    )
    provider_preset_source = fields.Text(related="provider_preset_id.source")
    circuit_state = fields.Selection(
        [
            (health.CLOSED, "Healthy"),
            (health.RETRY, "Failed lately"),
            (health.OPEN, "Skipped (circuit open)"),
            (PORT_BLOCKED, "Port blocked"),
        ],
        "Circuit",
        compute="_compute_circuit_state",
        groups=SYSTEM,
        search="_search_circuit_state",
        help="Skipped: after failures in a row the server rests, and mail goes "
        "to the next server of the same kind, or waits. Failed lately: the rest "
        "is over, or the threshold not reached; the next send tries it. Port "
        "blocked: its port is in Settings > Blocked SMTP Ports; it sends nothing.",
    )
    circuit_summary = fields.Char(
        compute="_compute_circuit_summary",
        groups=SYSTEM,
        help="The circuit's state in one sentence, its last error worded as "
        "Test Connection words it.",
    )
    last_delivery_error_text = fields.Char(
        "Last Error",
        compute="_compute_circuit_summary",
        groups=SYSTEM,
    )
    mail_count = fields.Integer("Mails", compute="_compute_mail_count", groups=SYSTEM)
    delivery_log_count = fields.Integer(
        "Delivery Attempts", compute="_compute_delivery_log_count", groups=SYSTEM
    )
    queue_due = fields.Integer("Due Now", compute="_compute_health", groups=SYSTEM)
    queue_deferred = fields.Integer(
        "Deferred", compute="_compute_health", groups=SYSTEM
    )
    queue_held = fields.Integer(
        "Waiting for a Limit",
        compute="_compute_health",
        groups=SYSTEM,
        help="Mails held by a sending limit until its next window; raising "
        "the limit releases them at once.",
    )
    failures_24h = fields.Integer(
        "Failures (24 h)", compute="_compute_health", groups=SYSTEM
    )
    usage_display = fields.Char(
        "Today / Limit", compute="_compute_health", groups=SYSTEM
    )
    queue_eta = fields.Char("Current Queue", compute="_compute_health", groups=SYSTEM)

    # ------------------------------------------------------------
    # Presets
    # ------------------------------------------------------------

    @api.onchange("provider_preset_id")
    def _onchange_provider_preset_id(self):
        preset = self.provider_preset_id
        if not preset:
            return None
        traffic_before = self.outbound_traffic
        values = preset._prepare_server_values()
        if not self.name:
            values["name"] = preset.name
        self.update(values)
        if self.outbound_traffic in (traffic_before, "both"):
            return None
        # the preset changes what the server carries: say so, not silently
        labels = dict(self._fields["outbound_traffic"]._description_selection(self.env))
        return {
            "warning": {
                "title": _("Warning"),
                "message": _(
                    'The %(preset)s preset sets Carries to "%(traffic)s", as '
                    "the provider's plan is meant for it: change it if your plan "
                    "sends other mail.",
                    preset=preset.name,
                    traffic=labels.get(self.outbound_traffic, self.outbound_traffic),
                ),
            }
        }

    @api.onchange("smtp_encryption")
    def _onchange_encryption(self):
        # the encryption's onchange runs after the preset's and proposes its
        # own port (core: 25 without encryption): the preset's port wins
        result = super()._onchange_encryption()
        preset = self.provider_preset_id
        if preset and self.smtp_encryption == preset.smtp_encryption:
            self.smtp_port = preset.smtp_port
        return result

    # ------------------------------------------------------------
    # Health
    # ------------------------------------------------------------

    @api.depends(
        "unhealthy_until",
        "delivery_failures",
        "smtp_port",
        "smtp_authentication",
        "active",
    )
    def _compute_circuit_state(self):
        now = fields.Datetime.now()
        blocked = self._get_blocked_ports()
        for server in self:
            if server._is_port_blocked(blocked):
                server.circuit_state = PORT_BLOCKED
                continue
            server.circuit_state = health.circuit_state(
                server.unhealthy_until, server.delivery_failures, now
            )

    @api.depends(
        "circuit_state", "delivery_failures", "unhealthy_until", "last_delivery_error"
    )
    def _compute_circuit_summary(self):
        tz = self.env.user.tz or self.env["mail.delivery.log"]._company_tz()
        for server in self:
            error = server._explain_delivery_error()
            server.last_delivery_error_text = error
            until = server.unhealthy_until
            if server.circuit_state == health.OPEN and until:
                # one sentence, the date in the reader's zone, named: fields
                # between words broke the banner around the date
                server.circuit_summary = _(
                    "This server failed %(count)s times in a row and is skipped "
                    "until %(until)s (%(tz)s): mail goes to the next server of the "
                    "same kind, or waits. Last error: %(error)s",
                    count=server.delivery_failures,
                    until=format_datetime(self.env, until, tz=tz, dt_format="short"),
                    tz=tz,
                    error=error,
                )
            elif server.circuit_state == health.RETRY:
                server.circuit_summary = _(
                    "This server failed %(count)s times in a row; the next send "
                    "tries it again. Last error: %(error)s",
                    count=server.delivery_failures,
                    error=error,
                )
            elif server.circuit_state == PORT_BLOCKED:
                server.circuit_summary = server._blocked_port_message()
            else:
                server.circuit_summary = False

    def _explain_delivery_error(self):
        """The last error as Test Connection words it, else as it was."""
        self.ensure_one()
        text = self.last_delivery_error or ""
        explained = smtp_diagnosis.explain_error(
            text, self.smtp_host or "", self.smtp_port or 0, SMTP_TIMEOUT
        )
        if not explained:
            return text
        return smtp_diagnosis.fix_text(*explained, translate=self.env._)

    def _search_circuit_state(self, operator, value):
        if operator not in ("=", "!=", "in", "not in"):
            return NotImplemented
        values = {value} if isinstance(value, str) else set(value or ())
        now = fields.Datetime.now()
        resting_over = [
            "|",
            ("unhealthy_until", "=", False),
            ("unhealthy_until", "<=", now),
        ]
        domains = {
            health.OPEN: [("unhealthy_until", ">", now)],
            health.RETRY: ["&", ("delivery_failures", ">", 0), *resting_over],
            health.CLOSED: ["&", ("delivery_failures", "=", 0), *resting_over],
        }
        servers = self.with_context(active_test=False)
        blocked_ids = {
            server.id
            for server in servers.search([])
            if server._is_port_blocked(self._get_blocked_ports())
        }
        ids = set()
        for state in values & set(domains):
            ids.update(servers._search(domains[state]))
        ids -= blocked_ids
        if PORT_BLOCKED in values:
            ids |= blocked_ids
        positive = operator in ("=", "in")
        return [("id", "in" if positive else "not in", list(ids))]

    def _mail_domain(self):
        self.ensure_one()
        return [
            "|",
            ("routing_server_id", "=", self.id),
            ("mail_server_id", "=", self.id),
        ]

    def _compute_mail_count(self):
        Mail = self.env["mail.mail"].sudo()
        for server in self:
            server.mail_count = server.id and Mail.search_count(server._mail_domain())

    def _delivery_log_domain(self):
        """Its attempts, and those it failed over to another server."""
        return [
            "|",
            ("mail_server_id", "in", self.ids),
            ("failover_from_id", "in", self.ids),
        ]

    def _compute_delivery_log_count(self):
        Log = self.env["mail.delivery.log"].sudo()
        for server in self:
            server.delivery_log_count = server.id and Log.search_count(
                server._delivery_log_domain()
            )

    def _compute_health(self):
        now = fields.Datetime.now()
        Log = self.env["mail.delivery.log"].sudo()
        since = now - timedelta(hours=24)
        # every server tried has its line: the one a batch failed over
        # from ("failed_over"), the last one tried when the mail then waits
        # or fails ("deferred", "failed")
        failures = Counter(
            dict(
                Log._read_group(
                    [
                        ("mail_server_id", "in", self.ids),
                        ("create_date", ">=", since),
                        ("outcome", "in", ("failed", "deferred", "failed_over")),
                        # a mail waiting for a limit is no failure
                        ("failure_stage", "!=", "limit"),
                    ],
                    ["mail_server_id"],
                    ["__count"],
                )
            )
        )
        queue = self._get_queue_by_server() if self.ids else {}
        tz = Log._company_tz()
        local_now = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz))
        local_now = local_now.replace(tzinfo=None)
        for server in self:
            due, deferred, held = queue.get(server._origin.id, (0, 0, 0))
            server.queue_due = due
            server.queue_deferred = deferred
            server.queue_held = held
            server.failures_24h = failures.get(server._origin, 0)
            server.usage_display = (
                f"{formatLang(self.env, server.sent_today, digits=0)} / "
                f"{formatLang(self.env, server.daily_limit, digits=0)}"
                if server.daily_limit
                else _("%(sent)s / no limit", sent=server.sent_today)
            )
            eta = health.queue_eta(
                due + deferred + held,
                local_now,
                server.daily_limit,
                server.sent_today,
                server.rate_per_minute,
            )
            server.queue_eta = server._describe_queue_eta(eta, local_now)

    def _describe_queue_eta(self, eta, local_now):
        """'12,000 mails at 500 a day: done on 18 Dec', in the user's language."""
        if not eta.count:
            return _("Empty")
        count = formatLang(self.env, eta.count, digits=0)
        if eta.bound == "none":
            return _(
                "%(count)s mails, no limit: sent by the next queue runs", count=count
            )
        per = formatLang(self.env, eta.per_period, digits=0)
        if eta.bound == "minute":
            return _(
                "%(count)s mails at %(per)s a minute: done around %(time)s",
                count=count,
                per=per,
                time=format_datetime(self.env, eta.done, tz="UTC", dt_format="HH:mm"),
            )
        if eta.done.date() == local_now.date():
            return _(
                "%(count)s mails at %(per)s a day: done today", count=count, per=per
            )
        return _(
            "%(count)s mails at %(per)s a day: done on %(date)s",
            count=count,
            per=per,
            date=format_date(self.env, eta.done.date(), date_format="d MMM"),
        )

    @api.model
    def _get_queue_by_server(self):
        """``{server_id: (due now, deferred, held)}`` for the whole queue.

        A deferred or held mail waits for the server it was routed through;
        a mail never tried goes where the routing would send it now (one
        decision per distinct From, requested server and kind of mail).
        """
        Mail = self.env["mail.mail"].sudo()
        now = fields.Datetime.now()
        groups = Mail._read_group(
            [
                ("state", "=", "outgoing"),
                "|",
                "|",
                ("delivery_deferred", "=", True),
                ("delivery_hold", "!=", False),
                "|",
                ("scheduled_date", "=", False),
                ("scheduled_date", "<=", now),
            ],
            [
                "email_from",
                "mail_server_id",
                "routing_server_id",
                "routing_traffic",
                "delivery_deferred",
                "delivery_hold",
            ],
            ["__count"],
        )
        IrMailServer = self.sudo()
        decided = {}
        result = {}
        for email_from, requested, routed, traffic, deferred, hold, count in groups:
            waiting = deferred or hold
            server_id = routed.id if waiting and routed else None
            if server_id is None:
                key = (email_from, requested.id, traffic)
                if key not in decided:
                    decided[key] = IrMailServer._get_routing_decision(
                        email_from,
                        fixed_server=requested or None,
                        traffic=traffic or "transactional",
                    ).server_id
                server_id = decided[key]
            due_count, deferred_count, held_count = result.get(server_id, (0, 0, 0))
            if hold:
                held_count += count
            elif deferred:
                deferred_count += count
            else:
                due_count += count
            result[server_id] = (due_count, deferred_count, held_count)
        return result

    # ------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------

    def _check_can_manage(self):
        if not self.env.is_system():
            raise AccessError(
                _("Only system administrators can act on outgoing mail servers.")
            )
        # another company's server: refused before anything is reset or sent
        self.check_access("write")

    def action_reset_circuit(self):
        """Forget the failures: the server is used again at the next send."""
        self._check_can_manage()
        self.sudo().write({"delivery_failures": 0, "unhealthy_until": False})
        self._wake_deferred_mail()
        return True

    def _wake_deferred_mail(self):
        """Mail deferred while these servers failed is due now, and the
        queue is woken for it: a reset circuit takes effect at once."""
        return (
            self.env["mail.mail"]
            .sudo()
            .search(
                [
                    ("state", "=", "outgoing"),
                    ("delivery_deferred", "=", True),
                    ("routing_server_id", "in", self.ids),
                ]
            )
            ._make_due_now()
        )

    def action_try_now(self):
        """Reset the circuit and send this server's deferred mail now."""
        self._check_can_manage()
        self.sudo().write({"delivery_failures": 0, "unhealthy_until": False})
        mails = self._wake_deferred_mail()
        # due mail too: the queue runs now, not at its next hour
        self.env["mail.mail"]._trigger_queue_at(fields.Datetime.now())
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "message": _(
                    "%(count)s deferred mails of %(server)s will be sent by the "
                    "next queue run, in a moment.",
                    count=len(mails),
                    server=", ".join(self.mapped("name")),
                ),
                "sticky": False,
                # the list or form shows the reset circuit at once: closing a
                # window that is not a dialog showed nothing
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def action_view_mails(self):
        self.ensure_one()
        self._check_can_manage()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "mail.action_view_mail_mail"
        )
        action["domain"] = self._mail_domain()
        action["context"] = {}
        return action

    def action_view_delivery_log(self):
        self.ensure_one()
        self._check_can_manage()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "mail_outbound.mail_delivery_log_action"
        )
        action["domain"] = self._delivery_log_domain()
        return action
