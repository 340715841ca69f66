"""One WARNING line per deferral instead of core's ERROR traceback.

Core logs every failed send at ERROR with a traceback ("Mail delivery failed
via SMTP server 'None'"), then the queue defers the mail: an administrator
reads an error for what is a routine retry. The server layer flags a
temporary failure as it classifies it; core's ERROR records for that mail
are then dropped, and the queue logs its own WARNING line naming the mail,
the server, the reply and the next attempt (``mail.mail._defer_delivery``).

The filter is on core's logger only while a run lasts in some thread
(:func:`quieting_core_errors`, entered by ``process_email_queue`` and
``send``), not from import on: outside the addon's runs, core's log is
core's.
"""

import contextlib
import logging
import threading

_STATE = threading.local()

# core's messages for a failed send, its aborted batch and its aborted queue
_CORE_MESSAGES = (
    "failed sending mail",
    "Exception while processing mail",
    "Failed processing mail queue",
)


def quiet_core_error(quiet):
    """Drop (True) or keep (False) core's ERROR records for the current mail."""
    _STATE.quiet = quiet


class _DeferredFilter(logging.Filter):
    def filter(self, record):
        return not (
            getattr(_STATE, "quiet", False)
            and record.levelno >= logging.ERROR
            and isinstance(record.msg, str)
            and record.msg.startswith(_CORE_MESSAGES)
        )


@contextlib.contextmanager
def quieting_core_errors():
    """For the length of a run in this thread, drop core's ERROR records
    for a mail the server layer flagged (:func:`quiet_core_error`). Nested
    runs (``send`` within ``process_email_queue``) share the outermost's:
    core logs its aborted queue after ``send`` has returned."""
    depth = getattr(_STATE, "depth", 0)
    if depth:
        _STATE.depth = depth + 1
        try:
            yield
        finally:
            _STATE.depth -= 1
        return
    logger = logging.getLogger("odoo.addons.mail.models.mail_mail")
    record_filter = _DeferredFilter()
    _STATE.quiet, _STATE.depth = False, 1
    logger.addFilter(record_filter)
    try:
        yield
    finally:
        logger.removeFilter(record_filter)
        _STATE.quiet, _STATE.depth = False, 0
