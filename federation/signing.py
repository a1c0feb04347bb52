"""Signed documents (revision manifests, tombstones): the document as canonical JSON, signed with
this instance's key, the signature carrying the signer's certificate so that anyone down the line
(A -> B -> C) can check it without asking the signer. Whether the signer is someone this site knows
is a separate answer (`trusted`): the signature proves the bytes, the anchors prove the signer."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from acumos_portal.canonical import canonical
from federation.certificates import CertificateProblem, common_name, fingerprint, load_one, to_pem, vouched_for

ALGORITHMS = {"ES256", "RS256", "EdDSA"}


class BadSignature(Exception):
    """A signature that does not hold, or cannot be checked, with the sentence that says why."""


@dataclass(frozen=True)
class Signer:
    name: str  # the signer certificate's CN: the instance that signed
    fingerprint: str
    trusted: bool  # its certificate is one of the anchors, or issued by one


def sign(document: dict, identity) -> dict:
    key = identity.private_key()
    algorithm, value = _sign_bytes(key, canonical(document))
    return {"alg": algorithm, "certificate": to_pem(identity.certificate),
            "value": base64.b64encode(value).decode()}


def _sign_bytes(key, data: bytes) -> tuple[str, bytes]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256", key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key.sign(data)
    raise BadSignature(f"cannot sign with a {type(key).__name__}: use an EC P-256, RSA or Ed25519 key")


def verify(document: dict, signature: dict, anchors: list[x509.Certificate]) -> Signer:
    """Check `signature` over `document`; BadSignature if it does not hold. The answer says who
    signed and whether `anchors` vouch for them."""
    if not isinstance(signature, dict) or signature.get("alg") not in ALGORITHMS:
        raise BadSignature(f"the signature's algorithm must be one of {', '.join(sorted(ALGORITHMS))}")
    try:
        certificate = load_one(str(signature.get("certificate", "")))
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except (CertificateProblem, ValueError) as exc:
        raise BadSignature(f"the signature cannot be read: {exc}") from exc
    try:
        _verify_bytes(certificate.public_key(), signature["alg"], value, canonical(document))
    except (InvalidSignature, TypeError, ValueError) as exc:
        raise BadSignature(f"the signature of {common_name(certificate)!r} does not match the document") from exc
    return Signer(name=common_name(certificate), fingerprint=fingerprint(certificate),
                  trusted=vouched_for(certificate, anchors))


def _verify_bytes(public_key, algorithm: str, value: bytes, data: bytes) -> None:
    if algorithm == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(value, data, ec.ECDSA(hashes.SHA256()))
    elif algorithm == "RS256" and isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(value, data, padding.PKCS1v15(), hashes.SHA256())
    elif algorithm == "EdDSA" and isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(value, data)
    else:
        raise TypeError(f"{algorithm} does not fit the certificate's key")
