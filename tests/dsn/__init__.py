"""Delivery reports written by a real Postfix 3.7.11 (Debian 12's package).

Captured by ``capture_postfix.py`` (its docstring says how to run it again):
Postfix relayed a mail to a loopback server that refused recipients the way
receiving servers do, and the report Postfix wrote back is kept as it was
received, in ``postfix-<case>.eml``:

``two-recipients``
    one report, two blocks: ``fullbox@`` 552 5.2.2, ``gone@`` 550 5.1.1;
``too-large``
    ``big@``: 552 5.3.4 at the end of DATA (message too large);
``policy``
    ``policy@``: 550 5.7.26 with an outsider's text in the reply;
``no-domain``
    ``nobody@``: 550 5.1.2.

:func:`report` puts the Message-ID and the addresses of a mail a test really
sent in place of the captured ones; nothing else is touched. No odoo import.
"""

import pathlib

HERE = pathlib.Path(__file__).parent
CASES = ("two-recipients", "too-large", "policy", "no-domain")
CAPTURED_BOUNCE = "bounce@company-a.example"
CAPTURED_RECIPIENTS = {
    "two-recipients": ("fullbox@dest.example", "gone@dest.example"),
    "too-large": ("big@dest.example",),
    "policy": ("policy@dest.example",),
    "no-domain": ("nobody@dest.example",),
}


def captured_message_id(case):
    return f"<capture-{case}@company-a.example>"


def report(case, message_id=None, bounce_to=None, recipients=()):
    """The captured report of ``case`` as bytes; with ``message_id``,
    ``bounce_to`` and ``recipients`` (in the order of
    ``CAPTURED_RECIPIENTS[case]``) put in place of the captured ones."""
    raw = (HERE / f"postfix-{case}.eml").read_bytes()
    pairs = [(captured_message_id(case), message_id), (CAPTURED_BOUNCE, bounce_to)]
    pairs += zip(CAPTURED_RECIPIENTS[case], recipients, strict=False)
    for old, new in pairs:
        if new:
            raw = raw.replace(old.encode(), new.encode())
    return raw
