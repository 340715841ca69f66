"""Shared fixtures for mail_outbound's Odoo tests.

``MailOutboundCase`` gives every test class a company on the alias domain
``example.com`` (bounce, catchall, notifications), no other outgoing server,
and helpers to create servers. ``MailOutboundSmtpCase`` adds real SMTP
servers on loopback (``tests/loopback_smtp.py``), one per server record, with
sending re-enabled: Odoo skips SMTP entirely while tests run, which would
make every send test pass without sending anything.

Other modules reuse them::

    from odoo.addons.mail_outbound.tests.common import MailOutboundSmtpCase

    class TestMine(MailOutboundSmtpCase):
        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.smtp, cls.server = cls.start_smtp_server("Mine", "example.com")
"""

import collections
import contextlib
import logging
import sys
import threading
import traceback
from unittest.mock import patch

from odoo import SUPERUSER_ID, api, modules, sql_db
from odoo.tests import TransactionCase
from odoo.tools import config

from odoo.addons.base.models import ir_mail_server as base_ir_mail_server

from ..models import ir_config_parameter
from ..tools import dns_check
from .loopback_dns import LoopbackDns, zone_txt
from .loopback_smtp import LoopbackSmtp
from .traffic import RealTraffic, outgoing_pairs


def mail_values(count=1, **values):
    """The tests' one mail factory, as values: ``count`` queued mails to
    rcpt<N>@destination.example, from bob@example.com unless ``values`` say
    otherwise."""
    return [
        {
            "email_from": "bob@example.com",
            "email_to": f"rcpt{index}@destination.example",
            "subject": f"mail_outbound test {index}",
            "body_html": "<p>Hello</p>",
            "auto_delete": False,
            **values,
        }
        for index in range(count)
    ]


class ParameterWarnings(list):
    """The WARNING and ERROR lines logged under ``odoo`` while a
    :func:`parameter_warnings` block ran."""

    def naming(self, key):
        """The lines that name ``key``: the loader's warning about it."""
        return [line for line in self if key in line]

    def queue_failures(self):
        """Core's "Failed processing mail queue": a run that stopped."""
        return [line for line in self if "Failed processing mail queue" in line]


@contextlib.contextmanager
def parameter_warnings():
    """``with parameter_warnings() as lines:`` collects what is logged at
    WARNING and above, from any thread (the queue runs in a worker), with the
    loader's memory of values already warned about emptied: each bad value
    is warned about again, once."""
    lines = ParameterWarnings()

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("odoo")
    logger.addHandler(handler)
    try:
        with patch.object(ir_config_parameter, "_WARNED", set()):
            yield lines
    finally:
        logger.removeHandler(handler)


def capture_delivery_logs(env):
    """A reader of the ``mail.delivery.log`` lines written from now on.

    Returns ``logs(mails=None)``: those lines in the order they were
    written, of ``mails`` only (records or ids) when given. ``env`` is an
    environment, or a function returning one: a committing test reads on a
    fresh connection each time (``MailOutboundCommitCase.committed_env``)::

        logs = capture_delivery_logs(self.env)
        ...run the queue...
        self.assertEqual(logs(mail).mapped("outcome"), ["deferred"])
    """
    get_env = (lambda: env) if isinstance(env, api.Environment) else env
    first = get_env()["mail.delivery.log"].search([], order="id desc", limit=1).id

    def logs(mails=None):
        domain = [("id", ">", first or 0)]
        if mails is not None:
            ids = mails if isinstance(mails, list | tuple) else mails.ids
            domain.append(("mail_id", "in", list(ids)))
        return get_env()["mail.delivery.log"].search(domain, order="id")

    return logs


def received_pairs(smtp):
    """(Message-ID, recipient) of every copy ``smtp`` took, sorted."""
    return sorted(
        (message["message"]["Message-Id"], rcpt.lower())
        for message in smtp.messages
        for rcpt in message["rcpt_tos"]
    )


def mail_pairs(mails, addresses=None):
    """(Message-ID, recipient) of the copies core delivers for ``mails``
    (``traffic.outgoing_pairs``), to ``addresses`` only when given (emails
    or partners), sorted."""
    pairs = [(message_id, address) for message_id, _s, address in outgoing_pairs(mails)]
    if addresses is not None:
        if not isinstance(addresses, list | tuple | set):
            addresses = addresses.mapped("email")
        keep = {address.lower() for address in addresses}
        pairs = [pair for pair in pairs if pair[1] in keep]
    return sorted(pairs)


def patch_smtp_for_tests(case):
    """Let Odoo talk SMTP while tests run, to loopback servers only.

    Odoo skips SMTP while tests run (``modules.module.current_test``); it is
    switched back on for the class ``case``, never towards the odoo-bin SMTP
    server of the machine running the tests, with a short timeout.
    """
    case.startClassPatcher(patch.object(modules.module, "current_test", False))
    case.startClassPatcher(patch.dict(config.options, {"smtp_server": ""}))
    case.startClassPatcher(patch.object(base_ir_mail_server, "SMTP_TIMEOUT", 5))


class TrafficAssertions:
    """What the receiving server got, compared with what a person sees.

    Mixed into both test bases: ``assertDeliveredOnce`` compares the
    (Message-ID, recipient) pairs a loopback server received with the
    expected ones; ``assertChatter`` reads the chatter's side, the status
    of each email notification of the mails' messages.
    """

    def assertDeliveredOnce(self, smtp, expected):
        """Every expected (Message-ID, recipient) pair, each exactly once."""
        received = received_pairs(smtp)
        counts = collections.Counter(received)
        self.assertEqual(
            [pair for pair, count in counts.items() if count > 1], [], "received twice"
        )
        self.assertEqual(received, sorted(expected))

    def assertChatter(self, mails, sent=(), exception=(), ready=(), reason=None):
        """The email notifications of ``mails``' messages, as the chatter
        shows them: exactly ``sent``, ``exception`` and ``ready`` (partners,
        or their emails), each notification in one of them. Those in
        exception say why (``reason`` in it, when given); the others carry
        no failure. A template's mail has no notification: ``assertChatter
        (mail)`` then checks that none was made."""

        def emails(partners):
            if isinstance(partners, list | tuple | set):
                return [email.lower() for email in partners]
            return [email.lower() for email in partners.mapped("email")]

        notifications = (
            mails.env["mail.notification"]
            .sudo()
            .search(
                [
                    ("mail_message_id", "in", mails.mail_message_id.ids),
                    ("notification_type", "=", "email"),
                ]
            )
        )
        self.assertEqual(
            sorted(
                (note.res_partner_id.email.lower(), note.notification_status)
                for note in notifications
            ),
            sorted(
                [(email, "sent") for email in emails(sent)]
                + [(email, "exception") for email in emails(exception)]
                + [(email, "ready") for email in emails(ready)]
            ),
        )
        for note in notifications:
            if note.notification_status == "exception":
                self.assertTrue(note.failure_type, "a failed notification says why")
                self.assertTrue(note.failure_reason, "a failed notification says why")
                if reason:
                    self.assertIn(reason, note.failure_reason)
            else:
                self.assertFalse(note.failure_type, note.failure_reason)
                self.assertFalse(note.failure_reason)


class MailOutboundCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # routing reads every server: start from none, whatever the database has
        cls.env["ir.mail_server"].sudo().search([]).active = False
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail.default.from_filter", False
        )
        cls.alias_domain = cls.env["mail.alias.domain"].create(
            {
                "name": "example.com",
                "bounce_alias": "bounce",
                "catchall_alias": "catchall",
                "default_from": "notifications",
                "sequence": 0,
            }
        )
        cls.company = cls.env.company
        cls.company.alias_domain_id = cls.alias_domain
        cls.company.name = "Example Company"

    @classmethod
    def create_server(cls, name, from_filter=False, sequence=10, **values):
        return cls.env["ir.mail_server"].create(
            {
                "name": name,
                "from_filter": from_filter,
                "sequence": sequence,
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                **values,
            }
        )

    @classmethod
    def create_company_with_domain(cls, name, domain):
        """A company on its own alias domain (bounce, catchall, notifications)."""
        alias_domain = cls.env["mail.alias.domain"].create(
            {
                "name": domain,
                "bounce_alias": "bounce",
                "catchall_alias": "catchall",
                "default_from": "notifications",
            }
        )
        return cls.env["res.company"].create(
            {"name": name, "alias_domain_id": alias_domain.id}
        )

    @classmethod
    def set_enforce_fixed_filter(cls, enforce):
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.enforce_fixed_server_filter", str(bool(enforce))
        )


class MailOutboundSmtpCase(TrafficAssertions, MailOutboundCase):
    """Real loopback SMTP servers, and Odoo allowed to talk to them.

    Odoo skips SMTP while tests run (``modules.module.current_test``); here
    it is switched back on for the class, so that every send reaches a real
    server and the tests assert on what that server received.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        patch_smtp_for_tests(cls)
        cls.loopback_servers = []

    @classmethod
    def start_smtp_server(
        cls,
        name,
        from_filter=False,
        sequence=10,
        tls="none",
        certificate=None,
        users=None,
        auth_required=False,
        tokens=None,
        **values,
    ):
        """A loopback SMTP server and the ir.mail_server record using it.

        With TLS the record connects to ``localhost``, the name the test
        certificates are issued for.
        """
        smtp = LoopbackSmtp(
            tls=tls,
            certificate=certificate,
            users=users,
            auth_required=auth_required,
            tokens=tokens,
        ).start()
        cls.addClassCleanup(smtp.stop)
        cls.loopback_servers.append(smtp)
        if tls != "none":
            values.setdefault("smtp_host", "localhost")
            values.setdefault("smtp_encryption", tls)
        server = cls.create_server(
            name, from_filter, sequence, smtp_port=smtp.port, **values
        )
        return smtp, server

    def setUp(self):
        super().setUp()
        for smtp in self.loopback_servers:
            smtp.reset()
        self._traffic_count = 0

    # -- Odoo's real traffic (tests/traffic.py) ------------------------------
    def new_traffic(self, **sizes):
        """A :class:`RealTraffic` with a tag of its own: its recipients'
        addresses, ``t<N>.<shape>.<n>@dest.example``, are the test's only."""
        self._traffic_count += 1
        return RealTraffic(self.env, tag=f"t{self._traffic_count}", **sizes)

    def queue_notification(self, partners=3, **post_values):
        """A chatter comment to a record's ``partners`` partner followers,
        queued (``force_send=False``), kept once sent (``mail_auto_delete``
        false, unless ``post_values`` say otherwise): the mail Odoo sends
        most. Returns its ``mail.mail``: one mail, with one SMTP message per
        partner; ``recipient_ids`` are in the order core sends to them
        (``t<N>.post0.0@``, ``.1@``, ...)."""
        post_values.setdefault("mail_auto_delete", False)
        traffic = self.new_traffic()
        traffic.followers = partners
        message = traffic.post(**post_values)
        # read back as core's _send reads them after the queue's commits
        # (flush and invalidate): recipient_ids in res.partner's order, the
        # order of the SMTP messages; the cache holds them in the order of
        # a set of ids
        self.env.invalidate_all()
        mails = self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        self.assertEqual(len(mails), 1)
        self.assertEqual(len(mails.recipient_ids), partners)
        self.assertEqual(mails.auto_delete, post_values["mail_auto_delete"], "as asked")
        return mails

    def queue_notifications(self, count, partners=1, **post_values):
        """``count`` chatter notifications (:meth:`queue_notification`), each
        on its own record; their mails, in the order they were queued."""
        mails = self.env["mail.mail"]
        for _index in range(count):
            mails |= self.queue_notification(partners, **post_values)
        return mails

    def queue_template(self, partners=2, auto_delete=False):
        """A ``mail.template`` with ``partner_to`` (``partners`` partners)
        and an attachment, sent with ``send_mail(force_send=False)``.
        Returns its ``mail.mail``: one SMTP message per partner
        (``t<N>.template<0|1>.<n>@``), no chatter notification."""
        mail = self.new_traffic().template(auto_delete, partners)
        self.env.invalidate_all()  # see queue_notification
        self.assertEqual(len(mail.recipient_ids), partners)
        self.assertFalse(mail.email_to)
        return mail

    def create_mails(self, count=1, **values):
        """``count`` queued mails (see :func:`mail_values`)."""
        return self.env["mail.mail"].create(mail_values(count, **values))

    def queue_mail(self, email_from, **values):
        """Create one mail and send it through the real queue."""
        values.setdefault("email_to", "customer@destination.example")
        mail = self.create_mails(email_from=email_from, **values)
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        return mail

    def post_and_send(self, record, partners, subject="mail_outbound test"):
        """Post on ``record``'s chatter to ``partners`` and run the real queue:
        the path of a customer notification. Returns the mail.message."""
        message = record.message_post(
            body="<p>Hello</p>",
            subject=subject,
            partner_ids=partners.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            # through the queue, and kept, to compare it with what was received
            force_send=False,
            mail_auto_delete=False,
        )
        mails = (
            self.env["mail.mail"].sudo().search([("mail_message_id", "=", message.id)])
        )
        mails.auto_delete = False
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        return message

    def receive(self, raw):
        """``raw`` through Odoo's real mail gateway, as the fetchmail cron does."""
        return self.env["mail.thread"].sudo().message_process(False, raw)

    def assertAddress(self, header, name, address):
        """``header`` (a parsed From/Reply-To) holds exactly ``name <address>``.

        Compared parsed, not as text: quoting and RFC 2047 encoding of the
        display name are the serialiser's business.
        """
        self.assertEqual(
            [(a.display_name, a.addr_spec) for a in header.addresses],
            [(name, address)],
        )

    @contextlib.contextmanager
    def real_traffic(self, tag, **sizes):
        """Odoo's real traffic (``tests/traffic.py``), queued through Odoo's
        own APIs; yields the :class:`RealTraffic` with ``expected``, the
        (Message-ID, recipient) pairs core is to deliver, read before the
        queue runs. On leaving, the notifications of the chatter messages
        must all be ``sent`` (as stock Odoo leaves them), but those the test
        puts in ``traffic.refused`` (a recipient the server refused)."""
        traffic = RealTraffic(self.env, tag=tag, **sizes)
        traffic.queue_all()
        traffic.expected = sorted(
            (message_id, address)
            for message_id, _subject, address in traffic.expected_pairs()
        )
        self.assertTrue(traffic.expected, "the traffic queued nothing")
        traffic.refused = self.env["mail.notification"]
        yield traffic
        notifications = self.env["mail.notification"].search(
            [
                ("mail_message_id", "in", traffic.messages.ids),
                ("notification_type", "=", "email"),
            ]
        )
        self.assertTrue(notifications)
        self.assertEqual(
            set((notifications - traffic.refused).mapped("notification_status")),
            {"sent"},
        )

    def received(self, smtp, count=1):
        """The messages ``smtp`` received, checking how many there are."""
        self.assertEqual(
            len(smtp.messages),
            count,
            f"expected {count} message(s), got "
            f"{[m['message']['From'] for m in smtp.messages]}",
        )
        return smtp.messages


class TwoServersCase(MailOutboundSmtpCase):
    """A primary and a secondary loopback server (priorities 1 and 2), the
    delivery log's lines of before the class aged by two days (the limits
    count today's sends: what the database sent before, a demo or a
    benchmark, is not the tests'), and ``self.new_logs()``, the log lines a
    test wrote."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp_primary, cls.primary = cls.start_smtp_server("Primary", sequence=1)
        cls.smtp_secondary, cls.secondary = cls.start_smtp_server(
            "Secondary", sequence=2
        )
        cls.env.flush_all()
        cls.env.cr.execute(
            "UPDATE mail_delivery_log SET create_date = create_date - interval '2 days'"
        )

    def setUp(self):
        super().setUp()
        self.new_logs = capture_delivery_logs(self.env)


class MailOutboundDnsCase(MailOutboundSmtpCase):
    """A real DNS server on loopback answering for the test's domains.

    ``mail_outbound.dns_nameserver`` points the addon's resolver at it;
    ``publish`` replaces the zone it serves.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns_server = LoopbackDns().start()
        cls.addClassCleanup(cls.dns_server.stop)
        cls.env["ir.config_parameter"].sudo().set_param(
            "mail_outbound.dns_nameserver", cls.dns_server.nameserver
        )

    def publish(self, *lines, txt=()):
        """Serve ``lines`` (zone-file syntax) and ``txt`` ``(name, text)`` pairs."""
        self.dns_server.load(
            "\n".join([*lines, *(zone_txt(name, text) for name, text in txt)]) + "\n"
        )

    @contextlib.contextmanager
    def dns_outage(self):
        """DNS answers SERVFAIL to everything inside the block."""
        self.dns_server.servfail = True
        try:
            yield
        finally:
            self.dns_server.servfail = False

    def dkim_txt_lookup(self):
        """dkimpy's ``dnsfunc``, asking the loopback DNS."""
        resolver = self.env["mail.alias.domain"]._get_dns_resolver()

        def get_txt(name, timeout=5):
            found = dns_check.txt(resolver, name.decode().rstrip("."))
            return found[0].encode() if found else None

        return get_txt


class MailOutboundCommitCase(TrafficAssertions, TransactionCase):
    """Tests that commit: the queue as its scheduled action runs it.

    Odoo's test runner marks its thread ``testing``, which turns the queue's
    auto-commit off, and rolls every test back: the queue's chunked commits
    (``mail_outbound.queue_commit_every``) and its settlement after a refused
    commit or a dead worker never run there. This class runs them for real:

    - data is written and committed on real connections of their own
      (:meth:`committed_env`, :meth:`create_committed_mails`,
      :meth:`set_committed_param`), never through ``self.env``: a row the
      test transaction changed stays locked until the class ends, and a
      committing connection waiting for it would hang. That is also why this
      class builds on ``TransactionCase`` and not on ``MailOutboundCase``,
      whose ``setUpClass`` writes shared rows (servers, company) in the test
      transaction;
    - :meth:`run_queue` runs ``mail.mail.process_email_queue`` in a thread
      that is not marked ``testing``, on its own connection: it commits, as
      the cron does. :meth:`run_as_worker` runs any function so; make its
      environments in the test's thread (a new environment on a new cursor
      takes the registry's lock, which the test runner's thread holds);
    - mail goes to loopback SMTP servers (:meth:`start_committed_smtp_server`),
      the only active servers while a test runs (the database's others are
      set aside, and back afterwards);
    - afterwards every row committed since the test started in the tables of
      :attr:`COMMITTED_MODELS` is deleted, and the parameters the test set
      are restored, so the database is as before.

    Its test classes carry the tag ``mail_outbound_commit`` besides
    ``mail_outbound``: they commit, and clean up by deleting the rows
    newer than the test's start, other people's too, so they belong on a
    throwaway database (``scripts/test`` makes one). ``/mail_outbound``
    selects them still (Odoo 18's ``--test-tags``: a ``/module`` spec
    means the ``standard`` tag of that module, which they keep); leave them
    out on a shared database with ``--test-tags
    /mail_outbound,-mail_outbound_commit``, or run only them with
    ``--test-tags mail_outbound_commit``.
    """

    # models whose rows a committing test may leave behind, in deletion order
    COMMITTED_MODELS = (
        # the chatter's live updates of a failed notification
        "bus.bus",
        "mail.delivery.log",
        "mail.outbound.handover",
        "mail.outbound.data.end",
        "mail.outbound.batch",
        "mail.notification",
        "mail.mail",
        "mail.message",
        # what create_committed_traffic makes besides
        "mail.followers",
        "mail.template",
        "ir.attachment",
        "res.partner",
        "ir.cron.trigger",
        "ir.mail_server",
    )

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        patch_smtp_for_tests(cls)
        cls.dbname = cls.env.cr.dbname

    def setUp(self):
        super().setUp()
        self._saved_params = {}
        with self.committed_cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            self._max_ids = {
                name: env[name]
                .with_context(active_test=False)
                .search([], order="id desc", limit=1)
                .id
                # 0 for a table with no row yet
                or 0
                for name in self.COMMITTED_MODELS
            }
            servers = env["ir.mail_server"].search([])
            self._set_aside = servers.ids
            servers.active = False
        self._traffic_count = 0
        # first registered, last run: after the test's own connections closed
        self.addCleanup(self._remove_committed)

    def _remove_committed(self):
        with self.committed_cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            for name in self.COMMITTED_MODELS:
                env[name].with_context(active_test=False).search(
                    [("id", ">", self._max_ids[name])]
                ).unlink()
            env["ir.mail_server"].browse(self._set_aside).active = True
            Params = env["ir.config_parameter"]
            for key, value in self._saved_params.items():
                Params.set_param(key, value)

    def committed_cursor(self):
        """A cursor on a real connection of its own, not the test's
        transaction. Used as a context manager it commits and closes; a
        lock it waits for fails after 10 s instead of hanging the run."""
        cr = sql_db.db_connect(self.dbname).cursor()
        cr.execute("SET lock_timeout = '10s'")
        return cr

    def committed_env(self):
        """An environment (superuser) on a real connection of its own, closed
        (rolled back if not committed) after the test."""
        cr = self.committed_cursor()
        self.addCleanup(cr.close)
        return api.Environment(cr, SUPERUSER_ID, {})

    def set_committed_param(self, key, value):
        """Set and commit a system parameter, restored after the test."""
        with self.committed_cursor() as cr:
            Params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
            self._saved_params.setdefault(key, Params.get_param(key))
            Params.set_param(key, value)

    def restore_committed_param(self, key):
        """Give a parameter set by :meth:`set_committed_param` its value
        from before the test again, at once."""
        self.set_committed_param(key, self._saved_params[key])

    def start_committed_smtp_server(self, name, sequence=1, **values):
        """A loopback SMTP server, and its ir.mail_server record committed."""
        smtp = LoopbackSmtp().start()
        self.addCleanup(smtp.stop)
        with self.committed_cursor() as cr:
            server = api.Environment(cr, SUPERUSER_ID, {})["ir.mail_server"].create(
                {
                    "name": name,
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp.port,
                    "sequence": sequence,
                    **values,
                }
            )
            server_id = server.id
        return smtp, server_id

    def create_committed_mails(self, count=1, **values):
        """``count`` queued mails (see :func:`mail_values`), committed; their ids."""
        with self.committed_cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            return env["mail.mail"].create(mail_values(count, **values)).ids

    def create_committed_traffic(self, notifications=0, templates=0, partners=1):
        """Odoo's real shapes (``tests/traffic.py``), queued and committed:
        ``notifications`` chatter comments, each to ``partners`` partner
        followers of a record of its own, then ``templates`` templates with
        ``partner_to`` (``partners`` partners) and an attachment. Kept once
        sent (no auto-delete). The ids of their mails, in that order; their
        recipients are ``c<N>.post<i>.<n>@dest.example`` and
        ``c<N>.template0.<n>@dest.example``."""
        ids = []
        with self.committed_cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            self._traffic_count += 1
            traffic = RealTraffic(env, tag=f"c{self._traffic_count}")
            traffic.followers = partners
            Mail = env["mail.mail"]
            for n in range(notifications):
                message = traffic.post(n, mail_auto_delete=False)
                ids += Mail.search([("mail_message_id", "=", message.id)]).ids
            for _index in range(templates):
                # a tag each: the template's partners are template0.<n>
                self._traffic_count += 1
                template = RealTraffic(env, tag=f"c{self._traffic_count}")
                ids += template.template(False, partners).ids
        self.assertEqual(len(ids), notifications + templates)
        return ids

    def run_as_worker(self, function, timeout=300):
        """``function()`` in a thread that is not marked ``testing``, as the
        cron's workers are (core's queue commits there, and the addon uses
        connections of its own); its result, or what it raised."""
        outcome = {}

        def work():
            try:
                outcome["result"] = function()
            except Exception as error:  # noqa: BLE001 re-raised below
                outcome["error"] = error

        thread = threading.Thread(target=work, name="mail_outbound test worker")
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            stack = "".join(traceback.format_stack(sys._current_frames()[thread.ident]))
            self.fail(f"the worker did not end in {timeout} s; it is at:\n{stack}")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    def run_queue(self, ids=None, timeout=300):
        """``process_email_queue`` as the cron runs it: in a worker thread
        (:meth:`run_as_worker`), on a connection of its own, committed at the
        end. The environment is made here: the test runner's thread holds the
        registry's lock, which a new environment on a new cursor takes."""
        cr = self.committed_cursor()
        env = api.Environment(cr, SUPERUSER_ID, {})

        def queue():
            with cr:
                env["mail.mail"].process_email_queue(ids=ids)

        self.run_as_worker(queue, timeout)

    def committed_mails(self, ids):
        """The mails ``ids`` as committed now (a fresh connection)."""
        env = self.committed_env()
        return env["mail.mail"].browse(ids)
