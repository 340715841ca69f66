"""Issue #9: the queue's shipped path, with real commits (MailOutboundCommitCase).

What Odoo's test runner never reaches (its auto-commit is off): the circuit
breaker met by two workers at once, the chunked commits, a commit the
database refuses, and the settlement of a dead worker's claim.
"""

import time
from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from ..tools import delivery
from .common import MailOutboundCommitCase


@tagged("post_install", "-at_install", "mail_outbound")
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
            server._record_server_failure(self.connection_failure(), now)
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
        self.run_as_worker(second_server._record_server_success)
        second.flush_all()
        second.cr.commit()
        first.cr.rollback()
        server = self.committed_env()["ir.mail_server"].browse(server_id)
        self.assertEqual(server.delivery_failures, 0)
        self.assertFalse(server.unhealthy_until)
        self.assertEqual(server.last_delivery_error, "Connection refused")
