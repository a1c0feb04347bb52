"""Secrets at rest (a deployment's runner admin token, a target's credentials): Fernet, with a key
derived from DJANGO_SECRET_KEY, so a database dump alone does not hand them out."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    key = hashlib.sha256(f"acumos-secrets|{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(value: str) -> str:
    if not value:
        return ""
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("a stored secret cannot be read: DJANGO_SECRET_KEY has changed since it was saved") from exc
