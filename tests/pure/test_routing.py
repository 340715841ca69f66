"""The documented choice of server, rule by rule, without Odoo."""

import pytest

from mail_outbound_tools.routing import (
    REASONS,
    TRAFFIC_MASS,
    Identity,
    Server,
    explain,
    failover_route,
    route,
    sort_servers,
)

EXAMPLE = Identity(
    notification_email="notifications@example.com",
    bounce_email="bounce@example.com",
    catchall_email="catchall@example.com",
)


def srv(id_, name, from_filter="", priority=10, **kw):
    return Server(id=id_, name=name, priority=priority, from_filter=from_filter, **kw)


# (case id, From, servers, expected rule, expected server id, expected header From)
CASES = [
    (
        "exact address wins over domain",
        '"Test" <test@example.com>',
        [srv(1, "A", "example.com", 1), srv(2, "B", "test@example.com", 5)],
        "from_address",
        2,
        '"Test" <test@example.com>',
    ),
    (
        "domain match keeps the From",
        "Bob <bob@example.com>",
        [srv(1, "Other", "other.org", 1), srv(2, "Ours", "example.com", 5)],
        "from_domain",
        2,
        "Bob <bob@example.com>",
    ),
    (
        "filter list with spaces and upper case",
        "bob@Example.COM",
        [srv(1, "List", " foo.org ,  EXAMPLE.com , x@y.z")],
        "from_domain",
        1,
        "bob@Example.COM",
    ),
    (
        "notification address match rewrites",
        '"Mary" <mary@customer.example>',
        [srv(1, "Notif", "notifications@example.com")],
        "notification_address",
        1,
        '"Mary" <notifications@example.com>',
    ),
    (
        "notification domain match rewrites",
        '"Mary" <mary@customer.example>',
        [srv(1, "Other", "other.org", 1), srv(2, "Ours", "example.com", 2)],
        "notification_domain",
        2,
        '"Mary" <notifications@example.com>',
    ),
    (
        "first server without filter, From rewritten",
        '"Mary" <mary@customer.example>',
        [srv(1, "Filtered", "other.org", 1), srv(2, "Open", "", 2)],
        "no_filter",
        2,
        '"Mary" <notifications@example.com>',
    ),
    (
        "first server at all, From rewritten",
        "mary@customer.example",
        [srv(2, "Zed", "z.org", 3), srv(1, "Alpha", "a.org", 3)],
        "first_server",
        1,
        '"mary" <notifications@example.com>',
    ),
    (
        "ties broken by name, case-insensitive, not by id",
        "x@other.example",
        [srv(1, "zulu", "", 10), srv(2, "Bravo", "", 10), srv(3, "alpha", "", 10)],
        "no_filter",
        3,
        '"x" <notifications@example.com>',
    ),
    (
        "ties on name broken by id",
        "x@example.com",
        [srv(9, "Same", "example.com"), srv(4, "Same", "example.com")],
        "from_domain",
        4,
        "x@example.com",
    ),
    (
        "priority beats name",
        "x@example.com",
        [srv(1, "Alpha", "example.com", 20), srv(2, "Zulu", "example.com", 5)],
        "from_domain",
        2,
        "x@example.com",
    ),
    (
        "inactive servers are ignored",
        "x@example.com",
        [srv(1, "Gone", "example.com", 1, active=False), srv(2, "Open", "", 9)],
        "notification_domain" if False else "no_filter",
        2,
        '"x" <notifications@example.com>',
    ),
    (
        "IDN filter matches punycode From",
        "a@xn--bcher-kva.example",
        [srv(1, "IDN", "bücher.example")],
        "from_domain",
        1,
        "a@xn--bcher-kva.example",
    ),
    (
        "punycode filter matches IDN From",
        "a@bücher.example",
        [srv(1, "IDN", "XN--BCHER-KVA.example")],
        "from_domain",
        1,
        "a@bücher.example",
    ),
    (
        "trailing dot in filter",
        "a@example.com",
        [srv(1, "Dot", "example.com.")],
        "from_domain",
        1,
        "a@example.com",
    ),
    (
        "empty From goes to the notification address",
        "",
        [srv(1, "Ours", "example.com")],
        "notification_domain",
        1,
        "notifications@example.com",
    ),
    (
        "two addresses in From are no sender",
        "a@example.com, b@example.com",
        [srv(1, "Ours", "example.com")],
        "notification_domain",
        1,
        "notifications@example.com",
    ),
]


@pytest.mark.parametrize(
    "email_from,servers,rule,server_id,header_from",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_rules(email_from, servers, rule, server_id, header_from):
    decision = route(email_from, servers, EXAMPLE)
    assert decision.rule == rule
    assert decision.server_id == server_id
    assert decision.header_from == header_from
    assert decision.rewritten == (rule not in ("from_address", "from_domain"))


def test_kept_from_is_returned_unchanged_as_smtp_from():
    decision = route('"Bob" <bob@example.com>', [srv(1, "A", "example.com")], EXAMPLE)
    assert decision.smtp_from == '"Bob" <bob@example.com>'


def test_rewritten_from_returns_bare_notification_as_smtp_from():
    # core's _prepare_email_message encapsulates only when smtp_from is the
    # normalised notification address
    decision = route("bob@gmail.com", [srv(1, "A", "")], EXAMPLE)
    assert decision.smtp_from == "notifications@example.com"


def test_non_ascii_name_kept_and_quotes_escaped():
    decision = route('"Ana \\"Mă\\" Pop" <ana@gmail.com>', [srv(1, "A", "")], EXAMPLE)
    assert decision.header_from == '"Ana \\"Mă\\" Pop" <notifications@example.com>'


def test_first_server_warns_that_filter_refuses_notification():
    decision = route("x@y.org", [srv(1, "Only", "z.org")], EXAMPLE)
    assert decision.rule == "first_server"
    assert decision.warnings == ("filter_refuses_from",)
    assert "Add example.com to its FROM filter" in decision.reason


def test_forced_default_from_overrides_matching_domain_server():
    forced = Identity(
        notification_email="noreply@example.com",
        bounce_email="bounce@example.com",
        forced=True,
    )
    # core would keep bob@example.com here: the server's filter is the domain
    decision = route('"Bob" <bob@example.com>', [srv(1, "A", "example.com")], forced)
    assert decision.rule == "notification_domain"
    assert decision.forced
    assert decision.header_from == '"Bob" <noreply@example.com>'
    assert decision.reason.startswith("The alias domain's default From is the full")


def test_forced_default_from_overrides_exact_address_server():
    forced = Identity(notification_email="noreply@example.com", forced=True)
    servers = [srv(1, "Bob's", "bob@other.org", 1), srv(2, "Open", "", 2)]
    decision = route("bob@other.org", servers, forced)
    assert (decision.rule, decision.server_id) == ("no_filter", 2)
    assert decision.header_from == '"bob" <noreply@example.com>'


def test_forced_from_equal_to_original_is_not_a_rewrite():
    forced = Identity(notification_email="noreply@example.com", forced=True)
    decision = route("noreply@example.com", [srv(1, "A", "")], forced)
    assert not decision.rewritten


@pytest.mark.parametrize(
    "cli_filter,email_from,rule,header_from",
    [
        ("", "bob@gmail.com", "cli_from", "bob@gmail.com"),
        ("example.com", "bob@example.com", "cli_from", "bob@example.com"),
        (
            "example.com",
            "bob@gmail.com",
            "cli_notification",
            '"bob" <notifications@example.com>',
        ),
        (
            "other.org",
            "bob@gmail.com",
            "cli_fallback",
            '"bob" <notifications@example.com>',
        ),
        ("a@x.org, example.com", "a@X.org", "cli_from", "a@X.org"),
    ],
)
def test_cli_server(cli_filter, email_from, rule, header_from):
    decision = route(email_from, [], EXAMPLE, cli_from_filter=cli_filter)
    assert decision.server_id is None
    assert decision.rule == rule
    assert decision.header_from == header_from


def test_cli_used_when_all_servers_archived():
    decision = route("a@b.org", [srv(1, "Old", "", active=False)], EXAMPLE)
    assert decision.rule == "cli_from"


@pytest.mark.parametrize(
    "fixed_filter,email_from,rule,header_from,warnings",
    [
        ("example.com", "bob@example.com", "fixed_from", "bob@example.com", ()),
        ("", "bob@gmail.com", "fixed_from", "bob@gmail.com", ()),
        (
            "example.com",
            '"Bob" <bob@gmail.com>',
            "fixed_notification",
            '"Bob" <notifications@example.com>',
            (),
        ),
        (
            "mass.example",
            "bob@gmail.com",
            "fixed_mismatch",
            '"bob" <notifications@example.com>',
            ("filter_refuses_from",),
        ),
    ],
)
def test_fixed_server(fixed_filter, email_from, rule, header_from, warnings):
    fixed = srv(7, "Mass", fixed_filter)
    decision = route(email_from, [srv(1, "Other", "")], EXAMPLE, fixed_server=fixed)
    assert (decision.rule, decision.server_id) == (rule, 7)
    assert decision.header_from == header_from
    assert decision.warnings == warnings


@pytest.mark.parametrize(
    "from_filter,envelope",
    [
        ("", "bounce@example.com"),
        ("example.com", "bounce@example.com"),
        ("notifications@example.com", "notifications@example.com"),
    ],
)
def test_envelope_is_bounce_only_when_server_may_send_it(from_filter, envelope):
    decision = route("a@gmail.com", [srv(1, "A", from_filter)], EXAMPLE)
    assert decision.envelope_from == envelope


def test_reply_to_defaults_to_original_from_like_core():
    decision = route('"Mary" <mary@customer.example>', [srv(1, "A", "")], EXAMPLE)
    assert decision.reply_to == '"Mary" <mary@customer.example>'
    decision = route(
        "mary@customer.example",
        [srv(1, "A", "")],
        EXAMPLE,
        reply_to='"Company" <catchall@example.com>',
    )
    assert decision.reply_to == '"Company" <catchall@example.com>'


def test_no_sender_at_all_warns():
    decision = route("", [srv(1, "A", "")], Identity())
    assert decision.header_from == ""
    assert decision.warnings == ("no_sender",)


def test_traffic_class_restricts_candidates():
    servers = [
        srv(1, "Transactional", "", 1, traffic="transactional"),
        srv(2, "Mass", "", 2, traffic="mass"),
    ]
    assert route("a@b.org", servers, EXAMPLE).server_id == 1
    assert route("a@b.org", servers, EXAMPLE, traffic=TRAFFIC_MASS).server_id == 2


def test_traffic_class_without_server_falls_back_with_warning():
    servers = [srv(2, "Mass", "", 2, traffic="mass")]
    decision = route("a@b.org", servers, EXAMPLE)
    assert decision.server_id == 2
    assert "no_server_for_traffic" in decision.warnings


def test_every_rule_has_a_reason_that_formats():
    seen = set()
    for case in CASES:
        seen.add(route(case[1], case[2], EXAMPLE).rule)
    assert {"from_address", "from_domain", "notification_address"} <= seen
    params = {
        k: "x"
        for k in (
            "server",
            "address",
            "domain",
            "notification",
            "sent_as",
            "sent_domain",
            "traffic",
            "from_server",
        )
    }
    for template in REASONS.values():
        assert "%(" in template
        template % params


def test_explain_translates_templates_before_formatting():
    decision = route("a@example.com", [srv(1, "A", "example.com")], EXAMPLE)
    text = explain(decision, translate=lambda source: "[ro] " + source)
    assert (
        text == "[ro] A lists the sender's domain example.com in its FROM "
        "filter, so it sends the message and the From is kept."
    )


def test_sort_servers_documented_order():
    servers = [
        srv(3, "b", priority=2),
        srv(1, "C", priority=1),
        srv(2, "a", priority=2),
    ]
    assert [s.id for s in sort_servers(servers)] == [1, 2, 3]


def test_fixed_server_not_enforced_keeps_from_like_core_with_warning():
    fixed = srv(7, "Mass", "mass.example")
    decision = route(
        "bob@gmail.com", [], EXAMPLE, fixed_server=fixed, enforce_fixed_filter=False
    )
    assert decision.rule == "fixed_unenforced"
    assert decision.header_from == "bob@gmail.com"
    assert not decision.rewritten
    # issue #23 (13): not "Add gmail.com to its FROM filter"
    assert decision.warnings == ("filter_refuses_foreign_from",)
    assert "Add gmail.com" not in decision.reason
    assert "Enforce FROM Filters" in decision.reason


def test_transactional_mail_through_a_mass_only_server_is_flagged():
    # issue #23 (13): not flagged before
    fixed = srv(7, "Mass", "", traffic="mass")
    decision = route("bob@example.com", [], EXAMPLE, fixed_server=fixed)
    assert decision.server_id == 7
    assert decision.warnings == ("fixed_other_traffic",)
    assert "carries mass mail only" in decision.reason
    decision = route("bob@example.com", [], EXAMPLE, fixed_server=fixed, traffic="mass")
    assert decision.warnings == ()


def test_fixed_server_not_enforced_still_allows_matching_from():
    fixed = srv(7, "Mass", "mass.example")
    decision = route(
        "a@mass.example", [], EXAMPLE, fixed_server=fixed, enforce_fixed_filter=False
    )
    assert (decision.rule, decision.warnings) == ("fixed_from", ())


# -- failover: the fallback server sends only a From it may send (issue #20) --
BETA = Identity(
    notification_email="notifications@beta-example.org",
    bounce_email="bounce@beta-example.org",
)
NOTIFICATIONS = ["notifications@beta-example.org", "notifications@acme-example.com"]
MITCHELL = '"Mitchell Admin" <hello@beta-example.org>'


@pytest.mark.parametrize(
    "from_filter, session_from, rule, header, envelope",
    [
        # the fallback may send the From: kept, envelope the bounce address
        (
            "beta-example.org",
            MITCHELL,
            "failover_from",
            MITCHELL,
            "bounce@beta-example.org",
        ),
        # the mail's notification address only
        (
            "notifications@beta-example.org",
            MITCHELL,
            "failover_notification",
            '"Mitchell Admin" <notifications@beta-example.org>',
            "notifications@beta-example.org",
        ),
        # the session already sent as the notification address
        (
            "notifications@beta-example.org",
            "notifications@beta-example.org",
            "failover_notification",
            '"Mitchell Admin" <notifications@beta-example.org>',
            "notifications@beta-example.org",
        ),
        # neither: the notification address of the fallback's own domain,
        # the name kept, the envelope not the refused bounce address
        (
            "acme-example.com",
            MITCHELL,
            "failover_domain",
            '"Mitchell Admin" <notifications@acme-example.com>',
            "notifications@acme-example.com",
        ),
        # a filter without domain: may send anything
        ("", MITCHELL, "failover_from", MITCHELL, "bounce@beta-example.org"),
    ],
)
def test_failover_route_keeps_the_routing_rules(
    from_filter, session_from, rule, header, envelope
):
    fallback = srv(7, "Acme relay", from_filter)
    decision = failover_route(
        MITCHELL, session_from, fallback, BETA, NOTIFICATIONS, from_server="Beta"
    )
    assert (decision.rule, decision.header_from, decision.envelope_from) == (
        rule,
        header,
        envelope,
    )
    assert decision.server_id == 7
    assert not decision.warnings
    assert "Beta could not be reached" in explain(decision)


def test_failover_route_refuses_a_server_that_may_send_nothing():
    fallback = srv(7, "Other", "other-example.net")
    assert failover_route(MITCHELL, MITCHELL, fallback, BETA, NOTIFICATIONS) is None


def test_failover_route_doctest():
    import doctest

    from mail_outbound_tools import routing

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(routing.failover_route, "failover_route"):
        runner.run(test)
    assert runner.tries and not runner.failures
