"""/api/v1/ over what people do in the marketplace: search (the same results as the browse page),
ratings, comments, favorites, sharing, soft delete and restore, catalogs, publishing and its review,
notifications, and counted downloads. Every action's good and bad cases: a bad or missing field is
a 400 naming it, someone else's private model a 404, someone else's visible model a 403, an
anonymous caller a 401 wherever a user is needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace import selectors, services, storage
from marketplace.choices import BUNDLE_KINDS, NotificationKind, RequestStatus, RevisionStatus
from marketplace.models import (
    Artifact,
    Catalog,
    Comment,
    Download,
    Favorite,
    Notification,
    Publication,
    PublishRequest,
    Rating,
    Solution,
    SolutionShare,
    Tag,
)

from ..factories import CommentFactory, RatingFactory, RevisionFactory, SolutionFactory, published_revision
from .test_api import assert_error, results

pytestmark = pytest.mark.django_db
JSON = "application/json"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def model(catalog: Catalog | None, name: str, *, tags=(), **fields) -> Solution:
    """A solution with one ready revision, published straight into `catalog` (None: private), indexed."""
    if catalog is None:
        solution = RevisionFactory(solution=SolutionFactory(name=name, **fields)).solution
    else:
        solution = published_revision(catalog, name=name, **fields).solution
    solution.tags.set([Tag.objects.get_or_create(name=tag)[0] for tag in tags])
    services.reindex(solution.pk)
    solution.refresh_from_db()
    return solution


@pytest.fixture
def world(owner, catalogs):
    """The owner's models: one in the public catalog, one in the company catalog, one private."""
    public = model(catalogs["public"], "Iris public", owner=owner, tags=["flowers"])
    return SimpleNamespace(
        public=public, revision=public.revisions.get(),
        company=model(catalogs["company"], "Company model", owner=owner),
        private=model(None, "Private model", owner=owner),
    )


def post(client, url, body=None, method="post", **headers):
    return getattr(client, method)(url, body if body is not None else {}, content_type=JSON, headers=headers)


def names(response) -> list[str]:
    return [item["name"] for item in results(response)]


def field_error(response, field: str, needle: str = "") -> str:
    """The message of a 400 about `field` (the API's error shape, details keyed by field)."""
    error = assert_error(response, 400, "invalid")
    assert field in error["details"], error
    message = " ".join(_messages(error["details"][field]))
    assert needle.lower() in message.lower(), message
    return message


def _messages(detail) -> list[str]:
    """A field's messages; a list field's are keyed by the position of the bad item."""
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _messages(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _messages(value)]
    return [str(detail)]


# ---------------------------------------------------------------- who sees which solutions

def test_anonymous_callers_read_public_models_only(client_for, world):
    anonymous = client_for(None)
    assert names(anonymous.get("/api/v1/solutions")) == ["Iris public"]
    detail = anonymous.get(f"/api/v1/solutions/{world.public.pk}").json()
    assert detail["audience"] == "anyone" and detail["is_favorite"] is False
    assert detail["catalogs"] == [{"id": str(world.public.publications.get().catalog_id), "name": "Public Models"}]
    assert detail["tags"] == ["flowers"] and detail["revision_count"] == 1
    for hidden in (world.company, world.private):
        assert_error(anonymous.get(f"/api/v1/solutions/{hidden.pk}"), 404, "not_found", "no such solution")


def test_signed_in_users_also_read_restricted_catalogs_and_owners_their_private_models(client_for, owner,
                                                                                       other_user, world):
    assert sorted(names(client_for(other_user).get("/api/v1/solutions"))) == ["Company model", "Iris public"]
    assert sorted(names(client_for(owner).get("/api/v1/solutions"))) == [
        "Company model", "Iris public", "Private model"]
    assert client_for(other_user).get(f"/api/v1/solutions/{world.company.pk}").json()["audience"] == "signed_in"
    assert_error(client_for(other_user).get(f"/api/v1/solutions/{world.private.pk}"), 404, "not_found")


def test_a_wrong_token_is_refused_even_where_anonymous_callers_may_read(client_for, world):
    response = client_for(None).get("/api/v1/solutions", headers={"Authorization": "Bearer acu_wrong"})
    assert_error(response, 401, "authentication_failed", "wrong, expired or revoked")


def test_a_token_works_like_a_session(client_for, api_token, owner, world):
    headers = {"Authorization": f"Bearer {api_token(owner)}"}
    assert "Private model" in names(client_for(None).get("/api/v1/solutions", headers=headers))
    response = post(client_for(None), f"/api/v1/solutions/{world.company.pk}/favorite", **headers)
    assert response.json() == {"favorite": True, "count": 1}


def test_a_solution_shows_its_counters_and_the_visible_catalogs_it_is_in(client_for, other_user, catalogs, world):
    services.publish_directly(world.revision, catalogs["company"])
    Solution.objects.filter(pk=world.public.pk).update(view_count=7, download_count=3, licence="MIT")
    services.rate(other_user, world.public, 4)
    seen = client_for(other_user).get(f"/api/v1/solutions/{world.public.pk}").json()
    assert [c["name"] for c in seen["catalogs"]] == ["Company Models", "Public Models"]
    assert (seen["view_count"], seen["download_count"], seen["licence"]) == (7, 3, "MIT")
    assert (seen["rating_avg"], seen["rating_count"]) == (4.0, 1)
    anonymous = client_for(None).get(f"/api/v1/solutions/{world.public.pk}").json()
    assert [c["name"] for c in anonymous["catalogs"]] == ["Public Models"]


# ---------------------------------------------------------------- a solution's versions

def test_a_solution_lists_the_versions_the_caller_may_see(client_for, owner, other_user, co_owner, catalogs, world):
    published = world.revision
    draft = RevisionFactory(solution=world.public, version="2.0.0", status=RevisionStatus.ONBOARDING, ready_at=None)
    services.share(owner, world.public, co_owner.username)
    url = f"/api/v1/solutions/{world.public.pk}"
    for manager in (owner, co_owner):
        versions = client_for(manager).get(url).json()["versions"]
        assert [(v["version"], v["status"], v["ready"]) for v in versions] == [
            ("2.0.0", "onboarding", False), (published.version, "ready", True)]
        assert versions[0]["id"] == str(draft.pk) and versions[0]["url"] == f"/api/v1/revisions/{draft.pk}"
    for stranger in (other_user, None):  # the private version is not theirs to see, in the list or one by one
        seen = client_for(stranger).get(url).json()
        assert [v["id"] for v in seen["versions"]] == [str(published.pk)] and seen["revision_count"] == 1
        assert client_for(stranger).get(seen["versions"][0]["url"]).status_code == 200
        assert_error(client_for(stranger).get(f"/api/v1/revisions/{draft.pk}"), 404, "not_found")


def test_the_solution_list_carries_the_versions_and_keeps_the_revisions_link(client_for, owner, world):
    listed = {s["name"]: s for s in results(client_for(owner).get("/api/v1/solutions"))}
    private = listed["Private model"]
    assert [v["id"] for v in private["versions"]] == [str(world.private.revisions.get().pk)]
    assert private["revisions"] == f"/api/v1/revisions?solution={world.private.pk}"  # kept: clients follow it
    created = private["versions"][0]["created"]
    assert created.startswith(str(world.private.revisions.get().created.date()))


def test_a_deleted_solution_lists_its_versions_to_those_who_may_restore_it(client_for, owner, world):
    services.soft_delete(owner, world.private)
    deleted = results(client_for(owner).get("/api/v1/solutions/deleted"))
    assert [v["version"] for v in deleted[0]["versions"]] == [world.private.revisions.get().version]


def test_the_model_type_is_its_code_with_a_label_people_read(client_for, owner, catalogs):
    for code, label in (("CL", "Classification"), ("RG", "Regression"), ("DS", "Data source")):
        model(catalogs["public"], f"A {label} model", owner=owner, model_type=code)
    listed = results(client_for(None).get("/api/v1/solutions", {"sort": "name"}))
    assert [(s["model_type"], s["model_type_label"]) for s in listed] == [
        ("CL", "Classification"), ("DS", "Data source"), ("RG", "Regression")]


def test_the_schema_names_the_model_type_label(client_for):
    schema = client_for(None).get("/api/v1/schema/", headers={"Accept": "application/json"}).json()
    solution = schema["components"]["schemas"]["Solution"]["properties"]
    assert solution["model_type_label"]["readOnly"] and "versions" in solution and "revisions" in solution


# ---------------------------------------------------------------- search, filters, sort

@pytest.fixture
def corpus(owner, other_user, catalogs):
    """Models with distinct types, toolkits, tags, licences, catalogs and counters."""
    made = [
        model(catalogs["public"], "Iris classifier", owner=owner, model_type="CL", toolkit="sklearn",
              licence="MIT", tags=["flowers", "tabular"], description="Classifies iris flowers."),
        model(catalogs["public"], "Street vision", owner=other_user, model_type="CL", toolkit="onnx",
              licence="Apache-2.0", tags=["vision"], description="Finds cars in street photos."),
        model(catalogs["company"], "House prices", owner=owner, model_type="RG", toolkit="sklearn",
              licence="MIT", tags=["tabular"], description="Predicts house prices."),
        model(catalogs["company"], "Flower vision", owner=other_user, model_type="PR", toolkit="onnx",
              tags=["vision", "flowers"], description="Names a flower from its photo."),
        model(None, "Secret flowers", owner=owner, model_type="CL", toolkit="sklearn", tags=["flowers"]),
    ]
    for i, solution in enumerate(made):
        Solution.objects.filter(pk=solution.pk).update(view_count=10 * i, download_count=50 - 10 * i,
                                                       rating_avg=(i * 7) % 5, rating_count=i)
    return made


SEARCHES = [
    {}, {"q": "flower"}, {"q": "vision photo"}, {"q": "other"}, {"model_type": "CL"}, {"toolkit": "onnx"},
    {"tag": "tabular"}, {"licence": "MIT"}, {"catalog": "company"}, {"sort": "name"}, {"sort": "rating"},
    {"sort": "downloads"}, {"sort": "views"}, {"q": "flowers", "sort": "relevance"},
    {"model_type": "CL", "tag": "flowers", "sort": "name"}, {"q": "nothing-matches-this"},
]


@pytest.mark.parametrize("persona", ["anonymous", "other_user", "owner"])
@pytest.mark.parametrize("search", SEARCHES, ids=lambda s: "&".join(f"{k}={v}" for k, v in s.items()) or "all")
def test_the_list_searches_exactly_as_the_browse_page(request, client_for, catalogs, corpus, persona, search):
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    if "catalog" in search:
        search = {**search, "catalog": str(catalogs[search["catalog"]].pk)}
    expected = [str(pk) for pk in selectors.search_solutions(user, selectors.SearchParams(**search))
                .values_list("pk", flat=True)]
    listed = results(client_for(user).get("/api/v1/solutions", search))
    assert [item["id"] for item in listed] == expected


def test_the_filters_narrow_what_is_listed(client_for, other_user, catalogs, corpus):
    client = client_for(other_user)
    assert names(client.get("/api/v1/solutions", {"tag": "vision", "sort": "name"})) == [
        "Flower vision", "Street vision"]
    assert names(client.get("/api/v1/solutions", {"q": "flower", "sort": "name"})) == [
        "Flower vision", "Iris classifier"]
    assert names(client.get("/api/v1/solutions", {"catalog": str(catalogs["public"].pk), "sort": "name"})) == [
        "Iris classifier", "Street vision"]
    assert names(client.get("/api/v1/solutions", {"sort": "downloads"}))[0] == "Iris classifier"
    assert names(client.get("/api/v1/solutions", {"owner": "owner", "sort": "name"})) == [
        "House prices", "Iris classifier"]


def test_bad_search_parameters_are_named(client_for, owner):
    client = client_for(owner)
    field_error(client.get("/api/v1/solutions", {"model_type": "XX"}), "model_type", "not a valid choice")
    field_error(client.get("/api/v1/solutions", {"sort": "best"}), "sort", "not a valid choice")
    field_error(client.get("/api/v1/solutions", {"catalog": "public"}), "catalog", "uuid")


def _page_of(n: int, catalogs, fan) -> None:
    for i in range(n):
        solution = model(catalogs["public" if i % 2 else "company"], f"Bulk {n}-{i}", tags=[f"t{i}", "bulk"])
        RatingFactory(solution=solution, stars=1 + i % 5)
        if i % 3 == 0:
            Favorite.objects.create(solution=solution, user=fan)


def _queries_for_list(client) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/solutions", {"sort": "name"})
    return len(queries), len(results(response))


@pytest.mark.parametrize("persona", ["anonymous", "other_user"])
def test_the_list_costs_the_same_queries_for_2_or_30_solutions(client_for, other_user, catalogs,
                                                                persona):
    client = client_for(None if persona == "anonymous" else other_user)
    _queries_for_list(client)  # warm: the session and the roles come from the cache after a first request
    _page_of(2, catalogs, other_user)
    few, listed_few = _queries_for_list(client)
    _page_of(28, catalogs, other_user)
    many, listed_many = _queries_for_list(client)
    assert (listed_many - listed_few) == (28 if persona == "other_user" else 14)
    assert few == many, f"{few} queries for {listed_few} solutions, {many} for {listed_many}"
    assert many <= 6, "user, count, page, tags, publications, versions"


def test_is_favorite_is_the_callers(client_for, owner, other_user, world):
    Favorite.objects.create(solution=world.public, user=other_user)
    listed = {item["name"]: item["is_favorite"] for item in results(client_for(other_user).get("/api/v1/solutions"))}
    assert listed == {"Iris public": True, "Company model": False}
    assert not any(item["is_favorite"] for item in results(client_for(owner).get("/api/v1/solutions")))


# ---------------------------------------------------------------- ratings

def test_a_user_rates_a_model_then_changes_then_removes_the_rating(client_for, owner, other_user, world):
    client, url = client_for(other_user), f"/api/v1/solutions/{world.public.pk}/ratings"
    created = post(client, url, {"stars": 5, "review": "  Spot on.  "})
    assert created.status_code == 201, created.content
    assert created.json()["stars"] == 5 and created.json()["review"] == "Spot on." and created.json()["user"] == "other"
    changed = post(client, url, {"stars": 3})
    assert changed.status_code == 200 and changed.json()["id"] == created.json()["id"]
    assert Rating.objects.get(solution=world.public).stars == 3
    solution = client.get(f"/api/v1/solutions/{world.public.pk}").json()
    assert (solution["rating_avg"], solution["rating_count"]) == (3.0, 1)
    assert [r["stars"] for r in results(client_for(None).get(url))] == [3]
    assert Notification.objects.filter(user=owner, kind=NotificationKind.REVIEW).count() == 1
    assert post(client, url, method="delete").status_code == 204
    assert results(client.get(url)) == []
    assert_error(post(client, url, method="delete"), 404, "not_found", "not rated")


@pytest.mark.parametrize("body, field, needle", [
    ({"stars": 0}, "stars", "greater than or equal to 1"), ({"stars": 6}, "stars", "less than or equal to 5"),
    ({"stars": "five"}, "stars", "valid integer"), ({"review": "no stars"}, "stars", "required"),
    ({"stars": 4, "review": "x" * 4001}, "review", "4000")])
def test_bad_ratings_are_refused_naming_the_field(client_for, other_user, world, body, field, needle):
    response = post(client_for(other_user), f"/api/v1/solutions/{world.public.pk}/ratings", body)
    field_error(response, field, needle)
    assert not Rating.objects.exists()


def test_a_body_of_the_wrong_shape_is_a_400(client_for, other_user, world):
    response = post(client_for(other_user), f"/api/v1/solutions/{world.public.pk}/ratings", [5])
    field_error(response, "non_field_errors", "expected a dictionary")
    response = client_for(other_user).post(f"/api/v1/solutions/{world.public.pk}/ratings", "{not json",
                                           content_type=JSON)
    assert_error(response, 400, "parse_error")


def test_an_owner_rating_their_own_model_is_refused(client_for, owner, world):
    response = post(client_for(owner), f"/api/v1/solutions/{world.public.pk}/ratings", {"stars": 5})
    field_error(response, "stars", "ratings are for others")
    assert not Rating.objects.exists()


def test_ratings_need_a_user_and_a_visible_model(client_for, other_user, world):
    assert_error(post(client_for(None), f"/api/v1/solutions/{world.public.pk}/ratings", {"stars": 4}),
                 401, "not_authenticated")
    assert_error(post(client_for(other_user), f"/api/v1/solutions/{world.private.pk}/ratings", {"stars": 4}),
                 404, "not_found")
    assert_error(client_for(None).get(f"/api/v1/solutions/{world.company.pk}/ratings"), 404, "not_found")


# ---------------------------------------------------------------- comments

def test_comments_and_replies_are_listed_flat_with_their_parent(client_for, owner, other_user, world):
    url = f"/api/v1/solutions/{world.public.pk}/comments"
    first = post(client_for(other_user), url, {"text": "Which dataset?"})
    assert first.status_code == 201, first.content
    reply = post(client_for(owner), url, {"text": "The UCI one.", "parent": first.json()["id"]})
    assert reply.status_code == 201 and reply.json()["parent"] == first.json()["id"]
    listed = results(client_for(None).get(url))
    assert [(c["author"], c["text"], c["parent"]) for c in listed] == [
        ("other", "Which dataset?", None), ("owner", "The UCI one.", first.json()["id"])]
    assert Notification.objects.filter(user=owner, kind=NotificationKind.COMMENT).count() == 1
    assert Notification.objects.filter(user=other_user, kind=NotificationKind.COMMENT).count() == 1


def test_bad_comments_are_refused_naming_the_field(client_for, other_user, world):
    client, url = client_for(other_user), f"/api/v1/solutions/{world.public.pk}/comments"
    field_error(post(client, url, {}), "text", "required")
    field_error(post(client, url, {"text": "   "}), "text", "blank")
    field_error(post(client, url, {"text": "x" * 8193}), "text", "8192")
    elsewhere = CommentFactory(solution=world.company)
    field_error(post(client, url, {"text": "Hi", "parent": elsewhere.pk}), "parent", "no such comment")
    field_error(post(client, url, {"text": "Hi", "parent": "first"}), "parent", "valid integer")
    assert_error(post(client_for(None), url, {"text": "Hi"}), 401, "not_authenticated")
    assert_error(post(client, f"/api/v1/solutions/{world.private.pk}/comments", {"text": "Hi"}), 404, "not_found")
    assert Comment.objects.count() == 1


def test_only_its_author_or_an_admin_deletes_a_comment(client_for, owner, other_user, admin_user, world):
    comment = CommentFactory(solution=world.public, author=other_user)
    url = f"/api/v1/solutions/{world.public.pk}/comments/{comment.pk}"
    assert_error(post(client_for(owner), url, method="delete"), 403, "permission_denied", "author")
    assert_error(post(client_for(None), url, method="delete"), 401, "not_authenticated")
    assert post(client_for(other_user), url, method="delete").status_code == 204
    assert_error(post(client_for(other_user), url, method="delete"), 404, "not_found")
    again = CommentFactory(solution=world.public, author=other_user)
    assert post(client_for(admin_user), f"/api/v1/solutions/{world.public.pk}/comments/{again.pk}",
                method="delete").status_code == 204


def test_a_deleted_comment_with_replies_is_listed_without_author_or_text(client_for, owner, other_user, world):
    top = CommentFactory(solution=world.public, author=other_user, text="Which features?")
    CommentFactory(solution=world.public, author=owner, parent=top, text="Petal sizes.")
    url = f"/api/v1/solutions/{world.public.pk}/comments"
    assert post(client_for(other_user), f"{url}/{top.pk}", method="delete").status_code == 204

    listed = client_for(other_user).get(url).json()["results"]
    assert [(c["author"], c["text"], c["deleted"]) for c in listed] == [
        (None, "", True), (owner.username, "Petal sizes.", False)]
    assert_error(post(client_for(other_user), f"{url}/{top.pk}", method="delete"), 404, "not_found")


# ---------------------------------------------------------------- favorites

def test_favorite_adds_and_removes_and_says_how_many(client_for, owner, other_user, world):
    url = f"/api/v1/solutions/{world.public.pk}/favorite"
    assert post(client_for(other_user), url).json() == {"favorite": True, "count": 1}
    assert post(client_for(other_user), url + "/").json() == {"favorite": True, "count": 1}  # twice: still one
    assert post(client_for(owner), url).json() == {"favorite": True, "count": 2}
    assert client_for(other_user).get(f"/api/v1/solutions/{world.public.pk}").json()["is_favorite"] is True
    assert post(client_for(other_user), url, method="delete").json() == {"favorite": False, "count": 1}
    assert post(client_for(other_user), url, method="delete").json() == {"favorite": False, "count": 1}
    assert_error(post(client_for(None), url), 401, "not_authenticated")
    assert_error(post(client_for(other_user), f"/api/v1/solutions/{world.private.pk}/favorite"), 404, "not_found")


# ---------------------------------------------------------------- sharing

def test_the_owner_shares_a_private_model_with_a_co_owner_and_stops(client_for, owner, co_owner, world):
    url = f"/api/v1/solutions/{world.private.pk}"
    assert_error(client_for(co_owner).get(url), 404, "not_found")
    shared = post(client_for(owner), url + "/share", {"username": "co-owner"})
    assert shared.status_code == 201, shared.content
    assert shared.json()["username"] == "co-owner" and shared.json()["shared_by"] == "owner"
    assert client_for(co_owner).get(url).status_code == 200
    assert Notification.objects.filter(user=co_owner, kind=NotificationKind.SHARED).exists()
    assert [s["username"] for s in results(client_for(owner).get(url + "/shares"))] == ["co-owner"]
    assert post(client_for(owner), f"{url}/shares/{co_owner.pk}", method="delete").status_code == 204
    assert_error(client_for(co_owner).get(url), 404, "not_found")
    assert_error(post(client_for(owner), f"{url}/shares/{co_owner.pk}", method="delete"), 404, "not_found",
                 "not a co-owner")


@pytest.mark.parametrize("body, needle", [
    ({"username": "nobody"}, "no active user"), ({"username": "owner"}, "owns this model"),
    ({"username": "co-owner"}, "co-owner already"), ({}, "required"), ({"username": ""}, "blank")])
def test_bad_shares_are_refused_naming_the_username(client_for, owner, co_owner, world, body, needle):
    SolutionShare.objects.create(solution=world.private, user=co_owner, shared_by=owner)
    field_error(post(client_for(owner), f"/api/v1/solutions/{world.private.pk}/share", body), "username", needle)


def test_only_those_who_manage_a_model_share_it(client_for, owner, other_user, co_owner, world):
    for solution, expected in ((world.private, 404), (world.public, 403)):
        response = post(client_for(other_user), f"/api/v1/solutions/{solution.pk}/share", {"username": "co-owner"})
        assert_error(response, expected, "not_found" if expected == 404 else "permission_denied")
    assert_error(client_for(other_user).get(f"/api/v1/solutions/{world.public.pk}/shares"), 403,
                 "permission_denied")
    assert_error(post(client_for(None), f"/api/v1/solutions/{world.public.pk}/share", {"username": "co-owner"}),
                 401, "not_authenticated")
    SolutionShare.objects.create(solution=world.private, user=co_owner, shared_by=owner)
    response = post(client_for(co_owner), f"/api/v1/solutions/{world.private.pk}/share", {"username": "other"})
    assert response.status_code == 201, "a co-owner manages the model like its owner"


# ---------------------------------------------------------------- details

def test_the_owner_changes_description_tags_and_type(client_for, owner, other_user, world):
    url = f"/api/v1/solutions/{world.public.pk}/details"
    changed = post(client_for(owner), url, {"tags": ["botany", "iris"], "model_type": "CL"}, method="patch")
    assert changed.status_code == 200, changed.content
    assert changed.json()["tags"] == ["botany", "iris"] and changed.json()["model_type"] == "CL"
    assert changed.json()["model_type_label"] == "Classification"
    assert changed.json()["description"] == world.public.description, "what is not given stays"
    described = post(client_for(owner), url, {"description": "# Iris\nNow *documented*."}, method="patch").json()
    assert described["description"] == "# Iris\nNow *documented*." and described["tags"] == ["botany", "iris"]
    assert names(client_for(other_user).get("/api/v1/solutions", {"q": "botany"})) == ["Iris public"]


@pytest.mark.parametrize("body, field, needle", [
    ({"tags": [f"t{i}" for i in range(11)]}, "tags", "at most 10"), ({"tags": ["two words"]}, "tags", "slug"),
    ({"tags": "iris"}, "tags", "list"), ({"model_type": "XX"}, "model_type", "not a valid choice")])
def test_bad_details_are_refused_naming_the_field(client_for, owner, world, body, field, needle):
    response = post(client_for(owner), f"/api/v1/solutions/{world.public.pk}/details", body, method="patch")
    field_error(response, field, needle)
    assert list(world.public.tags.values_list("name", flat=True)) == ["flowers"]


def test_only_those_who_manage_a_model_change_its_details(client_for, other_user, world):
    for solution, expected in ((world.private, 404), (world.public, 403)):
        response = post(client_for(other_user), f"/api/v1/solutions/{solution.pk}/details", {"tags": []},
                        method="patch")
        assert response.status_code == expected, response.content
    assert_error(post(client_for(None), f"/api/v1/solutions/{world.public.pk}/details", {}, method="patch"),
                 401, "not_authenticated")


# ---------------------------------------------------------------- soft delete and restore

def test_the_owner_deletes_a_model_and_restores_it(client_for, owner, other_user, world):
    url = f"/api/v1/solutions/{world.public.pk}"
    assert post(client_for(owner), url + "/delete").status_code == 204
    assert_error(client_for(None).get(url), 404, "not_found")
    assert_error(client_for(owner).get(url), 404, "not_found")
    assert "Iris public" not in names(client_for(owner).get("/api/v1/solutions"))
    deleted = results(client_for(owner).get("/api/v1/solutions/deleted"))
    assert [d["name"] for d in deleted] == ["Iris public"] and deleted[0]["deleted_at"]
    assert deleted[0]["revision_count"] == 1
    assert results(client_for(other_user).get("/api/v1/solutions/deleted")) == []
    assert_error(post(client_for(other_user), url + "/restore"), 404, "not_found")
    restored = post(client_for(owner), url + "/restore")
    assert restored.status_code == 200 and restored.json()["name"] == "Iris public"
    assert client_for(None).get(url).status_code == 200
    assert_error(post(client_for(owner), url + "/restore"), 404, "not_found", "no such solution")


def test_deleting_withdraws_pending_requests(client_for, owner, catalogs, world):
    services.publish(owner, world.private.revisions.get(), catalogs["public"])
    assert post(client_for(owner), f"/api/v1/solutions/{world.private.pk}/delete").status_code == 204
    assert PublishRequest.objects.get().status == RequestStatus.WITHDRAWN


def test_only_the_owner_or_an_admin_deletes_or_restores(client_for, owner, other_user, co_owner, admin_user, world):
    SolutionShare.objects.create(solution=world.private, user=co_owner, shared_by=owner)
    url = f"/api/v1/solutions/{world.private.pk}"
    assert_error(post(client_for(co_owner), url + "/delete"), 403, "permission_denied", "owner or an admin")
    assert_error(post(client_for(other_user), url + "/delete"), 404, "not_found")
    assert_error(post(client_for(other_user), f"/api/v1/solutions/{world.public.pk}/delete"), 403,
                 "permission_denied")
    assert_error(post(client_for(None), url + "/delete"), 401, "not_authenticated")
    assert_error(client_for(None).get("/api/v1/solutions/deleted"), 401, "not_authenticated")
    assert post(client_for(admin_user), url + "/delete").status_code == 204
    assert_error(post(client_for(co_owner), url + "/restore"), 403, "permission_denied", "owner or an admin")
    assert post(client_for(owner), url + "/restore").status_code == 200


# ---------------------------------------------------------------- catalogs

def test_catalogs_are_listed_as_far_as_the_caller_may_see_them(client_for, other_user, catalogs):
    assert names(client_for(None).get("/api/v1/catalogs")) == ["Public Models"]
    assert names(client_for(other_user).get("/api/v1/catalogs")) == ["Company Models", "Public Models"]
    assert_error(client_for(None).get(f"/api/v1/catalogs/{catalogs['company'].pk}"), 404, "not_found")
    company = client_for(other_user).get(f"/api/v1/catalogs/{catalogs['company'].pk}").json()
    assert company["access"] == "RS" and company["self_publish"] is True


def test_admins_create_change_and_delete_catalogs(client_for, admin_user, catalogs):
    client = client_for(admin_user)
    made = post(client, "/api/v1/catalogs", {"name": "Research", "access": "PB", "self_publish": True})
    assert made.status_code == 201, made.content
    url = f"/api/v1/catalogs/{made.json()['id']}"
    field_error(post(client, "/api/v1/catalogs", {"name": "Research"}), "name", "already exists")
    field_error(post(client, "/api/v1/catalogs", {"name": "X", "access": "everyone"}), "access", "valid choice")
    field_error(post(client, "/api/v1/catalogs", {}), "name", "required")
    changed = post(client, url, {"description": "Lab models."}, method="patch")
    assert changed.status_code == 200 and changed.json()["description"] == "Lab models."
    assert client_for(None).get(url).json()["name"] == "Research"
    assert post(client, url, method="delete").status_code == 204
    assert not Catalog.objects.filter(name="Research").exists()


def test_a_catalog_in_use_is_not_deleted(client_for, owner, admin_user, catalogs, world):
    assert_error(post(client_for(admin_user), f"/api/v1/catalogs/{catalogs['company'].pk}", method="delete"),
                 400, "invalid")
    empty = Catalog.objects.create(name="Waiting room", self_publish=False)
    services.publish(owner, world.private.revisions.get(), empty)
    response = post(client_for(admin_user), f"/api/v1/catalogs/{empty.pk}", method="delete")
    field_error(response, "catalog", "1 pending publish request")
    assert Catalog.objects.filter(pk=empty.pk).exists()


def test_only_admins_manage_catalogs(client_for, publisher, catalogs):
    url = f"/api/v1/catalogs/{catalogs['public'].pk}"
    assert_error(post(client_for(publisher), "/api/v1/catalogs", {"name": "Mine"}), 403, "permission_denied",
                 "only admins")
    assert_error(post(client_for(publisher), url, {"name": "Mine"}, method="patch"), 403, "permission_denied")
    assert_error(post(client_for(None), url, method="delete"), 401, "not_authenticated")
    assert Catalog.objects.get(pk=catalogs["public"].pk).name == "Public Models"


# ---------------------------------------------------------------- publishing

def test_publishing_to_a_self_publish_catalog_answers_the_publication(client_for, owner, other_user, catalogs,
                                                                       world):
    revision = world.private.revisions.get()
    response = post(client_for(owner), "/api/v1/publications",
                    {"revision": str(revision.pk), "catalog": str(catalogs["company"].pk)})
    assert response.status_code == 201, response.content
    assert response.json()["catalog_name"] == "Company Models" and response.json()["version"] == revision.version
    assert client_for(other_user).get(f"/api/v1/solutions/{world.private.pk}").json()["audience"] == "signed_in"
    field_error(post(client_for(owner), "/api/v1/publications",
                     {"revision": str(revision.pk), "catalog": str(catalogs["company"].pk)}), "catalog", "already")


def test_publishing_to_a_catalog_that_needs_approval_answers_the_request(client_for, owner, publisher, catalogs,
                                                                         world):
    revision = world.private.revisions.get()
    body = {"revision": str(revision.pk), "catalog": str(catalogs["public"].pk), "message": "Ready for all."}
    response = post(client_for(owner), "/api/v1/publications", body)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == RequestStatus.PENDING and response.json()["message"] == "Ready for all."
    assert not Publication.objects.filter(revision=revision).exists()
    assert Notification.objects.filter(user=publisher, kind=NotificationKind.PUBLISH_REQUESTED).exists()
    field_error(post(client_for(owner), "/api/v1/publications", body), "catalog", "waits for review")


def test_bad_publications_are_refused_naming_the_field(client_for, owner, other_user, catalogs, world):
    client = client_for(owner)
    onboarding = RevisionFactory(solution=world.private, status=RevisionStatus.ONBOARDING)
    restricted = str(catalogs["company"].pk)
    field_error(post(client, "/api/v1/publications", {"catalog": restricted}), "revision", "required")
    field_error(post(client, "/api/v1/publications", {"revision": "v1", "catalog": restricted}), "revision", "uuid")
    field_error(post(client, "/api/v1/publications", {"revision": str(onboarding.pk), "catalog": restricted}),
                "revision", "still onboarding")
    theirs = RevisionFactory(solution=SolutionFactory(owner=other_user))
    field_error(post(client, "/api/v1/publications", {"revision": str(theirs.pk), "catalog": restricted}),
                "revision", "no such revision")
    field_error(post(client, "/api/v1/publications", {"revision": str(world.revision.pk),
                                                      "catalog": str(world.public.pk)}), "catalog", "no such catalog")
    response = post(client_for(other_user), "/api/v1/publications",
                    {"revision": str(world.revision.pk), "catalog": restricted})
    assert_error(response, 403, "permission_denied", "owner")
    assert_error(post(client_for(None), "/api/v1/publications", {}), 401, "not_authenticated")


def test_publications_are_listed_as_far_as_the_caller_may_see_them(client_for, other_user, world):
    assert {p["solution_name"] for p in results(client_for(None).get("/api/v1/publications"))} == {"Iris public"}
    assert {p["solution_name"] for p in results(client_for(other_user).get("/api/v1/publications"))} == {
        "Iris public", "Company model"}
    only = results(client_for(other_user).get("/api/v1/publications", {"solution": str(world.company.pk)}))
    assert [p["catalog_name"] for p in only] == ["Company Models"]
    # A private id and a missing one answer alike: filters tell nothing of what is not visible.
    for hidden in (world.company.pk, "00000000-0000-0000-0000-000000000000"):
        assert results(client_for(None).get("/api/v1/publications", {"solution": str(hidden)})) == []
    field_error(client_for(None).get("/api/v1/publications", {"catalog": "public"}), "catalog", "uuid")


def test_unpublishing_makes_the_model_private_again(client_for, owner, other_user, world):
    publication = world.public.publications.get()
    url = f"/api/v1/publications/{publication.pk}"
    assert_error(post(client_for(other_user), url, method="delete"), 403, "permission_denied")
    assert_error(post(client_for(None), url, method="delete"), 401, "not_authenticated")
    assert post(client_for(owner), url, method="delete").status_code == 204
    assert_error(client_for(None).get(f"/api/v1/solutions/{world.public.pk}"), 404, "not_found")
    assert_error(client_for(owner).get(url), 404, "not_found")


# ---------------------------------------------------------------- publish requests

@pytest.fixture
def pending(owner, catalogs, world) -> PublishRequest:
    return services.publish(owner, world.private.revisions.get(), catalogs["public"], "please")


def test_owners_and_publishers_see_a_request_and_nobody_else(client_for, owner, other_user, publisher, pending):
    url = f"/api/v1/publish-requests/{pending.pk}"
    for user in (owner, publisher):
        assert [r["id"] for r in results(client_for(user).get("/api/v1/publish-requests"))] == [pending.pk]
        assert client_for(user).get(url).json()["solution_name"] == "Private model"
    assert results(client_for(other_user).get("/api/v1/publish-requests")) == []
    assert_error(client_for(other_user).get(url), 404, "not_found", "no such publish request")
    assert_error(client_for(None).get("/api/v1/publish-requests"), 401, "not_authenticated")


def test_pending_requests_come_first(client_for, owner, publisher, catalogs, world, pending):
    waiting_room = Catalog.objects.create(name="Waiting room", self_publish=False)
    later = services.publish(owner, world.revision, waiting_room)
    services.decline(publisher, later, "not yet")
    newest = services.publish(owner, world.company.revisions.get(), waiting_room)
    listed = [r["id"] for r in results(client_for(publisher).get("/api/v1/publish-requests"))]
    assert listed == [newest.pk, pending.pk, later.pk]


def test_publish_requests_filter_by_status(client_for, publisher, pending):
    assert len(results(client_for(publisher).get("/api/v1/publish-requests", {"status": "PE"}))) == 1
    assert results(client_for(publisher).get("/api/v1/publish-requests", {"status": "AP"})) == []
    field_error(client_for(publisher).get("/api/v1/publish-requests", {"status": "open"}), "status", "valid choice")


def test_a_publisher_approves_a_request(client_for, owner, publisher, pending):
    url = f"/api/v1/publish-requests/{pending.pk}"
    approved = post(client_for(publisher), url + "/approve", {"comment": "Nice."})
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == RequestStatus.APPROVED and approved.json()["reviewed_by"] == "publisher"
    assert approved.json()["review_comment"] == "Nice."
    assert Publication.objects.get(revision=pending.revision).approved_by == publisher
    assert client_for(None).get(f"/api/v1/solutions/{pending.solution_id}").status_code == 200
    assert Notification.objects.filter(user=owner, kind=NotificationKind.PUBLISH_APPROVED).exists()
    field_error(post(client_for(publisher), url + "/approve"), "publish_request", "already approved")
    field_error(post(client_for(publisher), url + "/decline", {"comment": "no"}), "publish_request", "already")


def test_a_publisher_declines_a_request_saying_why(client_for, owner, publisher, pending):
    url = f"/api/v1/publish-requests/{pending.pk}/decline"
    field_error(post(client_for(publisher), url), "comment", "required")
    field_error(post(client_for(publisher), url, {"comment": "   "}), "comment", "blank")
    declined = post(client_for(publisher), url, {"comment": "Add a licence."})
    assert declined.status_code == 200 and declined.json()["status"] == RequestStatus.DECLINED
    assert Notification.objects.get(user=owner, kind=NotificationKind.PUBLISH_DECLINED).message == "Add a licence."
    assert not Publication.objects.filter(revision=pending.revision).exists()


def test_a_publisher_does_not_review_their_own_model(client_for, publisher, admin_user, catalogs):
    """Their own request is visible to them (as its owner), so reviewing it is a 400, not a 404."""
    revision = RevisionFactory(solution=SolutionFactory(owner=publisher, name="Publisher's"))
    made = post(client_for(publisher), "/api/v1/publications",
                {"revision": str(revision.pk), "catalog": str(catalogs["public"].pk)})
    url = f"/api/v1/publish-requests/{made.json()['id']}"
    field_error(post(client_for(publisher), url + "/approve"), "publish_request", "own models")
    field_error(post(client_for(publisher), url + "/decline", {"comment": "mine"}), "publish_request", "own models")
    assert post(client_for(admin_user), url + "/approve").status_code == 200, "another publisher may"


def test_only_publishers_review_and_only_managers_withdraw(client_for, owner, other_user, publisher, pending):
    url = f"/api/v1/publish-requests/{pending.pk}"
    assert_error(post(client_for(owner), url + "/approve"), 403, "permission_denied", "only publishers")
    assert_error(post(client_for(other_user), url + "/approve"), 404, "not_found")
    assert_error(post(client_for(None), url + "/approve"), 401, "not_authenticated")
    assert_error(post(client_for(publisher), url + "/withdraw"), 403, "permission_denied")
    assert_error(post(client_for(other_user), url + "/withdraw"), 404, "not_found")
    withdrawn = post(client_for(owner), url + "/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == RequestStatus.WITHDRAWN
    field_error(post(client_for(owner), url + "/withdraw"), "publish_request", "already withdrawn")
    field_error(post(client_for(publisher), url + "/approve"), "publish_request", "already withdrawn")


# ---------------------------------------------------------------- notifications

@pytest.fixture
def inbox(owner, other_user):
    made = [services.notify(owner, NotificationKind.COMMENT, f"Comment {i}") for i in range(3)]
    services.notify(other_user, NotificationKind.SHARED, "Not yours")
    return made


def test_notifications_are_the_callers_with_the_unread_count(client_for, owner, inbox):
    page = client_for(owner).get("/api/v1/notifications").json()
    assert [n["title"] for n in page["results"]] == ["Comment 2", "Comment 1", "Comment 0"]
    assert page["unread"] == 3 and page["count"] == 3
    assert client_for(owner).get("/api/v1/notifications/unread-count").json() == {"unread": 3}


def test_notifications_are_marked_read_by_id_or_all(client_for, owner, other_user, inbox):
    client = client_for(owner)
    answer = post(client, "/api/v1/notifications/read", {"ids": [inbox[0].pk]})
    assert answer.json() == {"marked": 1, "unread": 2}
    assert [n["title"] for n in results(client.get("/api/v1/notifications", {"unread": "true"}))] == [
        "Comment 2", "Comment 1"]
    assert client.get("/api/v1/notifications", {"unread": "false"}).json()["results"][0]["is_read"] is True
    theirs = Notification.objects.get(user=other_user)
    assert post(client, "/api/v1/notifications/read", {"ids": [theirs.pk]}).json() == {"marked": 0, "unread": 2}
    assert post(client, "/api/v1/notifications/read").json() == {"marked": 2, "unread": 0}
    assert Notification.objects.get(user=other_user).read_at is None


def test_bad_notification_calls(client_for, owner, other_user, inbox):
    client = client_for(owner)
    field_error(post(client, "/api/v1/notifications/read", {"ids": ["first"]}), "ids", "valid integer")
    field_error(post(client, "/api/v1/notifications/read", {"ids": 3}), "ids", "list")
    theirs = Notification.objects.get(user=other_user)
    assert_error(client.get(f"/api/v1/notifications/{theirs.pk}"), 404, "not_found", "no such notification")
    assert client.get(f"/api/v1/notifications/{inbox[0].pk}").json()["title"] == "Comment 0"
    assert_error(client_for(None).get("/api/v1/notifications"), 401, "not_authenticated")
    assert_error(post(client_for(None), "/api/v1/notifications/read"), 401, "not_authenticated")
    assert Notification.objects.filter(read_at__isnull=False).count() == 0


# ---------------------------------------------------------------- notification preferences

PREFERENCES = "/api/v1/notifications/preferences"


def preferences(response) -> dict[str, bool]:
    assert response.status_code == 200, response.content
    return {choice["kind"]: choice["enabled"] for choice in response.json()["preferences"]}


def test_preferences_list_every_kind_grouped_and_on_by_default(client_for, owner):
    listed = client_for(owner).get(PREFERENCES).json()["preferences"]
    assert listed[0] == {"kind": "onboarding_succeeded", "label": "Onboarding finished",
                         "description": "A model you uploaded finished onboarding and is ready.",
                         "group": "Your models", "enabled": True, "always_on": False}
    assert [c["kind"] for c in listed if c["always_on"]] == ["onboarding_failed"]
    assert all(c["enabled"] for c in listed) and NotificationKind.PUBLISH_REQUESTED not in {c["kind"] for c in listed}


def test_preferences_round_trip_with_a_token(client_for, api_token, owner):
    client, headers = client_for(None), {"Authorization": f"Bearer {api_token(owner)}"}
    sent = client.get(PREFERENCES, headers=headers).json()
    for choice in sent["preferences"]:
        choice["enabled"] = choice["always_on"] or choice["kind"] != NotificationKind.DEPLOYMENT
    answer = post(client, PREFERENCES + "/", sent, method="put", **headers)  # what GET said, changed, goes back
    assert preferences(answer)[NotificationKind.DEPLOYMENT] is False
    assert preferences(client.get(PREFERENCES, headers=headers))[NotificationKind.DEPLOYMENT] is False
    assert services.notify(owner, NotificationKind.DEPLOYMENT, "Iris on This host: Stop done by theo") is None
    partly = post(client, PREFERENCES, {"preferences": [{"kind": "comment", "enabled": False}]}, method="put",
                  **headers)
    assert {kind for kind, on in preferences(partly).items() if not on} == {"deployment", "comment"}  # kept


def test_turning_an_always_on_kind_off_is_refused_with_a_sentence(client_for, owner):
    body = {"preferences": [{"kind": "onboarding_failed", "enabled": False}, {"kind": "review", "enabled": False}]}
    message = field_error(post(client_for(owner), PREFERENCES, body, method="put"), "preferences", "always on")
    assert message == ('"Onboarding failed" is always on: it is where you learn that an upload of yours failed '
                       "and why; leave it on")
    assert all(preferences(client_for(owner).get(PREFERENCES)).values())  # nothing changed


@pytest.mark.parametrize(("body", "needle"), [
    ({"preferences": [{"kind": "gossip", "enabled": False}]}, "not a valid choice"),
    ({"preferences": [{"kind": "comment"}]}, "required"),
    ({"preferences": [{"kind": "comment", "enabled": "perhaps"}]}, "valid boolean"),
    ({}, "required"),
])
def test_bad_preferences_name_the_field(client_for, owner, body, needle):
    field_error(post(client_for(owner), PREFERENCES, body, method="put"), "preferences", needle)


def test_preferences_are_for_signed_in_callers(client_for):
    assert_error(client_for(None).get(PREFERENCES), 401, "not_authenticated")
    assert_error(post(client_for(None), PREFERENCES, {"preferences": []}, method="put"), 401, "not_authenticated")


# ---------------------------------------------------------------- downloads

def with_files(revision) -> list[Artifact]:
    made = []
    for kind in BUNDLE_KINDS[:3]:
        blob, _ = storage.store_text(f"{kind} of {revision.pk}")
        made.append(Artifact.objects.create(revision=revision, kind=kind, name=f"{kind}.bin", blob=blob))
    return made


def test_anyone_downloads_a_public_model_and_it_is_counted(client_for, other_user, world):
    artifact = with_files(world.revision)[0]
    response = client_for(None).get(f"/api/v1/artifacts/{artifact.pk}/download")
    assert response.status_code == 200 and b"".join(response.streaming_content) == f"MD of {world.revision.pk}".encode()
    bundle = client_for(other_user).get(f"/api/v1/revisions/{world.revision.pk}/bundle")
    assert bundle.status_code == 200
    assert Solution.objects.get(pk=world.public.pk).download_count == 2
    assert list(Download.objects.order_by("created").values_list("user", "artifact")) == [
        (None, artifact.pk), (other_user.pk, None)]


def test_downloads_stay_behind_visibility(client_for, other_user, world):
    company = with_files(world.company.revisions.get())[0]
    private = with_files(world.private.revisions.get())[0]
    assert_error(client_for(None).get(f"/api/v1/artifacts/{company.pk}/download"), 404, "not_found")
    assert_error(client_for(None).get(f"/api/v1/revisions/{company.revision_id}/bundle"), 404, "not_found")
    assert client_for(other_user).get(f"/api/v1/artifacts/{company.pk}/download").status_code == 200
    assert_error(client_for(other_user).get(f"/api/v1/artifacts/{private.pk}/download"), 404, "not_found")
    assert_error(client_for(other_user).get(f"/api/v1/revisions/{private.revision_id}/bundle"), 404, "not_found")
    assert Download.objects.count() == 1


def test_a_revision_still_onboarding_has_no_bundle(client_for, owner, world):
    onboarding = RevisionFactory(solution=world.private, status=RevisionStatus.ONBOARDING)
    assert_error(client_for(owner).get(f"/api/v1/revisions/{onboarding.pk}/bundle"), 404, "not_found", "onboarding")
    assert not Download.objects.exists()
