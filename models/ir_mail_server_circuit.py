"""ir.mail_server: the circuit breaker, counted outside the queue's transaction.

A worker that fails to reach a server counts it on the server's row. Written
in the queue's transaction, that row stays locked until the queue's next
chunk commit (50 mails, minutes with a slow server), and a second worker
failing over from the same server waits for it. The counter is written on a
short transaction of its own instead, committed at once, and incremented in
SQL so that two workers failing at once both count.
"""

import logging

import psycopg2

from odoo import api, models, sql_db

from ..tools import delivery, journal

_logger = logging.getLogger(__name__)


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    @api.model
    def _get_circuit_policy(self):
        get = self.env["ir.config_parameter"]._mail_outbound_get
        return delivery.CircuitPolicy(
            threshold=get("mail_outbound.circuit_threshold"),
            cooldown=get("mail_outbound.circuit_cooldown"),
        )

    def _record_server_failure(self, failure, now, apart=False):
        """One more failure of this server. ``apart``: counted on a short
        transaction of its own (a run that commits, ``tools/journal.py``);
        else in the current one (a run in its caller's transaction: another
        connection could not see a server it created, would wait for a row
        it changed until it ends, and would keep a count it rolls back)."""
        self.ensure_one()
        policy = self._get_circuit_policy()
        error = (failure.text or "")[:500]
        circuit = apart and self._write_circuit_apart(
            lambda cr: journal.count_server_failure(cr, self.id, error, now, policy)
        )
        if not circuit:
            # the current transaction is the only place
            failures, open_until = delivery.circuit_after_failure(
                self.delivery_failures, now, policy
            )
            circuit = {
                "delivery_failures": failures,
                "unhealthy_until": open_until or self.unhealthy_until,
                "last_delivery_error": error,
            }
            self.sudo().write(circuit)
        open_until = circuit["unhealthy_until"]
        _logger.warning(
            "Outgoing server %s failed (%s): %s%s",
            self.name,
            failure.stage,
            failure.text,
            f"; paused until {open_until}"
            if open_until and circuit["delivery_failures"] >= policy.threshold
            else "",
        )

    def _record_server_success(self, apart=False):
        self.ensure_one()
        if not (self.delivery_failures or self.unhealthy_until):
            return
        circuit = apart and self._write_circuit_apart(
            lambda cr: journal.reset_server_circuit(cr, self.id)
        )
        if not circuit:
            self.sudo().write({"delivery_failures": 0, "unhealthy_until": False})

    def _write_circuit_apart(self, write):
        """Run ``write(cr)`` on a short transaction of its own, committed at
        once; put the values it returns in this transaction's cache (its
        snapshot predates them). None when that cannot be done: the caller
        writes in the current transaction."""
        # values of this transaction not yet written would be overwritten
        self.flush_recordset(
            ["delivery_failures", "unhealthy_until", "last_delivery_error"]
        )
        try:
            with sql_db.db_connect(self.env.cr.dbname).cursor() as cr:
                # another worker's count holds the row a few milliseconds:
                # then count on top of it (Odoo's repeatable read would
                # refuse the update); longer is this very transaction,
                # which changed the row itself
                cr.execute(
                    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; "
                    "SET LOCAL lock_timeout = '3s'"
                )
                values = write(cr)
            if values is None:
                return None
        except (psycopg2.Error, sql_db.PoolError) as error:
            # then the change waits for this transaction's commit, as core's
            # write would
            _logger.info(
                "Outgoing server %s: circuit breaker written in the queue's "
                "transaction (%s)",
                self.name,
                error,
            )
            return None
        for name, value in values.items():
            field = self._fields[name]
            self.env.cache.update(self, field, [field.convert_to_cache(value, self)])
        return values
