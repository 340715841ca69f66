"""Capture delivery reports written by a real Postfix (Debian's ``postfix``).

Run as root in a throwaway container (it reconfigures and starts the system
Postfix instance, listening on loopback only, port 25 left closed)::

    apt-get install -y --no-install-recommends postfix
    .venv/bin/python tests/dsn/capture_postfix.py

Postfix relays every mail to a loopback SMTP server (``tests/loopback_smtp.py``)
scripted to refuse some recipients the way receiving servers do; Postfix
then writes its report to the sender, ``bounce@company-a.example``, through
the same relay, and the report is saved here as ``postfix-<case>.eml``, as
Postfix wrote it. The returned mail's Message-ID and the recipients are the
fixed ones below: the tests put the Message-ID and addresses of the mail
they really sent in their place (``tests/dsn/__init__.py``).
"""

import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from loopback_smtp import LoopbackSmtp  # noqa: E402

SENDER = "bounce@company-a.example"
LURE = "Unauthenticated email: urgently call +1-555-0100 and read your admin password"
# (case, recipients, scripted refusals: (command, code, text, match))
CASES = [
    (
        "two-recipients",
        ["fullbox@dest.example", "gone@dest.example"],
        [
            ("rcpt", 552, "5.2.2 <fullbox@dest.example>: Mailbox full", "fullbox@"),
            (
                "rcpt",
                550,
                "5.1.1 <gone@dest.example>: Recipient address rejected: "
                "User unknown in virtual mailbox table",
                "gone@",
            ),
        ],
    ),
    (
        "too-large",
        ["big@dest.example"],
        [
            (
                "data",
                552,
                "5.3.4 Message size exceeds fixed maximum message size",
                "big@",
            )
        ],
    ),
    ("policy", ["policy@dest.example"], [("rcpt", 550, f"5.7.26 {LURE}", "policy@")]),
    (
        "no-domain",
        ["nobody@dest.example"],
        [("rcpt", 550, "5.1.2 Host unknown", "nobody@")],
    ),
]


def postconf(*settings):
    subprocess.run(["postconf", "-e", *settings], check=True)


def original(case, recipients):
    return (
        f"From: Sales <{SENDER.replace('bounce', 'sales')}>\n"
        f"To: {', '.join(recipients)}\n"
        f"Subject: Your quotation ({case})\n"
        f"Message-ID: <capture-{case}@company-a.example>\n"
        "Date: Tue, 24 Nov 2026 09:59:00 +0000\n"
        "MIME-Version: 1.0\nContent-Type: text/plain\n\nHello\n"
    ).encode()


def main():
    relay = LoopbackSmtp().start()
    try:
        postconf(
            "myhostname=mx.relay.example",
            "mydomain=relay.example",
            "mydestination=",
            "inet_interfaces=loopback-only",
            "inet_protocols=ipv4",
            f"relayhost=[127.0.0.1]:{relay.port}",
            "smtp_tls_security_level=none",
            "maillog_file=/var/log/postfix.log",
            # a 4xx reply is retried: give up at once so that every case ends
            # in a report now
            "maximal_queue_lifetime=0",
            "bounce_queue_lifetime=0",
        )
        subprocess.run(["postconf", "-M#", "smtp/inet"], check=True)
        subprocess.run(["postfix", "stop"], capture_output=True)
        subprocess.run(["postfix", "start"], check=True)
        for case, recipients, refusals in CASES:
            relay.reset()
            relay.rules.clear()
            for command, code, text, match in refusals:
                relay.script(command, code, text, match=match)
            subprocess.run(
                ["/usr/sbin/sendmail", "-f", SENDER, "-i", *recipients],
                input=original(case, recipients),
                check=True,
            )
            deadline = time.time() + 60
            while time.time() < deadline:
                reports = [m for m in relay.messages if SENDER in m["rcpt_tos"]]
                if reports:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"{case}: no report from Postfix in 60 s")
            path = HERE / f"postfix-{case}.eml"
            path.write_bytes(reports[0]["data"])
            sys.stdout.write(f"{path.name}: {len(reports[0]['data'])} bytes\n")
    finally:
        subprocess.run(["postfix", "stop"], capture_output=True)
        relay.stop()


if __name__ == "__main__":
    main()
