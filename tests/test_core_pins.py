"""Core's methods the queue engine follows, pinned to the source it was
written against (Odoo 18.0).

The queue's parallel sessions build each mail with core's blocks and write
its outcome as core's ``mail.mail._send`` does
(``models/mail_outbound_queue_prepare.py``, ``_results.py``); the queue
claims before core's ``process_email_queue``, regroups core's
``_split_by_mail_configuration``, and hands core's
``_postprocess_sent_message`` what ``_send`` would. An Odoo update that
changes one of these methods may change what the engine must do: this test
fails then, naming the method, so that someone reads core's new lines and
the engine's, and only then updates the pin.
"""

import hashlib
import inspect

from odoo.tests import tagged

from odoo.addons.base.models.ir_mail_server import IrMailServer as CoreIrMailServer
from odoo.addons.mail.models.mail_mail import MailMail as CoreMailMail

from .common import MailOutboundCase

PINS = {
    (CoreMailMail, "process_email_queue"): (
        "69ee892dd04a01628a345c780067b15ba4f9011769c1184b20b8ae6775c80e0e"
    ),
    (CoreMailMail, "send"): (
        "72c3925dc77010b3349d188ee63f555b8c654ba57d99afd601730ab5f2d220bd"
    ),
    (CoreMailMail, "_send"): (
        "d60032e53f8501165ddebc3018fd12997da7a8b4df1ce147b7c8b54c08432579"
    ),
    (CoreMailMail, "_postprocess_sent_message"): (
        "262e55cf39b49a463e0436c9add9fa069f761a25d06349ae7e9f6e4eae973816"
    ),
    (CoreMailMail, "_split_by_mail_configuration"): (
        "1791fbd2866e4181829a7e475d32713189114c1442f9dbafcc53461a23bf75d7"
    ),
    (CoreIrMailServer, "connect"): (
        "922d5ebdbe722b3c16f80f439accc5c4374d1db4b6326f7ad5d59b336be387ea"
    ),
    (CoreIrMailServer, "send_email"): (
        "d3fb6e3dbc594a1095805a82ae37770cadd888abc2b8f6c14d467f82b051d1b4"
    ),
    (CoreIrMailServer, "_prepare_email_message"): (
        "8570e8b1519a7f9eb1131fe1d310b588441f0e27559a2e975e38e20c2669f7c5"
    ),
}


@tagged("post_install", "-at_install", "mail_outbound")
class TestCorePins(MailOutboundCase):
    def test_core_methods_the_engine_follows_are_unchanged(self):
        changed = []
        for (klass, name), pinned in PINS.items():
            source = inspect.getsource(getattr(klass, name))
            digest = hashlib.sha256(source.encode()).hexdigest()
            if digest != pinned:
                changed.append(f"{klass.__module__}.{klass.__name__}.{name}: {digest}")
        self.assertFalse(
            changed,
            "Core changed methods the queue engine follows; compare them with "
            "models/mail_outbound_queue*.py, then update the pins:\n"
            + "\n".join(changed),
        )
