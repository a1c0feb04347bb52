"""Metering at the runner, for real: sandboxed local runners of a model whose licence needs an agreement.

A licensee's deployment starts its runner with the licence's environment and installs a signed
entitlement per replica before it is marked running; the runner answers as many predictions as the
document reserves, the status check records their use and renews the document while the agreement has
predictions left, and the agreement's end is the runner's end. A revocation reaches the runner at once;
a document changed after signing is refused and changes nothing. A swap and a start give the runner a
new document. The owner's own deployment is not metered."""

from __future__ import annotations

import pytest
import requests
from django.db.models import Sum

from acumos_portal.choices import JobStatus
from deployment import runner_client, services
from deployment.choices import DeploymentStatus
from deployment.models import Deployment, Operation
from licensing import keys
from licensing import services as licensing
from licensing.choices import Action, AssigneeKind, UsageSource
from licensing.models import Entitlement, UsageRecord
from marketplace import services as marketplace_services
from marketplace.choices import ArtifactKind
from marketplace.models import Revision

from ..bundles import builders
from ..factories import UserFactory, licensed
from .conftest import onboarded, run

pytestmark = pytest.mark.django_db
DEPLOYMENTS = "/api/v1/deployments"
BLOCK = 2  # predictions per document: the agreement's 5 take three renewals


@pytest.fixture(autouse=True)
def signing_key(settings, tmp_path):
    settings.ACUMOS_LICENSING_KEY_FILE = tmp_path / "licensing" / "key.pem"
    settings.ACUMOS_ENTITLEMENT_BLOCK = BLOCK
    keys._loaded.cache_clear()
    yield
    keys._loaded.cache_clear()


def scaler(owner, catalogs, inline_jobs, folder, k: float, tag: str) -> Revision:
    """A version of owner's Scaler (y = x * k, its answers tagged), onboarded for real, published where
    every signed-in user sees it, under a licence that needs an agreement."""
    revision = onboarded(owner, builders.scale_bundle(folder, k, tag), inline_jobs)
    marketplace_services.publish_directly(revision, catalogs["company"])
    licensed(revision, rtu=True)
    return revision


@pytest.fixture
def model(owner, catalogs, inline_jobs, tmp_path) -> Revision:
    return scaler(owner, catalogs, inline_jobs, tmp_path / "v1", 2.0, "v1")


@pytest.fixture
def licensee(db):
    """A plain user (no operator role): an agreement is what lets them deploy."""
    return UserFactory(username="licensee")


def grant(owner, revision, user, *, predictions: int | None = None):
    rules = (licensing.RuleTerms(Action.DEPLOY), licensing.RuleTerms(Action.PREDICT, count_limit=predictions))
    return licensing.grant(owner, revision.solution, licensing.Assignee(AssigneeKind.USER, user=user),
                           licensing.Terms(rules))


def deployed(client, revision, target) -> Deployment:
    """Deployed through the API, its operation run at once (a real runner in the sandbox)."""
    response = client.post(DEPLOYMENTS, {"revision": str(revision.pk), "target": str(target.pk)},
                           content_type="application/json")
    assert response.status_code == 202, response.content
    operation = run(Operation.objects.get(deployment_id=response.json()["id"]))
    assert operation.status == JobStatus.SUCCEEDED, operation.error
    return Deployment.objects.get(pk=response.json()["id"])


def predict(deployment, x: float = 1.0) -> requests.Response:
    return requests.post(f"{deployment.endpoint_url}/model/methods/scale", json={"x": x}, timeout=10)


def refused_with(response: requests.Response) -> str:
    assert response.status_code == 403, response.text
    return response.json()["error"]["code"]


def answered(deployment, n: int) -> list[int]:
    return [predict(deployment, float(i)).status_code for i in range(n)]


def usage(deployment) -> dict:
    return runner_client.usage(deployment.endpoint_url, deployment.admin_token())


def recorded(deployment) -> int:
    return (UsageRecord.objects.filter(deployment_id=deployment.pk, action=Action.PREDICT, source=UsageSource.RUNNER)
            .aggregate(total=Sum("quantity"))["total"] or 0)


def model_sha(revision) -> str:
    return revision.artifacts.get(kind=ArtifactKind.MODEL).blob.sha256


def test_a_licensees_deployment_answers_what_the_agreement_allows_and_is_revoked_at_once(
        owner, licensee, model, local_target, client_for, django_capture_on_commit_callbacks):
    agreement = grant(owner, model, licensee, predictions=5)
    deployment = deployed(client_for(licensee), model, local_target)
    assert deployment.status == DeploymentStatus.RUNNING
    assert "entitlement" in deployment.operations.get().log

    # The runner was started metered for this deployment, and holds a document it verified.
    held = usage(deployment)
    assert held["metered"] is True and held["limit"] == BLOCK
    assert held["entitlement"]["deployment"] == str(deployment.pk)
    assert held["entitlement"]["models"] == [model_sha(model)]

    # A document changed after signing is refused, and the one installed keeps counting.
    forged = Entitlement.objects.get(grant__deployment_id=deployment.pk).document
    forged["entitlement"]["predictions"] = 10 ** 6
    with pytest.raises(runner_client.RunnerError) as refused:
        runner_client.put_entitlement(deployment.endpoint_url, deployment.admin_token(), forged)
    assert refused.value.status == 400 and "signature" in str(refused.value)

    # 5 predictions in documents of 2: each status check records the use and renews while any is left.
    statuses = []
    for _ in range(4):
        statuses += answered(deployment, BLOCK + 1)
        services.check_deployment(deployment)
    assert statuses.count(200) == 5 and recorded(deployment) == 5
    assert refused_with(predict(deployment)) == "usage_exhausted"
    assert agreement.rules.get(action=Action.PREDICT).count_used == 5
    assert Entitlement.objects.filter(grant__deployment_id=deployment.pk).count() == 3  # 2 + 2 + 1

    with django_capture_on_commit_callbacks(execute=True):
        licensing.revoke(owner, agreement, "the contract ended")
    assert refused_with(predict(deployment)) == "right_to_use_revoked"
    services.check_deployment(deployment)  # nothing new is issued under a revoked agreement
    assert refused_with(predict(deployment)) == "right_to_use_revoked"
    assert recorded(deployment) == 5


def test_a_swap_and_a_start_give_the_runner_a_document_for_what_it_serves(
        owner, licensee, model, local_target, client_for, catalogs, inline_jobs, tmp_path, settings):
    settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS = 0
    newer = scaler(owner, catalogs, inline_jobs, tmp_path / "v2", 3.0, "v2")
    assert newer.solution_id == model.solution_id
    grant(owner, model, licensee)  # every version, predictions bound by time only
    deployment = deployed(client_for(licensee), model, local_target)
    assert predict(deployment, 1.0).json() == {"tag": "v1", "y": 2.0}

    swapped = run(services.swap(deployment, newer, licensee))
    assert swapped.status == JobStatus.SUCCEEDED, swapped.error
    assert "unlimited predictions" in swapped.log
    assert model_sha(newer) in usage(deployment)["entitlement"]["models"]
    assert predict(deployment, 1.0).json() == {"tag": "v2", "y": 3.0}

    assert run(services.stop(deployment, licensee)).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    started = run(services.start(deployment, licensee))
    assert started.status == JobStatus.SUCCEEDED, started.error
    assert "entitlement" in started.log
    deployment.refresh_from_db()
    current = Entitlement.objects.filter(grant__deployment_id=deployment.pk, superseded_at__isnull=True).get()
    assert usage(deployment)["entitlement"]["id"] == str(current.pk)
    assert predict(deployment, 2.0).json() == {"tag": "v2", "y": 6.0}


def test_a_licensee_without_predictions_left_deploys_a_runner_that_refuses_and_says_why(
        owner, licensee, model, local_target, client_for, monkeypatch, caplog):
    grant(owner, model, licensee, predictions=0)
    deployment = deployed(client_for(licensee), model, local_target)
    log = deployment.operations.get().log
    assert "entitlement: none issued (You have used all 0" in log
    assert refused_with(predict(deployment)) == "agreement_not_found"
    services.check_deployment(deployment)  # tries again: still nothing to reserve
    assert refused_with(predict(deployment)) == "agreement_not_found"
    assert not Entitlement.objects.exists()

    def unreachable(url, token, **kwargs):
        raise runner_client.RunnerError(f"the runner at {url} could not be reached: timed out")

    monkeypatch.setattr(runner_client, "usage", unreachable)  # best effort: the check itself goes on
    assert services.check_deployment(deployment).endswith(f"{DeploymentStatus.RUNNING} (serving Scaler (generation 1))")
    assert "was not read" in caplog.text


def test_the_owners_own_deployment_is_not_metered(owner, model, local_target, client_for):
    deployment = deployed(client_for(owner), model, local_target)
    assert usage(deployment)["metered"] is False
    assert answered(deployment, 7) == [200] * 7
    services.check_deployment(deployment)
    assert not Entitlement.objects.exists() and recorded(deployment) == 0
    assert "entitlement" not in deployment.operations.get().log
