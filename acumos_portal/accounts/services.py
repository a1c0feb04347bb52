"""Account services: roles, API tokens, and turning a credential into a user."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import jwt
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group
from django.utils import timezone

from acumos_portal.accounts.choices import DEFAULT_ROLE, Role
from acumos_portal.accounts.models import ApiToken, User

TOKEN_PREFIX = "acu_"
JWT_LIFETIME = timedelta(hours=12)


def ensure_roles() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.value)


def grant_role(user: User, role: Role) -> None:
    group, _ = Group.objects.get_or_create(name=role.value)
    user.groups.add(group)
    user.forget_roles()


def set_roles(user: User, roles: list[str]) -> None:
    """Grant the roles given and revoke the other roles; groups that are not roles stay."""
    wanted = set(roles)
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        if role.value in wanted:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    user.forget_roles()


def grant_default_role(user: User) -> None:
    grant_role(user, DEFAULT_ROLE)


# ---------------------------------------------------------------- API tokens

def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Returns the token row and the plain key, which is never stored and cannot be shown again."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name or "token", prefix=key[:10], key_hash=_hash(key))
    return token, key


def token_rotate(*, token: ApiToken) -> tuple[ApiToken, str]:
    token_revoke(token=token)
    return token_create(user=token.user, name=token.name)


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])


def _user_for_api_key(key: str) -> User | None:
    token = ApiToken.objects.select_related("user").filter(key_hash=_hash(key), revoked__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used=timezone.now())
    return token.user


# ---------------------------------------------------------------- JWT (Acumos /v2/auth)

def jwt_issue(user: User) -> str:
    now = timezone.now()
    claims = {"sub": str(user.uuid), "username": user.username, "iat": now, "exp": now + JWT_LIFETIME}
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


def _user_for_jwt(token: str) -> User | None:
    try:
        claims = jwt.decode(token, settings.SECRET_KEY, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    return User.objects.filter(uuid=claims.get("sub"), is_active=True).first()


def jwt_for_password(username: str, password: str) -> str | None:
    user = authenticate(username=username, password=password)
    return jwt_issue(user) if user is not None and user.is_active else None


# ---------------------------------------------------------------- one entry point

def user_for_credential(credential: str) -> User | None:
    """An API token, `<login>:<api token>` (Acumos), or a JWT from /onboarding-app/v2/auth."""
    credential = credential.strip()
    if credential.startswith(TOKEN_PREFIX):
        return _user_for_api_key(credential)
    login, sep, key = credential.partition(":")
    if sep and key.startswith(TOKEN_PREFIX):
        user = _user_for_api_key(key)
        return user if user is not None and user.username == login else None
    if credential.count(".") == 2:
        return _user_for_jwt(credential)
    return None
