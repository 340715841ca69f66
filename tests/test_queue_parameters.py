"""Issue #9, point 2, and issue #20: every parameter broken, one at a time.

For each system parameter of ``tools/settings.PARAMS`` (and core's batch
size), three malformed values (``1e309``, whose ``float`` is inf; a typo;
``-1``), met the way the queue meets them: a real run with commits
(``MailOutboundCommitCase``) over a loopback server, on the path that reads
that parameter (a send, a deferral, a failover, a session dropped after
DATA, the log's cleanup; and, after the run, a bounce through the mail
gateway, the DNS checks' resolver, Test Connection). The run does not stop
("Failed processing mail queue"), the mails end as the default would have
them, and the log has one WARNING naming the parameter.

The mails are chatter notifications, each to two partner followers
(``create_committed_traffic``): the copies received and the chatter's
notifications are checked with the mails' states.
"""

import dns.resolver

from odoo.tests import tagged

from ..tools import settings
from . import bounce_samples
from .common import MailOutboundCommitCase, mail_pairs, parameter_warnings
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
    "mail_outbound.blocked_ports": "send",
    "mail_outbound.enforce_fixed_server_filter": "send",
    "mail_outbound.bounce_blacklist_after": "bounce",
    "mail_outbound.dns_nameserver": "dns",
    "mail_outbound.smtp_ca_file": "probe",
    "mail.mail.queue.batch.size": "send",
}

# huge (float says inf, int of it raises OverflowError), a typo, negative:
# malformed for every kind of parameter, so each warns
BROKEN_VALUES = ("1e309", "x", "-1")


@tagged("post_install", "-at_install", "mail_outbound", "mail_outbound_commit")
class TestBrokenParameters(MailOutboundCommitCase):
    def test_the_table_covers_every_parameter(self):
        self.assertEqual(set(PATHS), {*settings.PARAMS, "mail.mail.queue.batch.size"})

    def test_each_parameter_broken_one_at_a_time(self):
        smtp, live_id = self.start_committed_smtp_server("Live")
        _dead_smtp, dead_id = self.start_committed_smtp_server(
            "Dead", sequence=20, smtp_port=closed_port()
        )
        env = self.committed_env()
        for key, path in PATHS.items():
            for value in BROKEN_VALUES:
                with self.subTest(key=key, value=value):
                    smtp.reset()
                    self.set_committed_param(key, value)
                    with parameter_warnings() as lines:
                        mails, seen = self.run_path(path, smtp, dead_id, live_id)
                    self.assertEqual(len(lines.naming(key)), 1, lines)
                    self.assertFalse(lines.queue_failures())
                    env.invalidate_all()
                    env.cr.rollback()
                    self.assertPathOutcome(path, env["mail.mail"].browse(mails), smtp)
                    self.assertSeen(path, seen)
                    self.restore_committed_param(key)

    def run_path(self, path, smtp, dead_id, live_id):
        """One queue run on ``path``, then what reads the parameter after it;
        the ids of the run's mails, and what that reader saw."""
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
        return ids, self.after_run(path, smtp, live_id)

    def after_run(self, path, smtp, live_id):
        """The reader of a parameter no queue run reads, on the traffic the
        run sent; rolled back at once, so that no row stays locked."""
        env = self.committed_env()
        try:
            return self._read_after_run(env, path, smtp, live_id)
        finally:
            env.cr.rollback()

    def _read_after_run(self, env, path, smtp, live_id):
        if path == "bounce":
            # a hard bounce of the first copy, through the real mail gateway
            received = smtp.messages[0]
            (recipient,) = received["rcpt_tos"][:1]
            env["mail.thread"].message_process(
                False,
                bounce_samples.gmail(
                    received["mail_from"],
                    recipient,
                    received["message"]["Message-Id"],
                ),
            )
            partner = env["res.partner"].search([("email", "=", recipient)])
            blacklisted = env["mail.blacklist"].search([("email", "=", recipient)])
            return partner.message_bounce, bool(blacklisted)
        if path == "dns":
            return env["mail.alias.domain"]._get_dns_resolver().nameservers
        if path == "probe":
            wizard = env["mail.outbound.connection.test"].create(
                {"mail_server_id": live_id}
            )
            wizard.action_run()
            return wizard.line_ids.mapped("status")
        return None

    def assertSeen(self, path, seen):
        if path == "bounce":
            # counted (a hard bounce), not blacklisted after one: the default
            # is 5, and -1 reads as 0, never
            self.assertEqual(seen, (1, False))
        elif path == "dns":
            # the system's resolver, not a malformed one
            self.assertEqual(seen, dns.resolver.Resolver().nameservers)
        elif path == "probe":
            # the loopback server answers every step: no CA file was tried
            self.assertTrue(seen)
            self.assertNotIn("failed", seen)

    def assertPathOutcome(self, path, mails, smtp):
        if path in ("send", "cleanup", "failover", "bounce", "dns", "probe"):
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
