"""accounts.models: a user's roles are cached between requests and forgotten by any change to groups,
whoever makes it (the services, the admin, a bare ORM call)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import User

pytestmark = pytest.mark.django_db


def roles_of(user) -> frozenset[str]:
    """As the next request sees them: a fresh user object (role_names is per object)."""
    return User.objects.get(pk=user.pk).role_names


def test_roles_are_read_once_then_from_the_cache(other_user, django_assert_num_queries):
    expected = roles_of(other_user)
    with django_assert_num_queries(1):  # the user row only
        assert roles_of(other_user) == expected


def test_a_group_added_or_removed_by_any_path_shows_at_once(other_user):
    admins = Group.objects.get_or_create(name=Role.ADMIN)[0]
    assert Role.ADMIN not in roles_of(other_user)  # now cached
    other_user.groups.add(admins)
    assert Role.ADMIN in roles_of(other_user)
    admins.user_set.remove(other_user)  # from the group's side
    assert Role.ADMIN not in roles_of(other_user)
    admins.user_set.add(other_user)
    admins.user_set.clear()
    assert Role.ADMIN not in roles_of(other_user)


def test_a_renamed_group_is_a_new_role_for_everyone(other_user):
    group = other_user.groups.first()
    assert group.name in roles_of(other_user)
    group.name = "Renamed"
    group.save()
    assert "Renamed" in roles_of(other_user)
    group.delete()
    assert "Renamed" not in roles_of(other_user)
