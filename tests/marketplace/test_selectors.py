"""marketplace.selectors: who sees which solution, revision and artifact, and search on both
PostgreSQL's full text and the plain fallback SQLite uses."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace import selectors, services
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Solution
from tests.factories import RevisionFactory, SolutionFactory, published_revision

pytestmark = pytest.mark.django_db
PERSONAS = ("anonymous", "owner", "co_owner", "other_user", "publisher", "admin_user")


@pytest.fixture
def people(request, owner, co_owner, other_user, publisher, admin_user):
    return {"anonymous": None, "owner": owner, "co_owner": co_owner, "other_user": other_user,
            "publisher": publisher, "admin_user": admin_user}


@pytest.fixture
def world(owner, co_owner, catalogs):
    """One solution per state, all owned by `owner` and shared with `co_owner`."""
    made = {}
    for state in ("private", "pending", "restricted", "public", "deleted"):
        revision = RevisionFactory(solution=SolutionFactory(owner=owner, name=f"{state} model"))
        services.share(owner, revision.solution, co_owner.username)
        made[state] = revision
    services.publish(owner, made["pending"], catalogs["public"])
    services.publish_directly(made["restricted"], catalogs["company"])
    services.publish_directly(made["public"], catalogs["public"])
    services.publish_directly(made["deleted"], catalogs["public"])
    services.soft_delete(owner, made["deleted"].solution)
    return made


MANAGERS = {"private", "pending", "restricted", "public"}
SEES = {
    "anonymous": {"public"},
    "owner": MANAGERS,
    "co_owner": MANAGERS,
    "other_user": {"restricted", "public"},
    "publisher": {"pending", "restricted", "public"},
    "admin_user": MANAGERS,
}


@pytest.mark.parametrize("persona", PERSONAS)
def test_one_rule_for_solutions_revisions_and_artifacts(persona, people, world):
    user = people[persona]
    for revision in world.values():
        Artifact.objects.create(revision=revision, kind=ArtifactKind.METADATA, name="metadata.json")
    expected = {world[state].solution.name for state in SEES[persona]}

    assert {s.name for s in selectors.visible_solutions(user)} == expected
    assert {r.solution.name for r in selectors.visible_revisions(user)} == expected
    assert {a.revision.solution.name for a in selectors.visible_artifacts(user)} == expected


def test_an_unpublished_revision_of_a_published_model_stays_private(owner, other_user, catalogs):
    published = published_revision(catalogs["company"], owner=owner)
    draft = RevisionFactory(solution=published.solution)

    assert set(selectors.visible_revisions(other_user)) == {published}
    assert set(selectors.visible_revisions(owner)) == {published, draft}


def test_the_deleted_list_is_for_managers(people, world):
    for persona in PERSONAS:
        deleted = set(selectors.deleted_solutions(people[persona]))
        expected = {world["deleted"].solution} if persona in ("owner", "co_owner", "admin_user") else set()
        assert deleted == expected, persona


def test_a_publisher_queue_has_no_requests_for_their_own_models(publisher, owner, catalogs):
    theirs = RevisionFactory(solution=SolutionFactory(owner=owner))
    own = RevisionFactory(solution=SolutionFactory(owner=publisher))
    services.publish(owner, theirs, catalogs["public"])
    services.publish(publisher, own, catalogs["public"])

    assert [r.revision for r in selectors.reviewable_requests(publisher)] == [theirs]
    assert [r.revision for r in selectors.requests_of(publisher)] == [own]


# ---------------------------------------------------------------- search

@pytest.fixture(params=["full text", "fallback"])
def search_engine(request, settings):
    settings.ACUMOS_FULL_TEXT = request.param == "full text"
    return request.param


@pytest.fixture
def shelf(owner, catalogs):
    iris = published_revision(catalogs["public"], name="Iris Classifier", description="Flowers by petal size")
    wine = published_revision(catalogs["public"], name="Wine Quality", description="Regression on acidity",
                              owner=owner)
    services.update_details(owner, wine.solution, description=wine.solution.description, tags=["chemistry"],
                            model_type="RG")
    hidden = RevisionFactory(solution=SolutionFactory(name="Iris Secret"))
    services.reindex(hidden.solution_id)
    return {"iris": iris.solution, "wine": wine.solution}


@pytest.mark.parametrize(("query", "found"), [
    ("iris", {"iris"}), ("IRI", {"iris"}), ("petal", {"iris"}), ("chemistry", {"wine"}),
    ("owner", {"wine"}), ("wine acidity", {"wine"}), ("iris acidity", set()), ("", {"iris", "wine"}),
    ("'; drop table --", set()),
])
def test_search_finds_name_description_tags_and_author_words(query, found, search_engine, shelf):
    results = selectors.search_solutions(None, selectors.SearchParams(q=query))

    assert {s.pk for s in results} == {shelf[name].pk for name in found}


def test_full_text_ranks_name_matches_first(settings, shelf, catalogs):
    settings.ACUMOS_FULL_TEXT = True
    published_revision(catalogs["public"], name="Petal Counter", description="counts")
    results = list(selectors.search_solutions(None, selectors.SearchParams(q="petal")))
    assert [s.name for s in results] == ["Petal Counter", "Iris Classifier"]


def test_a_ranked_search_scores_the_newest_matches_of_the_window(settings, catalogs):
    settings.ACUMOS_FULL_TEXT, settings.ACUMOS_RANK_WINDOW = True, 2
    shown = [("Petal Petal", "petal"), ("Petal Counter", "counts"), ("Sepal Gauge", "also a petal"), ("Roots", "")]
    made = [published_revision(catalogs["public"], name=name, description=text).solution for name, text in shown]
    for age, solution in enumerate(made):  # the first made is the oldest
        Solution.objects.filter(pk=solution.pk).update(modified=timezone.now() - timedelta(days=len(made) - age))
    ranked = selectors.SearchParams(q="petal")

    assert [s.name for s in selectors.search_solutions(None, ranked)] == ["Petal Counter", "Sepal Gauge"]
    assert selectors.matching_solutions(None, ranked).count() == 3
    assert selectors.listed_count(3, ranked) == 2
    by_date = selectors.SearchParams(q="petal", sort="recent")
    assert [s.name for s in selectors.search_solutions(None, by_date)] == [
        "Sepal Gauge", "Petal Counter", "Petal Petal"]
    assert selectors.listed_count(3, by_date) == 3


def test_without_full_text_nothing_is_ranked_or_left_out(settings, catalogs):
    settings.ACUMOS_FULL_TEXT, settings.ACUMOS_RANK_WINDOW = False, 1
    for name in ("Petal One", "Petal Two"):
        published_revision(catalogs["public"], name=name)
    params = selectors.SearchParams(q="petal")

    assert not selectors.is_ranked(params) and selectors.listed_count(2, params) == 2
    assert len(selectors.search_solutions(None, params)) == 2


def test_facets_count_what_the_results_hold(shelf, other_user):
    facets = selectors.count_matches(other_user, selectors.SearchParams()).facets

    assert ("RG", "Regression", 1) in facets["model_type"]
    assert facets["tag"] == [("chemistry", "chemistry", 1)]
    assert [(label, n) for _, label, n in facets["catalog"]] == [("Public Models", 2)]
    assert Solution.objects.count() == 3  # the private one is in no count


# ---------------------------------------------------------------- the model page's shared part

def fresh(solution: Solution) -> selectors.PageParts:
    solution.refresh_from_db()  # a page reads the solution, page_version included, on each request
    return selectors.page_parts(solution)


def test_the_shared_part_is_cached_until_anything_it_shows_changes(catalogs, other_user, django_assert_num_queries):
    from marketplace.models import Favorite, Tag
    from tests.factories import CommentFactory, RatingFactory

    solution = published_revision(catalogs["public"]).solution
    assert fresh(solution).comments == []
    with django_assert_num_queries(0):
        selectors.page_parts(solution)  # the same version: from the cache

    comment = CommentFactory(solution=solution, text="first")  # no service: the signals still see it
    assert [c.text for c in fresh(solution).comments] == ["first"]
    cached_author = fresh(solution).comments[0].author
    assert cached_author.username and "password" not in cached_author.__dict__  # no hash in the cache
    RatingFactory(solution=solution, stars=4)
    assert fresh(solution).stars == {4: 1}
    Favorite.objects.create(solution=solution, user=other_user)
    assert fresh(solution).favorites == 1
    solution.tags.add(Tag.objects.create(name="vision"))
    assert [t.name for t in fresh(solution).tags] == ["vision"]
    comment.delete()
    assert fresh(solution).comments == []


# ---------------------------------------------------------------- the cached summary

def summary_for(user, q=""):
    params = selectors.SearchParams(q=q)
    return selectors.summary_of(user, params)


def test_the_summary_is_reused_until_the_catalog_changes(shelf, catalogs, django_assert_num_queries):
    assert summary_for(None).total == 2
    with django_assert_num_queries(0):  # count and facets come from the cache
        assert summary_for(None).total == 2

    published_revision(catalogs["public"], name="Petal Counter")

    assert summary_for(None).total == 3


def test_a_summary_is_never_shared_with_someone_who_sees_less(shelf, owner, other_user, catalogs):
    private = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris Draft"))
    services.reindex(private.solution_id)

    assert summary_for(owner, "iris").total == 2  # with their own draft
    assert summary_for(other_user, "iris").total == 1
    assert summary_for(None, "iris").total == 1


def test_no_summary_is_kept_when_the_setting_is_zero(settings, shelf, catalogs):
    settings.ACUMOS_SUMMARY_SECONDS = 0
    assert summary_for(None).total == 2
    Solution.objects.filter(name="Wine Quality").update(audience=0)  # no service: nothing would tell a cache
    assert summary_for(None).total == 1


def test_a_member_with_nothing_private_reads_the_summary_without_a_query(shelf, other_user,
                                                                         django_assert_num_queries):
    assert summary_for(other_user).total == 2
    with django_assert_num_queries(0):  # whether they own a private model is kept with the summary
        assert summary_for(other_user).total == 2


def test_a_new_edited_or_shared_model_is_counted_at_once(shelf, owner, other_user):
    assert summary_for(other_user, "iris").total == 1
    draft = SolutionFactory(owner=other_user, name="Iris Draft")  # onboarding creates it private
    services.reindex(draft.pk)
    assert summary_for(other_user, "iris").total == 2
    assert summary_for(owner, "iris").total == 1
    services.share(other_user, draft, owner.username)
    assert summary_for(owner, "iris").total == 2  # the co-owner sees it now
    assert ("chemistry", "chemistry", 1) in summary_for(owner).facets["tag"]
    services.update_details(owner, shelf["wine"], description="", tags=["oenology"], model_type="RG")
    tags = summary_for(owner).facets["tag"]
    assert ("oenology", "oenology", 1) in tags and all(name != "chemistry" for name, _, _ in tags)


@pytest.mark.parametrize("params", [
    {"q": "i"}, {"q": "iris"}, {"q": "e", "model_type": "RG"}, {"q": "e", "toolkit": "sklearn", "licence": "MIT"},
    {"q": "e", "tag": "no-such-tag"}, {},
])
def test_counted_in_one_pass_or_apart_the_counts_are_the_same(params, shelf, owner, catalogs):
    published_revision(catalogs["public"], name="Extra Tree", toolkit="sklearn", licence="MIT")
    params = selectors.SearchParams(**params)
    summary = selectors.count_matches(owner, params)
    assert summary.total == selectors.matching_solutions(owner, params).count()
    for column in ("model_type", "toolkit", "licence"):  # each among the others' results, not its own
        among = selectors.matching_solutions(owner, replace(params, **{column: ""}))
        expected = Counter(value for value in among.values_list(column, flat=True) if value)
        chosen = getattr(params, column)
        if chosen and chosen not in expected and column != "model_type":
            expected[chosen] = summary.total  # a chosen value always shows
        assert {value: n for value, _, n in summary.facets[column]} == expected, column
