"""A real authoritative DNS server on loopback, for the sending-domain tests.

It speaks the DNS protocol over UDP and TCP (dnspython's wire format) on a
free port of 127.0.0.1 and answers from a zone the test writes in plain
zone-file syntax. The addon's resolver is pointed at it by the system
parameter ``mail_outbound.dns_nameserver`` = ``127.0.0.1:PORT``; the pure
suite passes the same string to ``tools.dns_check.make_resolver``.

No odoo import: the pure suite uses it too.

    with LoopbackDns() as dns_server:
        dns_server.load('''
            example.com. 300 IN MX 10 mx.example.com.
            example.com. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
        ''')
        resolver = make_resolver(dns_server.nameserver)
"""

import socketserver
import struct
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone


class _Answering:
    owner = None

    def answer(self, wire):
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        if self.owner.servfail:
            # a DNS outage as resolvers see it: an answer saying nothing
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        zone = self.owner.zone
        node = zone.get_node(question.name) if zone else None
        if node is None:
            known = zone is not None and any(
                name.is_subdomain(question.name) for name in zone.nodes
            )
            # an empty non-terminal exists (NOERROR, no data); others do not
            if not known:
                response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        rdataset = node.get_rdataset(question.rdclass, question.rdtype)
        if rdataset is None:
            cname = node.get_rdataset(question.rdclass, dns.rdatatype.CNAME)
            rdataset = cname
        if rdataset is not None:
            rrset = response.find_rrset(
                response.answer,
                question.name,
                question.rdclass,
                rdataset.rdtype,
                create=True,
            )
            rrset.update(rdataset)
        self.owner.queries.append((question.name.to_text(), question.rdtype))
        # a UDP answer too large for the client's buffer is truncated
        return response.to_wire()


class _UdpHandler(_Answering, socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = self.answer(data)
        if len(reply) > 512 and self.owner.truncate_udp:
            query = dns.message.from_wire(data)
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC
            reply = short.to_wire()
        sock.sendto(reply, self.client_address)


class _TcpHandler(_Answering, socketserver.BaseRequestHandler):
    def handle(self):
        header = self.request.recv(2)
        if len(header) < 2:
            return
        (length,) = struct.unpack("!H", header)
        data = b""
        while len(data) < length:
            chunk = self.request.recv(length - len(data))
            if not chunk:
                return
            data += chunk
        reply = self.answer(data)
        self.owner.tcp_queries += 1
        self.request.sendall(struct.pack("!H", len(reply)) + reply)


class LoopbackDns:
    """UDP and TCP DNS on the same free port of 127.0.0.1, each in a thread.

    ``truncate_udp``: answers over 512 bytes come back truncated on UDP, so
    that the client has to retry over TCP (as a real server does).
    """

    def __init__(self, truncate_udp=True):
        self.zone = None
        self.servfail = False  # True: every query gets SERVFAIL (an outage)
        self.queries = []
        self.tcp_queries = 0
        self.truncate_udp = truncate_udp
        owner = self
        udp_handler = type("Udp", (_UdpHandler,), {"owner": owner})
        tcp_handler = type("Tcp", (_TcpHandler,), {"owner": owner})
        # the same free port for both protocols, as a nameserver string has
        # one port; retried if UDP's port is taken on TCP
        for _attempt in range(20):
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), udp_handler)
            self.port = self.udp.server_address[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(
                    ("127.0.0.1", self.port), tcp_handler
                )
                break
            except OSError:
                self.udp.server_close()
        else:
            raise OSError("no free port for both UDP and TCP on 127.0.0.1")
        self.udp.daemon_threads = self.tcp.daemon_threads = True
        self._threads = []

    @property
    def nameserver(self):
        return f"127.0.0.1:{self.port}"

    def load(self, text, origin="."):
        """Replace the zone by ``text`` (zone-file syntax, absolute names)."""
        self.zone = dns.zone.from_text(
            text, origin=origin, relativize=False, check_origin=False
        )
        self.queries.clear()
        self.tcp_queries = 0

    def start(self):
        for server in (self.udp, self.tcp):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def zone_txt(name, text):
    """A TXT record line, split into 255-byte strings as DNS requires."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    quoted = " ".join('"{}"'.format(c.replace('"', '\\"')) for c in chunks)
    return f"{name} 300 IN TXT {quoted}"
