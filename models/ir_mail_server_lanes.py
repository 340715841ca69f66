"""ir.mail_server: how many SMTP sessions the queue may open to it at once."""

import logging
import sys
from email.utils import getaddresses

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..tools import delivery, lanes

_logger = logging.getLogger(__name__)

# Postfix's default per destination is 20; providers often allow fewer
MAX_PARALLEL_CONNECTIONS = 50

# modules whose ``send_email`` the queue's lanes reproduce (core's sending,
# this addon's routing and logging); any other override must see every
# message, and then the queue sends through ``send_email``, one at a time
LANE_SAFE_SEND_EMAIL = ("base", "mail_outbound")


def overriding_modules(model, method, allowed):
    """The modules, other than ``allowed``, whose class of ``model`` defines
    ``method``, and the classes whose ``method`` was replaced after their
    module defined it.

    A class's own ``_module``: the registry's class has none, and a test
    double patched onto it is an override like any other. A function put
    in the place of an allowed module's own one at run time (a wrapper, a
    monkey patch, the test doubles Odoo's mail tests patch onto core's
    ``send_email`` and ``_send``) is one too: the lanes would stand in for
    the code it replaced and bypass it.
    """
    found = []
    for klass in type(model).__mro__:
        function = vars(klass).get(method)
        if function is None:
            continue
        module = vars(klass).get("_module")
        if module not in allowed:
            found.append(module or klass.__name__)
        elif not _defined_in_module_of(function, klass):
            found.append(f"{module} ({method} replaced)")
    return found


def _defined_in_module_of(function, klass):
    """Whether ``function`` is the one ``klass``'s own source file defines."""
    code = getattr(function, "__code__", None)
    module = sys.modules.get(klass.__module__)
    return (
        code is not None
        and module is not None
        and code.co_filename == getattr(module, "__file__", None)
    )


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    parallel_connections = fields.Integer(
        default=4,
        help="SMTP sessions the mail queue keeps open to this server at once. "
        "Each hand-over waits for the server's replies; several sessions hand "
        "over several mails at the same time. Providers limit concurrent "
        "connections (often 5 to 20): stay under their limit. 1: one session, "
        "one mail after the other.",
    )

    @api.constrains("parallel_connections")
    def _check_parallel_connections(self):
        for server in self:
            if not 1 <= server.parallel_connections <= MAX_PARALLEL_CONNECTIONS:
                raise ValidationError(
                    _(
                        "Parallel Connections of %(server)s: type a number of "
                        "sessions from 1 to %(max)s.",
                        server=server.name,
                        max=MAX_PARALLEL_CONNECTIONS,
                    )
                )

    def _get_lane_width(self):
        """Sessions the queue may open to this server (1 for none)."""
        if not self:
            return 1
        width = self.sudo().parallel_connections or 1
        return max(1, min(width, MAX_PARALLEL_CONNECTIONS))

    @api.model
    def _get_lane_blockers(self):
        """Why the queue must hand mails over through ``send_email``: a
        module overriding it (OCA mail_tracking records each message there)
        must see every message.

        Core's own "do not send" switch needs no check here: while it is
        on, core's ``connect`` opens no session, and without a session the
        queue never opens lanes (``mail.outbound.queue._get_lane_width``).
        """
        return overriding_modules(self, "send_email", LANE_SAFE_SEND_EMAIL)[:1]

    def _get_lane_ticket(self, run, smtp_from):
        """The run's sessions to this server are open: the batch sends on
        them instead of opening one more (the server counts them all)."""
        lane_set = run.lanes
        if (
            lane_set is None
            or lane_set.key != self.id
            or not lane_set.opened
            or delivery.circuit_is_open(self.unhealthy_until, fields.Datetime.now())
        ):
            return None
        return lanes.LaneTicket(self.id, smtp_from, self.from_filter)

    def _close_lane(self, session):
        """End a session the lanes hold, core's first one included."""
        session.mail_outbound_adopted = False
        self._close_session(session)

    def _connect_lane(self, smtp_from):
        """One more session to this server, as the batch's first one.

        Called by the queue in its own thread; no failover (the batch's
        server was chosen when its first session opened), no circuit count:
        a server refusing more connections limits the lanes, it is not down.
        """
        self.ensure_one()
        connection = self.with_context(mail_outbound_run=None).connect(
            mail_server_id=self.id, smtp_from=smtp_from
        )
        if connection is not None:
            self._track_session(connection, self)
            self._prepare_lane(connection)
        return connection

    def _prepare_lane(self, connection):
        """A session becomes a lane: PIPELINING where the server offers it
        (``mail_outbound.smtp_pipelining``)."""
        get = self.env["ir.config_parameter"]._mail_outbound_get
        if get("mail_outbound.smtp_pipelining") == "on":
            lanes.enable_pipelining(connection)
        return connection

    @api.model
    def _count_recipients(self, message):
        validated = self.env.context.get("send_validated_to")
        if validated:
            return len(validated)
        return len(getaddresses(message.get_all("To", []) + message.get_all("Cc", [])))

    @api.model
    def _prepare_attempt(self, server_id, recipients, sent):
        """The delivery log's view of one hand-over (``tools.lanes.Sent``)."""
        attempt = delivery.Attempt(
            server_id=server_id,
            ok=sent.ok,
            recipients=recipients,
            duration_ms=sent.duration_ms,
        )
        if sent.ok:
            attempt.code, attempt.text = sent.code, sent.reply
            attempt.email_from = sent.email_from
            attempt.envelope_from = sent.envelope_from
        else:
            attempt.failure = delivery.classify(sent.error)
            attempt.code = attempt.failure.code
            attempt.text = attempt.failure.text
        return attempt
