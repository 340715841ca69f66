"""ir.mail_server: the send pipeline the queue runs through.

Core's ``mail.mail.send`` connects once per batch and hands each message to
``send_email``. With a :class:`~..tools.run.QueueRun` in the context:

- ``connect`` refuses a blocked port, fails over to the next healthy server
  carrying the same kind of mail (counting failures in the circuit breaker,
  ``ir_mail_server_circuit.py``), or hands the batch the run's parallel
  sessions (a ``LaneTicket``, ``ir_mail_server_lanes.py``);
- ``_track_session`` lets the queue read what a session's server answered;
- ``send_email`` records each hand-over in the run's batch, for the delivery
  log and the mail's deferral or failure (``mail_mail_delivery.py``).

Without a run (direct calls, Test Connection), core's behaviour, routed.
"""

import logging
import smtplib
import time

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

from ..tools import delivery, lanes, routing
from ..tools.run import Failover
from . import queue_log

_logger = logging.getLogger(__name__)


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

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
        return self._connect_with_failover(server, run, kwargs)

    def _connect_with_failover(self, server, run, kwargs):
        """``server``, else the next healthy server carrying the same kind of
        mail that may send the batch's mail (``_get_failover_decision``).
        Every server that fails counts it and gets its log line."""
        smtp_from = kwargs["smtp_from"]
        now = fields.Datetime.now()
        last_error = None
        refused = self.browse()
        for candidate in server._get_failover_candidates(now):
            decision = None
            if candidate != server:
                decision = candidate._get_failover_decision(run, server, smtp_from)
                if decision is None:
                    # its filter allows no address this mail may be sent as
                    refused |= candidate
                    continue
            candidate_from = decision.smtp_from if decision else smtp_from
            if candidate._is_port_blocked():
                # a configuration problem of that server: try the next one
                blocked = candidate._blocked_port_message()
                failure = delivery.Failure.unreachable(blocked)
                last_error = (failure, UserError(blocked), None)
                continue
            if candidate != server and not candidate._take_failover_batch(run, server):
                # its own limits hold too: the batch waits rather than pass them
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
                attempt = delivery.Attempt(
                    server_id=candidate.id,
                    ok=False,
                    code=failure.code,
                    text=failure.text,
                    failure=failure,
                )
                # each server tried has its line in the log
                run.batch.skipped.append(attempt)
                candidate._record_server_failure(
                    failure, now, apart=run.strategy.commits
                )
                last_error = (failure, error, attempt)
                continue
            candidate._record_server_success(apart=run.strategy.commits)
            if candidate != server:
                run.batch.failover = Failover(
                    server.id, candidate.id, decision, smtp_from or ""
                )
            if connection is not None:
                self._track_session(connection, candidate)
                if decision is not None and decision.rewritten:
                    # core names the sender only when the session's From is
                    # the mail's notification address: this one is the
                    # fallback's (_prepare_email_message)
                    connection.mail_outbound_notification = decision.smtp_from
            return connection
        if last_error is None:
            # every server of this kind is resting after failures, or may
            # not send this mail
            failure = delivery.Failure.unreachable(
                server._no_server_left_message(refused)
            )
            run.batch.connect_failure = failure
            raise UserError(failure.text)
        failure, error, attempt = last_error
        if attempt is not None:
            # the last server tried: its line is the mail's own (deferred or
            # failed), no "failed over" line
            run.batch.skipped.remove(attempt)
            if attempt.server_id != server.id:
                run.batch.failover = Failover(server.id, attempt.server_id)
        run.batch.connect_failure = failure
        raise error

    def _no_server_left_message(self, refused):
        """Why no server was tried: paused, or refused by their filters."""
        if refused:
            return _(
                "Every server that may send this mail is paused after repeated "
                "failures, and %(servers)s may not send as its sender or a "
                "notification address (FROM filter). Wait for the pause to "
                "end, or add the sender's domain to their FROM filter.",
                servers=", ".join(refused.mapped("name")),
            )
        return _("Every server for this mail is paused after repeated failures.")

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
                # smtplib sends the body and its final "." in one call
                if isinstance(payload, bytes) and payload.endswith(b"\r\n.\r\n"):
                    self._before_end_of_data(connection, session)
                    send_raw(payload)
                    ended["data"] = True
                    return
                send_raw(payload)

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

    @api.model
    def _before_end_of_data(self, connection, session):
        """The queue marks, durably, that a message is about to end its
        DATA (``mail_outbound_before_end``, set by whoever sends on the
        session): after a crash, a mail is in doubt only with that mark.
        Should the mark fail (the database is gone), the end is not sent:
        the session is closed and the message was never delivered."""
        before_end = getattr(connection, "mail_outbound_before_end", None)
        if before_end is None:
            return
        try:
            before_end()
        except Exception as error:
            session.close()
            raise smtplib.SMTPServerDisconnected(
                f"the end of DATA was not sent: {error}"
            ) from error

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

    def _get_failover_decision(self, run, from_server, smtp_from, mail=None):
        """As whom this server sends a batch ``from_server`` could not take
        (``routing.failover_route``): the From and envelope the routing
        gives this server for the batch's mail (``mail``, else the batch's
        first), never one its filter refuses. None: it may send none.

        ``smtp_from``: the From the batch's session was opened with.
        """
        self.ensure_one()
        Mail = self.env["mail.mail"].sudo()
        mail = mail or Mail.browse(run.batch_mail_ids[:1])
        if not mail:
            # not the queue's batch (a direct send): the session's From only
            email_from, identity = smtp_from or "", self._get_routing_identity()
        else:
            emails_from = tools.mail.email_split_and_format(mail.email_from)
            email_from = emails_from[0] if emails_from else (mail.email_from or "")
            company = mail._get_outbound_company()
            alias_domain = (
                mail.record_alias_domain_id or company.alias_domain_id
            ).sudo()
            identity = self._get_routing_identity(alias_domain or None)
        return routing.failover_route(
            email_from,
            smtp_from or "",
            self._get_routing_server(),
            identity,
            self._get_failover_notifications(identity),
            from_server=from_server.name or "",
        )

    @api.model
    def _get_failover_notifications(self, identity):
        """Notification addresses a fallback may send as: the mail's own,
        then every alias domain's, in their order."""
        domains = self.env["mail.alias.domain"].sudo().search([])
        return [identity.notification_email] + [
            tools.email_normalize(domain.default_from_email) or "" for domain in domains
        ]

    def _prepare_email_message(self, message, smtp_session):
        """On a failover session sending as its own domain's notification
        address, core names the sender in the From as it does for the
        mail's notification address: its rule is read from the context."""
        notification = getattr(smtp_session, "mail_outbound_notification", None)
        server = (
            self.with_context(domain_notifications_email=notification)
            if notification
            else self
        )
        return super(IrMailServer, server)._prepare_email_message(message, smtp_session)

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
                lanes.Sent(
                    ok=False, error=error, duration_ms=lanes.elapsed_ms(started)
                ),
            )
            # a temporary failure is deferred and logged once as a WARNING
            queue_log.quiet_core_error(attempt.failure.temporary)
            run.batch.record(attempt)
            raise
        sent = lanes.read_sent(smtp_session, started)
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
