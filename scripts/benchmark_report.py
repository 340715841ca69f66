"""Print the benchmark table: the queue per delay, size and row; the routing core.

python3 scripts/benchmark_report.py RESULTS.jsonl
python3 scripts/benchmark_report.py check 'MO_BENCH {...}' SINK_COUNTS.json

``check`` adds the sink's counts to one run's line and prints it; it prints a
FAIL line and exits 1 unless Odoo sent every mail and the sink received
exactly that many messages with that many distinct Message-Ids.
"""

import importlib.util
import json
import pathlib
import random
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_tools():
    spec = importlib.util.spec_from_file_location(
        "mail_outbound_tools",
        ROOT / "tools" / "__init__.py",
        submodule_search_locations=[str(ROOT / "tools")],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["mail_outbound_tools"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("mail_outbound_tools.routing")


def routing_micro(routing, server_counts=(1, 20, 200), decisions=2000):
    rng = random.Random(42)
    identity = routing.Identity(
        notification_email="notifications@example.com",
        bounce_email="bounce@example.com",
    )
    rows = []
    for count in server_counts:
        servers = [
            routing.Server(
                id=index,
                name=f"server {index}",
                priority=rng.randint(1, 20),
                from_filter=rng.choice(
                    ["", f"domain{index}.example", f"a{index}@x.example, y{index}.org"]
                ),
            )
            for index in range(count)
        ]
        froms = [
            f'"User {i}" <user{i}@domain{rng.randint(0, count * 2)}.example>'
            for i in range(decisions)
        ]
        started = time.perf_counter()
        for email_from in froms:
            routing.route(email_from, servers, identity)
        rows.append((count, (time.perf_counter() - started) / decisions * 1e6))
    return rows


ROWS = {
    "stock": "stock",
    "addon": "addon",
    "addon_nopipe": "addon, no PIPELINING",
    "addon_1conn": "addon, 1 connection",
    "addon_commit1": "addon, commit every mail",
}


def sink_problem(run, counts):
    """Why this run did not deliver every mail exactly once, or ``""``."""
    if run is None:
        return "the Odoo run printed no result"
    if counts is None:
        return "the sink wrote no counts"
    mails = run["mails"]
    received = (counts["messages"], counts["distinct_message_ids"])
    if run["sent"] != mails or received != (mails, mails):
        return (
            f"Odoo marked {run['sent']} of {mails} mails sent; the sink received "
            f"{received[0]} messages with {received[1]} distinct Message-Ids "
            f"(expected {mails} and {mails})"
        )
    return ""


def check(line, counts_path):
    run = json.loads(line.split(" ", 1)[1]) if line.startswith("MO_BENCH ") else None
    path = pathlib.Path(counts_path)
    counts = json.loads(path.read_text()) if path.exists() else None
    problem = sink_problem(run, counts)
    if run is not None:
        print("MO_BENCH " + json.dumps({**run, "sink": counts, "sink_ok": not problem}))
    if problem:
        where = (
            f"{run['delay_ms']} ms, {run['mails']} mails, {ROWS[run['row']]}"
            if run
            else "a run"
        )
        print(f"\n!!! FAIL ({where}): {problem} !!!\n", file=sys.stderr, flush=True)
        return 1
    return 0


def row_of(run):
    # lines of benchmarks before issue #10 name their database only
    return run.get("row") or ("addon" if run["db"].endswith("addon") else "stock")


def report(results):
    print()
    print(
        "Queue: process_email_queue against a loopback SMTP sink one DELAY (a "
        "round trip) away, offering PIPELINING (median of runs)"
    )
    print(
        f"{'delay':>6} {'mails':>6} {'row':<25} {'runs':>4} {'mails/s':>8} "
        f"{'x stock':>7} {'queries/mail':>12} {'peak MB':>8} {'conns':>5} "
        f"{'sent':>6} {'failed':>6} {'sink':>5}"
    )
    groups = {}
    for run in results:
        key = (run.get("delay_ms", 0), run["mails"])
        groups.setdefault(key, {}).setdefault(row_of(run), []).append(run)
    failed = False
    no_field = False
    for (delay, size), rows in sorted(groups.items()):
        stock = rows.get("stock")
        stock_rate = (
            statistics.median(r["mails"] / r["seconds"] for r in stock)
            if stock
            else None
        )
        for row in sorted(rows, key=list(ROWS).index):
            runs = rows[row]
            rate = statistics.median(r["mails"] / r["seconds"] for r in runs)
            queries = statistics.median(r["queries"] / r["mails"] for r in runs)
            rss = statistics.median(r["peak_rss_mb"] for r in runs)
            ratio = f"{rate / stock_rate:.2f}" if stock_rate else "-"
            sessions = [(r.get("sink") or {}).get("peak_sessions") for r in runs]
            conns = max(sessions) if None not in sessions else "-"
            ok = all(r.get("sink_ok", True) for r in runs)
            failed = failed or not ok
            no_field = no_field or (
                row == "addon_1conn" and runs[0].get("parallel_connections") is None
            )
            sent = min(r["sent"] for r in runs)
            failures = max(r["failed"] for r in runs)
            print(
                f"{delay:>4}ms {size:>6} {ROWS[row]:<25} {len(runs):>4} {rate:>8.1f} "
                f"{ratio:>7} {queries:>12.2f} {rss:>8.1f} {conns:>5} "
                f"{sent:>6} {failures:>6} {'ok' if ok else 'FAIL':>5}"
            )
    print(
        "conns: the most SMTP sessions the sink had at once; sink: it received "
        "every mail exactly once (count and distinct Message-Ids)"
    )
    if no_field:
        print(
            "addon, 1 connection: this addon has no Parallel Connections field, "
            "so that row ran with the defaults (one session)"
        )
    print()
    print("Routing core alone (tools/routing.py)")
    for count, micro in routing_micro(load_tools()):
        print(f"{count:>5} servers: {micro:8.1f} µs per decision")
    if failed:
        print("\n!!! FAIL: a run above did not deliver every mail exactly once !!!")
    return 1 if failed else 0


def main():
    if sys.argv[1] == "check":
        return check(sys.argv[2], sys.argv[3])
    results = [
        json.loads(line.split(" ", 1)[1])
        for line in pathlib.Path(sys.argv[1]).read_text().splitlines()
        if line.startswith("MO_BENCH ")
    ]
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
