"""Several SMTP sessions per server (issue #10), on the queue's real path.

The parallel sessions run only where the queue commits (the cron's run):
these tests use ``MailOutboundCommitCase``, whose queue runs in a worker
thread on committed data, against loopback SMTP servers, and compare every
record the addon writes with what the server received.

The mails are the ones Odoo really queues (``create_committed_traffic``):
chatter notifications to partner followers and templates with
``partner_to``, one SMTP message per partner; each test checks the
(Message-ID, recipient) pairs received and each follower's notification
as the chatter shows it.
"""

from email.utils import parseaddr

from odoo.tests import tagged

from .common import MailOutboundCommitCase, capture_delivery_logs, mail_pairs
from .loopback_smtp import closed_port


@tagged("post_install", "-at_install", "mail_outbound", "mail_outbound_commit")
class TestParallelSessions(MailOutboundCommitCase):
    def setUp(self):
        super().setUp()
        self.logs = capture_delivery_logs(self.committed_env)

    def notified(self, mails):
        """The mails among ``mails`` that notify followers (not templates)."""
        return mails.filtered("mail_message_id.notification_ids")

    def test_each_mail_once_over_several_sessions(self):
        smtp, server_id = self.start_committed_smtp_server(
            "Lanes", parallel_connections=4
        )
        # every session waits for its final reply: they overlap
        smtp.data_delay = 0.03
        ids = self.create_committed_traffic(notifications=30, templates=10, partners=2)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        # 80 copies: each follower's and each template recipient's, once
        self.assertEqual(len(mail_pairs(mails)), 80)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        notified = self.notified(mails)
        self.assertEqual(len(notified), 30)
        self.assertChatter(mails, sent=notified.recipient_ids)
        self.assertGreaterEqual(smtp.in_data_peak, 2)
        # never more sessions than the server's Parallel Connections, the
        # batch's own first session included
        self.assertLessEqual(smtp.peak_sessions, 4)
        logs = self.logs(ids)
        self.assertEqual(len(logs), 40)
        self.assertEqual(logs.mail_id, mails)
        self.assertEqual(set(logs.mapped("outcome")), {"sent"})
        self.assertEqual(set(logs.mapped("recipient_count")), {2})
        self.assertEqual(logs.mail_server_id.ids, [server_id])
        self.assertEqual(set(logs.mapped("smtp_code")), {250})
        # what each log line says the server got is what it got
        by_id = {m["message"]["Message-Id"]: m for m in smtp.messages}
        for log in logs:
            got = by_id[log.message_id]
            self.assertEqual(
                parseaddr(str(got["message"]["From"])), parseaddr(log.email_from)
            )
            self.assertIn("queued", log.smtp_reply)
        self.assertEqual(set(mails.mapped("delivery_attempts")), {1})
        self.assertEqual(mails.routing_server_id.ids, [server_id])

    def test_refusals_on_parallel_sessions(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes")
        ids = self.create_committed_traffic(notifications=8, templates=4, partners=2)
        mails = self.committed_mails(ids)
        deferred, refused, template = mails[3], mails[5], mails[10]
        # the first copy of each: nobody got it (core stops at a refusal)
        smtp.script(
            "rcpt",
            451,
            "4.7.1 Greylisted, try later",
            match=deferred.recipient_ids[0].email,
        )
        smtp.script(
            "rcpt", 550, "5.1.1 No such user", match=refused.recipient_ids[0].email
        )
        smtp.script(
            "rcpt", 550, "5.1.1 No such user", match=template.recipient_ids[0].email
        )
        self.run_queue()
        mails = self.committed_mails(ids)
        # read again after the run (the records above are of an older snapshot)
        deferred, refused, template = mails[3], mails[5], mails[10]
        self.assertEqual(deferred.state, "outgoing")
        self.assertTrue(deferred.delivery_deferred)
        self.assertIn("451", deferred.failure_reason)
        self.assertTrue(deferred.scheduled_date)
        for failed in refused | template:
            self.assertEqual(failed.state, "exception")
            self.assertEqual(failed.failure_type, "mail_email_invalid")
            self.assertIn("550", failed.failure_reason)
        others = mails - deferred - refused - template
        self.assertEqual(set(others.mapped("state")), {"sent"})
        self.assertDeliveredOnce(smtp, mail_pairs(others))
        notified = self.notified(mails)
        self.assertChatter(
            notified,
            sent=(notified & others).recipient_ids,
            ready=deferred.recipient_ids,
            exception=refused.recipient_ids,
            reason="550 5.1.1 No such user",
        )
        outcomes = {log.mail_id.id: log.outcome for log in self.logs(ids)}
        self.assertEqual(outcomes[deferred.id], "deferred")
        self.assertEqual(outcomes[refused.id], "failed")
        self.assertEqual(outcomes[template.id], "failed")
        # the queue wakes at the deferred mail's next attempt
        triggers = self.committed_env()["ir.cron.trigger"].search(
            [("cron_id", "=", self.env.ref("mail.ir_cron_mail_scheduler_action").id)]
        )
        self.assertIn(deferred.scheduled_date, triggers.mapped("call_at"))

    def test_failover_then_several_sessions_to_the_other_server(self):
        env = self.committed_env()
        down = env["ir.mail_server"].create(
            {
                "name": "Down",
                "smtp_host": "127.0.0.1",
                "smtp_port": closed_port(),
                "sequence": 1,
            }
        )
        env.cr.commit()
        smtp, backup_id = self.start_committed_smtp_server("Backup", sequence=2)
        ids = self.create_committed_traffic(notifications=10, partners=2)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(len(smtp.messages), 20)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)
        # the Routing tab says which server took them
        self.assertEqual(mails.routing_server_id.ids, [backup_id])
        logs = self.logs(ids)
        sent = logs.filtered(lambda log: log.outcome == "sent")
        self.assertEqual(len(sent), 10)
        self.assertEqual(sent.mail_server_id.ids, [backup_id])
        self.assertEqual(sent.failover_from_id.ids, [down.id])
        skipped = logs.filtered(lambda log: log.outcome == "failed_over")
        self.assertEqual(skipped.mail_server_id.ids, [down.id])

    def test_a_server_taking_two_connections(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes")
        smtp.max_connections = 2
        smtp.data_delay = 0.01
        ids = self.create_committed_traffic(notifications=20)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(len(smtp.messages), 20)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)
        self.assertEqual(smtp.peak_sessions, 2)
        self.assertGreaterEqual(smtp.refused_connections, 1)

    def test_daily_limit_counts_across_sessions(self):
        """Issue #20: the limit counts SMTP messages, across the sessions; the
        mail that passes it is split, its first follower now, the other
        one held in a mail of its own, the chatter saying which."""
        smtp, _server_id = self.start_committed_smtp_server("Lanes", daily_limit=11)
        ids = self.create_committed_traffic(notifications=25, partners=2)
        self.run_queue()
        messages = self.committed_mails(ids).mail_message_id
        mails = self.committed_mails(
            self.env["mail.mail"]
            .sudo()
            .search([("mail_message_id", "in", messages.ids)])
            .ids
        )
        self.assertEqual(len(mails), 26)
        sent = mails.filtered(lambda m: m.state == "sent")
        self.assertEqual(len(smtp.messages), 11)
        self.assertEqual(len(sent.recipient_ids), 11)
        self.assertDeliveredOnce(smtp, mail_pairs(sent))
        waiting = mails.filtered(lambda m: m.state == "outgoing")
        self.assertEqual(len(waiting), 20)
        self.assertEqual(set(waiting.mapped("delivery_hold")), {"server_day"})
        self.assertFalse(any(waiting.mapped("delivery_deferred")))
        self.assertChatter(mails, sent=sent.recipient_ids, ready=waiting.recipient_ids)

    def test_a_dropped_session_costs_one_mail(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes")
        ids = self.create_committed_traffic(notifications=20)
        mails = self.committed_mails(ids)
        dropped = mails[7]
        # the server takes the message, then the session dies
        smtp.script(
            "data",
            action="accept_close",
            match=dropped.recipient_ids.email,
            times=1,
        )
        self.run_queue()
        mails = self.committed_mails(ids)
        dropped = mails[7]  # read again after the run
        self.assertEqual(dropped.state, "exception")
        self.assertTrue(dropped.delivery_maybe_delivered)
        self.assertEqual(set((mails - dropped).mapped("state")), {"sent"})
        self.assertEqual(len(smtp.messages), 20)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        self.assertChatter(
            mails,
            sent=(mails - dropped).recipient_ids,
            exception=dropped.recipient_ids,
            reason="may have been delivered",
        )

    def test_one_connection_and_commit_every_mail(self):
        smtp, _server_id = self.start_committed_smtp_server(
            "One", parallel_connections=1
        )
        smtp.data_delay = 0.02
        self.set_committed_param("mail_outbound.queue_commit_every", 1)
        ids = self.create_committed_traffic(notifications=10, templates=5, partners=2)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(len(smtp.messages), 30)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        self.assertChatter(mails, sent=self.notified(mails).recipient_ids)
        self.assertEqual(smtp.in_data_peak, 1)

    def test_pipelining_where_the_server_offers_it(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes")
        smtp.pipelining = True
        ids = self.create_committed_traffic(notifications=8, partners=2)
        mails = self.committed_mails(ids)
        refused = mails[2]
        untried = refused.recipient_ids[1]
        smtp.script(
            "rcpt", 550, "5.1.1 No such user", match=refused.recipient_ids[0].email
        )
        self.run_queue()
        mails = self.committed_mails(ids)
        refused = mails[2]  # read again after the run
        self.assertEqual(refused.failure_type, "mail_email_invalid")
        self.assertEqual(set((mails - refused).mapped("state")), {"sent"})
        self.assertEqual(len(smtp.messages), 14)
        self.assertDeliveredOnce(smtp, mail_pairs(mails - refused))
        # core's loop stopped at the refusal: the second follower was never
        # tried; both notifications in exception
        self.assertIn(untried, refused.recipient_ids)
        self.assertChatter(
            mails,
            sent=(mails - refused).recipient_ids,
            exception=refused.recipient_ids,
            reason="550 5.1.1 No such user",
        )
