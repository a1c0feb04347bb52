"""The licence matrix: licence (open, rtuRequired) x persona x action, each driven the way its user
drives it (the API, the pages, the image tarball, a deploy, a swap, a follower taking a new version),
with the effect checked (bytes served or not, a deployment or an operation made or not) and the usage
rows counted. The expectation of every cell comes from one table, `expected()`.

Export to a peer and predictions at the runner have their rows in tests/federation/test_licensing.py
and tests/deployment/test_licensing_runner.py (they need a peer's certificate and a real runner); the
personas there are the same."""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from io import BytesIO

import pytest
from django.utils import timezone

from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.choices import Role
from deployment import services as deployment_services
from deployment.choices import DeploymentStatus, OperationKind, TargetDeployers, TargetKind
from deployment.models import Deployment, Operation
from licensing import policy
from licensing.choices import Action, AgreementStatus, RequestStatus, RuleKind
from licensing.models import AccessRequest, DeploymentGrant, UsageRecord
from marketplace import services as market_services
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Blob, Download, Notification
from tests.factories import DeploymentFactory, RevisionFactory, SolutionFactory, TargetFactory, UserFactory, licensed
from tests.factories import agreement_for as make_agreement
from tests.images.test_licensing import pushed_image, with_image  # noqa: F401 (a module-scoped registry fixture)

pytestmark = pytest.mark.django_db

LICENCES = ("open", "rtu")
PERSONAS = ("owner", "co_owner", "no_agreement", "granted", "granted_group", "granted_organisation", "pending",
            "declined", "expired", "exhausted", "revoked")
ARTIFACT_KINDS = {ArtifactKind.METADATA: "metadata.json", ArtifactKind.PROTO: "model.proto",
                  ArtifactKind.MODEL: "modelpackage.zip", ArtifactKind.LICENCE: "license.json"}
DOWNLOADS = (*(f"api_artifact_{kind}" for kind in ARTIFACT_KINDS), "page_artifact", "api_bundle", "page_bundle",
             "image_tarball")
ACTIONS = (*DOWNLOADS, "deploy", "swap_in", "follow_latest")

DENIALS = {"no_agreement": "agreement_not_found", "pending": "agreement_not_found",
           "declined": "agreement_not_found", "expired": "timing_constraint", "exhausted": "usage_exhausted",
           "revoked": "right_to_use_revoked"}
COUNTED = ("granted", "granted_group", "granted_organisation")
# A swap or a follower taking a new version counts nothing (the deployment keeps its one live slot):
# an agreement whose counts are used up still lets a running deployment take a version it covers.
UNCOUNTED_ACTIONS = ("swap_in", "follow_latest")


def expected(licence: str, persona: str, action: str) -> tuple[bool, str, int]:
    """(allowed, denial code or "", usage rows written)."""
    if licence == "open" or persona in ("owner", "co_owner"):
        return True, "", 0
    if persona in COUNTED:
        return True, "", 0 if action in UNCOUNTED_ACTIONS else 1
    if persona == "exhausted" and action in UNCOUNTED_ACTIONS:
        return True, "", 0
    return False, DENIALS[persona], 0


# ---------------------------------------------------------------- the world

@pytest.fixture
def model(owner, catalogs):
    """Two ready versions of owner's model with real files, published where every signed-in user sees
    them: 1.0.0 runs in the deployments the swap and follow rows start from, 2.0.0 is the one used."""
    solution = SolutionFactory(owner=owner, name="Fraud scorer")
    old, new = (RevisionFactory(solution=solution, version=v) for v in ("1.0.0", "2.0.0"))
    for revision in (old, new):
        for kind, name in ARTIFACT_KINDS.items():
            blob, _ = storage.store_text(f"{name} of {revision.version}\n")
            Artifact.objects.create(revision=revision, kind=kind, name=name, blob=blob)
        market_services.publish_directly(revision, catalogs["company"])
    return old, new


def set_licence(licence: str, revisions) -> None:
    for revision in revisions:
        licensed(revision, rtu=licence == "rtu")


@pytest.fixture
def actor_for(owner, co_owner):
    """The person who acts for a persona: the owner, a co-owner, or an operator (who may deploy any model
    they see, so that only the licence decides) with the agreement or request the persona names."""

    def make(persona: str, solution):
        if persona == "owner":
            return owner
        if persona == "co_owner":
            market_services.share(owner, solution, co_owner.username)
            return co_owner
        user = UserFactory(username="licensee")
        account_services.grant_role(user, Role.OPERATOR)
        arrange(persona, user, solution)
        return user

    return make


def arrange(persona: str, user, solution) -> None:
    now = timezone.now()
    rules = [{"action": a} for a in ("download", "deploy", "predict")]
    if persona == "granted":
        make_agreement(solution, user=user, rules=rules)
    elif persona == "granted_group":
        from django.contrib.auth.models import Group

        group = Group.objects.create(name="partners")
        user.groups.add(group)
        make_agreement(solution, group=group, rules=rules)
    elif persona == "granted_organisation":
        from acumos_portal.accounts.models import Membership, Organisation

        organisation = Organisation.objects.create(name="Beta Ltd", slug="beta")
        Membership.objects.create(user=user, organisation=organisation)
        make_agreement(solution, organisation=organisation, rules=rules)
    elif persona == "pending":
        AccessRequest.objects.create(solution=solution, requester=user)
    elif persona == "declined":
        AccessRequest.objects.create(solution=solution, requester=user, status=RequestStatus.DECLINED,
                                     decision_reason="not for competitors")
    elif persona == "expired":
        make_agreement(solution, user=user, rules=rules, starts=now - dt.timedelta(days=60),
                       ends=now - dt.timedelta(days=1))
    elif persona == "exhausted":
        make_agreement(solution, user=user, rules=[{**r, "count_limit": 1, "count_used": 1} for r in rules])
    elif persona == "revoked":
        make_agreement(solution, user=user, rules=rules, status=AgreementStatus.REVOKED, revoked_at=now,
                       revoke_reason="contract ended")


@pytest.fixture
def target(db):
    return TargetFactory(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


# ---------------------------------------------------------------- the actions

def drive(action: str, client, actor, old, new, target, pushed_image_uri):  # noqa: PLR0911 (one per action)
    """Do `action` on `new` as `actor`; answer (allowed, denial code) read off the effect itself."""
    if action.startswith("api_artifact_"):
        artifact = new.artifacts.get(kind=action.removeprefix("api_artifact_"))
        return _download(client.get(f"/api/v1/artifacts/{artifact.pk}/download"), artifact.blob)
    if action == "page_artifact":
        artifact = new.artifacts.get(kind=ArtifactKind.MODEL)
        return _download(client.get(f"/artifacts/{artifact.pk}/download/"), artifact.blob)
    if action in ("api_bundle", "page_bundle"):
        url = f"/api/v1/revisions/{new.pk}/bundle" if action == "api_bundle" else f"/revisions/{new.pk}/bundle/"
        return _bundle(client.get(url))
    if action == "image_tarball":
        with_image(new, pushed_image_uri)
        return _tarball(client.get(f"/revisions/{new.pk}/image.tar", headers={"Accept": "application/json"}))
    if action == "deploy":
        return _deployed(client.post("/api/v1/deployments", {"revision": str(new.pk), "target": str(target.pk)},
                                     content_type="application/json"))
    if action == "swap_in":
        running = _running(old, target, actor)
        return _swapped(client.post(f"/api/v1/deployments/{running.pk}/swap", {"revision": str(new.pk)},
                                    content_type="application/json"), running)
    return _followed(actor, old, new, target)


def _running(revision, target, actor, **fields) -> Deployment:
    """A running deployment of `revision` by `actor`, made as a deploy would have made it: under the
    actor's agreement (a live slot) when the licence needs one and the actor held one then."""
    deployment = DeploymentFactory(revision=revision, target=target, created_by=actor,
                                   status=DeploymentStatus.RUNNING, **fields)
    rule = next((r for r in policy.applicable_rules(policy.Who.of(actor), revision, Action.DEPLOY)
                 if r.kind == RuleKind.PERMIT), None)
    if rule is not None and revision.licence_profile.rtu_required:
        DeploymentGrant.objects.create(deployment_id=deployment.pk, agreement=rule.agreement, rule=rule, user=actor,
                                       revision=revision)
    return deployment


def _denial(response) -> str:
    if response["Content-Type"].startswith("application/json"):
        return response.json()["error"]["code"]
    marker = 'data-denial="'
    html = response.content.decode()
    if marker not in html:
        return f"HTTP {response.status_code}"
    return html[html.index(marker) + len(marker):].split('"', 1)[0]


def _download(response, blob: Blob):
    if response.status_code != 200:
        assert response.status_code in (402, 403), response.status_code
        return False, _denial(response)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert hashlib.sha256(body).hexdigest() == blob.sha256  # the bytes are the blob's, whole
    return True, ""


def _bundle(response):
    if response.status_code != 200:
        assert response.status_code in (402, 403)
        return False, _denial(response)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert {"metadata.json", "model.proto", "modelpackage.zip"} <= set(zipfile.ZipFile(BytesIO(body)).namelist())
    return True, ""


def _tarball(response):
    if response.status_code != 200:
        assert response.status_code in (402, 403)
        return False, _denial(response)
    assert b"manifest.json" in b"".join(response.streaming_content)
    return True, ""


def _deployed(response):
    if response.status_code == 202:
        assert Deployment.objects.filter(pk=response.json()["id"]).exists()
        return True, ""
    assert response.status_code in (402, 403), response.content
    assert not Deployment.objects.exists()  # nothing half-made
    return False, _denial(response)


def _swapped(response, deployment):
    made = Operation.objects.filter(deployment=deployment, kind=OperationKind.SWAP).exists()
    if response.status_code == 202:
        assert made
        return True, ""
    assert response.status_code in (402, 403) and not made, response.content
    return False, _denial(response)


def _followed(actor, old, new, target):
    follower = _running(old, target, actor, follows=old.solution)
    operations = deployment_services.follow_new_revision(new)
    swapped = Operation.objects.filter(deployment=follower, kind=OperationKind.SWAP, revision=new).exists()
    assert swapped == bool(operations)
    if swapped:
        return True, ""
    told = Notification.objects.filter(user=actor).order_by("-pk").first()
    assert told is not None, "a follower that may not take the new version is told why"
    return False, _code_in(told)


def _code_in(note) -> str:
    """The denial's code, read back from the sentence the follower's creator was sent."""
    text = f"{note.title} {note.message}"
    for phrase, code in (("ended on", "timing_constraint"), ("revoked", "right_to_use_revoked"),
                         ("need an agreement", "agreement_not_found"), ("not made under one", "agreement_not_found"),
                         ("waits for the licensor",
                                                                         "agreement_not_found"),
                         ("declined", "agreement_not_found")):
        if phrase in text:
            return code
    return text


# ---------------------------------------------------------------- the matrix

@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("licence", LICENCES)
def test_matrix(licence, persona, action, model, actor_for, target, client_for, request):
    old, new = model
    set_licence(licence, (old, new))
    actor = actor_for(persona, new.solution)
    image = request.getfixturevalue("pushed_image") if action == "image_tarball" else ""
    downloads, usage = Download.objects.count(), UsageRecord.objects.count()

    allowed, code = drive(action, client_for(actor), actor, old, new, target, image)

    want_allowed, want_code, want_rows = expected(licence, persona, action)
    assert (allowed, code) == (want_allowed, want_code)
    assert UsageRecord.objects.count() - usage == want_rows
    if action in DOWNLOADS:
        assert Download.objects.count() - downloads == (1 if allowed else 0)
    for record in UsageRecord.objects.all():
        assert (record.user, record.revision, record.quantity) == (actor, new, 1)
