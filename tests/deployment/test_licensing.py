"""Deployments under a licence that needs an agreement (rtuRequired): the owner deploys freely; anyone
else deploys, starts, swaps in, follows and tries only as an agreement allows, and is told why not
with the licence's status and code (API) or its sentence (pages). A deploy takes one deploy from the
agreement's count and a live slot; stopping, destroying or failing gives the slot back, once. A
revoked agreement's live deployments have their runners told (best effort).

Deploy operations asked for here are not run (no runner is started): deployments are put in the
state their operations would leave them, and only stops are run (the local backend stops nothing)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.choices import Role
from acumos_portal.choices import JobStatus
from deployment import bundle, manifests, selectors, services
from deployment.backends.docker import DockerBackend
from deployment.backends.local import LocalBackend
from deployment.choices import DeploymentStatus, OperationKind, TargetDeployers, TargetKind, Trigger
from deployment.models import Deployment, Operation
from deployment.options import BadOptions, check_options
from licensing import deployments as licence
from licensing import keys
from licensing import services as licensing
from licensing.choices import Action, AssigneeKind
from licensing.models import DeploymentGrant, LicenceProfile, Rule, UsageRecord
from marketplace import services as marketplace_services
from marketplace.choices import NotificationKind
from marketplace.models import Notification
from pages.views import trying

from ..factories import DeploymentFactory, RevisionFactory, TargetFactory, UserFactory, published_revision
from .conftest import run

DEPLOYMENTS = "/api/v1/deployments"
pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- the world

@pytest.fixture
def target(db):
    return TargetFactory(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


def needs_agreement(revision):
    LicenceProfile.objects.create(revision=revision, keyword="proprietary", spdx="LicenseRef-Acme-Proprietary",
                                  rtu_required=True)
    return revision


@pytest.fixture
def revision(owner, catalogs):
    """A model everyone here may see whose licence needs an agreement."""
    return needs_agreement(published_revision(catalogs["company"], owner=owner, name="Iris"))


def newer_version(revision):
    """Version 2.0.0 of the model, published where the first is (so that operators see it), under the
    same licence."""
    newer = needs_agreement(RevisionFactory(solution=revision.solution, version="2.0.0"))
    marketplace_services.publish_directly(newer, revision.publications.get().catalog)
    return newer


@pytest.fixture
def licensee(db):
    """An operator (who may deploy any model they see) with an agreement the tests grant."""
    user = UserFactory(username="licensee")
    account_services.grant_role(user, Role.OPERATOR)
    return user


def grant(owner, revision, user, *, target_revision=None, deploy=None, **agreement):
    """An agreement from the model's owner to `user` to download, deploy and predict; `deploy` gives the
    deploy rule's limits (count_limit, live_limit)."""
    rules = (licensing.RuleTerms(Action.DOWNLOAD), licensing.RuleTerms(Action.DEPLOY, **(deploy or {})),
             licensing.RuleTerms(Action.PREDICT))
    return licensing.grant(owner, revision.solution, licensing.Assignee(AssigneeKind.USER, user=user),
                           licensing.Terms(rules), revision=target_revision, **agreement)


def deploy_rule(agreement) -> Rule:
    return agreement.rules.get(action=Action.DEPLOY)


def deploy_by_api(client, revision, target):
    return client.post(DEPLOYMENTS, {"revision": str(revision.pk), "target": str(target.pk)},
                       content_type="application/json")


def as_deployed(response) -> Deployment:
    """What the deploy operation would have left, had it run: a running deployment."""
    assert response.status_code == 202, response.content
    deployment = Deployment.objects.get(pk=response.json()["id"])
    Operation.objects.filter(deployment=deployment).update(status=JobStatus.SUCCEEDED)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.RUNNING)
    deployment.refresh_from_db()
    return deployment


def stop(client, deployment) -> None:
    stopping = client.post(f"{DEPLOYMENTS}/{deployment.pk}/stop")
    assert stopping.status_code == 202, stopping.content
    assert run(Operation.objects.get(pk=stopping.json()["id"])).error == ""


def refusal(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# ---------------------------------------------------------------- deploy

def test_the_owner_deploys_freely_and_nothing_is_counted(owner, revision, target, client_for):
    as_deployed(deploy_by_api(client_for(owner), revision, target))
    assert not UsageRecord.objects.exists() and not DeploymentGrant.objects.exists()


def test_a_user_without_an_agreement_is_refused_and_no_deployment_is_left(operator, revision, target, client_for):
    error = refusal(deploy_by_api(client_for(operator), revision, target), 403, "agreement_not_found")
    assert "Iris" in error["message"] and "Request access" in error["message"]
    assert error["details"]["reason"] == "agreement_not_found"
    assert not Deployment.objects.exists() and not Operation.objects.exists()


def test_the_deploy_page_says_what_the_licence_refuses(operator, revision, target, client_for):
    client = client_for(operator)
    response = client.post(f"/revisions/{revision.pk}/deploy/", {"target": str(target.pk), "replicas": 1})
    assert response.status_code == 302 and response["Location"] == f"/revisions/{revision.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "To deploy Iris you need an agreement with its licensor." in page
    assert not Deployment.objects.exists()


def test_a_granted_user_deploys_once_per_live_slot_and_a_stop_gives_it_back(owner, licensee, revision, target,
                                                                             client_for):
    agreement = grant(owner, revision, licensee, deploy={"live_limit": 1})
    client = client_for(licensee)
    first = as_deployed(deploy_by_api(client, revision, target))
    [usage] = UsageRecord.objects.all()
    assert (usage.action, usage.user, usage.deployment_id, usage.quantity) == (Action.DEPLOY, licensee, first.pk, 1)
    assert deploy_rule(agreement).live_used == 1
    assert DeploymentGrant.objects.get(deployment_id=first.pk).active

    error = refusal(deploy_by_api(client, revision, target), 403, "live_limit_reached")
    assert error["details"]["live_limit"] == 1
    assert Deployment.objects.count() == 1 and UsageRecord.objects.count() == 1

    stop(client, first)
    assert deploy_rule(agreement).live_used == 0
    assert not DeploymentGrant.objects.get(deployment_id=first.pk).active
    second = as_deployed(deploy_by_api(client, revision, target))
    assert deploy_rule(agreement).live_used == 1

    stop(client, first)  # stopped twice: the slot it gave back the first time is not given back again
    assert deploy_rule(agreement).live_used == 1
    assert DeploymentGrant.objects.get(deployment_id=second.pk).active


def test_a_failed_deploy_and_a_destroy_give_the_slot_back(owner, licensee, revision, target, client_for):
    agreement = grant(owner, revision, licensee, deploy={"live_limit": 2})
    client = client_for(licensee)
    failing = deploy_by_api(client, revision, target)
    assert failing.status_code == 202
    operation = Operation.objects.get(deployment_id=failing.json()["id"])
    services._failed(operation, "the runner did not start")
    assert deploy_rule(agreement).live_used == 0

    destroyed = as_deployed(deploy_by_api(client, revision, target))
    assert deploy_rule(agreement).live_used == 1
    Deployment.objects.filter(pk=destroyed.pk).update(status=DeploymentStatus.FAILED)  # down, never stopped
    run(services.destroy(Deployment.objects.get(pk=destroyed.pk), admin_or(licensee), force=True))
    assert deploy_rule(agreement).live_used == 0


def admin_or(user):
    """Destroying before the grace period ends is for admins (or creators if the site allows): the
    licensee is made an admin for it."""
    account_services.grant_role(user, Role.ADMIN)
    return user


def test_a_deploy_count_is_taken_from_the_agreement(owner, licensee, revision, target, client_for):
    agreement = grant(owner, revision, licensee, deploy={"count_limit": 1})
    client = client_for(licensee)
    as_deployed(deploy_by_api(client, revision, target))
    assert deploy_rule(agreement).count_used == 1
    refusal(deploy_by_api(client, revision, target), 403, "usage_exhausted")
    assert Deployment.objects.count() == 1


# ---------------------------------------------------------------- revoked, expired

def test_a_revoked_agreement_refuses_deploy_and_swap(owner, licensee, revision, target, client_for):
    agreement = grant(owner, revision, licensee)
    client = client_for(licensee)
    deployment = as_deployed(deploy_by_api(client, revision, target))
    newer = newer_version(revision)
    licensing.revoke(owner, agreement, "the contract ended")

    error = refusal(deploy_by_api(client, revision, target), 403, "right_to_use_revoked")
    assert "the contract ended" in error["message"]
    swap = client.post(f"{DEPLOYMENTS}/{deployment.pk}/swap", {"revision": str(newer.pk)},
                       content_type="application/json")
    refusal(swap, 403, "right_to_use_revoked")
    assert not Operation.objects.filter(kind=OperationKind.SWAP).exists()


def test_a_granted_user_swaps_in_a_revision_the_agreement_covers(owner, licensee, revision, target, client_for):
    grant(owner, revision, licensee)
    client = client_for(licensee)
    deployment = as_deployed(deploy_by_api(client, revision, target))
    newer = newer_version(revision)
    swap = client.post(f"{DEPLOYMENTS}/{deployment.pk}/swap", {"revision": str(newer.pk)},
                       content_type="application/json")
    assert swap.status_code == 202, swap.content
    assert UsageRecord.objects.count() == 1  # the deploy; a swap counts nothing


def test_an_expired_agreement_refuses_a_start(owner, licensee, revision, target, client_for):
    agreement = grant(owner, revision, licensee)
    client = client_for(licensee)
    deployment = as_deployed(deploy_by_api(client, revision, target))
    stop(client, deployment)
    agreement.__class__.objects.filter(pk=agreement.pk).update(ends=timezone.now() - dt.timedelta(minutes=1))

    error = refusal(client.post(f"{DEPLOYMENTS}/{deployment.pk}/start"), 403, "timing_constraint")
    assert "ended on" in error["message"]
    assert not Operation.objects.filter(kind=OperationKind.START).exists()
    assert deploy_rule(agreement).live_used == 0


def test_the_deployment_page_says_why_a_start_is_refused(owner, licensee, revision, target, client_for):
    agreement = grant(owner, revision, licensee)
    client = client_for(licensee)
    deployment = as_deployed(deploy_by_api(client, revision, target))
    stop(client, deployment)
    licensing.revoke(owner, agreement, "")
    page = client.post(f"/deployments/{deployment.pk}/start/", follow=True).content.decode()
    assert "The licensor revoked your agreement" in page
    assert not Operation.objects.filter(kind=OperationKind.START).exists()


def test_a_start_takes_the_live_slot_again(owner, licensee, revision, target, client_for):
    agreement = grant(owner, revision, licensee, deploy={"live_limit": 1})
    client = client_for(licensee)
    first = as_deployed(deploy_by_api(client, revision, target))
    stop(client, first)
    second = as_deployed(deploy_by_api(client, revision, target))
    refusal(client.post(f"{DEPLOYMENTS}/{first.pk}/start"), 403, "live_limit_reached")
    stop(client, second)
    assert client.post(f"{DEPLOYMENTS}/{first.pk}/start").status_code == 202
    assert deploy_rule(agreement).live_used == 1
    assert DeploymentGrant.objects.get(deployment_id=first.pk).active
    assert UsageRecord.objects.count() == 2  # the two deploys; a start counts none


def test_a_start_needs_no_deploy_left_in_the_count(owner, licensee, revision, target, client_for):
    grant(owner, revision, licensee, deploy={"count_limit": 1})
    client = client_for(licensee)
    deployment = as_deployed(deploy_by_api(client, revision, target))
    stop(client, deployment)
    assert client.post(f"{DEPLOYMENTS}/{deployment.pk}/start").status_code == 202


# ---------------------------------------------------------------- follow latest

def following(revision, user, target) -> Deployment:
    """A running follower of `revision`'s model by `user`, made as a deploy makes it: under the user's
    agreement (a live slot) when the user is not an owner."""
    deployment = DeploymentFactory(target=target, revision=revision, created_by=user, follows=revision.solution,
                                   status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    if user != revision.solution.owner:
        licence.authorize_start(user, revision, deployment.pk)
    return deployment


def not_followed(user) -> list[Notification]:
    return list(Notification.objects.filter(user=user, kind=NotificationKind.LICENSING,
                                            title__contains="does not follow"))


def test_a_follower_whose_agreement_does_not_cover_the_new_revision_keeps_serving_and_is_told_once(
        owner, licensee, revision, target):
    grant(owner, revision, licensee, target_revision=revision)  # this version only
    theirs, owners = following(revision, licensee, target), following(revision, owner, target)
    newer = newer_version(revision)

    operations = services.follow_new_revision(newer)
    assert [operation.deployment_id for operation in operations] == [owners.pk]
    assert operations[0].trigger == Trigger.FOLLOW
    theirs.refresh_from_db()
    assert theirs.revision == revision and not theirs.operations.exists()
    [told] = not_followed(licensee)
    assert "does not follow Iris 2.0.0" in told.title and told.url == f"/deployments/{theirs.pk}/"
    assert told.message.startswith(f"It keeps serving {revision.version}.")
    assert "can take only the versions it covers" in told.message

    services.follow_new_revision(newer)  # the status check asks again every 30 s
    told.refresh_from_db()
    assert told.count == 1 and len(not_followed(licensee)) == 1


def test_a_follower_whose_agreement_covers_every_revision_follows(owner, licensee, revision, target):
    grant(owner, revision, licensee)
    theirs = following(revision, licensee, target)
    newer = newer_version(revision)
    [operation] = services.follow_new_revision(newer)
    assert operation.deployment_id == theirs.pk and operation.revision == newer
    assert not not_followed(licensee)


# ---------------------------------------------------------------- Try it through a shared deployment

def test_trying_a_shared_deployment_needs_the_right_to_predict(owner, other_user, licensee, revision, target):
    shared = DeploymentFactory(target=target, revision=revision, created_by=owner, shared=True,
                               status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(services.TryDenied) as denied:
        services.try_shared(other_user, shared, "classify", {"sepal_length": [1.0]})
    assert (denied.value.status, denied.value.code) == (403, "agreement_not_found")
    assert "run predictions with Iris" in denied.value.message

    grant(owner, revision, licensee)  # allowed: the try goes to the runner, which is not there
    with pytest.raises(services.TryRefused, match="did not answer"):
        services.try_shared(licensee, shared, "classify", {"sepal_length": [1.0]})
    assert not UsageRecord.objects.exists()  # the runner meters predictions, not the portal


def test_the_model_page_says_why_a_try_is_refused(owner, other_user, revision, target, client_for, monkeypatch):
    monkeypatch.setattr(trying, "served_methods", lambda revision: ["classify"])  # a factory's revision has none
    DeploymentFactory(target=target, revision=revision, created_by=owner, shared=True,
                      status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    response = client_for(other_user).post(f"/models/{revision.solution.pk}/try/send/",
                                           {"method": "classify", "body": "{}"})
    assert "To run predictions with Iris you need an agreement" in response.content.decode()


# ---------------------------------------------------------------- a revocation reaches the runners

class _Runner(BaseHTTPRequestHandler):
    """A runner's admin API as far as a revocation goes: DELETE /model/entitlement, or 404 (a runner
    from before the route)."""

    calls: list = []
    knows_route = True

    def do_DELETE(self):  # noqa: N802 (http.server's name)
        type(self).calls.append((self.path, self.headers.get("Authorization")))
        status = 200 if self.knows_route else 404
        body = json.dumps({"revoked": True} if self.knows_route else {"error": {"message": "no such route"}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def runner_url():
    _Runner.calls, _Runner.knows_route = [], True
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_revocation_tells_the_runners_of_its_live_deployments(owner, licensee, revision, target, client_for,
                                                                runner_url, django_capture_on_commit_callbacks):
    agreement = grant(owner, revision, licensee)
    client = client_for(licensee)
    live = as_deployed(deploy_by_api(client, revision, target))
    stopped = as_deployed(deploy_by_api(client, revision, target))
    stop(client, stopped)
    Deployment.objects.filter(pk__in=[live.pk, stopped.pk]).update(endpoint_url=runner_url)
    with django_capture_on_commit_callbacks(execute=True):
        licensing.revoke(owner, agreement, "")
    assert _Runner.calls == [("/model/entitlement", f"Bearer {live.admin_token()}")]


def test_a_runner_without_the_route_is_logged_and_the_revocation_stands(owner, licensee, revision, target,
                                                                        client_for, runner_url, caplog):
    agreement = grant(owner, revision, licensee)
    live = as_deployed(deploy_by_api(client_for(licensee), revision, target))
    Deployment.objects.filter(pk=live.pk).update(endpoint_url=runner_url)
    _Runner.knows_route = False
    assert services.on_agreement_revoked(None, agreement=agreement) == []
    assert len(_Runner.calls) == 1
    assert "was not told of a revocation" in caplog.text and "no such route" in caplog.text


# ---------------------------------------------------------------- a licensee deploys as an owner would

@pytest.fixture
def plain_user(db):
    """A signed-in user with no role: neither operator nor the model's owner."""
    return UserFactory(username="plain")


def test_a_plain_user_with_a_deploy_agreement_deploys_where_owners_may(owner, plain_user, revision, target,
                                                                        client_for):
    grant(owner, revision, plain_user)
    assert selectors.can_deploy(plain_user, revision)
    client = client_for(plain_user)
    deployment = as_deployed(deploy_by_api(client, revision, target))
    assert deployment.created_by == plain_user and DeploymentGrant.objects.get(deployment_id=deployment.pk).active

    operators_only = TargetFactory(name="the cluster", kind=TargetKind.LOCAL, deployers=TargetDeployers.OPERATORS)
    assert list(selectors.targets_for(plain_user)) == [target]
    response = deploy_by_api(client, revision, operators_only)
    assert response.status_code == 400 and "no enabled target" in response.content.decode()

    page = client.get(f"/revisions/{revision.pk}/").content.decode()
    assert f'value="{target.pk}"' in page and f'value="{operators_only.pk}"' not in page  # the deploy form


def test_a_plain_user_without_an_agreement_is_told_what_the_licence_needs(plain_user, revision, target,
                                                                          client_for):
    assert not selectors.can_deploy(plain_user, revision)
    client = client_for(plain_user)
    error = refusal(deploy_by_api(client, revision, target), 403, "agreement_not_found")
    assert "Iris" in error["message"] and "Request access" in error["message"]

    response = client.post(f"/revisions/{revision.pk}/deploy/", {"target": str(target.pk), "replicas": 1})
    assert response.status_code == 302 and response["Location"] == f"/revisions/{revision.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "To deploy Iris you need an agreement with its licensor." in page
    assert not Deployment.objects.exists()


def test_a_plain_user_whose_agreement_was_revoked_is_told_so(owner, plain_user, revision, target, client_for):
    licensing.revoke(owner, grant(owner, revision, plain_user), "the contract ended")
    error = refusal(deploy_by_api(client_for(plain_user), revision, target), 403, "right_to_use_revoked")
    assert "the contract ended" in error["message"]


def test_an_open_model_is_still_only_its_owners_to_deploy(owner, plain_user, catalogs, target, client_for):
    open_model = published_revision(catalogs["company"], owner=owner, name="Open iris")
    response = deploy_by_api(client_for(plain_user), open_model, target)
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert "licensees deploy it" in response.json()["error"]["message"]


# ---------------------------------------------------------------- a metered deployment's runner environment

METERING = ("RUNNER_REQUIRE_ENTITLEMENT", "RUNNER_DEPLOYMENT_ID", "RUNNER_ENTITLEMENT_KEYS")


@pytest.fixture
def signing_key(settings, tmp_path):
    settings.ACUMOS_LICENSING_KEY_FILE = tmp_path / "licensing" / "key.pem"
    keys._loaded.cache_clear()
    yield
    keys._loaded.cache_clear()


def runner_environments(deployment, monkeypatch, tmp_path) -> dict[str, dict]:
    """What each backend would start the deployment's runner with (nothing is started)."""
    monkeypatch.setattr(bundle, "image_of", lambda revision, registry="": "registry.example/iris@sha256:" + "0" * 64)
    spec = bundle.spec_for(deployment, check_options({}))
    kubernetes = {item["name"]: item.get("value") for item in manifests.container(spec)["env"]}
    docker = DockerBackend({"network": "bridge"})._run_options(deployment, "t" * 32, None, "state")["environment"]
    local = LocalBackend({})._spec(deployment, tmp_path, 3330, "t" * 32).environment
    return {"kubernetes": kubernetes, "docker": docker, "local": local}


def test_every_backend_starts_a_licensees_runner_metered_and_the_owners_not(
        owner, licensee, revision, target, client_for, signing_key, monkeypatch, tmp_path):
    grant(owner, revision, licensee)
    theirs = as_deployed(deploy_by_api(client_for(licensee), revision, target))
    for backend, environment in runner_environments(theirs, monkeypatch, tmp_path).items():
        assert environment["RUNNER_REQUIRE_ENTITLEMENT"] == "1", backend
        assert environment["RUNNER_DEPLOYMENT_ID"] == str(theirs.pk), backend
        assert json.loads(environment["RUNNER_ENTITLEMENT_KEYS"]) == keys.runner_keys(), backend

    owners = as_deployed(deploy_by_api(client_for(owner), revision, target))
    for backend, environment in runner_environments(owners, monkeypatch, tmp_path).items():
        assert not set(METERING) & set(environment), backend


def test_a_target_cannot_set_the_metering_variables():
    with pytest.raises(BadOptions, match="RUNNER_REQUIRE_ENTITLEMENT.*for a licensed model"):
        check_options({"env": {"RUNNER_REQUIRE_ENTITLEMENT": "0"}})
