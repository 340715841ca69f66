"""The queue run's journal and commit strategies (tools/journal.py)."""

import doctest
import json

from mail_outbound_tools import journal


class Cursor:
    """A DB-API cursor that keeps what it was asked to do."""

    def __init__(self):
        self.statements, self.commits, self.closed = [], 0, False

    def execute(self, query, params=None):
        self.statements.append((query, params))

    def commit(self):
        self.commits += 1

    def rollback(self):
        raise AssertionError("the journal never rolls back")

    def close(self):
        self.closed = True


class Env:
    def __init__(self):
        self.calls = []

    def flush_all(self):
        self.calls.append("flush")

    def invalidate_all(self):
        self.calls.append("invalidate")


def test_doctests():
    failures, tried = doctest.testmod(journal)
    assert tried and not failures


def test_committing_journal_is_a_side_connection_committed_per_record():
    side, run = Cursor(), Cursor()
    log = journal.strategy_for(True).open_journal(lambda: side, run)
    assert log.durable
    assert side.statements == [("SET synchronous_commit TO on", None)]
    log.mark_batch("c1", [5, 3], width=0)
    log.write_handovers("c1", [journal.handover_row(5, True, [7], None, None)])
    log.write_handovers("c1", [])  # nothing to write: no statement, no commit
    log.close()
    assert run.statements == [] and run.commits == 0
    assert side.commits == 2 and side.closed
    mark, handover = side.statements[1:]
    assert mark[1] == ("c1", "[5, 3]", 1)  # a width below 1 is one session
    assert handover[1] == ("c1", [5], [True], ["[7]"], [None], [None])


def test_in_transaction_journal_writes_on_the_run_cursor_and_never_commits():
    run, env = Cursor(), Env()
    strategy = journal.strategy_for(False)
    log = strategy.open_journal(lambda: Cursor(), run)
    assert not log.durable and not strategy.commits
    log.mark_batch("c2", [1], width=4)
    log.write_handovers(
        "c2", [journal.handover_row(1, False, [], "mail_smtp", "451 later")]
    )
    log.close()
    strategy.commit(run, env)
    assert run.commits == 0 and not run.closed
    assert env.calls == ["flush", "invalidate"]
    assert [params for _query, params in run.statements] == [
        ("c2", "[1]", 4),
        ("c2", [1], [False], ["[]"], ["mail_smtp"], ["451 later"]),
    ]


def test_partner_records_become_ids():
    """Core's _send collects res.partner records: the journal stores ids."""

    class Partner:
        def __init__(self, pid):
            self.id = pid

    row = journal.handover_row(9, True, [Partner(4), Partner(8), None], "", "x")
    assert json.loads(row[2]) == [4, 8]
    assert row[3:] == (None, None)
