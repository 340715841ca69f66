from odoo import fields, models


class MailOutboundBatch(models.Model):
    """A batch mark: the mails a queue run hands to a server now, in order.

    Written and committed on the run's side connection before the batch is
    sent (``mail.outbound.queue._mark_batch``), read and removed by the settlement of
    a dead or failed run (``mail.outbound.queue._settle_interrupted``). Rows live for
    one run; no user reads them.
    """

    _name = "mail.outbound.batch"
    _description = "Outgoing Mail Batch Mark"
    _log_access = False

    claim = fields.Char(required=True, index=True)
    mail_ids = fields.Json(required=True, help="mail.mail ids, in sending order")
    width = fields.Integer(
        default=1,
        help="SMTP sessions sending this batch at once: at most that many of "
        "its mails are handed over and not yet recorded.",
    )
    since = fields.Datetime(
        required=True, help="Written or renewed by the live run at this time."
    )


class MailOutboundHandover(models.Model):
    """A hand-over record: one mail a queue run finished, and whether a
    server accepted it (``mail.mail._record_handover``)."""

    _name = "mail.outbound.handover"
    _description = "Outgoing Mail Hand-over Record"
    _log_access = False

    claim = fields.Char(required=True, index=True)
    # not a many2one: no foreign key check from the side connection on a
    # mail row the queue's transaction holds
    mail_id = fields.Integer(required=True)
    delivered = fields.Boolean(required=True)
    partner_ids = fields.Json()
    failure_type = fields.Char()
    failure_reason = fields.Text()


class MailOutboundDataEnd(models.Model):
    """An end-of-DATA mark: one message of a mail was about to end its DATA,
    the only moment after which a server may deliver it.

    Written and committed synchronously by the session sending it, before
    the final "." goes out (``ir.mail_server._track_session``); read and
    removed by the settlement: a mail never finished is in doubt only with
    such a mark, and the messages marked before its last one were accepted.
    """

    _name = "mail.outbound.data.end"
    _description = "Outgoing Mail End-of-DATA Mark"
    _log_access = False

    claim = fields.Char(required=True, index=True)
    mail_id = fields.Integer(required=True)
    item = fields.Integer(
        required=True, help="The mail's message, in the order it was sent."
    )
    # not a many2one, as mail_id: written from a session's own connection
    partner_id = fields.Integer()
