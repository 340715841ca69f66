"""Which outgoing server sends a message, and as whom: the documented rules.

Odoo's documentation ("Manage outbound messages", FROM filtering) fixes the
sequence; Odoo 18 core implements most of it in
``ir.mail_server._find_mail_server``. This module is that decision as a pure
function over plain data, so that it can be tested without a database, shown
in the Routing preview, and recorded on every mail with its reason.

The sequence, for a message whose From is ``address``:

1. a server whose FROM filter lists ``address``, then one that lists its
   domain: the From is kept (``from_address``, ``from_domain``);
2. a server whose filter lists the notification address, then its domain: the
   From becomes the notification address (``notification_address``,
   ``notification_domain``). The documentation skips this step; core has it
   and it is a strict refinement (the rewritten From is one the server may
   send), so it is kept;
3. the first server without a filter, From rewritten (``no_filter``);
4. the first server, From rewritten, with a warning (``first_server``);
5. no server record at all: the command-line server and its filter
   (``cli_from``, ``cli_notification``, ``cli_fallback``).

"First" is the lowest priority, then the name (case-insensitive), then the
id, on every path: core breaks ties by id only on the queue path and not at
all on the direct path.

A default From that is a full address (``notifications@example.com`` rather
than ``notifications``) replaces every From, whatever the filters say: the
search then starts at step 2.

A mail that names its server (a mass mailing's dedicated server, a template's
server) keeps it. With ``enforce_fixed_filter`` it never sends a From that
server's filter does not allow: it is rewritten to the notification address
(``fixed_*`` rules), where core sends it unchanged. Without it the From is
kept as core does (``fixed_unenforced``), with a warning: Odoo's own test
suite relies on that behaviour, so it stays the default.

Servers may belong to a company (``Server.company_id``; ``None``: shared by
all). Given the mail's company, the routing considers only that company's
servers and the shared ones, the company's own first (then the documented
order): a shared server takes what none of the company's servers may send.
A named server of another company is not used; the mail is routed as if it
named none (``fixed_other_company`` warning).
"""

from dataclasses import dataclass, field

from .addresses import (
    address_domain_key,
    address_key,
    encapsulate,
    parse_address,
    parse_filter,
)


def _lt(source):
    """Mark ``source`` for translation; the Odoo layer translates it."""
    return source


TRAFFIC_TRANSACTIONAL = "transactional"
TRAFFIC_MASS = "mass"
TRAFFIC_BOTH = "both"

#: One sentence per rule, formatted with :attr:`Decision.params`.
REASONS = {
    "from_address": _lt(
        "%(server)s lists the sender address %(address)s in its FROM filter, "
        "so it sends the message and the From is kept."
    ),
    "from_domain": _lt(
        "%(server)s lists the sender's domain %(domain)s in its FROM filter, "
        "so it sends the message and the From is kept."
    ),
    "notification_address": _lt(
        "No server may send as %(address)s; %(server)s lists the notification "
        "address %(notification)s in its FROM filter, so it sends the message "
        "as the notification address."
    ),
    "notification_domain": _lt(
        "No server may send as %(address)s; %(server)s lists the notification "
        "domain %(domain)s in its FROM filter, so it sends the message as the "
        "notification address %(notification)s."
    ),
    "no_filter": _lt(
        "No server's FROM filter matches %(address)s or the notification "
        "address; %(server)s is the first server without a FROM filter, so it "
        "sends the message as the notification address %(notification)s."
    ),
    "first_server": _lt(
        "No server's FROM filter matches %(address)s or the notification "
        "address, and every server has a filter; %(server)s is the first "
        "server, so it sends the message as the notification address "
        "%(notification)s."
    ),
    "cli_from": _lt(
        "No outgoing server is configured; the command-line server's FROM "
        "filter allows %(address)s, so the From is kept."
    ),
    "cli_notification": _lt(
        "No outgoing server is configured; the command-line server's FROM "
        "filter does not allow %(address)s but allows the notification "
        "address, so the message is sent as %(notification)s."
    ),
    "cli_fallback": _lt(
        "No outgoing server is configured and the command-line server's FROM "
        "filter allows neither %(address)s nor the notification address; the "
        "message is sent as %(notification)s."
    ),
    "fixed_from": _lt(
        "The message asks for %(server)s, whose FROM filter allows "
        "%(address)s, so the From is kept."
    ),
    "fixed_notification": _lt(
        "The message asks for %(server)s, whose FROM filter does not allow "
        "%(address)s, so it is sent as the notification address "
        "%(notification)s."
    ),
    "fixed_unenforced": _lt(
        "The message asks for %(server)s, whose FROM filter does not allow "
        "%(address)s; the From is kept because FROM filters are not enforced "
        "on a message's own server."
    ),
    "fixed_mismatch": _lt(
        "The message asks for %(server)s, whose FROM filter allows neither "
        "%(address)s nor the notification address; it is sent as "
        "%(notification)s."
    ),
    "failover_from": _lt(
        "%(from_server)s could not be reached; it failed over to %(server)s, "
        "whose FROM filter allows %(address)s, so the From is kept."
    ),
    "failover_notification": _lt(
        "%(from_server)s could not be reached; it failed over to %(server)s, "
        "whose FROM filter allows the notification address %(notification)s, "
        "so the message is sent as it."
    ),
    "failover_domain": _lt(
        "%(from_server)s could not be reached; it failed over to %(server)s, "
        "whose FROM filter allows neither %(address)s nor the mail's "
        "notification address, so the message is sent as the notification "
        "address of its alias domain, %(notification)s."
    ),
}

#: Added before the rule's sentence when a full-address default From applies.
FORCED_REASON = _lt(
    "The alias domain's default From is the full address %(notification)s, "
    "which replaces every From."
)

#: Warnings an administrator should act on, by code.
WARNINGS = {
    "filter_refuses_from": _lt(
        "%(server)s's FROM filter does not allow %(sent_as)s: the provider may "
        "refuse the message. Add %(sent_domain)s to its FROM filter, or give "
        "a server that may send as it a lower priority value."
    ),
    # the From kept is another domain's (a customer's): adding that domain to
    # the filter is no advice, sending as the notification address is
    "filter_refuses_foreign_from": _lt(
        "%(server)s's FROM filter does not allow %(sent_as)s: the provider may "
        "refuse the message. %(sent_domain)s is not this database's sending "
        'domain, so do not add it to the filter: turn on "Enforce FROM Filters '
        "on a Mail's Own Server\" in Settings, so that such mail is sent as "
        "the notification address."
    ),
    "fixed_other_traffic": _lt(
        "The message asks for %(fixed_server)s, which carries %(fixed_traffic)s "
        "mail only, but this is %(traffic)s mail: check the server the template "
        "or mailing asks for."
    ),
    "no_sender": _lt(
        "The message has no sender address and no notification address is "
        "configured: set a Default From on the company's alias domain."
    ),
    "fixed_other_company": _lt(
        "The message asks for %(fixed_server)s, which belongs to another "
        "company: it was routed among its company's servers and the shared "
        "ones instead."
    ),
    "no_server_for_traffic": _lt(
        "No active server carries %(traffic)s mail, so every active server "
        "was considered: mark one server for this kind of mail."
    ),
}


@dataclass(frozen=True)
class Server:
    """An outgoing server as the routing sees it."""

    id: int
    name: str
    priority: int = 10
    from_filter: str = ""
    active: bool = True
    traffic: str = TRAFFIC_BOTH
    company_id: int | None = None

    def order_key(self):
        """Documented order: priority, then name, then id for stability."""
        return (self.priority, (self.name or "").casefold(), self.id)

    def carries(self, traffic):
        return self.traffic == TRAFFIC_BOTH or self.traffic == traffic

    def serves(self, company_id):
        """Shared, or bound to ``company_id`` (``None``: no company given)."""
        return company_id is None or self.company_id in (None, company_id)


@dataclass(frozen=True)
class Identity:
    """The alias domain's addresses the routing may send as.

    ``notification_email`` is the alias domain's Default From as an address
    (``default_from@domain``, or the full address when the alias is one);
    ``forced`` says the alias was typed as a full address, which replaces
    every From.
    """

    notification_email: str = ""
    bounce_email: str = ""
    catchall_email: str = ""
    forced: bool = False


@dataclass(frozen=True)
class Decision:
    """What the routing decided, with enough to explain it.

    ``smtp_from`` is what core's ``_find_mail_server`` returns as its second
    value (the original From, or the bare notification address when the From
    is rewritten); ``header_from`` is the From header as it will leave.
    """

    rule: str
    server_id: int | None
    server_name: str
    smtp_from: str
    header_from: str
    envelope_from: str
    reply_to: str
    rewritten: bool
    forced: bool = False
    traffic: str = TRAFFIC_TRANSACTIONAL
    warnings: tuple = ()
    params: dict = field(default_factory=dict)

    @property
    def reason(self):
        """The decision in English (see :func:`explain` for a translation)."""
        return explain(self)


def explain(decision, translate=None):
    """One paragraph: the forced From if any, the rule, then the warnings.

    ``translate`` maps an English template to the reader's language (the Odoo
    layer passes its ``_``); the parameters are filled in after translation.
    """
    translate = translate or (lambda source: source)
    templates = [FORCED_REASON] if decision.forced else []
    templates.append(REASONS[decision.rule])
    templates.extend(WARNINGS[code] for code in decision.warnings)
    return " ".join(translate(template) % decision.params for template in templates)


def sort_servers(servers, company_id=None):
    """Active servers in the documented order.

    With ``company_id``: only that company's servers, then the shared ones.
    """
    return sorted(
        (s for s in servers if s.active and s.serves(company_id)),
        key=lambda s: (company_id is not None and s.company_id is None, s.order_key()),
    )


def failover_scope(server, servers):
    """The servers a batch on ``server`` may fail over to.

    A batch carries mails of the server's company (or, on a shared server,
    possibly of several): a company's server fails over to that company's
    servers and the shared ones, a shared server to shared servers only.
    """
    return [s for s in servers if s.company_id in (None, server.company_id)]


def failover_route(
    email_from, session_from, server, identity, notifications=(), from_server=""
):
    """As whom ``server`` sends a mail that ``from_server`` could not take.

    A failover keeps every rule of the routing: the fallback server sends
    only a From its filter allows. ``session_from`` is the From the batch's
    session was opened with for its own server (the mail's From, or its
    notification address): kept when the fallback may send it; else the
    mail's notification address (``identity``); else the first of
    ``notifications`` (the alias domains' notification addresses) the
    fallback may send. A rewritten From keeps the sender's name, and the
    envelope is the bounce address only when the filter allows it, as core
    does. ``None`` when the fallback may send none of them: it is no
    candidate for the mail.

    >>> acme = Server(1, "Acme relay", from_filter="acme.example")
    >>> beta = Identity("notifications@beta.example", "bounce@beta.example")
    >>> decision = failover_route(
    ...     '"Ann" <ann@beta.example>', "ann@beta.example", acme, beta,
    ...     ["notifications@beta.example", "notifications@acme.example"])
    >>> decision.rule, decision.smtp_from, decision.envelope_from
    ('failover_domain', 'notifications@acme.example', 'notifications@acme.example')
    >>> decision.header_from
    '"Ann" <notifications@acme.example>'
    >>> failover_route("ann@beta.example", "ann@beta.example", acme, beta) is None
    True
    """
    server_filter = parse_filter(server.from_filter)
    session_address = parse_address(session_from)[1]
    address = parse_address(email_from)[1]
    notification = identity.notification_email
    if session_address and server_filter.allows(session_address):
        if address_key(session_address) == address_key(address):
            rule, sent_as = "failover_from", None
        else:
            # the session was already opened as a notification address
            rule, sent_as = "failover_notification", session_address
    elif notification and server_filter.allows(notification):
        rule, sent_as = "failover_notification", notification
    else:
        sent_as = next(
            (n for n in notifications if n and server_filter.allows(n)), None
        )
        if sent_as is None:
            return None
        rule = "failover_domain"
    if sent_as:
        # forced: sent as this address whatever the sender (route's rule)
        identity = Identity(
            sent_as, identity.bounce_email, identity.catchall_email, True
        )
    decided = route(email_from, [], identity, fixed_server=server)
    return Decision(
        rule=rule,
        server_id=server.id,
        server_name=server.name,
        smtp_from=decided.smtp_from,
        header_from=decided.header_from,
        envelope_from=decided.envelope_from,
        reply_to=decided.reply_to,
        rewritten=decided.rewritten,
        params={**decided.params, "from_server": from_server},
    )


def route(
    email_from,
    servers,
    identity,
    *,
    cli_from_filter="",
    fixed_server=None,
    reply_to="",
    traffic=TRAFFIC_TRANSACTIONAL,
    enforce_fixed_filter=True,
    company_id=None,
):
    """Decide the server and the From for one message.

    :param str email_from: the From header as the message has it (may be
        formatted, may be empty)
    :param servers: iterable of :class:`Server` (inactive ones are ignored)
    :param Identity identity: the alias domain's addresses
    :param str cli_from_filter: the command-line server's FROM filter, used
        when there is no active server record
    :param Server fixed_server: the server the message asks for, if any
    :param str reply_to: the Reply-To the message carries; core uses the
        original From when it is empty
    :param str traffic: ``transactional`` or ``mass``: only servers carrying
        that traffic are considered
    :param bool enforce_fixed_filter: rewrite a From that ``fixed_server``'s
        filter refuses (else keep it, as core does, with a warning)
    :param int company_id: the mail's company: only its servers and the
        shared ones are used (``None``: every server)
    :rtype: Decision
    """
    _name, address = parse_address(email_from)
    notification = identity.notification_email or ""
    forced = bool(identity.forced and notification)
    warnings = []
    fixed_params = {}
    if fixed_server is not None and not fixed_server.serves(company_id):
        warnings.append("fixed_other_company")
        fixed_params["fixed_server"] = fixed_server.name
        fixed_server = None

    if fixed_server is not None and not fixed_server.carries(traffic):
        warnings.append("fixed_other_traffic")
        fixed_params["fixed_server"] = fixed_server.name
        fixed_params["fixed_traffic"] = fixed_server.traffic

    if fixed_server is not None:
        rule, server = _route_fixed(fixed_server, address, notification, forced)
        if rule != "fixed_from" and address and not enforce_fixed_filter:
            rule = "fixed_unenforced"
    else:
        candidates = _server_index(servers).candidates(company_id, traffic)
        if candidates.no_server_for_traffic:
            warnings.append("no_server_for_traffic")
        if candidates.first is not None:
            rule, server = _route_servers(candidates, address, notification, forced)
        else:
            rule, server = _route_cli(cli_from_filter, address, notification, forced)

    keep = rule in (
        "from_address",
        "from_domain",
        "cli_from",
        "fixed_from",
        "fixed_unenforced",
    )
    # With no notification address to fall back on, core keeps the original
    # From whatever the rule: there is nothing else to send as.
    rewritten = not keep and bool(notification) and address != notification
    if keep or not notification:
        smtp_from, header_from = email_from or "", email_from or ""
    else:
        smtp_from = notification
        header_from = encapsulate(email_from, notification) if address else notification

    sent_as = parse_address(header_from)[1]
    server_filter = parse_filter(server.from_filter if server else cli_from_filter)
    if not sent_as:
        warnings.append("no_sender")
    elif not server_filter.allows(sent_as):
        own_domain = notification.rpartition("@")[2].lower()
        foreign = rule == "fixed_unenforced" and (
            sent_as.rpartition("@")[2].lower() != own_domain
        )
        warnings.append(
            "filter_refuses_foreign_from" if foreign else "filter_refuses_from"
        )
    bounce = identity.bounce_email
    # Core puts the bounce address in the envelope only when the server may
    # send as it; otherwise the envelope is the From, as here.
    envelope = bounce if bounce and server_filter.allows(bounce) else sent_as

    params = {
        "server": server.name if server else "",
        "address": address or "",
        "domain": _matched_domain(rule, address, notification),
        "notification": notification,
        "sent_as": sent_as,
        "sent_domain": sent_as.rpartition("@")[2],
        "traffic": traffic,
        **fixed_params,
    }
    return Decision(
        rule=rule,
        server_id=server.id if server else None,
        server_name=server.name if server else "",
        smtp_from=smtp_from,
        header_from=header_from,
        envelope_from=envelope,
        reply_to=reply_to or email_from or "",
        rewritten=rewritten,
        forced=forced,
        traffic=traffic,
        warnings=tuple(warnings),
        params=params,
    )


class _Candidates:
    """The servers one message may use, with their FROM filters indexed.

    Built from the documented order (:func:`sort_servers`, then the traffic),
    each dictionary keeps the first server listing a key, so that a lookup
    gives what scanning the servers in that order for the first match would.
    """

    __slots__ = (
        "by_address",
        "by_domain",
        "first",
        "no_server_for_traffic",
        "unfiltered",
    )

    def __init__(self, servers, company_id, traffic):
        candidates = sort_servers(servers, company_id)
        of_traffic = [s for s in candidates if s.carries(traffic)]
        self.no_server_for_traffic = bool(candidates) and not of_traffic
        if self.no_server_for_traffic:
            of_traffic = candidates
        self.by_address = {}
        self.by_domain = {}
        self.unfiltered = None
        for server in of_traffic:
            from_filter = parse_filter(server.from_filter)
            for key in from_filter.addresses:
                self.by_address.setdefault(key, server)
            for key in from_filter.domains:
                self.by_domain.setdefault(key, server)
            if self.unfiltered is None and not from_filter:
                self.unfiltered = server
        self.first = of_traffic[0] if of_traffic else None

    def by_address_of(self, address):
        return self.by_address.get(address_key(address))

    def by_domain_of(self, address):
        return self.by_domain.get(address_domain_key(address))


class _ServerIndex:
    """One server list's :class:`_Candidates`, per company and traffic."""

    __slots__ = ("_candidates", "servers")

    def __init__(self, servers):
        self.servers = servers
        self._candidates = {}

    def candidates(self, company_id, traffic):
        key = (company_id, traffic)
        found = self._candidates.get(key)
        if found is None:
            found = self._candidates[key] = _Candidates(
                self.servers, company_id, traffic
            )
        return found


#: Indexes of the server lists routed lately, by the list's identity. The
#: queue routes every mail of a run against one list: the filters are indexed
#: once for the run, not scanned once per mail (issue #10).
_INDEXES = {}
_INDEXES_MAX = 32


def _server_index(servers):
    """The index of ``servers``, built once per distinct list.

    The cache key is the list's identity, but an entry is used only if the
    list holds servers equal to the indexed ones (:class:`Server` is frozen
    and compared by value): a list changed in place, or a different one at a
    freed list's address, is indexed again. A caller that builds a new list
    per message pays one index per message, about what the scan cost.
    """
    snapshot = tuple(servers)
    entry = _INDEXES.get(id(servers))
    if entry is not None and entry.servers == snapshot:
        # equal servers, maybe other objects: compare identities from now on
        entry.servers = snapshot
        return entry
    if len(_INDEXES) >= _INDEXES_MAX:
        _INDEXES.clear()
    index = _INDEXES[id(servers)] = _ServerIndex(snapshot)
    return index


def _route_servers(candidates, address, notification, forced):
    # A forced default From means the message is sent as the notification
    # address whatever its From: searching servers for the From is moot.
    if address and not forced:
        if server := candidates.by_address_of(address):
            return "from_address", server
        if server := candidates.by_domain_of(address):
            return "from_domain", server
    if notification:
        if server := candidates.by_address_of(notification):
            return "notification_address", server
        if server := candidates.by_domain_of(notification):
            return "notification_domain", server
    if candidates.unfiltered is not None:
        return "no_filter", candidates.unfiltered
    return "first_server", candidates.first


def _route_cli(cli_from_filter, address, notification, forced):
    cli_filter = parse_filter(cli_from_filter)
    if address and not forced and cli_filter.allows(address):
        return "cli_from", None
    if notification and cli_filter.allows(notification):
        return "cli_notification", None
    return "cli_fallback", None


def _route_fixed(server, address, notification, forced):
    server_filter = parse_filter(server.from_filter)
    if address and not forced and server_filter.allows(address):
        return "fixed_from", server
    if notification and server_filter.allows(notification):
        return "fixed_notification", server
    return "fixed_mismatch", server


def _matched_domain(rule, address, notification):
    if rule == "from_domain":
        return address_domain_key(address)
    if rule == "notification_domain":
        return address_domain_key(notification)
    return ""
