"""The queue on the mail Odoo really queues, through the production loop.

Chatter notifications to partner followers and the replies Odoo relays to
them, templates with ``partner_to`` and an attachment (auto-deleted and
kept), a mail with ``email_to``, ``email_cc`` and ``recipient_ids``, the
mass-mode composer and, where mass_mailing is installed, a mailing
(``tests/traffic.py``), drained by ``process_email_queue`` as the cron
calls it: the claim, the batch marks, the hand-over records, the parallel
sessions and the settlement run here as they run in production (only the
commits stay in the test's transaction, ``tools/journal.py``).

Each case compares what the loopback SMTP server received with the
records: every (Message-ID, recipient) pair exactly once, every mail sent
(or removed when auto-deleted), every chatter notification ``sent``, every
mailing trace ``sent``. ``scripts/parity.py`` compares the same traffic with
stock Odoo, drained by a real cron worker that commits.
"""

from unittest.mock import patch

from odoo.tests import tagged

from ..tools import journal
from .common import MailOutboundSmtpCase


@tagged("post_install", "-at_install", "mail_outbound")
class TestRealTraffic(MailOutboundSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp, cls.server = cls.start_smtp_server("Sink", sequence=1)

    def drain(self):
        """Run the queue until nothing is due, as the cron re-runs itself."""
        Mail = self.env["mail.mail"]
        for _run in range(10):
            if not self.env["mail.outbound.queue"]._count_due():
                return
            Mail.process_email_queue()
        self.fail("the queue still has due mails after 10 runs")

    def assertAllDone(self, traffic, mail_ids):
        mails = self.env["mail.mail"].browse(mail_ids).exists()
        self.assertEqual(
            {(mail.state, mail.failure_reason or "") for mail in mails},
            {("sent", "")},
        )
        gone = self.env["mail.mail"].browse(mail_ids) - mails
        self.assertTrue(gone, "auto-deleted mails are removed once sent")
        self.assertFalse(mails.filtered("auto_delete"), "an auto-delete mail stayed")
        self.assertFalse(any(mails.mapped("delivery_claim")))
        if traffic.mailings:
            traces = traffic.mailings.mailing_trace_ids
            self.assertEqual(len(traces), 20)
            self.assertEqual(set(traces.mapped("trace_status")), {"sent"})
            self.assertEqual(traffic.mailings.sent, 20)

    def test_every_shape_once_on_parallel_sessions(self):
        self.assertEqual(self.server.parallel_connections, 4)
        with self.real_traffic("four", mailing_size=20, composer_size=10) as traffic:
            mail_ids = traffic.mails().ids
            self.drain()
        self.assertDeliveredOnce(self.smtp, traffic.expected)
        self.assertGreater(self.smtp.peak_sessions, 1, "the parallel sessions ran")
        self.assertAllDone(traffic, mail_ids)

    def test_every_shape_once_on_one_session(self):
        self.server.parallel_connections = 1
        with self.real_traffic("one", mailing_size=20, composer_size=10) as traffic:
            mail_ids = traffic.mails().ids
            self.drain()
        self.assertDeliveredOnce(self.smtp, traffic.expected)
        self.assertEqual(self.smtp.peak_sessions, 1)
        self.assertAllDone(traffic, mail_ids)

    def test_a_dead_worker_s_hand_overs_settle_real_traffic(self):
        """A worker died after the server accepted its mails: the settlement
        marks them sent, their chatter notifications sent, deletes the
        auto-delete ones, and sends none of them again; a mail a server
        took for some partners only leaves the others' notifications in
        exception."""
        Queue = self.env["mail.outbound.queue"]
        with self.real_traffic("dead", mailing_size=0, composer_size=2) as traffic:
            notified = traffic.mails().filtered(
                lambda mail: mail.mail_message_id in traffic.messages
            )
            partial, delivered = notified[0], notified[1:]
            never_sent = {
                (mail.message_id, address)
                for mail in notified
                for address in mail.recipient_ids.mapped("email")
            }
            Queue._claim_for_sending("dead-worker", None, 1000)
            log = journal.IN_TRANSACTION.open_journal(None, self.env.cr)
            log.mark_batch("dead-worker", notified.ids, width=4)
            # what core's _send collected: res.partner records
            served, refused = partial.recipient_ids[:1], partial.recipient_ids[1:]
            self.assertTrue(refused)
            log.write_handovers(
                "dead-worker",
                [
                    journal.handover_row(m.id, True, m.recipient_ids, None, None)
                    for m in delivered
                ]
                + [
                    journal.handover_row(
                        partial.id, True, served, "mail_smtp", "550 5.1.1 Unknown"
                    )
                ],
            )
            Queue._settle_interrupted(["dead-worker"])
            notifications = self.env["mail.notification"].search(
                [("mail_message_id", "in", traffic.messages.ids)]
            )
            traffic.refused = notifications.filtered(
                lambda note: note.res_partner_id in refused
                and note.mail_message_id == partial.mail_message_id
            )
            self.assertEqual(
                set(traffic.refused.mapped("notification_status")), {"exception"}
            )
            self.assertEqual(partial.state, "exception")
            self.assertEqual(
                set((notifications - traffic.refused).mapped("notification_status")),
                {"sent"},
            )
            # the rest of the traffic goes now, none of the settled mails
            self.drain()
        received = {
            (message["message"]["Message-Id"], rcpt)
            for message in self.smtp.messages
            for rcpt in message["rcpt_tos"]
        }
        self.assertFalse(received & never_sent, "a settled mail was sent again")
        self.assertEqual(
            received,
            {(m, a) for m, a in traffic.expected} - never_sent,
        )

    def test_a_mail_cut_off_in_hand_over_settles_per_recipient(self):
        """A worker died while a chatter notification to several followers
        was going out on one of its sessions: the server had accepted the
        first copy, the second was ending its DATA (both marked by the
        session, ``journal.data_end_marker``), the rest never went. The
        other mails of the batch were claimed and marked but never started.
        The settlement fails the cut mail per recipient: the first
        follower's notification sent, the others in exception "may have
        been delivered", with Send Again; every mail never started is
        queued again, untouched, and the next run sends it once."""
        Queue = self.env["mail.outbound.queue"]
        with self.real_traffic("cut", mailing_size=0, composer_size=2) as traffic:
            notified = traffic.mails().filtered(
                lambda mail: mail.mail_message_id in traffic.messages
                and len(mail.recipient_ids) > 2
            )
            cut, never_started = notified[0], traffic.mails() - notified[0]
            self.assertTrue(never_started.filtered("recipient_ids"))
            followers = cut.recipient_ids.sorted("id")
            cut_pairs = {
                (cut.message_id, address) for address in followers.mapped("email")
            }
            Queue._claim_for_sending("dead-worker", None, 1000)
            log = journal.IN_TRANSACTION.open_journal(None, self.env.cr)
            log.mark_batch("dead-worker", traffic.mails().ids, width=4)
            # the session's marks: copy 0 (accepted, then copy 1 started),
            # copy 1 (its end of DATA about to go when the worker died)
            mark = journal.data_end_marker(log, "dead-worker", cut.id, followers)
            mark()
            mark()
            Queue._settle_interrupted(["dead-worker"])
            self.assertEqual(cut.state, "exception")
            self.assertIn("may have been delivered", cut.failure_reason)
            self.assertTrue(cut.delivery_maybe_delivered, "Send Again")
            notifications = self.env["mail.notification"].search(
                [
                    ("mail_message_id", "=", cut.mail_message_id.id),
                    ("notification_type", "=", "email"),
                ]
            )
            status = {
                note.res_partner_id: (note.notification_status, note.failure_reason)
                for note in notifications
            }
            self.assertEqual(status[followers[0]][0], "sent")
            self.assertFalse(status[followers[0]][1])
            for partner in followers[1:]:
                self.assertEqual(status[partner][0], "exception")
                self.assertIn("may have been delivered", status[partner][1])
            traffic.refused = notifications.filtered(
                lambda note: note.res_partner_id in followers[1:]
            )
            # never started: queued as before, nothing in doubt, nothing failed
            self.assertEqual(set(never_started.mapped("state")), {"outgoing"})
            self.assertFalse(any(never_started.mapped("failure_reason")))
            self.assertFalse(any(never_started.mapped("delivery_claim")))
            waiting = self.env["mail.notification"].search(
                [
                    ("mail_mail_id", "in", never_started.ids),
                    ("notification_type", "=", "email"),
                ]
            )
            self.assertTrue(waiting)
            self.assertEqual(set(waiting.mapped("notification_status")), {"ready"})
            self.drain()
        received = [
            (message["message"]["Message-Id"], rcpt)
            for message in self.smtp.messages
            for rcpt in message["rcpt_tos"]
        ]
        self.assertFalse(set(received) & cut_pairs, "the mail in doubt went again")
        self.assertEqual(sorted(received), sorted(set(traffic.expected) - cut_pairs))

    def test_each_end_of_data_is_marked_with_its_partner(self):
        """What a crash would leave: before each message's end of DATA, on
        the parallel sessions and in core's loop on one session, the
        session marks the mail, the message's place in it and its partner
        (``journal.data_end_marker``, ``_mark_data_end_in_loop``): every
        mail of real traffic, each of its messages once, in order, its
        partners exactly its recipients."""
        original = journal.Journal.mark_data_end
        marks = []

        def spy(log, claim, mail_id, item, partner_id=None):
            marks.append((mail_id, item, partner_id))
            return original(log, claim, mail_id, item, partner_id)

        for width in (4, 1):
            self.server.parallel_connections = width
            marks.clear()

            with self.real_traffic(
                f"mark{width}", mailing_size=0, composer_size=2
            ) as traffic:
                recipients = {
                    mail.id: set(mail.recipient_ids.ids) for mail in traffic.mails()
                }
                with patch.object(journal.Journal, "mark_data_end", spy):
                    self.drain()
            by_mail = {}
            for mail_id, item, partner_id in marks:
                by_mail.setdefault(mail_id, []).append((item, partner_id))
            self.assertEqual(set(by_mail), set(recipients), width)
            for mail_id, rows in by_mail.items():
                self.assertEqual(
                    [item for item, _partner in rows], list(range(len(rows))), width
                )
                self.assertEqual(
                    {partner for _item, partner in rows if partner},
                    recipients[mail_id],
                    width,
                )
