"""Run inside `odoo shell`: queue N mails, drain the queue, print one JSON line.

Used by scripts/benchmark on a stock database and on one with mail_outbound,
against the same loopback SMTP sink. Not a test: it measures.
"""

# ruff: noqa: F821 - `env` is odoo shell's
import json
import os
import resource
import time

from odoo import sql_db

count = int(os.environ["MO_BENCH_MAILS"])
port = int(os.environ["MO_BENCH_SMTP_PORT"])

env["mail.mail"].search([]).unlink()  # an earlier round's leftovers
env["ir.mail_server"].search([]).unlink()
env["ir.mail_server"].create(
    {"name": "Sink", "smtp_host": "127.0.0.1", "smtp_port": port, "sequence": 1}
)
env["ir.config_parameter"].set_param("mail.mail.queue.batch.size", count)
env["mail.mail"].create(
    [
        {
            "email_from": f'"Sender {index % 7}" <sender{index % 7}@customer.example>',
            "email_to": f"rcpt{index}@destination.example",
            "subject": f"Benchmark {index}",
            "body_html": f"<p>Hello {index}</p>",
        }
        for index in range(count)
    ]
)
env.cr.commit()

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
            "mails": count,
            "sent": sent,
            "failed": failed,
            "seconds": elapsed,
            "queries": queries,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    ),
    flush=True,
)
