"""All the checks of one sending domain, in the order an administrator fixes them."""

from . import addresses, dmarc, spf_check
from .dns_check import ERROR, WARNING, Check, DnsError, check_dkim, check_mx


def check_domain(resolver, domain, senders=(), dkim_records=(), mailboxes=()):
    """Every check of one sending domain.

    ``senders``: ``(server name, IP address, envelope sender)`` of each outgoing
    server sending for the domain; ``dkim_records``: ``(selector, record)``.
    A DNS that does not answer gives one error check per kind, never a pass,
    marked ``data["dns_error"]`` so that the caller keeps the last answer.
    A name that is not a DNS domain name gives one error and no lookup.
    """
    try:
        domain = addresses.check_domain_name(domain)
    except addresses.DomainNameError as error:
        shown = (domain or "")[:80]
        return [
            Check(
                "mx",
                shown,
                ERROR,
                f"{shown} is not a DNS domain name ({error.problem}: labels of "
                "at most 63 characters, 253 in all): nothing was looked up.",
                data={"invalid_name": error.problem},
            )
        ]
    checks = []
    steps = [
        ("mx", lambda: [check_mx(resolver, domain, mailboxes)]),
        ("spf", lambda: spf_check.check_spf(resolver, domain, senders)),
        ("dkim", lambda: _check_dkim_keys(resolver, domain, dkim_records)),
        ("dmarc", lambda: [dmarc.check_dmarc(resolver, domain)]),
    ]
    for kind, step in steps:
        try:
            checks += step()
        except DnsError as error:
            checks.append(
                Check(
                    kind,
                    domain,
                    ERROR,
                    f"DNS did not answer: {error}",
                    data={"dns_error": True},
                )
            )
    return checks


def _check_dkim_keys(resolver, domain, dkim_records):
    if not dkim_records:
        return [
            Check(
                "dkim",
                domain,
                WARNING,
                f"No DKIM key for {domain}: DMARC then rests on SPF alone, which "
                "breaks on every forward. Generate a key in Odoo and publish it.",
            )
        ]
    return [check_dkim(resolver, s, domain, r) for s, r in dkim_records]
