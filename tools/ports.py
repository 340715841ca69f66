"""Port policy: which SMTP ports a database refuses, which it proposes.

Hosting operators block port 25 (documentation, "Port restriction"); the
addon lets any database say so. Submission ports: 587 with STARTTLS
(RFC 6409), 465 with implicit TLS (RFC 8314); 2525 is the usual alternative
when 587 is filtered too.
"""

SUBMISSION_STARTTLS = 587
SUBMISSION_TLS = 465
ALTERNATIVE = 2525


def parse_blocked_ports(value):
    """``"25, 2526"`` -> ``{25, 2526}``.

    Raises ``ValueError(part)`` naming the first part that is not a port.
    """
    ports = set()
    for part in (value or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ValueError(part)
        ports.add(int(part))
    return ports


def is_port_blocked(port, blocked):
    return bool(port) and int(port) in blocked


def suggested_port(encryption):
    """The port to propose for an encryption mode."""
    return SUBMISSION_TLS if encryption == "ssl" else SUBMISSION_STARTTLS
