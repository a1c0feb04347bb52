"""Throwaway certificates for federation tests: a CA, and certificates it issues (current, expired,
for any CN), made in memory with federation.identity.issue."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation import identity
from federation.certificates import to_pem


@dataclass
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return to_pem(self.certificate)

    @property
    def escaped(self) -> str:
        """As nginx forwards it ($ssl_client_escaped_cert)."""
        return quote(self.pem, safe="")

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_text(self.pem)
        key.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert, key


class ThrowawayCA:
    """A CA made in memory (valid from 30 days ago for a year: expired certificates it issues are
    within its own validity). The real-portal harness writes it to files (cluster.CertificateAuthority)."""

    def __init__(self, name: str = "Test federation CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
        self.certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365))
                            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                           critical=True)
                            .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> str:
        return to_pem(self.certificate)

    def issue(self, name: str, *, expired: bool = False, hosts: list[str] | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=20 if expired else 0, minutes=5)
        certificate = identity.issue(self.certificate, self.key, key.public_key(), name, hosts or [name],
                                     days=10 if expired else 30, not_before=start)
        return Issued(certificate, key)
