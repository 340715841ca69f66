"""Sending-domain readiness and DKIM against a real DNS server on loopback.

Every case writes a zone, starts ``LoopbackDns`` (UDP and TCP on a free
port) and points the resolver at it, as the addon does with the system
parameter ``mail_outbound.dns_nameserver``.
"""

import email
import email.policy
import smtplib
from email.message import EmailMessage

import dns.resolver
import pytest
from loopback_dns import LoopbackDns, zone_txt
from loopback_smtp import LoopbackSmtp

from mail_outbound_tools import dkim_sign, dmarc, dns_check, readiness, spf_check

DOMAIN = "example.com"
SENDER = ("relay", "127.0.0.1", f"bounce@{DOMAIN}")


@pytest.fixture(scope="module")
def dns_server():
    with LoopbackDns() as server:
        yield server


@pytest.fixture(scope="module")
def rsa_key():
    return dkim_sign.generate_rsa()


def resolver_for(server):
    return dns_check.make_resolver(server.nameserver, timeout=2)


def serve(server, *lines):
    server.load("\n".join(lines) + "\n")
    return resolver_for(server)


def by_kind(checks, kind):
    return [c for c in checks if c.kind == kind]


# -- resolver ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("127.0.0.1:5353", [("127.0.0.1", 5353)]),
        ("10.0.0.1, [::1]:53", [("10.0.0.1", 53), ("::1", 53)]),
    ],
)
def test_parse_nameserver(text, expected):
    assert dns_check.parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example.com", "127.0.0.1:0", "1.2.3.4:x"])
def test_parse_nameserver_refuses(text):
    with pytest.raises(ValueError):
        dns_check.parse_nameserver(text)


def test_tcp_retry_on_truncated_answer(dns_server):
    """A long TXT set is truncated over UDP; the resolver re-asks over TCP."""
    resolver = serve(
        dns_server,
        *[zone_txt(f"{DOMAIN}.", f"filler-{i}-" + "x" * 100) for i in range(8)],
    )
    assert len(dns_check.txt(resolver, DOMAIN)) == 8
    assert dns_server.tcp_queries >= 1


def test_dns_down_is_an_error_not_a_pass():
    resolver = dns_check.make_resolver("127.0.0.1:9", timeout=0.5)
    checks = readiness.check_domain(
        resolver, DOMAIN, [SENDER], [("odoo", "v=DKIM1; k=rsa; p=AAAA")]
    )
    assert [c.kind for c in checks] == ["mx", "spf", "dkim", "dmarc"]
    assert {c.status for c in checks} == {dns_check.ERROR}


# -- MX ------------------------------------------------------------------------
def test_mx_ok(dns_server):
    resolver = serve(dns_server, f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.")
    assert dns_check.check_mx(resolver, DOMAIN).status == dns_check.OK


def test_no_mx_a_fallback(dns_server):
    resolver = serve(dns_server, f"{DOMAIN}. 300 IN A 192.0.2.1")
    check = dns_check.check_mx(resolver, DOMAIN)
    assert check.status == dns_check.WARNING
    assert check.record == f"{DOMAIN}. 3600 IN MX 10 mail.{DOMAIN}."


def test_no_mx_no_a(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "hello"))
    check = dns_check.check_mx(resolver, DOMAIN, ["catchall@example.com"])
    assert check.status == dns_check.ERROR
    assert "catchall@example.com" in check.detail
    assert "IN MX" in check.record


# -- SPF -----------------------------------------------------------------------
def test_spf_pass(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "v=spf1 ip4:127.0.0.1 -all"))
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert [c.status for c in checks] == [dns_check.OK, dns_check.OK]
    assert checks[1].data["result"] == "pass"


def test_no_spf(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "google-site-verification=x"))
    (check,) = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert check.status == dns_check.ERROR
    assert check.record == f'{DOMAIN}. 3600 IN TXT "v=spf1 ip4:127.0.0.1 ~all"'


def test_two_spf_records_merged(dns_server):
    resolver = serve(
        dns_server,
        zone_txt(f"{DOMAIN}.", "v=spf1 include:_spf.google.com ~all"),
        zone_txt(f"{DOMAIN}.", "v=spf1 ip4:192.0.2.0/24 -all"),
    )
    (check,) = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert check.status == dns_check.ERROR
    assert "2 SPF records" in check.detail
    # DNS returns a record set in any order: one record, every term, one all
    name, value = check.record.split(" 3600 IN TXT ")
    terms = value.strip('"').split()
    assert name == f"{DOMAIN}."
    assert terms[0] == "v=spf1" and terms[-1] in ("~all", "-all")
    assert sorted(terms[1:-1]) == [
        "include:_spf.google.com",
        "ip4:127.0.0.1",
        "ip4:192.0.2.0/24",
    ]


def test_softfail(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "v=spf1 ip4:192.0.2.1 ~all"))
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert checks[1].data["result"] == "softfail"
    assert checks[1].status == dns_check.WARNING
    assert "ip4:192.0.2.1 ip4:127.0.0.1 ~all" in checks[1].record


def test_fail(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "v=spf1 ip4:192.0.2.1 -all"))
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert checks[1].data["result"] == "fail"
    assert checks[1].status == dns_check.ERROR


def test_include_chain_over_ten_lookups(dns_server):
    """11 nested includes: pyspf counts them and gives permerror."""
    lines = [zone_txt(f"{DOMAIN}.", "v=spf1 include:i1.spf.example.net -all")]
    for i in range(1, 12):
        nxt = f"include:i{i + 1}.spf.example.net " if i < 11 else ""
        lines.append(
            zone_txt(f"i{i}.spf.example.net.", f"v=spf1 {nxt}ip4:127.0.0.1 -all")
        )
    resolver = serve(dns_server, *lines)
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert checks[1].data["result"] == "permerror"
    assert "More than 10 DNS lookups" in checks[1].detail
    assert checks[1].record


def test_include_chain_under_limit_passes(dns_server):
    lines = [zone_txt(f"{DOMAIN}.", "v=spf1 include:i1.spf.example.net -all")]
    for i in range(1, 4):
        nxt = f"include:i{i + 1}.spf.example.net " if i < 3 else "ip4:127.0.0.1 "
        lines.append(zone_txt(f"i{i}.spf.example.net.", f"v=spf1 {nxt}-all"))
    resolver = serve(dns_server, *lines)
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert checks[1].data["result"] == "pass"
    assert checks[1].data["lookups"] == 3


# -- DKIM record ---------------------------------------------------------------
def test_dkim_missing(dns_server, rsa_key):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "v=spf1 -all"))
    record = dkim_sign.txt_record(rsa_key[1])
    check = dns_check.check_dkim(resolver, "odoo", DOMAIN, record)
    assert check.status == dns_check.ERROR
    # a 2048-bit key is over 255 characters: several strings, or DNS
    # servers refuse the record (NSD: "text string is longer than 255")
    strings = check.record.split(" IN TXT ")[1]
    assert strings.startswith('"v=DKIM1; k=rsa; p=') and '" "' in strings
    # published exactly as offered, the key is found
    resolver = serve(dns_server, check.record)
    assert dns_check.check_dkim(resolver, "odoo", DOMAIN, record).status == "ok"


def test_dkim_wrong_key(dns_server, rsa_key):
    other = dkim_sign.generate_rsa(1024)[1]
    resolver = serve(
        dns_server,
        zone_txt(f"odoo._domainkey.{DOMAIN}.", dkim_sign.txt_record(other)),
    )
    check = dns_check.check_dkim(
        resolver, "odoo", DOMAIN, dkim_sign.txt_record(rsa_key[1])
    )
    assert check.status == dns_check.ERROR
    assert "is not this key" in check.detail


def test_dkim_matches(dns_server, rsa_key):
    record = dkim_sign.txt_record(rsa_key[1])
    resolver = serve(dns_server, zone_txt(f"odoo._domainkey.{DOMAIN}.", record))
    assert dns_check.check_dkim(resolver, "odoo", DOMAIN, record).status == "ok"


# -- DMARC ---------------------------------------------------------------------
def test_dmarc_at_organizational_domain(dns_server):
    """mail.shop.example.co.uk has no record; example.co.uk's sp= applies."""
    resolver = serve(
        dns_server,
        zone_txt("_dmarc.example.co.uk.", "v=DMARC1; p=none; sp=reject; adkim=s"),
    )
    check = dmarc.check_dmarc(resolver, "mail.shop.example.co.uk")
    assert check.status == dns_check.OK
    assert check.data == {
        "policy": "reject",
        "adkim": "s",
        "aspf": "r",
        "found_at": "example.co.uk",
        "p": "none",
        "sp": "reject",
    }
    assert "organizational domain" in check.detail


def test_no_dmarc(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "v=spf1 -all"))
    check = dmarc.check_dmarc(resolver, f"news.{DOMAIN}")
    assert check.status == dns_check.ERROR
    assert check.record == dmarc.suggested_record(DOMAIN)


@pytest.mark.parametrize(
    "domain, org",
    [
        ("example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("mail.shop.example.co.uk", "example.co.uk"),
        ("x.github.io", "x.github.io"),
    ],
)
def test_organizational_domain(domain, org):
    assert dmarc.organizational_domain(domain) == org


# -- all checks green ------------------------------------------------------------
def good_zone(public_key):
    return [
        f"{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.",
        zone_txt(f"{DOMAIN}.", "v=spf1 ip4:127.0.0.1 -all"),
        zone_txt(f"odoo._domainkey.{DOMAIN}.", dkim_sign.txt_record(public_key)),
        zone_txt(f"_dmarc.{DOMAIN}.", "v=DMARC1; p=reject"),
    ]


def test_all_green(dns_server, rsa_key):
    resolver = serve(dns_server, *good_zone(rsa_key[1]))
    checks = readiness.check_domain(
        resolver,
        DOMAIN,
        [SENDER],
        [("odoo", dkim_sign.txt_record(rsa_key[1]))],
    )
    assert [(c.kind, c.status) for c in checks] == [
        ("mx", "ok"),
        ("spf", "ok"),
        ("spf", "ok"),
        ("dkim", "ok"),
        ("dmarc", "ok"),
    ]


# -- DKIM signing, through a real SMTP server, verified against the DNS ---------
def dnsfunc(resolver):
    def get_txt(name, timeout=5):
        found = dns_check.txt(resolver, name.decode().rstrip("."))
        return found[0].encode() if found else None

    return get_txt


def build_message():
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = f'"Ana Pop, Șef" <notifications@{DOMAIN}>'
    message["To"] = "customer@destination.example"
    message["Subject"] = "Factură " + "lungă " * 20
    message["Message-Id"] = "<1@example.com>"
    message.set_content("Bună ziua,\n\n" + "linie lungă " * 30 + "\n.\nend \n")
    return message


def test_signed_mail_verifies_after_smtp(dns_server, rsa_key):
    resolver = serve(dns_server, *good_zone(rsa_key[1]))
    message = build_message()
    dkim_sign.sign_message(message, "odoo", DOMAIN, rsa_key[0])
    assert next(iter(message.keys())) == "DKIM-Signature"
    with LoopbackSmtp() as smtp:
        with smtplib.SMTP(smtp.host, smtp.port) as client:
            client.send_message(message, f"bounce@{DOMAIN}", ["c@destination.example"])
        assert smtp.wait_for(1)
        data = smtp.messages[0]["data"]
    assert b"d=example.com" in data
    assert dkim_sign.verify(data, dnsfunc(resolver))


def test_signature_fails_with_wrong_published_key(dns_server, rsa_key):
    other = dkim_sign.generate_rsa()
    resolver = serve(dns_server, *good_zone(other[1]))
    message = build_message()
    dkim_sign.sign_message(message, "odoo", DOMAIN, rsa_key[0])
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert not dkim_sign.verify(data, dnsfunc(resolver))


def test_tampered_body_fails(dns_server, rsa_key):
    resolver = serve(dns_server, *good_zone(rsa_key[1]))
    message = build_message()
    dkim_sign.sign_message(message, "odoo", DOMAIN, rsa_key[0])
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert dkim_sign.verify(data, dnsfunc(resolver))
    assert not dkim_sign.verify(data.replace(b"end", b"END"), dnsfunc(resolver))


def test_signing_error_never_shows_the_key(rsa_key):
    with pytest.raises(dkim_sign.SigningError) as caught:
        dkim_sign.signature(b"not a mail", "odoo", DOMAIN, rsa_key[0][:200])
    assert "PRIVATE" not in str(caught.value)
    assert rsa_key[0][40:80] not in str(caught.value)


@pytest.mark.parametrize(
    "selector, valid",
    [
        ("odoo", True),
        ("odoo-2026-01", True),
        ("", False),
        ("a_b", False),
        ("a.b", False),
    ],
)
def test_selector(selector, valid):
    assert dkim_sign.valid_selector(selector) is valid


def test_dns_module_is_real():
    # the resolver asks the network, it is not a stand-in
    assert dns_check.make_resolver("127.0.0.1:53").__class__ is dns.resolver.Resolver


def test_no_dkim_key_is_a_warning(dns_server):
    resolver = serve(dns_server, *good_zone(dkim_sign.generate_rsa(1024)[1]))
    checks = readiness.check_domain(resolver, DOMAIN, [SENDER])
    (dkim,) = by_kind(checks, "dkim")
    assert dkim.status == dns_check.WARNING


def test_rsa_and_ed25519_signatures_both_verify(dns_server, rsa_key):
    """RFC 8463 dual signing: an RSA and an Ed25519 signature side by side."""
    ed_private, ed_public = dkim_sign.generate_ed25519()
    resolver = serve(
        dns_server,
        *good_zone(rsa_key[1]),
        zone_txt(
            f"ed._domainkey.{DOMAIN}.", dkim_sign.txt_record(ed_public, "ed25519")
        ),
    )
    message = build_message()
    dkim_sign.sign_message(message, "odoo", DOMAIN, rsa_key[0])
    dkim_sign.sign_message(message, "ed", DOMAIN, ed_private, "ed25519")
    with LoopbackSmtp() as smtp:
        with smtplib.SMTP(smtp.host, smtp.port) as client:
            client.send_message(message, f"bounce@{DOMAIN}", ["c@destination.example"])
        assert smtp.wait_for(1)
        data = smtp.messages[0]["data"]
    assert b"a=ed25519-sha256" in data and b"a=rsa-sha256" in data
    assert dkim_sign.verify(data, dnsfunc(resolver), index=0)
    assert dkim_sign.verify(data, dnsfunc(resolver), index=1)
    # the Ed25519 record is checked like an RSA one
    record = dkim_sign.txt_record(ed_public, "ed25519")
    assert dns_check.check_dkim(resolver, "ed", DOMAIN, record).status == "ok"


# -- records offered, published as offered (issue #22) -----------------------
def _spf_chain(prefix, depth, ip):
    """``include:{prefix}1...`` nested ``depth`` deep, the last one allowing ``ip``."""
    lines = []
    for i in range(1, depth + 1):
        nxt = f"include:{prefix}{i + 1}.spf.example.net " if i < depth else ""
        lines.append(
            zone_txt(f"{prefix}{i}.spf.example.net.", f"v=spf1 {nxt}ip4:{ip} -all")
        )
    return lines


def test_txt_strings_at_most_255():
    value = "p=" + "A" * 600
    strings = dns_check.txt_strings(value)
    assert [len(s) for s in strings] == [255, 255, 92]
    assert "".join(strings) == value
    line = dns_check.zone_txt_line("x._domainkey.example.com", value)
    assert line.startswith('x._domainkey.example.com. 3600 IN TXT "p=')


def test_spf_over_ten_lookups_flattened_and_published(dns_server):
    """A provider's chain of 6 plus another of 6: the record offered stays
    within 10 lookups, passes once published, and says what it flattened."""
    base = [
        zone_txt(
            f"{DOMAIN}.",
            "v=spf1 include:a1.spf.example.net include:b1.spf.example.net -all",
        ),
        *_spf_chain("a", 6, "198.51.100.7"),
        *_spf_chain("b", 6, "203.0.113.9"),
    ]
    resolver = serve(dns_server, *base)
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    head, evaluation = checks
    # the record line agrees with the evaluation: both errors
    assert evaluation.data["result"] == "permerror"
    assert head.status == dns_check.ERROR
    assert "12 DNS lookups" in head.detail
    assert head.record == evaluation.record
    assert "flattened" in head.detail and "keep it in sync" in head.detail
    # stable: a second check offers the very same record
    assert spf_check.check_spf(resolver, DOMAIN, [SENDER])[0].record == head.record
    # published exactly as offered: every sender passes, within the limit
    zone = [line for line in base if not line.startswith(f"{DOMAIN}.")]
    resolver = serve(dns_server, *zone, head.record)
    for ip in ("127.0.0.1", "198.51.100.7", "203.0.113.9"):
        result, _explanation, lookups = spf_check.evaluate(
            resolver, ip, f"bounce@{DOMAIN}"
        )
        assert result == "pass", (ip, head.record)
        assert lookups <= 10
    checks = spf_check.check_spf(resolver, DOMAIN, [SENDER])
    assert [c.status for c in checks] == [dns_check.OK, dns_check.OK]


def test_spf_record_over_limit_is_an_error_without_senders(dns_server):
    resolver = serve(
        dns_server,
        zone_txt(f"{DOMAIN}.", "v=spf1 include:a1.spf.example.net -all"),
        *_spf_chain("a", 11, "198.51.100.7"),
    )
    (head,) = spf_check.check_spf(resolver, DOMAIN, [])
    assert head.status == dns_check.ERROR
    resolver = serve(dns_server, *_spf_chain("a", 11, "198.51.100.7"), head.record)
    assert spf_check.evaluate(resolver, "198.51.100.7", f"x@{DOMAIN}")[0] == "pass"


def test_spf_suggestion_independent_of_dns_order(dns_server):
    resolver = resolver_for(dns_server)
    one = spf_check.suggest(
        resolver,
        DOMAIN,
        ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 mx -all"],
        ["10.0.0.2", "10.0.0.1"],
    )
    two = spf_check.suggest(
        resolver,
        DOMAIN,
        ["v=spf1 mx -all", "v=spf1 ip4:192.0.2.1 -all"],
        ["10.0.0.1", "10.0.0.2"],
    )
    assert one.record == two.record


def test_spf_not_flattened_with_macros(dns_server):
    resolver = serve(
        dns_server,
        zone_txt("m.spf.example.net.", "v=spf1 exists:%{i}.spf.example.net -all"),
    )
    with pytest.raises(spf_check.CannotFlatten):
        spf_check.flatten_domain(resolver, "m.spf.example.net")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("mail-1.example.co.uk", "mail-1.example.co.uk"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_domain_name_valid(name, expected):
    from mail_outbound_tools import addresses

    assert addresses.check_domain_name(name) == expected


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "empty"),
        ("a" * 64 + ".example", "label_too_long"),
        (("a" * 60 + ".") * 5 + "example", "too_long"),
        ("x" * 100_000, "too_long"),
        ("a..example", "empty_label"),
        ("exa mple.com", "bad_label"),
        ("-bad.example", "bad_label"),
    ],
)
def test_domain_name_refused(name, problem):
    from mail_outbound_tools import addresses

    with pytest.raises(addresses.DomainNameError) as error:
        addresses.check_domain_name(name)
    assert error.value.problem == problem


def test_bad_domain_name_is_one_error_and_no_lookup(dns_server):
    resolver = serve(dns_server, zone_txt(f"{DOMAIN}.", "v=spf1 -all"))
    (check,) = readiness.check_domain(resolver, "a" * 64 + ".example", [SENDER])
    assert check.status == dns_check.ERROR
    assert check.data == {"invalid_name": "label_too_long"}
    assert dns_server.queries == []
