"""The state of one send run, in typed objects the engine passes along.

``mail.mail.send`` makes one :class:`QueueRun` and hands it, in the context
key ``mail_outbound_run``, to the places core calls back (``connect``,
``send_email``, ``_split_by_mail_configuration``, ``_postprocess_sent_message``);
everything the addon calls itself takes the run as an argument.

- :class:`QueueRun`: what lasts the whole run. How it commits and where
  its journal writes (``tools/journal.py``), the claim of a queue run and
  its commit cadence, the parallel sessions shared by its batches, the log
  lines waiting for the next commit, and what was decided for each mail.
- :class:`Batch`: what one batch met (one server, one From, one alias
  domain: core's unit of ``connect``). The attempts of the mail being
  handed over, a connection failure, a failover, the servers skipped before
  it, and whether the session was lost. A batch sent on parallel sessions
  is still being finished when the next one starts: each of its mails
  keeps a reference to it.

    >>> run = QueueRun(claim="c1", commit_every=50)
    >>> batch = run.start_batch()
    >>> batch.failover = Failover(from_server_id=1, to_server_id=2)
    >>> run.is_queue, run.batch is batch, run.start_batch() is batch
    (True, True, False)
"""

from dataclasses import dataclass, field

from .journal import IN_TRANSACTION, CommitStrategy, Journal


@dataclass(frozen=True)
class Failover:
    """The batch's server could not be reached: another one carried it
    (or, when every one failed, was the last one tried). ``decision``: the
    batch's From on that server (``routing.failover_route``), decided from
    ``smtp_from``, the From of the batch's session for its own server."""

    from_server_id: int
    to_server_id: int
    decision: object = None
    smtp_from: str = ""


@dataclass(frozen=True)
class Decided:
    """What the run decided for a mail before it went out (the routing
    decision, the company it was decided for, the attempts made before)."""

    decision: object
    company_id: int
    attempts_before: int


@dataclass
class Batch:
    """What one batch met, mail by mail."""

    # the attempts of the mail being handed over (one per message of it)
    attempts: list = field(default_factory=list)
    connect_failure: object = None  # delivery.Failure
    failover: Failover | None = None
    # failed connections to servers the batch then failed over from: one
    # log line each, written with the batch's first mail back
    skipped: list = field(default_factory=list)
    # core's loop: the mail being handed over, and whether the server
    # dropped the session at an earlier mail (then it was never tried)
    current_mail_id: int | None = None
    # the partner of each of its messages, in order (None: an address)
    current_partner_ids: list = field(default_factory=list)
    session_lost: bool = False

    def record(self, attempt):
        self.attempts.append(attempt)

    def take(self):
        attempts, self.attempts = self.attempts, []
        return attempts

    def take_skipped(self):
        skipped, self.skipped = self.skipped, []
        return skipped


@dataclass
class QueueRun:
    """One ``mail.mail.send()``: the queue's run (``claim`` set) or any
    other send, which core's loop runs mail by mail."""

    strategy: CommitStrategy = IN_TRANSACTION
    journal: Journal | None = None  # opened with the first batch mark
    claim: str | None = None
    claim_renewed: object = None  # when the claim's date was last set
    # mails committed at once (0: not the queue, nothing journalled)
    commit_every: int = 0
    since_commit: int = 0  # mails finished since the last commit
    # sessions the batch marked last may use at once, as its mark says (set
    # before core connects it, which starts its Batch)
    batch_width: int = 1
    # the mails of the batch about to connect (set with batch_width): a
    # failover routes them for the server it falls back to, and counts them
    # against its limits
    batch_mail_ids: tuple = ()
    lanes: object = None  # tools.lanes.Lanes, across batches
    # hand-over records held back until a session takes another mail (a
    # list), or written at once (None)
    handover_buffer: list | None = None
    logs: list = field(default_factory=list)  # log values for the next INSERT
    decisions: dict = field(default_factory=dict)  # mail id -> Decided
    # the run's limits (tools.quota.Quotas; None: no limit applies) and
    # each limited mail's messages (tools.quota.FanOut)
    quotas: object = None
    fanouts: dict = field(default_factory=dict)
    batch: Batch = field(default_factory=Batch)

    @property
    def is_queue(self):
        """The cron's run: claimed mails, batch marks, hand-over records."""
        return bool(self.claim)

    def start_batch(self):
        """One connect per batch: what the previous batch met is over."""
        self.batch = Batch()
        return self.batch
