"""A local SMTP sink for the demo: accepts every mail, prints one line each.

    python3 scripts/smtp_sink.py --port 2525 [--maildir DIR] [--quiet]

Listens on 127.0.0.1 only: the tests' own server (tests/loopback_smtp.py).
Each received mail is printed as ``time  envelope-from -> N recipient(s)
From: ...  Subject: ...`` and, with --maildir, written there as an .eml file
to open in a mail client. --quiet only counts (the benchmark's sink).
"""

import argparse
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
    args = parser.parse_args()
    if args.maildir:
        args.maildir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    with LoopbackSmtp(
        port=args.port,
        on_message=None if args.quiet else printer(args.maildir),
        record=not args.quiet,
    ):
        print(f"SMTP sink listening on 127.0.0.1:{args.port}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
