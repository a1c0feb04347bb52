"""Account services: roles, API tokens, turning a credential into a user (through the sign-in
lockout), and ending a user's sign-ins."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from importlib import import_module

import jwt
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from acumos_portal.accounts import lockout
from acumos_portal.accounts.choices import DEFAULT_ROLE, Role
from acumos_portal.accounts.models import ApiToken, User, UserSession

TOKEN_PREFIX = "acu_"
JWT_LIFETIME = timedelta(hours=12)


def lock_for_quota(user) -> None:
    """Lock the user's row until the transaction ends: two requests of one user that count something against a
    per-user quota (onboarding jobs, live deployments, batch jobs) take turns from here to their commit, so the
    second counts what the first made (PostgreSQL, READ COMMITTED). SQLite ignores the lock; it lets one
    transaction write at a time, and one that read before another wrote cannot write after it."""
    User.objects.select_for_update().only("pk").get(pk=user.pk)


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


def token_create(*, user: User, name: str, solution_id=None, expires=None) -> tuple[ApiToken, str]:
    """Returns the token row and the plain key, which is never stored and cannot be shown again.
    `solution_id` scopes it to pushing revisions of that solution; after `expires` it is refused."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name or "token", prefix=key[:10], key_hash=_hash(key),
                                    solution_id=solution_id, expires=expires)
    return token, key


def token_rotate(*, token: ApiToken) -> tuple[ApiToken, str]:
    """The new token keeps the old one's scope and end: rotating never widens what a token may do."""
    token_revoke(token=token)
    return token_create(user=token.user, name=token.name, solution_id=token.solution_id, expires=token.expires)


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])


def _user_for_api_key(key: str) -> User | None:
    now = timezone.now()
    token = (ApiToken.objects.select_related("user").filter(key_hash=_hash(key), revoked__isnull=True)
             .filter(Q(expires__isnull=True) | Q(expires__gt=now)).first())
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    user = token.user
    user.token_solution_id = token.solution_id  # this request's user object: see token_scope
    return user


def token_scope(user) -> uuid.UUID | None:
    """The solution a scoped token limits this request to (the user came from that token), else None:
    an unscoped token, a JWT, a session."""
    return getattr(user, "token_solution_id", None)


# ---------------------------------------------------------------- JWT (Acumos /v2/auth)

def jwt_issue(user: User) -> str:
    """`gen` is the user's auth generation: signing out everywhere or a new password ends the JWT."""
    now = timezone.now()
    claims = {"sub": str(user.uuid), "username": user.username, "gen": user.auth_generation, "iat": now,
              "exp": now + JWT_LIFETIME}
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


def _user_for_jwt(token: str) -> User | None:
    try:
        claims = jwt.decode(token, settings.SECRET_KEY, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    user = User.objects.filter(uuid=claims.get("sub"), is_active=True).first()
    return user if user is not None and claims.get("gen") == user.auth_generation else None


def jwt_for_password(request: HttpRequest, username: str, password: str) -> str | None:
    """Raises LockedOut for a client past the sign-in lockout."""
    user = _authenticate(request, username=username, password=password)
    return jwt_issue(user) if user is not None and user.is_active else None


# ---------------------------------------------------------------- through the sign-in lockout

class LockedOut(Exception):
    """Too many failed sign-ins from this client: nothing was checked. The APIs answer 429."""

    def __init__(self):
        super().__init__(lockout.lockout_message())
        self.retry_after = lockout.lockout_seconds()


def _headers_only(request: HttpRequest) -> HttpRequest:
    """What axes reads of a request (the address, the agent, the path), without its body: axes records
    request.POST with a failure, which for an upload would read all of it before the 401."""
    probe = HttpRequest()
    probe.META = request.META
    probe.path = probe.path_info = request.path
    probe.method = request.method
    return probe


def _authenticate(request: HttpRequest, **credentials) -> User | None:
    probe = _headers_only(request)
    user = authenticate(probe, **credentials)
    if user is None and getattr(probe, "axes_locked_out", False):
        raise LockedOut()
    return user


def credential_login(credential: str) -> str | None:
    """The login of `<login>:<api token>` (the account the lockout counts against); None for the others."""
    login, sep, key = credential.strip().partition(":")
    return login if sep and key.startswith(TOKEN_PREFIX) else None


def user_for_api_credential(request: HttpRequest, credential: str) -> User | None:
    """The user of an API token, `<login>:<api token>` or JWT; raises LockedOut past the lockout."""
    return _authenticate(request, username=credential_login(credential), api_credential=credential)


# ---------------------------------------------------------------- ending sign-ins

def session_remember(user: User, session_key: str | None) -> None:
    """At sign-in; records older than a session can live are dropped on the way."""
    if not session_key:
        return
    UserSession.objects.filter(user=user, created__lt=timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)
                               ).delete()
    UserSession.objects.update_or_create(session_key=session_key, defaults={"user": user})


def session_forget(session_key: str | None) -> None:
    UserSession.objects.filter(session_key=session_key or "").delete()


def sessions_end(user: User, *, keep: str | None = None) -> int:
    """Deletes the user's sessions (from the cache and the database) but `keep`; answers how many."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    records = UserSession.objects.filter(user=user).exclude(session_key=keep or "")
    keys = list(records.values_list("session_key", flat=True))
    for key in keys:
        store().delete(key)
    records.delete()
    return len(keys)


def sign_out_everywhere(user: User) -> int:
    """Ends every sign-in of the user: each JWT (its generation is no longer the user's) and each session
    (deleted now; one made before sessions were recorded is refused on its next request, its auth hash
    covering the generation). API tokens stay: they are revoked one by one. Answers the sessions ended."""
    User.objects.filter(pk=user.pk).update(auth_generation=F("auth_generation") + 1)
    user.refresh_from_db(fields=["auth_generation"])
    return sessions_end(user)


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
