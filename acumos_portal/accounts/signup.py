"""Sign-up that tells nobody whether a name or an email has an account.

Every request that passes the form's own checks gets one answer ("check your email") and sends one
email, to the address given:
- the address has an account already: a note to its owner (someone asked for an account with it;
  theirs is <username>; sign in, or reset the password); nothing else happens;
- the username, or one that reads the same (accounts.names), is taken: the name is not available,
  sign up again with another;
- both are free: a link (ACUMOS_SIGNUP_LINK_HOURS) that makes the account and signs in.
So an address's owner learns about it, and nobody else; whether a name is taken is learnt only
through a mailbox of one's own, a few times an hour (names are shown with models and comments
anyway). The password is hashed in every case, so that each answer takes as long. A client address
may send ACUMOS_SIGNUP_PER_ADDRESS_HOUR requests an hour."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from acumos_portal.accounts.models import SignUpRequest, User
from acumos_portal.accounts.names import username_key
from acumos_portal.accounts.site import current_site

WINDOW = timedelta(hours=1)


@dataclass
class SignUpLimited(Exception):
    """This address sent its requests for the hour."""

    retry_at: datetime

    def __str__(self) -> str:
        return (f"Too many sign-ups from your address: try again after {self.retry_at:%H:%M} UTC "
                f"(at most {settings.ACUMOS_SIGNUP_PER_ADDRESS_HOUR} an hour).")


class SignUpLinkInvalid(Exception):
    """Unknown, used, or older than ACUMOS_SIGNUP_LINK_HOURS."""


class SignUpNameTaken(Exception):
    """Someone took the name (or the email got an account) between the request and its link."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _name_taken(username: str) -> bool:
    return User.objects.filter(Q(username__iexact=username) | Q(username_key=username_key(username))).exists()


def _check_rate(client_ip: str | None) -> None:
    now = timezone.now()
    SignUpRequest.objects.filter(created__lt=now - max(WINDOW, timedelta(hours=settings.ACUMOS_SIGNUP_LINK_HOURS))
                                 ).delete()
    recent = list(SignUpRequest.objects.filter(client_ip=client_ip, created__gte=now - WINDOW)
                  .order_by("created").values_list("created", flat=True))
    limit = settings.ACUMOS_SIGNUP_PER_ADDRESS_HOUR
    if len(recent) >= limit:  # free again when enough of them are an hour old
        raise SignUpLimited(retry_at=recent[len(recent) - limit] + WINDOW)


def _mail(kind: str, to: str, context: dict) -> None:
    context = {**context, "site_name": current_site().name}
    subject = render_to_string(f"accounts/email/signup_{kind}_subject.txt", context).strip()
    send_mail(subject, render_to_string(f"accounts/email/signup_{kind}.txt", context), None, [to])


def signup_request(*, username: str, email: str, password: str, client_ip: str | None, base_url: str) -> None:
    """Raises SignUpLimited; otherwise one email goes to `email` (the module's docstring says which)."""
    _check_rate(client_ip)
    password_hash = make_password(password)  # in every case: the answer takes as long
    links = {"sign_in": base_url + reverse("accounts:login"), "reset": base_url + reverse("accounts:password-reset"),
             "sign_up": base_url + reverse("accounts:signup")}
    request = SignUpRequest(client_ip=client_ip, username=username, email=email)
    owners = list(User.objects.filter(email__iexact=email).order_by("pk").values_list("username", flat=True))
    if owners:
        request.save()
        _mail("exists", email, {**links, "usernames": owners})
    elif _name_taken(username):
        request.save()
        _mail("taken", email, {**links, "username": username})
    else:
        token = secrets.token_urlsafe(32)
        request.password, request.token_hash = password_hash, _hash(token)
        request.save()
        _mail("confirm", email, {**links, "username": username, "hours": settings.ACUMOS_SIGNUP_LINK_HOURS,
                                 "confirm": base_url + reverse("accounts:signup-confirm", args=[token])})


def pending_signup(token: str) -> SignUpRequest:
    """The request a link names; raises SignUpLinkInvalid."""
    since = timezone.now() - timedelta(hours=settings.ACUMOS_SIGNUP_LINK_HOURS)
    found = SignUpRequest.objects.filter(token_hash=_hash(token), created__gte=since).first()
    if found is None:
        raise SignUpLinkInvalid()
    return found


def signup_confirm(token: str) -> User:
    """Makes the account of a link (a Data Scientist: accounts.signals). Raises SignUpLinkInvalid, or
    SignUpNameTaken when the name or the email was taken since."""
    pending = pending_signup(token)
    deleted, _ = SignUpRequest.objects.filter(pk=pending.pk).delete()
    if not deleted:  # a link works once, even sent twice at one moment
        raise SignUpLinkInvalid()
    if _name_taken(pending.username) or User.objects.filter(email__iexact=pending.email).exists():
        raise SignUpNameTaken()
    try:
        with transaction.atomic():  # username and username_key are unique: two links for one name at once
            return User.objects.create(username=pending.username, email=pending.email, password=pending.password)
    except IntegrityError:
        raise SignUpNameTaken() from None
