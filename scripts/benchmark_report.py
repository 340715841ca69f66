"""Print the benchmark table: queue throughput (addon / stock) and the routing core.

python3 scripts/benchmark_report.py RESULTS.jsonl
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


def main():
    results = [
        json.loads(line.split(" ", 1)[1])
        for line in pathlib.Path(sys.argv[1]).read_text().splitlines()
        if line.startswith("MO_BENCH ")
    ]
    print()
    print("Queue: process_email_queue against a loopback SMTP sink (median of runs)")
    print(
        f"{'mails':>7} {'database':<8} {'runs':>5} {'mails/s':>9} "
        f"{'queries/mail':>13} {'peak RSS MB':>12} {'sent':>6} {'failed':>7}"
    )
    by_size = {}
    for row in results:
        kind = "addon" if row["db"].endswith("addon") else "stock"
        by_size.setdefault(row["mails"], {}).setdefault(kind, []).append(row)
    for size, kinds in sorted(by_size.items()):
        medians = {}
        for kind, rows in sorted(kinds.items(), reverse=True):
            rate = statistics.median(r["mails"] / r["seconds"] for r in rows)
            queries = statistics.median(r["queries"] / r["mails"] for r in rows)
            rss = statistics.median(r["peak_rss_mb"] for r in rows)
            medians[kind] = (rate, queries, rss)
            print(
                f"{size:>7} {kind:<8} {len(rows):>5} {rate:>9.1f} {queries:>13.2f} "
                f"{rss:>12.1f} {min(r['sent'] for r in rows):>6} "
                f"{max(r['failed'] for r in rows):>7}"
            )
        if {"addon", "stock"} <= set(medians):
            (a_rate, a_q, a_rss), (s_rate, s_q, s_rss) = (
                medians["addon"],
                medians["stock"],
            )
            print(
                f"{size:>7} addon/stock: throughput {a_rate / s_rate:.2f}, "
                f"{a_q - s_q:+.2f} queries per mail, memory {a_rss / s_rss:.2f}x"
            )
    print()
    print("Routing core alone (tools/routing.py)")
    for count, micro in routing_micro(load_tools()):
        print(f"{count:>5} servers: {micro:8.1f} µs per decision")


if __name__ == "__main__":
    main()
