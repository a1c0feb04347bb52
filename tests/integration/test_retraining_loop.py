"""The loop, closed, on the real thing: the portal as `make run` starts it (its scheduler collecting every two
seconds), a sandboxed local runner, and the example's trainer and application (examples/retrain), driven over
HTTP only, as their users drive them.

The application's inputs shift; the drift rule fires; the hook POSTs a signed event to the trainer on
localhost, which checks the signature, trains on the shifted rows and pushes the new model with the event's
token; the portal onboards it (smoke test in the sandbox) and rolls it out to the deployment as a canary that
its gates promote. Then the inputs shift again and a trainer with a labelling bug pushes a worse model: its
canary's accuracy from the application's feedback fails the gate and it is rolled back. No request fails on
the way, and the deployment's history says all of it."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from runner_image import push

from ..conftest import REPO
from ..servers import Portal, running_portal
from ..waiting import wait_for

EXAMPLE = REPO / "examples" / "retrain"
ROUND_SECONDS = 2  # the scheduler's collection interval and the runners' statistics window, here
GATES = {"min_requests": 40, "step_rounds": 2, "min_quality": 0.8, "min_feedback": 25}
LOOP_SECONDS = 150  # from the shift to the rollout's end: a few rounds to fire, onboarding, two canary steps


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"retrain_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


threshold_model, trainer_module, application_module = (example(n) for n in ("threshold_model", "trainer",
                                                                            "application"))


@contextlib.contextmanager
def portal_for_the_loop():
    """The `make run` portal (its hooks' events name its own address), its admin having allowed hooks to reach
    this host on the site's page (the trainer listens on 127.0.0.1)."""
    with running_portal(ACUMOS_MONITORING_INTERVAL_SECONDS=str(ROUND_SECONDS),
                        ACUMOS_RUNNER_STATS_WINDOW_SECONDS=str(ROUND_SECONDS)) as portal:
        with httpx.Client(base_url=portal.url, timeout=30) as admin:
            signed_in(admin, "admin", "admin-password-for-tests")
            saved = admin.post("/manage/site/", data={
                "site_name": "Acumos Marketplace", "onboarding_open": "on", "hooks_may_reach_private": "on",
                "csrfmiddlewaretoken": admin.cookies["csrftoken"]})
            assert saved.status_code == 302, saved.text[:500]
        yield portal


def signed_in(client: httpx.Client, username: str, password: str) -> None:
    client.get("/accounts/login/")
    answer = client.post("/accounts/login/", data={"username": username, "password": password,
                                                   "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert answer.status_code == 302, answer.text[:300]


class Owner:
    """The model's owner, over the API with their token."""

    def __init__(self, portal: Portal):
        self.portal = portal
        self.auth = portal.user_with_token("ada")
        self.api = httpx.Client(base_url=f"{portal.url}/api/v1", headers={"Authorization": self.auth}, timeout=30)

    def get(self, path: str, **params):
        answer = self.api.get(path, params=params)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json()

    def send(self, method: str, path: str, body, expected=(200, 201, 202)):
        answer = self.api.request(method, path, json=body)
        assert answer.status_code in expected, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json()

    def onboard(self, bundle: Path) -> push.Pushed:
        pushed = push.push_bundle(bundle, self.portal.url, self.auth)
        job = push.wait_for_job(self.portal.url, self.auth, pushed.task_id, interval=0.5, timeout=120)
        assert job["status"] == "succeeded", job
        return pushed


def results(page) -> list:
    return page["results"] if isinstance(page, dict) else page


def rollouts_of(owner: Owner, deployment_id: str) -> list[dict]:
    return results(owner.get(f"/deployments/{deployment_id}/rollouts"))


@dataclass
class Loop:
    """Everything in play: the portal, the owner, their deployment (following its model, by canary), the
    trainer behind its hook and the application asking it, and what those two printed."""

    portal: Portal
    owner: Owner
    deployment_id: str
    trainer: object
    app: object
    out: io.StringIO

    @property
    def deployment(self) -> dict:
        return self.owner.get(f"/deployments/{self.deployment_id}")

    def firing(self, kind: str) -> list[dict]:
        alerts = results(self.owner.get(f"/deployments/{self.deployment_id}/alerts", state="firing"))
        return [alert for alert in alerts if alert["kind"] == kind]

    def ended_rollout(self, count: int) -> dict:
        """The deployment's `count`th rollout, once it has ended (promoted, rolled back, ...)."""

        def ended():
            found = results(self.owner.get(f"/deployments/{self.deployment_id}/rollouts"))
            return len(found) >= count and found[0]["state"] != "running" and found[0]

        return wait_for(ended, LOOP_SECONDS, f"rollout {count} to end", interval=1, diagnose=self.diagnose)

    def diagnose(self) -> str:
        return (f"rollouts: {results(self.owner.get(f'/deployments/{self.deployment_id}/rollouts'))}\n"
                f"firing: {self.firing('drift')}\n{self.out.getvalue()}\n{self.portal.tail(80)}")


def deployed_following(owner: Owner, tmp_path: Path) -> str:
    """The first model (threshold 0) onboarded and deployed on this host, following its model by canary: one
    step at 50 %, promoted after two rounds whose gates hold (accuracy from feedback included)."""
    first = owner.onboard(threshold_model.make_bundle(tmp_path / "v1", threshold=0.0))
    [target] = [t for t in results(owner.get("/deployment-targets")) if t["kind"] == "local"]
    deployment_id = owner.send("POST", "/deployments", {"revision": first.revision_id, "target": target["id"],
                                                        "follow": True})["id"]
    wait_for(lambda: owner.get(f"/deployments/{deployment_id}")["status"] == "running", 60,
             "the deployment to run", diagnose=owner.portal.tail)
    owner.send("PUT", f"/deployments/{deployment_id}/rollout-settings",
               {"mode": "canary", "steps": [50], "gates": GATES})
    return deployment_id


def test_drift_retrains_and_a_canary_is_promoted_then_a_worse_one_is_rolled_back_with_no_request_failing(
        tmp_path):
    out = io.StringIO()  # what the trainer and the application print, shown when the test fails
    labelled = tmp_path / "labelled.csv"
    with portal_for_the_loop() as portal:
        owner = Owner(portal)
        deployment_id = deployed_following(owner, tmp_path)
        endpoint = owner.get(f"/deployments/{deployment_id}")["endpoint_url"]
        with trainer_module.Trainer("", labelled, rows=300, out=out) as trainer, \
                application_module.Application(endpoint, labelled, rate=40, out=out) as app:
            hook = owner.send("PUT", f"/deployments/{deployment_id}/hook", {"url": trainer.url, "on_alert": ["drift"]})
            trainer.secret = hook["secret"]  # shown this once
            loop = Loop(portal, owner, deployment_id, trainer, app, out)
            time.sleep(3 * ROUND_SECONDS)  # the runner's reference: its first full window of the usual inputs
            assert not loop.firing("drift")
            promoted = retrained_and_promoted(loop)
            worse_and_rolled_back(loop, promoted)

        assert app.failed == [], app.failed[:5]  # not one request failed, through both rollouts
        assert app.sent > 1000 and not app.feedback_refused, (app.sent, app.feedback_refused[:3])
        assert trainer.refused == []
        in_the_history(loop)
    assert processes_using(portal.data_dir) == []  # the deployment's sandboxed runner ended with the portal


def processes_using(directory: Path) -> list[str]:
    """The command lines of the processes that name `directory` (a runner's sandbox binds its folders)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(directory) in text:
                found.append(text[:200])
    return found


def retrained_and_promoted(loop: Loop) -> dict:
    """The world moves: the inputs drift, the first model's answers turn wrong; the hook retrains, the canary of
    the retrained model holds its gates and is promoted."""
    loop.app.shift = 5.0
    promoted = loop.ended_rollout(1)
    [run] = loop.trainer.runs
    assert run.kind == "drift" and run.onboarding == "succeeded", loop.out.getvalue()
    assert abs(run.threshold - 5.0) < 0.5 and run.above == 1  # trained on the shifted rows
    assert promoted["state"] == "promoted", promoted
    assert promoted["decided_by"] is None and "every gate held" in promoted["reason"], promoted
    assert loop.deployment["revision"] == promoted["revision"]
    assert {0.0, run.threshold} <= set(loop.app.served)  # the canary answered beside the first model
    # On the new model the inputs are the usual ones again: the drift alert resolves.
    wait_for(lambda: not loop.firing("drift"), 60, "the drift alert to resolve", diagnose=loop.diagnose)
    return promoted


def worse_and_rolled_back(loop: Loop, promoted: dict) -> None:
    """The world moves again, and the trainer has a labelling bug: its canary's accuracy from the application's
    feedback fails the gate; it is rolled back while the model before it goes on serving."""
    loop.trainer.worse = True
    loop.app.shift = 10.0
    rolled_back = loop.ended_rollout(2)
    assert len(loop.trainer.runs) == 2 and loop.trainer.runs[1].onboarding == "succeeded", loop.out.getvalue()
    assert loop.trainer.runs[1].above == 0  # turned round
    assert rolled_back["state"] == "rolled_back", rolled_back
    assert "accuracy of classify.label" in rolled_back["reason"] and "rolled back" in rolled_back["reason"]
    assert loop.deployment["revision"] == promoted["revision"]
    time.sleep(1)  # what the application is answered from now on: the promoted model alone
    before = dict(loop.app.served)
    time.sleep(2)
    since = {threshold: n - before.get(threshold, 0) for threshold, n in loop.app.served.items()}
    assert {threshold for threshold, n in since.items() if n} == {loop.trainer.runs[0].threshold}, since


def in_the_history(loop: Loop) -> None:
    """All of it is in the deployment's history, without a person: the gates decided, the hook was called."""
    owner, deployment_id = loop.owner, loop.deployment_id
    operations = [(o["kind"], o["trigger"], o["status"]) for o in
                  sorted(results(owner.get("/deployment-operations", deployment=deployment_id)),
                         key=lambda o: o["created"])]
    assert operations == [("deploy", "user", "succeeded"),
                          ("candidate", "follow", "succeeded"), ("promote", "gates", "succeeded"),
                          ("candidate", "follow", "succeeded"), ("abort", "gates", "succeeded")]
    deliveries = results(owner.get(f"/deployments/{deployment_id}/hook/deliveries"))
    assert [(d["kind"], d["status"], d["attempts"]) for d in deliveries] == [("drift", "succeeded", 1)] * 2
    alerts = results(owner.get(f"/deployments/{deployment_id}/alerts"))
    assert [a["state"] for a in alerts if a["kind"] == "drift"] == ["firing", "resolved"]
    with httpx.Client(base_url=loop.portal.url, timeout=30) as browser:
        signed_in(browser, "ada", "not-used-by-the-tests")
        panel = browser.get(f"/deployments/{deployment_id}/monitoring/").text
    for said in ("Input drift on classify.x", "promoted", "rolled back", "accuracy of classify.label"):
        assert said in panel, said
