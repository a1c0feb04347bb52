from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.functional import cached_property

from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.names import username_key

# At most: a change to groups forgets the cached roles at once; this bounds a read that raced it.
ROLES_SECONDS = 60
ROLES_GENERATION = "accounts:roles:generation"


def roles_key(user_id: int) -> str:
    return f"accounts:roles:{cache.get(ROLES_GENERATION, 0)}:{user_id}"


def forget_all_roles() -> None:
    """A group renamed or deleted: every user's cached roles are stale."""
    try:
        cache.incr(ROLES_GENERATION)
    except ValueError:  # no generation yet
        cache.set(ROLES_GENERATION, 1, None)


class User(AbstractUser):
    """A person with an account. `uuid` is the id shown outside the site (Acumos userId)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.CharField(max_length=200, blank=True)
    # The username as a reader sees it (accounts.names): a second name that reads the same is refused.
    # Null only for an account made before this rule that reads as an older one.
    username_key = models.CharField(max_length=600, unique=True, null=True, editable=False)
    # Every JWT carries it and every session's auth hash covers it: one more ends every sign-in made
    # before (sign out everywhere; a new password).
    auth_generation = models.PositiveIntegerField(default=0, editable=False)

    def clean(self):
        super().clean()
        if self.username and User.objects.exclude(pk=self.pk).filter(username_key=username_key(self.username)).exists():
            raise ValidationError({"username": "This username reads the same as an existing one; choose another."})

    def save(self, *args, **kwargs):
        self.username_key = username_key(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:
            kwargs["update_fields"] = {*update_fields, "username_key"}
        # set_password() keeps the new password in _password until it is saved; a hash upgrade at sign-in
        # clears it first (Django: "hash upgrades shouldn't be considered password changes").
        if self._password is not None and self.pk is not None:
            self.auth_generation += 1
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "auth_generation"}
        super().save(*args, **kwargs)

    def _auth_hash(self, secret=None) -> str:
        return salted_hmac("acumos_portal.accounts.User.session_auth_hash", f"{self.password}:{self.auth_generation}",
                           secret=secret, algorithm="sha256").hexdigest()

    def get_session_auth_hash(self) -> str:
        """Django signs a session out when this changes: with a new password, and with a new generation."""
        return self._auth_hash()

    def get_session_auth_fallback_hash(self):
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._auth_hash(secret)

    def has_role(self, role: Role) -> bool:
        if self.is_superuser and role == Role.ADMIN:
            return True
        return role in self.role_names

    @cached_property
    def role_names(self) -> frozenset[str]:
        """Read once per user object (pages and API calls ask about roles many times), and kept in
        the cache between requests: any change to anyone's groups forgets it (accounts.signals)."""
        if self.pk is None:
            return frozenset()
        prefetched = getattr(self, "_prefetched_objects_cache", {}).get("groups")
        if prefetched is not None:  # a list of users (Manage > Users) reads all their groups at once
            return frozenset(group.name for group in prefetched)
        key = roles_key(self.pk)
        names = cache.get(key)
        if names is None:
            names = frozenset(self.groups.values_list("name", flat=True))
            cache.set(key, names, ROLES_SECONDS)
        return names

    def forget_roles(self) -> None:
        self.__dict__.pop("role_names", None)
        if self.pk is not None:
            cache.delete(roles_key(self.pk))

    @property
    def is_portal_admin(self) -> bool:
        return self.is_superuser or self.has_role(Role.ADMIN)

    @property
    def roles(self) -> list[str]:
        return sorted(self.role_names)


class ApiToken(models.Model):
    """A per-user API token. Only its sha256 is stored; the plain token is shown once, at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="first characters, to recognise the token")
    key_hash = models.CharField(max_length=64, unique=True)  # looked up on every API call
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    # A scoped token (a retraining hook's, monitoring.hooks): it may only push revisions of this solution
    # and follow their onboarding jobs (acumos_portal.api.authentication refuses it anywhere else). A
    # UUID, not a foreign key: accounts is the floor, it knows no marketplace.
    solution_id = models.UUIDField(null=True, blank=True, editable=False,
                                   help_text="scoped: may only push revisions of this solution")
    expires = models.DateTimeField(null=True, blank=True, editable=False,
                                   help_text="after this it authenticates nobody")

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= timezone.now()

    @property
    def active(self) -> bool:
        return self.revoked is None and not self.expired


class SiteSettings(models.Model):
    """What an admin changes without a redeploy. One row (pk=1), read through `current()`."""

    site_name = models.CharField(max_length=100, blank=True, help_text="empty: ACUMOS_SITE_NAME")
    logo = models.FileField(upload_to="site/", blank=True, help_text="PNG, JPEG or SVG, at most 512 KB")
    onboarding_open = models.BooleanField(default=True, help_text="whether users may onboard models")
    owners_may_end_grace_early = models.BooleanField(
        default=False, help_text="whether whoever created a deployment may destroy it, once stopped, before its "
                                 "grace period ends (admins always may)")
    hooks_may_reach_private = models.BooleanField(
        default=False, help_text="whether retraining hooks may call loopback and private addresses (a trainer on "
                                 "this host or network); off, only public addresses")
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "site settings"

    @classmethod
    def current(cls) -> SiteSettings:
        return cls.objects.get_or_create(pk=1)[0]


class UserSession(models.Model):
    """A session a user signed in with (recorded at sign-in, dropped at sign-out), so that signing out
    everywhere, or a new password, deletes that user's sessions at once rather than scanning all."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="signed_in_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} since {self.created:%Y-%m-%d %H:%M}"


class SignUpRequest(models.Model):
    """One sign-up form sent from an address: the rate limit counts these. Only a request for a name
    and email that were free holds a password hash and a link token (its sha256); the account is made
    when the email's link is followed, so nothing exists for an address nobody confirmed."""

    client_ip = models.GenericIPAddressField(null=True)
    username = models.CharField(max_length=150)
    email = models.EmailField()
    password = models.CharField(max_length=128, blank=True)
    token_hash = models.CharField(max_length=64, null=True, unique=True)  # looked up when the link is followed
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The rate limit: requests from one address in the last hour.
        indexes = [models.Index(fields=["client_ip", "created"])]

    def __str__(self) -> str:
        return f"{self.username} <{self.email}> from {self.client_ip}"


class Organisation(models.Model):
    """A company or team an agreement can name as its assignee (licensing): every member is covered.
    Admins manage who belongs; `User.organization` stays free text a user types about themselves and
    carries no right."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    is_manager = models.BooleanField(default=False, help_text="may request and hold rights for the organisation")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organisation"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation}"
