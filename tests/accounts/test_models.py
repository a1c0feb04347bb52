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


def test_a_new_auth_generation_or_password_changes_the_session_hash_a_hash_upgrade_does_not(owner):
    first = owner.get_session_auth_hash()
    owner.auth_generation += 1
    assert owner.get_session_auth_hash() != first
    owner.refresh_from_db()
    assert owner.get_session_auth_hash() == first

    generation = owner.auth_generation
    owner.set_password("another long passphrase")
    owner.save()
    assert owner.auth_generation == generation + 1  # a new password: every JWT and session of before ends
    owner.set_password("another long passphrase")
    owner._password = None  # what Django does when it only re-hashes at sign-in
    owner.save(update_fields=["password"])
    owner.refresh_from_db()
    assert owner.auth_generation == generation + 1


def test_the_username_key_follows_the_username(owner):
    owner.username = "Renamed"
    owner.save(update_fields=["username"])
    owner.refresh_from_db()
    assert owner.username_key == "renarned"  # "rn" is how UTS #39 reads "m"
