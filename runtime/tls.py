"""Mutual TLS for node gRPC: the PEM files, checked once, and the credentials built from them.

One set of files serves both directions: a node serves with its certificate and presents the
same one when it calls another node, and every side trusts only certificates its CA signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict


class TlsError(Exception):
    """A TLS file is missing, unreadable or not what it should be (one line)."""


@dataclass(frozen=True)
class TlsMaterial:
    ca: bytes
    cert: bytes
    key: bytes


class TlsFiles(BaseModel):
    """Paths of the CA certificate, this side's certificate and its private key (PEM)."""

    model_config = ConfigDict(frozen=True)

    ca: Path
    cert: Path
    key: Path

    def load(self) -> TlsMaterial:
        """Read and check the three files; a problem is a `TlsError` naming the file."""
        ca, cert, key = (_read(self.ca, "CA"), _read(self.cert, "cert"), _read(self.key, "key"))
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError as e:
            raise TlsError(f"TLS CA {self.ca} holds no PEM certificate") from e
        try:
            own = x509.load_pem_x509_certificate(cert)
        except ValueError as e:
            raise TlsError(f"TLS cert {self.cert} is not a PEM certificate") from e
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as e:
            raise TlsError(f"TLS key {self.key} is not an unencrypted PEM private key") from e
        if private.public_key() != own.public_key():
            raise TlsError(f"TLS key {self.key} does not belong to the cert {self.cert}")
        return TlsMaterial(ca, cert, key)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Serve with this certificate; admit only clients with a certificate the CA signed."""
        m = self.load()
        return grpc.ssl_server_credentials(
            [(m.key, m.cert)], root_certificates=m.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Trust servers the CA signed; present this certificate as the client's."""
        m = self.load()
        return grpc.ssl_channel_credentials(
            root_certificates=m.ca, private_key=m.key, certificate_chain=m.cert
        )


def tls_from_flags(ca: Path | None, cert: Path | None, key: Path | None) -> TlsFiles | None:
    """The three flags make TLS files together, or none is given (plaintext)."""
    given = [ca, cert, key]
    if all(p is None for p in given):
        return None
    if any(p is None for p in given):
        raise TlsError("TLS needs a CA, a cert and a key together (all three flags or none)")
    assert ca is not None and cert is not None and key is not None
    return TlsFiles(ca=ca, cert=cert, key=key)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TlsError(f"cannot read the TLS {what} {path}: {e.strerror}") from e
