"""Queue safety with real processes: parallel workers, and a worker killed.

Run by scripts/test against its throwaway PostgreSQL (PGHOST, PGUSER set) on
a database that has mail_outbound:

    python3 scripts/queue_safety.py DBNAME ADDONS_PATH

1. Two worker processes drain the same 500 queued mails at once: every mail
   must reach the SMTP server exactly once and end sent.
2. A worker is killed with SIGKILL while it sends; after the claim timeout a
   new worker finishes the queue. No mail may reach the server twice, none
   may stay queued, and every mail the worker was handing over when it died
   must be failed with a reason that says it may have been delivered. Run
   with the queue's transaction committed every 50 mails (the default: the
   40 mails delivered before the kill were never committed) and after every
   mail, as core does (``mail_outbound.queue_commit_every`` = 1).
3. The database refuses the queue's commit in the middle of the queue (a
   trigger raises once): the mails of that chunk were delivered, so they
   must end sent, none sent twice, and the queue must go on.
4. A slow server makes a run last twice the claim timeout while a second
   worker polls the queue: the live worker renews its claim, so the second
   one takes none of its mails and nothing is failed as interrupted.

5. Workers killed with SIGKILL at random moments (8 trials, a random
   commit cadence) on mixed traffic (``tests/traffic.py``: half the mails
   to an ``email_to`` address, a quarter by a template to a record's 1 to 3
   contacts, a quarter chatter notifications to 1 to 3 partner followers):
   after a settlement, no (Message-ID, recipient) pair received twice,
   none lost, only mails whose end of DATA reached the server failed as
   "may have been delivered" (none never started: each has a pair the
   server received), and no chatter notification left ``ready``: a
   recipient who received the mail has it ``sent``, but for the one copy
   of a mail in doubt whose reply was lost (``exception``), and one who
   did not is never ``sent``.
6. PostgreSQL stopped with ``pg_ctl stop -m immediate`` in the middle of a
   run, then restarted (5 trials), on a cluster of its own with
   ``fsync=on`` and ``synchronous_commit=on``, on the same mixed traffic:
   the same.
7. A server that answers 451 to some recipients and drops the session after
   the end of DATA for some mails (it did receive those): the 451s are
   retried and sent, the dropped ones failed as "may have been delivered"
   and never sent twice. Then the same on mixed traffic, the faults on
   some ``email_to`` mails while notifications and template mails share the
   sessions: judged pair by pair, no notification left ``ready``.
8. A worker killed while several of its parallel sessions are in the middle
   of a hand-over: at most one mail per session (``WIDTH``) in doubt.
9. A server that refuses a third connection with 421 while the queue asks
   for four: every mail sent once on the sessions it took, none failed.

Every server here has the default Parallel Connections (4): every scenario
runs the parallel sessions, so "in doubt" allows up to ``WIDTH`` mails.

Every scenario counts what the SMTP server received against the mails'
states: zero received twice, zero marked sent but not received, zero left
queued. Prints one line per scenario and a closing "N passed, N failed" line.
"""

import collections
import glob
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the servers' Parallel Connections (the default): at most this many mails
# in hand-over at once, so at most this many in doubt after a fault
WIDTH = 4
sys.path.insert(0, str(ROOT / "tests"))

from loopback_smtp import LoopbackSmtp  # noqa: E402

WORKER = """
import time
env["ir.config_parameter"].set_param("mail.mail.queue.batch.size", {batch})
env.cr.commit()
while env["mail.outbound.queue"]._count_due():
    env["mail.mail"].process_email_queue()
    env.cr.commit()
print("WORKER DONE", flush=True)
"""

# Polls the queue until nothing is queued, deferred mails included (short
# backoffs), as a cron on a busy server would: started right after a fault,
# it meets the dead worker's claims the moment they can be taken
DRAIN = """
import time
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    if not env["mail.mail"].search_count([("state", "=", "outgoing")]):
        break
    env["mail.mail"].process_email_queue()
    env.cr.commit()
    time.sleep(0.1)
print("WORKER DONE", flush=True)
"""

# one sink server, a short claim timeout and backoff, the scenario's cadence
SETUP_SERVER = """
env["ir.mail_server"].search([]).unlink()
env["mail.mail"].search([]).unlink()
env["ir.mail_server"].create(
    {{"name": "Sink", "smtp_host": "127.0.0.1", "smtp_port": {port}, "sequence": 1}}
)
env["ir.config_parameter"].set_param("mail_outbound.claim_timeout", {claim_timeout})
env["ir.config_parameter"].set_param("mail_outbound.queue_commit_every", {commit_every})
env["ir.config_parameter"].set_param("mail_outbound.retry_min_backoff", 1)
env["ir.config_parameter"].set_param("mail_outbound.retry_max_backoff", 2)
"""

SETUP_TEMPLATE = (
    SETUP_SERVER
    + """env["mail.mail"].create([
    {{"email_from": "bob@example.com" if i % 2 else "{other_from}",
      "email_to": f"rcpt{{i}}@destination.example",
      "subject": f"Safety {{i}}", "body_html": "<p>x</p>", "auto_delete": False}}
    for i in range({count})
])
env.cr.commit()
"""
)


class _Setup:
    """SETUP.format with one sender by default; a second one (``other_from``)
    makes the routing split the queue into two batches, the second marked
    later than the claim."""

    @staticmethod
    def format(other_from="bob@example.com", **values):
        return SETUP_TEMPLATE.format(other_from=other_from, **values)


SETUP = _Setup()

# Fails the first commit that marks mail number {index} sent: a sequence
# counts across rolled back transactions.
FAIL_ONCE = """
env.cr.execute('''
    DROP SEQUENCE IF EXISTS mo_fail_once;
    CREATE SEQUENCE mo_fail_once;
    CREATE OR REPLACE FUNCTION mo_fail_once() RETURNS trigger AS $$
    BEGIN
        IF NEW.state = 'sent' AND OLD.state <> 'sent' THEN
            IF NEW.id = (SELECT mail.id FROM mail_mail mail
                           JOIN mail_message msg ON msg.id = mail.mail_message_id
                          WHERE msg.subject = 'Safety {index}') THEN
                IF nextval('mo_fail_once') = 1 THEN
                    RAISE EXCEPTION 'injected: the database refuses this commit';
                END IF;
            END IF;
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql;
    DROP TRIGGER IF EXISTS mo_fail_once ON mail_mail;
    CREATE TRIGGER mo_fail_once BEFORE UPDATE ON mail_mail
        FOR EACH ROW EXECUTE FUNCTION mo_fail_once();
''')
env.cr.commit()
"""

NO_FAIL = """
env.cr.execute("DROP TRIGGER IF EXISTS mo_fail_once ON mail_mail")
env.cr.execute("DROP FUNCTION IF EXISTS mo_fail_once")
env.cr.execute("SELECT last_value, is_called FROM mo_fail_once")
value, called = env.cr.fetchone()
# the trigger draws a number each time the mail is marked sent; the first
# draw refused the commit
print("REFUSED COMMITS", min(value, 1) if called else 0, flush=True)
env.cr.execute("DROP SEQUENCE IF EXISTS mo_fail_once")
env.cr.commit()
"""

REPORT = """
import json
mails = env["mail.mail"].search([("subject", "like", "Safety %")])
print("REPORT " + json.dumps([
    [m.message_id, m.state, m.failure_reason or "", m.email_to] for m in mails
]), flush=True)
"""

# Mixed traffic (tests/traffic.py): half the mails to an email_to address as
# above, a quarter by a template to a record's 1 to 3 contacts (auto-deleted
# once sent), a quarter chatter notifications to a record's 1 to 3 partner
# followers; the (Message-ID, recipient) pairs core is to deliver, read
# before the queue runs
SETUP_MIXED = (
    """
import json, sys
sys.path.insert(0, {tests!r})
from traffic import RealTraffic, outgoing_pairs
"""
    + SETUP_SERVER
    + """traffic = RealTraffic(env, tag={tag!r}, mailing_size=0)
env["mail.mail"].create([
    {{"email_from": "bob@example.com" if i % 2 else "alice@example.org",
      "email_to": traffic.address("to", i),
      "subject": f"Safety {{i}}", "body_html": "<p>x</p>", "auto_delete": False}}
    for i in range({count} // 2)
])
traffic.contacts({count} // 4, auto_delete=True)
for n in range({count} - {count} // 2 - {count} // 4):
    traffic.post(n, followers=1 + n % 3)
mails = traffic.mails()
env.cr.commit()
print("EXPECTED " + json.dumps({{
    "mails": mails.ids,
    "messages": traffic.messages.ids,
    "pairs": [[mail.id, mid, address]
              for mail in mails for mid, _subject, address in outgoing_pairs(mail)],
    "transactions": sum(
        bool(mail.email_to or mail.email_cc) + len(mail.recipient_ids) for mail in mails
    ),
}}), flush=True)
"""
)

# The mails of a mixed batch (those gone were auto-deleted, which core does
# only once sent) and the email notifications of its chatter messages
REPORT_MIXED = """
import json
mails = env["mail.mail"].browse({mail_ids}).exists()
notifications = env["mail.notification"].search([
    ("mail_message_id", "in", {message_ids}), ("notification_type", "=", "email"),
])
print("REPORT " + json.dumps({{
    "mails": [[m.id, m.state, m.failure_reason or ""] for m in mails],
    "notifications": [
        [n.mail_message_id.message_id, n.res_partner_id.email, n.notification_status]
        for n in notifications
    ],
}}), flush=True)
"""


class Odoo:
    def __init__(self, db, addons, host=None):
        host = host or os.environ["PGHOST"]
        self.base = [
            sys.executable,
            "-m",
            "odoo",
            "shell",
            "-d",
            db,
            "--addons-path",
            addons,
            "--db_host",
            host,
            "--db_user",
            os.environ["PGUSER"],
            "--no-http",
            "--log-level=error",
        ]

    def run(self, code):
        result = subprocess.run(
            self.base, input=code, capture_output=True, text=True, timeout=600
        )
        return result.stdout

    def start(self, code):
        process = subprocess.Popen(
            self.base,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        process.stdin.write(code)
        process.stdin.close()
        return process

    def report(self):
        return parse_report(self.run(REPORT))


def start_worker(odoo, until, seconds=60):
    """A worker draining the queue, returned once ``until()`` holds (or
    after ``seconds``): the moment a fault is injected."""
    worker = odoo.start(WORKER.format(batch=1000))
    deadline = time.monotonic() + seconds
    while not until() and time.monotonic() < deadline:
        time.sleep(0.001)
    return worker


def received_counts(smtp):
    return collections.Counter(m["message"]["Message-Id"] for m in smtp.messages)


def tally(odoo, received):
    """The queued mails, their states, and how many the server got twice."""
    report = odoo.report()
    states = collections.Counter(row[1] for row in report)
    twice = sum(1 for n in received.values() if n > 1)
    return report, states, twice


def two_workers(odoo):
    count = 500
    with LoopbackSmtp() as smtp:
        odoo.run(
            SETUP.format(
                port=smtp.port, claim_timeout=900, count=count, commit_every=50
            )
        )
        workers = [odoo.start(WORKER.format(batch=50)) for _ in range(2)]
        for worker in workers:
            worker.wait(timeout=600)
        received = received_counts(smtp)
    report, states, twice = tally(odoo, received)
    sent = states.get("sent", 0)
    missing = sum(1 for row in report if received[row[0]] == 0)
    ok = sent == count and twice == 0 and missing == 0 and len(received) == count
    print(
        f"two workers, {count} mails: {sent} sent, {len(received)} received, "
        f"{twice} received twice, {missing} never received -> "
        f"{'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def killed_worker(odoo, commit_every):
    count = 200
    with LoopbackSmtp() as smtp:
        # the server takes mail 40 and never answers: the worker is killed in
        # the middle of that hand-over, the worst moment
        smtp.script("data", action="accept_hang", match="rcpt40@", times=1)
        # claim timeout 2 s: the killed worker's claims and marks go stale fast
        odoo.run(
            SETUP.format(
                port=smtp.port,
                claim_timeout=2,
                count=count,
                commit_every=commit_every,
            )
        )
        worker = start_worker(odoo, lambda: len(smtp.messages) >= 41, seconds=120)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = len(smtp.messages)
        time.sleep(2.5)
        odoo.run(WORKER.format(batch=1000))
        received = received_counts(smtp)
        ended = ended_ids(smtp)
    report, states, twice = tally(odoo, received)
    queued = states.get("outgoing", 0)
    failed = [(row[0], row[2]) for row in report if row[1] == "exception"]
    unexplained = [
        mid for mid, reason in failed if "may have been delivered" not in reason
    ]
    never_started = sum(1 for mid, _reason in failed if mid not in ended)
    sent_not_received = sum(
        1 for row in report if row[1] == "sent" and received[row[0]] == 0
    )
    ok = (
        twice == 0
        and queued == 0
        and not unexplained
        and never_started == 0
        and sent_not_received == 0
        and states.get("sent", 0) + len(failed) == count
    )
    print(
        f"worker killed after {killed_at} of {count} mails, committing every "
        f"{commit_every}: {states.get('sent', 0)} "
        f"sent, {len(failed)} failed as 'may have been delivered' ({never_started} "
        f"never started), {queued} still "
        f"queued, {twice} received twice -> {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def refused_commit(odoo):
    count = 120
    with LoopbackSmtp() as smtp:
        odoo.run(
            SETUP.format(
                port=smtp.port, claim_timeout=900, count=count, commit_every=50
            )
        )
        # the first mail of the second chunk of 50 (sent in the order created)
        odoo.run(FAIL_ONCE.format(index=50))
        odoo.run(WORKER.format(batch=1000))
        refused = next(
            int(line.split()[-1])
            for line in odoo.run(NO_FAIL).splitlines()
            if line.startswith("REFUSED COMMITS")
        )
        received = received_counts(smtp)
    _report, states, twice = tally(odoo, received)
    ok = (
        refused == 1
        and twice == 0
        and states.get("sent", 0) == count
        and len(received) == count
    )
    print(
        f"a commit refused by the database ({refused} refused), {count} "
        f"mails: {states.get('sent', 0)} sent, {len(received)} received, {twice} "
        f"received twice -> {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def slow_run(odoo):
    count = 80
    with LoopbackSmtp() as smtp:
        # 50 ms a mail: about 4 s in all, against a claim timeout of 2 s
        smtp.data_delay = 0.05
        odoo.run(
            SETUP.format(port=smtp.port, claim_timeout=2, count=count, commit_every=5)
        )
        first = start_worker(odoo, lambda: bool(smtp.messages))
        second = odoo.start(WORKER.format(batch=1000))
        for worker in (first, second):
            worker.wait(timeout=600)
        received = received_counts(smtp)
    _report, states, twice = tally(odoo, received)
    ok = twice == 0 and states.get("sent", 0) == count and len(received) == count
    print(
        f"a run twice as long as the claim timeout, a second worker polling, "
        f"{count} mails: {states.get('sent', 0)} sent, "
        f"{states.get('exception', 0)} failed, {twice} received twice -> "
        f"{'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


MAYBE = "may have been delivered"


def ended_ids(smtp):
    """The Message-Ids whose end of DATA reached the server."""
    return {mid for mid, *_rcpts in smtp.data_ends}


def ended_pairs(smtp):
    """The (Message-ID, recipient) pairs whose end of DATA reached the
    server, whether it then answered or not."""
    return {(mid, rcpt.lower()) for mid, *rcpts in smtp.data_ends for rcpt in rcpts}


def verdict(report, received, in_doubt_max, ended=None):
    """(ok, summary) for the mails' states against what the server received.

    Lost: queued at the end, sent but never received, or failed for another
    reason than "may have been delivered". In doubt: failed as "may have
    been delivered": at most ``in_doubt_max``, and each one whose end of
    DATA reached the server (``ended``: their Message-Ids; else those it
    took), else it was never started.
    """
    reached = ended if ended is not None else {m for m in received if received[m]}
    twice = sum(1 for n in received.values() if n > 1)
    queued = sum(1 for row in report if row[1] == "outgoing")
    sent = sum(1 for row in report if row[1] == "sent")
    sent_missing = sum(1 for row in report if row[1] == "sent" and not received[row[0]])
    doubt = sum(1 for row in report if row[1] == "exception" and MAYBE in row[2])
    never_started = sum(
        1
        for row in report
        if row[1] == "exception" and MAYBE in row[2] and row[0] not in reached
    )
    other = sum(1 for row in report if row[1] not in ("sent", "outgoing")) - doubt
    ok = (
        twice == 0
        and queued == 0
        and sent_missing == 0
        and other == 0
        and doubt <= in_doubt_max
        and never_started == 0
    )
    summary = (
        f"{sent} sent, {doubt} in doubt ({never_started} never started), "
        f"{queued + sent_missing + other} lost, {twice} received twice"
    )
    return ok, summary


def parse_report(output, marker="REPORT"):
    line = next(line for line in output.splitlines() if line.startswith(marker + " "))
    return json.loads(line[len(marker) + 1 :])


def pair_counts(smtp):
    return collections.Counter(
        (m["message"]["Message-Id"], rcpt.lower())
        for m in smtp.messages
        for rcpt in m["rcpt_tos"]
    )


def verdict_mixed(
    expected, report, received, in_doubt_max, ended=None, unconfirmed_max=0
):
    """(ok, summary) of a mixed batch, pair by pair.

    A (Message-ID, recipient) pair is received at most once. A mail is sent
    (or gone: auto-deleted once sent), in doubt (failed as "may have been
    delivered", at most ``in_doubt_max``), or lost: queued, failed for
    another reason, or sent with a pair never received. A mail in doubt
    must have reached the server: the end of DATA of one of its pairs
    (``ended``; else one of its pairs received), else it was never started
    and should have been queued again ("never started in doubt"). No
    notification is left ``ready``; a recipient who received a chatter
    notification has it ``sent``, but for the one copy of a mail in doubt
    whose reply was lost (``exception``); one who did not is never ``sent``
    ("settled wrong").

    ``unconfirmed_max``: in a crash of PostgreSQL itself, the commit of an
    end-of-DATA mark may be durable while its answer is lost; the session
    then never sends the end (sending it could deliver a mail the database
    does not know was handed over: twice). Such a mail is in doubt though
    never started, at most one per session; the count is reported apart
    and fails the verdict beyond ``unconfirmed_max``. Kills allow none.
    """
    states = {mail_id: (state, reason) for mail_id, state, reason in report["mails"]}
    state = {
        mail_id: states.get(mail_id, ("sent", ""))  # gone: auto-deleted once sent
        for mail_id in expected["mails"]
    }
    doubt = {
        i for i, (st, reason) in state.items() if st == "exception" and MAYBE in reason
    }
    lost = {i for i, (st, _r) in state.items() if st != "sent" and i not in doubt}
    pairs = collections.Counter(
        (mid, address) for _i, mid, address in expected["pairs"]
    )
    lost |= {
        mail_id
        for mail_id, mid, address in expected["pairs"]
        if state[mail_id][0] == "sent" and not received[(mid, address)]
    }
    # a copy whose end of DATA the server saw was handed over, even when the
    # client died before the server took it (the sink's reply delay)
    reached = {
        mail_id
        for mail_id, mid, address in expected["pairs"]
        if received[(mid, address)]
        or (ended is not None and (mid, address.lower()) in ended)
    }
    never_started = doubt - reached
    twice = sum(1 for n in received.values() if n > 1)
    unexpected = sum(1 for pair in received if pair not in pairs)
    mail_of = {mid: mail_id for mail_id, mid, _a in expected["pairs"]}
    wrong, ready, cut, unreceived_sent = [], 0, collections.Counter(), 0
    for mid, address, status in report["notifications"]:
        mail_id = mail_of.get(mid)
        got = received[(mid, address)]
        ready += status == "ready"
        if mail_id in doubt and got and status == "exception":
            cut[mail_id] += 1
        if mail_id in doubt and not got and status == "sent":
            unreceived_sent += 1
        allowed = {"sent", "exception"} if mail_id in doubt else {"sent"}
        if status == "ready" or (got and status not in allowed):
            mail_state = state.get(mail_id, ("?", ""))
            wrong.append(
                f"{address} {status}, received {got}, mail "
                f"{mail_state[0]} {mail_state[1][:60]!r}"
            )
    # at most one copy of a mail in doubt is the one whose reply was lost;
    # a copy never received is never "sent"
    partial_wrong = sum(n - 1 for n in cut.values()) + unreceived_sent
    ok = (
        twice == 0
        and unexpected == 0
        and not lost
        and len(doubt) <= in_doubt_max
        and len(never_started) <= unconfirmed_max
        and not wrong
        and not partial_wrong
        and bool(report["notifications"])
    )
    sent = sum(1 for st, _r in state.values() if st == "sent")
    summary = (
        f"{len(state)} mails ({len(pairs)} pairs): {sent} sent, {len(doubt)} in "
        f"doubt ({len(never_started)} never started), {len(lost)} lost, {twice} "
        f"pairs received twice, {unexpected} unexpected; notifications "
        f"{len(report['notifications'])}, {ready} ready, {partial_wrong} of "
        f"mails in doubt settled wrong"
        + (f" (e.g. {'; '.join(wrong[:2])})" if wrong else "")
    )
    return ok, summary


POLLER = (
    """
import time

print("POLLING", flush=True)
# waits for the first worker's claim, then polls the queue without pause
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    if env["mail.mail"].search_count([("delivery_claim", "!=", False)]):
        break
    env.cr.rollback()
    time.sleep(0.01)
"""
    + DRAIN
)


def fault_trials(
    odoo, trials, rng, inject, label, count=96, poll=False, unconfirmed_max=0
):
    """``trials`` runs of ``count`` mails of mixed traffic (``SETUP_MIXED``),
    each hit by ``inject(worker)`` when a random number of messages has
    reached the server; then the queue is run to its end. ``poll``: a
    second worker polls the queue all along, and so meets the dead worker's
    claims the moment they can be taken; else one is started after the
    fault. The last process of a trial reports it and sets the next one up:
    each trial costs two or three Odoo processes."""
    results = []
    cadences = (1, 7, 50)

    with LoopbackSmtp() as smtp:
        smtp.data_delay = 0.002

        def setup(commit_every, trial):
            return SETUP_MIXED.format(
                tests=str(ROOT / "tests"),
                tag=f"{label}{trial}",
                port=smtp.port,
                claim_timeout=2,
                count=count,
                commit_every=commit_every,
            )

        commit_every = rng.choice(cadences)
        expected = parse_report(odoo.run(setup(commit_every, 0)), "EXPECTED")
        for trial in range(trials):
            smtp.reset()
            following = rng.choice(cadences)
            closing = REPORT_MIXED.format(
                mail_ids=expected["mails"], message_ids=expected["messages"]
            ) + (setup(following, trial + 1) if trial < trials - 1 else "")
            poller = None
            if poll:
                poller = odoo.start(POLLER.format(seconds=90) + closing)
                while not poller.stdout.readline().startswith("POLLING"):
                    if poller.poll() is not None:
                        break
            worker = odoo.start(WORKER.format(batch=1000))
            messages = expected["transactions"]
            hit_after = rng.randint(1, messages - 10)
            deadline = time.monotonic() + 60
            while len(smtp.messages) < hit_after and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))
            inject(worker)
            hit_at = len(smtp.messages)
            if poller:
                output = poller.stdout.read()
                poller.wait(timeout=120)
            else:
                output = odoo.run(DRAIN.format(seconds=60) + closing)
            ok, summary = verdict_mixed(
                expected,
                parse_report(output),
                pair_counts(smtp),
                in_doubt_max=WIDTH,
                ended=ended_pairs(smtp),
                unconfirmed_max=unconfirmed_max,
            )
            results.append(ok)
            print(
                f"  {label} {trial + 1}: after {hit_at} of {messages} messages, "
                f"committing every {commit_every}: {summary} -> "
                f"{'ok' if ok else 'FAILED'}",
                flush=True,
            )
            if trial < trials - 1:
                expected = parse_report(output, "EXPECTED")
            commit_every = following
    return results


def random_kills(odoo, trials=8, seed=None):
    """Workers killed at random moments; the queue then run to its end."""

    def kill(worker):
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    results = fault_trials(odoo, trials, random.Random(seed), kill, "kill", poll=True)
    ok = all(results)
    print(
        f"workers killed at random moments, {trials} trials: "
        f"{sum(results)} clean -> {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


class DurableCluster:
    """A PostgreSQL cluster of its own with its real durability settings
    (scripts/lib.sh's cluster runs with fsync=off), holding a copy of the
    test database."""

    def __init__(self, db):
        self.db = db
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        try:
            bindir = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            if not os.path.exists(os.path.join(bindir, "pg_ctl")):
                raise FileNotFoundError(bindir)
        except (OSError, subprocess.CalledProcessError):
            bindir = bindirs[0]
        self.bindir = bindir
        self.user = os.environ["PGUSER"]
        self.as_user = ["runuser", "-u", self.user, "--"] if os.getuid() == 0 else []
        self.dir = tempfile.mkdtemp(prefix="mail_outbound_durable_pg.")
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            shutil.chown(self.dir, self.user)
        self.data = os.path.join(self.dir, "data")

    def _ctl(self, *args):
        subprocess.run(
            [
                *self.as_user,
                os.path.join(self.bindir, "pg_ctl"),
                "-D",
                self.data,
                *args,
            ],
            check=True,
            capture_output=True,
        )

    def start(self):
        self._ctl(
            "-l",
            os.path.join(self.dir, "server.log"),
            "-w",
            "-o",
            f"-k {self.dir} -c listen_addresses='' -c fsync=on "
            "-c synchronous_commit=on -c full_page_writes=on",
            "start",
        )

    def crash(self):
        self._ctl("-m", "immediate", "stop")

    def __enter__(self):
        subprocess.run(
            [
                *self.as_user,
                os.path.join(self.bindir, "initdb"),
                "-D",
                self.data,
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        self.start()
        subprocess.run(
            ["createdb", "-h", self.dir, "-U", self.user, self.db], check=True
        )
        dump = subprocess.Popen(
            ["pg_dump", "-h", os.environ["PGHOST"], "-U", self.user, self.db],
            stdout=subprocess.PIPE,
        )
        subprocess.run(
            ["psql", "-q", "-h", self.dir, "-U", self.user, "-d", self.db],
            stdin=dump.stdout,
            check=True,
            capture_output=True,
        )
        dump.wait()
        return self

    def __exit__(self, *exc):
        try:
            self.crash()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def database_crash(db, addons, trials=5, seed=None):
    """PostgreSQL stopped with an immediate stop mid-run, then restarted."""
    with DurableCluster(db) as cluster:

        def crash(worker):
            cluster.crash()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            cluster.start()

        odoo = Odoo(db, addons, host=cluster.dir)
        # a mark's commit answered by no one: see verdict_mixed
        results = fault_trials(
            odoo, trials, random.Random(seed), crash, "crash", unconfirmed_max=WIDTH
        )
    ok = all(results)
    print(
        f"PostgreSQL stopped (immediate) mid-run on a cluster with fsync=on, "
        f"{trials} trials: {sum(results)} clean -> {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def dropped_sessions(odoo, seed=None):
    """451 to some recipients, the session dropped after DATA for others."""
    rng = random.Random(seed)
    count = 200
    picked = rng.sample(range(count), 30)
    refused, dropped = set(picked[:20]), set(picked[20:])
    with LoopbackSmtp() as smtp:
        for i in refused:
            smtp.script(
                "rcpt", 451, "4.7.1 Try again later", match=f"rcpt{i}@", times=1
            )
        for i in dropped:
            smtp.script("data", action="accept_close", match=f"rcpt{i}@", times=1)
        odoo.run(
            SETUP.format(
                port=smtp.port, claim_timeout=900, count=count, commit_every=50
            )
        )
        odoo.run(DRAIN.format(seconds=120))
        received = received_counts(smtp)
    report = odoo.report()
    ok, summary = verdict(report, received, in_doubt_max=len(dropped))
    doubt = {
        int(row[3].split("@")[0][4:])
        for row in report
        if row[1] == "exception" and MAYBE in row[2]
    }
    ok = ok and doubt == dropped
    print(
        f"{len(refused)} of {count} mails refused with 451 once, {len(dropped)} "
        f"dropped after the end of DATA: {summary}; the dropped ones in doubt: "
        f"{'yes' if doubt == dropped else 'NO'} -> {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def dropped_sessions_mixed(odoo, seed=None):
    """The server of ``dropped_sessions`` on mixed traffic: 451 once to some
    ``email_to`` mails' recipients, the session dropped after DATA for
    others, while chatter notifications and template mails to contacts
    share those sessions. Judged pair by pair (``verdict_mixed``): the 451s
    retried and received once, exactly the dropped mails in doubt, every
    other copy received once, no notification left ``ready``."""
    rng = random.Random(seed)
    with LoopbackSmtp() as smtp:
        expected = parse_report(
            odoo.run(
                SETUP_MIXED.format(
                    tests=str(ROOT / "tests"),
                    tag="flaky",
                    port=smtp.port,
                    claim_timeout=900,
                    count=96,
                    commit_every=50,
                )
            ),
            "EXPECTED",
        )
        plain = sorted(
            (mail_id, address)
            for mail_id, _mid, address in expected["pairs"]
            if ".to." in address
        )
        picked = rng.sample(plain, 16)
        refused, dropped = picked[:10], picked[10:]
        for _mail_id, address in refused:
            smtp.script("rcpt", 451, "4.7.1 Try again later", match=address, times=1)
        for _mail_id, address in dropped:
            smtp.script("data", action="accept_close", match=address, times=1)
        output = odoo.run(
            DRAIN.format(seconds=120)
            + REPORT_MIXED.format(
                mail_ids=expected["mails"], message_ids=expected["messages"]
            )
        )
        received = pair_counts(smtp)
    report = parse_report(output)
    ok, summary = verdict_mixed(expected, report, received, in_doubt_max=len(dropped))
    doubt = {
        mail_id
        for mail_id, state, reason in report["mails"]
        if state == "exception" and MAYBE in reason
    }
    in_doubt = doubt == {mail_id for mail_id, _address in dropped}
    ok = ok and in_doubt
    print(
        f"mixed traffic, {len(refused)} mails refused with 451 once, "
        f"{len(dropped)} dropped after the end of DATA: {summary}; the dropped "
        f"ones in doubt: {'yes' if in_doubt else 'NO'} -> "
        f"{'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def killed_with_sessions_busy(odoo):
    """A worker killed while its parallel sessions all hand mails over."""
    count = 200
    with LoopbackSmtp() as smtp:
        # 50 ms before each final reply: every session is in the middle of a
        # hand-over most of the time
        smtp.data_delay = 0.05
        odoo.run(
            SETUP.format(port=smtp.port, claim_timeout=2, count=count, commit_every=50)
        )
        # killed once 60 mails are in, at a moment several sessions are at
        # the end of their DATA
        worker = start_worker(
            odoo, lambda: len(smtp.messages) >= 60 and smtp.in_data >= 2
        )
        busy = smtp.in_data
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = len(smtp.messages)
        output = odoo.run(DRAIN.format(seconds=60) + REPORT)
        received = received_counts(smtp)
        ended = ended_ids(smtp)
    ok, summary = verdict(
        parse_report(output), received, in_doubt_max=WIDTH, ended=ended
    )
    ok = ok and busy >= 2
    print(
        f"worker killed with {busy} sessions handing over, after {killed_at} of "
        f"{count} mails: {summary} -> {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def refused_extra_connections(odoo):
    """A server that takes two connections and answers 421 to the next."""
    count = 200
    with LoopbackSmtp(max_connections=2) as smtp:
        smtp.data_delay = 0.002
        odoo.run(
            SETUP.format(
                port=smtp.port, claim_timeout=900, count=count, commit_every=50
            )
        )
        odoo.run(DRAIN.format(seconds=120))
        received = received_counts(smtp)
        refused = smtp.refused_connections
    report = odoo.report()
    ok, summary = verdict(report, received, in_doubt_max=0)
    ok = ok and refused > 0
    print(
        f"a server refusing a third connection with 421 ({refused} refused), "
        f"{count} mails on {WIDTH} sessions asked: {summary} -> "
        f"{'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok


def main():
    db, addons = sys.argv[1], sys.argv[2]
    only = set(sys.argv[3:])  # scenario names, to run a few while developing
    odoo = Odoo(db, addons)
    scenarios = {
        "two_workers": lambda: two_workers(odoo),
        "killed_worker": lambda: killed_worker(odoo, commit_every=50),
        "killed_worker_1": lambda: killed_worker(odoo, commit_every=1),
        "refused_commit": lambda: refused_commit(odoo),
        "slow_run": lambda: slow_run(odoo),
        "random_kills": lambda: random_kills(
            odoo, trials=int(os.environ.get("MO_TRIALS", 8))
        ),
        "dropped_sessions": lambda: dropped_sessions(odoo),
        "dropped_sessions_mixed": lambda: dropped_sessions_mixed(odoo),
        "killed_with_sessions_busy": lambda: killed_with_sessions_busy(odoo),
        "refused_extra_connections": lambda: refused_extra_connections(odoo),
        "database_crash": lambda: database_crash(
            db, addons, trials=int(os.environ.get("MO_CRASHES", 5))
        ),
    }
    results = []
    for name, scenario in scenarios.items():
        if only and name not in only:
            continue
        started = time.monotonic()
        results.append(scenario())
        print(f"  ({name}: {time.monotonic() - started:.0f} s)", flush=True)
    print(f"queue safety: {sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
