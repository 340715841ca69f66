"""A local SMTP sink for the demo: accepts every mail, prints one line each.

    python3 scripts/smtp_sink.py --port 2525 [--maildir DIR] [--quiet]
        [--reply-delay MS] [--max-connections N] [--count-file PATH]

Listens on 127.0.0.1 only: the tests' own server (tests/loopback_smtp.py).
Each received mail is printed as ``time  envelope-from -> N recipient(s)
From: ...  Subject: ...`` and, with --maildir, written there as an .eml file
to open in a mail client. --quiet only counts (the benchmark's sink).

--reply-delay waits MS milliseconds before each SMTP reply (a provider's
round trip); --max-connections greets the (N+1)th concurrent connection with
421 and closes it. --count-file: when stopped (SIGTERM, SIGINT), the sink
writes there, as JSON, the messages it took, their distinct Message-Ids, the
most sessions it had at once and the connections it refused: the
benchmark's proof that every mail arrived exactly once.
"""

import argparse
import json
import pathlib
import signal
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from loopback_smtp import LoopbackSmtp  # noqa: E402


def printer(maildir):
    def show(received):
        message = received["message"]
        print(
            f"{time.strftime('%H:%M:%S')}  {received['mail_from']} -> "
            f"{len(received['rcpt_tos'])} recipient(s)  From: {message['From']}  "
            f"Reply-To: {message['Reply-To']}  Subject: {message['Subject']}",
            flush=True,
        )
        if maildir:
            path = maildir / f"{int(time.time())}-{time.monotonic_ns()}.eml"
            path.write_bytes(received["data"])

    return show


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", type=pathlib.Path)
    parser.add_argument("--quiet", action="store_true", help="accept, print nothing")
    parser.add_argument(
        "--reply-delay", type=float, default=0, metavar="MS", help="before each reply"
    )
    parser.add_argument(
        "--max-connections", type=int, default=0, metavar="N", help="0: no limit"
    )
    parser.add_argument(
        "--count-file", type=pathlib.Path, help="counts written there when stopped"
    )
    parser.add_argument(
        "--pipelining",
        action="store_true",
        help="offer PIPELINING (RFC 2920) in the EHLO reply, as most providers do",
    )
    args = parser.parse_args()
    if args.reply_delay < 0 or args.max_connections < 0:
        parser.error("--reply-delay and --max-connections cannot be negative")
    if args.maildir:
        args.maildir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    with LoopbackSmtp(
        port=args.port,
        on_message=None if args.quiet else printer(args.maildir),
        record=not args.quiet,
        reply_delay=args.reply_delay / 1000,
        max_connections=args.max_connections,
        pipelining=args.pipelining,
    ) as sink:
        print(f"SMTP sink listening on 127.0.0.1:{args.port}", flush=True)
        while not stop.wait(0.5):
            pass
    if args.count_file:
        write_counts(sink, args.count_file)
    return 0


def write_counts(sink, path):
    counts = {
        "messages": sink.count,
        "distinct_message_ids": len(sink.message_ids - {""}),
        "peak_sessions": sink.peak_sessions,
        "refused_connections": sink.refused_connections,
    }
    # written whole then renamed: a reader never sees half a file
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(counts) + "\n")
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
