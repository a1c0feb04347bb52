"""Browse and search: the marketplace home. Public: anonymous visitors see the public catalogs' models.

Everything shown comes from selectors.search_solutions and selectors.summary_of, so the page costs
the same number of queries whatever the number of results, tags, catalogs or ratings: a count, the
page's rows, their tags, their catalogs and one query per filter. The addresses the page links to are
made here, once each, rather than by template tags per link: the page stays cheap to draw."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.http import QueryDict
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from acumos_portal.api.refusals import Refused
from acumos_portal.htmx import is_htmx
from licensing import profiles
from marketplace import markdown, selectors
from marketplace.choices import ModelType, SortOrder
from marketplace.models import Catalog, Publication, Solution

EXCERPT_CHARS = 180
TEXT_PARAM_CHARS = 100
QUERY_CHARS = 200
VIEWS = ("grid", "list")
JUST_NOW = timedelta(minutes=1)
# The sidebar's sections, in the order shown.
FACETS = (("catalog", "Catalog"), ("model_type", "Model type"), ("toolkit", "Toolkit"),
          ("tag", "Tags"), ("licence", "Licence"), ("access", "Access"))
# The parameters a link keeps, in the order they appear in an address.
KEPT = ("q", "model_type", "toolkit", "tag", "catalog", "licence", "access", "sort", "view")
# The Access filter's values (selectors.ACCESS_FILTERS), as people read them.
ACCESS_LABELS = {"open": "Open", "agreement": "Needs an agreement"}


@require_GET
@vary_on_headers("HX-Request")
def browse(request):
    catalog = chosen_catalog(request.GET, request.user)
    params = search_params(request.GET, catalog)
    results = selectors.search_solutions(request.user, params)
    summary = selectors.summary_of(request.user, params)
    listed = selectors.listed_count(summary.total, params)
    page = paginate(results.prefetch_related("tags"), listed, request.GET.get("page"))
    params.page = page.number
    view = request.GET.get("view") if request.GET.get("view") in VIEWS else VIEWS[0]
    links = Links(params, view)
    context = {
        "params": params,
        "view": view,
        "page": page,
        "total": summary.total,
        "ranked_newest": listed if listed < summary.total else 0,
        "recent_url": links.to(sort=SortOrder.RECENT, page=""),
        "pages": links.pages(page),
        "cards": cards_of(page, request.user, links),
        "facets": facet_sections(sidebar_counts(summary, params), params, links),
        "chips": chips_of(params, catalog, links),
        "sort_options": sort_options(params),
        "form_fields": [(name, value) for name, value in links.query.items() if name not in ("q", "sort")],
        "clear_filters_url": links.to(**dict.fromkeys(params.active_filters, "")),
        "layout_urls": {name: links.to(view="" if name == VIEWS[0] else name, page=links.page_param(page.number))
                        for name in VIEWS},
        "is_htmx": is_htmx(request),  # htmx swaps only the results
    }
    template = "marketplace/_results.html" if context["is_htmx"] else "marketplace/browse.html"
    return render(request, template, context)


def paginate(results, total: int, number) -> Page:
    """A page of `results`, whose count is known already (selectors.summary_of)."""
    paginator = Paginator(results, selectors.PAGE_SIZE)
    paginator.__dict__["count"] = total  # Paginator.count is a cached_property: no COUNT query
    return paginator.get_page(number)


# ---------------------------------------------------------------- reading the query string

def search_params(query: QueryDict, catalog: Catalog | None = None) -> selectors.SearchParams:
    """The query string as search parameters; a value that makes no sense is dropped, never a 500.
    `catalog` is the one chosen_catalog found (its id is checked there)."""
    return selectors.SearchParams(
        q=_text(query, "q", QUERY_CHARS),
        model_type=_choice(query, "model_type", ModelType.values),
        toolkit=_text(query, "toolkit"),
        tag=_text(query, "tag"),
        catalog=str(catalog.pk) if catalog else "",
        licence=_text(query, "licence"),
        access=_choice(query, "access", list(selectors.ACCESS_FILTERS)),
        sort=_choice(query, "sort", SortOrder.values),
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(query: QueryDict, name: str, limit: int = TEXT_PARAM_CHARS) -> str:
    """Trimmed, one line, no control characters (PostgreSQL refuses NUL in a query)."""
    return " ".join(_CONTROL.sub(" ", query.get(name, "")).split())[:limit]


def _choice(query: QueryDict, name: str, allowed: list[str]) -> str:
    value = query.get(name, "")
    return value if value in allowed else ""


def chosen_catalog(query: QueryDict, user) -> Catalog | None:
    """The catalog to filter on, if the user may see it; anything else (not a uuid, unknown,
    restricted for this user) is ignored, as if no catalog had been chosen."""
    try:
        wanted = uuid.UUID(query.get("catalog", ""))
    except ValueError:
        return None
    return selectors.visible_catalogs(user).filter(pk=wanted).first()


# ---------------------------------------------------------------- links

class Links:
    """The addresses this page links to: the current results (cleaned parameters, no page: a new
    filter starts on page 1) with one thing changed."""

    def __init__(self, params: selectors.SearchParams, view: str):
        values = {name: getattr(params, name, "") for name in KEPT}
        values["view"] = "" if view == VIEWS[0] else view
        self.query = {name: value for name, value in values.items() if value}
        self.base = reverse("marketplace:browse")
        self._made: dict[tuple, str] = {}

    def to(self, **changes: str) -> str:
        """A value sets a parameter, an empty one removes it."""
        key = tuple(sorted(changes.items()))
        if key not in self._made:  # the same tag or catalog shows on many cards
            encoded = urlencode({name: value for name, value in {**self.query, **changes}.items() if value})
            self._made[key] = self.base + (f"?{encoded}" if encoded else "")
        return self._made[key]

    @staticmethod
    def page_param(number: int) -> str:
        return str(number) if number > 1 else ""

    def pages(self, page: Page) -> dict:
        """Previous, next and the numbered pages (with gaps) as addresses; None where there is none."""
        numbers = page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)
        return {
            "previous": self.to(page=self.page_param(page.number - 1)) if page.has_previous() else None,
            "next": self.to(page=self.page_param(page.number + 1)) if page.has_next() else None,
            "numbers": [(number, None if number == page.paginator.ELLIPSIS else self.to(page=self.page_param(number)))
                        for number in numbers],
        }


# ---------------------------------------------------------------- what the page shows

@dataclass
class Card:
    """One result, with what its card shows beyond the solution's own fields."""

    solution: Solution
    url: str
    excerpt: str
    tags: list[tuple[str, str]] = field(default_factory=list)  # (name, filter address)
    catalogs: list[tuple[str, str]] = field(default_factory=list)  # (name, filter address)

    @property
    def author(self) -> str:
        return self.solution.owner.get_full_name() or self.solution.owner.username

    @property
    def rating(self) -> str:
        return f"{self.solution.rating_avg:.1f}"

    @property
    def modified(self) -> str:
        return self.solution.modified.isoformat()

    @property
    def updated(self) -> str:
        """"just now", "5 minutes ago", "3 days ago"."""
        if timezone.now() - self.solution.modified < JUST_NOW:
            return "just now"
        return timesince(self.solution.modified, timezone.now(), depth=1) + " ago"

    @property
    def downloads(self) -> str:
        return compact_number(self.solution.download_count)

    @property
    def views(self) -> str:
        return compact_number(self.solution.view_count)


def cards_of(page: Page, user, links: Links) -> list[Card]:
    solutions = list(page.object_list)
    catalogs = catalogs_by_solution(user, [solution.pk for solution in solutions])
    return [Card(solution=solution, url=reverse("marketplace:model", args=[solution.pk]),
                 excerpt=plain_excerpt(solution.description),
                 tags=[(tag.name, links.to(tag=tag.name)) for tag in solution.tags.all()],
                 catalogs=[(name, links.to(catalog=pk)) for pk, name in catalogs.get(solution.pk, [])])
            for solution in solutions]


def catalogs_by_solution(user, solution_ids: list) -> dict:
    """The visible catalogs each solution is published in, as (id, name): one query for a page."""
    if not solution_ids:
        return {}
    rows = (Publication.objects.filter(solution_id__in=solution_ids, catalog__in=selectors.visible_catalogs(user))
            .values_list("solution_id", "catalog_id", "catalog__name").order_by("catalog__name").distinct())
    found: dict = {}
    for solution_id, catalog_id, name in rows:
        found.setdefault(solution_id, []).append((str(catalog_id), name))
    return found


def sidebar_counts(summary: selectors.Summary, params: selectors.SearchParams) -> dict:
    """The summary's counts as the sidebar shows them: licences per SPDX id, and the Access filter."""
    return {**summary.facets, "licence": licence_id_facet(summary.facets["licence"], params.licence, summary.total),
            "access": [(value, label, None) for value, label in ACCESS_LABELS.items()]}


def licence_id_facet(expressions: selectors.Facet, chosen: str, total: int) -> selectors.Facet:
    """Licences by SPDX id, from the (cached) counts per expression: a model under "Apache-2.0 OR MIT"
    counts under Apache-2.0 and under MIT, as the filter finds it under either. Counted among the
    FACET_LIMIT most common expressions the summary keeps; the chosen id's count is the results' own."""
    counts: dict[str, int] = {}
    for value, _, n in expressions:
        for licence_id in licence_ids_of(value):
            counts[licence_id] = counts.get(licence_id, 0) + n
    if chosen:
        counts[chosen] = total
    biggest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:selectors.FACET_LIMIT]
    if chosen and all(value != chosen for value, _ in biggest):
        biggest.append((chosen, total))
    return [(value, value, n) for value, n in biggest]


@lru_cache(maxsize=1024)
def licence_ids_of(label: str) -> tuple[str, ...]:
    """The SPDX ids in a solution's licence label; a label that is no SPDX expression (an old upload's
    keyword, "Company B Proprietary") is one value of its own."""
    try:
        if profiles.canonical_spdx(label) == label:
            return tuple(profiles.spdx_ids(label))
    except Refused:
        pass
    return (label,)


def facet_sections(counts: dict, params: selectors.SearchParams, links: Links) -> list[dict]:
    """The sidebar: each filter with its values among the results. A value links to the results
    narrowed to it; the chosen one links back to the results without it."""
    sections = []
    for name, title in FACETS:
        chosen = getattr(params, name)
        values = [{"value": value, "label": label, "count": count, "chosen": value == chosen,
                   "url": links.to(**{name: "" if value == chosen else value})}
                  for value, label, count in counts[name]]
        if values:
            sections.append({"name": name, "title": title, "values": values, "chosen": chosen})
    return sections


def chips_of(params: selectors.SearchParams, catalog: Catalog | None, links: Links) -> list[dict]:
    """The active filters, each with a link that removes it, labelled as a reader knows them."""
    titles = dict(FACETS)
    labels = {"model_type": ModelType(params.model_type).label if params.model_type else "",
              "catalog": catalog.name if catalog else "", "access": ACCESS_LABELS.get(params.access, "")}
    return [{"name": name, "title": titles[name], "label": labels.get(name) or value, "url": links.to(**{name: ""})}
            for name, value in params.active_filters.items()]


def sort_options(params: selectors.SearchParams) -> list[tuple[str, str]]:
    """The sort menu. Its first choice, the default, has no value: "best match" once there is a query,
    "most recent" without one; so typing a query after browsing by date ranks by relevance."""
    default = SortOrder.RELEVANCE if selectors.search_terms(params.q) else SortOrder.RECENT
    others = [(order.value, order.label) for order in SortOrder if order not in (default, SortOrder.RELEVANCE)]
    return [("", default.label), *others]


# ---------------------------------------------------------------- text

def plain_excerpt(description: str, limit: int = EXCERPT_CHARS) -> str:
    """A card's line of the description: its words without Markdown, cut at a word's end."""
    return markdown.excerpt(description, limit)


def compact_number(number: int) -> str:
    """1234 -> 1.2k, 2500000 -> 2.5M: what fits a card."""
    value, suffix = float(number), ""
    for bigger in ("k", "M", "B"):
        if round(value, 1) < 1000:
            break
        value, suffix = value / 1000, bigger
    return f"{value:.1f}".removesuffix(".0") + suffix if suffix else str(number)


urlpatterns = [path("", browse, name="browse")]
