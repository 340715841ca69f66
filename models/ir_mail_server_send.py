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

from odoo import _, api, fields, models
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
