"""DMARC: the policy of a From domain, and whether a mail would pass it.

The organizational domain comes from the public suffix list shipped inside
the ``publicsuffixlist`` package (never downloaded at run time). ``verdict``
is the alignment verdict of RFC 7489 as a pure function: it takes the From
that leaves, the envelope sender, the DKIM ``d=`` and the policy, and says
whether SPF and DKIM align and whether DMARC would pass.
"""

import functools
from dataclasses import dataclass

from .dns_check import ERROR, OK, WARNING, Check, txt


@functools.cache
def _suffix_list():
    from publicsuffixlist import PublicSuffixList

    # the list bundled with the package; PublicSuffixList never fetches
    return PublicSuffixList()


def organizational_domain(domain):
    """``mail.shop.example.co.uk`` -> ``example.co.uk`` (RFC 7489 3.2)."""
    domain = (domain or "").strip().rstrip(".").lower()
    if not domain:
        return ""
    return _suffix_list().privatesuffix(domain) or domain


@dataclass(frozen=True)
class Policy:
    domain: str  # where the record was found
    p: str = "none"
    sp: str = ""
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    record: str = ""

    def for_domain(self, from_domain):
        """The policy applying to mail from ``from_domain``."""
        if from_domain != self.domain and self.sp:
            return self.sp
        return self.p


def parse(record, domain):
    """A ``Policy`` from a ``v=DMARC1`` record, or None if it is not one."""
    parts = [part.strip() for part in record.split(";") if part.strip()]
    if not parts or parts[0].replace(" ", "").upper() != "V=DMARC1":
        return None
    tags = {}
    for part in parts[1:]:
        key, _sep, value = part.partition("=")
        tags[key.strip().lower()] = value.strip()
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return None
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    return Policy(
        domain=domain,
        p=policy,
        sp=tags.get("sp", "").lower()
        if tags.get("sp", "").lower() in ("none", "quarantine", "reject")
        else "",
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=pct,
        record=record,
    )


def lookup(resolver, domain):
    """The policy for ``domain``: its ``_dmarc`` record, else its org domain's."""
    domain = domain.lower().rstrip(".")
    candidates = [domain]
    org = organizational_domain(domain)
    if org != domain:
        candidates.append(org)
    for name in candidates:
        records = [r for r in txt(resolver, f"_dmarc.{name}") if parse(r, name)]
        if len(records) == 1:
            return parse(records[0], name)
    return None


def suggested_record(domain):
    return f'_dmarc.{domain}. 3600 IN TXT "v=DMARC1; p=none; adkim=r; aspf=r"'


def check_dmarc(resolver, domain):
    policy = lookup(resolver, domain)
    org = organizational_domain(domain)
    if policy is None:
        return Check(
            "dmarc",
            f"_dmarc.{org}",
            ERROR,
            f"No DMARC record at _dmarc.{domain}"
            + (
                f" nor at the organizational domain _dmarc.{org}"
                if org != domain
                else ""
            )
            + ": Gmail and Yahoo refuse or file as spam bulk mail without "
            "one. Start with p=none and tighten once reports are clean.",
            record=suggested_record(org),
        )
    applied = policy.for_domain(domain)
    where = f"_dmarc.{policy.domain}" + (
        " (organizational domain)" if policy.domain != domain else ""
    )
    detail = (
        f"DMARC found at {where}: policy {applied}, DKIM alignment "
        f"{'strict' if policy.adkim == 's' else 'relaxed'}, SPF alignment "
        f"{'strict' if policy.aspf == 's' else 'relaxed'}."
    )
    data = {
        "policy": applied,
        "adkim": policy.adkim,
        "aspf": policy.aspf,
        "found_at": policy.domain,
        "p": policy.p,
        "sp": policy.sp,
    }
    if applied == "none":
        return Check(
            "dmarc", where, WARNING, detail + " p=none only monitors.", data=data
        )
    return Check("dmarc", where, OK, detail, data=data)


# -- alignment verdict ------------------------------------------------------
def _domain(address):
    return (address or "").rpartition("@")[2].strip(" >").lower().rstrip(".")


def aligned(domain, from_domain, mode="r"):
    """RFC 7489 3.1: strict = same name; relaxed = same organizational domain."""
    if not domain or not from_domain:
        return False
    if mode == "s":
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


@dataclass(frozen=True)
class Verdict:
    from_domain: str
    spf_aligned: bool
    dkim_aligned: bool
    dmarc_pass: bool
    policy: str  # none, quarantine, reject, or "" without a DMARC record
    outcome: str  # pass, none, quarantine, reject (what the receiver does)

    @property
    def rejected(self):
        return self.outcome == "reject"


def verdict(
    header_from, envelope_from, dkim_domain, policy, spf_pass=True, dkim_pass=True
):
    """Would this mail pass DMARC?

    ``header_from`` and ``envelope_from`` are addresses, ``dkim_domain`` the
    ``d=`` of the signature (empty if unsigned), ``policy`` a ``Policy`` or
    None. ``spf_pass``/``dkim_pass``: whether the SPF check and the signature
    themselves pass (alignment alone is not enough).
    """
    from_domain = _domain(header_from)
    adkim = policy.adkim if policy else "r"
    aspf = policy.aspf if policy else "r"
    spf_ok = bool(spf_pass) and aligned(_domain(envelope_from), from_domain, aspf)
    dkim_ok = bool(dkim_pass) and aligned(
        (dkim_domain or "").lower(), from_domain, adkim
    )
    passed = spf_ok or dkim_ok
    applied = policy.for_domain(from_domain) if policy else ""
    outcome = "pass" if passed else (applied or "none")
    return Verdict(from_domain, spf_ok, dkim_ok, passed, applied, outcome)
