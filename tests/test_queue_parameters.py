"""Issue #9, point 2: every documented parameter broken, one at a time.

For each system parameter of the README's table, a typo, a negative and an
empty value, met the way the queue meets them: a real run with commits
(``MailOutboundCommitCase``) over a loopback server, on the path that reads
that parameter (a send, a deferral, a failover, a session dropped after
DATA, the log's cleanup). The run does not raise, the mails end as the
default would have them, and the log has one WARNING naming the parameter
(none for an empty value: Odoo reads it as no value, the default).

The mails are chatter notifications, each to two partner followers
(``create_committed_traffic``): the copies received and the chatter's
notifications are checked with the mails' states.
"""

import logging
from contextlib import contextmanager
from unittest.mock import patch

from odoo.tests import tagged

from ..models import ir_config_parameter
from ..tools import settings
from .common import MailOutboundCommitCase, mail_pairs
from .loopback_smtp import closed_port

# the path of a queue run that reads each parameter
PATHS = {
    "mail_outbound.claim_timeout": "send",
    "mail_outbound.queue_commit_every": "send",
    "mail_outbound.daily_limit": "send",
    "mail_outbound.retry_min_backoff": "defer",
    "mail_outbound.retry_max_backoff": "defer",
    "mail_outbound.retry_lifetime_days": "defer",
    "mail_outbound.circuit_threshold": "failover",
    "mail_outbound.circuit_cooldown": "failover",
    "mail_outbound.after_data_drop": "drop",
    "mail_outbound.smtp_pipelining": "send",
    "mail_outbound.delivery_log_days": "cleanup",
    "mail.mail.queue.batch.size": "send",
}

BROKEN_VALUES = ("x", "-1", "")


@tagged("post_install", "-at_install", "mail_outbound", "mail_outbound_commit")
class TestBrokenParameters(MailOutboundCommitCase):
    def test_the_table_covers_every_parameter(self):
        self.assertEqual(set(PATHS), {*settings.PARAMS, "mail.mail.queue.batch.size"})

    @contextmanager
    def warnings_naming(self, key):
        """The WARNING lines, of any logger, that name ``key``; each bad
        value warned about again (the loader warns once per process)."""
        records = []

        class Collect(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        handler = Collect(logging.WARNING)
        logger = logging.getLogger("odoo")
        logger.addHandler(handler)
        try:
            with patch.object(ir_config_parameter, "_WARNED", set()):
                yield records
        finally:
            logger.removeHandler(handler)
        records[:] = [line for line in records if key in line]

    def test_each_parameter_broken_one_at_a_time(self):
        smtp, _live_id = self.start_committed_smtp_server("Live")
        _dead_smtp, dead_id = self.start_committed_smtp_server(
            "Dead", sequence=20, smtp_port=closed_port()
        )
        env = self.committed_env()
        for key, path in PATHS.items():
            for value in BROKEN_VALUES:
                with self.subTest(key=key, value=value):
                    smtp.reset()
                    self.set_committed_param(key, value)
                    with self.warnings_naming(key) as warnings:
                        mails = self.run_path(path, smtp, dead_id)
                    # Odoo's get_param answers an empty value as a missing
                    # one: the default, nothing to warn about
                    self.assertEqual(len(warnings), 1 if value else 0, warnings)
                    env.invalidate_all()
                    env.cr.rollback()
                    self.assertPathOutcome(path, env["mail.mail"].browse(mails), smtp)
                    self.restore_committed_param(key)

    def run_path(self, path, smtp, dead_id):
        """One queue run on ``path``; the ids of its mails."""
        ids = self.create_committed_traffic(notifications=2, partners=2)
        if path == "defer":
            smtp.script("data", 451, "4.7.1 Try again later")
        elif path == "drop":
            smtp.script("data", action="accept_close")
        elif path == "failover":
            # its circuit closed again, so that it is tried and fails
            with self.committed_cursor() as cr:
                cr.execute(
                    "UPDATE ir_mail_server SET delivery_failures = 0, "
                    "unhealthy_until = NULL WHERE id = %s",
                    (dead_id,),
                )
                # a mail's server is its message's (mail.mail _inherits it)
                cr.execute(
                    "UPDATE mail_message SET mail_server_id = %s WHERE id IN "
                    "(SELECT mail_message_id FROM mail_mail WHERE id = ANY(%s))",
                    (dead_id, ids),
                )
        self.run_queue(ids)
        if path == "cleanup":
            # the log's cleanup, as its cron runs it; rolled back: the
            # database's older lines are not this test's
            self.committed_env()["mail.delivery.log"]._gc_delivery_log()
        return ids

    def assertPathOutcome(self, path, mails, smtp):
        if path in ("send", "cleanup", "failover"):
            self.assertEqual(set(mails.mapped("state")), {"sent"})
            self.assertEqual(
                {m["message"]["Message-Id"] for m in smtp.messages},
                set(mails.mapped("message_id")),
            )
            self.assertDeliveredOnce(smtp, mail_pairs(mails))
            self.assertChatter(mails, sent=mails.recipient_ids)
        elif path == "defer":
            self.assertEqual(set(mails.mapped("state")), {"outgoing"})
            self.assertTrue(all(mails.mapped("delivery_deferred")))
            self.assertTrue(all(mails.mapped("scheduled_date")))
            self.assertIn("451 4.7.1 Try again later", mails[0].failure_reason)
            self.assertFalse(smtp.messages)
            self.assertChatter(mails, ready=mails.recipient_ids)
        elif path == "drop":
            # the default: failed as "may have been delivered", not retried.
            # Each mail a session was handing over when the server dropped
            # it is in doubt (the server has it); one never tried stays queued
            dropped = mails.filtered("delivery_maybe_delivered")
            self.assertTrue(dropped)
            self.assertEqual(set(dropped.mapped("state")), {"exception"})
            self.assertEqual(
                {m["message"]["Message-Id"] for m in smtp.messages},
                set(dropped.mapped("message_id")),
            )
            self.assertEqual(
                set((mails - dropped).mapped("state")) - {"outgoing"}, set()
            )
            # the session died with the first follower's copy: the second
            # never got it; both notifications say why. A mail never tried
            # waits, its notifications ready
            self.assertDeliveredOnce(
                smtp,
                mail_pairs(dropped, [mail.recipient_ids[0].email for mail in dropped]),
            )
            self.assertChatter(
                mails,
                exception=dropped.recipient_ids,
                ready=(mails - dropped).recipient_ids,
                reason="may have been delivered",
            )
