"""Discovery by requirement: exactly the models that meet each requirement (a table of cases over one shelf of
models), best first, with why; near misses with what they miss by; only what the caller may see; a bad
requirement named field by field; the page; and the chosen one deployed in one call (a real sandboxed
runner answers)."""

from __future__ import annotations

import pytest
import requests

from acumos_portal.choices import JobStatus
from deployment.models import Deployment
from marketplace import services
from marketplace.choices import CatalogAccess, RevisionStatus
from marketplace.models import Revision

from ..deployment.conftest import onboarded, run
from ..factories import CatalogFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db
MIB = 1 << 20


def described(owner, name, *, task="classification", inputs=("x", "y"), peak_mb=100, latency_ms=1.0,
              explains=None, licence="Apache-2.0"):
    """A model whose newest ready version says and measured what is given, written by the real writers
    (record_interface, record_resources, set_card, revision_mark_ready)."""
    solution = SolutionFactory(owner=owner, name=name, licence=licence, licence_ids=f" {licence} ")
    revision = RevisionFactory(solution=solution, status=RevisionStatus.ONBOARDING, ready_at=None)
    services.record_interface(revision, {"predict": {
        "inputs": [{"name": n, "type": "double", "repeated": False} for n in inputs], "outputs": []}})
    if peak_mb is not None:
        services.record_resources(revision.pk, {"peak_memory_bytes": peak_mb * MIB, "methods": {
            "predict": {"single_ms": latency_ms}}})
    services.set_card(owner, revision, {"task": task, **({"explainability": explains} if explains else {})})
    services.revision_mark_ready(revision)
    return revision


@pytest.fixture
def shelf(owner):
    """Eight models of the owner's (names say what sets them apart)."""
    described(owner, "Fast small", peak_mb=80, latency_ms=0.4)
    described(owner, "Slow", peak_mb=90, latency_ms=40)
    described(owner, "Big", peak_mb=1230, latency_ms=0.8)
    described(owner, "Unmeasured", peak_mb=None)
    described(owner, "Explained", peak_mb=120, latency_ms=2.0,
              explains={"methods": ["shap"], "local": True, "global": False})
    described(owner, "GPL", peak_mb=70, latency_ms=0.5, licence="GPL-3.0-only")
    described(owner, "Regressor", task="regression", peak_mb=60, latency_ms=0.3)
    described(owner, "Other inputs", inputs=("x", "z"), peak_mb=50, latency_ms=0.2)
    old = described(owner, "Renewed", peak_mb=3000, latency_ms=500)  # its older version misses everything
    newer = RevisionFactory(solution=old.solution, status=RevisionStatus.ONBOARDING, ready_at=None)
    services.record_interface(newer, {"predict": {"inputs": [{"name": "x"}, {"name": "y"}], "outputs": []}})
    services.record_resources(newer.pk, {"peak_memory_bytes": 75 * MIB, "methods": {"predict": {"single_ms": 0.6}}})
    services.set_card(owner, newer, {"task": "classification"})
    services.revision_mark_ready(newer)


def ask(client, **requirement):
    answer = client.post("/api/v1/discovery", requirement, content_type="application/json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def names(items) -> list[str]:
    return [item["name"] for item in items]


# By latency (then memory), the unmeasured last: 0.4, 0.5, 0.6 (the newer version's), 0.8, 2, 40 ms, none.
CLASSIFIERS_OF_X_Y = ["Fast small", "GPL", "Renewed", "Big", "Explained", "Slow", "Unmeasured"]


@pytest.mark.parametrize(("requirement", "matches", "near"), [
    ({}, ["Other inputs", "Regressor", "Fast small", "GPL", "Renewed", "Big", "Explained", "Slow", "Unmeasured"], []),
    ({"task": "classification", "inputs": ["x", "y"]}, CLASSIFIERS_OF_X_Y, []),
    ({"task": "classification", "inputs": ["y", "x"], "max_memory_mb": 100},
     ["Fast small", "GPL", "Renewed", "Slow"], ["Big", "Explained", "Unmeasured"]),
    ({"task": "classification", "inputs": ["x", "y"], "max_latency_ms": 1},
     ["Fast small", "GPL", "Renewed", "Big"], ["Explained", "Slow", "Unmeasured"]),
    ({"task": "classification", "inputs": ["x", "y"], "max_memory_mb": 100, "max_latency_ms": 1},
     ["Fast small", "GPL", "Renewed"], ["Big", "Slow", "Explained", "Unmeasured"]),  # one miss, then two
    ({"task": "classification", "explainability": ["shap", "local"]}, ["Explained"],
     ["Other inputs", "Fast small", "GPL", "Renewed", "Big", "Slow", "Unmeasured"]),
    ({"inputs": ["x"], "licences": ["Apache-2.0", "MIT"], "max_latency_ms": 0.5},
     ["Other inputs", "Regressor", "Fast small"], ["GPL", "Renewed", "Big", "Explained", "Slow", "Unmeasured"]),
    ({"task": "regression", "inputs": ["z"]}, [], []),
    ({"inputs": ["x", "w"]}, [], []),
])
def test_exactly_the_models_that_meet_each_requirement_best_first(shelf, owner, client_for, requirement, matches,
                                                                 near):
    answer = ask(client_for(owner), **requirement, limit=20)

    assert names(answer["matches"]) == matches
    assert names(answer["near_misses"]) == near


def test_each_match_says_why_and_each_near_miss_what_it_misses_by(shelf, owner, client_for):
    answer = ask(client_for(owner), task="classification", inputs=["x", "y"], max_memory_mb=1024,
                 max_latency_ms=5, licences=["Apache-2.0"])

    best = answer["matches"][0]
    assert best["name"] == "Fast small" and best["method"] == "predict" and best["misses"] == []
    assert best["why"] == ["its card says classification", "predict takes x, y", "needs 80 MB (you allow 1.0 GB)",
                           "answers in 0.4 ms (you allow 5 ms)", "its licence Apache-2.0 is one you allow"]
    misses = {item["name"]: item["misses"] for item in answer["near_misses"]}
    assert misses == {"Big": ["needs 1.2 GB, you allow 1.0 GB"],
                      "Slow": ["answers in 40 ms, you allow 5 ms"],
                      "GPL": ["its licence is GPL-3.0-only; you allow Apache-2.0"],
                      "Unmeasured": ["its memory was not measured (you allow 1.0 GB)",
                                     "its latency was not measured (you allow 5 ms)"]}
    assert names(answer["near_misses"]) == ["GPL", "Big", "Slow", "Unmeasured"]  # fewest misses first
    assert answer["considered"] == 7


def test_only_what_the_caller_may_see_is_considered(shelf, other_user, client_for, client):
    assert ask(client_for(other_user), task="classification") == {"considered": 0, "considered_more": False,
                                                                  "matches": [], "near_misses": []}
    assert ask(client, task="classification")["considered"] == 0  # signed out

    slow = Revision.objects.get(solution__name="Slow", latest_ready=True)
    services.publish_directly(slow, CatalogFactory(access=CatalogAccess.PUBLIC))
    services.refresh_audience(slow.solution_id)
    for caller in (client_for(other_user), client):
        answer = ask(caller, task="classification", max_latency_ms=1)
        assert (names(answer["matches"]), names(answer["near_misses"])) == ([], ["Slow"])


@pytest.mark.parametrize(("requirement", "field", "said"), [
    ({"task": "astrology"}, "task", "is not a valid choice"),
    ({"max_memory_mb": 0}, "max_memory_mb", "greater than or equal to 1"),
    ({"max_latency_ms": "fast"}, "max_latency_ms", "A valid number is required"),
    ({"explainability": ["magic"]}, "explainability", "is not a valid choice"),
    ({"inputs": "x"}, "inputs", "Expected a list"),
    ({"limit": 500}, "limit", "less than or equal to 50"),
])
def test_a_bad_requirement_is_refused_naming_the_field(owner, client_for, requirement, field, said):
    answer = client_for(owner).post("/api/v1/discovery", requirement, content_type="application/json")

    assert answer.status_code == 400
    assert said in answer.content.decode() and field in answer.content.decode(), answer.content


def test_the_page_shows_matches_and_near_misses_and_says_what_is_wrong(shelf, owner, client_for):
    page = client_for(owner).get("/discover/", {"task": "classification", "inputs": "x, y",
                                                "max_memory_mb": "100"}).content.decode()
    assert "4 matches" in page and "of 7 relevant models" in page
    assert "Misses:</strong> needs 1.2 GB, you allow 100 MB" in page
    wrong = client_for(owner).get("/discover/", {"max_latency_ms": "soon"}).content.decode()
    assert "field--error" in wrong and "A valid number is required" in wrong


def test_the_chosen_one_is_deployed_in_one_call_and_answers(owner, client_for, example_bundle, inline_jobs,
                                                          local_target, tmp_path):
    iris = onboarded(owner, example_bundle, inline_jobs)
    chosen = ask(client_for(owner), inputs=["sepal_length", "petal_width"], max_memory_mb=2048)["matches"]
    assert names(chosen) == ["IrisClassifier"] and chosen[0]["peak_memory_mb"] > 0

    with inline_jobs():
        made = client_for(owner).post("/api/v1/discovery/deploy", {"revision": chosen[0]["revision"]},
                                      content_type="application/json")
    assert made.status_code == 202, made.content
    deployment = Deployment.objects.get(pk=made.json()["id"])
    assert deployment.revision == iris and deployment.target == local_target
    assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    answer = requests.post(f"{deployment.endpoint_url}/model/methods/classify", timeout=10, json={
        "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
    assert answer.json() == {"species": 0}


def test_deploying_what_one_may_not_is_refused(shelf, owner, other_user, client_for, local_target):
    revision = ask(client_for(owner), task="classification")["matches"][0]["revision"]

    refused = client_for(other_user).post("/api/v1/discovery/deploy", {"revision": revision},
                                          content_type="application/json")
    assert refused.status_code == 400 and "no such revision" in refused.content.decode()
    assert not Deployment.objects.exists()
