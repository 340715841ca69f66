"""The queue run's state, journal and commit strategies (tools/run.py,
tools/journal.py), and the outcome helpers they use (tools/delivery.py)."""

import doctest
import json

from mail_outbound_tools import delivery, journal, run


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
    for module in (journal, run, delivery):
        failures, tried = doctest.testmod(module)
        assert tried and not failures, module.__name__


def test_a_batch_belongs_to_its_mails_after_the_next_one_starts():
    """A mail still out on a parallel session keeps its batch (failover,
    skipped servers) when core connects the next batch."""
    queue_run = run.QueueRun(claim="c1", commit_every=50)
    first = queue_run.start_batch()
    first.failover = run.Failover(1, 2)
    first.skipped.append("refused by 1")
    second = queue_run.start_batch()
    assert queue_run.batch is second and second.failover is None
    assert first.failover.to_server_id == 2
    assert first.take_skipped() == ["refused by 1"] and first.take_skipped() == []
    assert not run.QueueRun().is_queue


def test_last_failure_prefers_the_connection_then_the_last_attempt():
    refused = delivery.Failure.unreachable("Connection refused")
    later = delivery.classify_reply(451, "4.7.1 later", "rcpt")
    attempts = [
        delivery.Attempt(1, False, failure=later),
        delivery.Attempt(1, True),
    ]
    assert delivery.last_failure(attempts) is later
    assert delivery.last_failure(attempts, refused) is refused
    assert delivery.last_failure([delivery.Attempt(1, True)]) is None
    assert refused.temporary and refused.server_health
    held = delivery.Failure.held("daily limit")
    assert held.temporary and not held.server_health and held.stage == "limit"


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


def test_a_lane_marks_its_end_of_data_on_a_connection_of_its_own():
    """Each lane's thread commits its marks on its own connection (their WAL
    flushes overlap); the worker's thread on the journal's."""
    import threading

    opened = []

    def connect():
        opened.append(Cursor())
        return opened[-1]

    log = journal.strategy_for(True).open_journal(connect, None)
    side = log.cursor
    log.mark_data_end("c1", 5, 0, 7)  # the worker's own thread (core's loop)
    marks = [
        journal.data_end_marker(log, "c1", mail_id, [None, 8]) for mail_id in (6, 9)
    ]
    threads = [threading.Thread(target=lambda m=m: (m(), m())) for m in marks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 3  # the side connection, then one per lane thread
    lane_cursors = opened[1:]
    assert side.statements[-1][1] == ("c1", 5, 0, 7) and side.commits == 1
    for cursor in lane_cursors:
        assert cursor.statements[0] == ("SET synchronous_commit TO on", None)
        rows = [params for _query, params in cursor.statements[1:]]
        assert [row[2:] for row in rows] == [(0, None), (1, 8)]
        assert cursor.commits == 2  # each mark holds before its end of DATA
    log.close()
    assert all(cursor.closed for cursor in opened)


def test_in_transaction_lane_marks_wait_for_the_run_s_thread():
    import threading

    run = Cursor()
    log = journal.strategy_for(False).open_journal(None, run)
    mark = journal.data_end_marker(log, "c2", 4, [3])
    thread = threading.Thread(target=mark)
    thread.start()
    thread.join()
    assert run.statements == []  # never the run's cursor from another thread
    log.write_handovers("c2", [])
    assert [params for _query, params in run.statements] == [("c2", 4, 0, 3)]
