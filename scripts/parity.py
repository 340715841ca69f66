"""Parity with stock Odoo on real traffic, drained by a real cron worker.

Run by scripts/test against its throwaway PostgreSQL (PGHOST, PGUSER set):

    python3 scripts/parity.py STOCK_DB ADDON_DB ADDONS_PATH
    python3 scripts/parity.py --prepare STOCK_DB ADDON_DB ADDONS_PATH

STOCK_DB has ``mail`` and ``mass_mailing`` installed and nothing else of
ours; ADDON_DB, unless it has mail_outbound already, is made from it
(``CREATE DATABASE ... TEMPLATE``, the filestore copied) and gets
``mail_outbound`` (``--prepare``: only that). On each, the same traffic
(``tests/traffic.py``: chatter posts to partner followers and the replies
Odoo relays, templates with ``partner_to`` and an attachment, a mail with
``email_to`` + ``email_cc`` + partners, the mass-mode composer, a mailing)
is queued and committed in an ``odoo shell``; then a real ``odoo-bin``
server with one cron thread drains the queue (``mail`` 's scheduler cron,
triggered as ``ir.cron._trigger`` does) into a loopback SMTP server. The
addon runs twice: Parallel Connections 4 (the default), then 1, on a fresh
batch queued on the same database.

Proven for each run, against what the SMTP server really received and the
records Odoo wrote:

- nothing is sent while the traffic is queued (only the cron sends);
- every (Message-ID, envelope recipient) pair the queued mails call for is
  received exactly once: none twice, none missing, none unexpected;
- the mails end ``sent``, the auto-deleted ones are gone, the others kept;
- every chatter notification by email ends ``sent``;
- every mailing trace ends ``sent``, the mailing's statistics add up;
- the server's log has no ERROR, CRITICAL or Traceback line;

and that each addon run is identical to stock: the same pairs (once the
batch's tag is taken out), mail states, notification states, mailing
statistics. Prints one line per check and a closing
"parity: N passed, N failed" line; exits 0 only when all pass.
"""

import collections
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import psycopg2

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from loopback_smtp import LoopbackSmtp  # noqa: E402

MAILING_SIZE = 300
DRAIN_SECONDS = 180
DATA_DIR = os.path.join(os.environ.get("PGHOST", "/tmp"), "odoo-data")

QUEUE = """
import json, sys
sys.path.insert(0, {tests!r})
from traffic import RealTraffic

server = env["ir.mail_server"].search([("name", "=", "Parity sink")])
values = {{"smtp_host": "127.0.0.1", "smtp_port": {port}, "sequence": 1}}
if "parallel_connections" in server._fields:
    values["parallel_connections"] = {width}
if server:
    server.write(values)
else:
    server.create(dict(values, name="Parity sink"))
env.cr.commit()
traffic = RealTraffic(env, tag={tag!r}, mailing_size={mailing_size})
traffic.queue_all()
report = traffic.report()
env.cr.commit()
print("QUEUED " + json.dumps(report), flush=True)
"""

RESULT = """
import collections, json
queued = json.loads({queued!r})
mails = env["mail.mail"].browse(queued["mail_ids"]).exists()
auto = set(queued["auto_delete_ids"])
notifications = env["mail.notification"].search([
    ("mail_message_id", "in", queued["message_ids"]),
    ("notification_type", "=", "email"),
])
mailings = (
    env["mailing.mailing"].browse(queued["mailing_ids"])
    if "mailing.mailing" in env else []
)
stat_fields = ["expected", "scheduled", "sent", "delivered", "canceled",
               "failed", "bounced", "process", "pending"]
print("RESULT " + json.dumps({{
    "states": sorted(collections.Counter(
        ("auto_delete" if m.id in auto else "kept") + " " + m.state for m in mails
    ).items()),
    "auto_deleted": len(auto - set(mails.ids)),
    "kept_deleted": len(set(queued["mail_ids"]) - auto - set(mails.ids)),
    "failures": [[m.subject, m.failure_reason or ""]
                 for m in mails if m.state != "sent"][:5],
    "notifications": sorted(
        [n.mail_message_id.subject, n.res_partner_id.email, n.notification_status,
         n.failure_type or ""]
        for n in notifications
    ),
    "traces": sorted(collections.Counter(
        mailings.mailing_trace_ids.mapped("trace_status") if mailings else []
    ).items()),
    "statistics": [
        {{f: m[f] for f in stat_fields if f in m._fields}} for m in mailings
    ],
}}), flush=True)
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Odoo:
    """``odoo shell`` and ``odoo-bin`` server processes on one database."""

    def __init__(self, db, addons):
        self.db = db
        self.options = [
            "-d",
            db,
            "--addons-path",
            addons,
            "--db_host",
            os.environ["PGHOST"],
            "--db_user",
            os.environ["PGUSER"],
            "--data-dir",
            DATA_DIR,
        ]

    def shell(self, code, marker):
        command = [sys.executable, "-m", "odoo", "shell", *self.options]
        result = subprocess.run(
            [*command, "--no-http", "--log-level=error"],
            input=code,
            capture_output=True,
            text=True,
            timeout=600,
        )
        for line in result.stdout.splitlines():
            if line.startswith(marker + " "):
                return json.loads(line[len(marker) + 1 :])
        raise RuntimeError(f"odoo shell on {self.db}: {result.stderr[-3000:]}")

    def install(self, modules):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "odoo",
                *self.options,
                "-i",
                modules,
                "--without-demo=all",
                "--stop-after-init",
                "--log-level=warn",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
            raise SystemExit(f"installing {modules} on {self.db} failed")

    def server(self, logfile):
        """A real server: HTTP on a free port, one cron thread."""
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "odoo",
                "server",
                *self.options,
                f"--http-port={free_port()}",
                "--max-cron-threads=1",
                f"--logfile={logfile}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def connect(db):
    return psycopg2.connect(
        dbname=db, host=os.environ["PGHOST"], user=os.environ["PGUSER"]
    )


def copy_database(stock, addon):
    """ADDON_DB as a copy of STOCK_DB, filestore included."""
    conn = connect("postgres")
    conn.autocommit = True
    with conn.cursor() as cr:
        cr.execute(f'DROP DATABASE IF EXISTS "{addon}"')
        cr.execute(f'CREATE DATABASE "{addon}" TEMPLATE "{stock}"')
    conn.close()
    source = os.path.join(DATA_DIR, "filestore", stock)
    target = os.path.join(DATA_DIR, "filestore", addon)
    shutil.rmtree(target, ignore_errors=True)
    if os.path.isdir(source):
        shutil.copytree(source, target)


def trigger_mail_cron(cr):
    """What ``env.ref('mail.ir_cron_mail_scheduler_action')._trigger()``
    writes: a trigger due now (the NOTIFY is sent by ``drain``)."""
    cr.execute(
        "SELECT res_id FROM ir_model_data "
        "WHERE module = 'mail' AND name = 'ir_cron_mail_scheduler_action'"
    )
    cron_id = cr.fetchone()[0]
    cr.execute(
        "INSERT INTO ir_cron_trigger (cron_id, call_at) "
        "VALUES (%s, now() AT TIME ZONE 'UTC')",
        (cron_id,),
    )
    return cron_id


def drain(odoo, logfile):
    """Start a server, let its cron worker send the queue, stop it. Returns
    the seconds it took and whether the queue was empty at the end."""
    conn = connect(odoo.db)
    conn.autocommit = True
    # the cron threads LISTEN on the "postgres" database (ir.cron._notifydb)
    postgres = connect("postgres")
    postgres.autocommit = True
    with conn.cursor() as cr:
        cron_id = trigger_mail_cron(cr)
    started = time.monotonic()
    server = odoo.server(logfile)
    drained = False
    try:
        deadline = started + DRAIN_SECONDS
        while time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.5)
            with postgres.cursor() as cr:
                # wakes the cron thread as _trigger's NOTIFY does, until its
                # registry is loaded and it sees the job due; it runs what
                # is due (the cron's own triggers), nothing else
                cr.execute("SELECT pg_notify('cron_trigger', %s)", (odoo.db,))
            with conn.cursor() as cr:
                cr.execute("SELECT count(*) FROM mail_mail WHERE state = 'outgoing'")
                if cr.fetchone()[0]:
                    continue
                # and the cron job is over: its row is not locked
                cr.execute("BEGIN")
                try:
                    cr.execute(
                        "SELECT id FROM ir_cron WHERE id = %s FOR UPDATE NOWAIT",
                        (cron_id,),
                    )
                    drained = True
                except psycopg2.errors.LockNotAvailable:
                    pass
                cr.execute("ROLLBACK")
                if drained:
                    break
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        conn.close()
        postgres.close()
    return time.monotonic() - started, drained


def log_problems(logfile):
    problems = []
    with open(logfile, errors="replace") as log:
        for line in log:
            if re.search(r" (ERROR|CRITICAL) |Traceback", line):
                problems.append(line.rstrip())
    return problems


def cron_runs(logfile):
    with open(logfile, errors="replace") as log:
        return sum(
            1
            for line in log
            if "Mail: Email Queue Manager' (" in line
            and line.rstrip().endswith("starting")
        )


def run(odoo, label, tag, width):
    """Queue the traffic, drain it with a real server, gather the facts."""
    slug = re.sub(r"\W+", "_", label).strip("_")
    logfile = os.path.join(os.environ["PGHOST"], f"parity_{slug}.log")
    if os.path.exists(logfile):
        os.unlink(logfile)
    with LoopbackSmtp() as smtp:
        queued = odoo.shell(
            QUEUE.format(
                tests=str(ROOT / "tests"),
                port=smtp.port,
                width=width,
                tag=tag,
                mailing_size=MAILING_SIZE,
            ),
            "QUEUED",
        )
        inline = len(smtp.messages)
        seconds, drained = drain(odoo, logfile)
        copies = [
            (message["message"]["Message-Id"], rcpt.lower())
            for message in smtp.messages
            for rcpt in message["rcpt_tos"]
        ]
    # the copies to this batch's recipients; others would be mails left
    # queued in the database before (stock has none: judged as a difference)
    received = collections.Counter(
        pair for pair in copies if pair[1].startswith(f"{tag}.")
    )
    result = odoo.shell(RESULT.format(queued=json.dumps(queued)), "RESULT")
    return {
        "label": label,
        "tag": tag,
        "queued": queued,
        "inline": inline,
        "seconds": seconds,
        "drained": drained,
        "received": received,
        "others": len(copies) - sum(received.values()),
        "result": result,
        "log": log_problems(logfile),
        "cron_runs": cron_runs(logfile),
    }


def untagged(value, tag):
    """A subject or address of a batch, its tag taken out, to compare
    batches (and databases: Message-IDs differ from one to the other)."""
    return value.replace(tag, "TAG") if isinstance(value, str) else value


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, text):
        print(f"{text} -> {'ok' if ok else 'FAILED'}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1


def check_run(checks, run_, stock=None):
    label, result = run_["label"], run_["result"]
    expected = collections.Counter(
        (mid, address) for mid, _subject, address in run_["queued"]["pairs"]
    )
    received = run_["received"]
    checks.check(
        run_["inline"] == 0 and bool(expected),
        f"{label}: {len(run_['queued']['mail_ids'])} mails queued, "
        f"{sum(expected.values())} pairs expected, {run_['inline']} sent while "
        "queueing",
    )
    twice = sum(1 for pair, n in received.items() if n > 1)
    missing = sum(1 for pair in expected if not received[pair])
    unexpected = sum(1 for pair in received if not expected[pair])
    checks.check(
        run_["drained"] and twice == 0 and missing == 0 and unexpected == 0,
        f"{label}: drained by a cron worker in {run_['seconds']:.0f} s "
        f"({run_['cron_runs']} runs of the mail queue cron)"
        f"{'' if run_['drained'] else ' (NOT DRAINED)'}: "
        f"{sum(received.values())} copies received, {twice} pairs twice, "
        f"{missing} missing, {unexpected} unexpected"
        + (f" ({run_['others']} copies of older mails)" if run_["others"] else ""),
    )
    states = dict(result["states"])
    kept = len(run_["queued"]["mail_ids"]) - len(run_["queued"]["auto_delete_ids"])
    checks.check(
        states == ({"kept sent": kept} if kept else {})
        and result["auto_deleted"] == len(run_["queued"]["auto_delete_ids"])
        and result["kept_deleted"] == 0,
        f"{label}: mails {states or 'none left'}, "
        f"{result['auto_deleted']} of {len(run_['queued']['auto_delete_ids'])} "
        f"auto-delete mails removed, {result['kept_deleted']} others removed"
        + (f"; e.g. {result['failures'][0]}" if result["failures"] else ""),
    )
    notifications = collections.Counter(row[2] for row in result["notifications"])
    checks.check(
        bool(notifications) and set(notifications) == {"sent"},
        f"{label}: chatter notifications {dict(notifications)}",
    )
    if run_["queued"]["mailing_ids"]:
        traces = dict(result["traces"])
        stats = result["statistics"][0]
        checks.check(
            traces == {"sent": MAILING_SIZE}
            and stats.get("sent") == MAILING_SIZE
            and stats.get("failed") == 0,
            f"{label}: mailing traces {traces}, statistics {stats}",
        )
    checks.check(
        not run_["log"],
        f"{label}: {len(run_['log'])} ERROR/CRITICAL/Traceback lines in the "
        "server log" + (f", first: {run_['log'][0][:300]}" if run_["log"] else ""),
    )
    if stock is None:
        return

    def pairs(run_, counter):
        # Message-ID -> subject, to compare pairs across databases
        subjects = {mid: subject for mid, subject, _ in run_["queued"]["pairs"]}
        return collections.Counter(
            {
                (
                    untagged(subjects.get(mid, mid), run_["tag"]),
                    untagged(address, run_["tag"]),
                ): n
                for (mid, address), n in counter.items()
            }
        )

    def expected_of(run_):
        return collections.Counter(
            (mid, address) for mid, _subject, address in run_["queued"]["pairs"]
        )

    def facts(run_):
        result = run_["result"]
        return {
            "expected": pairs(run_, expected_of(run_)),
            "received": pairs(run_, run_["received"]),
            "others": run_["others"],
            "states": result["states"],
            "auto_deleted": result["auto_deleted"],
            "notifications": [
                [untagged(value, run_["tag"]) for value in row]
                for row in result["notifications"]
            ],
            "traces": result["traces"],
            "statistics": result["statistics"],
        }

    mine, theirs = facts(run_), facts(stock)
    different = [key for key in mine if mine[key] != theirs[key]]
    checks.check(
        not different,
        f"{label}: identical to stock"
        + (f" (NOT: {', '.join(different)})" if different else ""),
    )


def prepare(stock, addon):
    """ADDON_DB as a copy of STOCK_DB with mail_outbound, unless it has
    mail_outbound already (scripts/test makes it before running mail_outbound's
    tests on it, then this scenario)."""
    started = time.monotonic()
    conn = connect("postgres")
    with conn.cursor() as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (addon.db,))
        exists = bool(cr.fetchone())
    conn.close()
    if exists:
        conn = connect(addon.db)
        with conn.cursor() as cr:
            cr.execute(
                "SELECT state FROM ir_module_module WHERE name = 'mail_outbound'"
            )
            state = (cr.fetchone() or [None])[0]
        conn.close()
        if state == "installed":
            print(f"  ({addon.db}: has mail_outbound, reused)", flush=True)
            return
    copy_database(stock.db, addon.db)
    addon.install("mail_outbound")
    print(
        f"  ({addon.db}: a copy of {stock.db} with mail_outbound, "
        f"{time.monotonic() - started:.0f} s)",
        flush=True,
    )


def main():
    args = sys.argv[1:]
    prepare_only = args[:1] == ["--prepare"]
    if prepare_only:
        args = args[1:]
    stock_db, addon_db, addons = args
    started = time.monotonic()
    stock, addon = Odoo(stock_db, addons), Odoo(addon_db, addons)
    prepare(stock, addon)
    if prepare_only:
        return 0
    checks = Checks()
    reference = run(stock, "stock Odoo", "parity", width=None)
    check_run(checks, reference)
    for width, tag in ((4, "parity"), (1, "parity1")):
        check_run(
            checks,
            run(addon, f"mail_outbound, {width} session(s)", tag, width=width),
            stock=reference,
        )
    print(f"  (parity: {time.monotonic() - started:.0f} s)", flush=True)
    print(f"parity: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
