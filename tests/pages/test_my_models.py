"""My models: four tabs (unpublished with the uploads still onboarding, published, deleted, publish
requests), each with its count; a newcomer's empty state; live progress while a job runs; the
same number of queries for 1 model as for 10."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace import services
from marketplace.models import Solution
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from pages.views.my_models import TABS

from ..factories import RevisionFactory, SolutionFactory, published_revision

pytestmark = pytest.mark.django_db
MY_MODELS = "/my-models/"


def page(client, tab: str = "") -> str:
    response = client.get(MY_MODELS + (f"?tab={tab}" if tab else ""))
    assert response.status_code == 200
    return response.content.decode()


def tab_counts(html: str) -> dict[str, int]:
    found = re.findall(r'href="\?tab=(\w+)"[^>]*>[^<]*<span class="count">(\d+)</span>', html)
    return {name: int(count) for name, count in found}


def job(owner, name: str, *, status=JobStatus.RUNNING, done: int = 3, error: str = "", finished=None):
    made = OnboardingJob.objects.create(owner=owner, model_name=name, solution_uuid=SolutionFactory.build().id,
                                        version="1.0.0", status=status, error=error, finished=finished)
    StepResult.objects.bulk_create(
        StepResult(job=made, name=step, position=i, status=StepStatus.SUCCEEDED if i < done else StepStatus.PENDING)
        for i, (step, _) in enumerate(STEPS))
    return made


def test_it_asks_anonymous_visitors_to_sign_in(client):
    response = client.get(MY_MODELS)
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_a_newcomer_sees_a_friendly_start(client_for, other_user):
    html = page(client_for(other_user))
    assert "No models yet" in html and "Onboard your first model" in html
    assert f'href="{reverse("onboarding:new")}"' in html
    assert "?tab=published" not in html  # no empty tabs to wander through


def test_unpublished_lists_what_i_own_or_co_own_and_nothing_else(client_for, owner, co_owner, other_user, catalogs):
    mine = RevisionFactory(solution=SolutionFactory(owner=owner, name="Mine, private")).solution
    shared = RevisionFactory(solution=SolutionFactory(owner=other_user, name="Shared with me")).solution
    services.share(other_user, shared, owner.username)
    published_revision(catalogs["company"], owner=owner, name="Mine, published")
    SolutionFactory(owner=other_user, name="Theirs")
    gone = SolutionFactory(owner=owner, name="Mine, deleted")
    services.soft_delete(owner, gone)

    html = page(client_for(owner))
    assert "Mine, private" in html and "Shared with me" in html and "co-owner" in html
    assert "Mine, published" not in html and "Theirs" not in html and "Mine, deleted" not in html
    assert reverse("marketplace:model", args=[mine.pk]) in html
    assert tab_counts(html) == {"unpublished": 2, "published": 1, "deleted": 1, "requests": 0}


def test_an_admin_sees_their_own_shelf_not_the_whole_site(client_for, admin_user, owner):
    SolutionFactory(owner=owner, name="Somebody elses model")
    SolutionFactory(owner=admin_user, name="The admins own model")
    html = page(client_for(admin_user))
    assert "The admins own model" in html and "Somebody elses model" not in html


def test_a_running_upload_shows_its_progress_and_the_page_polls_until_it_ends(client_for, owner):
    running = job(owner, "Still onboarding", done=4)
    html = page(client_for(owner))
    assert "Still onboarding" in html and 'class="row--waiting"' in html
    assert f'max="{len(STEPS)}" value="4"></progress>' in html  # a <progress>: no style="width" (the CSP)
    assert 'hx-trigger="every 2s"' in html and 'hx-select="#my-models-live"' in html
    assert tab_counts(html)["unpublished"] == 1

    OnboardingJob.objects.filter(pk=running.pk).update(status=JobStatus.SUCCEEDED)
    html = page(client_for(owner))
    assert "hx-trigger" not in html.split('id="main"')[1]  # nothing runs: the polling stops


def test_recent_failed_uploads_show_their_error(client_for, owner):
    job(owner, "Broke today", status=JobStatus.FAILED, error="model.proto does not compile",
        finished=timezone.now() - timedelta(hours=1))
    job(owner, "Broke long ago", status=JobStatus.FAILED, error="old news",
        finished=timezone.now() - timedelta(days=30))
    html = page(client_for(owner))
    assert "Broke today" in html and "model.proto does not compile" in html
    assert "Broke long ago" not in html and "old news" not in html
    assert "No models yet" not in html


def test_published_shows_each_catalog_with_the_version_in_it(client_for, owner, catalogs):
    revision = published_revision(catalogs["company"], owner=owner, name="Iris")
    newer = RevisionFactory(solution=revision.solution, version="2.0.0")
    services.publish_directly(newer, catalogs["public"])
    html = page(client_for(owner), "published")
    assert "Iris" in html
    assert f"Company Models · {revision.version}" in html and "Public Models · 2.0.0" in html
    assert "seen by anyone" in html


def test_deleted_offers_restore_to_the_owner_only(client_for, owner, co_owner):
    solution = SolutionFactory(owner=owner, name="Binned")
    services.share(owner, solution, co_owner.username)
    services.soft_delete(owner, solution)
    restore = reverse("marketplace:model-restore", args=[solution.pk])

    html = page(client_for(owner), "deleted")
    assert "Binned" in html and f'action="{restore}"' in html
    co_html = page(client_for(co_owner), "deleted")
    assert "Binned" in co_html and restore not in co_html and "only its owner restores it" in co_html

    assert client_for(owner).post(restore).status_code == 302
    assert Solution.objects.get(pk=solution.pk).deleted_at is None
    assert "Binned" in page(client_for(owner), "unpublished")


def test_publish_requests_come_pending_first_with_the_reviewers_comment(client_for, owner, publisher, catalogs):
    declined_revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Declined one"))
    declined = services.publish(owner, declined_revision, catalogs["public"])
    services.decline(publisher, declined, "Add a description first.")
    waiting_revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Waiting one"))
    waiting = services.publish(owner, waiting_revision, catalogs["public"], message="please")

    html = page(client_for(owner), "requests")
    assert html.index("Waiting one") < html.index("Declined one")
    assert "Add a description first." in html and "Public Models" in html
    assert waiting_revision.version in html and "badge--pe" in html and "badge--dc" in html
    withdraw_waiting = reverse("marketplace:model-withdraw", args=[waiting.solution_id, waiting.pk])
    withdraw_declined = reverse("marketplace:model-withdraw", args=[declined.solution_id, declined.pk])
    assert f'action="{withdraw_waiting}"' in html and withdraw_declined not in html
    assert tab_counts(html)["requests"] == 2


def test_another_users_requests_are_not_mine(client_for, owner, other_user, catalogs):
    theirs = RevisionFactory(solution=SolutionFactory(owner=other_user, name="Their request"))
    services.publish(other_user, theirs, catalogs["public"])
    SolutionFactory(owner=owner)
    html = page(client_for(owner), "requests")
    assert "Their request" not in html and "No publish requests" in html


def test_an_unknown_tab_shows_the_first(client_for, owner):
    SolutionFactory(owner=owner, name="Private thing")
    assert "Private thing" in page(client_for(owner), "nonsense")


# ---------------------------------------------------------------- constant queries

def fill(owner, other_user, catalogs, first: int, last: int) -> None:
    """Models first..last in every tab, with versions, co-owners, publications, requests and jobs
    (the models waiting for review are unpublished too)."""
    for i in range(first, last + 1):
        private = RevisionFactory(solution=SolutionFactory(owner=owner, name=f"Private {i}")).solution
        RevisionFactory(solution=private)
        services.share(owner, private, other_user.username)
        shown = published_revision(catalogs["company"], owner=owner, name=f"Published {i}")
        services.publish_directly(RevisionFactory(solution=shown.solution), catalogs["public"])
        services.publish(owner, RevisionFactory(solution=SolutionFactory(owner=owner)), catalogs["public"])
        services.soft_delete(owner, RevisionFactory(solution=SolutionFactory(owner=owner)).solution)
        job(owner, f"Job {i}")
        job(owner, f"Failed {i}", status=JobStatus.FAILED, error="no", finished=timezone.now())


def queries(client) -> dict[str, int]:
    counted = {}
    for tab in TABS:
        cache.clear()  # the site's name is cached across requests: every page reads it afresh
        with CaptureQueriesContext(connection) as captured:
            page(client, tab)
        counted[tab] = len(captured.captured_queries)
    return counted


def test_each_tab_costs_the_same_queries_for_1_or_10_models(client_for, owner, other_user, catalogs):
    client = client_for(owner)
    fill(owner, other_user, catalogs, 1, 1)
    few = queries(client)
    fill(owner, other_user, catalogs, 2, 10)
    many = queries(client)
    assert many == few
    assert tab_counts(page(client)) == {"unpublished": 30, "published": 10, "deleted": 10, "requests": 10}


def test_a_description_is_shown_as_its_words_without_markdown(client_for, owner):
    RevisionFactory(solution=SolutionFactory(owner=owner, description=(
        "# Iris classifier\n\nA **10-tree** forest.\n\n| field | unit |\n|---|---|\n| sepal_length | cm |")))
    html = client_for(owner).get("/my-models/").content.decode()
    row = re.search(r'<div class="muted small">(.*?)</div>', html, re.S).group(1)
    assert "Iris classifier" in row and "10-tree" in row and "sepal_length" in row
    assert not re.search(r"\*\*|\|---|#", row)
