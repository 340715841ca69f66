"""Run inside `odoo shell`: queue N mails, drain the queue, print one JSON line.

Used by scripts/benchmark on a stock database and on one with mail_outbound,
against the same loopback SMTP sink. Not a test: it measures.

MO_BENCH_ROW says which settings the addon runs with: ``addon`` (defaults),
``addon_nopipe`` (``mail_outbound.smtp_pipelining`` = off),
``addon_1conn`` (the server's Parallel Connections = 1, where the field
exists), ``addon_commit1`` (``mail_outbound.queue_commit_every`` = 1). Each
run sets them all, since the rows share a database.
"""

# ruff: noqa: F821 - `env` is odoo shell's
import json
import os
import resource
import time

from odoo import sql_db

count = int(os.environ["MO_BENCH_MAILS"])
port = int(os.environ["MO_BENCH_SMTP_PORT"])
row = os.environ.get("MO_BENCH_ROW", "addon")
addon = bool(
    env["ir.module.module"].search_count(
        [("name", "=", "mail_outbound"), ("state", "=", "installed")]
    )
)
Servers = env["ir.mail_server"]
# the lead's field of issue #10; before it, one session is all there is
has_connections = "parallel_connections" in Servers._fields

# "setup" queues the mails, "send" drains the queue, in two processes: the
# peak memory measured is the queue's, not that of creating the mails
phase = os.environ.get("MO_BENCH_PHASE", "both")
if phase in ("setup", "both"):
    env["mail.mail"].search([]).unlink()  # an earlier round's leftovers
    Servers.search([]).unlink()
    server_vals = {
        "name": "Sink",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "sequence": 1,
    }
    if row == "addon_1conn" and has_connections:
        server_vals["parallel_connections"] = 1
    server = Servers.create(server_vals)
    params = env["ir.config_parameter"]
    params.set_param("mail.mail.queue.batch.size", count)
    if addon:
        # False removes the parameter: the addon's default
        params.set_param(
            "mail_outbound.queue_commit_every", "1" if row == "addon_commit1" else False
        )
        params.set_param(
            "mail_outbound.smtp_pipelining", "off" if row == "addon_nopipe" else False
        )
    env["mail.mail"].create(
        [
            {
                "email_from": (
                    f'"Sender {index % 7}" <sender{index % 7}@customer.example>'
                ),
                "email_to": f"rcpt{index}@destination.example",
                "subject": f"Benchmark {index}",
                "body_html": f"<p>Hello {index}</p>",
            }
            for index in range(count)
        ]
    )
    env.cr.commit()

    print("MO_BENCH_READY", flush=True)
if phase in ("send", "both"):
    server = Servers.search([], limit=1)
    params = env["ir.config_parameter"]
    queries = sql_db.sql_counter
    started = time.perf_counter()
    while env["mail.mail"].search_count([("state", "=", "outgoing")]):
        env["mail.mail"].process_email_queue()
        env.cr.commit()
    elapsed = time.perf_counter() - started
    queries = sql_db.sql_counter - queries
    sent = env["mail.mail"].search_count([("state", "=", "sent")])
    failed = env["mail.mail"].search_count([("state", "=", "exception")])
    print(
        "MO_BENCH "
        + json.dumps(
            {
                "db": env.cr.dbname,
                "row": row if addon else "stock",
                "delay_ms": int(os.environ.get("MO_BENCH_DELAY_MS", "0")),
                "parallel_connections": server.parallel_connections
                if has_connections
                else None,
                "commit_every": params.get_param("mail_outbound.queue_commit_every")
                if addon
                else None,
                "mails": count,
                "sent": sent,
                "failed": failed,
                "seconds": elapsed,
                "queries": queries,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                / 1024,
            }
        ),
        flush=True,
    )
