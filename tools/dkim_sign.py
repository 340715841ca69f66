"""DKIM keys and signatures (dkimpy), no odoo import.

``generate_rsa`` makes a 2048-bit key pair: the private key as PKCS#1 PEM
(what dkimpy reads) and the public key as the base64 ``p=`` of the TXT
record. ``generate_ed25519`` makes an Ed25519 pair (RFC 8463): the private
key as the base64 32-byte seed dkimpy reads, the public key as raw base64;
receivers that do not know Ed25519 ignore its signature, so it is meant to
sign alongside an RSA key. ``sign_message`` adds a DKIM-Signature header to an
``email.message.Message`` in place, relaxed/relaxed so that the re-folding of
headers by smtplib's generator keeps the signature valid.

Private keys never reach a log: dkimpy is given no logger, and errors are
re-raised without the key.
"""

import base64
import re

import dkim
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA_BITS = 2048
SELECTOR_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class SigningError(Exception):
    """The message could not be signed (the text never holds the key)."""


def generate_rsa(bits=RSA_BITS):
    """``(private PEM text, public base64)`` of a new RSA key."""
    key = rsa.generate_private_key(
        public_exponent=65537, key_size=bits, backend=default_backend()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def generate_ed25519():
    """``(private base64 seed, public base64)`` of a new Ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


GENERATORS = {"rsa": generate_rsa, "ed25519": generate_ed25519}
SIGNATURE_ALGORITHMS = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}


def txt_record(public_key, algorithm="rsa"):
    """The TXT value to publish at ``selector._domainkey.domain``."""
    return f"v=DKIM1; k={algorithm}; p={public_key}"


def zone_line(selector, domain, public_key, algorithm="rsa"):
    """The record in zone-file syntax, split in 255-byte strings."""
    value = txt_record(public_key, algorithm)
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{selector}._domainkey.{domain}. 3600 IN TXT ( {quoted} )"


def valid_selector(selector):
    return bool(SELECTOR_RE.match(selector or ""))


def domain_of(address):
    return (address or "").rpartition("@")[2].strip(" >").lower().rstrip(".")


def signs_for(key_domain, from_domain):
    """A key of ``key_domain`` signs mail from it and from its subdomains."""
    key_domain, from_domain = key_domain.lower(), from_domain.lower()
    return from_domain == key_domain or from_domain.endswith("." + key_domain)


def _wire(message):
    policy = message.policy.clone(linesep="\r\n")
    return message.as_bytes(policy=policy)


def signature(data, selector, domain, private_key, algorithm="rsa"):
    """The DKIM-Signature value (one line) for the message bytes ``data``."""
    try:
        header = dkim.sign(
            data,
            selector.encode(),
            domain.encode(),
            private_key.encode(),
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=SIGNATURE_ALGORITHMS[algorithm],
        )
    except Exception as error:  # noqa: BLE001 - dkimpy raises many types
        raise SigningError(
            f"DKIM signing for {domain} (selector {selector}) failed: "
            f"{type(error).__name__}"
        ) from None
    name, _sep, value = header.decode().partition(":")
    assert name.lower() == "dkim-signature"
    return " ".join(value.split())


def sign_message(message, selector, domain, private_key, algorithm="rsa"):
    """Add the DKIM-Signature header on top of ``message``, in place.

    The b= value is cut in 64-character pieces: whitespace inside b= is
    ignored by verifiers, and it lets the email generator fold the header at
    spaces instead of encoding an over-long word.
    """
    value = signature(_wire(message), selector, domain, private_key, algorithm)
    head, _sep, b_value = value.rpartition(" b=")
    pieces = [b_value[i : i + 64] for i in range(0, len(b_value), 64)]
    value = f"{head} b={' '.join(pieces)}"
    # on top, as RFC 6376 5.6 asks; the Message API only appends
    message._headers.insert(  # noqa: SLF001
        0, message.policy.header_store_parse("DKIM-Signature", value)
    )
    return value


def verify(data, dnsfunc, index=0):
    """dkimpy's verification of the ``index``-th signature of ``data``."""
    try:
        return dkim.DKIM(data).verify(idx=index, dnsfunc=dnsfunc)
    except dkim.DKIMException:
        return False
