"""The indexed routing decides exactly what scanning the servers decides.

``tools/routing.py`` looks the From up in dictionaries built once per server
list (issue #10). The oracle here is the scan it replaced: sort the servers
the documented way, then take the first whose filter matches, rule by rule.
Thousands of random server lists, filters, senders, traffic classes and
companies must give the same rule, server and warnings, and the same whole
decision as a freshly built index.
"""

import email.utils
import random

import pytest

from mail_outbound_tools import routing
from mail_outbound_tools.addresses import (
    _parse_any_address,
    _parse_simple_address,
    parse_filter,
)
from mail_outbound_tools.routing import (
    TRAFFIC_BOTH,
    TRAFFIC_MASS,
    TRAFFIC_TRANSACTIONAL,
    Identity,
    Server,
    route,
    sort_servers,
)

DOMAINS = [
    "example.com",
    "Example.COM.",
    "sub.example.com",
    "bücher.example",
    "xn--bcher-kva.example",
    "other.org",
    "x.test",
]
LOCALS = ["a", "Bob", "notifications", "bounce", "zoë"]
ADDRESSES = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS]
TRAFFICS = [TRAFFIC_TRANSACTIONAL, TRAFFIC_MASS, TRAFFIC_BOTH]
COMPANIES = [None, 1, 2, 3]


def linear_choice(servers, company_id, traffic, address, notification, forced):
    """(rule, server, no_server_for_traffic) by scanning, as before issue #10."""
    candidates = sort_servers(servers, company_id)
    of_traffic = [s for s in candidates if s.carries(traffic)]
    fallback = bool(candidates) and not of_traffic
    if fallback:
        of_traffic = candidates
    if not of_traffic:
        return None, None, fallback

    def first(test):
        return next((s for s in of_traffic if test(parse_filter(s.from_filter))), None)

    if address and not forced:
        if server := first(lambda f: f.matches_address(address)):
            return "from_address", server, fallback
        if server := first(lambda f: f.matches_domain(address)):
            return "from_domain", server, fallback
    if notification:
        if server := first(lambda f: f.matches_address(notification)):
            return "notification_address", server, fallback
        if server := first(lambda f: f.matches_domain(notification)):
            return "notification_domain", server, fallback
    if server := first(lambda f: not f):
        return "no_filter", server, fallback
    return "first_server", of_traffic[0], fallback


def random_filter(rng):
    shape = rng.random()
    if shape < 0.2:
        return ""
    if shape < 0.25:
        return rng.choice([",", " , ", "  "])
    parts = rng.sample(DOMAINS + ADDRESSES, rng.randint(1, 3))
    parts = [rng.choice([part, part.upper(), f" {part} "]) for part in parts]
    return rng.choice([",", ", ", " ,"]).join(parts)


def random_server(rng, server_id):
    return Server(
        id=server_id,
        name=rng.choice(["A", "a", "B", "b", "", "Relay"]),
        priority=rng.randint(1, 3),
        from_filter=random_filter(rng),
        active=rng.random() < 0.85,
        traffic=rng.choice(TRAFFICS),
        company_id=rng.choice(COMPANIES[:3]),
    )


def random_sender(rng):
    address = rng.choice(ADDRESSES)
    return rng.choice(
        [
            address,
            address.upper(),
            f'"Some One" <{address}>',
            f"Some One <{address}>",
            "",
            "not an address",
            f"{address}, b@other.org",
        ]
    )


def mutate(rng, servers, next_id):
    """Change ``servers`` in place, as a caller reusing its list might."""
    change = rng.choice(["append", "pop", "replace", "filter"])
    if change == "append" or not servers:
        servers.append(random_server(rng, next_id))
    elif change == "pop":
        servers.pop(rng.randrange(len(servers)))
    elif change == "replace":
        servers[rng.randrange(len(servers))] = random_server(rng, next_id)
    else:
        at = rng.randrange(len(servers))
        old = servers[at]
        servers[at] = Server(
            old.id,
            old.name,
            old.priority,
            random_filter(rng),
            old.active,
            old.traffic,
            old.company_id,
        )


@pytest.mark.parametrize("seed", range(4))
def test_indexed_decision_equals_linear_scan(seed):
    rng = random.Random(seed)
    servers = []
    next_id = 1
    rules = set()
    for _case in range(1500):
        # a new list, the same list again, or the same list changed in place
        draw = rng.random()
        if draw < 0.3:
            servers = [
                random_server(rng, next_id + i) for i in range(rng.randint(0, 12))
            ]
            next_id += len(servers)
        elif draw < 0.6:
            mutate(rng, servers, next_id)
            next_id += 1
        notification = rng.choice(ADDRESSES + [""])
        identity = Identity(
            notification_email=notification,
            bounce_email=rng.choice(ADDRESSES + [""]),
            forced=rng.random() < 0.1,
        )
        email_from = random_sender(rng)
        traffic = rng.choice([TRAFFIC_TRANSACTIONAL, TRAFFIC_MASS])
        company_id = rng.choice(COMPANIES)

        decision = route(
            email_from, servers, identity, traffic=traffic, company_id=company_id
        )

        address = routing.parse_address(email_from)[1]
        forced = bool(identity.forced and notification)
        rule, server, fallback = linear_choice(
            servers, company_id, traffic, address, notification, forced
        )
        context = (email_from, identity, traffic, company_id, servers)
        if rule is None:
            assert decision.rule.startswith("cli_"), context
        else:
            assert (decision.rule, decision.server_id) == (rule, server.id), context
        assert ("no_server_for_traffic" in decision.warnings) == fallback, context
        rules.add(decision.rule)

        # the cached index decides what one built afresh decides
        routing._INDEXES.clear()
        fresh = route(
            email_from, list(servers), identity, traffic=traffic, company_id=company_id
        )
        assert fresh == decision, context
    # the random cases reach every rule of the server paths
    assert rules >= {
        "from_address",
        "from_domain",
        "notification_address",
        "notification_domain",
        "no_filter",
        "first_server",
        "cli_fallback",
    }


def test_list_changed_in_place_is_indexed_again():
    identity = Identity(notification_email="notifications@example.com")
    servers = [Server(1, "Catch-all", 5), Server(2, "Other", 1, "other.org")]
    assert route("bob@example.com", servers, identity).server_id == 1
    servers.append(Server(3, "Ours", 9, "example.com"))
    assert route("bob@example.com", servers, identity).server_id == 3
    servers[2] = Server(3, "Ours", 9, "bob@example.com")
    assert route("bob@example.com", servers, identity).rule == "from_address"
    del servers[2]
    assert route("bob@example.com", servers, identity).server_id == 1


def random_text(rng):
    """Mostly address-like strings, with the characters parsers trip on."""
    alphabet = "aZ09._%+=-@<>\" ,;:()[]\\'!#~é\t"
    address = rng.choice(ADDRESSES + ["a.b@x.y", "a..b@x.y", ".a@x", "a@x.", "a@-x"])
    noise = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
    return rng.choice(
        [
            address,
            noise,
            f"{noise}{address}",
            f"{address}{noise}",
            f'"{noise}" <{address}>',
            f"{noise} <{address}>",
            f"Some One <{address}>",
            f"Some  One <{address}>",
            f'"" <{address}>',
            f"<{address}>",
        ]
    )


def test_simple_address_forms_read_as_the_email_package_reads_them():
    rng = random.Random(7)
    simple = 0
    for _case in range(20000):
        text = random_text(rng)
        fast = _parse_simple_address(text)
        if fast is not None:
            simple += 1
            assert fast == _parse_any_address(text), text
            assert email.utils.getaddresses([text]) == [fast], text
    # the fast path is taken for the common forms, not only trivially
    assert simple > 4000
