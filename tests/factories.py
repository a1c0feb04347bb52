"""factory_boy factories for the portal's models."""

from __future__ import annotations

import factory
from django.utils import timezone

from acumos_portal.accounts.models import User
from marketplace import services
from marketplace.choices import CatalogAccess, RevisionStatus
from marketplace.models import Catalog, Comment, Rating, Revision, Solution


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class SolutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Solution

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Model {n}")
    toolkit = "sklearn"


class RevisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Revision

    solution = factory.SubFactory(SolutionFactory)
    version = factory.Sequence(lambda n: f"1.{n}.0")
    status = RevisionStatus.READY
    created_by = factory.LazyAttribute(lambda r: r.solution.owner)
    ready_at = factory.LazyFunction(timezone.now)


class CatalogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Catalog
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Catalog {n}")
    access = CatalogAccess.RESTRICTED
    self_publish = True


class RatingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rating

    solution = factory.SubFactory(SolutionFactory)
    user = factory.SubFactory(UserFactory)
    stars = 4


class CommentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comment

    solution = factory.SubFactory(SolutionFactory)
    author = factory.SubFactory(UserFactory)
    text = "Works for me."


def published_revision(catalog: Catalog, **solution_fields) -> Revision:
    """A ready revision published straight into `catalog` (no request), indexed for search."""
    revision = RevisionFactory(solution=SolutionFactory(**solution_fields))
    services.publish_directly(revision, catalog)
    return revision
