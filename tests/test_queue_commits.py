"""Issue #9: the queue's shipped path, with real commits (MailOutboundCommitCase).

What Odoo's test runner never reaches (its auto-commit is off): the circuit
breaker met by two workers at once, the chunked commits, a commit the
database refuses, and the settlement of a dead worker's claim.
"""

import threading
import time
from datetime import timedelta

from odoo import SUPERUSER_ID, api, fields
from odoo.tests import tagged

from ..tools import delivery
from .common import MailOutboundCommitCase, mail_pairs


@tagged("post_install", "-at_install", "mail_outbound", "mail_outbound_commit")
class TestQueueCommits(MailOutboundCommitCase):
    def connection_failure(self):
        return delivery.Failure(
            delivery.TEMPORARY, 0, "Connection refused", "connect", True, "mail_smtp"
        )

    def test_circuit_breaker_does_not_block_a_second_worker(self):
        """Two workers fail over from the same dead server at once: the
        second must not wait for the first one's queue transaction (which
        may last minutes with a slow server), and no failure is lost."""
        _smtp, server_id = self.start_committed_smtp_server("Dead primary")
        self.set_committed_param("mail_outbound.circuit_threshold", "3")
        first, second = self.committed_env(), self.committed_env()
        first_server = first["ir.mail_server"].browse(server_id)
        second_server = second["ir.mail_server"].browse(server_id)
        now = fields.Datetime.now()

        def fail(server):
            server._record_server_failure(self.connection_failure(), now, apart=True)
            server.env.flush_all()

        # the first worker's queue transaction stays open
        self.run_as_worker(lambda: fail(first_server))
        second.cr.execute("SET lock_timeout = '2s'")
        started = time.monotonic()
        self.run_as_worker(lambda: fail(second_server))
        second.cr.commit()
        self.assertLess(time.monotonic() - started, 2)
        # both failures counted, whatever becomes of the queues' transactions
        server = self.committed_env()["ir.mail_server"].browse(server_id)
        self.assertEqual(server.delivery_failures, 2)
        self.assertFalse(server.unhealthy_until)
        # the third opens the circuit, and the worker that counted it sees
        # it at once, though its transaction began before
        self.run_as_worker(lambda: fail(first_server))
        self.assertEqual(first_server.delivery_failures, 3)
        self.assertEqual(first_server.unhealthy_until, now + timedelta(seconds=300))
        self.assertTrue(delivery.circuit_is_open(first_server.unhealthy_until, now))
        # a success elsewhere resets it, without waiting for the first worker
        self.run_as_worker(lambda: second_server._record_server_success(apart=True))
        second.flush_all()
        second.cr.commit()
        first.cr.rollback()
        server = self.committed_env()["ir.mail_server"].browse(server_id)
        self.assertEqual(server.delivery_failures, 0)
        self.assertFalse(server.unhealthy_until)
        self.assertEqual(server.last_delivery_error, "Connection refused")

    # -- the queue's commits ------------------------------------------------
    def watch_commits(self, smtp, ids):
        """As each message arrives, how many of ``ids`` are committed as
        sent, and how many hand-over records are committed: the order of a
        worker's commits seen from outside, as another worker sees it."""
        seen = []
        observer = self.committed_cursor()
        self.addCleanup(observer.close)

        def on_message(_received):
            observer.execute(
                "SELECT count(*) FROM mail_mail WHERE id = ANY(%s) AND state = 'sent'",
                (ids,),
            )
            sent = observer.fetchone()[0]
            observer.execute(
                "SELECT count(*) FROM mail_outbound_handover WHERE mail_id = ANY(%s)",
                (ids,),
            )
            seen.append((sent, observer.fetchone()[0]))
            # a new snapshot for the next message
            observer.rollback()

        smtp.on_message = on_message
        return seen

    def assertReceivedOnce(self, smtp, mails):
        """``smtp`` received each of ``mails`` exactly once, and nothing else."""
        received = [m["message"]["Message-Id"] for m in smtp.messages]
        self.assertEqual(len(received), len(set(received)), "a mail sent twice")
        self.assertEqual(set(received), set(mails.mapped("message_id")))

    def assertOneLogLine(self, mails, outcome):
        logs = mails.env["mail.delivery.log"].search([("mail_id", "in", mails.ids)])
        self.assertEqual(
            sorted(logs.mapped("mail_id").ids), sorted(mails.ids), "one line a mail"
        )
        self.assertEqual(set(logs.mapped("outcome")), {outcome})

    def send_in_chunks(self, width, refuse_at=None, notifications=False):
        """120 queued mails, committed every 50, for a server with ``width``
        sessions; with ``refuse_at``, the commit of the chunk holding that
        mail (its index) is refused once. ``notifications``: chatter
        notifications, each to one partner follower (one message a mail, as
        the hand-made ones), instead of hand-made ``email_to`` mails.
        Returns the sink, the ids, what an observer saw (see
        :meth:`watch_commits`) and the refusal counter."""
        smtp, _server_id = self.start_committed_smtp_server(
            "Sink", parallel_connections=width
        )
        # several sessions overlap only if each hand-over takes a while
        smtp.data_delay = 0.005 if width > 1 else 0
        self.set_committed_param("mail_outbound.queue_commit_every", "50")
        if notifications:
            ids = sorted(self.create_committed_traffic(notifications=120))
        else:
            ids = sorted(self.create_committed_mails(120))
        refusals = self.refuse_commit_once(ids[refuse_at]) if refuse_at else None
        seen = self.watch_commits(smtp, ids)
        self.run_queue(ids)
        return smtp, ids, seen, refusals

    def assertSentOnce(self, smtp, mails):
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertReceivedOnce(smtp, mails)
        self.assertOneLogLine(mails, "sent")

    def test_queue_commits_every_50_mails(self):
        # one session: each mail is recorded before the next one goes
        smtp, ids, seen, _refusals = self.send_in_chunks(1)
        mails = self.committed_mails(ids)
        self.assertSentOnce(smtp, mails)
        # mails 1 to 50 went out before the first commit, 51 to 100 after it
        # and before the second, 101 to 120 after it; each finished mail was
        # recorded on the side before the next one went
        self.assertEqual(seen, [(50 * (index // 50), index) for index in range(120)])
        # the run's records are gone with its claim
        self.assertFalse(any(mails.mapped("delivery_claim")))
        self.assertFalse(
            mails.env["mail.outbound.handover"].search([("mail_id", "in", ids)])
        )

    def test_queue_commits_every_50_mails_on_four_sessions(self):
        """Four sessions at once: at most four mails out and not recorded."""
        smtp, ids, seen, _refusals = self.send_in_chunks(4)
        mails = self.committed_mails(ids)
        self.assertSentOnce(smtp, mails)
        self.assertGreaterEqual(smtp.in_data_peak, 2)
        for index, (sent, recorded) in enumerate(seen):
            # a commit every 50 finished mails, and only of recorded ones
            self.assertEqual(sent % 50, 0, seen)
            self.assertLessEqual(sent, recorded, seen)
            # this one and at most three others out, not yet recorded
            self.assertGreaterEqual(recorded, index - 3, seen)
        self.assertFalse(any(mails.mapped("delivery_claim")))

    def test_a_refused_commit_on_four_sessions(self):
        """The mails still out when the commit is refused are waited for and
        recorded: every mail the server got ends sent, none goes twice."""
        smtp, ids, _seen, refusals = self.send_in_chunks(
            4, refuse_at=29, notifications=True
        )
        self.assertGreaterEqual(refusals(), 1, "the commit was refused")
        mails = self.committed_mails(ids)
        sent = mails.filtered(lambda mail: mail.state == "sent")
        # the first chunk, and the mails that were out when it was refused
        self.assertGreaterEqual(len(sent), 50)
        self.assertLessEqual(len(sent), 53)
        self.assertReceivedOnce(smtp, sent)
        self.assertDeliveredOnce(smtp, mail_pairs(sent))
        self.assertEqual(set((mails - sent).mapped("state")), {"outgoing"})
        self.assertFalse(any(mails.mapped("delivery_claim")), "none left claimed")
        # settled from the hand-over records: the followers served are told
        # so; the others wait
        self.assertChatter(
            mails, sent=sent.recipient_ids, ready=(mails - sent).recipient_ids
        )
        self.run_queue(ids)
        mails.invalidate_recordset()
        mails.env.cr.rollback()
        self.assertSentOnce(smtp, mails)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)

    def refuse_commit_once(self, mail_id):
        """The database refuses, once, the commit of a transaction that
        marks ``mail_id`` sent: a deferred constraint trigger, checked at
        COMMIT, as a serialisation failure or a full disk would be."""
        with self.committed_cursor() as cr:
            cr.execute(
                f"""
                CREATE SEQUENCE mo_test_refuse_commit;
                CREATE FUNCTION mo_test_refuse_commit() RETURNS trigger AS $$
                BEGIN
                    IF nextval('mo_test_refuse_commit') = 1 THEN
                        RAISE EXCEPTION 'mail_outbound test: commit refused';
                    END IF;
                    RETURN NULL;
                END $$ LANGUAGE plpgsql;
                CREATE CONSTRAINT TRIGGER mo_test_refuse_commit
                    AFTER UPDATE ON mail_mail
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                    WHEN (NEW.id = {int(mail_id)} AND NEW.state = 'sent')
                    EXECUTE FUNCTION mo_test_refuse_commit();
                """
            )

        def drop():
            with self.committed_cursor() as cr:
                cr.execute(
                    "DROP TRIGGER IF EXISTS mo_test_refuse_commit ON mail_mail;"
                    "DROP FUNCTION IF EXISTS mo_test_refuse_commit();"
                    "DROP SEQUENCE IF EXISTS mo_test_refuse_commit;"
                )

        # after the test's connections are closed (they read mail_mail)
        self.addCleanup(drop)

        def refusals():
            with self.committed_cursor() as cr:
                cr.execute("SELECT last_value, is_called FROM mo_test_refuse_commit")
                value, called = cr.fetchone()
                return value if called else 0

        return refusals

    def test_a_refused_commit_sends_nothing_twice(self):
        # the 30th mail sent, on one session: its chunk's commit is refused
        smtp, ids, _seen, refusals = self.send_in_chunks(
            1, refuse_at=29, notifications=True
        )
        self.assertGreaterEqual(refusals(), 1, "the commit was refused")
        mails = self.committed_mails(ids)
        first_chunk = mails.filtered(lambda mail: mail.id in ids[:50])
        # delivered before the refused commit: settled as sent at once
        self.assertEqual(set(first_chunk.mapped("state")), {"sent"})
        self.assertReceivedOnce(smtp, first_chunk)
        self.assertEqual(set((mails - first_chunk).mapped("state")), {"outgoing"})
        self.assertFalse(any(mails.mapped("delivery_claim")), "none left claimed")
        # the chatter: the served followers' notifications sent (the
        # hand-over records' partner ids, given back to core as records)
        rest = mails - first_chunk
        self.assertChatter(
            mails, sent=first_chunk.recipient_ids, ready=rest.recipient_ids
        )
        # the next run sends the rest, and nothing twice
        self.run_queue(ids)
        mails.invalidate_recordset()
        mails.env.cr.rollback()
        self.assertSentOnce(smtp, mails)
        self.assertDeliveredOnce(smtp, mail_pairs(mails))
        self.assertChatter(mails, sent=mails.recipient_ids)

    def test_a_dead_workers_claim_is_settled_by_the_next_run(self):
        smtp, _server_id = self.start_committed_smtp_server("Sink")
        # chatter notifications, each to two partner followers
        ids = sorted(self.create_committed_traffic(notifications=10, partners=2))
        long_ago = fields.Datetime.now() - timedelta(days=1)
        # what a worker killed while handing over the 4th mail leaves: its
        # claim, its batch mark, the records of the 3 mails the server
        # accepted for both followers (they reached the server, not this
        # test's one), and the end-of-DATA marks of the 4th mail's two
        # copies: the first accepted, the second cut off after its mark
        with self.committed_cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["mail.mail"].browse(ids).write(
                {"delivery_claim": "dead-worker", "delivery_claim_date": long_ago}
            )
            env["mail.outbound.batch"].create(
                {"claim": "dead-worker", "mail_ids": ids, "since": long_ago}
            )
            env["mail.outbound.handover"].create(
                [
                    {
                        "claim": "dead-worker",
                        "mail_id": mail.id,
                        "delivered": True,
                        "partner_ids": mail.recipient_ids.ids,
                    }
                    for mail in env["mail.mail"].browse(ids[:3])
                ]
            )
            fourth = env["mail.mail"].browse(ids[3])
            env["mail.outbound.data.end"].create(
                [
                    {
                        "claim": "dead-worker",
                        "mail_id": fourth.id,
                        "item": item,
                        "partner_id": partner.id,
                    }
                    for item, partner in enumerate(fourth.recipient_ids)
                ]
            )
        self.assertEqual(
            set(self.committed_mails(ids).mapped("delivery_claim")), {"dead-worker"}
        )
        self.run_queue(ids)
        mails = self.committed_mails(ids)
        delivered, interrupted, rest = mails[:3], mails[3], mails[4:]
        self.assertEqual(set(delivered.mapped("state")), {"sent"})
        self.assertOneLogLine(delivered, "sent")
        self.assertEqual(interrupted.state, "exception")
        self.assertIn("may have been delivered", interrupted.failure_reason)
        self.assertOneLogLine(interrupted, "failed")
        self.assertTrue(interrupted.delivery_maybe_delivered, "Send Again")
        # per recipient: the copy accepted before the one in doubt says sent
        accepted, in_doubt = interrupted.recipient_ids
        self.assertChatter(
            interrupted,
            sent=accepted,
            exception=in_doubt,
            reason="may have been delivered",
        )
        self.assertEqual(set(rest.mapped("state")), {"sent"})
        self.assertOneLogLine(rest, "sent")
        # neither the delivered ones nor the one in doubt went again: each
        # follower's copy of the rest, once, and nothing else
        self.assertDeliveredOnce(smtp, mail_pairs(rest))
        self.assertChatter(delivered | rest, sent=(delivered | rest).recipient_ids)
        self.assertFalse(any(mails.mapped("delivery_claim")))
        self.assertFalse(
            mails.env["mail.outbound.batch"].search([("claim", "=", "dead-worker")])
        )

    def test_circuit_breaker_counts_two_failures_at_the_same_instant(self):
        """Another worker's count is being written when this one fails: it
        waits those milliseconds, then counts on top of it, and keeps no
        lock on the server for its own queue transaction."""
        _smtp, server_id = self.start_committed_smtp_server("Dead primary")
        worker = self.committed_env()
        server = worker["ir.mail_server"].browse(server_id)
        # the worker's queue transaction began before the other's count
        self.assertFalse(server.delivery_failures)
        other = self.committed_env().cr
        other.execute(
            "UPDATE ir_mail_server SET delivery_failures = "
            "COALESCE(delivery_failures, 0) + 1 WHERE id = %s",
            (server_id,),
        )
        threading.Timer(0.5, other.commit).start()
        self.run_as_worker(
            lambda: server._record_server_failure(
                self.connection_failure(), fields.Datetime.now(), apart=True
            )
        )
        worker.flush_all()
        self.assertEqual(server.delivery_failures, 2)
        # nothing of it waits for the worker's commit
        probe = self.committed_env().cr
        probe.execute(
            "SELECT delivery_failures FROM ir_mail_server WHERE id = %s "
            "FOR UPDATE NOWAIT",
            (server_id,),
        )
        self.assertEqual(probe.fetchone()[0], 2)

    def test_queued_mail_wakes_the_queue_when_committed(self):
        """Issue #27: a mailing's batch, a composer or a template only queue
        their mail; the queue's cron runs hourly. Committing them triggers
        it once, for now; mail sent before the commit wakes nothing."""
        cron_id = self.env.ref("mail.ir_cron_mail_scheduler_action").id

        def triggers(cr):
            cr.execute(
                "SELECT call_at FROM ir_cron_trigger WHERE cron_id = %s AND id > %s",
                (cron_id, self._max_ids["ir.cron.trigger"]),
            )
            return [row[0] for row in cr.fetchall()]

        started = fields.Datetime.now()
        self.create_committed_traffic(notifications=3, templates=2, partners=2)
        with self.committed_cursor() as cr:
            woken = triggers(cr)
        # one transaction, one trigger, due now
        self.assertEqual(len(woken), 1)
        self.assertGreaterEqual(woken[0], started.replace(microsecond=0))
        self.assertLessEqual(woken[0], fields.Datetime.now())
        # a mail sent (or cancelled) before its transaction commits: none
        with self.committed_cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            mail = env["mail.mail"].create(
                {"email_to": "x@dest.example", "subject": "gone", "body_html": "x"}
            )
            mail.state = "cancel"
        with self.committed_cursor() as cr:
            self.assertEqual(len(triggers(cr)), 1)
