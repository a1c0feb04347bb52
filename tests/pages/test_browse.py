"""Browse and search (the marketplace home) and the site's layout: who sees which models, full-text
search, filters with their counts, sorting, pages, grid and list, the htmx partial, bad parameters,
the bell and the site name in the top bar, and a number of queries that does not grow with the data."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, include, path, reverse
from django.utils import timezone

from acumos_portal.accounts import site
from acumos_portal.accounts.models import SiteSettings
from acumos_portal.accounts.site import current_site, forget_site
from licensing import profiles
from marketplace import selectors, services
from marketplace.choices import ModelType, NotificationKind
from marketplace.models import Solution, Tag
from pages.views.browse import compact_number, plain_excerpt

from ..factories import RatingFactory, RevisionFactory, SolutionFactory, UserFactory, published_revision

pytestmark = pytest.mark.django_db

BROWSE = reverse("marketplace:browse")


@pytest.fixture(autouse=True)
def fresh_site_cache():
    """The site's name is cached across requests (and tests): each test starts from the database."""
    forget_site()
    yield
    forget_site()


def published(catalog, **fields) -> Solution:
    return published_revision(catalog, **fields).solution


def tag(solution: Solution, *names: str) -> Solution:
    solution.tags.set([Tag.objects.get_or_create(name=name)[0] for name in names])
    services.reindex(solution.pk)
    return solution


def names_in(response) -> list[str]:
    return [card.solution.name for card in response.context["cards"]]


def facet(response, name: str) -> dict[str, int]:
    """A sidebar section as {label: count} ({} when the section is not shown)."""
    for section in response.context["facets"]:
        if section["name"] == name:
            return {item["label"]: item["count"] for item in section["values"]}
    return {}


def browse(client, **params):
    response = client.get(BROWSE, params)
    assert response.status_code == 200
    return response


# ---------------------------------------------------------------- who sees what

@pytest.fixture
def shelf(catalogs, owner, other_user):
    """One model of each kind a visitor might or might not see."""
    everyone = published(catalogs["public"], name="Everyone's model", owner=other_user)
    company = published(catalogs["company"], name="Company model", owner=other_user)
    mine = RevisionFactory(solution=SolutionFactory(name="My private model", owner=owner)).solution
    theirs = RevisionFactory(solution=SolutionFactory(name="Their private model", owner=other_user)).solution
    gone = published(catalogs["public"], name="Deleted model", owner=owner)
    Solution.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    for private in (mine, theirs):
        services.reindex(private.pk)  # as onboarding does, so that search finds them
    return {"public": everyone, "company": company, "mine": mine, "theirs": theirs, "deleted": gone}


def test_anonymous_visitors_see_public_catalog_models_only(client, shelf):
    response = browse(client)
    assert names_in(response) == ["Everyone's model"]
    html = response.content.decode()
    for hidden in ("Company model", "My private model", "Their private model", "Deleted model"):
        assert hidden not in html
    assert str(shelf["company"].pk) not in html
    assert facet(response, "catalog") == {"Public Models": 1}


def test_signed_in_users_see_public_restricted_and_their_own_private_models(client_for, owner, shelf):
    response = browse(client_for(owner))
    assert sorted(names_in(response)) == ["Company model", "Everyone's model", "My private model"]
    assert "Their private model" not in response.content.decode()
    assert "Deleted model" not in response.content.decode()
    assert facet(response, "catalog") == {"Company Models": 1, "Public Models": 1}


def test_another_user_never_sees_someone_elses_private_model(client_for, co_owner, shelf):
    assert sorted(names_in(browse(client_for(co_owner)))) == ["Company model", "Everyone's model"]


def test_a_co_owner_sees_the_private_model_shared_with_them(client_for, owner, co_owner, shelf):
    services.share(owner, shelf["mine"], co_owner.username)
    assert "My private model" in names_in(browse(client_for(co_owner)))


def test_a_private_model_is_marked_private_on_its_card(client_for, owner, shelf):
    html = browse(client_for(owner), q="private").content.decode()
    assert "badge--private" in html


def test_a_search_never_finds_what_the_user_may_not_see(client, client_for, other_user, shelf):
    assert names_in(browse(client, q="model")) == ["Everyone's model"]
    assert "Their private model" not in names_in(browse(client_for(UserFactory()), q="private"))


# ---------------------------------------------------------------- full-text search

@pytest.fixture
def zoo(catalogs):
    author = UserFactory(username="jdoe", first_name="Jane", last_name="Marlowe")
    iris = published(catalogs["public"], name="Iris classifier", description="Tells **flowers** apart.",
                     owner=author)
    tag(iris, "botany")
    published(catalogs["public"], name="House prices", description="Predicts prices of flowers shops.")
    published(catalogs["public"], name="Churn", description="Which customers leave.")
    return iris


@pytest.mark.parametrize(("query", "expected"), [
    ("iris", ["Iris classifier"]),              # a word of the name
    ("IRIS", ["Iris classifier"]),              # in any case
    ("iri", ["Iris classifier"]),               # the start of a word is enough
    ("customers", ["Churn"]),                   # a word of the description
    ("botany", ["Iris classifier"]),            # a tag
    ("jdoe", ["Iris classifier"]),              # the author's user name
    ("marlowe", ["Iris classifier"]),           # the author's full name
    ("flowers apart", ["Iris classifier"]),     # every word must match
    ("flowers", ["Iris classifier", "House prices"]),
    ("flowers zebra", []),
])
def test_full_text_search(client, zoo, query, expected):
    assert sorted(names_in(browse(client, q=query))) == sorted(expected)


def test_a_search_ranks_a_name_match_above_a_description_match(client, catalogs):
    published(catalogs["public"], name="Weather", description="Uses the forecast of a rainfall model.")
    published(catalogs["public"], name="Rainfall", description="Predicts rain.")
    assert names_in(browse(client, q="rainfall")) == ["Rainfall", "Weather"]


def test_a_common_word_ranks_only_the_newest_matches_and_says_so(client, catalogs, settings):
    settings.ACUMOS_RANK_WINDOW = 2
    old = published(catalogs["public"], name="Rainfall", description="Predicts rain.")
    Solution.objects.filter(pk=old.pk).update(modified=timezone.now() - timezone.timedelta(days=9))
    published(catalogs["public"], name="Weather", description="Uses a rainfall forecast.")
    published(catalogs["public"], name="Floods", description="From rainfall totals.")

    ranked = browse(client, q="rainfall")
    assert sorted(names_in(ranked)) == ["Floods", "Weather"]  # the best name match is the oldest
    html = ranked.content.decode()
    assert "<strong>3</strong> models" in html and "among the 2 most recently updated" in html
    assert "sort=recent" in ranked.context["recent_url"]
    assert names_in(browse(client, q="rainfall", sort="recent")) == ["Floods", "Weather", "Rainfall"]
    assert "most recently updated" not in browse(client, q="rainfall", sort="recent").content.decode()


def test_the_query_is_kept_in_the_search_box_and_the_title(client, zoo):
    html = browse(client, q="iris").content.decode()
    assert 'value="iris"' in html and "<title>iris · Models" in html


# ---------------------------------------------------------------- filters and counts

@pytest.fixture
def mixed(catalogs):
    first = published(catalogs["public"], name="A", model_type=ModelType.CLASSIFICATION, toolkit="sklearn",
                      licence="MIT")
    second = published(catalogs["public"], name="B", model_type=ModelType.CLASSIFICATION, toolkit="onnx",
                       licence="Apache-2.0")
    third = published(catalogs["company"], name="C", model_type=ModelType.REGRESSION, toolkit="sklearn",
                      licence="MIT")
    tag(first, "vision", "fast")
    tag(second, "vision")
    tag(third, "tabular")
    return {"A": first, "B": second, "C": third}


def test_the_sidebar_counts_each_filters_values(client_for, owner, mixed):
    response = browse(client_for(owner))
    assert facet(response, "model_type") == {"Classification": 2, "Regression": 1}
    assert facet(response, "toolkit") == {"sklearn": 2, "onnx": 1}
    assert facet(response, "tag") == {"vision": 2, "fast": 1, "tabular": 1}
    assert facet(response, "licence") == {"MIT": 2, "Apache-2.0": 1}
    assert facet(response, "catalog") == {"Public Models": 2, "Company Models": 1}


@pytest.mark.parametrize(("param", "value", "expected"), [
    ("model_type", ModelType.REGRESSION, ["C"]),
    ("toolkit", "sklearn", ["A", "C"]),
    ("tag", "vision", ["A", "B"]),
    ("licence", "Apache-2.0", ["B"]),
])
def test_each_filter_narrows_the_results(client_for, owner, mixed, param, value, expected):
    assert sorted(names_in(browse(client_for(owner), **{param: value}))) == expected


def test_the_catalog_filter(client_for, owner, catalogs, mixed):
    response = browse(client_for(owner), catalog=str(catalogs["company"].pk))
    assert names_in(response) == ["C"]
    assert [chip["label"] for chip in response.context["chips"]] == ["Company Models"]


def test_filters_combine_and_counts_follow_the_results(client_for, owner, mixed):
    response = browse(client_for(owner), toolkit="sklearn", tag="vision")
    assert names_in(response) == ["A"]
    assert facet(response, "licence") == {"MIT": 1}
    assert facet(response, "model_type") == {"Classification": 1}


def test_a_chosen_filter_still_shows_its_other_values_and_what_each_would_give(client_for, owner, mixed):
    response = browse(client_for(owner), toolkit="sklearn", tag="vision")
    # Each filter counts among the results of the others: sklearn models (A, C) by tag,
    # vision models (A, B) by toolkit.
    assert facet(response, "tag") == {"vision": 1, "fast": 1, "tabular": 1}
    assert facet(response, "toolkit") == {"sklearn": 1, "onnx": 1}
    links = {section["name"]: {item["label"]: item for item in section["values"]} for section in
             response.context["facets"]}
    onnx = links["toolkit"]["onnx"]
    assert not onnx["chosen"] and "toolkit=onnx" in onnx["url"] and "tag=vision" in onnx["url"]
    assert links["toolkit"]["sklearn"]["chosen"] and "toolkit=" not in links["toolkit"]["sklearn"]["url"]
    assert names_in(browse(client_for(owner), toolkit="onnx", tag="vision")) == ["B"]  # as the count said


def test_a_chosen_value_shows_though_it_is_not_among_the_biggest(client_for, owner, mixed, catalogs):
    popular = [f"popular{number:02}" for number in range(selectors.FACET_LIMIT)]
    for number in range(3):  # twelve tags on three models each: more than "vision", on two
        tag(published(catalogs["public"], name=f"Popular {number}"), *popular)
    response = browse(client_for(owner), tag="vision")
    tags = facet(response, "tag")
    assert len(tags) == selectors.FACET_LIMIT + 1 and tags["vision"] == 2 and "fast" not in tags


def test_a_filter_link_keeps_the_other_parameters_and_starts_on_page_one(client_for, owner, mixed):
    response = browse(client_for(owner), q="mit", sort="name", view="list", page="1")
    links = {item["label"]: item["url"] for section in response.context["facets"] for item in section["values"]}
    assert "toolkit=sklearn" in links["sklearn"]
    assert "q=mit" in links["sklearn"] and "sort=name" in links["sklearn"] and "view=list" in links["sklearn"]
    assert "page=" not in links["sklearn"]


def test_an_active_filter_is_a_removable_chip_and_its_value_a_toggle(client_for, owner, mixed):
    response = browse(client_for(owner), tag="vision", q="vision")
    chip = response.context["chips"][0]
    assert (chip["title"], chip["label"]) == ("Tags", "vision")
    assert "tag=" not in chip["url"] and "q=vision" in chip["url"]
    chosen = [item for section in response.context["facets"] for item in section["values"] if item["chosen"]]
    assert [item["value"] for item in chosen] == ["vision"] and "tag=" not in chosen[0]["url"]
    assert 'aria-label="Remove filter Tags: vision"' in response.content.decode()


def test_filter_values_are_kept_as_hidden_fields_of_the_search_form(client_for, owner, mixed):
    html = browse(client_for(owner), tag="vision", toolkit="onnx").content.decode()
    assert '<input type="hidden" name="tag" value="vision">' in html
    assert '<input type="hidden" name="toolkit" value="onnx">' in html


# ---------------------------------------------------------------- licences by SPDX id, and access

def licensed(solution: Solution, expression: str, *, rtu_required: bool = False) -> Solution:
    """As licensing notes a licence (licensing.services.note_profile): the label, its ids, rtuRequired."""
    ids = f" {' '.join(profiles.spdx_ids(expression))} "
    services.set_licence_summary(solution.pk, label=expression, ids=ids, rtu_required=rtu_required)
    return solution


@pytest.fixture
def licences(catalogs):
    """Dual-licensed, MIT alone, Apache alone, and a proprietary licence that needs an agreement."""
    for name, expression, rtu in (("Dual", "Apache-2.0 OR MIT", False), ("Permissive", "MIT", False),
                                  ("Patented", "Apache-2.0", False),
                                  ("Closed", "LicenseRef-Acme-Proprietary", True)):
        licensed(published(catalogs["public"], name=name), expression, rtu_required=rtu)


def test_the_licence_filter_counts_each_spdx_id_once_per_model(client, licences):
    response = browse(client)
    assert facet(response, "licence") == {"MIT": 2, "Apache-2.0": 2, "LicenseRef-Acme-Proprietary": 1}


@pytest.mark.parametrize(("licence", "expected"), [
    ("MIT", ["Dual", "Permissive"]),
    ("Apache-2.0", ["Dual", "Patented"]),
    ("Apache-2.0 OR MIT", ["Dual"]),  # a whole expression, as a link from before still asks
])
def test_the_licence_filter_finds_an_id_inside_an_expression(client, licences, licence, expected):
    response = browse(client, licence=licence)
    assert sorted(names_in(response)) == expected
    assert facet(response, "licence")[licence] == len(expected)


def test_a_chosen_licence_id_links_back_and_the_others_say_what_they_would_give(client, licences):
    response = browse(client, licence="MIT")
    values = {item["label"]: item for section in response.context["facets"] if section["name"] == "licence"
              for item in section["values"]}
    assert values["MIT"]["chosen"] and "licence=" not in values["MIT"]["url"]
    assert values["Apache-2.0"]["count"] == 2 and "licence=Apache-2.0" in values["Apache-2.0"]["url"]


def test_an_old_keyword_that_is_no_spdx_expression_is_one_value(client, catalogs):
    services.set_licence_summary(published(catalogs["public"], name="Old").pk, label="Company B Proprietary",
                                 ids="", rtu_required=False)
    response = browse(client)
    assert facet(response, "licence") == {"Company B Proprietary": 1}
    assert names_in(browse(client, licence="Company B Proprietary")) == ["Old"]


@pytest.mark.parametrize(("access", "expected", "label"), [
    ("open", ["Dual", "Patented", "Permissive"], "Open"),
    ("agreement", ["Closed"], "Needs an agreement"),
])
def test_the_access_filter(client, licences, access, expected, label):
    response = browse(client, access=access)
    assert sorted(names_in(response)) == expected
    assert [(chip["title"], chip["label"]) for chip in response.context["chips"]] == [("Access", label)]
    links = {item["label"]: item for section in response.context["facets"] if section["name"] == "access"
             for item in section["values"]}
    assert set(links) == {"Open", "Needs an agreement"} and links[label]["chosen"]
    assert f'<input type="hidden" name="access" value="{access}">' in response.content.decode()


def test_the_access_filter_combines_with_a_licence_id(client, licences):
    assert names_in(browse(client, access="agreement", licence="MIT")) == []
    assert sorted(names_in(browse(client, access="open", licence="MIT"))) == ["Dual", "Permissive"]


def test_a_nonsense_access_value_is_ignored(client, licences):
    assert len(names_in(browse(client, access="everyone"))) == 4


def test_a_card_shows_its_licence_and_whether_it_needs_an_agreement(client, licences):
    html = browse(client).content.decode()
    assert '<span class="visually-hidden">Licence: </span>Apache-2.0 OR MIT</li>' in html
    assert html.count(">Agreement needed</li>") == 1


def test_the_api_searches_by_access_and_licence_id_and_says_what_each_needs(client, licences):
    found = client.get("/api/v1/solutions/", {"access": "open", "licence": "MIT"}).json()["results"]
    assert sorted((s["name"], s["licence"], s["rtu_required"]) for s in found) == [
        ("Dual", "Apache-2.0 OR MIT", False), ("Permissive", "MIT", False)]
    assert {s["name"]: s["licence_ids"] for s in found}["Dual"] == ["Apache-2.0", "MIT"]
    closed = client.get("/api/v1/solutions/", {"access": "agreement"}).json()["results"]
    assert [(s["name"], s["rtu_required"]) for s in closed] == [("Closed", True)]
    assert client.get("/api/v1/solutions/", {"access": "everyone"}).status_code == 400


def test_tags_and_catalogs_on_a_card_link_to_their_filter(client, catalogs, mixed):
    html = browse(client).content.decode()
    assert "?tag=vision" in html and f"?catalog={catalogs['public'].pk}" in html


# ---------------------------------------------------------------- sorting

@pytest.fixture
def ranked(catalogs):
    """Three models whose every order differs: name, rating, downloads, views, recency."""
    made = {}
    for name, rating, downloads, views in (("Beta", 3.0, 50, 1), ("Alpha", 5.0, 10, 30), ("Gamma", 4.0, 99, 20)):
        made[name] = published(catalogs["public"], name=name)
        Solution.objects.filter(pk=made[name].pk).update(rating_avg=rating, rating_count=2,
                                                         download_count=downloads, view_count=views)
    Solution.objects.filter(pk=made["Alpha"].pk).update(modified=timezone.now() - timezone.timedelta(days=3))
    return made


@pytest.mark.parametrize(("sort", "expected"), [
    ("", ["Gamma", "Beta", "Alpha"]),           # most recent first by default
    ("recent", ["Gamma", "Beta", "Alpha"]),
    ("name", ["Alpha", "Beta", "Gamma"]),
    ("rating", ["Alpha", "Gamma", "Beta"]),
    ("downloads", ["Gamma", "Beta", "Alpha"]),
    ("views", ["Alpha", "Gamma", "Beta"]),
    ("nonsense", ["Gamma", "Beta", "Alpha"]),   # an unknown order falls back to the default
])
def test_each_sort_order(client, ranked, sort, expected):
    assert names_in(browse(client, sort=sort)) == expected


def test_the_sort_menu_offers_best_match_only_for_a_search(client, ranked):
    without = [label for _, label in browse(client).context["sort_options"]]
    with_query = [label for _, label in browse(client, q="alpha").context["sort_options"]]
    assert without[0] == "Most recent" and "Best match" not in without
    assert with_query[0] == "Best match" and "Most recent" in with_query


# ---------------------------------------------------------------- pages and layouts

@pytest.fixture
def thirty(catalogs):
    return [published(catalogs["public"], name=f"Model {number:02}") for number in range(30)]


def test_results_come_24_to_a_page(client, thirty):
    first = browse(client, sort="name")
    assert len(first.context["cards"]) == 24 and names_in(first)[0] == "Model 00"
    second = browse(client, sort="name", page="2")
    assert names_in(second) == [f"Model {number}" for number in range(24, 30)]
    html = first.content.decode()
    assert 'rel="next"' in html and "page=2" in html and "30</strong> models" in html


@pytest.mark.parametrize(("page", "expected"), [("99", 2), ("-1", 2), ("abc", 1), ("", 1), ("1.5", 1)])
def test_a_page_out_of_range_shows_the_nearest_page(client, thirty, page, expected):
    assert browse(client, page=page).context["page"].number == expected


def test_grid_is_the_default_layout_and_list_the_other(client, thirty):
    assert "models--grid" in browse(client).content.decode()
    listed = browse(client, view="list")
    assert "models--list" in listed.content.decode() and listed.context["view"] == "list"
    assert browse(client, view="carousel").context["view"] == "grid"


def test_an_htmx_request_gets_only_the_results(client, thirty):
    response = client.get(BROWSE, {"q": "model", "page": "2"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "topbar" not in html and 'id="browse-q"' not in html
    assert "model-card" in html and "pagination" in html
    assert 'hx-swap-oob="innerHTML"' in html and "30 models found, page 2 of 2" in html
    assert "HX-Request" in response["Vary"]
    assert [template.name for template in response.templates][0] == "marketplace/_results.html"


def test_restoring_history_after_a_cache_miss_gets_the_whole_page(client, thirty):
    response = client.get(BROWSE, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


def test_the_full_page_wires_the_form_to_htmx(client, thirty):
    html = browse(client).content.decode()
    assert 'hx-target="#results"' in html and 'hx-push-url="true"' in html and 'id="results"' in html
    assert 'hx-get="/?' in html  # facet, tag and page links swap the results too


# ---------------------------------------------------------------- bad parameters

@pytest.mark.parametrize("params", [
    {"catalog": "not-a-uuid"},
    {"catalog": str(uuid.uuid4())},
    {"model_type": "ZZ"},
    {"sort": "<script>"},
    {"view": "../../etc"},
    {"q": "x" * 5000},
    {"q": "   "},
    {"q": "'\"&|!:*()<>"},
    {"page": "9" * 30},
    {"tag": "a" * 500, "licence": "\x00"},
])
def test_bad_parameters_never_fail(client, catalogs, params):
    published(catalogs["public"], name="Survivor")
    response = client.get(BROWSE, params)
    assert response.status_code == 200


def test_a_catalog_the_visitor_may_not_see_is_ignored(client, catalogs):
    published(catalogs["public"], name="Open")
    response = browse(client, catalog=str(catalogs["company"].pk))
    assert names_in(response) == ["Open"] and response.context["chips"] == []
    assert "Company Models" not in response.content.decode()


def test_a_nonsense_filter_value_is_ignored(client, catalogs):
    published(catalogs["public"], name="Open")
    response = browse(client, model_type="ZZ", catalog="nope")
    assert names_in(response) == ["Open"] and response.context["chips"] == []


# ---------------------------------------------------------------- cards and empty states

def test_a_card_shows_what_a_visitor_needs(client, catalogs):
    author = UserFactory(username="ada", first_name="Ada", last_name="Lovelace")
    model = published(catalogs["public"], name="Iris", owner=author, toolkit="sklearn",
                      model_type=ModelType.CLASSIFICATION, licence="MIT",
                      description="# Iris\n\nA **random forest** for [iris](https://example.com) flowers.")
    tag(model, "botany")
    RatingFactory(solution=model, stars=4)
    Solution.objects.filter(pk=model.pk).update(rating_avg=4.5, rating_count=12, download_count=1234,
                                                view_count=56)
    html = browse(client).content.decode()
    assert reverse("marketplace:model", args=[model.pk]) in html
    assert "Iris A random forest for iris flowers." in html and "**" not in html and "https://example.com" not in html
    for shown in ("Ada Lovelace", "sklearn", "Classification", "MIT", "botany", "4.5", "(12)", "1.2k", "56",
                  "Public Models"):
        assert shown in html, shown


def test_the_model_type_reads_as_its_label_on_the_card_filters_and_chips(client, catalogs):
    published(catalogs["public"], name="Prices", model_type=ModelType.REGRESSION)
    published(catalogs["public"], name="Sources", model_type=ModelType.DATA_SOURCE)
    html = browse(client, model_type=ModelType.DATA_SOURCE).content.decode()
    assert "Data source" in html and "Regression" in html  # the chip and card, the other filter value
    text = re.sub(r"<[^>]*>", " ", html.split("<main", 1)[1])  # what a reader sees: no attribute values
    assert not re.search(r"\b(DS|RG)\b", text)


def test_user_text_is_never_rendered_as_html(client, catalogs):
    published(catalogs["public"], name="<b>Bold</b> name", description="<script>alert(1)</script> &amp; <img src=x>")
    html = browse(client).content.decode()
    assert "<script>alert(1)</script>" not in html and "<b>Bold</b>" not in html and "<img src=x" not in html
    assert "&lt;b&gt;Bold&lt;/b&gt; name" in html


def test_a_new_site_invites_a_signed_in_user_to_onboard_a_model(client_for, owner, catalogs):
    html = browse(client_for(owner)).content.decode()
    assert "No models here yet" in html and reverse("onboarding:new") in html


def test_a_new_site_invites_a_visitor_to_sign_in_or_up(client, catalogs, settings):
    html = browse(client).content.decode()
    empty = html[html.index("No models here yet"):]
    assert reverse("accounts:login") in empty and reverse("accounts:signup") in empty
    settings.ACUMOS_SIGNUP_OPEN = False  # a site that takes no sign-ups offers none
    empty = browse(client).content.decode()
    assert reverse("accounts:signup") not in empty[empty.index("No models here yet"):]


def test_my_models_is_in_the_top_bar_of_signed_in_users_only(client, client_for, owner, catalogs):
    assert reverse("marketplace:my-models") not in browse(client).content.decode()
    assert reverse("marketplace:my-models") in browse(client_for(owner)).content.decode()


def test_no_match_explains_and_offers_to_clear_the_filters(client, catalogs):
    published(catalogs["public"], name="Iris", toolkit="sklearn")
    response = browse(client, q="zebra", toolkit="sklearn")
    html = response.content.decode()
    assert "No models match “zebra” with this filter" in html
    assert 'href="/?q=zebra"' in html and "Clear filters" in html and "Clear the search" in html


WALK_DESCRIPTION = ("# Iris classifier\n\nA **10-tree RandomForest** trained on the classic iris data.\n\n"
                    "| field | unit |\n|---|---|\n| sepal_length | cm |\n\n```python\nimport requests\n```\n")


def test_plain_excerpt_keeps_the_words_and_drops_the_markdown():
    text = ("## Title\n\n> quoted *emphasis* and `code`\n\n- item [link](http://x)\n![alt](img.png)\n\n"
            "```\ncode block\n```\n\n| a | b |\n|:--|--:|\n| snake_case | cell |\n\n---\nR&amp;D")
    assert plain_excerpt(text) == "Title quoted emphasis and code item link alt a b snake_case cell R&D"
    assert plain_excerpt("") == ""


def test_the_walks_description_leaves_no_markdown_on_the_card():
    # The newcomer's card read "Iris classifier A 10-tree… field unit ------…" (walk, step 12).
    assert plain_excerpt(WALK_DESCRIPTION) == (
        "Iris classifier A 10-tree RandomForest trained on the classic iris data. field unit sepal_length cm")


def test_plain_excerpt_is_cut_at_a_word_end_with_an_ellipsis():
    long = "a model " + "that predicts things " * 20
    cut = plain_excerpt(long)
    assert len(cut) <= 180 and cut.endswith("…")
    assert long.startswith(cut[:-1]) and long[len(cut) - 1] == " "  # ends at a word's end
    assert plain_excerpt("word " * 100).endswith("word…")
    assert plain_excerpt("x" * 300) == "x" * 179 + "…"  # one word longer than a card: cut inside it


def test_search_cards_show_the_description_without_markdown(client, catalogs):
    published(catalogs["public"], name="Iris", description=WALK_DESCRIPTION)
    html = browse(client, q="iri").content.decode()
    assert "field unit sepal_length cm" in html
    for residue in ("|---|", "---", "**", "# Iris", "```", "import requests"):
        assert residue not in html.split('class="model-card__excerpt"')[1].split("</p>")[0]


@pytest.mark.parametrize(("number", "shown"), [(0, "0"), (999, "999"), (1000, "1k"), (1234, "1.2k"),
                                               (999_960, "1M"), (2_500_000, "2.5M"), (3_000_000_000, "3B")])
def test_compact_number(number, shown):
    assert compact_number(number) == shown


# ---------------------------------------------------------------- the layout

def test_the_bell_shows_the_unread_count_for_signed_in_users(client, client_for, owner, catalogs):
    for number in range(3):
        services.notify(owner, NotificationKind.COMMENT, f"Comment {number}")
    services.mark_read(owner, [services.notify(owner, NotificationKind.COMMENT, "Already read").pk])
    html = browse(client_for(owner)).content.decode()
    assert 'aria-label="Notifications, 3 unread"' in html
    assert 'class="bell__badge" aria-hidden="true">3<' in html
    assert f'hx-get="{reverse("marketplace:notifications-bell")}"' in html
    assert 'hx-trigger="every 30s, notifications-read from:body"' in html  # refreshed at once on "mark read"
    assert "bell" not in browse(client).content.decode().split("<main")[0]


def test_the_bell_says_so_when_nothing_is_unread_and_caps_its_badge(client_for, owner, catalogs):
    assert 'aria-label="Notifications, none unread"' in browse(client_for(owner)).content.decode()
    for number in range(120):
        services.notify(owner, NotificationKind.COMMENT, f"Comment {number}")
    html = browse(client_for(owner)).content.decode()
    assert 'aria-label="Notifications, 120 unread"' in html and ">99+<" in html


def test_the_site_name_comes_from_the_site_settings(client, catalogs, settings):
    settings.SITE_NAME = "Fallback Hub"
    assert "Fallback Hub" in browse(client).content.decode()
    SiteSettings.objects.update_or_create(pk=1, defaults={"site_name": "Model Garden"})  # forgets the cache
    html = browse(client).content.decode()
    assert '<span class="brand__name">Model Garden</span>' in html and "<title>Models · Model Garden" in html


def test_the_site_name_is_cached_until_forgotten(client, catalogs):
    SiteSettings.objects.update_or_create(pk=1, defaults={"site_name": "Cached Name"})
    browse(client)
    with CaptureQueriesContext(connection) as queries:
        browse(client)
    assert not [query for query in queries if "sitesettings" in query["sql"]]
    SiteSettings.objects.filter(pk=1).update(site_name="Changed Quietly")  # no signal: still cached
    assert current_site().name == "Cached Name"
    forget_site()
    assert current_site().name == "Changed Quietly"


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
       b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
# The logo view is routed by the project's urls.py; these tests route it themselves.
urlpatterns = [path("site/logo/", site.logo, name="site-logo"), path("", include("acumos_portal.urls"))]


def _save_logo(content: bytes = PNG, name: str = "logo.png") -> SiteSettings:
    row = SiteSettings.current()
    row.logo.save(name, ContentFile(content))  # saves the row: the cache is forgotten
    return row


@pytest.mark.urls(__name__)
def test_the_logo_replaces_the_default_mark_and_is_served_safely(client, catalogs):
    _save_logo()
    html = browse(client).content.decode()
    url = current_site().logo_url
    assert url.startswith("/site/logo/?v=") and f'<img class="brand__logo" src="{url}"' in html
    assert "brand__mark" not in html
    response = client.get(url)
    assert response["Content-Type"] == "image/png" and b"".join(response.streaming_content) == PNG
    assert "sandbox" in response["Content-Security-Policy"] and response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.urls(__name__)
def test_no_logo_is_a_404(client, catalogs):
    assert client.get("/site/logo/").status_code == 404


def test_without_the_logo_route_the_storage_url_is_used(client, catalogs, monkeypatch):
    def unrouted(name, *args, **kwargs):
        raise NoReverseMatch(name)

    monkeypatch.setattr(site, "reverse", unrouted)
    _save_logo()
    assert current_site().logo_url.endswith("logo.png")


def test_a_blank_site_name_falls_back_to_the_setting(settings, catalogs):
    settings.SITE_NAME = "From Settings"
    SiteSettings.objects.update_or_create(pk=1, defaults={"site_name": "  "})
    assert current_site().name == "From Settings" and current_site().logo_url == ""


def test_the_navigation_depends_on_who_is_signed_in(client, client_for, owner, publisher, catalogs):
    manage = f'href="{reverse("marketplace:manage")}"'
    deployments = f'href="{reverse("deployment:list")}"'
    anonymous = browse(client).content.decode()
    assert manage not in anonymous and deployments not in anonymous and "Sign in" in anonymous
    signed_in = browse(client_for(owner)).content.decode()
    assert deployments in signed_in and manage not in signed_in and "Sign out" in signed_in
    assert manage in browse(client_for(publisher)).content.decode()


def test_the_brand_links_to_browse_and_marks_the_current_section(client, catalogs):
    html = browse(client).content.decode()
    assert '<a class="brand" href="/">' in html
    assert f'<a href="{BROWSE}" aria-current="page">' in html


def test_the_top_bar_search_is_on_every_page_but_browse(client_for, owner, catalogs):
    assert 'id="topsearch-q"' not in browse(client_for(owner)).content.decode()
    other_page = client_for(owner).get(reverse("marketplace:my-models")).content.decode()
    assert f'<form class="topsearch" role="search" method="get" action="{BROWSE}">' in other_page


# ---------------------------------------------------------------- queries do not grow with the data

def _fill(catalogs, count: int, start: int = 0) -> None:
    """Models with everything a card shows: an author each, tags, two catalogs, ratings, text."""
    raters = [UserFactory(username=f"rater{number}") for number in range(2)]
    for number in range(start, start + count):
        revision = published_revision(catalogs["public"], name=f"Search model {number}", toolkit=f"kit{number % 4}",
                                      description=f"Model number {number} for the search", licence="MIT")
        services.publish_directly(revision, catalogs["company"])
        tag(revision.solution, f"tag{number}", f"shared{number % 3}", "common")
        for rater in raters:
            RatingFactory(solution=revision.solution, user=rater, stars=3 + number % 3)


def _count_queries(client, params: dict) -> int:
    client.get(BROWSE, params)  # warm: the site's name is cached after the first page
    with CaptureQueriesContext(connection) as queries:
        response = client.get(BROWSE, params)
    assert response.status_code == 200 and response.context["cards"]
    return len(queries)


@pytest.mark.parametrize("persona", [None, "owner"])
@pytest.mark.parametrize("params", [
    {},
    {"q": "search model"},
    {"q": "model", "tag": "common", "sort": "rating", "view": "list", "toolkit": "kit1"},
    {"catalog": "company", "page": "2"},
], ids=["browse", "search", "search-with-filters", "catalog-page-2"])
def test_the_number_of_queries_does_not_grow_with_the_results(client_for, request, catalogs, persona, params):
    user = request.getfixturevalue(persona) if persona else None
    if user:
        services.notify(user, NotificationKind.COMMENT, "Something happened")
    if params.get("catalog"):
        params = {**params, "catalog": str(catalogs[params["catalog"]].pk)}
    client = client_for(user)
    _fill(catalogs, 2)
    few = _count_queries(client, {**params, "page": "1"} if "page" in params else params)
    _fill(catalogs, 28, start=2)
    many = _count_queries(client, params)
    assert few == many
    assert many <= 15  # 9 for a visitor: count, rows, tags, catalogs, five facets; then session, user, bell
