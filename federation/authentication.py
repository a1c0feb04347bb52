"""Who is calling the peer API. The TLS terminator (nginx, `manage.py federation_terminator`) has
checked that the caller holds the key of the client certificate it presented, and forwards that
certificate in X-Client-Cert with ACUMOS_FEDERATION_TERMINATOR_SECRET in X-Acumos-Terminator. The
portal believes the certificate only with that secret (anyone may send headers to the portal's own
port), then decides here, in one place, which peer it is: the certificate's subject CN names the
peer, the certificate must be the one registered for it or issued by its registered CA, and be
current; only an active peer passes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from django.conf import settings

from federation.certificates import CertificateProblem, check_current, common_name, load_bundle, load_one, vouched_for
from federation.choices import PeerStatus
from federation.models import Peer

TERMINATOR_HEADER = "X-Acumos-Terminator"
CERT_HEADER = "X-Client-Cert"
VERIFY_HEADER = "X-Client-Verify"
MAX_SUBJECT = 200  # Peer.subject


class PeerRefused(Exception):
    """The caller is not a peer that may call: 403, with the sentence that says why (and `code`)."""

    def __init__(self, code: str, message: str, status: int = 403):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class Caller:
    """A caller whose certificate the terminator vouched for: a registered peer, or (for
    self-registration) nobody yet."""

    certificate: x509.Certificate
    subject: str
    peer: Peer | None


def presented_certificate(request) -> x509.Certificate:
    """The client certificate, if the terminator forwarded one; PeerRefused otherwise."""
    secret = request.headers.get(TERMINATOR_HEADER, "")
    expected = settings.ACUMOS_FEDERATION_TERMINATOR_SECRET
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise PeerRefused("not_through_terminator", "the peer API is served only through the federation TLS "
                                                    "terminator (mutual TLS); this call did not come through it")
    escaped = request.headers.get(CERT_HEADER, "")
    if not escaped or request.headers.get(VERIFY_HEADER, "NONE") == "NONE":
        raise PeerRefused("no_client_certificate", "a peer must present its client certificate")
    try:
        return load_one(unquote(escaped))
    except CertificateProblem as exc:
        raise PeerRefused("bad_client_certificate", f"the client certificate cannot be read: {exc}") from exc


def identify(request) -> Caller:
    """The caller and its peer (None if no peer has its subject), its certificate checked for dates."""
    certificate = presented_certificate(request)
    try:
        check_current(certificate)
    except CertificateProblem as exc:
        raise PeerRefused("certificate_not_current", str(exc)) from exc
    subject = common_name(certificate)
    if not subject or len(subject) > MAX_SUBJECT or not subject.isprintable():
        raise PeerRefused("bad_client_certificate", "the client certificate's subject must have a common name "
                                                    f"(CN) of printable characters, at most {MAX_SUBJECT}")
    return Caller(certificate=certificate, subject=subject, peer=Peer.objects.filter(subject=subject).first())


def authenticate(request) -> Peer:
    """The active peer calling, or PeerRefused saying why not."""
    caller = identify(request)
    peer = caller.peer
    if peer is None:
        raise PeerRefused("unknown_peer", f"no peer is registered here with the subject CN={caller.subject}")
    if not certificate_belongs(caller.certificate, peer):
        raise PeerRefused("certificate_mismatch", f"the certificate presented for {peer.name} is neither the one "
                                                  "registered for it nor issued by its registered CA")
    if peer.status != PeerStatus.ACTIVE:
        raise PeerRefused("peer_not_active", f"the peer {peer.name} is {peer.get_status_display()} here; "
                                             "an admin of this site must activate it")
    return peer


def certificate_belongs(certificate: x509.Certificate, peer: Peer) -> bool:
    try:
        anchors = load_bundle(peer.certificate)
    except CertificateProblem:
        return False
    return vouched_for(certificate, anchors)
