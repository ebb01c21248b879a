"""Throwaway certificates for a local stack: a CA, and certificates it signs for loopback.

Every certificate is good for both ends of a connection (server and client authentication)
and names 127.0.0.1, ::1 and localhost (and a node on a test host, that host's address too),
so a node serves with the same pair it presents when it calls another node, and no client
needs a target-name override. The common name is
who holds it: `node<N>` for node N (which alone may send replication streams as node N),
`client` for airctl and the worker.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.identity import node_name
from runtime.tls import TlsFiles

VALIDITY = timedelta(days=30)
CLIENT_NAME = "client"  # airctl's and the worker's certificate
LOOPBACK: list[x509.GeneralName] = [
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
    x509.DNSName("localhost"),
]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM."""

    cert: bytes
    key: bytes


@dataclass(frozen=True)
class Authority:
    """A self-signed CA that issues leaf certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "airreplication local CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return _pem(self.cert)

    def issue(self, name: str, *, expired: bool = False, ips: Sequence[str] = ()) -> Pair:
        """A loopback certificate for `name`, naming `ips` too; `expired` makes one whose
        validity has ended."""
        names = LOOPBACK + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        start, end = (now - 2 * VALIDITY, now - VALIDITY) if expired else (now, now + VALIDITY)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - timedelta(minutes=5))  # tolerate a little clock skew
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Pair(_pem(cert), _key_pem(key))

    def write(
        self, directory: Path, name: str, *, expired: bool = False, ips: Sequence[str] = ()
    ) -> TlsFiles:
        """Issue a certificate for `name` (naming `ips` too) and write it, its key and this
        CA's certificate."""
        directory.mkdir(parents=True, exist_ok=True)
        files = tls_paths(directory, name)
        files.ca.write_bytes(self.pem)
        pair = self.issue(name, expired=expired, ips=ips)
        files.cert.write_bytes(pair.cert)
        _write_private(files.key, pair.key)
        return files


def tls_paths(directory: Path, name: str) -> TlsFiles:
    """Where `Authority.write` puts the files for `name`."""
    return TlsFiles(
        ca=directory / "ca.pem", cert=directory / f"{name}.pem", key=directory / f"{name}.key"
    )


def issue_all(
    directory: Path, node_ids: list[int], node_ips: Mapping[int, str] | None = None
) -> None:
    """A fresh CA, each node's certificate (naming its test host's address, if it has one)
    and the client's under `directory` (old replaced)."""
    authority = Authority.create()
    for node_id in node_ids:
        ip = (node_ips or {}).get(node_id)
        authority.write(directory, node_name(node_id), ips=[ip] if ip else [])
    authority.write(directory, CLIENT_NAME)


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
