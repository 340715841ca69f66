"""The DMARC alignment verdict: a pure function, table-driven."""

import pytest

from mail_outbound_tools import dmarc

REJECT = dmarc.Policy(domain="example.com", p="reject")
REJECT_SUB_NONE = dmarc.Policy(domain="example.com", p="reject", sp="none")
STRICT = dmarc.Policy(domain="example.com", p="quarantine", adkim="s", aspf="s")


@pytest.mark.parametrize(
    "header_from, envelope, dkim_d, policy, spf_pass, dkim_pass, expected",
    [
        # (spf aligned, dkim aligned, dmarc pass, outcome)
        (
            "a@example.com",
            "bounce@example.com",
            "example.com",
            REJECT,
            True,
            True,
            (True, True, True, "pass"),
        ),
        (
            "a@example.com",
            "bounce@example.com",
            "",
            REJECT,
            True,
            True,
            (True, False, True, "pass"),
        ),
        # a customer's From relayed unchanged through our server: nothing aligns
        (
            "mary@customer.example",
            "bounce@example.com",
            "example.com",
            REJECT,
            True,
            True,
            (False, False, False, "reject"),
        ),
        # relaxed: subdomain envelope aligns with the organizational domain
        (
            "a@example.com",
            "bounce@mail.example.com",
            "",
            REJECT,
            True,
            True,
            (True, False, True, "pass"),
        ),
        (
            "a@news.example.com",
            "b@example.com",
            "example.com",
            STRICT,
            True,
            True,
            (False, False, False, "quarantine"),
        ),
        (
            "a@example.com",
            "b@example.com",
            "example.com",
            STRICT,
            True,
            True,
            (True, True, True, "pass"),
        ),
        # aligned but the SPF check itself fails: only DKIM can carry it
        (
            "a@example.com",
            "bounce@example.com",
            "",
            REJECT,
            False,
            True,
            (False, False, False, "reject"),
        ),
        (
            "a@example.com",
            "bounce@example.com",
            "example.com",
            REJECT,
            False,
            True,
            (False, True, True, "pass"),
        ),
        # a broken signature does not count
        (
            "a@example.com",
            "bounce@other.example",
            "example.com",
            REJECT,
            True,
            False,
            (False, False, False, "reject"),
        ),
        # the subdomain policy sp= applies to subdomains
        (
            "a@news.example.com",
            "bounce@other.example",
            "",
            REJECT_SUB_NONE,
            True,
            True,
            (False, False, False, "none"),
        ),
        # no DMARC record: nothing to fail
        (
            "a@example.com",
            "bounce@other.example",
            "",
            None,
            True,
            True,
            (False, False, False, "none"),
        ),
        (
            '"Ana" <ANA@Example.COM>',
            "bounce@example.com",
            "EXAMPLE.com",
            REJECT,
            True,
            True,
            (True, True, True, "pass"),
        ),
        # registrable domains under a public suffix are distinct organizations
        (
            "a@x.github.io",
            "b@y.github.io",
            "y.github.io",
            REJECT,
            True,
            True,
            (False, False, False, "reject"),
        ),
    ],
)
def test_verdict(header_from, envelope, dkim_d, policy, spf_pass, dkim_pass, expected):
    verdict = dmarc.verdict(header_from, envelope, dkim_d, policy, spf_pass, dkim_pass)
    assert (
        verdict.spf_aligned,
        verdict.dkim_aligned,
        verdict.dmarc_pass,
        verdict.outcome,
    ) == expected
    assert verdict.rejected is (expected[3] == "reject")


@pytest.mark.parametrize(
    "record, expected",
    [
        ("v=DMARC1; p=reject", ("reject", "", "r", "r")),
        (
            "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s",
            ("quarantine", "none", "s", "s"),
        ),
        ("v=DMARC1; p=bogus", None),
        ("v=spf1 -all", None),
        ("v=DMARC1; p=none; adkim=x", ("none", "", "r", "r")),
    ],
)
def test_parse(record, expected):
    policy = dmarc.parse(record, "example.com")
    got = policy and (policy.p, policy.sp, policy.adkim, policy.aspf)
    assert got == expected
