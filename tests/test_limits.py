"""Sending limits that count what providers count (issue #20).

Real traffic (chatter notifications to partner followers, templates with
``partner_to``, ``email_to`` mails to several addresses) through the real
queue to loopback SMTP servers; every figure is checked against what the
server received, never against the database alone: a limit of N messages
means N SMTP messages at the sink, a limit of N recipients N RCPT TO.
"""

from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from .common import TwoServersCase, mail_pairs
from .loopback_smtp import closed_port


@tagged("post_install", "-at_install", "mail_outbound")
class TestLimits(TwoServersCase):
    def setUp(self):
        super().setUp()
        self.secondary.active = False

    def run_queue(self, mails=None):
        Mail = self.env["mail.mail"]
        Mail.process_email_queue(ids=(mails.ids if mails else None))
        self.env.invalidate_all()

    def queue_of(self, messages):
        """Every mail of ``messages``' (mail.message), queued or sent."""
        return (
            self.env["mail.mail"]
            .sudo()
            .search([("mail_message_id", "in", messages.ids)], order="id")
        )

    def next_day(self):
        """Today's sends become yesterday's; held mail is due."""
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE mail_delivery_log SET create_date = create_date - interval '1 day'"
        )
        waiting = self.env["mail.mail"].search(
            [("state", "=", "outgoing"), ("delivery_hold", "!=", False)]
        )
        waiting.write({"scheduled_date": fields.Datetime.now() - timedelta(seconds=1)})
        return waiting

    def received_rcpts(self, smtp):
        return sum(len(message["rcpt_tos"]) for message in smtp.messages)

    # -- units ------------------------------------------------------------
    def test_a_daily_limit_counts_smtp_messages_and_splits_a_fan_out(self):
        """The review's case: a limit of 7 messages, three chatter posts to
        five followers each (15 messages): 7 go the first day, never more,
        each follower once over the days, the chatter saying what each got."""
        self.primary.daily_limit = 7
        self.assertEqual(self.primary.limit_unit, "message")
        posts = self.queue_notifications(3, partners=5)
        messages = posts.mail_message_id
        self.run_queue(posts)
        self.received(self.smtp_primary, 7)
        self.assertEqual(self.primary.sent_today, 7)
        mails = self.queue_of(messages)
        # one post was split: two followers now, three later
        self.assertEqual(len(mails), 4)
        sent = mails.filtered(lambda mail: mail.state == "sent")
        held = mails - sent
        self.assertEqual(sorted(len(m.recipient_ids) for m in sent), [2, 5])
        self.assertEqual(sorted(len(m.recipient_ids) for m in held), [3, 5])
        self.assertEqual(set(held.mapped("delivery_hold")), {"server_day"})
        self.assertFalse(any(held.mapped("delivery_deferred")))
        self.assertIn(
            "daily limit of 7 messages of Primary", held[0].delivery_hold_reason
        )
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(sent))
        self.assertChatter(mails, sent=sent.recipient_ids, ready=held.recipient_ids)
        # the log: sent lines counting what was accepted, held lines that
        # are no attempt and carry no server reply
        logs = self.new_logs()
        self.assertEqual(
            sorted(
                logs.filtered(lambda log: log.outcome == "sent").mapped(
                    "accepted_messages"
                )
            ),
            [2, 5],
        )
        waits = logs.filtered(lambda log: log.outcome == "held")
        self.assertEqual(waits.mail_id, held)
        self.assertEqual(set(waits.mapped("smtp_reply")), {False})
        self.assertEqual(set(waits.mapped("smtp_code")), {0})
        self.assertEqual(set(waits.mapped("failure_stage")), {"limit"})
        # the next days: the rest, never over the limit, each once
        for expected in (7, 1):
            self.smtp_primary.reset()
            self.next_day()
            self.run_queue()
            self.received(self.smtp_primary, expected)
        mails = self.queue_of(messages)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertChatter(mails, sent=mails.recipient_ids)
        self.assertEqual(len(mails.recipient_ids), 15)

    def test_recipients_where_the_provider_counts_recipients(self):
        """Three addresses in one To: three recipients, one message, never
        split; the next such mail waits."""
        self.primary.write({"limit_unit": "recipient", "daily_limit": 4})
        to_three = self.create_mails(
            email_to="a@dest.example, b@dest.example, c@dest.example"
        )
        to_three_more = self.create_mails(
            email_to="d@dest.example, e@dest.example, f@dest.example"
        )
        self.run_queue(to_three | to_three_more)
        self.received(self.smtp_primary, 1)
        self.assertEqual(self.received_rcpts(self.smtp_primary), 3)
        self.assertEqual(self.primary.sent_today, 3)
        self.assertEqual(to_three.state, "sent")
        self.assertEqual(
            (to_three_more.state, to_three_more.delivery_hold),
            ("outgoing", "server_day"),
        )
        self.assertIn("4 recipients", to_three_more.delivery_hold_reason)

    def test_a_message_larger_than_the_limit_goes_in_an_empty_window(self):
        self.primary.write({"limit_unit": "recipient", "daily_limit": 2})
        mail = self.create_mails(
            email_to="a@dest.example, b@dest.example, c@dest.example"
        )
        self.run_queue(mail)
        self.assertEqual(mail.state, "sent")
        self.assertEqual(self.received_rcpts(self.smtp_primary), 3)

    def test_hourly_limit(self):
        self.primary.hourly_limit = 2
        template = self.queue_template(partners=2)
        later = self.queue_template(partners=2)
        self.run_queue(template | later)
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(template))
        self.assertEqual(later.delivery_hold, "server_hour")
        now = fields.Datetime.now()
        self.assertEqual(
            later.scheduled_date,
            now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1),
        )
        self.assertIn("hourly limit of 2 messages", later.delivery_hold_reason)

    def test_database_limit_counts_messages_across_servers(self):
        self.env["ir.config_parameter"].sudo().set_param("mail_outbound.daily_limit", 3)
        first = self.queue_notification(partners=2)
        second = self.queue_notification(partners=2)
        self.run_queue(first | second)
        self.received(self.smtp_primary, 3)
        mails = self.queue_of((first | second).mail_message_id)
        held = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertEqual(len(held.recipient_ids), 1)
        self.assertEqual(held.delivery_hold, "database_day")
        self.assertChatter(
            mails, sent=(mails - held).recipient_ids, ready=held.recipient_ids
        )

    # -- what counts --------------------------------------------------------
    def test_deferrals_and_refusals_do_not_consume_quota(self):
        """Only what the server accepted counts: three 451 and one 550 leave
        the day's usage at what the sink holds."""
        self.primary.daily_limit = 3
        self.smtp_primary.script("rcpt", 451, "4.7.1 Greylisted", times=3)
        deferred = self.queue_notifications(3, partners=1)
        self.run_queue(deferred)
        self.assertEqual(set(deferred.mapped("delivery_deferred")), {True})
        self.assertEqual(self.primary.sent_today, 0)
        self.smtp_primary.reset()
        self.smtp_primary.script("rcpt", 550, "5.1.1 No such user", times=1)
        refused = self.queue_template(partners=1)
        self.run_queue(refused)
        self.assertEqual(refused.state, "exception")
        self.assertEqual(self.primary.sent_today, 0)
        self.smtp_primary.reset()
        deferred.write({"scheduled_date": fields.Datetime.now()})
        self.run_queue(deferred)
        self.received(self.smtp_primary, 3)
        self.assertEqual(set(deferred.mapped("state")), {"sent"})
        self.assertEqual(self.primary.sent_today, 3)

    # -- a changed limit takes effect now -----------------------------------
    def test_raising_a_limit_releases_held_mail_at_once(self):
        self.primary.daily_limit = 1
        mails = self.queue_notifications(3, partners=1)
        self.run_queue(mails)
        held = mails.filtered(lambda mail: mail.state == "outgoing")
        self.assertEqual(len(held), 2)
        self.assertEqual(
            (
                self.primary.queue_due,
                self.primary.queue_held,
                self.primary.queue_deferred,
            ),
            (0, 2, 0),
        )
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action")
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search([("cron_id", "=", cron.id)])
        self.primary.daily_limit = 100
        triggers = Trigger.search([("cron_id", "=", cron.id)]) - before
        self.assertTrue(triggers, "the queue is woken")
        self.assertLessEqual(min(triggers.mapped("call_at")), fields.Datetime.now())
        self.assertLessEqual(max(held.mapped("scheduled_date")), fields.Datetime.now())
        self.primary.invalidate_recordset()
        self.assertEqual(self.primary.queue_due + self.primary.queue_held, 2)
        self.run_queue()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.received(self.smtp_primary, 3)
        self.assertFalse(any(mails.mapped("delivery_hold")))

    def test_a_lowered_limit_holds_with_the_new_figure(self):
        self.primary.daily_limit = 2
        first = self.queue_notifications(3, partners=1)
        self.run_queue(first)
        held = first.filtered(lambda mail: mail.state == "outgoing")
        self.assertIn("limit of 2 messages", held.delivery_hold_reason)
        self.primary.daily_limit = 1
        self.run_queue()
        self.assertEqual(held.state, "outgoing")
        self.assertIn("limit of 1 messages", held.delivery_hold_reason)
        self.received(self.smtp_primary, 2)

    # -- failover ----------------------------------------------------------
    def test_a_failover_keeps_to_the_fallbacks_limits(self):
        """The review: 540 sent through a fallback with a limit of 500."""
        self.secondary.write({"active": True, "daily_limit": 2})
        self.primary.smtp_port = closed_port()
        mails = self.queue_notifications(3, partners=1)
        self.run_queue(mails)
        self.assertLessEqual(len(self.smtp_secondary.messages), 2)
        for mail in mails:
            self.assertIn(mail.state, ("sent", "outgoing"))
            if mail.state == "outgoing":
                self.assertTrue(mail.scheduled_date)
        # a batch that fits goes
        self.smtp_secondary.reset()
        self.secondary.daily_limit = 10
        mails.filtered(lambda mail: mail.state == "outgoing").write(
            {"scheduled_date": fields.Datetime.now()}
        )
        self.run_queue()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertLessEqual(self.secondary.sent_today, 10)

    # -- other changes that take effect now ----------------------------------
    def assertWokenNow(self, mails):
        self.assertLessEqual(max(mails.mapped("scheduled_date")), fields.Datetime.now())
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action")
        triggers = self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])
        self.assertLessEqual(min(triggers.mapped("call_at")), fields.Datetime.now())

    def test_unblocking_a_port_sends_its_deferred_mail_now(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("mail_outbound.blocked_ports", str(self.primary.smtp_port))
        mails = self.queue_notifications(2, partners=1)
        self.run_queue(mails)
        self.assertEqual(set(mails.mapped("delivery_deferred")), {True})
        self.assertFalse(self.smtp_primary.messages)
        self.env["ir.cron.trigger"].search([]).unlink()
        params.set_param("mail_outbound.blocked_ports", False)
        self.assertWokenNow(mails)
        self.run_queue()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails))

    def test_resetting_a_circuit_sends_its_deferred_mail_now(self):
        self.primary.smtp_port = closed_port()
        mails = self.queue_notifications(2, partners=1)
        self.run_queue(mails)
        self.assertEqual(set(mails.mapped("delivery_deferred")), {True})
        self.primary.write(
            {
                "smtp_port": self.smtp_primary.port,
                "unhealthy_until": fields.Datetime.now() + timedelta(minutes=5),
            }
        )
        self.env["ir.cron.trigger"].search([]).unlink()
        self.primary.action_reset_circuit()
        self.assertWokenNow(mails)
        self.run_queue()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertDeliveredOnce(self.smtp_primary, mail_pairs(mails))
