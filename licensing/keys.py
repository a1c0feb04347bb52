"""The key entitlements are signed with: Ed25519, this site's own for licensing (not the federation
identity: that one is the site's mutual-TLS name, lives above this app, and rotating it is a peer-trust
event). Runners hold only the public key, so whoever operates a runner cannot mint an entitlement."""

from __future__ import annotations

import base64
import hashlib
import os
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings


@cache
def _loaded(path: str) -> Ed25519PrivateKey:
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def signing_key() -> Ed25519PrivateKey:
    """The key, made on first use: written 0600 by whoever comes first (a second maker's file loses the
    race and is discarded, so every process signs with the same key)."""
    path = Path(settings.ACUMOS_LICENSING_KEY_FILE)
    if not path.exists():
        _make(path)
    return _loaded(str(path))


def _make(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    try:
        os.link(draft, path)  # fails if another process made it first: theirs is kept
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def public_raw(key: Ed25519PrivateKey | None = None) -> bytes:
    key = key or signing_key()
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(raw_public: bytes) -> str:
    """The first 16 hex of the raw public key's sha256: what a document's `kid` names, and what the runner
    checks its configured keys against."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def runner_keys() -> dict[str, str]:
    """RUNNER_ENTITLEMENT_KEYS: {kid: base64 raw public key}."""
    raw = public_raw()
    return {key_id(raw): base64.b64encode(raw).decode()}
