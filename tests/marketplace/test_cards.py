"""A revision's model card: it arrives in metadata.json (`modelCard`), checked at onboarding with the field
named when it is wrong; evaluation results are never taken as verified; its owners change it over the API
(others may not); the description the API gives joins it with the interface read from the proto and the
measured resources; the model page shows it."""

from __future__ import annotations

import json
import shutil

import pytest

from marketplace import cards
from marketplace.models import Revision
from onboarding.choices import JobStatus

from ..bundles import parts_of
from ..onboarding.test_api import JOBS, uploads

pytestmark = pytest.mark.django_db

CARD = {"task": "classification", "hyperparameters": {"n_estimators": 10, "criterion": "gini", "max_depth": None},
        "explainability": {"methods": ["feature_importance", "shap"], "local": True, "global": True},
        "evaluation": [{"metric": "accuracy", "value": 0.96, "dataset": "iris (30 % held out)", "verified": True}],
        "intendedUse": "Teaching: iris species from four measurements.", "limitations": "Three species only."}


@pytest.fixture
def with_card(example_bundle, tmp_path):
    """The example bundle with `card` as its metadata.json's modelCard."""

    def make(card) -> dict:
        bundle = tmp_path / "bundle"
        shutil.copytree(example_bundle, bundle, dirs_exist_ok=True)
        metadata = json.loads((bundle / "metadata.json").read_text())
        (bundle / "metadata.json").write_text(json.dumps({**metadata, "modelCard": card}))
        return parts_of(bundle)

    return make


def onboarded_job(client, parts, inline_jobs) -> dict:
    with inline_jobs():
        created = client.post(JOBS, uploads(parts))
    assert created.status_code == 201, created.content
    return client.get(created.json()["url"]).json()


def test_a_card_in_metadata_json_is_kept_and_its_evaluation_is_never_verified(owner, client_for, with_card,
                                                                             inline_jobs):
    job = onboarded_job(client_for(owner), with_card(CARD), inline_jobs)
    assert job["status"] == JobStatus.SUCCEEDED, job
    revision = Revision.objects.get(pk=job["revision"])

    assert revision.card == {**CARD, "explainability": {"methods": ["feature_importance", "shap"], "local": True,
                                                        "global": True},
                             "evaluation": [{**CARD["evaluation"][0], "verified": False}]}
    described = client_for(owner).get(f"/api/v1/revisions/{revision.pk}/description").json()
    assert described["card"]["task"] == "classification" and described["framework"] == "sklearn"
    assert [f["name"] for f in described["interface"]["classify"]["inputs"]] == [
        "sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert described["interface"]["classify"]["outputs"] == [{"name": "species", "type": "int64", "repeated": False}]
    page = client_for(owner).get(f"/models/{revision.solution_id}/").content.decode()
    assert "Model card of" in page and "Teaching: iris species" in page and "(not verified)" in page


@pytest.mark.parametrize(("card", "field", "said"), [
    ({"task": "astrology"}, "task", "'astrology' is not one of classification"),
    ({"colour": "blue"}, "colour", "is not a field of a model card"),
    ({"evaluation": [{"metric": "accuracy", "value": "high"}]}, "evaluation[0].value", "must be a finite number"),
    ({"explainability": {"methods": ["magic"]}}, "explainability.methods", "'magic' is not one of"),
    ({"hyperparameters": {"layers": [1, 2]}}, "hyperparameters.layers", "must be a number, text"),
    ({"limitations": "x" * 5000}, "limitations", "at most 4000"),
])
def test_a_wrong_card_is_refused_at_upload_naming_the_field(owner, client_for, with_card, inline_jobs, card, field,
                                                            said):
    with inline_jobs():
        refused = client_for(owner).post(JOBS, uploads(with_card(card)))

    assert refused.status_code == 400, refused.content
    error = refused.json()["error"]
    assert error["code"] == "invalid_bundle"
    assert f"metadata.json: modelCard.{field}: " in error["message"] and said in error["message"], error
    assert not Revision.objects.exists()


def test_its_owners_change_the_card_over_the_api_and_nobody_else(owner, other_user, admin_user, client_for,
                                                                 bundle_parts, inline_jobs):
    job = onboarded_job(client_for(owner), bundle_parts, inline_jobs)
    url = f"/api/v1/revisions/{job['revision']}/description"

    changed = client_for(owner).put(url, {"card": {"task": "classification", "limitations": "Iris only."}},
                                    content_type="application/json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["card"] == {"task": "classification", "limitations": "Iris only."}
    refused = client_for(owner).put(url, {"card": {"task": "guessing"}}, content_type="application/json")
    assert refused.status_code == 400 and "modelCard.task" in refused.content.decode()
    assert Revision.objects.get(pk=job["revision"]).card["limitations"] == "Iris only."  # the bad one lost nothing

    assert client_for(other_user).put(url, {"card": {}}, content_type="application/json").status_code == 404
    by_admin = client_for(admin_user).put(url, {"card": {"task": "other"}}, content_type="application/json")
    assert by_admin.status_code == 200


def test_clean_keeps_only_what_a_card_may_hold():
    assert cards.clean(None) == {}
    assert cards.clean({"task": None, "intendedUse": ""}) == {}
    with pytest.raises(cards.CardInvalid, match=r"modelCard.\(the card\): must be an object"):
        cards.clean(["not", "a", "card"])
    with pytest.raises(cards.CardInvalid, match="hyperparameters.lr: must be a finite number"):
        cards.clean({"hyperparameters": {"lr": float("nan")}})


def test_its_owners_change_the_card_on_the_model_page_and_a_mistake_keeps_what_was_typed(owner, other_user,
                                                                                       client_for, bundle_parts,
                                                                                       inline_jobs):
    job = onboarded_job(client_for(owner), bundle_parts, inline_jobs)
    revision = Revision.objects.get(pk=job["revision"])
    url = f"/models/{revision.solution_id}/versions/{revision.pk}/card/"
    page = client_for(owner).get(f"/models/{revision.solution_id}/").content.decode()
    assert "Change the model card of 1.0.0" in page

    wrong = client_for(owner).post(url, {"task": "classification", "intended_use": "Teaching.",
                                         "evaluation": '[{"metric": "accuracy", "value": "high"}]'})
    assert wrong.status_code == 400
    said = wrong.content.decode()
    assert "evaluation[0].value: must be a finite number" in said and "Teaching." in said
    assert Revision.objects.get(pk=revision.pk).card == {}

    saved = client_for(owner).post(url, {"task": "classification", "intended_use": "Teaching.",
                                         "explains_with": ["shap"], "explains_local": "on",
                                         "hyperparameters": '{"n_estimators": 10}',
                                         "evaluation": '[{"metric": "accuracy", "value": 0.96}]'})
    assert saved.status_code == 302 and saved["Location"].endswith(f"?version={revision.pk}#model-card")
    revision.refresh_from_db()
    assert revision.card == {"task": "classification", "intendedUse": "Teaching.", "hyperparameters": {
        "n_estimators": 10}, "explainability": {"methods": ["shap"], "local": True, "global": False},
        "evaluation": [{"metric": "accuracy", "value": 0.96, "dataset": "", "verified": False}]}
    assert revision.explains == " shap local "  # discovery sees it at once

    assert client_for(other_user).post(url, {"task": "other"}).status_code == 404
    assert Revision.objects.get(pk=revision.pk).card["task"] == "classification"


def test_a_card_pack_wrote_from_markdown_front_matter_arrives_with_the_bundle(owner, client_for, inline_jobs,
                                                                              tmp_path):
    """The author's way: `python -m runner_image pack --card MODEL_CARD.md` (the example's card), then upload."""
    import subprocess
    import sys

    import joblib

    from ..bundles import builders

    example = builders.example_module()
    joblib.dump(example.train(), tmp_path / "model.joblib")
    packed = subprocess.run(
        [sys.executable, "-m", "runner_image", "pack", "--model", str(tmp_path / "model.joblib"), "--flavour",
         "sklearn", "--name", "CardedIris", "--method", "classify", "--input", example.FEATURES, "--output",
         "species:int64", "--out", str(tmp_path / "bundle"), "--card", str(example.CARD)],
        capture_output=True, text=True, timeout=120, check=False)
    assert packed.returncode == 0, packed.stderr
    assert "left out license (not fields of a model card)" in packed.stderr

    job = onboarded_job(client_for(owner), parts_of(tmp_path / "bundle"), inline_jobs)

    assert job["status"] == JobStatus.SUCCEEDED, job
    card = Revision.objects.get(pk=job["revision"]).card
    assert card["task"] == "classification" and card["explainability"]["global"] is True
    assert card["evaluation"] == [{"metric": "accuracy", "value": 0.96, "dataset": "iris, 30 % held out",
                                   "verified": False}]
    assert card["intendedUse"].startswith("Teaching and trying the portal")
    assert card["details"].startswith("# Iris classifier")
