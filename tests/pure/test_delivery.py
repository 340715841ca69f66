"""Temporary or permanent, backoff, circuit breaker: the MTA policy."""

import random
import smtplib
import ssl
from datetime import datetime, timedelta

import pytest

from mail_outbound_tools.delivery import (
    PERMANENT,
    TEMPORARY,
    CircuitPolicy,
    RetryPolicy,
    circuit_after_failure,
    circuit_is_open,
    classify,
    classify_reply,
    failover_candidates,
    next_attempt,
    settle_interrupted,
)


class MailDeliveryException(Exception):
    """Shaped like Odoo's: (title, message), original error chained."""


def wrapped(error):
    try:
        raise MailDeliveryException("Mail Delivery Failed", str(error)) from error
    except MailDeliveryException as exc:
        return exc


CASES = [
    (
        "451 at DATA",
        smtplib.SMTPDataError(451, b"4.7.1 Try later"),
        TEMPORARY,
        451,
        "data",
        False,
        "mail_smtp",
    ),
    (
        "554 at DATA",
        smtplib.SMTPDataError(554, b"5.6.0 Rejected"),
        PERMANENT,
        554,
        "data",
        False,
        "mail_smtp",
    ),
    (
        "530 authentication required (an OAuth login refused)",
        smtplib.SMTPSenderRefused(530, b"5.7.0 Authentication required", "a@b.c"),
        TEMPORARY,
        530,
        "auth",
        True,
        "mail_smtp",
    ),
    (
        "550 sender",
        smtplib.SMTPSenderRefused(550, b"5.7.1 Not yours", "a@b.c"),
        PERMANENT,
        550,
        "mail_from",
        False,
        "mail_from_invalid",
    ),
    (
        "452 rcpt",
        smtplib.SMTPRecipientsRefused({"x@y.z": (452, b"4.2.2 Full")}),
        TEMPORARY,
        452,
        "rcpt",
        False,
        "mail_smtp",
    ),
    (
        "550 rcpt",
        smtplib.SMTPRecipientsRefused({"x@y.z": (550, b"5.1.1 Unknown")}),
        PERMANENT,
        550,
        "rcpt",
        False,
        "mail_email_invalid",
    ),
    (
        "mixed rcpt",
        smtplib.SMTPRecipientsRefused(
            {"x@y.z": (550, b"no"), "u@v.w": (451, b"later")}
        ),
        TEMPORARY,
        451,
        "rcpt",
        False,
        "mail_smtp",
    ),
    (
        "421 greeting",
        smtplib.SMTPConnectError(421, b"4.3.2 Busy"),
        TEMPORARY,
        421,
        "connect",
        True,
        "mail_smtp",
    ),
    (
        "535 auth",
        smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"),
        TEMPORARY,
        535,
        "auth",
        True,
        "mail_smtp",
    ),
    (
        "refused",
        ConnectionRefusedError(111, "Connection refused"),
        TEMPORARY,
        0,
        "connect",
        True,
        "mail_smtp",
    ),
    (
        "timeout",
        TimeoutError("timed out"),
        TEMPORARY,
        0,
        "connect",
        True,
        "mail_smtp",
    ),
    (
        "dropped",
        smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
        TEMPORARY,
        0,
        "connect",
        True,
        "mail_smtp",
    ),
    (
        "tls",
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
        TEMPORARY,
        0,
        "tls",
        True,
        "mail_smtp",
    ),
    ("bug", ValueError("bad header"), PERMANENT, 0, "unknown", False, "unknown"),
]


@pytest.mark.parametrize(
    "error,kind,code,stage,health,failure_type",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
@pytest.mark.parametrize("wrap", [False, True], ids=["raw", "wrapped"])
def test_classify(error, kind, code, stage, health, failure_type, wrap):
    failure = classify(wrapped(error) if wrap else error)
    assert (failure.kind, failure.code, failure.stage) == (kind, code, stage)
    assert (failure.server_health, failure.failure_type) == (health, failure_type)


def test_classify_keeps_the_server_text():
    failure = classify(smtplib.SMTPDataError(451, b"4.7.1 Greylisted"))
    assert failure.text == "4.7.1 Greylisted"
    assert failure.temporary


def test_classify_reply():
    assert classify_reply(421, "bye", "connect").server_health
    assert classify_reply(550, "no", "rcpt").failure_type == "mail_email_invalid"
    assert classify_reply(450, "later", "rcpt").kind == TEMPORARY


NOW = datetime(2026, 11, 24, 12, 0)


@pytest.mark.parametrize(
    "attempts,low,high",
    [(1, 240, 360), (2, 480, 720), (3, 960, 1440), (4, 1920, 2880), (10, 3200, 4800)],
)
def test_backoff_doubles_and_is_capped(attempts, low, high):
    for seed in range(20):
        when, reason = next_attempt(
            RetryPolicy(), attempts, NOW, NOW, random.Random(seed)
        )
        assert reason is None
        assert low <= (when - NOW).total_seconds() <= high


def test_backoff_jitter_spreads_retries():
    delays = {
        next_attempt(RetryPolicy(), 1, NOW, NOW, random.Random(seed))[0]
        for seed in range(10)
    }
    assert len(delays) == 10


def test_without_jitter_it_is_exact():
    policy = RetryPolicy(jitter=0)
    assert next_attempt(policy, 1, NOW, NOW)[0] == NOW + timedelta(seconds=300)
    assert next_attempt(policy, 3, NOW, NOW)[0] == NOW + timedelta(seconds=1200)


def test_gives_up_after_the_queue_lifetime():
    policy = RetryPolicy(jitter=0)
    first = NOW - timedelta(days=5) + timedelta(seconds=100)
    when, reason = next_attempt(policy, 30, NOW, first)
    assert (when, reason) == (None, "queue lifetime exceeded")
    when, reason = next_attempt(policy, 30, NOW, NOW - timedelta(days=4))
    assert reason is None


def test_circuit_opens_after_threshold_and_half_opens_after_cooldown():
    policy = CircuitPolicy(threshold=3, cooldown=300)
    failures, open_until = circuit_after_failure(0, NOW, policy)
    assert (failures, open_until) == (1, None)
    failures, open_until = circuit_after_failure(2, NOW, policy)
    assert (failures, open_until) == (3, NOW + timedelta(seconds=300))
    assert circuit_is_open(open_until, NOW + timedelta(seconds=299))
    assert not circuit_is_open(open_until, NOW + timedelta(seconds=300))
    assert not circuit_is_open(None, NOW)
    # half-open: one more failure re-opens at once
    failures, open_until = circuit_after_failure(failures, NOW, policy)
    assert open_until == NOW + timedelta(seconds=300)


def test_settle_a_worker_stopped_in_the_middle_of_a_batch():
    # batch 1..6 in send order: 1 committed, 2 delivered and 3 refused but not
    # committed, 4 in hand-over, 5 and 6 never tried
    delivered, interrupted = settle_interrupted(
        [[1, 2, 3, 4, 5, 6]], pending={2, 3, 4, 5, 6}, handed_over={2: True, 3: False}
    )
    assert delivered == [2]
    assert interrupted == [4]


def test_settle_skips_what_is_no_longer_pending():
    # 2 was cancelled meanwhile (core skips it), 3 deferred: neither pending
    delivered, interrupted = settle_interrupted(
        [[1, 2, 3, 4]], pending={1, 4}, handed_over={1: True}
    )
    assert (delivered, interrupted) == ([1], [4])


def test_settle_a_batch_finished_before_its_commit():
    # every mail finished: nothing was in hand-over
    delivered, interrupted = settle_interrupted(
        [[7, 8], [9]], pending={7, 8, 9}, handed_over={7: True, 8: True, 9: False}
    )
    assert (delivered, interrupted) == ([7, 8], [])


def test_settle_one_interrupted_mail_per_batch():
    delivered, interrupted = settle_interrupted(
        [[1, 2], [3, 4]], pending={1, 2, 3, 4}, handed_over={}
    )
    assert (delivered, interrupted) == ([], [1, 3])


@pytest.mark.parametrize(
    ("batch", "width", "pending", "handed_over", "expected"),
    [
        # four sessions: 1 slow, 2..5 finished on the others, 6 7 8 started
        (
            list(range(1, 11)),
            4,
            set(range(1, 11)),
            {2: True, 3: True, 4: False, 5: True},
            ([2, 3, 5], [1, 6, 7, 8]),
        ),
        # fewer unfinished mails than sessions: all of them may be out
        ([1, 2, 3], 4, {1, 2, 3}, {1: True}, ([1], [2, 3])),
        # a recorded delivery after the unfinished ones is still marked sent
        ([1, 2, 3, 4], 2, {1, 2, 3, 4}, {4: True}, ([4], [1, 2])),
        # committed mails (not pending) do not use up a session
        ([1, 2, 3, 4, 5], 2, {3, 4, 5}, {}, ([], [3, 4])),
        # no width given: one session, as before
        ([1, 2, 3], None, {1, 2, 3}, {}, ([], [1])),
    ],
)
def test_settle_a_batch_sent_on_several_sessions(
    batch, width, pending, handed_over, expected
):
    widths = None if width is None else [width]
    assert settle_interrupted([batch], pending, handed_over, widths) == expected


# -- one attempt's outcome; a session lost after the end of DATA -----------


def _failure(kind=TEMPORARY, stage="rcpt"):
    from mail_outbound_tools.delivery import Failure

    return Failure(kind, 451 if kind == TEMPORARY else 550, "x", stage, False, "t")


@pytest.mark.parametrize(
    ("failure", "delivered", "retry_after_data", "outcome"),
    [
        (None, True, False, "sent"),
        (_failure(TEMPORARY), True, False, "partial"),
        (_failure(PERMANENT), True, False, "partial"),
        (_failure(TEMPORARY), False, False, "deferred"),
        (_failure(PERMANENT), False, False, "failed"),
        (_failure(PERMANENT, "after_data"), False, False, "maybe_delivered"),
        (_failure(PERMANENT, "after_data"), False, True, "deferred"),
        # an earlier copy accepted, the last one lost after DATA: in doubt,
        # not refused, and not retried (the accepted copies would go twice)
        (_failure(PERMANENT, "after_data"), True, False, "maybe_delivered"),
        (_failure(PERMANENT, "after_data"), True, True, "maybe_delivered"),
        # a drop before the end of DATA is a plain temporary failure
        (_failure(TEMPORARY, "connect"), False, False, "deferred"),
    ],
)
def test_attempt_outcome(failure, delivered, retry_after_data, outcome):
    from mail_outbound_tools.delivery import attempt_outcome

    assert attempt_outcome(failure, delivered, retry_after_data) == outcome


def test_a_drop_after_data_is_classified_as_such():
    from mail_outbound_tools.delivery import DroppedAfterData

    error = DroppedAfterData("connection lost after the end of DATA")
    failure = classify(wrapped(error))
    assert failure.stage == "after_data"
    assert not failure.server_health
    # a drop before it stays a temporary network failure
    before = classify(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))
    assert before.temporary and before.stage == "connect"


# -- the circuit breaker, the failover order: tables (issue #9) -------------

MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("failures", "threshold", "cooldown", "counted", "opens"),
    [
        (0, 3, 300, 1, False),
        (1, 3, 300, 2, False),
        (2, 3, 300, 3, True),
        # past the threshold (a half-open try failed): opens again at once
        (7, 3, 300, 8, True),
        # a threshold of 1: the first failure pauses the server
        (0, 1, 60, 1, True),
        (0, 1000, 300, 1, False),
        (998, 1000, 300, 999, False),
        (999, 1000, 86400, 1000, True),
    ],
)
def test_circuit_after_failure(failures, threshold, cooldown, counted, opens):
    policy = CircuitPolicy(threshold=threshold, cooldown=cooldown)
    assert circuit_after_failure(failures, NOW, policy) == (
        counted,
        NOW + timedelta(seconds=cooldown) if opens else None,
    )


@pytest.mark.parametrize(
    ("open_until", "now", "is_open"),
    [
        (None, NOW, False),
        (False, NOW, False),  # an empty Datetime field
        (NOW + MINUTE, NOW, True),
        (NOW, NOW, False),  # the pause is over: one try (half-open)
        (NOW - MINUTE, NOW, False),
    ],
)
def test_circuit_is_open(open_until, now, is_open):
    assert circuit_is_open(open_until, now) is is_open


@pytest.mark.parametrize(
    ("server_id", "ordered", "carries", "paused", "tried"),
    [
        # the batch's own server first, then the others in the documented order
        (2, [1, 2, 3], {1, 2, 3}, set(), [2, 1, 3]),
        # only the servers carrying the batch's kind of mail
        (1, [1, 2, 3], {1, 3}, set(), [1, 3]),
        # the batch's server is tried even if it does not carry that kind
        # (the routing chose it)
        (2, [1, 2, 3], {1, 3}, set(), [2, 1, 3]),
        # paused servers are skipped, the batch's own one included
        (1, [1, 2, 3], {1, 2, 3}, {2}, [1, 3]),
        (1, [1, 2, 3], {1, 2, 3}, {1}, [2, 3]),
        (1, [1, 2, 3], {1, 2, 3}, {1, 2, 3}, []),
        # outside the failover scope (another company's): not in ordered
        (4, [1, 3], {1, 3, 4}, set(), [4, 1, 3]),
        (1, [], set(), set(), [1]),
    ],
)
def test_failover_candidates(server_id, ordered, carries, paused, tried):
    open_until = {i: NOW + MINUTE if i in paused else None for i in (1, 2, 3, 4)}
    assert failover_candidates(server_id, ordered, carries, open_until, NOW) == tried


@pytest.mark.parametrize(
    ("batches", "pending", "handed_over", "delivered", "interrupted"),
    [
        # the dead worker of tests/test_queue_commits.py: 3 accepted, killed
        # handing over the 4th
        ([[1, 2, 3, 4, 5]], {1, 2, 3, 4, 5}, {1: 1, 2: 1, 3: 1}, [1, 2, 3], [4]),
        # a refused commit after a whole chunk: every mail finished
        ([[1, 2, 3]], {1, 2, 3}, {1: 1, 2: 1, 3: 1}, [1, 2, 3], []),
        # refused and deferred mails finished too: neither sent nor in doubt
        ([[1, 2, 3]], {1, 2, 3}, {1: 0, 2: 1}, [2], [3]),
        # committed ones are not pending any more
        ([[1, 2, 3]], {3}, {1: 1, 2: 1}, [], [3]),
        # nothing recorded: the first one of each batch is in doubt
        ([[1, 2], [3]], {1, 2, 3}, {}, [], [1, 3]),
        # a mark whose mails were all committed: nothing to settle
        ([[1, 2]], set(), {1: 1, 2: 1}, [], []),
        ([], {1}, {1: 1}, [], []),
    ],
)
def test_settle_interrupted_table(
    batches, pending, handed_over, delivered, interrupted
):
    handed_over = {mail_id: bool(ok) for mail_id, ok in handed_over.items()}
    assert settle_interrupted(batches, pending, handed_over) == (
        delivered,
        interrupted,
    )


@pytest.mark.parametrize(
    ("first_attempt_ago", "attempts", "gives_up"),
    [
        (timedelta(0), 1, False),
        (timedelta(days=4, hours=23), 1, False),
        # the next attempt would fall after the lifetime
        (timedelta(days=4, hours=23, minutes=58), 1, True),
        (timedelta(days=5), 1, True),
        (timedelta(days=6), 20, True),
        # no first attempt recorded: counted from now
        (None, 3, False),
    ],
)
def test_next_attempt_lifetime(first_attempt_ago, attempts, gives_up):
    policy = RetryPolicy(jitter=0)
    first = None if first_attempt_ago is None else NOW - first_attempt_ago
    when, reason = next_attempt(policy, attempts, NOW, first)
    assert (when is None, reason is not None) == (gives_up, gives_up)


@pytest.mark.parametrize(
    ("batches", "pending", "handed_over", "ended", "expected"),
    [
        # four sessions, two busy: only the mails whose end of DATA was
        # marked are in doubt, the never started ones go again
        ([[1, 2, 3, 4, 5, 6]], {1, 2, 3, 4, 5, 6}, {1: True}, {2, 3}, ([1], [2, 3])),
        # nothing was ending its DATA: nothing in doubt
        ([[1, 2, 3]], {1, 2, 3}, {}, set(), ([], [])),
        # a mark of a finished mail does not make it doubtful
        ([[1, 2]], {1, 2}, {1: False, 2: True}, {1, 2}, ([2], [])),
        # committed mails are settled already, marked or not
        ([[1, 2], [3]], {3}, {}, {1, 3}, ([], [3])),
    ],
)
def test_settle_exactly_the_mails_that_ended_their_data(
    batches, pending, handed_over, ended, expected
):
    widths = [4] * len(batches)
    assert settle_interrupted(batches, pending, handed_over, widths, ended) == expected


def test_a_mail_in_doubt_reached_the_partners_before_its_last_mark():
    from mail_outbound_tools.delivery import served_before_doubt

    assert served_before_doubt([(2, 9), (0, 7), (1, None)]) == [7]
    assert served_before_doubt([]) == []
