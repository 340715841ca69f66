"""The queue's send loop on several SMTP sessions at once.

Core's ``mail.mail._send`` hands the mails of a batch over one after the
other on one session: against a server 20 ms away each mail waits for four
round trips, and a worker sends a dozen mails a second whatever else it
does. This loop owns that per-mail loop for the queue (the cron's run, with
its claim): it keeps up to the server's *Parallel Connections* sessions
busy (``tools/lanes.py``) while everything else stays in the worker's
thread and transaction: reading the mails, building and routing each
message (core's ``_prepare_outgoing_list``, ``build_email`` and
``_prepare_email_message``), and writing each outcome through
``_postprocess_sent_message``, where the queue defers, fails and logs.
Core's own ``_send`` still sends everything else (interactive sends, a
module overriding ``send_email`` or ``_send``, one connection).
"""

import contextlib
import logging

import psycopg2

from odoo import api, models

from ..tools import journal, lanes
from .ir_mail_server_lanes import overriding_modules

_logger = logging.getLogger(__name__)

# what mail.mail._send may be overridden by without the lanes skipping it
LANE_SAFE_SEND = ("mail", "mail_outbound")


class MailOutboundQueue(models.AbstractModel):
    _name = "mail.outbound.queue"
    _description = "Outgoing Mail Queue: Parallel Sessions"

    @api.model
    def _get_lane_width(self, mails, run, smtp_session):
        """How many sessions may send these mails at once (1: core's loop)."""
        if isinstance(smtp_session, lanes.LaneTicket):
            # the batch was given the run's sessions (ir.mail_server.connect)
            return run.lanes.width
        if (
            not run.is_queue
            or len(mails) < 2
            or smtp_session is None
            or not getattr(smtp_session, "mail_outbound_server_id", None)
        ):
            return 1
        server = self.env["ir.mail_server"].browse(smtp_session.mail_outbound_server_id)
        # the batch mark promised at most this many mails in hand-over
        width = min(run.batch_width or 1, server._get_lane_width())
        if width < 2:
            return 1
        blockers = server._get_lane_blockers() + self._get_send_overrides(mails)
        if blockers:
            _logger.debug("Mail queue: one session (%s)", ", ".join(blockers))
            return 1
        return width

    @api.model
    def _get_send_overrides(self, mails):
        return overriding_modules(mails, "_send", LANE_SAFE_SEND)[:1]

    @api.model
    def _send_in_lanes(
        self,
        mails,
        run,
        smtp_session,
        width,
        alias_domain_id=False,
        mail_server=False,
        post_send_callback=None,
    ):
        """Hand ``mails`` (one batch: one server, one From, one alias domain)
        to up to ``width`` sessions; commit every ``queue_commit_every``
        finished mails.

        Mails start in the batch's order and each finished one is recorded
        (``_record_handover``) before its lane takes the next: a worker that
        dies has at most ``width`` mails in hand-over. Each message's end of
        DATA is marked by its session just before it is sent; the
        settlement fails as "may have been delivered" only the unfinished
        mails so marked, and queues the others again.
        The sessions outlive the batch: the next batch to the same server
        sends on them (``ir.mail_server.connect`` gives it a ticket, not a
        new connection); the batch's mails are all back before it returns.

        ``smtp_session`` is core's session of the batch: it proves the
        server (or the one it failed over to) is reachable, and gives the
        From the messages are prepared with; the lanes have their own.
        """
        lane_set = self._get_lanes(mails, run, smtp_session, width)
        # each mail keeps its batch: a failover, the servers skipped before
        # it (logged with the first mail back), whatever batch comes next
        batch = run.batch
        order = list(mails.ids)
        every = run.commit_every
        position, prefetched_to = 0, 0
        follower_status, held = None, None
        with self._recording_on_error(mails, run, lane_set):
            while position < len(order):
                if position >= prefetched_to:
                    window = mails.browse(order[position : position + every])
                    follower_status = self._prefetch_window(window)
                    prefetched_to = position + len(window)
                if held is None:
                    # prepared while the lanes are busy: handed over as soon
                    # as one is free. Read with its window: a field the
                    # prefetch missed is read for all of them at once
                    job = self._prepare_lane_job(
                        window.browse(order[position]).with_prefetch(window.ids),
                        smtp_session,
                        alias_domain_id,
                        mail_server,
                        follower_status,
                    )
                    if job is None:
                        position += 1
                        run.since_commit += 1
                        continue
                    job.data.batch = batch
                    # the session marks each message's end of DATA first
                    job.before_end = journal.data_end_marker(
                        run.journal, run.claim, job.data.mail_id, job.data.partner_ids
                    )
                    held = job
                # a session takes another mail only once the mails finished
                # so far are recorded
                self._flush_handovers(run)
                if held is not None and lane_set.submit(held):
                    held = None
                    position += 1
                    continue
                if not lane_set.busy:
                    # no session left and none opens: the rest waits
                    self._defer_without_session(
                        mails.browse(order[position:]), run, lane_set.refused
                    )
                    break
                if self._take_results(mails, run, lane_set, post_send_callback):
                    # a commit empties the cache: read the next mails again
                    prefetched_to = position
            # every mail of the batch back before the next batch is marked:
            # the settlement fails at most ``width`` mails of the batch whose
            # mails are out, and no other batch has any out
            while lane_set.busy:
                self._take_results(mails, run, lane_set, post_send_callback)
            self._flush_handovers(run)
        return True

    @contextlib.contextmanager
    def _recording_on_error(self, mails, run, lane_set):
        """Whatever stops the run, what the lanes still hand over is
        recorded, so that the settlement knows what they delivered; a
        refused commit is settled at once."""
        try:
            yield
        except psycopg2.Error:
            drained = self._record_drained(mails, lane_set, run)
            self._settle_after_failed_commit(run, handing_over=False)
            # settled: the log says what the mails still out then met
            self._log_drained(run, drained)
            raise
        except BaseException:
            self._record_drained(mails, lane_set, run)
            raise

    @api.model
    def _get_lanes(self, mails, run, smtp_session, width):
        """The run's lanes to the batch's server, opened on first use."""
        lane_set = run.lanes
        if isinstance(smtp_session, lanes.LaneTicket):
            return lane_set
        server = (
            mails.env["ir.mail_server"]
            .sudo()
            .browse(smtp_session.mail_outbound_server_id)
        )
        smtp_from = getattr(smtp_session, "smtp_from", None)
        if lane_set is not None and (lane_set.key, lane_set.width) != (
            server.id,
            width,
        ):
            self._finish_lanes(mails, run, commit=False)
            lane_set = None
        if lane_set is None:
            run.handover_buffer = []
            lane_set = run.lanes = lanes.Lanes(
                width,
                connect=lambda: server._connect_lane(smtp_from),
                close=server._close_lane,
                key=server.id,
            )
        # the batch's own session is one of the server's N: a lane, or
        # ended now rather than left idle while the lanes send
        if lane_set.adopt(smtp_session):
            smtp_session.mail_outbound_adopted = True
            server._prepare_lane(smtp_session)
        else:
            server._close_session(smtp_session)
        return lane_set

    @api.model
    def _take_results(self, mails, run, lane_set, post_send_callback=None):
        """Finish the next mail a lane hands back, and any other already
        back; commit when it is time. True when it committed."""
        committed = False
        job = lane_set.wait()
        while job is not None:
            self._finish_lane_job(mails, run, job)
            if post_send_callback:
                post_send_callback([job.data.mail_id])
            run.since_commit += 1
            if run.since_commit >= run.commit_every:
                self._flush_handovers(run)
                self._commit_chunk(run)
                run.since_commit = 0
                committed = True
            job = lane_set.poll()
        return committed

    @api.model
    def _finish_lanes(self, mails, run, commit=True):
        """The run's last results, then the run's last commit."""
        lane_set = run.lanes
        if lane_set is None:
            return
        try:
            with self._recording_on_error(mails, run, lane_set):
                while lane_set.busy:
                    self._take_results(mails, run, lane_set)
                self._flush_handovers(run)
                if commit and run.since_commit:
                    self._commit_chunk(run)
                    run.since_commit = 0
        finally:
            if not lane_set.busy:
                lane_set.close()
                run.lanes = None
                run.handover_buffer = None

    @api.model
    def _stop_lanes(self, mails, run):
        """The run stopped: record what the lanes still hand over, close them."""
        lane_set = run.lanes
        if lane_set is None:
            return
        run.lanes = None
        try:
            self._record_drained(mails, lane_set, run)
        finally:
            lane_set.close()
            run.handover_buffer = None
