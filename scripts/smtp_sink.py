"""A local SMTP sink for the demo: accepts every mail, prints one line each.

    python3 scripts/smtp_sink.py --port 2525 [--maildir DIR]

Listens on 127.0.0.1 only. Each received mail is printed as
``time  envelope-from -> N recipient(s)  From: ...  Subject: ...`` and, with
--maildir, written there as an .eml file to open in a mail client.
"""

import argparse
import asyncio
import email
import email.policy
import pathlib
import signal
import sys
import time

from aiosmtpd.controller import Controller


class PrintingHandler:
    def __init__(self, maildir, quiet=False):
        self.maildir = maildir
        self.quiet = quiet
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        if self.quiet:
            return "250 2.0.0 Ok: queued"
        message = email.message_from_bytes(
            envelope.content, policy=email.policy.default
        )
        print(
            f"{time.strftime('%H:%M:%S')}  {envelope.mail_from} -> "
            f"{len(envelope.rcpt_tos)} recipient(s)  From: {message['From']}  "
            f"Reply-To: {message['Reply-To']}  Subject: {message['Subject']}",
            flush=True,
        )
        if self.maildir:
            path = self.maildir / f"{int(time.time())}-{self.count}.eml"
            path.write_bytes(envelope.content)
        return "250 2.0.0 Ok: queued"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", type=pathlib.Path)
    parser.add_argument("--quiet", action="store_true", help="accept, print nothing")
    args = parser.parse_args()
    if args.maildir:
        args.maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(
        PrintingHandler(args.maildir, args.quiet), hostname="127.0.0.1", port=args.port
    )
    controller.start()
    print(f"SMTP sink listening on 127.0.0.1:{args.port}", flush=True)
    loop = asyncio.new_event_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, loop.stop)
    try:
        loop.run_forever()
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
