"""Reads, and the one place that decides who may see what.

A solution is private (its owner, the people it is shared with, admins) until one of its revisions
is published to a catalog: public catalogs are seen by anyone, restricted ones by signed-in users.
Publishers also see what waits for their review. Deleted solutions are seen only in their owner's
"deleted" list. Every list, page, search, download and API call goes through these functions;
whatever they do not return is a 404."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.crypto import salted_hmac

from acumos_portal.accounts.choices import Role
from marketplace.choices import (
    ALWAYS_ON_NOTIFICATIONS,
    NOTIFICATION_GROUPS,
    Audience,
    CatalogAccess,
    ModelType,
    NotificationKind,
    RequestStatus,
    SortOrder,
)
from marketplace.models import (
    Artifact,
    Catalog,
    Comment,
    Favorite,
    Notification,
    NotificationPreference,
    Publication,
    PublishRequest,
    Rating,
    Revision,
    Solution,
    SolutionShare,
    Tag,
)

T = TypeVar("T")
SEARCH_CONFIG = "english"
GENERATION_KEY = "marketplace:generation"
PAGE_SIZE = 24
REVIEWS_SHOWN = 20  # on a model page
FACET_LIMIT = 12


# ---------------------------------------------------------------- who is asking

def signed_in(user) -> bool:
    return bool(user and user.is_authenticated)


def is_admin(user) -> bool:
    return signed_in(user) and user.is_portal_admin


def is_publisher(user) -> bool:
    return signed_in(user) and (user.has_role(Role.PUBLISHER) or user.is_portal_admin)


def least_audience(user) -> int:
    """The narrowest published audience this user belongs to."""
    return Audience.SIGNED_IN if signed_in(user) else Audience.ANYONE


def _accesses(user) -> list[str]:
    return [CatalogAccess.PUBLIC, CatalogAccess.RESTRICTED] if signed_in(user) else [CatalogAccess.PUBLIC]


def _shared_with(user) -> QuerySet:
    return SolutionShare.objects.filter(user=user).values("solution_id")


def _pending_for_review() -> QuerySet:
    return PublishRequest.objects.filter(status=RequestStatus.PENDING)


# ---------------------------------------------------------------- visibility

def visible_catalogs(user) -> QuerySet[Catalog]:
    return Catalog.objects.filter(access__in=_accesses(user))


def visible_solutions(user) -> QuerySet[Solution]:
    """The live solutions `user` may see (not the deleted ones: see deleted_solutions)."""
    live = Solution.objects.filter(deleted_at__isnull=True).select_related("owner")
    if is_admin(user):
        return live
    seen = Q(audience__gte=least_audience(user))
    if signed_in(user):
        seen |= Q(owner=user) | Q(pk__in=_shared_with(user))
    if is_publisher(user):
        seen |= Exists(_pending_for_review().filter(solution=OuterRef("pk")))
    return live.filter(seen)


def managed_solutions(user, *, deleted: bool = False) -> QuerySet[Solution]:
    """What `user` owns or co-owns (admins: everything), live or deleted."""
    if not signed_in(user):
        return Solution.objects.none()
    solutions = Solution.objects.filter(deleted_at__isnull=not deleted).select_related("owner")
    if is_admin(user):
        return solutions
    return solutions.filter(Q(owner=user) | Q(pk__in=_shared_with(user)))


def owned_solutions(user, *, deleted: bool = False) -> QuerySet[Solution]:
    """What `user` owns or co-owns, admins included: My Models is their own shelf, not the site's."""
    if not signed_in(user):
        return Solution.objects.none()
    return (Solution.objects.filter(deleted_at__isnull=not deleted).select_related("owner")
            .filter(Q(owner=user) | Q(pk__in=_shared_with(user))))


def deleted_solutions(user) -> QuerySet[Solution]:
    return managed_solutions(user, deleted=True)


def visible_revisions(user) -> QuerySet[Revision]:
    revisions = Revision.objects.filter(solution__deleted_at__isnull=True).select_related(
        "solution", "solution__owner")
    if is_admin(user):
        return revisions
    # Correlated EXISTS, not IN: an IN list of every published revision is read whole for one row.
    seen = Exists(Publication.objects.filter(revision=OuterRef("pk"), catalog__access__in=_accesses(user)))
    if signed_in(user):
        seen |= Q(solution__owner=user) | Q(solution__in=_shared_with(user))
    if is_publisher(user):
        seen |= Exists(_pending_for_review().filter(revision=OuterRef("pk")))
    return revisions.filter(seen)


def visible_artifacts(user) -> QuerySet[Artifact]:
    return Artifact.objects.filter(revision__in=visible_revisions(user)).select_related("blob", "revision")


# ---------------------------------------------------------------- what a user may do

def can_change_solution(user, solution: Solution, *, marks: ViewerMarks | None = None) -> bool:
    """Owner, co-owner or admin: edit, publish, share, deploy. `marks` (viewer_marks) when the
    caller has them: no query then."""
    if not signed_in(user):
        return False
    return is_admin(user) or owns(user, solution, marks=marks)


def is_imported(solution: Solution) -> bool:
    """Imported from a peer (federation): its content is read-only here."""
    return bool(solution.imported_from)


def can_delete_solution(user, solution: Solution) -> bool:
    return signed_in(user) and (solution.owner_id == user.pk or is_admin(user))


def can_review(user, request: PublishRequest) -> bool:
    """Publishers review requests, never for a model they own or co-own."""
    if not (is_publisher(user) and request.is_pending):
        return False
    return not (request.solution.owner_id == user.pk
                or SolutionShare.objects.filter(solution_id=request.solution_id, user=user).exists())


def owners_of(solution: Solution) -> list:
    """The owner and the co-owners."""
    co_owners = [share.user for share in SolutionShare.objects.filter(solution=solution).select_related("user")]
    return [solution.owner, *co_owners]


def owns(user, solution: Solution, *, marks: ViewerMarks | None = None) -> bool:
    """The owner or a co-owner (an admin only if one of those)."""
    if not signed_in(user):
        return False
    if solution.owner_id == user.pk:
        return True
    return marks.co_owner if marks else SolutionShare.objects.filter(solution=solution, user=user).exists()


def visitor_key(user, client_address: str | None, user_agent: str = "") -> str:
    """Who is looking, for counting a model's views once per visitor: the account when signed in,
    otherwise the address and browser, hashed (the counter's keys need not hold an address)."""
    if signed_in(user):
        return f"user:{user.pk}"
    seen = f"{client_address or ''}|{user_agent[:300]}"
    # Keyed with the site's secret: whoever reads the cache cannot recover an address by trying them all.
    return "anonymous:" + salted_hmac("visitor", seen).hexdigest()[:24]


# ---------------------------------------------------------------- what the viewer did to a model

@dataclass(frozen=True)
class ViewerMarks:
    """The signed-in viewer's own relation to one solution."""

    co_owner: bool = False
    favorite: bool = False
    rating: Rating | None = None  # stars and review only


NO_MARKS = ViewerMarks()


def with_viewer_marks(solutions: QuerySet[Solution], user) -> QuerySet[Solution]:
    """Each solution with the viewer's marks read in the same query (viewer_marks turns them into
    ViewerMarks): the model page asked three more queries for them."""
    if not signed_in(user):
        return solutions
    mine = {"solution": OuterRef("pk"), "user": user}
    rating = Rating.objects.filter(**mine)
    return solutions.annotate(
        viewer_co_owner=Exists(SolutionShare.objects.filter(**mine)),
        viewer_favorite=Exists(Favorite.objects.filter(**mine)),
        viewer_stars=Subquery(rating.values("stars")[:1]),
        viewer_review=Subquery(rating.values("review")[:1]),
    )


def viewer_marks(user, solution: Solution) -> ViewerMarks:
    """From with_viewer_marks's annotations when the solution was read through it, else asked now.
    Annotations are what was true when it was read: an action that changes a mark reads again."""
    if not signed_in(user):
        return NO_MARKS
    if not hasattr(solution, "viewer_co_owner"):  # not read through with_viewer_marks
        solution = with_viewer_marks(Solution.objects.filter(pk=solution.pk), user).only("pk").get()
    stars = solution.viewer_stars
    return ViewerMarks(
        co_owner=solution.viewer_co_owner, favorite=solution.viewer_favorite,
        rating=Rating(solution_id=solution.pk, user=user, stars=stars, review=solution.viewer_review)
        if stars is not None else None)


def decorate_solutions(solutions: QuerySet, user, revisions: QuerySet | None = None) -> QuerySet[Solution]:
    """Everything the API's SolutionSerializer shows, in a constant number of queries however long the
    page. `revision_count` counts, and `listed_revisions` lists (newest first), `revisions` (default:
    those the user may see: an owner's unpublished versions to the owner, the published ones to others)."""
    revisions = revisions if revisions is not None else visible_revisions(user)
    revision_count = (revisions.filter(solution=OuterRef("pk")).order_by()
                      .values("solution").annotate(n=Count("pk")).values("n"))
    publications = Publication.objects.filter(catalog__in=visible_catalogs(user)).select_related("catalog")
    listed = revisions.select_related(None).only("pk", "solution_id", "version", "status", "created").order_by(
        "-created", "pk")
    return solutions.annotate(
        revision_count=Coalesce(Subquery(revision_count), 0),
        is_favorite=_is_favorite(user),
    ).prefetch_related(
        Prefetch("tags", queryset=Tag.objects.order_by("name")),
        Prefetch("publications", queryset=publications, to_attr="visible_publications"),
        Prefetch("revisions", queryset=listed, to_attr="listed_revisions"),
    )


def _is_favorite(user):
    if not signed_in(user):
        return Value(False)
    return Exists(Favorite.objects.filter(solution=OuterRef("pk"), user=user))


def can_delete_comment(user, comment: Comment) -> bool:
    """Its author, or an admin."""
    return signed_in(user) and (comment.author_id == user.pk or is_admin(user))


def can_take_part(user, solution: Solution) -> bool:
    """Rate, review, comment and favorite: any signed-in user who can see the solution."""
    return signed_in(user) and visible_solutions(user).filter(pk=solution.pk).exists()


# ---------------------------------------------------------------- publishing

def reviewable_requests(user) -> QuerySet[PublishRequest]:
    """What a publisher's queue shows: every request (pending first), none for their own models."""
    if not is_publisher(user):
        return PublishRequest.objects.none()
    own = Q(solution__owner=user) | Q(solution__in=_shared_with(user))
    return (PublishRequest.objects.exclude(own).filter(solution__deleted_at__isnull=True)
            .select_related("solution", "solution__owner", "revision", "catalog", "requested_by", "reviewed_by")
            .order_by(F("reviewed_at").desc(nulls_first=True), "-created"))


def requests_of(user) -> QuerySet[PublishRequest]:
    """The publish requests on the models `user` manages."""
    return (PublishRequest.objects.filter(solution__in=managed_solutions(user))
            .select_related("solution", "revision", "catalog", "reviewed_by"))


def publications_of(solution: Solution, user) -> QuerySet[Publication]:
    return (Publication.objects.filter(solution=solution, catalog__in=visible_catalogs(user))
            .select_related("catalog", "revision", "approved_by"))


# ---------------------------------------------------------------- browse and search

@dataclass
class SearchParams:
    q: str = ""
    model_type: str = ""
    toolkit: str = ""
    tag: str = ""
    catalog: str = ""
    licence: str = ""
    access: str = ""  # "open": no agreement needed; "agreement": one needed (an rtuRequired licence)
    sort: str = ""
    page: int = 1

    @property
    def active_filters(self) -> dict:
        names = ("model_type", "toolkit", "tag", "catalog", "licence", "access")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


def use_full_text() -> bool:
    return connection.vendor == "postgresql" and getattr(settings, "ACUMOS_FULL_TEXT", True)


_TERM = re.compile(r"\w+", re.UNICODE)


def search_terms(q: str) -> list[str]:
    return _TERM.findall(q.lower())[:10]


def matching_solutions(user, params: SearchParams) -> QuerySet[Solution]:
    """The visible solutions matching the query and filters, in no order: what the counts count."""
    # The search columns are the widest of a row and no list shows them.
    solutions = _filtered(visible_solutions(user), user, params).defer("search_text", "search_vector")
    terms = search_terms(params.q)
    if terms and use_full_text():
        return solutions.filter(search_vector=_search_query(terms))
    for term in terms:
        solutions = solutions.filter(search_text__icontains=term)
    return solutions


def search_solutions(user, params: SearchParams) -> QuerySet[Solution]:
    """The visible solutions matching the query and filters, in the order asked for.

    Ranked by relevance, the list holds the RANK_WINDOW most recently updated matches, best first
    (Elasticsearch's rescore window, with recency as the cheap first pass): scoring every match of
    a common word reads every one of them, a quarter of the table for "fraud" at 100,000 models,
    while the newest few hundred come off the recency index. Every other order lists every match."""
    matches = matching_solutions(user, params)
    if not is_ranked(params):
        return matches.order_by(*_ordering(params.sort, ranked=False))
    window = matches.order_by(*_ORDERINGS[SortOrder.RECENT], "id").values("pk")[:rank_window()]
    query = _search_query(search_terms(params.q))
    return (Solution.objects.filter(pk__in=window).select_related("owner").defer("search_text", "search_vector")
            .annotate(rank=SearchRank(F("search_vector"), query)).order_by(*_ordering(params.sort, ranked=True)))


def is_ranked(params: SearchParams) -> bool:
    """Whether the list is in order of relevance: a query, full text, and no other order asked for."""
    return bool(search_terms(params.q)) and use_full_text() and params.sort in ("", SortOrder.RELEVANCE)


def rank_window() -> int:
    return settings.ACUMOS_RANK_WINDOW


def listed_count(total: int, params: SearchParams) -> int:
    """How many of the `total` matches the list holds (see search_solutions)."""
    return min(total, rank_window()) if is_ranked(params) else total


def _search_query(terms: list[str]) -> SearchQuery:
    # Every word, each as a prefix: "iri" finds "iris" while it is being typed.
    return SearchQuery(" & ".join(f"{term}:*" for term in terms), search_type="raw", config=SEARCH_CONFIG)


ACCESS_FILTERS = {"open": False, "agreement": True}


def _filtered(solutions: QuerySet, user, params: SearchParams) -> QuerySet:
    if params.model_type:
        solutions = solutions.filter(model_type=params.model_type)
    if params.toolkit:
        solutions = solutions.filter(toolkit=params.toolkit)
    if params.licence:  # the whole expression, or one SPDX id inside it
        solutions = solutions.filter(Q(licence=params.licence) | Q(licence_ids__icontains=f" {params.licence} "))
    if params.access in ACCESS_FILTERS:
        solutions = solutions.filter(rtu_required=ACCESS_FILTERS[params.access])
    if params.tag:
        # By the tag's id, through EXISTS: a join on the tag's name hides from the planner how many
        # models carry it, and it then sorts them all instead of reading the sort order's index.
        tag_id = Tag.objects.filter(name=params.tag).values_list("pk", flat=True).first()
        tagged = Solution.tags.through.objects.filter(solution=OuterRef("pk"), tag_id=tag_id)
        solutions = solutions.filter(Exists(tagged)) if tag_id else solutions.none()
    if params.catalog:
        published = Publication.objects.filter(solution=OuterRef("pk"), catalog_id=params.catalog,
                                               catalog__access__in=_accesses(user))
        solutions = solutions.filter(Exists(published))
    return solutions


_ORDERINGS = {
    SortOrder.RECENT: ("-modified",),
    SortOrder.NAME: ("name",),
    SortOrder.RATING: ("-rating_avg", "-rating_count"),
    SortOrder.DOWNLOADS: ("-download_count",),
    SortOrder.VIEWS: ("-view_count",),
}


def _ordering(sort: str, ranked: bool) -> tuple:
    if ranked:
        return ("-rank", "-modified", "id")
    if sort == SortOrder.RELEVANCE:  # nothing to rank by (no words, or no full text): the newest first
        return ("-modified", "id")
    return (*_ORDERINGS.get(sort, _ORDERINGS[SortOrder.RECENT]), "id")


Facet = list[tuple[str, str, int]]  # (value, label, count), biggest first


_COLUMN_LABELS = {"model_type": dict(ModelType.choices), "toolkit": {}, "licence": {}}


def count_matches(user, params: SearchParams) -> Summary:
    """How many results, and for each filter its values as (value, label, count), counted among the
    results of the query and every other filter but its own (disjunctive facets, as shops have them):
    with a toolkit chosen, the other toolkits still show, each with the number of results it would
    give instead."""
    matching = matching_solutions(user, params)

    def among(name: str) -> QuerySet[Solution]:
        return matching_solutions(user, replace(params, **{name: ""})) if getattr(params, name) else matching

    if search_terms(params.q):  # finding the matches is the dear part: once for the count and columns
        total, facets = _counted_once(matching, [name for name in _COLUMN_LABELS if not getattr(params, name)])
    else:  # each count reads the covering index (solution_counts) alone, in parallel
        total, facets = matching.count(), {}
    for name in _COLUMN_LABELS.keys() - facets.keys():
        facets[name] = _column_facet(among(name), name)
    for name, labels in _COLUMN_LABELS.items():
        facets[name] = [(value, labels.get(value, value), n) for value, _, n in facets[name]]
    facets["tag"] = _tag_facet(among("tag"))
    facets["catalog"] = _catalog_facet(among("catalog"), user)
    for name in ("toolkit", "licence", "tag"):  # the chosen value shows, even when not among the biggest
        chosen = getattr(params, name)
        if chosen and all(value != chosen for value, _, _ in facets[name]):
            facets[name].append((chosen, chosen, total))
    return Summary(total=total, facets=facets)


def _counted_once(solutions: QuerySet[Solution], columns: list[str]) -> tuple[int, dict[str, Facet]]:
    """How many `solutions` there are, and each column's values among them, biggest first, from one
    statement: the matches are a common table expression, which PostgreSQL reads once for all its
    uses. A common word's matches were read four times (the count, then a query per column)."""
    try:
        sql, params = solutions.order_by().values("pk", *columns).query.sql_with_params()
    except EmptyResultSet:  # a filter that matches nothing (an unknown tag): no statement at all
        return 0, {column: [] for column in columns}
    quoted = {column: connection.ops.quote_name(column) for column in columns}  # our own names, not input
    counts = ["SELECT '' AS facet, '' AS value, COUNT(*) AS n FROM matches"] + [
        f"SELECT '{column}', {name}, COUNT(*) FROM matches WHERE {name} <> '' GROUP BY {name}"
        for column, name in quoted.items()]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH matches AS ({sql}) " + " UNION ALL ".join(counts), params)
        rows = cursor.fetchall()
    total = next(n for facet, _, n in rows if facet == "")
    return total, {column: sorted(((value, value, n) for facet, value, n in rows if facet == column),
                                  key=lambda row: (-row[2], row[0]))[:FACET_LIMIT] for column in columns}


def _tag_facet(solutions: QuerySet[Solution]) -> Facet:
    rows = (Tag.objects.filter(solutions__in=solutions.order_by().values("pk")).values("name")
            .annotate(n=Count("solutions")).order_by("-n", "name")[:FACET_LIMIT])
    return [(row["name"], row["name"], row["n"]) for row in rows]


def _catalog_facet(solutions: QuerySet[Solution], user) -> Facet:
    rows = (Publication.objects.filter(solution__in=solutions.order_by().values("pk"),
                                       catalog__access__in=_accesses(user))
            .values("catalog_id", "catalog__name").annotate(n=Count("solution", distinct=True))
            .order_by("-n", "catalog__name"))
    return [(str(row["catalog_id"]), row["catalog__name"], row["n"]) for row in rows]


@dataclass
class Summary:
    """What a result list shows about all its results: how many, and the filter counts."""

    total: int
    facets: dict


def summary_of(user, params: SearchParams) -> Summary:
    """The count and facet counts, cached for SUMMARY_SECONDS per audience and query. They scan
    every matching row, while a page reads only 24; any change to what is listed or who may see
    it starts a new generation, so a cached summary never outlives the data it counts."""
    key = _summary_key(user, params)
    found = cache.get(key) if key else None
    if found is None:
        found = count_matches(user, params)
        if key:
            cache.set(key, found, settings.ACUMOS_SUMMARY_SECONDS)
    return found


def _summary_key(user, params: SearchParams) -> str | None:
    if not settings.ACUMOS_SUMMARY_SECONDS:
        return None
    generation = cache.get(GENERATION_KEY, 0)
    asked = repr((search_terms(params.q), sorted(params.active_filters.items())))
    digest = hashlib.sha256(f"{_scope(user, generation)}|{asked}".encode()).hexdigest()[:32]
    return f"marketplace:summary:{generation}:{digest}"


def _scope(user, generation: int) -> str:
    """Who sees the same list: anyone, any member, or (owning private models, reviewing) one user."""
    if not signed_in(user):
        return "anyone"
    if is_admin(user):
        return "admin"
    if is_publisher(user) or _owns_private(user, generation):
        return f"user:{user.pk}"
    return "members"


def _owns_private(user, generation: int) -> bool:
    """Whether the user owns or co-owns a model no catalog lists; kept for the generation, which
    every new, shared, published or deleted model moves on (services.catalog_changed)."""
    key = f"marketplace:owns-private:{generation}:{user.pk}"
    found = cache.get(key)
    if found is None:
        found = Solution.objects.filter(Q(owner=user) | Q(pk__in=_shared_with(user)),
                                        audience=Audience.PRIVATE, deleted_at__isnull=True).exists()
        cache.set(key, found, settings.ACUMOS_SUMMARY_SECONDS)
    return found


def _column_facet(solutions: QuerySet, column: str) -> Facet:
    rows = (solutions.order_by().exclude(**{column: ""}).values(column).annotate(n=Count("pk"))
            .order_by("-n", column)[:FACET_LIMIT])
    return [(row[column], row[column], row["n"]) for row in rows]


# ---------------------------------------------------------------- a model page

def latest_visible_revision(user, solution: Solution) -> Revision | None:
    return visible_revisions(user).filter(solution=solution).order_by("-created").first()


def ratings_of(solution: Solution) -> QuerySet[Rating]:
    return Rating.objects.filter(solution=solution).select_related("user")


@dataclass
class PageParts:
    """What the model page shows alike to everyone who may see the model."""

    tags: list[Tag]
    stars: dict[int, int]  # stars -> how many gave that many
    reviews: list[Rating]  # the latest REVIEWS_SHOWN
    comments: list[Comment]  # all of them, oldest first (comment_threads arranges them)
    favorites: int


def page_parts(solution: Solution) -> PageParts:
    """Five queries, and most of a model page's time, become one cache read (page_cached)."""
    return page_cached(solution, "shared", lambda: PageParts(
        tags=list(solution.tags.all()),
        stars=dict(Rating.objects.filter(solution=solution).values_list("stars").annotate(n=Count("pk")).order_by()),
        reviews=list(ratings_of(solution).order_by("-modified").defer(*_unshown("user"))[:REVIEWS_SHOWN]),
        comments=list(Comment.objects.filter(solution=solution).select_related("author").defer(*_unshown("author"))
                      .order_by("created")),
        favorites=Favorite.objects.filter(solution=solution).count()))


def _unshown(person: str) -> list[str]:
    """What a page does not show of the person behind a rating or comment: kept out of the cache
    (no password hash in Redis), and out of the query."""
    shown = {"id", "username", "first_name", "last_name"}
    return [f"{person}__{field.name}" for field in get_user_model()._meta.concrete_fields
            if field.name not in shown]


def page_cached(solution: Solution, part: str, build: Callable[[], T], settled: Callable[[T], bool] | None = None) -> T:
    """`build()`, cached under the solution's page_version, which every write to what the model page
    shows alike moves on (marketplace.receivers), for at most ACUMOS_PAGE_SECONDS: how long a renamed
    author may keep the old name there. A value `settled` does not approve of is not kept."""
    if not settings.ACUMOS_PAGE_SECONDS:
        return build()
    key = f"marketplace:page:{solution.pk}:{solution.page_version}:{part}"
    found = cache.get(key)
    if found is None:
        found = build()
        if settled is None or settled(found):
            cache.set(key, found, settings.ACUMOS_PAGE_SECONDS)
    return found


def comment_threads(solution: Solution, comments: list[Comment] | None = None) -> list[Comment]:
    """Top-level comments, each with `.thread_replies` in order: one query for any depth (none when
    the comments, oldest first, are given)."""
    if comments is None:
        comments = list(Comment.objects.filter(solution=solution).select_related("author").order_by("created"))
    by_parent: dict[int | None, list[Comment]] = {}
    for comment in comments:
        by_parent.setdefault(comment.parent_id, []).append(comment)
    for comment in comments:
        comment.thread_replies = by_parent.get(comment.pk, [])
    return by_parent.get(None, [])


# ---------------------------------------------------------------- notifications

def notifications_of(user) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user) if signed_in(user) else Notification.objects.none()


@dataclass(frozen=True)
class NotificationChoice:
    """One kind of notification as its settings show it."""

    kind: str
    label: str  # its name in the list of notifications ("New comment")
    description: str  # what it is about, in a reader's words
    group: str
    enabled: bool
    always_on: bool


def notification_choices(user) -> list[NotificationChoice]:
    """Every kind the user may be told of, grouped in the settings' order, with the user's choice (on
    when never chosen). Publish requests only go to publishers and admins: others are not asked."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "enabled")) if signed_in(
        user) else {}
    reviews = is_publisher(user)
    return [NotificationChoice(kind=kind, label=NotificationKind(kind).label, description=description, group=group,
                               always_on=kind in ALWAYS_ON_NOTIFICATIONS,
                               enabled=kind in ALWAYS_ON_NOTIFICATIONS or chosen.get(kind, True))
            for group, kinds in NOTIFICATION_GROUPS for kind, description in kinds
            if reviews or kind != NotificationKind.PUBLISH_REQUESTED]


def wants_notification(user, kind: str) -> bool:
    """Whether `user` hears of this kind of event: yes unless they turned it off (and it may be)."""
    if kind in ALWAYS_ON_NOTIFICATIONS:
        return True
    return not NotificationPreference.objects.filter(user=user, kind=kind, enabled=False).exists()


UNREAD_SECONDS = 60  # at most; services.notify and mark_read forget it at once


def unread_count(user) -> int:
    """The bell's number, asked by every signed-in page and every poll: cached per user."""
    if not signed_in(user):
        return 0
    count = cache.get(unread_key(user.pk))
    if count is None:
        count = notifications_of(user).filter(read_at__isnull=True).count()
        cache.set(unread_key(user.pk), count, UNREAD_SECONDS)
    return count


def unread_key(user_id: int) -> str:
    return f"marketplace:unread:{user_id}"
