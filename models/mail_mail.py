import logging
from collections import defaultdict

from odoo import _, api, fields, models, tools

from ..tools import routing
from ..tools.run import Decided

_logger = logging.getLogger(__name__)


class MailMail(models.Model):
    _inherit = "mail.mail"

    # Not prefetched: core commits after every mail and then reads the mails of
    # the batch again; these columns would ride along in every such read.
    routing_server_id = fields.Many2one(
        "ir.mail_server",
        string="Routed Through",
        readonly=True,
        index="btree_not_null",
        help="Outgoing server the routing chose when the mail was sent. Empty "
        "with a rule: the command-line (odoo-bin) server.",
        prefetch=False,
    )
    routing_email_from = fields.Char(
        "Sent As",
        readonly=True,
        help="From header as the mail left Odoo.",
        prefetch=False,
    )
    routing_envelope_from = fields.Char(
        "Envelope Sender",
        readonly=True,
        help="Return-Path: where delivery errors (bounces) are sent.",
        prefetch=False,
    )
    routing_rule = fields.Selection(
        [
            ("from_address", "Server filter lists the sender address"),
            ("from_domain", "Server filter lists the sender domain"),
            ("notification_address", "Server filter lists the notification address"),
            ("notification_domain", "Server filter lists the notification domain"),
            ("no_filter", "First server without filter"),
            ("first_server", "First server (no filter matches)"),
            ("cli_from", "Command-line server, sender kept"),
            ("cli_notification", "Command-line server, notification address"),
            ("cli_fallback", "Command-line server (no filter matches)"),
            ("fixed_from", "Requested server, sender kept"),
            ("fixed_notification", "Requested server, notification address"),
            ("fixed_mismatch", "Requested server (filter does not match)"),
            ("fixed_unenforced", "Requested server, sender kept (not enforced)"),
            ("failover_from", "Failover, sender kept"),
            ("failover_notification", "Failover, notification address"),
            ("failover_domain", "Failover, notification address of its domain"),
        ],
        readonly=True,
        prefetch=False,
    )
    routing_traffic = fields.Selection(
        [("transactional", "Transactional"), ("mass", "Mass Mailing")],
        string="Traffic",
        default="transactional",
        # not NOT NULL: mails are created while mail_outbound is not loaded yet
        # (at_install tests of earlier modules on a database that has the addon)
        help="Mass mail (from a mailing, or flagged so by the code that created "
        "it) is sent through the dedicated mass-mailing server or the servers "
        "carrying mass mail; everything else through transactional servers.",
        prefetch=False,
    )
    routing_data = fields.Json(readonly=True, copy=False, prefetch=False)
    delivery_attempts = fields.Integer(
        readonly=True,
        copy=False,
        help="Attempts to hand this mail to a server.",
        prefetch=False,
    )
    delivery_first_attempt = fields.Datetime(readonly=True, copy=False, prefetch=False)
    delivery_deferred = fields.Boolean(
        "Deferred",
        readonly=True,
        copy=False,
        help="A temporary failure or a sending limit: the mail waits in the "
        "queue and is sent at its Scheduled Send Date.",
        prefetch=False,
    )
    # the last deferral as a code and values: the sentence is made when shown,
    # in the reader's language (failure_reason keeps core's stored sentence)
    delivery_deferral_data = fields.Json(readonly=True, copy=False, prefetch=False)
    delivery_deferral_reason = fields.Text(
        "Last Error", compute="_compute_delivery_deferral_reason"
    )
    delivery_maybe_delivered = fields.Boolean(
        "May Have Been Delivered",
        readonly=True,
        copy=False,
        help="The session was lost after the server got the whole message, "
        "before its answer: the mail is not sent again by itself.",
        prefetch=False,
    )
    delivery_claim = fields.Char(
        readonly=True, copy=False, index="btree_not_null", prefetch=False
    )
    delivery_claim_date = fields.Datetime(readonly=True, copy=False, prefetch=False)
    routing_reason = fields.Text(compute="_compute_routing_reason")

    @api.depends("delivery_deferral_data", "delivery_deferred")
    def _compute_delivery_deferral_reason(self):
        for mail in self:
            data = mail.delivery_deferral_data
            mail.delivery_deferral_reason = bool(
                data and mail.delivery_deferred
            ) and self._describe_deferral(data)

    @api.model
    def _describe_deferral(self, data):
        """The deferral sentence, in the reader's language. The next attempt
        is not in it: the Next Attempt field beside it shows the time in the
        reader's time zone."""
        return _(
            "Deferred after attempt %(attempt)s: %(error)s.",
            attempt=data.get("attempt", 0),
            error=data.get("error", ""),
        )

    @api.depends("routing_rule", "routing_data")
    def _compute_routing_reason(self):
        explain = self.env["ir.mail_server"]._explain_routing
        for mail in self:
            data = mail.routing_data or {}
            mail.routing_reason = mail.routing_rule and explain(
                routing.Decision(
                    rule=mail.routing_rule,
                    server_id=mail.routing_server_id.id or None,
                    server_name=mail.routing_server_id.name or "",
                    smtp_from="",
                    header_from=mail.routing_email_from or "",
                    envelope_from=mail.routing_envelope_from or "",
                    reply_to="",
                    rewritten=bool(data.get("rewritten")),
                    forced=bool(data.get("forced")),
                    warnings=tuple(data.get("warnings", ())),
                    params=data.get("params", {}),
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        # mass_mailing's mailing_id, when that module is installed
        if "mailing_id" in self._fields:
            for vals in vals_list:
                if vals.get("mailing_id") and "routing_traffic" not in vals:
                    vals["routing_traffic"] = routing.TRAFFIC_MASS
        mails = super().create(vals_list)
        mails._wake_queue_on_commit()
        return mails

    def _wake_queue_on_commit(self):
        """Wake the queue when these mails are committed still queued.

        Above ``mail.mail.force.send.limit`` core only queues mail (a
        mailing's batches, the mass composer, a template's ``send_mail``)
        and its cron runs hourly: a person would wait up to an hour for a
        mailing to start. Just before the transaction commits, one trigger
        for the earliest of these mails still queued — once per
        transaction, however many mails it created; mails sent before the
        commit (an interactive send) wake nothing.
        """
        data = self.env.cr.precommit.data
        created = data.get("mail_outbound_created_mail_ids")
        if created is None:
            created = data["mail_outbound_created_mail_ids"] = set()
            self.env.cr.precommit.add(self._wake_queue_for_created)
        created.update(self.ids)

    @api.model
    def _wake_queue_for_created(self):
        created = self.env.cr.precommit.data.pop("mail_outbound_created_mail_ids", ())
        queued = (
            self.sudo()
            .browse(created)
            .exists()
            .filtered(lambda mail: mail.state == "outgoing")
        )
        if queued:
            now = fields.Datetime.now()
            self._trigger_queue_at(
                max(min(mail.scheduled_date or now for mail in queued), now)
            )

    def _prepare_outgoing_list(
        self, mail_server=False, recipients_follower_status=None
    ):
        run = self.env.context.get("mail_outbound_run")
        if run is not None and len(self) == 1:
            run.batch.current_mail_id = self.id
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server,
            recipients_follower_status=recipients_follower_status,
        )
        if run is not None and len(self) == 1:
            # which partner each message goes to: a mail in doubt after a
            # crash settles per recipient (_mark_data_end_in_loop)
            run.batch.current_partner_ids = [
                getattr(email.get("partner_id"), "id", None) for email in emails
            ]
        if not self.record_alias_domain_id:
            # core's default Return-Path is the queue runner's company's bounce
            # address: a mail without a document bounces to its own company
            runner_bounce = self.env.company.bounce_email
            bounce = self._get_outbound_company().bounce_email
            for email in emails:
                if bounce and email["headers"].get("Return-Path") == runner_bounce:
                    email["headers"]["Return-Path"] = bounce
        return emails

    def _split_by_mail_configuration(self):
        """Core's grouping, with each mail's routing decided and recorded.

        Core already asked ``_find_mail_server`` (our routing) for mails
        without a server, but as transactional mail; mails that name their
        server were grouped with their From unchanged, which core would send
        as is. Each distinct (From, server, alias domain, traffic, Reply-To)
        is decided again here — a pure, microsecond call — so that the
        decision is written on the mails, mass mail reaches mass servers and
        a named server's batch gets the From its filter allows.
        """
        decide = self._get_routing_decision_memo()
        run = self.env.context.get("mail_outbound_run")
        limit = self._get_delivery_limiter(run)
        # a queue run marks each batch before it goes to a server
        mark = run is not None and run.is_queue
        for (
            _server_id,
            alias_domain_id,
            smtp_from,
            batch_ids,
        ) in super()._split_by_mail_configuration():
            # core grouped by server and From without knowing the traffic
            # class or a named server's filter: regroup by the decision
            per_session = defaultdict(list)
            # decisions are memoised, so identity groups equal decisions
            per_decision = defaultdict(list)
            for mail in self.browse(batch_ids):
                decision = decide(mail)
                if run is not None:
                    # what the log needs later, read now, before core's
                    # per-mail commits empty the cache
                    run.decisions[mail.id] = Decided(
                        decision,
                        mail._get_outbound_company().id,
                        mail.delivery_attempts,
                    )
                session_key = (
                    decision.server_id or False,
                    decision.smtp_from or smtp_from,
                )
                per_session[session_key].append(mail.id)
                per_decision[id(decision)].append((decision, mail.id))
            for pairs in per_decision.values():
                mails = self.browse([mail_id for _decision, mail_id in pairs])
                mails.write(self._prepare_routing_values(pairs[0][0]))
            for (session_server_id, session_from), mail_ids in per_session.items():
                # over a daily limit or a rate: deferred to the next window
                mail_ids = limit(session_server_id, mail_ids)
                if mail_ids and mark:
                    width = (
                        self.env["ir.mail_server"]
                        .browse(session_server_id)
                        ._get_lane_width()
                    )
                    self.env["mail.outbound.queue"]._mark_batch(run, mail_ids, width)
                    run.batch_width = width
                if mail_ids and run is not None:
                    run.batch_mail_ids = tuple(mail_ids)
                if mail_ids:
                    yield session_server_id, alias_domain_id, session_from, mail_ids

    def _get_routing_decision_memo(self):
        """A function mail -> Decision, computed once per distinct input."""
        IrMailServer = self.env["ir.mail_server"].sudo()
        servers = IrMailServer.search([])
        memo = {}

        formatted = {}

        def decide(mail):
            # same protection as core against an already formatted From,
            # parsed once per distinct value: a queue has few senders
            raw = mail.email_from
            if raw not in formatted:
                emails_from = tools.mail.email_split_and_format(raw)
                formatted[raw] = emails_from[0] if emails_from else raw
            email_from = formatted[raw]
            company = mail._get_outbound_company()
            key = (
                company.id,
                email_from,
                mail.mail_server_id.id,
                mail.record_alias_domain_id.id,
                mail.routing_traffic or routing.TRAFFIC_TRANSACTIONAL,
                mail.reply_to,
            )
            if key not in memo:
                memo[key] = IrMailServer._get_routing_decision(
                    email_from,
                    mail_servers=servers,
                    fixed_server=mail.mail_server_id.sudo() or None,
                    # a mail without a document: its company's alias domain
                    alias_domain=(
                        mail.record_alias_domain_id or company.alias_domain_id
                    ).sudo()
                    or None,
                    reply_to=mail.reply_to,
                    traffic=mail.routing_traffic or routing.TRAFFIC_TRANSACTIONAL,
                    company=company,
                )
            return memo[key]

        return decide

    def _get_outbound_company(self):
        """The company this mail is sent for: its document's, else its
        author's (the user who created it), never the queue runner's."""
        self.ensure_one()
        return (
            self.record_company_id
            or self.sudo().create_uid.company_id
            or self.env.company
        )

    def _prepare_routing_values(self, decision):
        return {
            "routing_server_id": decision.server_id or False,
            "routing_email_from": decision.header_from,
            "routing_envelope_from": decision.envelope_from,
            "routing_rule": decision.rule,
            "routing_traffic": decision.traffic,
            "routing_data": {
                "params": decision.params,
                "warnings": list(decision.warnings),
                "forced": decision.forced,
                "rewritten": decision.rewritten,
            },
        }
