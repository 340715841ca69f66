"""Servers bound to companies: a mail uses its company's servers and the
shared ones, never another company's."""

import pytest

from mail_outbound_tools.routing import (
    TRAFFIC_MASS,
    Identity,
    Server,
    explain,
    failover_scope,
    route,
    sort_servers,
)

A, B = 1, 2
IDENTITY_A = Identity(
    notification_email="notifications@a.example", bounce_email="bounce@a.example"
)

SERVERS = [
    Server(1, "A relay", 5, "a.example", company_id=A, traffic="transactional"),
    Server(2, "B relay", 1, "b.example", company_id=B),
    Server(3, "B open", 1, "", company_id=B),
    Server(4, "Shared open", 9, ""),
    Server(5, "Shared mass", 1, "", traffic=TRAFFIC_MASS),
    Server(6, "A transactional", 1, "a.example", company_id=A, traffic="transactional"),
]

# (label, From, company, traffic, expected server id, expected rule)
CASES = [
    ("own domain", "ann@a.example", A, "transactional", 6, "from_domain"),
    # B's relay has priority 1 and lists b.example, but is not A's
    (
        "other company's domain",
        "bob@b.example",
        A,
        "transactional",
        6,
        "notification_domain",
    ),
    ("B's mail on B's server", "bob@b.example", B, "transactional", 2, "from_domain"),
    # A has no server carrying mass mail: the shared one takes it
    ("shared takes what A cannot send", "ann@a.example", A, "mass", 5, "no_filter"),
    # B's own open server comes before the shared one of better priority
    ("own before shared", "x@c.example", B, "mass", 3, "no_filter"),
    (
        "no company: every server",
        "bob@b.example",
        None,
        "transactional",
        2,
        "from_domain",
    ),
]


@pytest.mark.parametrize(
    "email_from,company,traffic,server_id,rule",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_company_scope(email_from, company, traffic, server_id, rule):
    decision = route(
        email_from, SERVERS, IDENTITY_A, traffic=traffic, company_id=company
    )
    assert (decision.server_id, decision.rule) == (server_id, rule)


def test_company_without_servers_uses_shared_only():
    servers = [
        Server(2, "B relay", 1, "b.example", company_id=B),
        Server(4, "Shared", 9),
    ]
    decision = route("bob@b.example", servers, IDENTITY_A, company_id=A)
    assert decision.server_id == 4
    assert [s.id for s in sort_servers(servers, A)] == [4]


def test_company_without_any_server_falls_back_to_command_line():
    servers = [Server(2, "B relay", 1, "b.example", company_id=B)]
    decision = route("ann@a.example", servers, IDENTITY_A, company_id=A)
    assert decision.server_id is None
    assert decision.rule.startswith("cli_")


def test_named_server_of_another_company_is_not_used():
    decision = route(
        "ann@a.example", SERVERS, IDENTITY_A, fixed_server=SERVERS[1], company_id=A
    )
    assert decision.server_id == 6
    assert decision.warnings == ("fixed_other_company",)
    assert "B relay, which belongs to another company" in explain(decision)


def test_named_shared_or_own_server_is_used():
    for fixed in (SERVERS[3], SERVERS[0]):
        decision = route(
            "ann@a.example", SERVERS, IDENTITY_A, fixed_server=fixed, company_id=A
        )
        assert decision.server_id == fixed.id
        assert "fixed_other_company" not in decision.warnings


def test_failover_stays_in_the_company():
    # from A's server: A's and shared; from a shared server: shared only
    assert [s.id for s in failover_scope(SERVERS[0], SERVERS)] == [1, 4, 5, 6]
    assert [s.id for s in failover_scope(SERVERS[3], SERVERS)] == [4, 5]
