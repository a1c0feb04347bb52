"""The model page (/models/<id>/): its sections for each kind of visitor, the sanitised description,
the API signature and examples, the version selector, counters, and every action on it (rate,
comment, favorite; and the owners' edit, publish, share, delete, restore), with a query count that
does not grow with the model."""

from __future__ import annotations

import ast
import json
import re
import shlex

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployment.choices import DeploymentStatus
from deployment.models import Deployment, Target
from marketplace import services, signature, storage
from marketplace.choices import ArtifactKind, Audience, RequestStatus, RevisionStatus
from marketplace.models import (
    Artifact,
    Comment,
    Favorite,
    Publication,
    PublishRequest,
    Rating,
    Revision,
    Solution,
    SolutionShare,
)
from marketplace.receivers import page_changed
from marketplace.selectors import page_cached
from onboarding.models import StepResult
from onboarding.services import onboarding_start

from ..factories import CommentFactory, RatingFactory, RevisionFactory, SolutionFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def page_url(solution, **query) -> str:
    url = reverse("marketplace:model", args=[solution.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def action(name: str, solution, *args) -> str:
    return reverse(f"marketplace:model-{name}", args=[solution.pk, *args])


@pytest.fixture(autouse=True)
def fresh_caches():
    """The signature and samples caches live for the process; each test starts without them."""
    for cached in (signature._from_protobuf_json, signature._from_proto, signature._samples):
        cached.cache_clear()


@pytest.fixture
def revision(owner, bundle_parts, inline_jobs, settings) -> Revision:
    """The example iris bundle onboarded for real by `owner` (the smoke test is not what is tested here)."""
    settings.ACUMOS_SMOKE_TEST = False
    with inline_jobs():
        job = onboarding_start(user=owner, parts=bundle_parts, source="web")
    job.refresh_from_db()
    assert job.finished_ok, job.error
    return Revision.objects.select_related("solution").get(pk=job.revision_uuid)


@pytest.fixture
def solution(revision) -> Solution:
    return revision.solution


@pytest.fixture
def public(solution, revision, catalogs, publisher) -> Solution:
    """The onboarded model, published to Public Models after a publisher's approval."""
    request = services.publish(solution.owner, revision, catalogs["public"])
    services.approve(publisher, request)
    solution.refresh_from_db()
    return solution


@pytest.fixture
def shared(solution, co_owner) -> Solution:
    services.share(solution.owner, solution, co_owner.username)
    return solution


def html_of(response) -> str:
    return response.content.decode()


def json_argument_of(python: str):
    """The `json=` of the requests.post call in a Python example (which must parse)."""
    calls = [node for node in ast.walk(ast.parse(python)) if isinstance(node, ast.Call)]
    post = next(call for call in calls if getattr(call.func, "attr", "") == "post")
    return ast.literal_eval(next(keyword.value for keyword in post.keywords if keyword.arg == "json"))


# ---------------------------------------------------------------- who sees the page

def test_strangers_and_anonymous_visitors_get_a_404_for_a_private_model(client_for, other_user, solution):
    for visitor in (None, other_user):
        assert client_for(visitor).get(page_url(solution)).status_code == 404


@pytest.mark.parametrize("persona", ["owner", "co_owner", "admin_user"])
def test_owners_co_owners_and_admins_see_a_private_model(request, client_for, shared, persona):
    response = client_for(request.getfixturevalue(persona)).get(page_url(shared))
    assert response.status_code == 200
    assert 'id="manage"' in html_of(response)


def test_anyone_sees_a_public_model_without_the_owners_panel(client_for, other_user, public):
    for visitor in (None, other_user):
        response = client_for(visitor).get(page_url(public))
        assert response.status_code == 200
        assert 'id="manage"' not in html_of(response) and 'id="manage-area"' not in html_of(response)


def test_the_owners_panel_comes_before_what_people_say(client_for, owner, public):
    CommentFactory(solution=public, text="A long thread")
    html = html_of(client_for(owner).get(page_url(public)))
    assert 'href="#manage"' in html  # the header's Manage button jumps to it
    assert html.index('id="manage-area"') < html.index('id="manage"') < html.index('id="reviews"')
    assert html.index('id="manage"') < html.index('id="comments"') < html.index("A long thread")


def landing_of(html: str) -> str:
    """What the page shows above the Manage panel, where an owner's action lands (#manage-area)."""
    return html.split('id="manage-area"')[1].split('id="manage"', maxsplit=1)[0]


@pytest.mark.parametrize("persona", ["owner", "co_owner"])
def test_an_owners_action_lands_with_its_confirmation_above_the_panel_once(client_for, request, shared, persona):
    response = client_for(request.getfixturevalue(persona)).post(action("edit", shared), {
        "description": "Now with a **description**.", "tags": "", "model_type": "CL"}, follow=True)
    assert response.redirect_chain[-1][0].endswith(f"{page_url(shared)}#manage-area")
    html = html_of(response)
    assert "The details are saved." in landing_of(html) and 'role="status"' in landing_of(html)
    assert html.count("The details are saved.") == 1  # not again at the top, which the jump scrolled away from


def test_a_refused_owners_action_lands_above_the_panel_too(client_for, owner, public, catalogs):
    request = PublishRequest.objects.create(solution=public, revision=public.revisions.get(),
                                            catalog=catalogs["company"], requested_by=owner,
                                            status=RequestStatus.DECLINED)
    response = client_for(owner).post(action("withdraw", public, request.pk), follow=True)
    html = html_of(response)
    assert "This request was already declined" in landing_of(html)
    assert "message--error" in landing_of(html) and html.count("already declined") == 1


def test_other_messages_stay_at_the_top_for_owners(client_for, owner, public):
    response = client_for(owner).post(action("comment", public), {"text": "A note from the owner"}, follow=True)
    html = html_of(response)
    assert html.count("Your comment is posted.") == 1 and "Your comment is posted." not in landing_of(html)


def test_a_deleted_model_is_a_404_even_for_its_owner(client_for, owner, public):
    services.soft_delete(owner, public)
    for visitor in (None, owner):
        assert client_for(visitor).get(page_url(public)).status_code == 404


def test_the_old_solution_url_redirects_to_the_model_page(client_for, owner, solution):
    response = client_for(owner).get(f"/solutions/{solution.pk}/")
    assert response.status_code == 301 and response.url == page_url(solution)


# ---------------------------------------------------------------- sections

def test_the_header_shows_author_publisher_catalogs_facts_and_counters(client_for, other_user, public, publisher,
                                                                       catalogs):
    services.update_details(public.owner, public, description="Iris **species**", tags=["iris", "tabular"],
                            model_type="CL")
    response = client_for(other_user).get(page_url(public))
    context = response.context
    assert context["publisher"] == publisher
    assert context["in_catalogs"] == [catalogs["public"]]
    html = html_of(response)
    assert "by <strong>owner</strong>" in html
    assert "approved by <strong>publisher</strong>" in html
    assert f"?catalog={catalogs['public'].pk}" in html and "Public Models" in html
    assert "Classification" in html and "<code>sklearn</code>" in html
    assert "?tag=iris" in html and "?tag=tabular" in html
    assert "<strong>Iris <strong>species</strong></strong>" not in html and "Iris <strong>species</strong>" in html
    assert "badge--public" in html
    assert "<strong>1</strong> view" in html and "<strong>0</strong> downloads" in html


def test_the_licence_is_shown(client_for, owner, solution):
    Solution.objects.filter(pk=solution.pk).update(licence="Apache-2.0")
    assert "Apache-2.0" in html_of(client_for(owner).get(page_url(solution)))


def test_the_description_is_sanitised_markdown(client_for, owner, solution):
    services.update_details(owner, solution, model_type="CL", tags=[], description=(
        "# Iris\n\n<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))\n"))
    html = html_of(client_for(owner).get(page_url(solution)))
    assert "<h1>Iris</h1>" in html
    assert "alert(" not in html.split('id="manage"')[0]  # the description box below still holds the source
    assert "onerror" not in html.split('id="manage"')[0]


def test_the_api_signature_comes_from_the_proto(client_for, owner, solution):
    response = client_for(owner).get(page_url(solution))
    [method] = response.context["methods"]
    assert method.name == "classify"
    assert method.input.name == "ClassifyIn" and method.output.name == "ClassifyOut"
    assert [(f.name, f.type, f.repeated) for f in method.input.fields] == [
        ("sepal_length", "double", False), ("sepal_width", "double", False),
        ("petal_length", "double", False), ("petal_width", "double", False)]
    assert [(f.name, f.type) for f in method.output.fields] == [("species", "int64")]
    html = html_of(response)
    assert "/model/methods/classify" in html and "sepal_length" in html and "int64" in html


def test_the_examples_use_the_models_sample_and_a_local_runner(client_for, owner, solution):
    [example] = client_for(owner).get(page_url(solution)).context["examples"]
    assert example.from_sample
    sample = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    assert example.url == "http://localhost:3330/model/methods/classify"
    words = shlex.split(example.curl.replace("\\\n", " "))
    assert words[:4] == ["curl", "-X", "POST", example.url]
    assert json.loads(words[words.index("-d") + 1]) == sample
    assert "import requests" in example.python and "requests.post(" in example.python
    assert json_argument_of(example.python) == sample


def test_the_examples_call_a_running_deployment_the_user_can_see(client_for, owner, other_user, public, revision):
    target = Target.objects.create(name="local", kind="local")
    Deployment.objects.create(name="iris-live", target=target, revision=revision, status=DeploymentStatus.RUNNING,
                              endpoint_url="http://127.0.0.1:4100/", created_by=owner, admin_token_encrypted="-")
    [mine] = client_for(owner).get(page_url(public)).context["examples"]
    assert mine.url == "http://127.0.0.1:4100/model/methods/classify"
    assert "iris-live" in html_of(client_for(owner).get(page_url(public)))
    [theirs] = client_for(other_user).get(page_url(public)).context["examples"]
    assert theirs.url.startswith("http://localhost:3330/")


def test_the_files_have_sizes_and_download_links(client_for, owner, solution, revision):
    html = html_of(client_for(owner).get(page_url(solution)))
    for artifact in revision.artifacts.exclude(blob=None):
        assert reverse("marketplace:artifact-download", args=[artifact.pk]) in html
        assert f'title="{artifact.size} bytes"' in html
    assert reverse("marketplace:bundle-download", args=[revision.pk]) in html


def test_a_rebuilt_image_shows_at_once_though_the_files_are_cached(client_for, owner, solution, revision):
    client = client_for(owner)
    image = "registry.example/iris@sha256:" + "0" * 64
    assert image not in html_of(client.get(page_url(solution)))  # the files are cached now
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name="registry.example/iris", uri=image)
    assert image in html_of(client.get(page_url(solution)))


def test_a_version_still_onboarding_is_never_cached(client_for, owner, solution, revision):
    Revision.objects.filter(pk=revision.pk).update(status=RevisionStatus.ONBOARDING)
    client = client_for(owner)
    before = client.get(page_url(solution)).context["steps"]
    StepResult.objects.filter(pk=before[0].pk).update(status="failed")
    assert client.get(page_url(solution)).context["steps"][0].status == "failed"


def test_the_onboarding_steps_are_listed(client_for, owner, solution):
    response = client_for(owner).get(page_url(solution))
    assert len(response.context["steps"]) == 10
    html = html_of(response)
    assert 'id="step-validate_metadata"' in html and 'id="onboarding"' in html


def test_deploy_is_offered_to_those_who_may_and_anonymous_visitors_are_asked_to_sign_in(
        client_for, owner, other_user, public, revision):
    deploy = reverse("marketplace:revision", args=[revision.pk]) + "#deploy"
    assert deploy in html_of(client_for(owner).get(page_url(public)))
    consumer = html_of(client_for(other_user).get(page_url(public)))
    assert deploy not in consumer and 'href="#try">Try it</a>' in consumer  # who may not deploy is led to Try it
    anonymous = html_of(client_for(None).get(page_url(public)))
    assert deploy not in anonymous and "Sign in to try or deploy" in anonymous
    assert f"{reverse('accounts:login')}?next=" in anonymous


def test_anonymous_visitors_are_asked_to_sign_in_to_rate_and_comment(client_for, public):
    html = html_of(client_for(None).get(page_url(public)))
    assert html.count("Sign in to rate and comment") == 2
    assert action("rate", public) not in html and action("comment", public) not in html
    assert f"?next=/models/{public.pk}/%23reviews" in html


def test_ratings_show_the_average_distribution_reviews_and_my_own(client_for, other_user, public):
    RatingFactory(solution=public, stars=5, review="Spot on")
    RatingFactory(solution=public, stars=3)
    services.rate(other_user, public, 4, "Good enough")
    response = client_for(other_user).get(page_url(public))
    context = response.context
    assert [(row["stars"], row["count"]) for row in context["distribution"]] == [(5, 1), (4, 1), (3, 1), (2, 0),
                                                                                  (1, 0)]
    assert context["my_rating"].stars == 4
    assert context["rating_form"]["stars"].value() == 4
    html = html_of(response)
    assert "Spot on" in html and "Good enough" in html and "Update my rating" in html
    assert 'aria-label="4.0 out of 5 stars"' in html
    assert re.search(r'id="stars-4"[^>]*required checked>', html)  # the form starts from my rating
    assert not re.search(r'id="stars-[1235]"[^>]*checked>', html)


def test_comments_are_threaded_with_anchors_and_reply_links(client_for, other_user, public):
    top = CommentFactory(solution=public, text="How accurate is it?")
    reply = CommentFactory(solution=public, parent=top, text="About 95%.")
    deeper = CommentFactory(solution=public, parent=reply, text="On which split?")
    response = client_for(other_user).get(page_url(public))
    assert response.context["comment_count"] == 3
    html = html_of(response)
    for comment in (top, reply, deeper):
        assert f'id="comment-{comment.pk}"' in html
        assert action("reply", public, comment.pk) in html
    assert html.index("How accurate") < html.index("About 95%") < html.index("On which split")
    assert html.count('class="comments comments--replies"') == 2
    assert action("comment-delete", public, top.pk) not in html  # not theirs


# ---------------------------------------------------------------- the signature

NESTED = {
    "syntax": "proto3", "packageName": "p",
    "listOfMessages": [
        {"messageName": "In", "messageargumentList": [
            {"name": "rows", "role": "repeated", "tag": "1", "type": "Row", "complexType": {
                "messageName": "Row", "messageargumentList": [
                    {"name": "x", "role": "", "tag": "1.1", "type": "float"},
                    {"name": "labels", "role": "repeated", "tag": "1.2", "type": "string"}]}},
            {"name": "weights", "role": "repeated", "tag": "2", "type": "WeightsEntry", "complexType": {
                "messageName": "WeightsEntry", "messageargumentList": [
                    {"name": "key", "role": "", "tag": "2.1", "type": "string"},
                    {"name": "value", "role": "", "tag": "2.2", "type": "double"}]}},
            {"name": "strict", "role": "", "tag": "3", "type": "bool"}]},
        {"messageName": "Out", "messageargumentList": [{"name": "n", "role": "", "tag": "1", "type": "int32"}]}],
    "service": {"name": "Model", "listOfOperations": [{
        "operationType": "rpc", "operationName": "score",
        "listOfInputMessages": [{"inputMessageName": "In"}], "listOfOutputMessages": [{"outPutMessageName": "Out"}]}]},
}


def test_the_signature_has_nested_messages_repeated_fields_and_maps():
    [method] = signature.methods_from_protobuf_json(NESTED)
    rows, weights, strict = method.input.fields
    assert rows.repeated and rows.message.name == "Row"
    assert [(f.name, f.type_label) for f in rows.message.fields] == [("x", "float"), ("labels", "repeated string")]
    assert weights.type_label == "map<string, double>"
    assert strict.type_label == "bool"
    assert signature.example_value(method.input) == {
        "rows": [{"x": 0.0, "labels": [""]}], "weights": {"key": 0.0}, "strict": False}


def test_the_example_without_a_sample_is_made_from_the_field_types():
    methods = signature.methods_from_protobuf_json(NESTED)
    [example] = signature.examples(methods, {}, "http://runner:9000/")
    assert not example.from_sample and example.url == "http://runner:9000/model/methods/score"
    assert json.loads(example.body) == {"rows": [{"x": 0.0, "labels": [""]}], "weights": {"key": 0.0},
                                        "strict": False}
    assert json_argument_of(example.python) == json.loads(example.body)


def test_quotes_in_a_sample_survive_the_shell_and_python():
    method = signature.Method("say", signature.Message("In", ()), signature.Message("Out", ()))
    [example] = signature.examples((method,), {"say": {"text": "it's \"quoted\"", "ok": True, "none": None}})
    words = shlex.split(example.curl.replace("\\\n", " "))
    assert json.loads(words[words.index("-d") + 1]) == {"text": "it's \"quoted\"", "ok": True, "none": None}
    assert "True" in example.python and "None" in example.python
    ast.parse(example.python)


def test_the_signature_is_read_once_per_blob(monkeypatch, revision):
    artifacts = list(Artifact.objects.filter(revision=revision).select_related("blob"))
    opened = []

    class CountingStorage:
        def open(self, name, mode="rb"):
            opened.append(name)
            return default_storage.open(name, mode)

    monkeypatch.setattr(signature, "default_storage", CountingStorage())
    first = signature.api_signature(artifacts)
    assert signature.api_signature(artifacts) == first and first
    assert len(opened) == 1


def test_without_protobuf_json_the_signature_comes_from_model_proto(revision):
    revision.artifacts.filter(kind=ArtifactKind.PROTOBUF_JSON).delete()
    artifacts = list(Artifact.objects.filter(revision=revision).select_related("blob"))
    [method] = signature.api_signature(artifacts)
    assert method.name == "classify" and [f.name for f in method.output.fields] == ["species"]


def test_an_unreadable_descriptor_leaves_the_page_without_a_signature(client_for, owner, solution, revision):
    broken, _ = storage.store_text("{not json")
    revision.artifacts.filter(kind=ArtifactKind.PROTOBUF_JSON).update(blob=broken)
    response = client_for(owner).get(page_url(solution))
    assert response.status_code == 200 and response.context["methods"] == ()
    assert "No API description was found" in html_of(response)


# ---------------------------------------------------------------- versions

def test_the_newest_ready_version_is_shown_and_others_can_be_chosen(client_for, owner, solution, revision):
    onboarding = RevisionFactory(solution=solution, version="2.0.0", status=RevisionStatus.ONBOARDING)
    client = client_for(owner)
    response = client.get(page_url(solution))
    assert response.context["revision"] == revision
    assert [r.version for r in response.context["revisions"]] == ["2.0.0", "1.0.0"]
    html = html_of(response)
    assert 'name="version"' in html and f'value="{onboarding.pk}"' in html and "2.0.0 (onboarding)" in html
    chosen = client.get(page_url(solution, version=onboarding.pk))
    assert chosen.context["revision"] == onboarding
    assert "still onboarding" in html_of(chosen)
    assert chosen.context["methods"] == ()
    assert not chosen.context["can_deploy"]  # nothing to deploy before it is ready
    assert reverse("marketplace:revision", args=[onboarding.pk]) + "#deploy" not in html_of(chosen)


def test_without_a_ready_version_the_newest_is_shown(client_for, owner):
    solution = SolutionFactory(owner=owner)
    RevisionFactory(solution=solution, version="0.1", status=RevisionStatus.ONBOARDING)
    newest = RevisionFactory(solution=solution, version="0.2", status=RevisionStatus.ONBOARDING)
    assert client_for(owner).get(page_url(solution)).context["revision"] == newest


def test_a_version_that_is_not_there_or_not_visible_is_a_404(client_for, owner, other_user, public, catalogs):
    unpublished = RevisionFactory(solution=public, version="3.0.0")
    elsewhere = RevisionFactory(solution=SolutionFactory(owner=owner))
    assert client_for(owner).get(page_url(public, version=unpublished.pk)).status_code == 200
    assert client_for(other_user).get(page_url(public, version=unpublished.pk)).status_code == 404
    for wrong in (elsewhere.pk, "not-a-uuid"):
        assert client_for(owner).get(page_url(public, version=wrong)).status_code == 404


# ---------------------------------------------------------------- counters

def test_a_visitor_is_counted_once_however_often_they_reload(client_for, other_user, publisher, public):
    client = client_for(other_user)
    client.get(page_url(public))
    response = client.get(page_url(public))
    public.refresh_from_db()
    assert public.view_count == 1
    assert "<strong>1</strong> view<" in html_of(response)
    assert "<strong>2</strong> views" in html_of(client_for(publisher).get(page_url(public)))  # another reader


def test_anonymous_visitors_are_told_apart_by_address_and_browser(client, public):
    client.get(page_url(public), REMOTE_ADDR="192.0.2.1", HTTP_USER_AGENT="Firefox")
    client.get(page_url(public), REMOTE_ADDR="192.0.2.1", HTTP_USER_AGENT="Firefox")
    client.get(page_url(public), REMOTE_ADDR="192.0.2.2", HTTP_USER_AGENT="Firefox")
    public.refresh_from_db()
    assert public.view_count == 2


def test_a_visitor_counts_again_after_the_window(client_for, other_user, public):
    from django.core.cache import cache

    client_for(other_user).get(page_url(public))
    cache.clear()  # what VIEW_WINDOW_SECONDS later looks like to the counter
    client_for(other_user).get(page_url(public))
    public.refresh_from_db()
    assert public.view_count == 2


@pytest.mark.parametrize("persona", ["owner", "co_owner"])
def test_the_owners_own_views_leave_the_count(client_for, request, shared, persona):
    response = client_for(request.getfixturevalue(persona)).get(page_url(shared))
    shared.refresh_from_db()
    assert shared.view_count == 0
    assert "<strong>0</strong> views" in html_of(response)


def test_downloads_are_counted_and_shown(client_for, other_user, public, revision):
    client = client_for(other_user)
    client.get(reverse("marketplace:bundle-download", args=[revision.pk]))
    assert "<strong>1</strong> download" in html_of(client.get(page_url(public)))


# ---------------------------------------------------------------- rating

def test_the_owner_sees_no_rating_form_and_a_forged_rating_is_refused(client_for, public):
    client = client_for(public.owner)
    html = html_of(client.get(page_url(public)))
    assert "ratings and reviews are for others to give" in html and 'class="rate-form"' not in html
    response = client.post(action("rate", public), {"stars": "5"})
    assert response.status_code == 400 and not Rating.objects.exists()


def test_rating_saves_and_redirects_to_the_reviews(client_for, other_user, public):
    response = client_for(other_user).post(action("rate", public), {"stars": "4", "review": " Nice "})
    assert response.status_code == 302 and response.url == page_url(public) + "#reviews"
    rating = Rating.objects.get(solution=public, user=other_user)
    assert (rating.stars, rating.review) == (4, "Nice")
    public.refresh_from_db()
    assert (public.rating_count, public.rating_avg) == (1, 4.0)


def test_rating_again_changes_it_and_it_can_be_removed(client_for, other_user, public):
    client = client_for(other_user)
    client.post(action("rate", public), {"stars": "2"})
    client.post(action("rate", public), {"stars": "5"})
    assert Rating.objects.get(solution=public, user=other_user).stars == 5
    response = client.post(action("unrate", public))
    assert response.status_code == 302 and not Rating.objects.filter(user=other_user).exists()


@pytest.mark.parametrize(("stars", "error"), [("6", "Give 1 to 5 stars"), ("0", "Give 1 to 5 stars"),
                                              ("many", "Give 1 to 5 stars"), ("", "Choose 1 to 5 stars")])
def test_a_rating_out_of_range_is_refused_next_to_the_stars(client_for, other_user, public, stars, error):
    response = client_for(other_user).post(action("rate", public), {"stars": stars})
    assert response.status_code == 400
    assert response.context["rating_form"].errors["stars"]
    assert error in html_of(response) and 'id="stars-errors"' in html_of(response)
    assert not Rating.objects.exists()


def test_rating_with_htmx_answers_the_reviews_section(client_for, other_user, public):
    response = client_for(other_user).post(action("rate", public), {"stars": "3"}, **HTMX)
    html = html_of(response)
    assert response.status_code == 200 and html.lstrip().startswith("{#") is False
    assert 'id="reviews"' in html and "your rating is saved" in html and "<html" not in html
    bad = client_for(other_user).post(action("rate", public), {"stars": "9"}, **HTMX)
    assert bad.status_code == 200 and "Give 1 to 5 stars" in html_of(bad)


def test_anonymous_visitors_are_sent_to_sign_in_and_strangers_get_a_404(client_for, other_user, solution):
    response = client_for(None).post(action("rate", solution), {"stars": "5"})
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    assert client_for(other_user).post(action("rate", solution), {"stars": "5"}).status_code == 404
    assert not Rating.objects.exists()


# ---------------------------------------------------------------- comments

def test_a_comment_is_posted_and_the_page_jumps_to_it(client_for, other_user, public):
    response = client_for(other_user).post(action("comment", public), {"text": "Which dataset?"})
    comment = Comment.objects.get()
    assert response.status_code == 302 and response.url == page_url(public) + f"#comment-{comment.pk}"
    assert (comment.author, comment.text, comment.parent) == (other_user, "Which dataset?", None)


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_comment_is_refused(client_for, other_user, public, text):
    response = client_for(other_user).post(action("comment", public), {"text": text})
    assert response.status_code == 400 and "Write something first" in html_of(response)
    assert not Comment.objects.exists()


def test_a_reply_goes_under_its_comment(client_for, other_user, public):
    top = CommentFactory(solution=public)
    client_for(other_user).post(action("comment", public), {"text": "Same here", "parent": top.pk})
    assert Comment.objects.get(text="Same here").parent == top


def test_a_reply_to_another_models_comment_is_refused(client_for, other_user, public, catalogs):
    elsewhere = published_elsewhere(catalogs)
    theirs = CommentFactory(solution=elsewhere)
    response = client_for(other_user).post(action("comment", public), {"text": "Hi", "parent": theirs.pk})
    assert response.status_code == 400 and "That comment is not on this model" in html_of(response)
    assert Comment.objects.count() == 1


def published_elsewhere(catalogs) -> Solution:
    revision = RevisionFactory(solution=SolutionFactory(name="Elsewhere"))
    services.publish_directly(revision, catalogs["public"])
    return revision.solution


def test_the_reply_box_opens_inline_with_htmx_or_on_the_page_without(client_for, other_user, public):
    top = CommentFactory(solution=public)
    client = client_for(other_user)
    inline = client.get(action("reply", public, top.pk), **HTMX)
    assert inline.status_code == 200
    assert f'name="parent" value="{top.pk}"' in html_of(inline) and "<html" not in html_of(inline)
    plain = client.get(action("reply", public, top.pk))
    assert plain.status_code == 302 and plain.url == page_url(public) + f"?reply={top.pk}#comment-{top.pk}"
    page = html_of(client.get(page_url(public, reply=top.pk)))
    assert f'id="reply-{top.pk}-text"' in page


def test_a_comment_posted_with_htmx_answers_the_comments_section(client_for, other_user, public):
    response = client_for(other_user).post(action("comment", public), {"text": "Thanks"}, **HTMX)
    html = html_of(response)
    assert 'id="comments"' in html and "Thanks" in html and "Your comment is posted" in html
    bad = client_for(other_user).post(action("comment", public), {"text": ""}, **HTMX)
    assert "Write something first" in html_of(bad)


@pytest.fixture
def long_discussion(public):
    """Twelve threads, the first with a reply: the page shows the latest ten."""
    threads = [CommentFactory(solution=public, text=f"Thread {number:02}") for number in range(12)]
    CommentFactory(solution=public, parent=threads[0], text="Old reply")
    return threads


def test_the_latest_comment_threads_show_and_the_earlier_ones_on_request(client_for, other_user, public,
                                                                       long_discussion):
    client = client_for(other_user)
    page = client.get(page_url(public))
    html = html_of(page)
    assert page.context["comment_count"] == 13
    assert "Thread 01" not in html and "Thread 02" in html and "Thread 11" in html
    assert "Show 3 earlier comments" in html and f'{page_url(public)}?comments=all#comments' in html
    everything = html_of(client.get(page_url(public, comments="all")))
    assert "Thread 00" in everything and "Old reply" in everything and "earlier comment" not in everything
    assert f'action="{action("comment", public)}?comments=all"' in everything


def test_a_reply_in_an_earlier_thread_comes_back_to_the_whole_list(client_for, other_user, public,
                                                                    long_discussion):
    client = client_for(other_user)
    oldest = long_discussion[0]
    plain = client.post(action("comment", public), {"text": "Late reply", "parent": oldest.pk})
    made = Comment.objects.get(text="Late reply")
    assert plain.url == page_url(public) + f"?comments=all#comment-{made.pk}"
    inline = html_of(client.post(action("comment", public), {"text": "Another", "parent": oldest.pk}, **HTMX))
    assert "Another" in inline and "Thread 00" in inline


def test_a_delete_from_the_whole_list_keeps_it_whole(client_for, other_user, public, long_discussion):
    mine = CommentFactory(solution=public, author=other_user, text="Mine")
    client = client_for(other_user)
    delete = action("comment-delete", public, mine.pk)
    assert f'{delete}?comments=all"' in html_of(client.get(page_url(public, comments="all")))
    response = client.post(f"{delete}?comments=all")
    assert response.url == page_url(public) + "?comments=all#comments"
    assert "Thread 00" in html_of(client.post(f"{action('comment', public)}?comments=all", {"text": "x"},
                                              **HTMX))


def test_a_deleted_comment_keeps_its_replies_under_a_placeholder(client_for, other_user, public):
    top = CommentFactory(solution=public, author=other_user, text="Which features?")
    CommentFactory(solution=public, parent=top, text="Petal sizes.")
    client = client_for(other_user)
    client.post(action("comment-delete", public, top.pk))

    page = client.get(page_url(public))
    html = html_of(page)
    assert "This comment was deleted." in html and "Petal sizes." in html and "Which features?" not in html
    assert page.context["comment_count"] == 1
    assert action("reply", public, top.pk) not in html and action("comment-delete", public, top.pk) not in html


def test_people_delete_their_own_comments_only(client_for, other_user, public):
    mine = CommentFactory(solution=public, author=other_user)
    theirs = CommentFactory(solution=public)
    client = client_for(other_user)
    assert action("comment-delete", public, mine.pk) in html_of(client.get(page_url(public)))
    response = client.post(action("comment-delete", public, theirs.pk), follow=True)
    assert "Only its author deletes a comment" in html_of(response)
    assert Comment.objects.filter(pk=theirs.pk).exists()
    client.post(action("comment-delete", public, mine.pk))
    assert not Comment.objects.filter(pk=mine.pk).exists()


# ---------------------------------------------------------------- favorites

def test_favorite_toggles_and_shows_the_count(client_for, other_user, public):
    client = client_for(other_user)
    response = client.post(action("favorite", public), **HTMX)
    html = html_of(response)
    assert 'aria-pressed="true"' in html and 'id="favorite"' in html and "<html" not in html
    assert Favorite.objects.filter(user=other_user, solution=public).exists()
    assert client.get(page_url(public)).context["favorite_count"] == 1
    again = client.post(action("favorite", public))
    assert again.status_code == 302 and not Favorite.objects.exists()


# ---------------------------------------------------------------- editing the details

def test_owners_edit_description_tags_and_model_type(client_for, owner, solution):
    response = client_for(owner).post(action("edit", solution), {
        "description": "## Usage\n\nCall it.", "tags": "Computer Vision, iris, , iris", "model_type": "RG"})
    assert response.status_code == 302 and response.url.endswith("#manage-area")
    solution.refresh_from_db()
    assert solution.description == "## Usage\n\nCall it." and solution.model_type == "RG"
    assert sorted(solution.tags.values_list("name", flat=True)) == ["computer-vision", "iris"]
    assert "computer-vision" in solution.search_text


@pytest.mark.parametrize(("tags", "error"), [
    (",".join(f"t{i}" for i in range(11)), "At most 10 tags (there are 11)"),
    ("ok, !!!", "&#x27;!!!&#x27; is not a tag"),
    ("x" * 60, "longer than 50 characters"),
])
def test_bad_tags_are_refused_next_to_the_field(client_for, owner, solution, tags, error):
    response = client_for(owner).post(action("edit", solution), {"description": "", "tags": tags, "model_type": "CL"})
    assert response.status_code == 400 and error in html_of(response)
    assert response.context["details_form"].errors["tags"]
    assert not solution.tags.exists()


def test_the_preview_shows_the_description_without_saving_it(client_for, owner, solution):
    client = client_for(owner)
    inline = client.post(action("preview", solution), {"description": "**bold** <script>x()</script>"}, **HTMX)
    assert html_of(inline).count("<strong>bold</strong>") == 1
    assert "<script" not in html_of(inline) and "x()" not in html_of(inline)
    plain = client.post(action("edit", solution), {"description": "*new*", "tags": "", "model_type": "CL",
                                                   "preview": "1"})
    assert plain.status_code == 200 and "<em>new</em>" in html_of(plain)
    solution.refresh_from_db()
    assert solution.description != "*new*"


def test_co_owners_edit_and_strangers_get_a_404(client_for, other_user, co_owner, shared):
    data = {"description": "by the co-owner", "tags": "", "model_type": "CL"}
    assert client_for(co_owner).post(action("edit", shared), data).status_code == 302
    assert client_for(other_user).post(action("edit", shared), data).status_code == 404
    assert client_for(other_user).post(action("preview", shared), data).status_code == 404


def test_people_who_see_a_public_model_cannot_manage_it(client_for, other_user, public):
    client = client_for(other_user)
    assert client.post(action("edit", public), {"description": "x", "tags": "", "model_type": "CL"}).status_code == 404
    for name in ("publish", "share", "delete"):
        assert client.post(action(name, public), {}).status_code == 404
    publication = Publication.objects.get()
    assert client.post(action("unpublish", public, publication.pk)).status_code == 404
    assert Publication.objects.exists()


# ---------------------------------------------------------------- publishing

def test_publishing_to_a_self_publish_catalog_is_immediate(client_for, owner, solution, revision, catalogs):
    response = client_for(owner).post(action("publish", solution), {
        "revision": revision.pk, "catalog": catalogs["company"].pk}, follow=True)
    assert "Version 1.0.0 is published in Company Models" in html_of(response)
    assert Publication.objects.filter(revision=revision, catalog=catalogs["company"]).exists()
    solution.refresh_from_db()
    assert solution.audience == Audience.SIGNED_IN


def test_publishing_twice_is_refused_next_to_the_catalog(client_for, owner, solution, revision, catalogs):
    client = client_for(owner)
    data = {"revision": revision.pk, "catalog": catalogs["company"].pk}
    client.post(action("publish", solution), data)
    response = client.post(action("publish", solution), data)
    assert response.status_code == 400 and "already in Company Models" in html_of(response)
    assert response.context["publish_form"].errors["catalog"]
    assert Publication.objects.count() == 1


def test_publishing_to_a_catalog_that_needs_approval_sends_a_request(client_for, owner, solution, revision, catalogs):
    client = client_for(owner)
    data = {"revision": revision.pk, "catalog": catalogs["public"].pk, "message": "Please"}
    response = client.post(action("publish", solution), data, follow=True)
    assert "Request sent for review" in html_of(response)
    request = PublishRequest.objects.get()
    assert (request.status, request.message) == (RequestStatus.PENDING, "Please")
    assert not Publication.objects.exists()
    again = client.post(action("publish", solution), data)
    assert again.status_code == 400 and "already waits for review in Public Models" in html_of(again)


def test_a_version_still_onboarding_cannot_be_published(client_for, owner, solution, catalogs):
    onboarding = RevisionFactory(solution=solution, version="2.0.0", status=RevisionStatus.ONBOARDING)
    response = client_for(owner).post(action("publish", solution), {
        "revision": onboarding.pk, "catalog": catalogs["company"].pk})
    assert response.status_code == 400
    assert "still onboarding" in response.context["publish_form"].errors["revision"][0]
    assert not Publication.objects.exists()


def test_a_version_of_another_model_cannot_be_published_from_here(client_for, owner, solution, catalogs):
    other = RevisionFactory(solution=SolutionFactory(owner=owner))
    response = client_for(owner).post(action("publish", solution), {
        "revision": other.pk, "catalog": catalogs["company"].pk})
    assert response.status_code == 400 and response.context["publish_form"].errors["revision"]


def test_publications_and_requests_are_listed_with_unpublish_and_withdraw(client_for, owner, public, revision,
                                                                         catalogs, publisher):
    declined = services.publish(owner, RevisionFactory(solution=public, version="1.1.0"), catalogs["public"])
    services.decline(publisher, declined, "Needs a description")
    pending = services.publish(owner, RevisionFactory(solution=public, version="1.2.0"), catalogs["public"])
    html = html_of(client_for(owner).get(page_url(public)))
    publication = Publication.objects.get()
    assert action("unpublish", public, publication.pk) in html
    assert "Needs a description" in html and "badge--dc" in html and "badge--pe" in html
    assert action("withdraw", public, pending.pk) in html
    assert action("withdraw", public, declined.pk) not in html


def test_unpublish_takes_the_version_out_of_the_catalog(client_for, owner, public):
    publication = Publication.objects.get()
    response = client_for(owner).post(action("unpublish", public, publication.pk), follow=True)
    assert "is no longer in Public Models" in html_of(response)
    assert not Publication.objects.exists()
    public.refresh_from_db()
    assert public.audience == Audience.PRIVATE


def test_withdraw_a_pending_request_and_not_a_closed_one(client_for, owner, solution, revision, catalogs):
    request = services.publish(owner, revision, catalogs["public"])
    client = client_for(owner)
    client.post(action("withdraw", solution, request.pk))
    request.refresh_from_db()
    assert request.status == RequestStatus.WITHDRAWN
    response = client.post(action("withdraw", solution, request.pk), follow=True)
    assert "This request was already withdrawn" in html_of(response)


# ---------------------------------------------------------------- sharing

def test_sharing_adds_a_co_owner_who_can_be_removed(client_for, owner, co_owner, solution):
    client = client_for(owner)
    response = client.post(action("share", solution), {"username": "co-owner"}, follow=True)
    assert "co-owner is now a co-owner" in html_of(response)
    assert SolutionShare.objects.filter(solution=solution, user=co_owner).exists()
    html = html_of(client.get(page_url(solution)))
    assert action("unshare", solution, co_owner.pk) in html
    client.post(action("unshare", solution, co_owner.pk))
    assert not SolutionShare.objects.exists()


@pytest.mark.parametrize(("username", "error"), [("nobody", "No active user is called &#x27;nobody&#x27;"),
                                                 ("owner", "Owner owns this model already")])
def test_sharing_with_an_unknown_user_or_the_owner_is_refused_next_to_the_field(client_for, owner, solution,
                                                                                  username, error):
    response = client_for(owner).post(action("share", solution), {"username": username})
    assert response.status_code == 400 and error in html_of(response)
    assert response.context["share_form"].errors["username"]
    assert not SolutionShare.objects.exists()


# ---------------------------------------------------------------- deleting and restoring

def test_delete_needs_the_confirmation(client_for, owner, solution):
    response = client_for(owner).post(action("delete", solution), {})
    assert response.status_code == 400 and "Tick the box to confirm" in html_of(response)
    solution.refresh_from_db()
    assert not solution.is_deleted


def test_the_owner_deletes_and_restores(client_for, owner, public):
    client = client_for(owner)
    response = client.post(action("delete", public), {"confirm": "on"})
    assert response.status_code == 302 and response.url == reverse("marketplace:my-models") + "?tab=deleted"
    public.refresh_from_db()
    assert public.is_deleted
    assert client.get(page_url(public)).status_code == 404
    restored = client.post(action("restore", public))
    assert restored.status_code == 302 and restored.url == reverse("marketplace:my-models")
    public.refresh_from_db()
    assert not public.is_deleted


def test_a_co_owner_cannot_delete_and_is_not_offered_to(client_for, co_owner, shared):
    client = client_for(co_owner)
    html = html_of(client.get(page_url(shared)))
    assert 'id="manage"' in html and action("delete", shared) not in html
    response = client.post(action("delete", shared), {"confirm": "on"}, follow=True)
    assert "Only the owner or an admin deletes a model" in html_of(response)
    shared.refresh_from_db()
    assert not shared.is_deleted


def test_restore_is_a_404_for_strangers_and_for_a_model_that_is_not_deleted(client_for, owner, other_user, solution):
    assert client_for(owner).post(action("restore", solution)).status_code == 404
    services.soft_delete(owner, solution)
    assert client_for(other_user).post(action("restore", solution)).status_code == 404
    assert client_for(None).post(action("restore", solution)).status_code == 302  # to sign in
    solution.refresh_from_db()
    assert solution.is_deleted


def test_a_co_owner_cannot_restore(client_for, owner, co_owner, shared):
    services.soft_delete(owner, shared)
    response = client_for(co_owner).post(action("restore", shared), follow=True)
    assert "Only the owner or an admin restores a model" in html_of(response)
    shared.refresh_from_db()
    assert shared.is_deleted


# ---------------------------------------------------------------- query counts

def build_model(owner, catalogs, *, size: int) -> Solution:
    """A public model with `size` of everything: versions, artifacts, tags, catalogs, ratings, comments."""
    solution = SolutionFactory(owner=owner, name=f"Sized {size}", description="# Title\n\nSome *text*.")
    document, _ = storage.store_text(json.dumps(NESTED))
    for i in range(size):
        revision = RevisionFactory(solution=solution, version=f"{size}.{i}")
        Artifact.objects.create(revision=revision, kind=ArtifactKind.PROTOBUF_JSON, name="PROTOBUF.json", blob=document)
        for kind in (ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.LICENCE)[:size]:
            blob, _ = storage.store_text(f"{kind} {size} {i}")
            Artifact.objects.create(revision=revision, kind=kind, name=kind, blob=blob)
        services.publish_directly(revision, catalogs["public" if i % 2 == 0 else "company"])
    solution.tags.set([services.Tag.objects.get_or_create(name=f"tag-{size}-{i}")[0] for i in range(size)])
    parent = None
    for i in range(size):
        RatingFactory(solution=solution, stars=1 + i % 5, review=f"review {i}")
        parent = CommentFactory(solution=solution, parent=parent if i % 2 else None, text=f"comment {i}")
        Favorite.objects.create(solution=solution, user=UserFactory())
    services.share(owner, solution, UserFactory(username=f"helper-{size}").username)
    return solution


def queries_for(client, solution) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(page_url(solution)).status_code == 200
    return len(queries)


@pytest.mark.parametrize("persona", ["owner", None])
def test_the_page_costs_the_same_number_of_queries_whatever_the_size_of_the_model(request, client_for, catalogs,
                                                                                  persona, owner):
    small, big = build_model(owner, catalogs, size=1), build_model(owner, catalogs, size=6)
    client = client_for(request.getfixturevalue(persona) if persona else None)
    for solution in (small, big):  # warm: the session, the site settings; and this visitor's view counted
        queries_for(client, solution)
    for solution in (small, big):  # the shared part cold (selectors.page_cached), as after any change to it
        page_changed(solution.pk)
    cold = queries_for(client, small)
    assert cold == queries_for(client, big)
    warm = queries_for(client, small)
    assert warm == queries_for(client, big) == cold - 7  # tags, stars, reviews, comments, favorites, files, steps
    assert cold <= (16 if persona else 11)  # what it is today: a page that grows a query shows here
    # Anonymous visitors see the versions in the public catalog only.
    assert len(client.get(page_url(big)).context["revisions"]) == (6 if persona else 3)


def test_a_visitors_own_favorite_rating_and_co_ownership_cost_no_query_of_their_own(client_for, other_user, public,
                                                                                    co_owner):
    queries_for(client_for(None), public)  # the shared part cached
    anonymous = queries_for(client_for(None), public)
    stranger = client_for(other_user)
    queries_for(stranger, public)  # warm: the session
    bare = queries_for(stranger, public)
    services.toggle_favorite(other_user, public)
    services.rate(other_user, public, 2, "Meh")
    queries_for(stranger, public)  # the shared part moved on with the favorite and the rating
    assert queries_for(stranger, public) == bare == anonymous + 1  # the user row
    context = stranger.get(page_url(public)).context
    assert context["is_favorite"] and (context["my_rating"].stars, context["my_rating"].review) == (2, "Meh")
    assert not context["can_manage"] and not context["is_owner"]
    services.share(public.owner, public, co_owner.username)
    context = client_for(co_owner).get(page_url(public)).context
    assert context["can_manage"] and context["is_owner"] and not context["is_favorite"] and not context["my_rating"]


@pytest.mark.parametrize("status, endpoint", [(DeploymentStatus.STOPPED, "http://127.0.0.1:4100/"),
                                              (DeploymentStatus.RUNNING, "")])
def test_the_examples_call_no_deployment_that_is_stopped_or_has_no_endpoint(client_for, owner, public, revision,
                                                                           status, endpoint):
    target = Target.objects.create(name="local", kind="local")
    Deployment.objects.create(name="iris-off", target=target, revision=revision, status=status,
                              endpoint_url=endpoint, created_by=owner, admin_token_encrypted="-")
    context = client_for(owner).get(page_url(public)).context
    assert context["deployment"] is None and context["examples"][0].url.startswith("http://localhost:3330/")


def test_comments_and_reviews_drawn_once_still_show_each_visitor_their_own_actions(client_for, other_user, admin_user,
                                                                                   public):
    comment = CommentFactory(solution=public, author=other_user, text="<script>alert(1)</script> works")
    services.rate(other_user, public, 5, "Solid")
    stranger = client_for(UserFactory())
    pages = {who: html_of(client.get(page_url(public)))  # one page version: the drawn parts cached once
             for who, client in (("author", client_for(other_user)), ("stranger", stranger),
                                 ("admin", client_for(admin_user)), ("anonymous", client_for(None)))}
    delete = action("comment-delete", public, comment.pk)
    assert delete in pages["author"] and delete in pages["admin"]
    assert delete not in pages["stranger"] and delete not in pages["anonymous"]
    you = '<span class="badge badge--role">You</span>'
    assert you in pages["author"] and all(you not in pages[who] for who in ("stranger", "admin", "anonymous"))
    for html in pages.values():
        assert "&lt;script&gt;alert(1)&lt;/script&gt; works" in html and "<script>alert(1)" not in html
        assert html.count(f'id="comment-{comment.pk}-by"') == 1 and "Solid" in html


def test_a_comment_or_review_the_kept_drawing_lacks_is_drawn_all_the_same(client_for, other_user, public):
    CommentFactory(solution=public, text="Still here")
    RatingFactory(solution=public, stars=3, review="Fine")
    public.refresh_from_db()
    for part in ("comment-bodies", "review-heads"):  # as if drawn from a list read before the write
        assert page_cached(public, part, dict) == {}
    html = html_of(client_for(other_user).get(page_url(public)))
    assert "Still here" in html and 'aria-label="3.0 out of 5 stars"' in html
