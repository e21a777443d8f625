"""Who is calling: the terminal named by the verified client certificate, never by anything in the request.

The TLS layer (backend/server.py) puts the peer certificate into the ASGI scope the standard way, as the
"tls" extension (client_cert_chain: PEM strings, leaf first). The app reads the terminal from there: CN is the
terminal id, OU the site id. In-process tests wrap the app with `WithClientCert` to present a certificate.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from api.patterns import ID_PATTERN

_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Terminal:
    terminal_id: str
    site_id: str
    fingerprint: str  # SHA-256 of the certificate (DER), hex: sessions are bound to it, revocation names it


def tls_extension(der: bytes | None) -> dict[str, Any]:
    """The ASGI "tls" scope extension for a connection whose peer presented `der` (or nothing)."""
    pem = ssl.DER_cert_to_PEM_cert(der) if der else None
    return {
        "client_cert_chain": [pem] if pem else [],
        "client_cert_name": _rfc4514(pem) if pem else None,
        "client_cert_error": None,
    }


@lru_cache(maxsize=1024)
def _parse(pem: str) -> Terminal | None:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError:
        return None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(cn) != 1 or len(ou) != 1:
        return None
    terminal_id, site_id = cn[0].value, ou[0].value
    if not isinstance(terminal_id, str) or not isinstance(site_id, str):
        return None
    if not _ID.fullmatch(terminal_id) or not _ID.fullmatch(site_id):  # match + "$" lets a final "\n" in
        return None
    return Terminal(terminal_id, site_id, cert.fingerprint(hashes.SHA256()).hex())


def terminal_from_pem(pem: str) -> Terminal | None:
    """The terminal a PEM certificate names (None: not a terminal certificate)."""
    return _parse(pem.strip() + "\n")


def certificate_fingerprint(pem: str | bytes) -> str:
    """SHA-256 fingerprint (hex) of a PEM certificate, as revocation lists it."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data).fingerprint(hashes.SHA256()).hex()


@lru_cache(maxsize=1024)
def _rfc4514(pem: str) -> str | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii")).subject.rfc4514_string()
    except ValueError:
        return None


def terminal_of(scope: MutableMapping[str, Any]) -> Terminal | None:
    """The terminal of a request, from the TLS layer's certificate (None: no usable certificate)."""
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain or not isinstance(chain[0], str):
        return None
    return _parse(chain[0])


class WithClientCert:
    """ASGI wrapper that sets the "tls" scope extension (replacing whatever was there)."""

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app, self.tls = app, tls

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": self.tls}}
        await self.app(scope, receive, send)


def with_cert_pem(app: Any, pem: str | None) -> WithClientCert:
    """The app as seen through a connection that presented this PEM certificate (None: no certificate)."""
    der = ssl.PEM_cert_to_DER_cert(pem) if pem else None
    return WithClientCert(app, tls_extension(der))
