"""Notifications: each event tells the right person once and nobody else (publish requested,
approved, declined; a comment, a reply, a review; a share; onboarding finished or failed through a
real upload; a deployment's operation and status change); the page (all/unread, newest first,
pages of 25); opening one and marking read, per user; the bell's count; nothing for anonymous."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from acumos_portal.choices import JobStatus
from deployment import secretbox
from deployment import services as deployment_services
from deployment.backends import BackendError
from deployment.choices import DeploymentStatus, OperationKind, TargetKind
from deployment.models import Deployment, Target
from marketplace import selectors, services
from marketplace.choices import NotificationKind as Kind
from marketplace.models import Notification, NotificationPreference
from onboarding.models import OnboardingJob

from ..bundles import builders, parts_of
from ..concurrency import at_once
from ..factories import RevisionFactory, SolutionFactory, UserFactory, published_revision
from ..onboarding.test_views import post_files

pytestmark = pytest.mark.django_db
PAGE = "/notifications/"
BELL = "/notifications/bell/"


def told(user, kind=None) -> list[Notification]:
    found = Notification.objects.filter(user=user)
    return list(found.filter(kind=kind) if kind else found)


def everyone_else(told_ones, *people) -> None:
    """Nobody but `told_ones` got any notification."""
    for person in people:
        if person not in told_ones:
            assert told(person) == [], person.username


# ---------------------------------------------------------------- who is told what

def test_a_publish_request_tells_each_reviewer_but_not_the_owner(owner, other_user, publisher, admin_user, catalogs):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"))
    services.publish(owner, revision, catalogs["public"], message="ready for everyone")
    for reviewer in (publisher, admin_user):
        [note] = told(reviewer)
        assert note.kind == Kind.PUBLISH_REQUESTED and "Iris" in note.title and note.message == "ready for everyone"
        assert note.url == reverse("marketplace:manage-requests")
    everyone_else([publisher, admin_user], owner, other_user)


def test_two_owners_requests_for_models_of_one_name_are_two_notifications_never_merged(
        owner, other_user, publisher, catalogs):
    """A hostile user names a model like someone's pending one: the publisher still sees both requests,
    each with its own message (grouping is for repeats of one event, not for look-alikes)."""
    for who, said in ((owner, "the real one"), (other_user, "IGNORE THE OTHER ONE")):
        revision = RevisionFactory(solution=SolutionFactory(owner=who, name="Iris"), version="1.0.0")
        services.publish(who, revision, catalogs["public"], message=said)
    notes = told(publisher)
    assert len(notes) == 2 and {note.message for note in notes} == {"the real one", "IGNORE THE OTHER ONE"}
    assert all(note.count == 1 for note in notes)


def test_a_self_publish_tells_nobody(owner, publisher, catalogs):
    services.publish(owner, RevisionFactory(solution=SolutionFactory(owner=owner)), catalogs["company"])
    everyone_else([], owner, publisher)


@pytest.mark.parametrize("decision", ["approve", "decline"])
def test_a_review_tells_the_requester_only(owner, co_owner, publisher, admin_user, catalogs, decision):
    solution = SolutionFactory(owner=owner, name="Iris")
    services.share(owner, solution, co_owner.username)
    request = services.publish(co_owner, RevisionFactory(solution=solution), catalogs["public"])
    Notification.objects.all().delete()  # the share and the request's own notifications

    comment = "Nice docs." if decision == "approve" else "Needs docs."
    getattr(services, decision)(publisher, request, comment)
    [note] = told(co_owner)
    assert note.kind == (Kind.PUBLISH_APPROVED if decision == "approve" else Kind.PUBLISH_DECLINED)
    assert note.url == reverse("marketplace:model", args=[solution.pk]) and note.message == comment
    everyone_else([co_owner], owner, publisher, admin_user)


def test_a_comment_tells_the_owner_and_a_reply_tells_the_commenter(owner, other_user, catalogs):
    solution = published_revision(catalogs["company"], owner=owner, name="Iris").solution
    third = UserFactory(username="third")
    comment = services.add_comment(other_user, solution, "Which features does it use?")
    [note] = told(owner)
    assert note.kind == Kind.COMMENT and note.url.endswith(f"#comment-{comment.pk}")
    everyone_else([owner], other_user, third)

    Notification.objects.all().delete()
    services.add_comment(owner, solution, "The four measurements.", parent=comment)
    assert [n.kind for n in told(other_user)] == [Kind.COMMENT]
    everyone_else([other_user], owner, third)


def test_a_review_tells_the_owner_once(owner, other_user, catalogs):
    solution = published_revision(catalogs["company"], owner=owner, name="Iris").solution
    services.rate(other_user, solution, 4, "Solid baseline.")
    services.rate(other_user, solution, 5, "Even better.")  # changing one's rating is not news
    [note] = told(owner)
    assert note.kind == Kind.REVIEW and "4 stars" in note.title and note.message == "Solid baseline."
    everyone_else([owner], other_user)
    with pytest.raises(services.Refused):  # owners do not rate their own model, and nobody is told
        services.rate(owner, solution, 5)
    assert len(told(owner)) == 1


def test_a_share_tells_the_new_co_owner(owner, co_owner, other_user):
    solution = SolutionFactory(owner=owner, name="Iris")
    services.share(owner, solution, co_owner.username)
    [note] = told(co_owner)
    assert note.kind == Kind.SHARED and "owner shared Iris" in note.title
    everyone_else([co_owner], owner, other_user)


def test_onboarding_tells_the_uploader_when_it_is_ready(owner, other_user, client_for, bundle_parts, inline_jobs,
                                                        settings):
    settings.ACUMOS_SMOKE_TEST = False  # this test is about the notification, not the runner
    with inline_jobs():
        post_files(client_for(owner), bundle_parts)
    job = OnboardingJob.objects.get()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    [note] = told(owner)
    assert note.kind == Kind.ONBOARDING_SUCCEEDED and "IrisClassifier" in note.title
    assert note.url == reverse("marketplace:revision", args=[job.revision_uuid])
    everyone_else([owner], other_user)


def test_onboarding_tells_the_uploader_when_it_fails(owner, other_user, client_for, inline_jobs, tmp_path):
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    with inline_jobs():
        post_files(client_for(owner), parts_of(bundle))
    job = OnboardingJob.objects.get()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    [note] = told(owner)
    assert note.kind == Kind.ONBOARDING_FAILED and "smoke_test" in note.title
    assert note.url == reverse("onboarding:job", args=[job.pk]) and note.message == job.error
    everyone_else([owner], other_user)


@pytest.fixture
def deployment(owner):
    """A running deployment on this host whose runner is gone (no process): the status check finds it down."""
    revision = RevisionFactory(solution=SolutionFactory(owner=owner))
    target = Target.objects.create(name="This host", kind=TargetKind.LOCAL)
    return Deployment.objects.create(name="iris", target=target, revision=revision, created_by=owner,
                                     status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9/",
                                     admin_token_encrypted=secretbox.encrypt("token"))


def test_a_deployment_status_change_tells_its_creator(deployment, owner, other_user):
    deployment_services.check_deployment(deployment)
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DOWN
    [note] = told(owner)
    assert note.kind == Kind.DEPLOYMENT and DeploymentStatus.DOWN.label.lower() in note.title
    assert note.url == f"/deployments/{deployment.pk}/"
    deployment_services.check_deployment(deployment)  # still down: no news
    assert len(told(owner)) == 1
    everyone_else([owner], other_user)


def test_an_operation_someone_else_made_tells_the_deployments_creator(deployment, owner, co_owner):
    operation = deployment_services.stop(deployment, co_owner)
    deployment_services.run_operation(str(operation.pk))
    [note] = told(owner)
    assert note.kind == Kind.DEPLOYMENT and note.title.endswith(f"Stop done by {co_owner.username}")
    everyone_else([owner], co_owner)  # co_owner stopped it and saw it stop


def test_nobody_is_told_of_their_own_success_but_of_their_own_failure(deployment, owner, monkeypatch):
    stopped = deployment_services.stop(deployment, owner)
    deployment_services.run_operation(str(stopped.pk))
    everyone_else([], owner)

    def out_of_reach(operation):
        raise BackendError("the target's engine did not answer")

    monkeypatch.setitem(deployment_services.ACTIONS, OperationKind.START, out_of_reach)
    deployment.refresh_from_db()
    started = deployment_services.start(deployment, owner)
    deployment_services.run_operation(str(started.pk))
    [note] = told(owner)
    assert note.title.endswith("Start failed") and note.message == "the target's engine did not answer"


# ---------------------------------------------------------------- repeats group

def swapped(user, deployment_id="d1", what="Hot swap done") -> Notification:
    return services.notify(user, Kind.DEPLOYMENT, f"Iris 1.0.0 on This host: {what}",
                           url=f"/deployments/{deployment_id}/", message=f"{what} at {timezone.now()}")


def test_the_same_event_about_the_same_object_while_unread_is_one_row_with_a_count(owner):
    first = swapped(owner)
    swapped(owner)
    latest = swapped(owner)
    [row] = told(owner)
    assert row.pk == first.pk == latest.pk and row.count == 3
    assert row.message == latest.message and row.created >= first.created  # the latest's


def test_once_read_a_new_event_starts_a_new_row(owner):
    swapped(owner), swapped(owner), swapped(owner)
    services.mark_read(owner)
    fresh = swapped(owner)
    assert [(n.count, n.is_read) for n in told(owner)] == [(1, False), (3, True)]
    assert swapped(owner).pk == fresh.pk and Notification.objects.get(pk=fresh.pk).count == 2


def test_other_events_other_objects_and_other_people_keep_their_rows(owner, other_user):
    swapped(owner, "d1"), swapped(owner, "d2"), swapped(owner, "d1", what="Roll back done"), swapped(other_user, "d1")
    assert sorted((n.target, n.title.rsplit(": ", 1)[1], n.count) for n in told(owner)) == [
        ("/deployments/d1/", "Hot swap done", 1), ("/deployments/d1/", "Roll back done", 1),
        ("/deployments/d2/", "Hot swap done", 1)]
    assert [n.count for n in told(other_user)] == [1]


def test_comments_on_one_model_by_one_person_group_and_open_the_latest(owner, other_user, catalogs):
    solution = published_revision(catalogs["company"], owner=owner, name="Iris").solution
    services.add_comment(other_user, solution, "First question")
    latest = services.add_comment(other_user, solution, "Second question")
    [note] = told(owner, Kind.COMMENT)
    assert note.count == 2 and note.message == "Second question"
    assert note.url.endswith(f"#comment-{latest.pk}") and note.target == f"/models/{solution.pk}/"


def test_the_page_and_the_api_show_the_count_and_the_latest_time(client_for, owner):
    for _ in range(3):
        swapped(owner)
    html = client_for(owner).get(PAGE).content.decode()
    assert "Hot swap done" in html and "×3" in html and "3 times, latest" in html
    assert html.count('id="notification-') == 1
    [listed] = client_for(owner).get("/api/v1/notifications").json()["results"]
    assert listed["count"] == 3
    assert client_for(owner).get(BELL).context["UNREAD_COUNT"] == 1


def test_an_event_that_another_process_just_recorded_adds_to_its_row(owner, monkeypatch):
    """Between notify's UPDATE (nothing unread yet) and its INSERT, another worker made the row: the
    unique constraint refuses the second row, and the event counts on the first."""
    theirs = swapped(owner)
    looked = []

    def saw_nothing_the_first_time(event, latest):
        looked.append(event)
        return None if len(looked) == 1 else real_add(event, latest)

    real_add = services._add_to_unread
    monkeypatch.setattr(services, "_add_to_unread", saw_nothing_the_first_time)
    assert swapped(owner).pk == theirs.pk
    assert [n.count for n in told(owner)] == [2] and len(looked) == 2


@pytest.mark.django_db(transaction=True)
def test_events_told_at_once_by_several_workers_make_one_row_counting_them_all(owner):
    made = at_once(*[lambda: swapped(owner) for _ in range(6)])
    assert not [result for result in made if isinstance(result, Exception)], made
    assert [n.count for n in told(owner)] == [6]


@pytest.mark.django_db(transaction=True)
def test_the_migration_groups_the_unread_repeats_already_there(owner):
    executor = MigrationExecutor(connection)
    before = [("marketplace", "0008_solution_counts_index")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("marketplace", "Notification")
    for i in range(3):
        old.objects.create(user_id=owner.pk, kind=Kind.DEPLOYMENT, title="Iris: Hot swap done", url="/deployments/d1/",
                           message=f"swap {i}")
    old.objects.create(user_id=owner.pk, kind=Kind.DEPLOYMENT, title="Iris: Hot swap done", url="/deployments/d1/",
                       read_at=timezone.now())  # read: stays as it was
    old.objects.create(user_id=owner.pk, kind=Kind.COMMENT, title="theo commented on Iris", url="/models/m1/#comment-4")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    rows = sorted((n.kind, n.target, n.count, n.is_read, n.message) for n in told(owner))
    assert rows == [(Kind.COMMENT, "/models/m1/", 1, False, ""),
                    (Kind.DEPLOYMENT, "/deployments/d1/", 1, True, ""),
                    (Kind.DEPLOYMENT, "/deployments/d1/", 3, False, "swap 2")]  # the newest stays


# ---------------------------------------------------------------- which kinds a user hears of

def test_every_kind_is_on_until_its_user_turns_it_off(owner, other_user):
    assert all(choice.enabled for choice in selectors.notification_choices(owner))
    services.set_notification_preferences(owner, {Kind.DEPLOYMENT: False})
    assert swapped(owner) is None and told(owner) == []  # no row
    assert swapped(other_user).count == 1  # theirs is theirs
    services.notify(owner, Kind.COMMENT, "theo commented on Iris")
    assert [n.kind for n in told(owner)] == [Kind.COMMENT]
    services.set_notification_preferences(owner, {Kind.DEPLOYMENT: True})
    assert swapped(owner).count == 1


def test_a_comment_on_a_model_whose_owner_turned_comments_off_tells_nobody(owner, other_user, catalogs):
    solution = published_revision(catalogs["company"], owner=owner, name="Iris").solution
    services.set_notification_preferences(owner, {Kind.COMMENT: False})
    first = services.add_comment(other_user, solution, "Which data set?")
    services.add_comment(owner, solution, "The classic one.", parent=first)
    assert told(owner) == [] and [n.kind for n in told(other_user)] == [Kind.COMMENT]  # the reply still tells


def test_a_failed_upload_is_always_told(owner):
    with pytest.raises(services.Refused, match="always on"):
        services.set_notification_preferences(owner, {Kind.ONBOARDING_FAILED: False, Kind.COMMENT: False})
    assert not NotificationPreference.objects.exists()  # nothing of a refused change is kept
    NotificationPreference.objects.create(user=owner, kind=Kind.ONBOARDING_FAILED, enabled=False)  # however made
    assert services.notify(owner, Kind.ONBOARDING_FAILED, "Onboarding Iris failed at smoke_test") is not None
    assert [c.enabled for c in selectors.notification_choices(owner) if c.kind == Kind.ONBOARDING_FAILED] == [True]


def test_an_unknown_kind_is_refused_naming_the_kinds(owner):
    with pytest.raises(services.Refused, match="'gossip' is not a kind of notification; the kinds are "):
        services.set_notification_preferences(owner, {"gossip": False})


def test_the_choices_are_grouped_in_plain_words_and_reviews_only_for_publishers(owner, publisher):
    mine = selectors.notification_choices(owner)
    assert [c.group for c in mine] == (["Your models"] * 5 + ["What people say"] * 2
                                       + ["Deployments", "Federation", "Licensing"])
    assert all(c.description.endswith(".") and c.label for c in mine)
    assert Kind.PUBLISH_REQUESTED not in {c.kind for c in mine}
    assert selectors.notification_choices(publisher)[-1].kind == Kind.PUBLISH_REQUESTED


# ---------------------------------------------------------------- the page

def notes(user, n: int, **fields) -> list[Notification]:
    return [services.notify(user, Kind.COMMENT, f"note {i}", url=f"/models/x{i}/", **fields) for i in range(n)]


def test_it_asks_anonymous_visitors_to_sign_in(client):
    for url in (PAGE, "/notifications/1/open/"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    response = client.post("/notifications/read/")
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_it_lists_mine_newest_first_with_the_unread_highlighted(client_for, owner, other_user):
    older, newer = notes(owner, 2)
    services.mark_read(owner, [older.pk])
    notes(other_user, 1, message="not for the owner")
    html = client_for(owner).get(PAGE).content.decode()
    assert html.index("note 1") < html.index("note 0")
    assert f'feed__item feed__item--unread" id="notification-{newer.pk}"' in html
    assert f'class="feed__item" id="notification-{older.pk}"' in html
    assert "not for the owner" not in html
    assert "Mark all as read" in html


def test_it_filters_the_unread_ones(client_for, owner):
    read, unread = notes(owner, 2)
    services.mark_read(owner, [read.pk])
    response = client_for(owner).get(PAGE + "?show=unread")
    assert [n.pk for n in response.context["page"]] == [unread.pk]
    services.mark_read(owner)
    html = client_for(owner).get(PAGE + "?show=unread").content.decode()
    assert "You are all caught up" in html and "Mark all as read" not in html


def test_it_pages_by_25(client_for, owner):
    notes(owner, 30)
    first = client_for(owner).get(PAGE)
    assert len(first.context["page"].object_list) == 25 and "?show=all&amp;page=2" in first.content.decode()
    assert len(client_for(owner).get(PAGE + "?page=2").context["page"].object_list) == 5


def test_a_newcomer_sees_what_they_will_hear_about(client_for, owner):
    html = client_for(owner).get(PAGE).content.decode()
    assert "No notifications yet" in html


def test_opening_one_marks_it_read_and_goes_to_its_page(client_for, owner):
    note, other = notes(owner, 2)
    response = client_for(owner).post(reverse("marketplace:notification-open", args=[note.pk]))
    assert response.status_code == 302 and response.url == note.url
    note.refresh_from_db(), other.refresh_from_db()
    assert note.is_read and not other.is_read
    response = client_for(owner).get(reverse("marketplace:notification-open", args=[other.pk]))  # a plain link
    assert response.url == other.url and Notification.objects.get(pk=other.pk).is_read


def test_opening_never_leaves_the_site(client_for, owner):
    note = services.notify(owner, Kind.COMMENT, "odd", url="https://evil.example/")
    response = client_for(owner).post(reverse("marketplace:notification-open", args=[note.pk]))
    assert response.url == PAGE


def test_nobody_opens_another_users_notification(client_for, owner, other_user):
    [theirs] = notes(other_user, 1)
    response = client_for(owner).post(reverse("marketplace:notification-open", args=[theirs.pk]))
    assert response.status_code == 404
    assert not Notification.objects.get(pk=theirs.pk).is_read


def test_mark_read_changes_only_my_own(client_for, owner, other_user):
    mine = notes(owner, 3)
    theirs = notes(other_user, 2)
    client = client_for(owner)
    response = client.post("/notifications/read/", {"ids": [mine[0].pk, theirs[0].pk, "nonsense"]})
    assert response.status_code == 302 and response.url == PAGE
    assert [n.is_read for n in Notification.objects.filter(user=owner).order_by("pk")] == [True, False, False]

    client.post("/notifications/read/", {"next": PAGE + "?show=unread"})  # all of mine
    assert not Notification.objects.filter(user=owner, read_at__isnull=True).exists()
    assert Notification.objects.filter(user=other_user, read_at__isnull=True).count() == 2


def test_mark_read_with_htmx_answers_the_list_and_tells_the_bell(client_for, owner):
    first, second = notes(owner, 2)
    response = client_for(owner).post("/notifications/read/", {"ids": [first.pk], "show": "unread"},
                                      headers={"HX-Request": "true"})
    assert response.status_code == 200 and response["HX-Trigger"] == "notifications-read"
    assert [n.pk for n in response.context["page"]] == [second.pk]  # the unread list it was on


def test_mark_read_wants_a_post(client_for, owner):
    assert client_for(owner).get("/notifications/read/").status_code == 405


# ---------------------------------------------------------------- the bell

def test_the_bell_shows_my_unread_count(client_for, owner, other_user):
    notes(owner, 3)
    notes(other_user, 5)
    services.mark_read(owner, [Notification.objects.filter(user=owner).first().pk])
    response = client_for(owner).get(BELL)
    assert response.status_code == 200 and response.context["UNREAD_COUNT"] == 2
    assert "2 unread" in response.content.decode()
    services.mark_read(owner)
    assert client_for(owner).get(BELL).context["UNREAD_COUNT"] == 0


def test_the_bell_gives_anonymous_visitors_nothing(client):
    response = client.get(BELL)
    assert response.status_code == 204 and response.content == b""
