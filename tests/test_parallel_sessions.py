"""Several SMTP sessions per server (issue #10), on the queue's real path.

The parallel sessions run only where the queue commits (the cron's run):
these tests use ``MailOutboundCommitCase``, whose queue runs in a worker
thread on committed data, against loopback SMTP servers, and compare every
record the addon writes with what the server received.
"""

import collections
from email.utils import parseaddr

from odoo.tests import tagged

from .common import MailOutboundCommitCase
from .loopback_smtp import closed_port


@tagged("post_install", "-at_install", "mail_outbound")
class TestParallelSessions(MailOutboundCommitCase):
    def _received(self, smtp):
        return collections.Counter(m["message"]["Message-Id"] for m in smtp.messages)

    def _logs(self, ids):
        return (
            self.committed_env()["mail.delivery.log"]
            .search([("mail_id", "in", ids)])
            .sorted("id")
        )

    def test_each_mail_once_over_several_sessions(self):
        smtp, server_id = self.start_committed_smtp_server(
            "Lanes", parallel_connections=4
        )
        # every session waits for its final reply: they overlap
        smtp.data_delay = 0.03
        ids = self.create_committed_mails(40)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        received = self._received(smtp)
        self.assertEqual(set(received.values()), {1})
        self.assertEqual(set(received), set(mails.mapped("message_id")))
        self.assertGreaterEqual(smtp.in_data_peak, 2)
        # never more sessions than the server's Parallel Connections, the
        # batch's own first session included
        self.assertLessEqual(smtp.peak_sessions, 4)
        logs = self._logs(ids)
        self.assertEqual(len(logs), 40)
        self.assertEqual(set(logs.mapped("outcome")), {"sent"})
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
        smtp.script("rcpt", 451, "4.7.1 Greylisted, try later", match="rcpt3@")
        smtp.script("rcpt", 550, "5.1.1 No such user", match="rcpt5@")
        ids = self.create_committed_mails(12)
        self.run_queue()
        mails = self.committed_mails(ids)
        by_rcpt = {mail.email_to.split("@")[0]: mail for mail in mails}
        deferred, refused = by_rcpt["rcpt3"], by_rcpt["rcpt5"]
        self.assertEqual(deferred.state, "outgoing")
        self.assertTrue(deferred.delivery_deferred)
        self.assertIn("451", deferred.failure_reason)
        self.assertTrue(deferred.scheduled_date)
        self.assertEqual(refused.state, "exception")
        self.assertEqual(refused.failure_type, "mail_email_invalid")
        self.assertIn("550", refused.failure_reason)
        others = mails - deferred - refused
        self.assertEqual(set(others.mapped("state")), {"sent"})
        self.assertEqual(set(self._received(smtp)), set(others.mapped("message_id")))
        outcomes = {log.mail_id.id: log.outcome for log in self._logs(ids)}
        self.assertEqual(outcomes[deferred.id], "deferred")
        self.assertEqual(outcomes[refused.id], "failed")
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
        ids = self.create_committed_mails(10)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(len(self._received(smtp)), 10)
        # the Routing tab says which server took them
        self.assertEqual(mails.routing_server_id.ids, [backup_id])
        logs = self._logs(ids)
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
        ids = self.create_committed_mails(20)
        self.run_queue()
        self.assertEqual(set(self.committed_mails(ids).mapped("state")), {"sent"})
        self.assertEqual(len(self._received(smtp)), 20)
        self.assertEqual(smtp.peak_sessions, 2)
        self.assertGreaterEqual(smtp.refused_connections, 1)

    def test_daily_limit_counts_across_sessions(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes", daily_limit=10)
        ids = self.create_committed_mails(25)
        self.run_queue()
        mails = self.committed_mails(ids)
        self.assertEqual(len(self._received(smtp)), 10)
        self.assertEqual(mails.filtered(lambda m: m.state == "sent").ids.__len__(), 10)
        waiting = mails.filtered(lambda m: m.state == "outgoing")
        self.assertEqual(len(waiting), 15)
        self.assertTrue(all(waiting.mapped("delivery_deferred")))

    def test_a_dropped_session_costs_one_mail(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes")
        # the server takes the message, then the session dies
        smtp.script("data", action="accept_close", match="rcpt7@", times=1)
        ids = self.create_committed_mails(20)
        self.run_queue()
        mails = self.committed_mails(ids)
        dropped = mails.filtered(lambda m: m.email_to.startswith("rcpt7@"))
        self.assertEqual(dropped.state, "exception")
        self.assertTrue(dropped.delivery_maybe_delivered)
        self.assertEqual(set((mails - dropped).mapped("state")), {"sent"})
        received = self._received(smtp)
        self.assertEqual(len(received), 20)
        self.assertEqual(set(received.values()), {1})

    def test_one_connection_and_commit_every_mail(self):
        smtp, _server_id = self.start_committed_smtp_server(
            "One", parallel_connections=1
        )
        smtp.data_delay = 0.02
        self.set_committed_param("mail_outbound.queue_commit_every", 1)
        ids = self.create_committed_mails(15)
        self.run_queue()
        self.assertEqual(set(self.committed_mails(ids).mapped("state")), {"sent"})
        self.assertEqual(len(self._received(smtp)), 15)
        self.assertEqual(smtp.in_data_peak, 1)

    def test_pipelining_where_the_server_offers_it(self):
        smtp, _server_id = self.start_committed_smtp_server("Lanes")
        smtp.pipelining = True
        smtp.script("rcpt", 550, "5.1.1 No such user", match="rcpt2@")
        ids = self.create_committed_mails(8)
        self.run_queue()
        mails = self.committed_mails(ids)
        refused = mails.filtered(lambda m: m.email_to.startswith("rcpt2@"))
        self.assertEqual(refused.failure_type, "mail_email_invalid")
        self.assertEqual(set((mails - refused).mapped("state")), {"sent"})
        self.assertEqual(len(self._received(smtp)), 7)
