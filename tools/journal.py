"""Where a queue run writes what must outlive it, and how it commits.

A queue run (``mail.mail.process_email_queue``) claims its mails, marks each
batch before it goes to a server, records each finished mail, and commits
its transaction every few mails. How it commits is a strategy chosen once,
from core's own ``auto_commit`` argument, never from a test switch:

- :data:`COMMITTING` (the cron: core passes ``auto_commit=True``): real
  commits; the batch marks and hand-over records go to a connection of
  their own (:class:`SideJournal`), each committed synchronously, so that
  they outlive the queue's transaction, a dead worker and a crash of
  PostgreSQL; the circuit breaker is counted on a short transaction apart.
- :data:`IN_TRANSACTION` (core passes ``auto_commit=False``: a caller's
  transaction, Odoo's test runner among them): the same steps in the same
  order, the marks and records written on the run's own cursor
  (:class:`Journal`), and a "commit" that flushes the ORM and empties its
  cache, as a commit does, without ending the transaction. Nothing can
  outlive it, so nothing needs settling apart when it fails.

The circuit breaker's counts, written apart by a run that commits, are here
too (:func:`count_server_failure`, :func:`reset_server_circuit`).

DB-API only, like OCA queue_job's ``jobrunner/runner.py``: the models give
it a cursor or a function that opens one::

    strategy = strategy_for(auto_commit)
    journal = strategy.open_journal(open_side_cursor, env.cr)
    journal.mark_batch(claim, [3, 1, 2], width=4)
    journal.mark_data_end(claim, 3, 0, partner.id)  # from a lane's thread too
    journal.write_handovers(claim, [handover_row(3, True, [partner], None, None)])
    strategy.commit(env.cr, env)
    journal.close()

What each record proves after a crash: a batch mark, which mails the run
meant to send, in order; a hand-over record, that a mail was finished and
what its server said; an end-of-DATA mark, that one message of a mail was
about to end its DATA (the only moment after which a server may deliver
it): a mail with such a mark and no hand-over record is in doubt, a mail
without one certainly reached no recipient and is simply queued again.
"""

import itertools
import json
import threading

from . import delivery

MARK_BATCH = (
    "INSERT INTO mail_outbound_batch (claim, mail_ids, width, since) "
    "VALUES (%s, %s::jsonb, %s, now() AT TIME ZONE 'UTC')"
)
WRITE_HANDOVERS = (
    "INSERT INTO mail_outbound_handover "
    "(claim, mail_id, delivered, partner_ids, failure_type, failure_reason) "
    "SELECT %s, mail_id, delivered, partners::jsonb, failure_type, reason "
    "FROM unnest(%s::int[], %s::bool[], %s::text[], %s::text[], %s::text[]) "
    "AS row(mail_id, delivered, partners, failure_type, reason)"
)
MARK_DATA_END = (
    "INSERT INTO mail_outbound_data_end (claim, mail_id, item, partner_id) "
    "VALUES (%s, %s, %s, %s)"
)


def partner_ids_of(success_pids):
    """The ids of the served partners core's ``_send`` collected: records
    (``_prepare_outgoing_list`` gives each message its ``res.partner``) or
    ids; falsy ones out.

    >>> class Partner:
    ...     id = 7
    >>> partner_ids_of([Partner(), None, 9, False])
    [7, 9]
    """
    return [
        getattr(partner, "id", partner) for partner in success_pids or () if partner
    ]


def handover_row(mail_id, delivered, success_pids, failure_type, reason):
    """One hand-over record, as :meth:`Journal.write_handovers` takes it.

    >>> handover_row(5, 1, [3, None], "", "ignored")
    (5, True, '[3]', None, None)
    """
    return (
        mail_id,
        bool(delivered),
        json.dumps(partner_ids_of(success_pids)),
        failure_type or None,
        reason if failure_type else None,
    )


def data_end_marker(log, claim, mail_id, partner_ids):
    """What a session calls before each message of a mail ends its DATA:
    the messages go in order, one call each, and message ``n`` is to
    ``partner_ids[n]`` (None: an address, no partner).

    >>> class Log:
    ...     def mark_data_end(self, *row):
    ...         print(row)
    >>> mark = data_end_marker(Log(), "c1", 5, [7, None])
    >>> mark(); mark()
    ('c1', 5, 0, 7)
    ('c1', 5, 1, None)
    """
    partners = [getattr(partner, "id", partner) or None for partner in partner_ids]
    sent = itertools.count()

    def mark():
        item = next(sent)
        partner_id = partners[item] if item < len(partners) else None
        log.mark_data_end(claim, mail_id, item, partner_id)

    return mark


class Journal:
    """Batch marks and hand-over records on the run's own cursor."""

    # whether what it wrote survives the run's transaction
    durable = False

    def __init__(self, cursor):
        self.cursor = cursor
        self.owner = threading.get_ident()
        # end-of-DATA marks made in a lane's thread, written by the run's own
        self.held_marks = []

    def mark_batch(self, claim, mail_ids, width=1):
        self.cursor.execute(
            MARK_BATCH, (claim, json.dumps(list(mail_ids)), max(1, int(width or 1)))
        )
        self._written()

    def mark_data_end(self, claim, mail_id, item, partner_id=None):
        """Message ``item`` of ``mail_id`` (to ``partner_id``, if a partner)
        is about to end its DATA. Callable from any thread."""
        row = (claim, mail_id, item, partner_id or None)
        if threading.get_ident() != self.owner:
            # the run's cursor is its thread's alone; nothing outlives this
            # transaction anyway: written with the run's next record
            self.held_marks.append(row)
            return
        self._write_held_marks()
        self.cursor.execute(MARK_DATA_END, row)
        self._written()

    def _write_held_marks(self):
        while self.held_marks:
            self.cursor.execute(MARK_DATA_END, self.held_marks.pop(0))

    def write_handovers(self, claim, rows):
        self._write_held_marks()
        if not rows:
            return
        mail_ids, delivered, partners, failure_types, reasons = zip(*rows, strict=True)
        self.cursor.execute(
            WRITE_HANDOVERS,
            (
                claim,
                list(mail_ids),
                list(delivered),
                list(partners),
                list(failure_types),
                list(reasons),
            ),
        )
        self._written()

    def _written(self):
        """The run's transaction carries it."""

    def close(self):
        """The run's cursor is not the journal's to close."""


class SideJournal(Journal):
    """Batch marks and hand-over records on a connection of their own, each
    committed synchronously: the mark must outlive a dead worker and a crash
    of PostgreSQL itself (a record lost then is a mail sent twice).

    A lane's thread writes its end-of-DATA marks on a connection of its own
    (``connect()``, opened at its first mark): the lanes then wait for their
    WAL flushes at the same time, which PostgreSQL does as one, instead of
    one after the other on a shared connection."""

    durable = True

    def __init__(self, cursor, connect=None):
        super().__init__(cursor)
        self.connect = connect
        self._local = threading.local()
        self._lane_cursors = []
        self._lock = threading.Lock()
        # whatever the server's default: one WAL flush per record
        self.cursor.execute("SET synchronous_commit TO on")

    def mark_data_end(self, claim, mail_id, item, partner_id=None):
        cursor = self._cursor_here()
        cursor.execute(MARK_DATA_END, (claim, mail_id, item, partner_id or None))
        # no end of DATA before this holds: a crash then finds the mark
        cursor.commit()

    def _cursor_here(self):
        if threading.get_ident() == self.owner or self.connect is None:
            return self.cursor
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self.connect()
            cursor.execute("SET synchronous_commit TO on")
            with self._lock:
                self._lane_cursors.append(cursor)
        return cursor

    def _written(self):
        self.cursor.commit()

    def close(self):
        with self._lock:
            cursors, self._lane_cursors = self._lane_cursors, []
        for cursor in cursors:
            cursor.close()
        self.cursor.close()


def count_server_failure(cr, server_id, error, now, policy):
    """One more failure of a server, counted in one statement on ``cr`` (a
    short transaction of the circuit breaker's own): two workers failing at
    once both count. The circuit opens as ``delivery.circuit_after_failure``
    decides from the new count. Returns the server's new values, or None
    when ``cr`` does not see the server (created by a transaction not
    committed yet)."""
    cr.execute(
        "UPDATE ir_mail_server SET delivery_failures = "
        "COALESCE(delivery_failures, 0) + 1, last_delivery_error = %s "
        "WHERE id = %s RETURNING delivery_failures, unhealthy_until",
        (error, server_id),
    )
    row = cr.fetchone()
    if row is None:
        return None
    failures, unhealthy_until = row
    _failures, open_until = delivery.circuit_after_failure(failures - 1, now, policy)
    if open_until:
        cr.execute(
            "UPDATE ir_mail_server SET unhealthy_until = %s WHERE id = %s",
            (open_until, server_id),
        )
        unhealthy_until = open_until
    return {
        "delivery_failures": failures,
        "unhealthy_until": unhealthy_until,
        "last_delivery_error": error,
    }


def reset_server_circuit(cr, server_id):
    """A server answered: its failures are forgotten (None: not seen)."""
    cr.execute(
        "UPDATE ir_mail_server SET delivery_failures = 0, unhealthy_until = NULL "
        "WHERE id = %s RETURNING id",
        (server_id,),
    )
    if cr.fetchone() is None:
        return None
    return {"delivery_failures": 0, "unhealthy_until": False}


class CommitStrategy:
    """How a run commits, where its journal writes, where the circuit breaker
    counts. ``commits``: the run's transaction really ends at each commit."""

    commits = True

    def open_journal(self, connect, cursor):
        """``connect()`` opens a connection of the run's own; ``cursor`` is
        the run's transaction."""
        return SideJournal(connect(), connect)

    def commit(self, cr, env=None):
        # the cron's run commits as core's ``_send`` does with auto_commit
        cr.commit()  # pylint: disable=invalid-commit

    def rollback(self, cr):
        cr.rollback()


class InTransaction(CommitStrategy):
    """The caller's transaction holds everything: a commit is a flush and an
    emptied cache (what the next mails then read again, as after a commit),
    the journal writes in the transaction, and a failed transaction takes
    the whole run with it (nothing was written apart to settle)."""

    commits = False

    def open_journal(self, connect, cursor):
        return Journal(cursor)

    def commit(self, cr, env=None):
        if env is not None:
            env.flush_all()
            env.invalidate_all()

    def rollback(self, cr):
        raise RuntimeError("a run in the caller's transaction does not roll back")


COMMITTING = CommitStrategy()
IN_TRANSACTION = InTransaction()


def strategy_for(auto_commit):
    """Core's ``auto_commit`` (True under the cron) names the strategy."""
    return COMMITTING if auto_commit is True else IN_TRANSACTION
