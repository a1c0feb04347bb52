"""Signed entitlements: the portal's permission for this deployment to answer a number of predictions
of the models an agreement covers, until a time (design: docs/design/licensing.md, section 4).

    {"entitlement": {"v": 1, "id": "<uuid>", "kid": "<16 hex>", "issuer": "...", "deployment": "<uuid>",
                     "replica": 0, "solution": "<uuid>", "models": ["<sha256 of modelpackage.zip>", ...],
                     "agreement": "<uuid>", "assignee": "user:alice", "actions": ["predict"],
                     "predictions": 10000 | null, "not_before": "<ISO 8601>", "not_after": "...",
                     "issued": "..."},
     "alg": "EdDSA", "sig": "<base64 Ed25519 signature over canonical(entitlement)>"}

Only a public key is here (RUNNER_ENTITLEMENT_KEYS): whoever operates the runner can read it and
still cannot mint a document. Verification runs when a document is installed or a worker picks it up,
never per prediction; runner_image.meter counts the predictions.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from runner_image.errors import InvalidEntitlement

ALGORITHM = "EdDSA"
VERSION = 1
FIELDS = ("v", "id", "kid", "issuer", "deployment", "replica", "solution", "models", "agreement", "assignee",
          "actions", "predictions", "not_before", "not_after", "issued")


def canonical(obj) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, UTF-8. Byte for byte what the portal's
    federation/signing.canonical makes, so both sides sign and check the same bytes whatever order
    the JSON travelled in."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class Entitlement:
    """A verified document, with what the meter compares on every prediction already parsed."""

    id: str
    key: bytes  # the id's 16 bytes, as the meter file holds them
    agreement: str
    models: frozenset[str]
    predictions: int | None  # None: unlimited, bound by time only
    allows_predict: bool
    not_before: float
    not_after: float
    issued: float
    document: dict  # the signed document as sent, written to state/entitlement.json

    @property
    def body(self) -> dict:
        return self.document["entitlement"]

    def summary(self) -> dict:
        return {"id": self.id, "predictions": self.predictions, "not_after": self.body["not_after"]}


def verify(document, keys: dict[str, bytes], deployment: str, *, newer_than: float | None = None,
           now: float | None = None, fresh: bool = True) -> Entitlement:
    """The entitlement in `document`, or InvalidEntitlement saying why not.

    Authenticity first (algorithm, a known kid, the signature), then what the signed fields say: the
    version, this deployment, and, for a document being installed (`fresh`), a `not_after` still ahead
    and an `issued` not older than `newer_than` (the installed one's: no replay of an older document).
    """
    body = _signed_body(document)
    _check_signature(document, body, keys)
    if body.get("v") != VERSION:
        raise _refused("version", f"entitlement version {body.get('v')!r} is not supported; this runner reads "
                                  f"v{VERSION}")
    entitlement = _parse(document, body)
    if body["deployment"] != deployment:
        raise _refused("deployment", f"the entitlement is for deployment {body['deployment']!r}; this runner is "
                                     f"deployment {deployment!r}")
    if fresh:
        _check_fresh(entitlement, newer_than, time.time() if now is None else now)
    return entitlement


def _refused(reason: str, message: str, status: int | None = None, **details) -> InvalidEntitlement:
    return InvalidEntitlement(message, {"reason": reason, **details}, status=status)


def _signed_body(document) -> dict:
    if not isinstance(document, dict) or not isinstance(document.get("entitlement"), dict):
        raise _refused("format", 'the body must be a signed entitlement: {"entitlement": {...}, "alg": "EdDSA", '
                                 '"sig": "<base64>"}')
    unexpected = sorted(set(document) - {"entitlement", "alg", "sig"})
    if unexpected:
        raise _refused("format", f"unexpected keys beside the signed entitlement: {', '.join(unexpected)} "
                                 "(they would not be covered by the signature)")
    if document.get("alg") != ALGORITHM:
        raise _refused("alg", f"the signature algorithm must be {ALGORITHM}, got {document.get('alg')!r}")
    return document["entitlement"]


def _check_signature(document: dict, body: dict, keys: dict[str, bytes]) -> None:
    # Imported here: only a runner that meters verifies, and only when a document is installed.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    kid = body.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise _refused("kid", f"the entitlement is signed with key {kid!r}, which this runner does not know "
                              f"(it knows {', '.join(sorted(keys)) or 'no key'}: RUNNER_ENTITLEMENT_KEYS)", kid=kid)
    try:
        signature = base64.b64decode(str(document.get("sig", "")), validate=True)
        Ed25519PublicKey.from_public_bytes(keys[kid]).verify(signature, canonical(body))
    except (binascii.Error, ValueError, InvalidSignature):
        raise _refused("signature", f"the signature does not match the entitlement for key {kid!r}: the document "
                                    "was changed after it was signed, or not signed by the portal",
                       kid=kid) from None


def _check_fresh(entitlement: Entitlement, newer_than: float | None, now: float) -> None:
    if entitlement.not_after <= now:
        raise _refused("expired", f"the entitlement ended at {entitlement.body['not_after']}; ask the portal for a "
                                  "renewed one", not_after=entitlement.body["not_after"])
    if newer_than is not None and entitlement.issued < newer_than:
        raise _refused("replay", f"the entitlement was issued at {entitlement.body['issued']}, before the one "
                                 "installed here: an older document is never taken back", status=409,
                       issued=entitlement.body["issued"])


def _parse(document: dict, body: dict) -> Entitlement:
    missing = [name for name in FIELDS if name not in body]
    if missing:
        raise _refused("format", f"the entitlement lacks {', '.join(missing)}", fields=missing)
    predictions = body["predictions"]
    if predictions is not None and (not isinstance(predictions, int) or isinstance(predictions, bool)
                                    or predictions < 0):
        raise _refused("format", "'predictions' must be a whole number from 0, or null (unlimited)")
    not_before, not_after = _instant(body, "not_before"), _instant(body, "not_after")
    if not_after <= not_before:
        raise _refused("format", "'not_after' must be later than 'not_before'")
    return Entitlement(id=str(body["id"]), key=_uuid_bytes(body["id"]), agreement=str(body["agreement"]),
                       models=_models(body["models"]), predictions=predictions,
                       allows_predict="predict" in _strings(body, "actions"), not_before=not_before,
                       not_after=not_after, issued=_instant(body, "issued"), document=document)


def _uuid_bytes(value) -> bytes:
    try:
        return uuid.UUID(str(value)).bytes
    except ValueError:
        raise _refused("format", f"the entitlement id {value!r} is not a UUID") from None


def _models(value) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) == 64 for v in value):
        raise _refused("format", "'models' must be a list of sha256 hex digests (of each model package)")
    return frozenset(v.lower() for v in value)


def _strings(body: dict, name: str) -> list[str]:
    value = body[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _refused("format", f"'{name}' must be a list of strings")
    return value


def _instant(body: dict, name: str) -> float:
    value = body[name]
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _refused("format", f"'{name}' must be an ISO 8601 time with its zone, e.g. 2027-01-01T00:00:00Z; "
                                 f"got {value!r}")
    return moment.timestamp()
