"""This instance's federation identity: a private key and its certificate (with the CA that issued
it), kept in ACUMOS_FEDERATION_DIR with the key readable by the portal's user only. The same pair is
the TLS terminator's server certificate, the client certificate of calls to peers, and the key that
signs this instance's manifests. Made once by `manage.py federation_identity`; the key is never shown
or sent anywhere."""

from __future__ import annotations

import datetime
import ipaddress
import os
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from federation.certificates import CertificateProblem, common_name, fingerprint, load_bundle, to_pem

KEY_FILE, CERT_FILE, CA_FILE, CA_KEY_FILE, ID_FILE = "instance.key", "instance.crt", "ca.crt", "ca.key", "instance-id"


class NoIdentity(Exception):
    """Federation needs this instance's identity, and there is none yet."""

    def __init__(self):
        super().__init__("this instance has no federation identity yet: an admin makes one with "
                         "`manage.py federation_identity --create --name <its host name>`")


@dataclass(frozen=True)
class Identity:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the CA(s) that issued it, for peers to check it against
    key_path: Path
    cert_path: Path
    instance_id: uuid.UUID

    @property
    def name(self) -> str:
        return common_name(self.certificate)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    @property
    def anchors(self) -> list[x509.Certificate]:
        """What this instance's own signatures are checked against: its certificate and its CA."""
        return [self.certificate, *self.chain]

    def private_key(self):
        return serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)

    def public_pem(self) -> str:
        """The certificates a peer registers this instance with (never the key)."""
        return to_pem(*self.chain) if self.chain else to_pem(self.certificate)


def directory() -> Path:
    return Path(settings.ACUMOS_FEDERATION_DIR)


def exists() -> bool:
    return (directory() / KEY_FILE).exists() and (directory() / CERT_FILE).exists()


def load() -> Identity:
    """This instance's identity (read once per process: the files change only through the command,
    which tells operators to restart)."""
    return _load(str(directory()))


def forget() -> None:
    _load.cache_clear()


@cache
def _load(folder: str) -> Identity:
    root = Path(folder)
    if not (root / KEY_FILE).exists() or not (root / CERT_FILE).exists():
        raise NoIdentity()
    certificates = load_bundle((root / CERT_FILE).read_bytes())
    chain = load_bundle((root / CA_FILE).read_bytes()) if (root / CA_FILE).exists() else certificates[1:]
    return Identity(certificate=certificates[0], chain=tuple(chain), key_path=root / KEY_FILE,
                    cert_path=root / CERT_FILE, instance_id=uuid.UUID((root / ID_FILE).read_text().strip()))


# ---------------------------------------------------------------- making one

def create(name: str, hosts: list[str], *, days: int = 825) -> Identity:
    """A new site's identity: a CA of its own (whose certificate peers register) and the instance's
    certificate issued by it, valid as TLS server and client, with `hosts` as its names."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} federation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=days * 2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    certificate = issue(ca, ca_key, key.public_key(), name, hosts, days=days)
    return install(certificate, key, chain=[ca], ca_key=ca_key)


def issue(ca: x509.Certificate, ca_key, public_key, name: str, hosts: list[str], *, days: int = 825,
          not_before: datetime.datetime | None = None) -> x509.Certificate:
    """A certificate for `name` signed by `ca`: TLS server and client, signing (also used by tests
    with a throwaway CA)."""
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts or [name]]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def install(certificate: x509.Certificate, key, *, chain: list[x509.Certificate], ca_key=None) -> Identity:
    """Write an identity into ACUMOS_FEDERATION_DIR: keys readable by this user only, written before
    the certificate, so a half-written identity never looks complete."""
    _check_key_matches(certificate, key)
    root = directory()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    if ca_key is not None:
        _write_private(root / CA_KEY_FILE, _key_pem(ca_key))
    _write_private(root / KEY_FILE, _key_pem(key))
    if chain:
        (root / CA_FILE).write_text(to_pem(*chain))
    else:
        (root / CA_FILE).unlink(missing_ok=True)
    (root / CERT_FILE).write_text(to_pem(certificate, *chain))
    if not (root / ID_FILE).exists():
        (root / ID_FILE).write_text(f"{uuid.uuid4()}\n")
    forget()
    return load()


def import_files(cert_path: Path, key_path: Path, ca_path: Path | None = None) -> Identity:
    """An identity the operator already has (issued by the organisation's CA)."""
    certificates = load_bundle(cert_path.read_bytes())
    chain = load_bundle(ca_path.read_bytes()) if ca_path else certificates[1:]
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateProblem(f"{key_path} is not an unencrypted PEM private key: {exc}") from exc
    return install(certificates[0], key, chain=chain)


def _check_key_matches(certificate: x509.Certificate, key) -> None:
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, public)
    if mine != certificate.public_key().public_bytes(serialization.Encoding.DER, public):
        raise CertificateProblem("the private key does not belong to the certificate")


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
