"""Signed entitlements for the tests, made as the portal makes them: a throwaway Ed25519 key, the
document's canonical JSON signed with it."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEPLOYMENT = "6f1c1a52-3b7e-4d8e-9a57-0c2f7d6e4b11"


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Licensor:
    """One signing key, as the portal's licensing/keys.py holds it."""

    def __init__(self):
        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.kid = hashlib.sha256(self.public).hexdigest()[:16]

    def keys(self) -> dict[str, bytes]:
        return {self.kid: self.public}

    def keys_env(self) -> str:
        """RUNNER_ENTITLEMENT_KEYS for this key."""
        return json.dumps({self.kid: base64.b64encode(self.public).decode()})

    def body(self, models: list[str], **overrides) -> dict:
        now = time.time()
        body = {"v": 1, "id": str(uuid.uuid4()), "kid": self.kid, "issuer": "portal-test", "deployment": DEPLOYMENT,
                "replica": 0, "solution": str(uuid.uuid4()), "models": models, "agreement": str(uuid.uuid4()),
                "assignee": "user:alice", "actions": ["predict"], "predictions": 10,
                "not_before": iso(now - 60), "not_after": iso(now + 3600), "issued": iso(now)}
        return {**body, **overrides}

    def sign(self, body: dict) -> dict:
        # The portal's canonical form, written out here rather than imported from the runner.
        signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return {"entitlement": body, "alg": "EdDSA", "sig": base64.b64encode(self.private.sign(signed)).decode()}

    def document(self, models: list[str], **overrides) -> dict:
        return self.sign(self.body(models, **overrides))
