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

Prints one line per scenario and a closing "N passed, N failed" line.
"""

import collections
import os
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from loopback_smtp import LoopbackSmtp  # noqa: E402

WORKER = """
import time
env["ir.config_parameter"].set_param("mail.mail.queue.batch.size", {batch})
env.cr.commit()
while env["mail.mail"]._count_due():
    env["mail.mail"].process_email_queue()
    env.cr.commit()
print("WORKER DONE", flush=True)
"""

SETUP = """
env["ir.mail_server"].search([]).unlink()
env["mail.mail"].search([]).unlink()
env["ir.mail_server"].create(
    {{"name": "Sink", "smtp_host": "127.0.0.1", "smtp_port": {port}, "sequence": 1}}
)
env["ir.config_parameter"].set_param("mail_outbound.claim_timeout", {claim_timeout})
env["ir.config_parameter"].set_param("mail_outbound.queue_commit_every", {commit_every})
env["mail.mail"].create([
    {{"email_from": "bob@example.com", "email_to": f"rcpt{{i}}@destination.example",
      "subject": f"Safety {{i}}", "body_html": "<p>x</p>", "auto_delete": False}}
    for i in range({count})
])
env.cr.commit()
"""

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
    [m.message_id, m.state, m.failure_reason or ""] for m in mails
]), flush=True)
"""


class Odoo:
    def __init__(self, db, addons):
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
            os.environ["PGHOST"],
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
        import json

        line = next(
            line for line in self.run(REPORT).splitlines() if line.startswith("REPORT ")
        )
        return json.loads(line[len("REPORT ") :])


def received_counts(smtp):
    return collections.Counter(m["message"]["Message-Id"] for m in smtp.messages)


def tally(odoo, received):
    """The queued mails, their states, and how many the server got twice."""
    report = odoo.report()
    states = collections.Counter(state for _mid, state, _reason in report)
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
    missing = sum(1 for mid, _s, _r in report if received[mid] == 0)
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
        worker = odoo.start(WORKER.format(batch=1000))
        deadline = time.monotonic() + 120
        while len(smtp.messages) < 41 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = len(smtp.messages)
        time.sleep(2.5)
        odoo.run(WORKER.format(batch=1000))
        received = received_counts(smtp)
    report, states, twice = tally(odoo, received)
    queued = states.get("outgoing", 0)
    failed = [(mid, reason) for mid, state, reason in report if state == "exception"]
    unexplained = [
        mid for mid, reason in failed if "may have been delivered" not in reason
    ]
    sent_not_received = sum(
        1 for mid, state, _r in report if state == "sent" and received[mid] == 0
    )
    ok = (
        twice == 0
        and queued == 0
        and not unexplained
        and sent_not_received == 0
        and states.get("sent", 0) + len(failed) == count
    )
    print(
        f"worker killed after {killed_at} of {count} mails, committing every "
        f"{commit_every}: {states.get('sent', 0)} "
        f"sent, {len(failed)} failed as 'may have been delivered', {queued} still "
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
        first = odoo.start(WORKER.format(batch=1000))
        deadline = time.monotonic() + 60
        while not smtp.messages and time.monotonic() < deadline:
            time.sleep(0.01)
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


def main():
    db, addons = sys.argv[1], sys.argv[2]
    odoo = Odoo(db, addons)
    results = [
        two_workers(odoo),
        killed_worker(odoo, commit_every=50),
        killed_worker(odoo, commit_every=1),
        refused_commit(odoo),
        slow_run(odoo),
    ]
    print(f"queue safety: {sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
