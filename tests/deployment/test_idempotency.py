"""A create sent twice makes one deployment. The API takes an `Idempotency-Key` header (as Stripe and
the IETF draft name it): the same key, user and body within 24 hours answer 200 with the deployment
the first request made; the same key with another body answers 409 idempotency_key_reused. The
deploy form carries a one-time key of its own, so a double submit or the same form sent from two
tabs makes one deployment. The key is stored with a unique constraint: two requests at once make one."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.utils import timezone

from acumos_portal import jobs
from deployment import services
from deployment.choices import TargetDeployers, TargetKind
from deployment.models import Deployment, Operation

from ..factories import RevisionFactory, SolutionFactory, TargetFactory

KEY = "6f1c0d3e-6a9e-4bb5-9a55-0b1f3c9d2a11"


@pytest.fixture
def revision(owner):
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="HousePrice"), version="1.0.0")


@pytest.fixture
def target(db):
    return TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


def create(client, revision, target, key: str | None = KEY, **body):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/api/v1/deployments", {"revision": str(revision.pk), "target": str(target.pk), **body},
                       content_type="application/json", **headers)


@pytest.mark.django_db
def test_the_same_key_and_body_twice_make_one_deployment_and_the_second_answer_is_200(
        owner, revision, target, client_for):
    client = client_for(owner)
    first = create(client, revision, target, name="house-prod")
    again = create(client, revision, target, name="house-prod")
    assert first.status_code == 202 and again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert Deployment.objects.count() == 1 and Operation.objects.count() == 1
    # The same request in other words (a default spelled out, the key as a structured-header string).
    quoted = create(client, revision, target, key=f'"{KEY}"', name=" house-prod ", replicas=1, follow=False)
    assert quoted.status_code == 200 and Deployment.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_refused_with_409(owner, revision, target, client_for):
    client = client_for(owner)
    first = create(client, revision, target)
    other = create(client, revision, target, replicas=2)
    assert other.status_code == 409, other.content
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["details"]["deployment"] == first.json()["id"]
    assert "send a new key for a new deployment" in error["message"]
    assert Deployment.objects.count() == 1


@pytest.mark.django_db
def test_a_key_is_per_user_and_no_key_means_no_protection(owner, admin_user, revision, target, client_for):
    create(client_for(owner), revision, target)
    assert create(client_for(admin_user), revision, target).status_code == 202  # another user's key space
    create(client_for(owner), revision, target, key=None)
    create(client_for(owner), revision, target, key=None)
    assert Deployment.objects.count() == 4


@pytest.mark.django_db
def test_after_24_hours_the_key_is_free_again(owner, revision, target, client_for):
    client = client_for(owner)
    first = create(client, revision, target)
    Deployment.objects.update(created=timezone.now() - timedelta(hours=24, seconds=1))
    later = create(client, revision, target, replicas=2)  # a new request: a new deployment
    assert later.status_code == 202 and later.json()["id"] != first.json()["id"]
    assert Deployment.objects.get(pk=first.json()["id"]).idempotency_key is None


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["x" * 256, "has space", "tab\there", "ключ"])
def test_a_malformed_key_is_refused_before_anything_is_made(owner, revision, target, client_for, key):
    response = create(client_for(owner), revision, target, key=key)
    assert response.status_code == 400, response.content
    assert "1 to 255 printable ASCII" in str(response.json()["error"]["details"]["Idempotency-Key"])
    assert not Deployment.objects.exists()


# ---------------------------------------------------------------- two at once

@pytest.fixture
def nothing_sent(monkeypatch):
    """The deploy operations these tests ask for are committed for real: nothing runs them."""
    monkeypatch.setattr(jobs, "send", lambda task, *args, **kwargs: None)


def at_once(calls: int, call) -> list:
    """`call()` from `calls` threads at once, each on its own database connection; their answers."""
    start, answers = threading.Barrier(calls), []

    def run():
        try:
            start.wait(10)
            answers.append(call())
        except Exception as exc:  # noqa: BLE001 (the test shows what failed)
            answers.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


@pytest.mark.django_db(transaction=True)
def test_two_creates_at_once_with_one_key_make_one_deployment(operator, revision, target, nothing_sent,
                                                               monkeypatch):
    """An operator has no quota, so no row lock orders the two: both look the key up before either
    writes (held at a barrier there), and the unique constraint decides."""
    looked_up, first_look = threading.Barrier(2), threading.local()
    made_with_key = services._made_with_key

    def look_up_then_wait(*args):
        found = made_with_key(*args)
        if not getattr(first_look, "done", False):
            first_look.done = True
            looked_up.wait(10)
        return found

    monkeypatch.setattr(services, "_made_with_key", look_up_then_wait)
    answers = at_once(2, lambda: services.deploy_once(revision=revision, target=target, user=operator,
                                                       idempotency_key=KEY))
    assert not [answer for answer in answers if isinstance(answer, Exception)], answers
    assert sorted(made for _, made in answers) == [False, True]
    assert answers[0][0].pk == answers[1][0].pk
    assert Deployment.objects.count() == 1 and Operation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_creates_at_once_with_one_key_make_one_deployment_at_the_quota(owner, revision, target, nothing_sent,
                                                                           settings):
    """A user with a quota: the second waits for the first's row lock, then finds its deployment (not
    "quota reached", though the first took the last slot)."""
    settings.ACUMOS_QUOTA_LIVE_DEPLOYMENTS = 1
    answers = at_once(2, lambda: services.deploy_once(revision=revision, target=target, user=owner,
                                                       idempotency_key=KEY))
    assert not [answer for answer in answers if isinstance(answer, Exception)], answers
    assert sorted(made for _, made in answers) == [False, True]
    assert Deployment.objects.count() == 1


# ---------------------------------------------------------------- the deploy form

def form_key(client, revision) -> str:
    import re

    page = client.get(f"/revisions/{revision.pk}/").content.decode()
    return re.search(r'<input type="hidden" name="request_key" value="([^"]+)"', page).group(1)


@pytest.mark.django_db
def test_each_drawn_form_has_its_own_key(owner, revision, target, client_for):
    client = client_for(owner)
    assert form_key(client, revision) != form_key(client, revision)


@pytest.mark.django_db
def test_a_double_submit_or_a_second_tab_of_one_form_makes_one_deployment(owner, revision, target, client_for):
    client = client_for(owner)
    key = form_key(client, revision)
    sent = {"target": target.pk, "replicas": 1, "request_key": key}
    first = client.post(f"/revisions/{revision.pk}/deploy/", sent)
    again = client.post(f"/revisions/{revision.pk}/deploy/", sent)
    deployment = Deployment.objects.get()
    assert first["Location"] == again["Location"] == f"/deployments/{deployment.pk}/"
    assert [str(m) for m in get_messages(again.wsgi_request)][-1] == (
        "This form was already sent: here is the deployment it made (one, not two).")

    changed = client.post(f"/revisions/{revision.pk}/deploy/", {**sent, "replicas": 2})
    assert changed["Location"] == f"/deployments/{deployment.pk}/" and Deployment.objects.count() == 1
    said = [(m.level_tag, str(m)) for m in get_messages(changed.wsgi_request)][-1]
    assert said[0] == "info" and "This form was sent before and made HousePrice 1.0.0" in said[1]

    fresh = client.post(f"/revisions/{revision.pk}/deploy/", {**sent, "request_key": form_key(client, revision)})
    assert fresh.status_code == 302 and Deployment.objects.count() == 2  # a new form: a deliberate second
