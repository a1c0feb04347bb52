"""Who may do what on the marketplace, as one table: every marketplace page and API endpoint x
anonymous, owner, co-owner, other user, publisher and admin.

The world: five models of `owner`, each shared with `co_owner`, one per state: private, pending
(a request to "Public Models"), restricted (in "Company Models"), public (in "Public Models") and
deleted (was public). What a persona may not see does not exist for it: 404, never 403. Pages ask
anonymous visitors to sign in where a user is needed (302 to the sign-in page); the API says 401."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from marketplace import services, storage
from marketplace.choices import ArtifactKind, RequestStatus
from marketplace.models import Artifact, Comment, Favorite, PublishRequest, Rating, Solution
from tests.factories import RevisionFactory, SolutionFactory

PERSONAS = ("anonymous", "owner", "co_owner", "other_user", "publisher", "admin_user")
STATES = ("private", "pending", "restricted", "public", "deleted")
MANAGERS = ("owner", "co_owner", "admin_user")
SIGNED_IN = PERSONAS[1:]
SEES = {
    "anonymous": {"public"},
    "owner": {"private", "pending", "restricted", "public"},
    "co_owner": {"private", "pending", "restricted", "public"},
    "other_user": {"restricted", "public"},
    "publisher": {"pending", "restricted", "public"},
    "admin_user": {"private", "pending", "restricted", "public"},
}
SIGN_IN = "sign in"  # a page's answer to anonymous visitors: a redirect to the sign-in page


@pytest.fixture
def people(owner, co_owner, other_user, publisher, admin_user):
    return {"anonymous": None, "owner": owner, "co_owner": co_owner, "other_user": other_user,
            "publisher": publisher, "admin_user": admin_user}


@pytest.fixture
def world(owner, co_owner, catalogs):
    blob, _ = storage.store_text('{"name": "model"}', ".json")
    made = {}
    for state in STATES:
        revision = RevisionFactory(solution=SolutionFactory(owner=owner, name=f"{state}-model zebra{state}"))
        Artifact.objects.create(revision=revision, kind=ArtifactKind.METADATA, name="metadata.json", blob=blob)
        services.share(owner, revision.solution, co_owner.username)
        made[state] = revision
    made["request"] = services.publish(owner, made["pending"], catalogs["public"])
    services.publish_directly(made["restricted"], catalogs["company"])
    services.publish_directly(made["public"], catalogs["public"])
    services.publish_directly(made["deleted"], catalogs["public"])
    services.soft_delete(owner, made["deleted"].solution)
    for state in STATES:
        services.reindex(made[state].solution_id)
    return made


def client_of(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def answer(response) -> int | str:
    if response.status_code == 302 and "/accounts/login/" in response.get("Location", ""):
        return SIGN_IN
    return response.status_code


# ---------------------------------------------------------------- reading one model

@dataclass(frozen=True)
class Read:
    url: str  # formatted with solution, revision, artifact

    def of(self, revision) -> str:
        return self.url.format(solution=revision.solution_id, revision=revision.pk,
                               artifact=revision.artifacts.get().pk)


READS = {
    "model page": Read("/models/{solution}/"),
    "model page, one version": Read("/models/{solution}/?version={revision}"),
    "revision page": Read("/revisions/{revision}/"),
    "artifact download": Read("/artifacts/{artifact}/download/"),
    "bundle download": Read("/revisions/{revision}/bundle/"),
    "api solution": Read("/api/v1/solutions/{solution}"),
    "api revision": Read("/api/v1/revisions/{revision}"),
    "api revision artifacts": Read("/api/v1/revisions/{revision}/artifacts"),
    "api revision bundle": Read("/api/v1/revisions/{revision}/bundle"),
    "api artifact": Read("/api/v1/artifacts/{artifact}"),
    "api artifact download": Read("/api/v1/artifacts/{artifact}/download"),
    "api ratings": Read("/api/v1/solutions/{solution}/ratings"),
    "api comments": Read("/api/v1/solutions/{solution}/comments"),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("endpoint", READS)
def test_reading_a_model(endpoint, persona, people, world):
    client = client_of(people[persona])
    for state in STATES:
        expected = 200 if state in SEES[persona] else 404
        got = answer(client.get(READS[endpoint].of(world[state])))
        assert got == expected, f"{endpoint} of the {state} model as {persona}: {got}, expected {expected}"


# ---------------------------------------------------------------- lists and search

LISTS = {
    "browse": "/?view=list",
    "search": "/?q=zebra",
    "search one": "/?q=zebra{state}",
    "api solutions": "/api/v1/solutions",
    "api search": "/api/v1/solutions?q=zebra",
    "api revisions": "/api/v1/revisions",
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("endpoint", LISTS)
def test_lists_and_search_show_exactly_what_a_persona_may_see(endpoint, persona, people, world):
    client = client_of(people[persona])
    for state in STATES:
        response = client.get(LISTS[endpoint].format(state=state))
        assert response.status_code == 200, endpoint
        listed = str(world[state].solution_id) in response.content.decode()
        assert listed == (state in SEES[persona]), f"{endpoint} as {persona}: the {state} model listed={listed}"


# ---------------------------------------------------------------- personal and manage pages

PAGES = {
    "my models": ("/my-models/", {"anonymous": SIGN_IN}),
    "notifications": ("/notifications/", {"anonymous": SIGN_IN}),
    "bell": ("/notifications/bell/", {"anonymous": 204}),
    "manage": ("/manage/", {"anonymous": SIGN_IN, "owner": 404, "co_owner": 404, "other_user": 404}),
    "publish requests": ("/manage/publish-requests/",
                         {"anonymous": SIGN_IN, "owner": 404, "co_owner": 404, "other_user": 404}),
    "catalogs": ("/manage/catalogs/", {"anonymous": SIGN_IN, "owner": 404, "co_owner": 404, "other_user": 404,
                                       "publisher": 404}),
    "new catalog": ("/manage/catalogs/new/", {"anonymous": SIGN_IN, "owner": 404, "co_owner": 404,
                                              "other_user": 404, "publisher": 404}),
    "users": ("/manage/users/", {"anonymous": SIGN_IN, "owner": 404, "co_owner": 404, "other_user": 404,
                                 "publisher": 404}),
    "site settings": ("/manage/site/", {"anonymous": SIGN_IN, "owner": 404, "co_owner": 404,
                                        "other_user": 404, "publisher": 404}),
    "api notifications": ("/api/v1/notifications", {"anonymous": 401}),
    "api catalogs": ("/api/v1/catalogs", {}),
    "api publish requests": ("/api/v1/publish-requests", {"anonymous": 401}),
    "api publications": ("/api/v1/publications", {}),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("page", PAGES)
def test_personal_and_manage_pages(page, persona, people, world):
    url, refusals = PAGES[page]
    assert answer(client_of(people[persona]).get(url)) == refusals.get(persona, 200)


def test_the_review_queue_shows_a_request_to_publishers_but_not_to_its_owner(people, world, publisher):
    pending = str(world["pending"].solution.name)
    assert pending in client_of(publisher).get("/manage/publish-requests/").content.decode()
    assert pending in client_of(people["admin_user"]).get("/manage/publish-requests/").content.decode()
    owns = SolutionFactory(owner=publisher, name="publishers-own-model")
    services.publish(publisher, RevisionFactory(solution=owns), world["request"].catalog)
    assert "publishers-own-model" not in client_of(publisher).get("/manage/publish-requests/").content.decode()


# ---------------------------------------------------------------- acting on a model

@dataclass(frozen=True)
class Act:
    url: str  # formatted with solution, revision, request, comment, publication, user
    data: dict
    happened: callable  # (world, people) -> bool: did it take effect?


def _rated(world, people):
    return Rating.objects.exists()


ACTS = {
    "rate": Act("/models/{solution}/rate/", {"stars": "4", "review": "ok"}, _rated),
    "comment": Act("/models/{solution}/comments/", {"text": "hello"},
                   lambda w, p: Comment.objects.filter(text="hello").exists()),
    "favorite": Act("/models/{solution}/favorite/", {}, lambda w, p: Favorite.objects.exists()),
    "edit": Act("/models/{solution}/edit/", {"description": "changed", "tags": "x", "model_type": "CL"},
                lambda w, p: Solution.objects.filter(description="changed").exists()),
    "publish": Act("/models/{solution}/publish/", {"revision": "{revision}", "catalog": "{company}"},
                   lambda w, p: w["target"].publications.filter(catalog__name="Company Models").exists()),
    "share": Act("/models/{solution}/share/", {"username": "newcomer"},
                 lambda w, p: w["target"].solution.shares.filter(user__username="newcomer").exists()),
    "delete": Act("/models/{solution}/delete/", {"confirm": "on"},
                  lambda w, p: Solution.objects.filter(pk=w["target"].solution_id, deleted_at__isnull=False).exists()),
}
# Who succeeds, per model state acted on; everyone else who can see it is refused, the rest get 404.
MAY = {
    # Owners and co-owners do not rate their own model (a refusal they are told about: 400).
    "rate": ("other_user", "publisher", "admin_user"), "comment": SIGNED_IN, "favorite": SIGNED_IN,
    "edit": MANAGERS, "publish": MANAGERS, "share": MANAGERS, "delete": ("owner", "admin_user"),
}


@pytest.mark.parametrize("state", ["private", "restricted"])
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("act", ACTS)
def test_acting_on_a_model(act, persona, state, people, world, catalogs):
    from tests.factories import UserFactory

    UserFactory(username="newcomer")
    target = world[state]
    if act == "publish":  # the restricted one is in Company Models already: publish a new version
        target = RevisionFactory(solution=target.solution)
    world["target"] = target
    spec = ACTS[act]
    data = {k: v.format(revision=target.pk, company=catalogs["company"].pk) for k, v in spec.data.items()}

    got = answer(client_of(people[persona]).post(spec.url.format(solution=target.solution_id), data))

    sees = state in SEES[persona]
    allowed = sees and persona in MAY[act]
    assert spec.happened(world, people) == allowed, f"{act} on the {state} model as {persona}: {got}"
    if persona == "anonymous":
        assert got == SIGN_IN
    elif act == "rate" and sees and persona in ("owner", "co_owner"):
        assert got == 400
    elif not sees or (not allowed and act != "delete"):
        assert got == 404, f"{act} on the {state} model as {persona}: {got}"


@pytest.mark.parametrize("persona", PERSONAS)
def test_reviewing_a_request(persona, people, world):
    request = world["request"]
    got = answer(client_of(people[persona]).post(f"/manage/publish-requests/{request.pk}/review/",
                                                 {"decision": "approve", "comment": "fine"}))
    approved = PublishRequest.objects.get(pk=request.pk).status == RequestStatus.APPROVED
    assert approved == (persona in ("publisher", "admin_user")), f"{persona}: {got}"
    if persona == "anonymous":
        assert got == SIGN_IN
    elif not approved:
        assert got == 404


@pytest.mark.parametrize("persona", PERSONAS)
def test_restoring_a_deleted_model(persona, people, world):
    deleted = world["deleted"].solution
    got = answer(client_of(people[persona]).post(f"/models/{deleted.pk}/restore/"))
    restored = Solution.objects.get(pk=deleted.pk).deleted_at is None
    assert restored == (persona in ("owner", "admin_user")), f"{persona}: {got}"
    if persona == "anonymous":
        assert got == SIGN_IN
    elif persona == "co_owner":  # sees it among the deleted models, is told only the owner restores it
        assert got == 302
    elif not restored:
        assert got == 404
