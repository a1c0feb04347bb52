"""factory_boy factories for the portal's models."""

from __future__ import annotations

import uuid

import factory
from django.utils import timezone

from acumos_portal.accounts.models import User
from deployment import secretbox
from deployment.choices import OperationKind, TargetKind
from deployment.models import Deployment, Operation, Target
from images.choices import BuilderKind, BuildTrigger
from images.models import ImageBuild
from marketplace import services
from marketplace.choices import CatalogAccess, RevisionStatus
from marketplace.models import Catalog, Comment, Rating, Revision, Solution
from onboarding.choices import STEPS, StepStatus
from onboarding.models import OnboardingJob, StepResult


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


# ---------------------------------------------------------------- job rows and where they run
# Only the fields a row cannot be saved without: the rest keep their models' defaults, so a field
# added later with a default needs nothing here.

class TargetFactory(factory.django.DjangoModelFactory):
    """`secret="..."` sets the target's secret (a kubeconfig, registry credentials), stored encrypted."""

    class Meta:
        model = Target

    class Params:
        secret = ""

    name = factory.Sequence(lambda n: f"target {n}")
    kind = TargetKind.LOCAL
    secret_encrypted = factory.LazyAttribute(lambda t: secretbox.encrypt(t.secret))


class DeploymentFactory(factory.django.DjangoModelFactory):
    """`admin_token="..."` sets the runner's admin token, stored encrypted as the portal stores it."""

    class Meta:
        model = Deployment

    class Params:
        admin_token = "t"

    name = factory.Sequence(lambda n: f"deployment {n}")
    target = factory.SubFactory(TargetFactory)
    revision = factory.SubFactory(RevisionFactory)
    created_by = factory.LazyAttribute(lambda d: d.revision.created_by)
    admin_token_encrypted = factory.LazyAttribute(lambda d: secretbox.encrypt(d.admin_token))


class OperationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Operation

    deployment = factory.SubFactory(DeploymentFactory)
    kind = OperationKind.DEPLOY


class ImageBuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageBuild

    revision = factory.SubFactory(RevisionFactory)
    trigger = BuildTrigger.MANUAL
    builder = BuilderKind.DAEMONLESS


class OnboardingJobFactory(factory.django.DjangoModelFactory):
    """`steps_done=N` also gives the job its StepResult rows (add_steps); without it, it has none."""

    class Meta:
        model = OnboardingJob
        skip_postgeneration_save = True  # the rows are the steps', not the job's: nothing to save again

    owner = factory.SubFactory(UserFactory)
    model_name = factory.Sequence(lambda n: f"Model {n}")
    solution_uuid = factory.LazyFunction(uuid.uuid4)
    version = "1.0.0"

    @factory.post_generation
    def steps_done(job, create, extracted, **kwargs):
        if create and extracted is not None:
            add_steps(job, done=extracted)


def add_steps(job: OnboardingJob, done: int = 0) -> list[StepResult]:
    """The job's StepResult rows, one per step of the pipeline in its order (onboarding.choices.STEPS):
    the first `done` succeeded, the rest pending, as the pipeline leaves a job part-way."""
    return StepResult.objects.bulk_create(
        StepResult(job=job, name=name, position=i, status=StepStatus.SUCCEEDED if i < done else StepStatus.PENDING)
        for i, (name, _) in enumerate(STEPS))


# ---------------------------------------------------------------- licensing

def licensed(revision: Revision, *, rtu: bool = True, spdx: str = "LicenseRef-Acme-Proprietary",
             text: str = "Use only under an agreement with Acme."):
    """`revision`'s licence noted as licensing notes it from a license.json: with `rtu`, anyone but its
    owners needs an agreement to use it."""
    from licensing import profiles
    from licensing.models import LicenceProfile
    from marketplace import services as market_services

    profile = {"keyword": spdx.removeprefix("LicenseRef-"), "licenseName": spdx, "spdx": spdx,
               "copyright": {"year": 2026, "company": "Acme"}, "rtuRequired": rtu, "licenseText": text}
    noted = LicenceProfile.objects.create(revision=revision, keyword=profile["keyword"], licence_name=spdx,
                                          spdx=spdx, spdx_ids=f" {spdx} ", rtu_required=rtu,
                                          text_sha256=profiles.text_sha256(text), profile=profile)
    market_services.set_licence_summary(revision.solution_id, label=spdx, ids=f" {spdx} ", rtu_required=rtu)
    return noted


def agreement_for(solution: Solution, *, user=None, group=None, organisation=None, peer: str = "",
                  rules=({"action": "download"}, {"action": "deploy"}, {"action": "predict"}), **fields):
    """An agreement from `solution`'s owner, as the ORM holds it (no service checks): `rules` are dicts
    of Rule's fields; `fields` are Agreement's (ends, starts, status, revision, revoked_at...)."""
    from licensing.choices import AssigneeKind
    from licensing.models import Agreement, Rule

    kind = (AssigneeKind.USER if user else AssigneeKind.GROUP if group else
            AssigneeKind.ORGANISATION if organisation else AssigneeKind.PEER if peer else AssigneeKind.SITE)
    made = Agreement.objects.create(solution=solution, licensor=solution.owner, assignee_kind=kind,
                                    assignee_user=user, assignee_group=group, assignee_organisation=organisation,
                                    assignee_peer=peer, **fields)
    Rule.objects.bulk_create(Rule(agreement=made, **rule) for rule in rules)
    return made
