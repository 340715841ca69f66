"""The mail Odoo really queues, made through Odoo's own APIs.

Every test that queued hand-made ``email_to`` mails missed what Odoo sends
most: chatter notifications to partner followers, templates with
``partner_to`` and attachments, the mass-mode composer, replies relayed to
followers, mailings. ``RealTraffic`` queues each of those shapes, on a stock
database as well as on one with mail_outbound (it uses no mail_outbound
model or field), and says which (Message-ID, recipient) pairs Odoo is
expected to deliver, read from the queued ``mail.mail`` records the way
core's ``mail.mail._prepare_outgoing_list`` reads them.

From an Odoo test::

    from .traffic import RealTraffic

    traffic = RealTraffic(self.env, tag="t1", mailing_size=20)
    traffic.queue_all()
    expected = traffic.expected_pairs()  # before the queue runs
    self.env["mail.mail"].process_email_queue()

From ``odoo shell`` (scripts/parity.py)::

    exec(open(".../tests/traffic.py").read())  # or import it
    traffic = RealTraffic(env, tag="stock")
    traffic.queue_all()
    env.cr.commit()
    print(json.dumps(traffic.report()))

Recipients get unique, deterministic addresses,
``{tag}.{shape}.{n}@dest.example``, so that what an SMTP server received
can be matched to what was queued. Nothing here sends: every shape is
queued (``force_send=False``, or ``mail_notify_force_send=False``, or a
force-send limit of 0 while a mailing is generated), so that only the mail
queue's cron delivers it.
"""

import base64

from odoo.tools import email_normalize_all

DOMAIN = "dest.example"
SENDER = '"Traffic" <traffic@example.com>'


def outgoing_pairs(mails):
    """(Message-ID, subject, recipient) of each SMTP transaction core makes
    for ``mails``: one message to ``email_to`` and ``email_cc`` together,
    then one per partner in ``recipient_ids``, each delivered to the
    normalized addresses (``send_validated_to``). Read before the queue
    runs: auto-deleted mails are gone afterwards."""
    pairs = []
    for mail in mails:
        shared = []
        if mail.email_to:
            shared = email_normalize_all(mail.email_to)
        if mail.email_cc:
            shared += email_normalize_all(mail.email_cc)
        pairs += [(mail.message_id, mail.subject, address) for address in shared]
        for partner in mail.recipient_ids:
            pairs += [
                (mail.message_id, mail.subject, address)
                for address in email_normalize_all(partner.email)
            ]
    return pairs


class RealTraffic:
    """Queues Odoo's real traffic shapes; one method per shape.

    ``tag`` prefixes every address and subject (one batch per tag);
    ``mailing_size``: contacts of the mailing (when mass_mailing is
    installed); ``composer_size``: partners of the mass-mode composer.
    """

    followers = 3

    def __init__(self, env, tag="t1", mailing_size=300, composer_size=50):
        self.env = env
        self.tag = tag
        self.mailing_size = mailing_size
        self.composer_size = composer_size
        self.env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM mail_mail")
        self.first_mail_id = self.env.cr.fetchone()[0] + 1
        # the chatter messages whose followers are notified by email
        self.messages = env["mail.message"]
        self.mailings = env["mailing.mailing"] if "mailing.mailing" in env else None

    # -- helpers -------------------------------------------------------------
    def address(self, shape, n):
        return f"{self.tag}.{shape}.{n}@{DOMAIN}"

    def partners(self, shape, count):
        return self.env["res.partner"].create(
            [
                {"name": f"{self.tag} {shape} {n}", "email": self.address(shape, n)}
                for n in range(count)
            ]
        )

    def thread(self, shape, followers):
        """A res.partner record as the thread, followed by ``followers`` only
        (its creator is not subscribed)."""
        record = (
            self.env["res.partner"]
            .with_context(mail_create_nosubscribe=True)
            .create({"name": f"{self.tag} {shape} thread", "is_company": True})
        )
        record.message_subscribe(partner_ids=followers.ids)
        return record

    # -- shapes ------------------------------------------------------------------
    def post(self, n=0, followers=None, **values):
        """A chatter comment on a record with ``followers`` (3 by default)
        partner followers; ``values``: more arguments of ``message_post``."""
        followers = self.partners(f"post{n}", followers or self.followers)
        record = self.thread(f"post{n}", followers)
        message = record.with_context(mail_notify_force_send=False).message_post(
            **{
                "body": f"<p>{self.tag} post {n}</p>",
                "subject": f"[{self.tag}] post {n}",
                "message_type": "comment",
                "subtype_xmlid": "mail.mt_comment",
                "force_send": False,
                **values,
            }
        )
        self.messages |= message
        return message

    def reply(self, message):
        """A follower's emailed reply to ``message``, relayed by Odoo to the
        other followers (``message_process`` of a raw RFC 822 mail)."""
        record = self.env[message.model].browse(message.res_id)
        author = record.message_partner_ids.sorted("id")[0]
        raw = (
            f"From: {author.name} <{author.email}>\r\n"
            f"To: {SENDER}\r\n"
            f"Subject: Re: {message.subject}\r\n"
            f"Message-ID: <{self.tag}.reply.{message.id}@{DOMAIN}>\r\n"
            f"In-Reply-To: {message.message_id}\r\n"
            f"References: {message.message_id}\r\n"
            "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            f"{self.tag}: thank you, see my answer.\r\n"
        )
        thread_id = (
            self.env["mail.thread"]
            .with_context(mail_notify_force_send=False)
            .message_process(None, raw)
        )
        assert thread_id == record.id, (thread_id, record.id)
        reply = self.env["mail.message"].search(
            [("message_id", "=", f"<{self.tag}.reply.{message.id}@{DOMAIN}>")]
        )
        self.messages |= reply
        return reply

    def partner_template(self, shape, subject, partner_to, auto_delete, **values):
        """A ``mail.template`` on res.partner from ``SENDER``, to ``partner_to``."""
        return self.env["mail.template"].create(
            {
                "name": f"{self.tag} {shape}",
                "model_id": self.env["ir.model"]._get_id("res.partner"),
                "subject": subject,
                "body_html": '<p>Dear <t t-out="object.name"/></p>',
                "email_from": SENDER,
                "partner_to": partner_to,
                "auto_delete": auto_delete,
                **values,
            }
        )

    def template(self, auto_delete, partners=2):
        """A template on res.partner with ``partner_to`` (``partners``
        partners) and an attachment, sent with
        ``send_mail(force_send=False)``."""
        shape = f"template{int(auto_delete)}"
        to = self.partners(shape, partners)
        record = self.partners(f"{shape}record", 1)
        attachment = self.env["ir.attachment"].create(
            {
                "name": f"{self.tag}-{shape}.txt",
                "datas": base64.b64encode(f"{self.tag} {shape}\n".encode()),
                "mimetype": "text/plain",
            }
        )
        template = self.partner_template(
            shape,
            f"[{self.tag}] {shape} {{{{ object.name }}}}",
            ",".join(str(pid) for pid in to.ids),
            auto_delete,
            attachment_ids=[(6, 0, attachment.ids)],
        )
        mail_id = template.send_mail(record.id, force_send=False)
        return self.env["mail.mail"].browse(mail_id)

    def contacts(self, count, auto_delete=False):
        """``count`` mails of one template whose ``partner_to`` is the
        record's contacts: records with 1, 2 or 3 contacts in turn (a
        quotation sent to a customer's contacts)."""
        records = self.env["res.partner"].create(
            [
                {
                    "name": f"{self.tag} contacts {n}",
                    "is_company": True,
                    "child_ids": [
                        (
                            0,
                            0,
                            {
                                "name": f"{self.tag} contacts {n}.{k}",
                                "email": self.address(f"contacts{n}", k),
                            },
                        )
                        for k in range(1 + n % 3)
                    ],
                }
                for n in range(count)
            ]
        )
        template = self.partner_template(
            "contacts",
            f"[{self.tag}] to {{{{ object.name }}}}",
            "{{ object.child_ids.ids }}",
            auto_delete,
        )
        mail_ids = [
            template.send_mail(record.id, force_send=False) for record in records
        ]
        return self.env["mail.mail"].browse(mail_ids)

    def direct(self):
        """One mail with ``email_to``, ``email_cc`` and ``recipient_ids``
        together, created directly, as some modules do."""
        partners = self.partners("direct", 2)
        return self.env["mail.mail"].create(
            {
                "email_from": SENDER,
                "email_to": self.address("directto", 0),
                "email_cc": self.address("directcc", 0),
                "recipient_ids": [(6, 0, partners.ids)],
                "subject": f"[{self.tag}] direct",
                "body_html": f"<p>{self.tag} direct</p>",
                "auto_delete": False,
            }
        )

    def composer(self):
        """The mass-mode composer on ``composer_size`` partners (the "send
        quotations in batch" shape), queued."""
        partners = self.partners("composer", self.composer_size)
        composer = (
            self.env["mail.compose.message"]
            .with_context(active_model="res.partner", active_ids=partners.ids)
            .create(
                {
                    "composition_mode": "mass_mail",
                    "model": "res.partner",
                    "res_ids": partners.ids,
                    "email_from": SENDER,
                    "subject": f"[{self.tag}] quotation {{{{ object.name }}}}",
                    "body": '<p>Dear <t t-out="object.name"/></p>',
                }
            )
        )
        composer.force_send = False
        composer.action_send_mail()
        return self.env["mail.mail"].search(
            [("model", "=", "res.partner"), ("res_id", "in", partners.ids)]
        )

    def mailing(self):
        """A mailing to a list of ``mailing_size`` contacts, with a tracked
        link, launched as the Send button does and generated as the mailing
        cron does (no mail sent: the force-send limit is 0 meanwhile)."""
        if self.mailings is None or not self.mailing_size:
            return None
        mailing_list = self.env["mailing.list"].create({"name": f"{self.tag} list"})
        self.env["mailing.contact"].create(
            [
                {
                    "name": f"{self.tag} contact {n}",
                    "email": self.address("mailing", n),
                    "list_ids": [(4, mailing_list.id)],
                }
                for n in range(self.mailing_size)
            ]
        )
        mailing = self.env["mailing.mailing"].create(
            {
                "subject": f"[{self.tag}] mailing",
                "email_from": SENDER,
                "mailing_model_id": self.env["ir.model"]._get_id("mailing.list"),
                "contact_list_ids": [(4, mailing_list.id)],
                # a closed local port: link.tracker reads the page's title
                "body_html": (
                    f"<p>{self.tag} news: "
                    '<a href="http://127.0.0.1:9/offer">our offer</a></p>'
                ),
            }
        )
        mailing.action_launch()
        params = self.env["ir.config_parameter"].sudo()
        limit = params.get_param("mail.mail.force.send.limit")
        params.set_param("mail.mail.force.send.limit", "0")
        try:
            # mailing.mailing._process_mass_mailing_queue, for this one
            mailing.state = "sending"
            mailing.action_send_mail()
        finally:
            params.set_param("mail.mail.force.send.limit", limit)
        self.mailings |= mailing
        return mailing

    def queue_all(self, scale=1):
        """Every shape: ``2 * scale`` chatter posts, each replied to by a
        follower, the two templates, the direct mail, the composer, the
        mailing. Returns the mails queued."""
        for n in range(2 * scale):
            self.reply(self.post(n))
        for _ in range(scale):
            self.template(auto_delete=True)
            self.template(auto_delete=False)
            self.direct()
            self.composer()
            self.mailing()
        return self.mails()

    # -- what Odoo is expected to deliver -------------------------------------------
    def mails(self):
        """The mails queued since this object was made."""
        return self.env["mail.mail"].search(
            [("id", ">=", self.first_mail_id), ("state", "=", "outgoing")]
        )

    def expected_pairs(self):
        """(Message-ID, subject, recipient) of every copy Odoo should deliver;
        call it after queueing, before the queue runs."""
        return outgoing_pairs(self.mails())

    def report(self):
        """What a script needs after the queue ran, JSON-serialisable: the
        expected pairs, the mails by auto-delete, the notified messages and
        the mailings."""
        mails = self.mails()
        return {
            "tag": self.tag,
            "pairs": self.expected_pairs(),
            "mail_ids": mails.ids,
            "auto_delete_ids": mails.filtered("auto_delete").ids,
            "message_ids": self.messages.ids,
            "mailing_ids": self.mailings.ids if self.mailings is not None else [],
        }
