"""SPF: exactly one ``v=spf1`` record, evaluated by pyspf for each sender.

pyspf (RFC 7208: ``include:`` chains, ``redirect=``, the 10-lookup and the
2-void-lookup limits) asks DNS through its module-level ``DNSLookup`` hook.
That hook is set here once to a function asking the resolver of the current
evaluation (a thread-local), so that the addon's nameserver is used and two
threads never share one; with no evaluation under way pyspf's own lookup is
used unchanged.
"""

import ipaddress
import threading
from dataclasses import dataclass, field

import spf

from .dns_check import (
    ERROR,
    OK,
    WARNING,
    Check,
    DnsError,
    addresses_of,
    query,
    txt,
    zone_txt_line,
)

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


# RFC 7208 4.6.4: the mechanisms and the modifier that cost a DNS lookup
LOOKUP_LIMIT = 10
_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")


def _parts(term):
    """``(qualifier, name, argument)`` of an SPF term: ``-include:x`` ->
    ``("-", "include", "x")``; ``redirect=x`` -> ``("", "redirect", "x")``."""
    qualifier = term[0] if term[:1] in "+-~?" and term[:1] else ""
    body = term[len(qualifier) :]
    if "=" in body and ":" not in body.partition("=")[0]:
        name, _sep, argument = body.partition("=")
        return qualifier, name.lower(), argument
    name, _sep, argument = body.partition(":")
    if "/" in name:
        name, _sep, cidr = name.partition("/")
        argument = f"{argument}/{cidr}" if argument else f"/{cidr}"
    return qualifier, name.lower(), argument


class CannotFlatten(Exception):
    """An included record with macros, ``exists``, ``ptr`` or exceptions:
    its meaning is not a fixed list of addresses."""


def _single_record(resolver, domain):
    records = spf_records(resolver, domain)
    return records[0] if len(records) == 1 else None


def count_lookups(resolver, record, depth=0):
    """The DNS lookups receivers make to evaluate ``record`` (includes and
    redirects followed), as RFC 7208 4.6.4 counts them."""
    total = 0
    for term in record.split()[1:]:
        _qualifier, name, argument = _parts(term)
        if name in _LOOKUP_TERMS or name == "redirect":
            total += 1
            if name in ("include", "redirect") and depth < LOOKUP_LIMIT:
                nested = _single_record(resolver, argument) if argument else None
                if nested:
                    total += count_lookups(resolver, nested, depth + 1)
    return total


def _split_cidr(argument, default):
    target, _sep, cidr = argument.partition("/")
    return target or default, f"/{cidr}" if cidr else ""


def flatten_domain(resolver, domain, depth=0):
    """The ``ip4:``/``ip6:`` terms equivalent to ``include:domain``, sorted.

    Raises CannotFlatten when the record is not a fixed list of addresses.
    """
    record = _single_record(resolver, domain)
    if record is None or depth > LOOKUP_LIMIT:
        raise CannotFlatten(domain)
    found = set()
    for term in record.split()[1:]:
        qualifier, name, argument = _parts(term)
        if "%" in term or name in ("ptr", "exists"):
            raise CannotFlatten(domain)
        if name == "all":
            continue
        if qualifier not in ("", "+") and name != "all":
            raise CannotFlatten(domain)
        if name in ("ip4", "ip6"):
            found.add(f"{name}:{argument}")
        elif name in ("include", "redirect"):
            found.update(flatten_domain(resolver, argument, depth + 1))
        elif name == "a":
            host, cidr = _split_cidr(argument, domain)
            found.update(
                f"{_mechanism(ip)}{cidr}" for ip in addresses_of(resolver, host)
            )
        elif name == "mx":
            host, cidr = _split_cidr(argument, domain)
            for mx in query(resolver, host, "MX"):
                exchange = mx.exchange.to_text(omit_final_dot=True)
                found.update(
                    f"{_mechanism(ip)}{cidr}" for ip in addresses_of(resolver, exchange)
                )
        elif name in ("exp", "v"):
            continue
        else:
            raise CannotFlatten(domain)
    return sorted(found, key=_ip_sort_key)


def _ip_sort_key(term):
    kind, _sep, network = term.partition(":")
    try:
        parsed = ipaddress.ip_network(network, strict=False)
        return (kind, int(parsed.network_address), parsed.prefixlen, term)
    except ValueError:
        return (kind, 0, 0, term)


@dataclass
class Suggestion:
    """A ``v=spf1`` record to publish, and what it cost to build it."""

    record: str
    lookups: int = 0
    flattened: list = field(default_factory=list)  # include: domains replaced

    def zone_line(self, domain):
        return zone_txt_line(domain, self.record)


def suggest(resolver, domain, records, ips):
    """One ``v=spf1`` record allowing ``ips`` besides what ``records`` allow,
    within the 10-lookup limit.

    Several records are merged into one (RFC 7208 3.2 allows only one); the
    addresses are added before the final ``all`` (``~all`` when none). The
    result does not depend on the order DNS returns records or addresses
    in. Over 10 lookups, the costliest ``include:`` are replaced by the
    addresses they publish today (flattened) until the record fits.
    """
    terms, final = [], ""
    for record in sorted(records):
        for term in record.split()[1:]:
            if term.lower().lstrip("+-~?") == "all":
                final = final or term
            elif term not in terms:
                terms.append(term)
    for ip in sorted(set(ips), key=lambda ip: _ip_sort_key(_mechanism(ip))):
        if _mechanism(ip) not in terms:
            terms.append(_mechanism(ip))
    suggestion = Suggestion(" ".join(["v=spf1", *terms, final or "~all"]))
    suggestion.lookups = count_lookups(resolver, suggestion.record)
    if suggestion.lookups <= LOOKUP_LIMIT:
        return suggestion
    costs = []
    for index, term in enumerate(terms):
        _qualifier, name, argument = _parts(term)
        if name == "include" and argument:
            cost = count_lookups(resolver, f"v=spf1 {term}")
            costs.append((-cost, argument, index))
    replaced = {}
    for _cost, argument, index in sorted(costs):
        if suggestion.lookups <= LOOKUP_LIMIT:
            break
        try:
            replaced[index] = flatten_domain(resolver, argument)
        except CannotFlatten:
            continue
        suggestion.flattened.append(argument)
        flat = []
        for position, term in enumerate(terms):
            for value in replaced.get(position, [term]):
                if value not in flat:
                    flat.append(value)
        suggestion.record = " ".join(["v=spf1", *flat, final or "~all"])
        suggestion.lookups = count_lookups(resolver, suggestion.record)
    return suggestion


def _suggestion_note(suggestion):
    if not suggestion.flattened:
        if suggestion.lookups > LOOKUP_LIMIT:
            return (
                f" Even this record needs {suggestion.lookups} DNS lookups: "
                "remove the include: of services that no longer send for the "
                "domain."
            )
        return ""
    return (
        " To stay within 10 DNS lookups, this record replaces "
        + ", ".join(f"include:{name}" for name in suggestion.flattened)
        + " by the addresses published there today (flattened): keep it in "
        "sync when those providers change their servers."
    )


def check_spf(resolver, domain, senders):
    """The record check, then one evaluation per ``(name, ip, envelope sender)``.

    The record check agrees with the evaluations: a record receivers
    evaluate as a permanent error (over 10 lookups) is an error there too.
    """
    records = spf_records(resolver, domain)
    ips = [ip for _name, ip, _sender in senders if ip]
    suggestion = suggest(resolver, domain, records, ips)
    publish = suggestion.zone_line(domain)
    note = _suggestion_note(suggestion)
    data = {"lookups": suggestion.lookups, "flattened": suggestion.flattened}
    if not records:
        return [
            Check(
                "spf",
                domain,
                ERROR,
                f"{domain} has no SPF record: receivers cannot tell which "
                "servers may send for it, and DMARC fails on SPF." + note,
                record=publish,
                data=data,
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
                "merging them." + note,
                record=publish,
                data={"found": records, **data},
            )
        ]
    lookups = count_lookups(resolver, records[0])
    head = Check("spf", domain, OK, f"One SPF record: {records[0]}")
    if lookups > LOOKUP_LIMIT:
        head.status = ERROR
        head.detail = (
            f"One SPF record, but it needs {lookups} DNS lookups: RFC 7208 "
            f"allows 10 and receivers answer permerror. {records[0]}." + note
        )
        head.record = publish
    head.data = {"lookups": lookups, "flattened": suggestion.flattened}
    checks = [head]
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
        result, explanation, counted = evaluate(resolver, ip, sender)
        detail = f"SPF {result} for {ip} ({name}) sending as {sender}"
        if explanation and result != "pass":
            detail += f": {explanation}"
        record = ""
        if result in ("fail", "softfail", "neutral", "none"):
            record = publish
            detail += "." + note if note else ""
        elif result == "permerror":
            if "lookups" in (explanation or "").lower():
                detail += f". More than 10 DNS lookups ({counted} counted)."
            detail += note
            record = publish
            if head.status != ERROR:
                head.status = ERROR
                head.detail = (
                    f"One SPF record, but receivers evaluate it as a permanent "
                    f"error: {records[0]}"
                )
                head.record = publish
        checks.append(
            Check(
                "spf",
                name,
                _STATUS.get(result, ERROR),
                detail,
                record=record,
                data={"result": result, "ip": ip, "lookups": counted},
            )
        )
    return checks
