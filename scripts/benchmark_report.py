"""Print the benchmark table: queue throughput (addon / stock) and the routing core.

python3 scripts/benchmark_report.py RESULTS.jsonl
"""

import importlib.util
import json
import pathlib
import random
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
    print("Queue: process_email_queue against a loopback SMTP sink")
    print(
        f"{'mails':>7} {'database':<10} {'mails/s':>9} {'queries/mail':>13} "
        f"{'peak RSS MB':>12} {'sent':>7} {'failed':>7}"
    )
    by_size = {}
    for row in results:
        kind = "addon" if row["db"].endswith("addon") else "stock"
        by_size.setdefault(row["mails"], {})[kind] = row
        print(
            f"{row['mails']:>7} {kind:<10} {row['mails'] / row['seconds']:>9.1f} "
            f"{row['queries'] / row['mails']:>13.2f} {row['peak_rss_mb']:>12.1f} "
            f"{row['sent']:>7} {row['failed']:>7}"
        )
    for size, kinds in sorted(by_size.items()):
        if {"addon", "stock"} <= set(kinds):
            addon, stock = kinds["addon"], kinds["stock"]
            ratio = stock["seconds"] / addon["seconds"]
            extra = (addon["queries"] - stock["queries"]) / size
            print(
                f"{size:>7} ratio addon/stock throughput {ratio:.2f}, "
                f"{extra:+.2f} queries per mail, "
                f"memory {addon['peak_rss_mb'] / stock['peak_rss_mb']:.2f}x"
            )
    print()
    print("Routing core alone (tools/routing.py)")
    for count, micro in routing_micro(load_tools()):
        print(f"{count:>5} servers: {micro:8.1f} µs per decision")


if __name__ == "__main__":
    main()
