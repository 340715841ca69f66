"""SPF: exactly one ``v=spf1`` record, evaluated by pyspf for each sender.

pyspf (RFC 7208: ``include:`` chains, ``redirect=``, the 10-lookup and the
2-void-lookup limits) asks DNS through its module-level ``DNSLookup`` hook.
That hook is set here once to a function asking the resolver of the current
evaluation (a thread-local), so that the addon's nameserver is used and two
threads never share one; with no evaluation under way pyspf's own lookup is
used unchanged.
"""

import threading

import spf

from .dns_check import ERROR, OK, WARNING, Check, DnsError, query, txt

_local = threading.local()
_pyspf_lookup = spf.DNSLookup


def _lookup(name, qtype, strict=True, timeout=30):
    resolver = getattr(_local, "resolver", None)
    if resolver is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    try:
        answers = query(resolver, name, qtype)
    except DnsError as error:
        raise spf.TempError(f"DNS {error}") from error
    values = []
    for record in answers:
        if qtype in ("A", "AAAA"):
            value = record.address
        elif qtype == "MX":
            value = (record.preference, record.exchange)
        elif qtype == "PTR":
            value = record.target.to_text(True)
        elif qtype in ("TXT", "SPF"):
            value = record.strings
        elif qtype == "CNAME":
            value = record.target.to_text(True)
        else:  # pragma: no cover
            continue
        values.append(((name, qtype), value))
    return values


spf.DNSLookup = _lookup

# pyspf's results, and how bad each is for mail from this server
_STATUS = {
    "pass": OK,
    "neutral": WARNING,
    "softfail": WARNING,
    "none": ERROR,
    "fail": ERROR,
    "permerror": ERROR,
    "temperror": ERROR,
}


def spf_records(resolver, domain):
    return [t for t in txt(resolver, domain) if t.lower().split(" ")[0] == "v=spf1"]


def evaluate(resolver, ip, sender, helo=""):
    """pyspf's verdict for mail from ``ip`` with envelope ``sender``.

    Returns ``(result, explanation, lookups)``; ``result`` is one of pass,
    fail, softfail, neutral, none, permerror, temperror.
    """
    _local.resolver = resolver
    try:
        checker = spf.query(
            i=ip,
            s=sender,
            h=helo or sender.rpartition("@")[2],
            strict=True,
            querytime=resolver.lifetime * 4,
            timeout=resolver.lifetime,
        )
        result, _code, explanation = checker.check()
        return result, explanation, checker.lookups
    finally:
        _local.resolver = None


def _mechanism(ip):
    return f"ip6:{ip}" if ":" in ip else f"ip4:{ip}"


def suggest_record(records, ips):
    """One ``v=spf1`` record allowing ``ips`` besides what ``records`` allow.

    Several records are merged into one (RFC 7208 3.2 allows only one); the
    addresses are added before the final ``all`` (``~all`` when none).
    """
    terms, final = [], ""
    for record in records:
        for term in record.split()[1:]:
            if term.lower().lstrip("+-~?") == "all":
                final = final or term
            elif term not in terms:
                terms.append(term)
    for ip in ips:
        if _mechanism(ip) not in terms:
            terms.append(_mechanism(ip))
    return " ".join(["v=spf1", *terms, final or "~all"])


def check_spf(resolver, domain, senders):
    """The record check, then one evaluation per ``(name, ip, envelope sender)``."""
    records = spf_records(resolver, domain)
    ips = [ip for _name, ip, _sender in senders if ip]
    publish = f'{domain}. 3600 IN TXT "{suggest_record(records, ips)}"'
    if not records:
        return [
            Check(
                "spf",
                domain,
                ERROR,
                f"{domain} has no SPF record: receivers cannot tell which "
                "servers may send for it, and DMARC fails on SPF.",
                record=publish,
            )
        ]
    if len(records) > 1:
        return [
            Check(
                "spf",
                domain,
                ERROR,
                f"{domain} has {len(records)} SPF records; RFC 7208 makes that "
                "a permanent error for every receiver. Publish one record "
                "merging them.",
                record=publish,
                data={"found": records},
            )
        ]
    checks = [Check("spf", domain, OK, f"One SPF record: {records[0]}")]
    for name, ip, sender in senders:
        if not ip:
            checks.append(
                Check(
                    "spf",
                    name,
                    ERROR,
                    f"The address of server {name} could not be resolved.",
                )
            )
            continue
        result, explanation, lookups = evaluate(resolver, ip, sender)
        detail = f"SPF {result} for {ip} ({name}) sending as {sender}"
        if explanation and result != "pass":
            detail += f": {explanation}"
        record = ""
        if result in ("fail", "softfail", "neutral", "none"):
            record = publish
        elif result == "permerror":
            if "lookups" in (explanation or "").lower():
                detail += (
                    f". More than 10 DNS lookups ({lookups} counted): replace "
                    "nested include: by the ip4:/ip6: ranges they publish."
                )
            record = publish
        checks.append(
            Check(
                "spf",
                name,
                _STATUS.get(result, ERROR),
                detail,
                record=record,
                data={"result": result, "ip": ip, "lookups": lookups},
            )
        )
    return checks
