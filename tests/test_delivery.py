"""No mail lost: fault injection against real SMTP servers on loopback.

Every test ends with each mail sent, deferred with its next attempt, or
failed with a reason a person can act on. Time is passed by moving the
queue's dates, never slept through.

The mails are the ones Odoo really queues (``tests/traffic.py``): chatter
notifications to partner followers (one SMTP message per partner) and
templates with ``partner_to`` and an attachment; a hand-made ``email_to``
mail only where the behaviour is that mail's own. Each test compares the
(Message-ID, recipient) pairs the loopback server received with the
records, and what the chatter shows: a notification ``sent`` for a
delivered recipient, ``exception`` with the reason for a refused one,
``ready`` while its mail is deferred.
"""

import json
import logging
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, tagged

from odoo.addons.base.models.ir_mail_server import MailDeliveryException

from ..models import queue_log
from .common import (
    TwoServersCase,
    capture_delivery_logs,
    mail_pairs,
    parameter_warnings,
    received_pairs,
)
from .loopback_smtp import closed_port


@tagged("post_install", "-at_install", "mail_outbound")
class TestDelivery(TwoServersCase):
    def run_queue(self, mails):
        self.env["mail.mail"].process_email_queue(ids=mails.ids)

    def pass_time(self, mails):
        """The next attempt is due: move it to now (the clock passes)."""
        mails.write({"scheduled_date": fields.Datetime.now() - timedelta(seconds=1)})

    def assertEndStates(self, mails, sent=0, deferred=0, failed=0):
        """Each mail sent, deferred with a next attempt, or failed with a reason."""
        states = {"sent": 0, "deferred": 0, "failed": 0}
        for mail in mails:
            if mail.state == "sent":
                states["sent"] += 1
            elif mail.state == "outgoing":
                self.assertTrue(mail.delivery_deferred, mail.failure_reason)
                self.assertTrue(
                    mail.scheduled_date, "a deferred mail has a next attempt"
                )
                self.assertTrue(mail.failure_reason)
                states["deferred"] += 1
            else:
                self.assertEqual(mail.state, "exception")
                self.assertTrue(mail.failure_reason, "a failed mail says why")
                self.assertTrue(mail.failure_type)
                states["failed"] += 1
        self.assertEqual(states, {"sent": sent, "deferred": deferred, "failed": failed})

    # -- temporary and permanent ------------------------------------------
    def test_deferral_reason_is_rendered_for_its_reader(self):
        # issue #23: "documents.. Next attempt at 15:37:34 (UTC)" beside a
        # Next Attempt field showing 16:37:34, and English in Romanian
        self.smtp_primary.script(
            "data", 451, "4.7.1 Try again later, as your provider documents."
        )
        mail = self.queue_notification(partners=1)
        self.run_queue(mail)
        self.assertTrue(mail.delivery_deferred)
        for reason in (mail.failure_reason, mail.delivery_deferral_reason):
            self.assertNotIn("..", reason)
            self.assertNotIn("UTC", reason)
        self.assertEqual(
            mail.delivery_deferral_reason,
            "Deferred after attempt 1: 451 4.7.1 Try again later, as your "
            "provider documents.",
        )
        self.env["res.lang"]._activate_lang("ro_RO")
        self.env["ir.module.module"].search(
            [("name", "=", "mail_outbound")]
        )._update_translations(["ro_RO"])
        mail.invalidate_recordset(["delivery_deferral_reason"])
        self.assertTrue(
            mail.with_context(lang="ro_RO").delivery_deferral_reason.startswith(
                "Amânat după încercarea 1: 451"
            )
        )
        # the Deferred filter's list shows the next attempt, reason and server
        arch = self.env["mail.mail"].get_views([(False, "list")])["views"]["list"][
            "arch"
        ]
        for field in (
            "scheduled_date",
            "delivery_deferral_reason",
            "routing_server_id",
        ):
            self.assertIn(f'name="{field}"', arch)

    def test_limit_windows_name_their_time_zone(self):
        # issue #23 (10): the window started at 00:00 UTC, and no screen said
        self.env.company.partner_id.tz = False
        self.assertIn("UTC", self.primary.limit_time_zone)
        self.assertIn("no time zone", self.primary.limit_time_zone)
        self.env.company.partner_id.tz = "Europe/Bucharest"
        self.primary.invalidate_recordset(["limit_time_zone"])
        self.assertEqual(self.primary.limit_time_zone, "Europe/Bucharest")
        self.env.user.tz = "Europe/Bucharest"
        until = fields.Datetime.from_string("2026-12-03 15:37:34")
        reason = self.env["mail.mail"]._describe_hold(
            "server_day", {"limit": 40, "server": "Primary"}, until
        )
        self.assertIn("2026-12-03 17:37:34 (Europe/Bucharest)", reason)

    def test_451_on_data_defers_with_backoff_then_sends(self):
        self.smtp_primary.script("data", 451, "4.7.1 Try again later", times=1)
        mail = self.queue_notification(partners=3)
        followers = mail.recipient_ids
        before = fields.Datetime.now()
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertEqual(mail.delivery_attempts, 1)
        delay = (mail.scheduled_date - before).total_seconds()
        self.assertTrue(230 <= delay <= 370, delay)
        self.assertIn("451 4.7.1 Try again later", mail.failure_reason)
        (log,) = self.new_logs()
        self.assertEqual(
            (log.outcome, log.smtp_code, log.attempt), ("deferred", 451, 1)
        )
        self.assertEqual(log.next_attempt, mail.scheduled_date)
        self.assertFalse(self.smtp_primary.messages)
        # nobody got it: the chatter waits, no red envelope
        self.assertChatter(mail, ready=followers)

        self.pass_time(mail)
        self.run_queue(mail)
        self.assertEndStates(mail, sent=1)
        self.received(self.smtp_primary, 3)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mail))
        self.assertChatter(mail, sent=followers)
        sent_log = self.new_logs()[-1]
        self.assertEqual((sent_log.outcome, sent_log.smtp_code), ("sent", 250))
        self.assertIn("queued", sent_log.smtp_reply)
        self.assertEqual(sent_log.mail_server_id, self.primary)
        self.assertEqual(sent_log.recipient_count, 3)

    def test_452_on_rcpt_defers(self):
        self.smtp_primary.script("rcpt", 452, "4.2.2 Mailbox full")
        mail = self.queue_template(partners=2)
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertIn("452", mail.failure_reason)
        self.assertFalse(self.smtp_primary.messages)
        self.assertChatter(mail)

    def test_550_on_rcpt_fails_for_good(self):
        self.smtp_primary.script("rcpt", 550, "5.1.1 No such user")
        mail = self.queue_notification(partners=3)
        self.run_queue(mail)
        self.assertEndStates(mail, failed=1)
        self.assertEqual(mail.failure_type, "mail_email_invalid")
        self.assertIn("550 5.1.1 No such user", mail.failure_reason)
        self.assertEqual(self.new_logs().outcome, "failed")
        self.assertFalse(self.smtp_primary.messages)
        # core stops at the first refused partner: every follower's
        # notification in exception, with the server's words
        self.assertChatter(
            mail, exception=mail.recipient_ids, reason="550 5.1.1 No such user"
        )

    def test_554_on_data_fails_for_good(self):
        self.smtp_primary.script("data", 554, "5.7.1 Spam detected")
        mail = self.queue_template(partners=2)
        self.run_queue(mail)
        self.assertEndStates(mail, failed=1)
        self.assertEqual(mail.failure_type, "mail_smtp")
        self.assertIn("554 5.7.1 Spam detected", mail.failure_reason)
        log = self.new_logs()
        self.assertEqual((log.outcome, log.smtp_code), ("failed", 554))
        self.assertFalse(self.smtp_primary.messages)
        self.assertChatter(mail)

    def test_554_on_data_for_one_follower(self):
        """The second follower's copy refused for good: the first has it,
        the chatter says who did not get it and why."""
        mail = self.queue_notification(partners=3)
        first, second, third = mail.recipient_ids
        self.smtp_primary.script("data", 554, "5.7.1 Spam detected", match=second.email)
        self.run_queue(mail)
        self.assertEndStates(mail, failed=1)
        self.assertEqual(mail.failure_type, "mail_smtp")
        self.assertIn("Sent to some recipients only", mail.failure_reason)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mail, first))
        # core's loop stops at the refusal: the third was never tried either
        self.assertChatter(
            mail, sent=first, exception=second | third, reason="554 5.7.1"
        )
        self.assertEqual(self.new_logs().outcome, "failed")
        self.run_queue(mail)
        self.received(self.smtp_primary, 1)  # not retried

    def test_connection_dropped_after_data(self):
        """Issue #15: the server may have it; never sent again by itself.
        The other mails go on the queue's other sessions."""
        mails = self.queue_notifications(3, partners=2)
        dropped, untried = mails[0].recipient_ids
        self.smtp_primary.script("data", action="accept_close", match=dropped.email)
        self.run_queue(mails)
        self.received(self.smtp_primary, 5)
        self.assertDeliveredOnce(
            self.smtp_primary, mail_pairs(mails[1:]) + mail_pairs(mails[0], dropped)
        )
        self.assertEqual(mails[0].state, "exception")
        self.assertTrue(mails[0].delivery_maybe_delivered)
        self.assertIn("may have been delivered", mails[0].failure_reason)
        self.assertEqual(mails[1:].mapped("state"), ["sent", "sent"])
        self.assertFalse(any(mails.mapped("delivery_claim")))
        # core's loop stops with the session: the second follower never got
        # it; both notifications say why
        self.assertChatter(
            mails[0], exception=dropped | untried, reason="may have been delivered"
        )
        self.assertChatter(mails[1:], sent=mails[1:].recipient_ids)
        self.run_queue(mails)
        self.received(self.smtp_primary, 5)  # nothing sent twice

    def test_a_follower_s_copy_dropped_after_data(self):
        """ADDON BUG (fails): the first follower's copy accepted, the
        second's dropped after the end of DATA. The second may have it: the
        mail is "may have been delivered" (Send Again), not "the server
        refused the others", which it never did."""
        mail = self.queue_notification(partners=3)
        first, dropped, untried = mail.recipient_ids
        self.smtp_primary.script("data", action="accept_close", match=dropped.email)
        self.run_queue(mail)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mail, first | dropped))
        self.assertEqual(mail.state, "exception")
        self.assertChatter(mail, sent=first, exception=dropped | untried)
        self.assertIn("may have been delivered", mail.failure_reason)
        self.assertTrue(mail.delivery_maybe_delivered)
        self.assertNotIn("refused", mail.failure_reason)

    def test_connection_dropped_after_data_on_one_session(self):
        """Parallel Connections 1: core's loop, whose batch stops with the
        session."""
        self.primary.parallel_connections = 1
        self.smtp_primary.script("data", action="accept_close", times=1)
        mails = self.queue_notifications(3, partners=2)
        dropped, untried = mails[0].recipient_ids
        self.run_queue(mails)
        self.received(self.smtp_primary, 1)
        self.assertEqual(mails[0].state, "exception")
        self.assertTrue(mails[0].delivery_maybe_delivered)
        self.assertIn("may have been delivered", mails[0].failure_reason)
        self.assertIn("Send Again", mails[0].failure_reason)
        self.assertChatter(mails[0], exception=dropped | untried)
        # the session is gone: core's batch stops, the others were never
        # tried and stay queued as they were, for the next run
        self.assertEqual(mails[1:].mapped("state"), ["outgoing", "outgoing"])
        self.assertFalse(any(mails[1:].mapped("delivery_deferred")))
        self.assertFalse(any(mails[1:].mapped("delivery_attempts")))
        self.assertFalse(any(mails.mapped("delivery_claim")))
        self.assertChatter(mails[1:], ready=mails[1:].recipient_ids)
        self.run_queue(mails)
        self.assertEqual(mails[1:].mapped("state"), ["sent", "sent"])
        self.assertChatter(mails[1:], sent=mails[1:].recipient_ids)
        self.run_queue(mails)
        self.received(self.smtp_primary, 5)  # nothing sent twice
        self.assertDeliveredOnce(
            self.smtp_primary, mail_pairs(mails[1:]) + mail_pairs(mails[0], dropped)
        )
        # a person checked it did not arrive: one click sends it again
        mails[0].action_send_again()
        self.assertFalse(mails[0].delivery_maybe_delivered)
        self.run_queue(mails)
        self.assertEndStates(mails, sent=3)
        self.received(self.smtp_primary, 7)
        self.assertChatter(mails, sent=mails.recipient_ids)
        self.assertEqual(
            self.smtp_primary.messages[-1]["message"]["Message-Id"],
            mails[0].message_id,
        )

    def test_connection_dropped_after_data_retried_when_so_set(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.after_data_drop", "retry"
        )
        self.smtp_primary.script("data", action="accept_close", times=1)
        mail = self.queue_notification(partners=2)
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertChatter(mail, ready=mail.recipient_ids)
        self.pass_time(mail)
        self.run_queue(mail)
        self.assertEndStates(mail, sent=1)
        # the duplicate the setting accepts: the first follower's copy twice
        self.received(self.smtp_primary, 3)
        self.assertEqual(
            received_pairs(self.smtp_primary),
            sorted(mail_pairs(mail) + mail_pairs(mail, mail.recipient_ids[0])),
        )
        self.assertChatter(mail, sent=mail.recipient_ids)

    def test_connection_dropped_before_data_is_temporary(self):
        self.smtp_primary.script("rcpt", action="close", times=1)
        mail = self.queue_template(partners=2)
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertFalse(mail.delivery_maybe_delivered)
        self.pass_time(mail)
        self.run_queue(mail)
        self.assertEndStates(mail, sent=1)
        self.received(self.smtp_primary, 2)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mail))

    def test_send_again_is_for_administrators(self):
        mail = self.create_mails()
        mail.write({"state": "exception", "delivery_maybe_delivered": True})
        employee = self.env["res.users"].create(
            {
                "name": "Emma",
                "login": "emma_send_again",
                "groups_id": [(6, 0, self.env.ref("base.group_user").ids)],
            }
        )
        with self.assertRaises(AccessError):
            mail.with_user(employee).action_send_again()
        self.assertEqual(mail.state, "exception")

    def test_server_that_never_answers_times_out(self):
        # before the end of DATA: temporary, deferred
        self.smtp_primary.script("rcpt", action="hang", times=1)
        mail = self.queue_notification(partners=2)
        with patch("odoo.addons.base.models.ir_mail_server.SMTP_TIMEOUT", 1):
            self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertIn("timed out", mail.failure_reason)
        self.assertChatter(mail, ready=mail.recipient_ids)
        # no reply after the end of DATA: may have been delivered
        self.smtp_primary.script("data", action="hang", times=1)
        late = self.queue_notification(partners=2)
        with patch("odoo.addons.base.models.ir_mail_server.SMTP_TIMEOUT", 1):
            self.run_queue(late)
        self.assertEqual(late.state, "exception")
        self.assertIn("may have been delivered", late.failure_reason)
        self.assertChatter(
            late, exception=late.recipient_ids, reason="may have been delivered"
        )
        self.assertFalse(self.smtp_primary.messages)

    def test_gives_up_after_the_queue_lifetime(self):
        self.smtp_primary.script("data", 451, "4.7.1 Still busy")
        mail = self.queue_notification(partners=2)
        mail.write(
            {
                "delivery_attempts": 30,
                "delivery_first_attempt": fields.Datetime.now() - timedelta(days=6),
            }
        )
        self.run_queue(mail)
        self.assertEndStates(mail, failed=1)
        self.assertIn("longer than the queue lifetime", mail.failure_reason)
        self.assertIn("451 4.7.1 Still busy", mail.failure_reason)
        self.assertFalse(self.smtp_primary.messages)
        self.assertChatter(
            mail, exception=mail.recipient_ids, reason="longer than the queue lifetime"
        )

    def test_partial_delivery_is_not_retried(self):
        # core sends one message per partner, in the partners' order as the
        # database gives it (the queue's commits empty the cache): the
        # refused one after one was accepted
        mail = self.queue_notification(partners=3)
        accepted, later, untried = mail.recipient_ids
        self.smtp_primary.script("rcpt", 451, "4.7.1 Later", match=later.email)
        self.run_queue(mail)
        self.assertEndStates(mail, failed=1)
        self.assertIn("Sent to some recipients only", mail.failure_reason)
        self.received(self.smtp_primary, 1)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mail, accepted))
        # core's loop stopped at the refusal: the third was never tried
        self.assertChatter(
            mail, sent=accepted, exception=later | untried, reason="451 4.7.1 Later"
        )
        self.pass_time(mail)
        self.run_queue(mail)
        self.received(self.smtp_primary, 1)  # not retried

    # -- failover and circuit breaker --------------------------------------
    def test_failover_from_a_dead_primary(self):
        self.primary.smtp_port = closed_port()
        # one batch (one author, one From): one connection to the primary
        mails = self.queue_notifications(2, partners=2)
        self.run_queue(mails)
        self.assertEndStates(mails, sent=2)
        self.received(self.smtp_secondary, 4)
        self.assertDeliveredOnce(self.smtp_secondary, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)
        self.assertEqual(self.primary.delivery_failures, 1)
        self.assertTrue(self.primary.last_delivery_error)
        logs = self.new_logs()
        delivered = logs.filtered(lambda log: log.outcome == "sent")
        self.assertEqual(delivered.mail_id, mails)
        self.assertEqual(delivered.mapped("recipient_count"), [2, 2])
        self.assertEqual(delivered.mapped("failover_from_id"), self.primary)
        self.assertEqual(delivered.mapped("mail_server_id"), self.secondary)
        self.assertEqual(mails.mapped("routing_server_id"), self.secondary)
        # issue #9: the failed connection to the primary is an attempt too,
        # one line, in the log, graph and pivot
        skipped = logs.filtered(lambda log: log.outcome == "failed_over")
        self.assertEqual(len(skipped), 1)
        self.assertEqual(skipped.mail_server_id, self.primary)
        self.assertTrue(skipped.reason)
        # a sent mail counts its attempt
        self.assertEqual(mails.mapped("delivery_attempts"), [1, 1])
        self.assertTrue(all(mails.mapped("delivery_first_attempt")))

    def test_every_server_tried_has_its_line_and_failure(self):
        # issue #20: the primary refuses, the first fallback's host does not
        # resolve (DNS), the third server delivers; one and several sessions
        brevo = self.create_server("Brevo", sequence=2, smtp_host="smtp.brevo.invalid")
        self.primary.smtp_port = closed_port()
        for width in (1, 4):
            with self.subTest(parallel_connections=width):
                for server in self.primary | brevo | self.secondary:
                    server.write(
                        {
                            "parallel_connections": width,
                            "delivery_failures": 0,
                            "unhealthy_until": False,
                        }
                    )
                self.smtp_secondary.reset()
                logs = capture_delivery_logs(self.env)
                # one batch (one author, one From): one connection each
                mails = self.queue_notifications(3, partners=2)
                self.run_queue(mails)
                self.assertEndStates(mails, sent=3)
                self.assertDeliveredOnce(self.smtp_secondary, mail_pairs(mails))
                self.assertChatter(mails, sent=mails.recipient_ids)
                self.assertEqual(
                    (self.primary.delivery_failures, brevo.delivery_failures),
                    (1, 1),
                )
                tried = logs().filtered(lambda log: log.outcome == "failed_over")
                self.assertEqual(tried.mail_server_id, self.primary | brevo)
                self.assertEqual(len(tried), 2)
                self.assertIn("Name or service not known", tried[1].reason)
                sent = logs() - tried
                self.assertEqual(sent.mapped("outcome"), ["sent"] * 3)
                self.assertEqual(sent.mail_server_id, self.secondary)
                self.assertEqual(sent.failover_from_id, self.primary)
                self.assertEqual(mails.mapped("routing_server_id"), self.secondary)
                (self.primary | brevo | self.secondary).invalidate_recordset()
                self.assertEqual(brevo.failures_24h, 1 if width == 1 else 2)
                self.assertEqual(brevo.circuit_state, "retry")

    def test_every_server_failing_logs_each_and_defers(self):
        brevo = self.create_server("Brevo", sequence=2, smtp_host="smtp.brevo.invalid")
        self.primary.smtp_port = closed_port()
        self.secondary.smtp_port = closed_port()
        mails = self.queue_notifications(2, partners=2)
        self.run_queue(mails)
        self.assertEndStates(mails, deferred=2)
        self.assertChatter(mails, ready=mails.recipient_ids)
        servers = self.primary | brevo | self.secondary
        self.assertEqual(servers.mapped("delivery_failures"), [1, 1, 1])
        logs = self.new_logs()
        # the first two tried: a line each; the last one tried: the mails'
        # deferrals, its error, from the primary
        self.assertEqual(
            [(log.outcome, log.mail_server_id) for log in logs],
            [
                ("failed_over", self.primary),
                ("failed_over", brevo),
                ("deferred", self.secondary),
                ("deferred", self.secondary),
            ],
        )
        self.assertEqual(logs[2:].failover_from_id, self.primary)
        self.assertTrue(all(logs.mapped("reason")))
        servers.invalidate_recordset()
        self.assertEqual(servers.mapped("failures_24h"), [1, 1, 2])
        self.assertEqual(mails.mapped("delivery_attempts"), [1, 1])

    def test_a_mail_failed_after_deferrals_shows_no_deferral(self):
        mail = self.queue_template(partners=1)
        self.smtp_primary.script("data", 451, "4.3.0 Try later")
        self.run_queue(mail)
        self.pass_time(mail)
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertEqual(mail.delivery_attempts, 2)
        self.smtp_primary.reset()
        self.smtp_primary.script("data", 554, "5.7.1 Refused")
        self.pass_time(mail)
        self.run_queue(mail)
        self.assertEndStates(mail, failed=1)
        self.assertFalse(mail.delivery_deferred)
        self.assertEqual(mail.delivery_attempts, 3)
        self.assertEqual(
            self.new_logs(mail).mapped("outcome"), ["deferred", "deferred", "failed"]
        )

    def test_failover_on_refused_login_and_421(self):
        for case in ("auth", "421"):
            with self.subTest(case=case):
                self.primary.write({"delivery_failures": 0, "unhealthy_until": False})
                if case == "auth":
                    smtp, server = self.start_smtp_server(
                        "Needs login",
                        sequence=0,
                        users={"odoo": "secret"},
                        smtp_user="odoo",
                        smtp_pass="wrong",
                    )
                else:
                    smtp, server = self.start_smtp_server("Busy", sequence=0)
                    smtp.script("connect", 421, "4.3.2 Too busy")
                mail = self.queue_template(partners=2)
                self.run_queue(mail)
                self.assertEndStates(mail, sent=1)
                self.assertFalse(smtp.messages)
                self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mail))
                self.assertEqual(server.delivery_failures, 1)
                server.active = False
                self.smtp_primary.reset()

    def test_failover_keeps_the_from_rule(self):
        self.primary.smtp_port = closed_port()
        self.secondary.from_filter = "example.org"
        self.alias_domain.default_from = "notifications@example.org"
        # a template sent as '"Traffic" <traffic@example.com>'
        mail = self.queue_template(partners=2)
        self.run_queue(mail)
        received = self.received(self.smtp_secondary, 2)
        self.assertDeliveredOnce(self.smtp_secondary, mail_pairs(mail))
        for copy in received:
            self.assertAddress(
                copy["message"]["From"], "Traffic", "notifications@example.org"
            )
        # issue #9: the Routing tab says what the secondary received
        self.assertEqual(mail.routing_server_id, self.secondary)
        self.assertIn("<notifications@example.org>", mail.routing_email_from)
        self.assertEqual(
            {mail.routing_envelope_from}, {copy["mail_from"] for copy in received}
        )
        log = self.new_logs().filtered(lambda log: log.outcome == "sent")
        self.assertIn("<notifications@example.org>", log.email_from)

    def test_circuit_opens_after_repeated_failures(self):
        smtp, flaky = self.start_smtp_server("Flaky", sequence=0)
        smtp.script("connect", 421, "4.3.2 Busy")
        connect_rule = smtp.rules[0]
        mails = self.env["mail.mail"]
        for _attempt in range(3):
            mails |= self.queue_notification(partners=2)
            self.run_queue(mails[-1])
        self.assertEqual(flaky.delivery_failures, 3)
        self.assertGreater(flaky.unhealthy_until, fields.Datetime.now())
        # open circuit: not even tried
        mails |= self.queue_notification(partners=2)
        self.run_queue(mails[-1])
        self.assertEqual(connect_rule.used, 3)
        self.received(self.smtp_primary, 8)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)
        # after the cooldown, one try; success closes the circuit
        smtp.reset()
        flaky.unhealthy_until = fields.Datetime.now() - timedelta(seconds=1)
        mail = self.queue_notification(partners=2)
        self.run_queue(mail)
        self.assertEqual(flaky.delivery_failures, 0)
        self.assertFalse(flaky.unhealthy_until)
        self.received(smtp, 2)
        self.assertDeliveredOnce(smtp, mail_pairs(mail))
        self.assertChatter(mail, sent=mail.recipient_ids)

    def test_every_server_down_defers(self):
        self.primary.smtp_port = closed_port()
        self.secondary.smtp_port = closed_port()
        notifications = self.queue_notifications(2, partners=2)
        mails = notifications | self.queue_template() | self.queue_template()
        self.run_queue(mails)
        self.assertEndStates(mails, deferred=4)
        # two batches (the notifications, the templates): the primary failed
        # each over, the secondary's failure deferred each mail
        logs = self.new_logs()
        tried = logs.filtered(lambda log: log.outcome == "failed_over")
        self.assertEqual(tried.mapped("mail_server_id"), self.primary)
        self.assertEqual(len(tried), 2)
        deferred = logs - tried
        self.assertEqual(set(deferred.mapped("outcome")), {"deferred"})
        self.assertEqual(deferred.mail_server_id, self.secondary)
        self.assertEqual(deferred.mail_id, mails)
        self.assertEqual(len(deferred), 4)
        self.assertChatter(mails, ready=notifications.recipient_ids)

    def test_bad_tls_defers(self):
        # the record expects implicit TLS, the server speaks cleartext
        self.primary.smtp_encryption = "ssl"
        self.secondary.smtp_encryption = "ssl"
        mail = self.queue_notification(partners=2)
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertChatter(mail, ready=mail.recipient_ids)

    # -- limits --------------------------------------------------------------
    def test_server_daily_limit_reached_mid_batch_then_next_day(self):
        """A limit of 6 SMTP messages: a mail to two followers is two."""
        self.primary.daily_limit = 6
        self.secondary.active = False
        mails = self.queue_notifications(5, partners=2)
        now = fields.Datetime.now()
        self.run_queue(mails)
        self.assertEqual(mails.mapped("state").count("sent"), 3)
        waiting = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertEqual(set(waiting.mapped("delivery_hold")), {"server_day"})
        self.assertIn(
            "daily limit of 6 messages of Primary", waiting[0].delivery_hold_reason
        )
        self.assertGreater(waiting[0].scheduled_date, now)
        self.assertEqual(self.primary.sent_today, 6)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails - waiting))
        self.assertChatter(
            mails,
            sent=(mails - waiting).recipient_ids,
            ready=waiting.recipient_ids,
        )
        # the next day: yesterday's sends no longer count
        self.env.cr.execute(
            "UPDATE mail_delivery_log SET create_date = create_date - interval '1 day'"
        )
        self.pass_time(waiting)
        self.run_queue(waiting)
        self.assertEndStates(mails, sent=5)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)

    def test_day_follows_the_company_time_zone(self):
        self.env.company.partner_id.tz = "Europe/Bucharest"
        self.primary.daily_limit = 1
        self.secondary.active = False
        # 23:30 in Bucharest (UTC+2): the local day ends in 30 minutes
        late = fields.Datetime.to_datetime("2026-11-24 21:30:00")
        with patch.object(fields.Datetime, "now", return_value=late):
            mails = self.queue_notifications(2, partners=2)
            self.run_queue(mails)
        waiting = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertEqual(
            fields.Datetime.to_string(waiting.scheduled_date), "2026-11-24 22:00:00"
        )

    def test_database_daily_limit(self):
        """The database's limit counts SMTP messages: two posts to two
        followers are four."""
        self.env["ir.config_parameter"].sudo().set_param("mail_outbound.daily_limit", 4)
        notifications = self.queue_notifications(2, partners=2)
        mails = notifications | self.queue_template() | self.queue_template()
        self.run_queue(mails)
        self.assertEqual(mails.mapped("state").count("sent"), 2)
        waiting = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertEqual(set(waiting.mapped("delivery_hold")), {"database_day"})
        self.assertIn(
            "database's daily limit of 4 messages", waiting[0].delivery_hold_reason
        )
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails - waiting))
        self.assertChatter(
            mails,
            sent=(notifications - waiting).recipient_ids,
            ready=(notifications & waiting).recipient_ids,
        )

    def cron_triggers(self):
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action")
        return self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])

    def test_a_deferral_wakes_the_queue_and_logs_one_warning(self):
        """Issue #9: the cron runs at the next attempt, not at its next hour;
        the log has one WARNING line, not core's ERROR traceback."""
        self.secondary.active = False
        self.smtp_primary.script("rcpt", 451, "4.7.1 Greylisted", times=1)
        before = self.cron_triggers()
        mail = self.queue_notification(partners=2)
        with (
            self.assertLogs(
                "odoo.addons.mail_outbound.models.mail_mail_delivery", "WARNING"
            ) as ours,
            self.assertNoLogs("odoo.addons.mail.models.mail_mail", "ERROR"),
        ):
            self.run_queue(mail)
        # the filter lives with the run: outside it, core's log is core's
        core_logger = logging.getLogger("odoo.addons.mail.models.mail_mail")
        self.assertFalse(
            [f for f in core_logger.filters if isinstance(f, queue_log._DeferredFilter)]
        )
        self.assertEndStates(mail, deferred=1)
        lines = [line for line in ours.output if "deferred after attempt" in line]
        self.assertEqual(len(lines), 1)
        for words in (str(mail.id), "Primary", "451", "next attempt"):
            self.assertIn(words, lines[0])
        self.assertChatter(mail, ready=mail.recipient_ids)
        triggers = self.cron_triggers() - before
        self.assertEqual(triggers.mapped("call_at"), [mail.scheduled_date])

    def test_a_deferred_mails_last_error_is_on_its_form(self):
        """Issue #9, point 5: the form an administrator opens shows why the
        mail waits (the server's own reply) and when it is tried again."""
        self.secondary.active = False
        self.smtp_primary.script("data", 451, "4.7.1 Mailbox busy, try later")
        mail = self.queue_template()
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        admin = self.env["res.users"].create(
            {
                "name": "Ada Administrator",
                "login": "ada_admin_deferred_form",
                "groups_id": [(6, 0, self.env.ref("base.group_system").ids)],
            }
        )
        form = Form(mail.with_user(admin))
        # the reason is rendered from stored values, in the reader's language
        for name in ("delivery_deferral_reason", "scheduled_date", "delivery_attempts"):
            self.assertFalse(form._get_modifier(name, "invisible"), f"{name} is hidden")
        self.assertIn(
            "451 4.7.1 Mailbox busy, try later", form.delivery_deferral_reason
        )
        self.assertEqual(
            form.scheduled_date, fields.Datetime.to_string(mail.scheduled_date)
        )
        self.assertEqual(form.delivery_attempts, 1)

    def test_a_deferred_mailing_trace_is_not_failed(self):
        """Issue #9, point 8: mass_mailing marks the trace failed before this
        module defers the mail."""
        if "mailing_trace_ids" not in self.env["mail.mail"]._fields:
            self.skipTest("mass_mailing is not installed")
        self.secondary.active = False
        self.smtp_primary.script("rcpt", 451, "4.7.1 Greylisted", times=1)
        mailing = self.env["mailing.mailing"].create(
            {
                "subject": "Promo",
                "body_html": "<p>x</p>",
                "mailing_model_id": self.env.ref("base.model_res_partner").id,
            }
        )
        mail = self.create_mails(mailing_id=mailing.id)
        trace = self.env["mailing.trace"].create(
            {
                "mail_mail_id": mail.id,
                "mass_mailing_id": mailing.id,
                "model": "res.partner",
                "res_id": self.env.user.partner_id.id,
                "email": "rcpt0@destination.example",
            }
        )
        self.run_queue(mail)
        self.assertEndStates(mail, deferred=1)
        self.assertEqual(trace.trace_status, "outgoing")
        self.pass_time(mail)
        self.run_queue(mail)
        self.assertEqual(trace.trace_status, "sent")

    def test_a_limit_wakes_the_queue_at_the_next_window(self):
        self.primary.rate_per_minute = 1
        self.secondary.active = False
        before = self.cron_triggers()
        mails = self.queue_notifications(2, partners=1)
        self.run_queue(mails)
        waiting = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertChatter(
            mails, sent=(mails - waiting).recipient_ids, ready=waiting.recipient_ids
        )
        triggers = self.cron_triggers() - before
        self.assertEqual(triggers.mapped("call_at"), [waiting.scheduled_date])

    def test_rate_per_minute(self):
        self.primary.rate_per_minute = 2
        self.secondary.active = False
        mails = self.queue_notifications(3, partners=1)
        self.run_queue(mails)
        self.assertEqual(mails.mapped("state").count("sent"), 2)
        waiting = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertEqual(waiting.delivery_hold, "server_minute")
        self.assertIn("at most 2 messages a minute", waiting.delivery_hold_reason)
        self.assertEqual(waiting.scheduled_date.second, 0)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails - waiting))
        self.assertChatter(
            mails, sent=(mails - waiting).recipient_ids, ready=waiting.recipient_ids
        )

    # -- mixed batch, claims -------------------------------------------------
    def test_mixed_faults_every_mail_accounted_for(self):
        self.secondary.active = False
        notifications = self.queue_notifications(3, partners=2)
        templates = self.queue_template() | self.queue_template()
        templates |= self.queue_template()
        mails = notifications | templates
        refused, deferred = notifications[1], templates[2]
        self.smtp_primary.script(
            "rcpt", 550, "5.1.1 Unknown", match=refused.recipient_ids[0].email
        )
        self.smtp_primary.script(
            "rcpt", 451, "4.7.1 Later", match=deferred.recipient_ids[0].email
        )
        self.run_queue(mails)
        self.assertEndStates(mails, sent=4, deferred=1, failed=1)
        self.assertEqual((refused.state, deferred.state), ("exception", "outgoing"))
        self.assertEqual(len(self.smtp_primary.messages), 8)
        self.assertDeliveredOnce(
            self.smtp_primary, mail_pairs(mails - refused - deferred)
        )
        outcomes = sorted(self.new_logs().mapped("outcome"))
        self.assertEqual(
            outcomes, ["deferred", "failed", "sent", "sent", "sent", "sent"]
        )
        self.assertChatter(
            notifications,
            sent=(notifications - refused).recipient_ids,
            exception=refused.recipient_ids,
            reason="550 5.1.1 Unknown",
        )

    def test_claimed_mails_are_left_to_their_worker(self):
        mails = self.queue_notifications(2, partners=2)
        other = mails[0]
        other.write(
            {
                "delivery_claim": "other-worker",
                "delivery_claim_date": fields.Datetime.now(),
            }
        )
        self.run_queue(mails)
        self.assertEqual(other.state, "outgoing")
        self.assertEqual(mails[1].state, "sent")
        # the other worker died: its claim expires and the mail goes
        other.delivery_claim_date = fields.Datetime.now() - timedelta(hours=1)
        self.run_queue(mails)
        self.assertEqual(other.state, "sent")
        self.assertFalse(any(mails.mapped("delivery_claim")))
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)

    def mark_batch(self, mails, age="1 hour", claim="a-worker"):
        self.env.flush_all()
        self.env.cr.execute(
            "INSERT INTO mail_outbound_batch (claim, mail_ids, since) "
            "VALUES (%s, %s::jsonb, now() AT TIME ZONE 'UTC' - %s::interval)",
            (claim, json.dumps(mails.ids), age),
        )

    def mark_data_end(self, mail, item=0, partner=None, claim="a-worker"):
        """What a session writes before a message's end of DATA."""
        self.env.cr.execute(
            "INSERT INTO mail_outbound_data_end (claim, mail_id, item, partner_id) "
            "VALUES (%s, %s, %s, %s)",
            (claim, mail.id, item, partner.id if partner else None),
        )

    def test_mail_interrupted_during_hand_over_is_failed_not_resent(self):
        finished, deferred, interrupted, untried = self.queue_notifications(
            4, partners=2
        )
        finished.state = "sent"
        deferred.write({"delivery_deferred": True, "scheduled_date": "2999-01-01"})
        # what a worker killed while handing `interrupted` over leaves behind:
        # the end of DATA of its first message marked
        self.mark_batch(finished | deferred | interrupted | untried)
        self.mark_data_end(interrupted)
        run = self.queue_template()
        self.run_queue(run)
        self.assertEqual(
            (interrupted.state, interrupted.failure_type), ("exception", "mail_smtp")
        )
        self.assertIn("may have been delivered", interrupted.failure_reason)
        self.assertTrue(interrupted.delivery_maybe_delivered, "Send Again")
        self.assertChatter(
            interrupted,
            exception=interrupted.recipient_ids,
            reason="may have been delivered",
        )
        # before it: done; after it: never tried, still queued for a later run
        self.assertEqual(finished.state, "sent")
        self.assertEqual((deferred.state, untried.state), ("outgoing", "outgoing"))
        self.assertFalse(untried.failure_reason)
        self.assertChatter(deferred | untried, ready=(deferred | untried).recipient_ids)
        # none of the batch was sent by this run
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(run))
        self.env.cr.execute(
            "SELECT COUNT(*) FROM mail_outbound_batch WHERE claim = 'a-worker'"
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)

    def record_handover(self, mail, delivered, partner_ids=(), failure_type=None):
        self.env.cr.execute(
            "INSERT INTO mail_outbound_handover "
            "(claim, mail_id, delivered, partner_ids, failure_type, failure_reason) "
            "VALUES ('a-worker', %s, %s, %s::jsonb, %s, %s)",
            (
                mail.id,
                delivered,
                json.dumps(list(partner_ids)),
                failure_type,
                # the reason the worker had written on the mail
                failure_type
                and "Sent to some recipients only; the server refused the "
                "others: 550 5.1.1 no such user.",
            ),
        )

    def test_mails_delivered_but_never_committed_are_marked_sent(self):
        """What a worker committing every 50 mails leaves when it is killed:
        chatter notifications and templates, settled with the partners the
        worker recorded as served (ids read back from JSON)."""
        delivered = self.queue_notification(partners=2)
        deleted = self.queue_template(auto_delete=True)
        partial = self.queue_notification(partners=2)
        refused = self.queue_notification(partners=1)
        interrupted = self.queue_notification(partners=1)
        untried = self.queue_template()
        served, unserved = partial.recipient_ids
        batch = delivered | deleted | partial | refused | interrupted | untried
        message_ids = {mail: mail.message_id for mail in batch}
        self.mark_batch(batch)
        self.record_handover(delivered, True, delivered.recipient_ids.ids)
        self.record_handover(deleted, True, deleted.recipient_ids.ids)
        self.record_handover(
            partial, True, served.ids, failure_type="mail_email_invalid"
        )
        self.record_handover(refused, False, failure_type="mail_smtp")
        self.mark_data_end(interrupted)
        self.run_queue(self.queue_template())
        # delivered: sent, with core's own post-processing, never again
        self.assertEqual(delivered.state, "sent")
        self.assertChatter(delivered, sent=delivered.recipient_ids)
        self.assertFalse(deleted.exists(), "auto-deleted like any sent mail")
        self.assertEqual(
            (partial.state, partial.failure_type), ("exception", "mail_email_invalid")
        )
        self.assertIn("Sent to some recipients only", partial.failure_reason)
        self.assertIn("550 5.1.1 no such user", partial.failure_reason)
        self.assertChatter(
            partial, sent=served, exception=unserved, reason="550 5.1.1 no such user"
        )
        # refused by the server, its outcome lost: trying again sends nothing twice
        self.assertEqual((refused.state, refused.failure_reason), ("outgoing", False))
        self.assertChatter(refused, ready=refused.recipient_ids)
        # the first mail never finished was in hand-over; the rest never tried
        self.assertIn("may have been delivered", interrupted.failure_reason)
        self.assertEqual((untried.state, untried.failure_reason), ("outgoing", False))
        # none of the batch was sent again; only the run's own mail went
        self.assertEqual(
            {message["message"]["Message-Id"] for message in self.smtp_primary.messages}
            & set(message_ids.values()),
            set(),
        )
        # each settled mail has its line in the delivery log
        self.assertEqual(
            sorted(
                (log.message_id, log.outcome)
                for log in self.new_logs()
                if "worker" in (log.reason or "")
            ),
            sorted(
                [
                    (message_ids[delivered], "sent"),
                    (message_ids[deleted], "sent"),
                    (message_ids[partial], "failed"),
                    (message_ids[interrupted], "failed"),
                ]
            ),
        )
        self.env.cr.execute(
            "SELECT COUNT(*) FROM mail_outbound_handover WHERE claim = 'a-worker'"
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)

    def test_claim_kept_while_handed_over_mails_are_unrecorded(self):
        """A run whose outcome was lost does not release its claim."""
        mail = self.create_mails()
        mail.write({"delivery_claim": "a-worker", "delivery_claim_date": "2000-01-01"})
        self.mark_batch(mail)
        self.record_handover(mail, True)
        self.env["mail.outbound.queue"]._release_claims("a-worker")
        self.assertEqual(mail.delivery_claim, "a-worker")
        self.env.cr.execute(
            "SELECT COUNT(*) FROM mail_outbound_handover WHERE claim = 'a-worker'"
        )
        self.assertEqual(self.env.cr.fetchone()[0], 1)
        # once it is recorded as sent, the run lets go
        mail.state = "sent"
        self.env["mail.outbound.queue"]._release_claims("a-worker")
        self.assertFalse(mail.delivery_claim)

    def test_a_claim_is_settled_once_all_its_marks_are_stale(self):
        """A live worker's first batch is old; its claim is not stale."""
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.claim_timeout", 900
        )
        first, second = self.create_mails(2)
        self.mark_batch(first, age="1 hour")
        self.mark_batch(second, age="1 second")
        self.record_handover(first, True)
        self.mark_data_end(second)
        self.run_queue(self.create_mails())
        self.assertEqual((first.state, second.state), ("outgoing", "outgoing"))
        self.env.cr.execute(
            "SELECT COUNT(*) FROM mail_outbound_handover WHERE claim = 'a-worker'"
        )
        self.assertEqual(self.env.cr.fetchone()[0], 1)
        # the worker is gone: both marks stale, the recorded mail is settled
        self.env.cr.execute(
            "UPDATE mail_outbound_batch SET since = since - interval '1 hour'"
        )
        self.run_queue(self.create_mails())
        self.assertEqual(first.state, "sent")
        self.assertIn("may have been delivered", second.failure_reason)

    def test_commit_every_is_read_safely(self):
        Params = self.env["ir.config_parameter"].sudo()
        Mail = self.env["mail.outbound.queue"]
        Params.set_param("mail_outbound.queue_commit_every", False)  # unset
        self.assertEqual(Mail._get_commit_every(), 50)
        Params.set_param("mail_outbound.queue_commit_every", "0")
        self.assertEqual(Mail._get_commit_every(), 1)
        Params.set_param("mail_outbound.queue_commit_every", "fifty")
        with self.assertLogs(
            "odoo.addons.mail_outbound.models.ir_config_parameter", "WARNING"
        ):
            self.assertEqual(Mail._get_commit_every(), 50)

    def test_recent_batch_marks_are_left_alone(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.claim_timeout", 900
        )
        mail = self.create_mails()
        self.mark_batch(mail, age="1 second")
        self.run_queue(self.create_mails())
        self.assertEqual(mail.state, "outgoing")
        self.env.cr.execute(
            "SELECT COUNT(*) FROM mail_outbound_batch WHERE claim = 'a-worker'"
        )
        self.assertEqual(self.env.cr.fetchone()[0], 1)

    def test_interactive_send_keeps_core_behaviour(self):
        self.primary.smtp_port = closed_port()
        self.secondary.smtp_port = closed_port()
        mail = self.create_mails()
        with self.assertRaises(MailDeliveryException):
            mail.send(raise_exception=True)

    # -- settings ------------------------------------------------------------
    def test_settings_show_daily_usage_and_validate(self):
        self.secondary.active = False
        self.run_queue(self.queue_notifications(2, partners=2))
        # two posts to two followers: four SMTP messages
        settings = Form(self.env["res.config.settings"])
        self.assertEqual(settings.mail_outbound_sent_today, 4)
        self.assertEqual(self.primary.sent_today, 4)
        settings.mail_outbound_daily_limit = 500
        settings.save().execute()
        self.assertEqual(
            self.env["ir.config_parameter"]
            .sudo()
            .get_param("mail_outbound.daily_limit"),
            "500",
        )
        # the form's range is the run's (tools/settings.py): 0.01 to 60 days
        for days in (0, 100):
            settings = Form(self.env["res.config.settings"])
            settings.mail_outbound_retry_lifetime_days = days
            with self.assertRaisesRegex(
                ValidationError, r"Retry For \(Days\): .* from 0.01 to 60\."
            ):
                settings.save()
        settings = Form(self.env["res.config.settings"])
        settings.mail_outbound_retry_lifetime_days = 60
        settings.save().execute()
        self.assertEqual(
            self.env["ir.config_parameter"]._mail_outbound_get(
                "mail_outbound.retry_lifetime_days"
            ),
            60,
        )

    def test_settings_show_what_the_run_uses(self):
        # a hand-typed value the run does not use as typed: the form shows
        # what the run uses, and opening it does not fail
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("mail_outbound.daily_limit", "1e309")
        params.set_param("mail_outbound.retry_lifetime_days", "100")
        params.set_param("mail_outbound.blocked_ports", "2526;2525")
        with parameter_warnings() as lines:
            settings = Form(self.env["res.config.settings"])
        self.assertEqual(settings.mail_outbound_daily_limit, 0)
        self.assertEqual(settings.mail_outbound_retry_lifetime_days, 60)
        self.assertEqual(settings.mail_outbound_blocked_ports, "2525, 2526")
        self.assertTrue(lines.naming("mail_outbound.daily_limit"))
        self.assertTrue(lines.naming("mail_outbound.retry_lifetime_days"))

    def test_delivery_log_follows_companies(self):
        other = self.env["res.company"].create({"name": "Other Co"})
        Log = self.env["mail.delivery.log"]
        mine = Log.create({"outcome": "sent", "company_id": self.env.company.id})
        theirs = Log.create({"outcome": "sent", "company_id": other.id})
        admin = self.env.ref("base.user_admin")
        admin.write({"company_ids": [(4, other.id)]})
        visible = (
            Log.with_user(admin)
            .with_context(allowed_company_ids=[self.env.company.id])
            .search([("id", "in", (mine | theirs).ids)])
        )
        self.assertEqual(visible, mine)
