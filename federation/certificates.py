"""X.509 in the few shapes federation needs: read PEM bundles, name a certificate (its subject CN and
fingerprint), and decide whether a certificate is the one registered for a peer or issued by its CA.
Pure functions over `cryptography`; no Django."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID


class CertificateProblem(Exception):
    """A certificate that cannot be used, with the sentence that says why."""


def load_bundle(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM text; CertificateProblem when there is none or one is broken."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateProblem(f"not a PEM certificate: {exc}") from exc
    if not certificates:
        raise CertificateProblem("no certificate in the PEM text")
    return certificates


def load_one(pem: str | bytes) -> x509.Certificate:
    return load_bundle(pem)[0]


def to_pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, hex: how pages and logs name a certificate."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def check_current(certificate: x509.Certificate, now: datetime.datetime | None = None) -> None:
    now = now or datetime.datetime.now(datetime.UTC)
    if now < certificate.not_valid_before_utc:
        raise CertificateProblem(f"the certificate of {common_name(certificate)!r} is not valid before "
                                 f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if now > certificate.not_valid_after_utc:
        raise CertificateProblem(f"the certificate of {common_name(certificate)!r} expired on "
                                 f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def vouched_for(certificate: x509.Certificate, anchors: list[x509.Certificate]) -> bool:
    """True if `certificate` is one of `anchors` (a pinned certificate), or one of them that is a CA
    issued it (a CA registered for the peer). Only direct issuance by a CA: a peer's CA vouches for
    its own certificates, never for a chain a third party could extend, and a pinned leaf vouches for
    itself alone, never for certificates its key signs."""
    for anchor in anchors:
        if anchor.fingerprint(hashes.SHA256()) == certificate.fingerprint(hashes.SHA256()):
            return True
        if anchor.subject != certificate.issuer or not is_ca(anchor):
            continue
        try:
            certificate.verify_directly_issued_by(anchor)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False
