"""Portal test fixtures: real PostgreSQL (a test database pytest-django creates and drops),
per-test artifact storage, personas, the example bundle, and jobs run inline."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from acumos_portal import jobs
from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.choices import Role

from .bundles import builders, parts_of
from .factories import UserFactory

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def artifact_storage(settings, tmp_path):
    """Each test stores artifacts in its own directory, removed with tmp_path."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "artifacts")}}}
    return tmp_path / "artifacts"


@pytest.fixture(autouse=True)
def empty_cache():
    """The cache outlives each test's database transaction: start every test without it."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Personas are made for every test: PBKDF2's deliberate slowness would dominate the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def inline_jobs(monkeypatch, django_capture_on_commit_callbacks):
    """`with inline_jobs(): <upload>`: the tasks the upload starts run synchronously, in order,
    when the block ends (as they would after the request's transaction commits)."""
    monkeypatch.setattr(jobs, "send", lambda task, *args: task.apply(args=args, throw=True))
    return lambda: django_capture_on_commit_callbacks(execute=True)


# ---------------------------------------------------------------- personas

def _persona(username: str, *roles: Role, **extra):
    user = UserFactory(username=username, **extra)
    for role in roles:
        account_services.grant_role(user, role)
    return user


@pytest.fixture
def owner(db):
    return _persona("owner")


@pytest.fixture
def other_user(db):
    return _persona("other")


@pytest.fixture
def publisher(db):
    return _persona("publisher", Role.PUBLISHER)


@pytest.fixture
def operator(db):
    return _persona("operator", Role.OPERATOR)


@pytest.fixture
def co_owner(db):
    return _persona("co-owner")


@pytest.fixture
def admin_user(db):
    return _persona("site-admin", Role.ADMIN)


@pytest.fixture
def client_for():
    """A test client signed in as `user` (or anonymous for None)."""

    def make(user) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def api_token():
    def make(user) -> str:
        return account_services.token_create(user=user, name="tests")[1]

    return make


# ---------------------------------------------------------------- bundles

@pytest.fixture(scope="session")
def example_bundle(tmp_path_factory) -> Path:
    """The example iris bundle, made with the real `pack` (trains a 10-tree RandomForest)."""
    return builders.iris_bundle(tmp_path_factory.mktemp("example-bundle"))


@pytest.fixture
def bundle_parts(example_bundle) -> dict[str, Path]:
    return parts_of(example_bundle)


# ---------------------------------------------------------------- catalogs

@pytest.fixture
def catalogs(db):
    """The two seeded catalogs, by short name: "public" (needs approval) and "company" (self-publish).
    Seeded again here because a transactional test before this one may have flushed them."""
    from marketplace import services
    from marketplace.models import Catalog

    services.seed_catalogs()
    return {"public": Catalog.objects.get(name="Public Models"), "company": Catalog.objects.get(name="Company Models")}
