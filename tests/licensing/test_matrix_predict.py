"""The licence matrix's last row: predictions at the runner. For each licence and persona, a deployment
as a deploy would have made it (under the persona's agreement when the licence needs one), a real
runner app (in-process, the iris example) started with what the portal gives a runner of that
deployment (licensing.entitlements.runner_environment) and holding the entitlement the portal issued
for it, then the persona's agreement as the persona has it now (used up, ended, revoked). The runner's
answer is checked, and the usage the portal pulls back from it counted.

Personas without any agreement have no runner: their deploy is refused (the deploy row of
test_matrix.py), which this row checks too. A real sandboxed deployment is in
tests/deployment/test_licensing_runner.py."""

from __future__ import annotations

import base64
import json
import time
import uuid
from contextlib import contextmanager

import pytest
from django.utils import timezone
from starlette.testclient import TestClient

from licensing import entitlements, keys, policy
from licensing import services as licensing_services
from licensing.choices import Action, AgreementStatus, RequestStatus
from licensing.models import AccessRequest, Agreement, UsageRecord
from marketplace import services as market_services
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact
from runner_image.package import ExtractLimits
from runner_image.runtime import record_seed, seed
from runner_image.server import create_app
from runner_image.settings import Settings, entitlement_keys, token_sha256
from runner_image.slot import load_slot
from runner_image.state import StateDir
from tests.factories import RevisionFactory, SolutionFactory, UserFactory, agreement_for, licensed

pytestmark = pytest.mark.django_db

TOKEN = "matrix-admin-token-7Qm2xKp9vR4w"
PERSONAS = ("owner", "co_owner", "no_agreement", "granted", "pending", "declined", "expired", "exhausted",
            "revoked")
ROW = {"Content-Type": "application/json", "Accept": "application/json"}


def expected(licence: str, persona: str) -> tuple[str, str, int]:
    """(what happens, the runner's denial code or "", predictions recorded as usage)."""
    if licence == "open" or persona in ("owner", "co_owner"):
        return "served", "", 0
    if persona in ("no_agreement", "pending", "declined"):
        return "no deployment", "agreement_not_found", 0
    # Each refused persona made one prediction while its agreement still allowed it (then it ended, was
    # used up, or was revoked): that one is recorded.
    return {"granted": ("served", "", 1), "expired": ("refused", "timing_constraint", 1),
            "exhausted": ("refused", "usage_exhausted", 1), "revoked": ("refused", "right_to_use_revoked", 1)}[persona]


@pytest.fixture(autouse=True)
def key_file(settings, tmp_path):
    settings.ACUMOS_LICENSING_KEY_FILE = tmp_path / "licensing" / "key.pem"
    keys._loaded.cache_clear()


@pytest.fixture
def revision(owner, catalogs, example_bundle):
    """A ready revision whose model package is the iris example's (its sha256 is what the runner serves)."""
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"))
    blob, _ = storage.store_file(example_bundle / "modelpackage.zip")
    Artifact.objects.create(revision=revision, kind=ArtifactKind.MODEL, name="modelpackage.zip", blob=blob)
    market_services.publish_directly(revision, catalogs["company"])
    return revision


@contextmanager
def runner(bundle, state_dir, environment: dict):
    """The runner app as `serve` starts it, with the portal's environment for this deployment."""
    state = StateDir(state_dir)
    generation = seed(state, bundle, ExtractLimits())
    record_seed(state, load_slot(state.generation_dir(generation), generation))
    metering = {}
    if environment:
        metering = {"require_entitlement": True, "deployment_id": environment["RUNNER_DEPLOYMENT_ID"],
                    "entitlement_keys": entitlement_keys(environment["RUNNER_ENTITLEMENT_KEYS"])}
    settings = Settings(state_dir=state_dir, admin_token_sha256=token_sha256(TOKEN), **metering)
    with TestClient(create_app(settings)) as client:
        yield client


def arrange(persona: str, user, solution) -> Agreement | None:
    rules = [{"action": "deploy"}, {"action": "predict", **({"count_limit": 1} if persona == "exhausted" else {})}]
    if persona == "pending":
        AccessRequest.objects.create(solution=solution, requester=user)
    elif persona == "declined":
        AccessRequest.objects.create(solution=solution, requester=user, status=RequestStatus.DECLINED)
    elif persona != "no_agreement":
        ends = timezone.now() + dt_seconds(3) if persona == "expired" else None
        return agreement_for(solution, user=user, rules=rules, ends=ends)
    return None


def dt_seconds(seconds: float):
    import datetime as dt

    return dt.timedelta(seconds=seconds)


def predict(client):
    return client.post("/model/methods/classify", content=json.dumps(
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}), headers=ROW)


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("licence", ["open", "rtu"])
def test_predict_at_the_runner(licence, persona, revision, owner, co_owner, example_bundle, tmp_path):
    licensed(revision, rtu=licence == "rtu")
    solution = revision.solution
    actor = {"owner": owner, "co_owner": co_owner}.get(persona) or UserFactory(username="licensee")
    if persona == "co_owner":
        market_services.share(owner, solution, co_owner.username)
    agreement = arrange(persona, actor, solution) if actor not in (owner, co_owner) else None
    want, want_code, want_usage = expected(licence, persona)

    deployment_id = uuid.uuid4()
    deploy = policy.decide(policy.Who.of(actor), revision, Action.DEPLOY, consume=1, deployment_id=deployment_id)
    if want == "no deployment":
        assert (deploy.allowed, deploy.code) == (False, want_code)
        return
    assert deploy.allowed
    environment = entitlements.runner_environment(deployment_id)
    assert bool(environment) == (licence == "rtu" and persona not in ("owner", "co_owner"))

    with runner(example_bundle, tmp_path / "state", environment) as client:
        if environment:
            issued = entitlements.issue(deployment_id)
            put = client.put("/model/entitlement", json=issued.document,
                             headers={"Authorization": f"Bearer {TOKEN}"})
            assert put.status_code == 200, put.text
        first = predict(client)
        assert first.status_code == 200, first.text
        if persona == "expired":
            time.sleep(max(0.0, (agreement.ends - timezone.now()).total_seconds()) + 0.2)
        elif persona == "revoked":
            licensing_services.revoke(owner, agreement, "contract ended")  # the portal tells the runner:
            client.delete("/model/entitlement", headers={"Authorization": f"Bearer {TOKEN}"})
            assert Agreement.objects.get(pk=agreement.pk).status == AgreementStatus.REVOKED
        last = predict(client) if persona in ("expired", "exhausted", "revoked") else first
        if want == "served":
            assert last.status_code == 200, last.text
        else:
            assert (last.status_code, last.json()["error"]["code"]) == (403, want_code)
        if environment:
            usage = client.get("/model/usage", headers={"Authorization": f"Bearer {TOKEN}"}).json()
            entitlements.record_report(deployment_id, entitlements.Report.of(usage))
    recorded = sum(r.quantity for r in UsageRecord.objects.filter(action=Action.PREDICT))
    assert recorded == want_usage


def test_the_runners_keys_are_the_portals(key_file):
    """What runner_environment gives is what the runner's settings accept (kid = sha256 of the key)."""
    raw = keys.public_raw()
    assert entitlement_keys(json.dumps(keys.runner_keys())) == {keys.key_id(raw): raw}
    assert base64.b64decode(next(iter(keys.runner_keys().values()))) == raw
