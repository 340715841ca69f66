"""Is a sending domain ready: MX, SPF, DKIM and DMARC records, read from DNS.

Pure Python (dnspython, pyspf, publicsuffixlist), no odoo import. Every check
returns a ``Check``: its status, what was found, and for a failure the exact
record to publish and why. ``check_domain`` runs them all for one domain.

The resolver is built by ``make_resolver`` from a ``host[:port]`` string (the
system parameter ``mail_outbound.dns_nameserver``), or the system's resolver
when empty.
"""

import ipaddress
from dataclasses import dataclass, field

import dns.exception
import dns.inet
import dns.resolver

# the parameter's syntax is the settings loader's (it validates the value)
from .settings import parse_nameserver

OK = "ok"
WARNING = "warning"
ERROR = "error"

# seconds per DNS query and for a whole check
TIMEOUT = 5.0

# RFC 1035 3.3.14: one character-string of a TXT record holds 255 bytes at
# most; a longer value is published as several strings, which receivers join
TXT_STRING_MAX = 255


class DnsError(Exception):
    """DNS did not answer (timeout, SERVFAIL): nothing can be concluded."""


@dataclass
class Check:
    kind: str  # mx, spf, dkim, dmarc
    subject: str  # the name looked up, or the server evaluated
    status: str  # ok, warning, error
    detail: str
    record: str = ""  # the record to publish, ready to copy
    data: dict = field(default_factory=dict)


def txt_strings(value):
    """``value`` cut in strings of at most 255 bytes (ASCII values)."""
    data = value.encode()
    return [
        data[i : i + TXT_STRING_MAX].decode()
        for i in range(0, len(data), TXT_STRING_MAX)
    ] or [""]


def zone_txt_line(name, value, ttl=3600):
    """A TXT record in zone-file syntax that every DNS server accepts as is."""
    quoted = " ".join(
        '"{}"'.format(chunk.replace("\\", "\\\\").replace('"', '\\"'))
        for chunk in txt_strings(value)
    )
    return f"{name.rstrip('.')}. {ttl} IN TXT {quoted}"


def make_resolver(nameserver="", timeout=TIMEOUT):
    """A dnspython resolver asking ``nameserver`` (or the system's)."""
    servers = parse_nameserver(nameserver)
    if not servers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host for host, _port in servers]
        resolver.nameserver_ports = {host: port for host, port in servers}
        resolver.port = servers[0][1]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def query(resolver, name, rdtype):
    """The answer's records, ``[]`` when the name or the type does not exist."""
    try:
        return list(resolver.resolve(name, rdtype, search=False))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
        raise DnsError(f"{name} {rdtype}: {error}") from error


def txt(resolver, name):
    """The TXT strings at ``name``, each record's strings joined."""
    return [
        b"".join(record.strings).decode("utf-8", "replace")
        for record in query(resolver, name, "TXT")
    ]


def addresses_of(resolver, host):
    """IP addresses of a host name, or the address itself."""
    try:
        literal = str(ipaddress.ip_address(host))
    except ValueError:
        literal = ""
    if literal:
        return [literal]
    found = []
    for rdtype in ("A", "AAAA"):
        found += [record.address for record in query(resolver, host, rdtype)]
    return found


# -- MX ----------------------------------------------------------------------
def check_mx(resolver, domain, mailboxes=()):
    """Can ``domain`` receive mail (the catchall, the bounces)?"""
    mx = query(resolver, domain, "MX")
    named = ", ".join(mailboxes)
    if mx and not (len(mx) == 1 and mx[0].exchange.to_text() == "."):
        hosts = ", ".join(sorted(r.exchange.to_text(omit_final_dot=True) for r in mx))
        return Check("mx", domain, OK, f"MX: {hosts}", data={"hosts": hosts})
    if not mx and addresses_of(resolver, domain):
        # RFC 5321 5.1: without MX, mail goes to the domain's own address
        return Check(
            "mx",
            domain,
            WARNING,
            f"No MX record; mail for {named or domain} goes to the A record of "
            f"{domain} (RFC 5321 fallback). Publish an MX to be explicit.",
            record=f"{domain}. 3600 IN MX 10 mail.{domain}.",
        )
    return Check(
        "mx",
        domain,
        ERROR,
        f"{domain} cannot receive mail (no MX, no A record): replies to "
        f"{named or 'the catchall'} and bounces are lost.",
        record=f"{domain}. 3600 IN MX 10 mail.{domain}.",
    )


# -- DKIM --------------------------------------------------------------------
def dkim_tags(text):
    tags = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def dkim_record_name(selector, domain):
    return f"{selector}._domainkey.{domain}"


def check_dkim(resolver, selector, domain, record):
    """Is ``record`` (``v=DKIM1; k=rsa; p=...``) published at the selector?"""
    name = dkim_record_name(selector, domain)
    wanted = dkim_tags(record)
    publish = zone_txt_line(name, record)
    found = txt(resolver, name)
    if not found:
        return Check(
            "dkim",
            name,
            ERROR,
            f"No DKIM key published at {name}: receivers cannot verify the signature.",
            record=publish,
        )
    keys = [dkim_tags(text) for text in found]
    if any(tags.get("p") == wanted.get("p") for tags in keys):
        return Check("dkim", name, OK, f"The key at {name} matches.")
    return Check(
        "dkim",
        name,
        ERROR,
        f"The key published at {name} is not this key (revoked, truncated or "
        "from another key pair): every signature would fail.",
        record=publish,
        data={"found": found},
    )
