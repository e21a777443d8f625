"""Demo PKI: a CA, a server certificate for loopback and client certificates for terminals.

This stands in for enrolment: a county technician's enrolment tool would issue the terminal's client
certificate from the province's CA. Everything here is idempotent: existing, still-valid files are reused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_TERMINAL_ID = "demo-terminal-01"
DEFAULT_SITE_ID = "demo-site-01"
_TERMINAL_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CA_DAYS = 3650
_LEAF_DAYS = 825
_RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class DemoPki:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    terminal_id: str
    site_id: str = DEFAULT_SITE_ID


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _still_valid(cert: x509.Certificate | None, issuer: x509.Certificate | None = None) -> bool:
    if cert is None or cert.not_valid_after_utc - _RENEW_BEFORE < _now():
        return False
    if issuer is None:
        return True
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    """Subject; a terminal's says who it is: CN = terminal id, OU = site id (the backend reads both)."""
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Village Kiosk Demo"),
    ]
    if unit is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def generate_ca(common_name: str = "Village Kiosk Demo CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (P-256: fast to generate, small handshakes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    server_hosts: tuple[str, ...] = (),
    unit: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, unit))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server_hosts:
        alt: list[x509.GeneralName] = []
        for host in server_hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def write_ca(directory: str | os.PathLike[str], common_name: str = "Village Kiosk Demo CA") -> tuple[Path, Path]:
    """Write a fresh CA into directory (ca.pem, ca.key); returns (cert, key) paths. Used for wrong-CA tests."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key, cert = generate_ca(common_name)
    _write_key(d / "ca.key", key)
    _write_cert(d / "ca.pem", cert)
    return d / "ca.pem", d / "ca.key"


def _ensure_ca(d: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, bool]:
    cert, key = _load_cert(d / "ca.pem"), _load_key(d / "ca.key")
    if key is not None and _still_valid(cert) and cert is not None and cert.public_key() == key.public_key():
        return key, cert, False
    key, cert = generate_ca()
    _write_key(d / "ca.key", key)
    _write_cert(d / "ca.pem", cert)
    return key, cert, True


def _ensure_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    cert_path: Path,
    key_path: Path,
    common_name: str,
    *,
    force: bool,
    server_hosts: tuple[str, ...] = (),
    unit: str | None = None,
) -> None:
    if not force:
        cert, key = _load_cert(cert_path), _load_key(key_path)
        if (
            key is not None
            and cert is not None
            and _still_valid(cert, ca_cert)
            and cert.public_key() == key.public_key()
            and _sans(cert) == set(server_hosts)
            and (server_hosts or cert.subject == _name(common_name, unit))  # e.g. a site move: reissue
        ):
            return
    key, cert = _issue(ca_key, ca_cert, common_name, server_hosts=server_hosts, unit=unit)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def _check_ids(terminal_id: str, site_id: str) -> None:
    if not _TERMINAL_ID.fullmatch(terminal_id):  # match + "$" would let a final "\n" in
        raise ValueError("terminal_id must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if not _TERMINAL_ID.fullmatch(site_id):
        raise ValueError("site_id must be 1-64 characters of A-Z a-z 0-9 . _ -")


def issue_client_cert(
    directory: str | os.PathLike[str],
    terminal_id: str,
    *,
    site_id: str = DEFAULT_SITE_ID,
    force: bool = False,
) -> tuple[Path, Path]:
    """Client certificate (CN = terminal id, OU = site id) signed by the demo CA in directory;
    returns (cert, key) paths."""
    _check_ids(terminal_id, site_id)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert, _ = _ensure_ca(d)
    clients = d / "clients"
    clients.mkdir(exist_ok=True)
    cert_path, key_path = clients / f"{terminal_id}.pem", clients / f"{terminal_id}.key"
    _ensure_leaf(ca_key, ca_cert, cert_path, key_path, terminal_id, force=force, unit=site_id)
    return cert_path, key_path


def ensure_demo_pki(
    directory: str | os.PathLike[str],
    terminal_id: str = DEFAULT_TERMINAL_ID,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    site_id: str = DEFAULT_SITE_ID,
) -> DemoPki:
    """CA + server certificate for hosts + client certificate for terminal_id at site_id, reusing valid files."""
    _check_ids(terminal_id, site_id)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert, fresh = _ensure_ca(d)
    _ensure_leaf(
        ca_key, ca_cert, d / "server.pem", d / "server.key", hosts[0], force=fresh, server_hosts=tuple(hosts)
    )
    clients = d / "clients"
    clients.mkdir(exist_ok=True)
    cert_path, key_path = clients / f"{terminal_id}.pem", clients / f"{terminal_id}.key"
    _ensure_leaf(ca_key, ca_cert, cert_path, key_path, terminal_id, force=fresh, unit=site_id)
    return DemoPki(
        directory=d,
        ca_cert=d / "ca.pem",
        ca_key=d / "ca.key",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=cert_path,
        client_key=key_path,
        terminal_id=terminal_id,
        site_id=site_id,
    )
