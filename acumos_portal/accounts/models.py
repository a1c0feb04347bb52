from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import models
from django.utils.functional import cached_property

from acumos_portal.accounts.choices import Role

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

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked is None


class SiteSettings(models.Model):
    """What an admin changes without a redeploy. One row (pk=1), read through `current()`."""

    site_name = models.CharField(max_length=100, blank=True, help_text="empty: ACUMOS_SITE_NAME")
    logo = models.FileField(upload_to="site/", blank=True, help_text="PNG, JPEG or SVG, at most 512 KB")
    onboarding_open = models.BooleanField(default=True, help_text="whether users may onboard models")
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "site settings"

    @classmethod
    def current(cls) -> SiteSettings:
        return cls.objects.get_or_create(pk=1)[0]
