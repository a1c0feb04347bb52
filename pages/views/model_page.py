"""The model page: what a model is, how to call it, what people think of it; and what its owners
do on it (edit, publish, share, delete).

Anyone sees a model that selectors.visible_solutions lets them see; anything else is a 404. Every
action is a POST here that calls marketplace.services: a refusal comes back next to the field it
names (the page, or the htmx partial, drawn again with the form) or else as a message."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import get_template
from django.urls import path, reverse
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.accounts.clientip import client_ip
from acumos_portal.htmx import is_htmx
from deployment.choices import DeploymentStatus
from deployment.selectors import can_deploy, can_manage, deployments_serving, visible_deployments
from federation.selectors import origin_of
from licensing.choices import Action, Denial
from licensing.views import viewer_state
from marketplace import services, signature
from marketplace.markdown import render_markdown
from marketplace.models import Artifact, Comment, Publication, PublishRequest, SolutionShare
from marketplace.selectors import (
    PageParts,
    ViewerMarks,
    can_change_solution,
    can_delete_comment,
    can_delete_solution,
    can_take_part,
    comment_threads,
    deleted_solutions,
    managed_solutions,
    owns,
    page_cached,
    page_parts,
    publications_of,
    requests_of,
    signed_in,
    viewer_marks,
    visible_catalogs,
    visible_revisions,
    visible_solutions,
    visitor_key,
    with_viewer_marks,
)
from onboarding.models import StepResult
from onboarding.selectors import latest_steps_of
from pages.artifacts import in_kind_order
from pages.forms import (
    CardForm,
    CommentForm,
    DeleteForm,
    DetailsForm,
    PublishForm,
    RatingForm,
    ShareForm,
    add_refusal,
)

THREADS_SHOWN = 10  # comment threads; the rest behind "Show earlier comments"
ALL_COMMENTS = "?comments=all"
# Where the owners' actions land: the Manage panel, with the action's confirmation just above it.
MANAGE_LANDING = "manage-area"
LANDING_TAG = "manage-landing"  # the extra tag of those confirmations (_to_panel)


# ---------------------------------------------------------------- the page

@require_GET
def model(request, pk):
    # The viewer's own favorite, rating and co-ownership come in the same query (viewer_marks).
    solution = get_object_or_404(with_viewer_marks(visible_solutions(request.user), request.user), pk=pk)
    revisions = _revisions(request.user, solution)
    revision = _chosen(revisions, request.GET.get("version"))
    if services.record_view(solution, viewer=request.user, visitor=_visitor(request),
                            marks=viewer_marks(request.user, solution)):
        solution.view_count += 1  # what record_view just counted
    return _page(request, solution, revisions, revision, reply_to=_int(request.GET.get("reply")),
                 all_comments=_all_comments(request))


def _visitor(request) -> str:
    return visitor_key(request.user, client_ip(request), request.headers.get("User-Agent", ""))


def _page(request, solution, revisions=None, revision=None, *, status: int = 200, **overrides):
    """The whole page; `overrides` puts bound forms (with their errors) in place of blank ones."""
    if revisions is None:
        revisions = _revisions(request.user, solution)
        revision = _chosen(revisions, None)
    context = page_context(request.user, solution, revisions, revision, **overrides)
    if context["can_manage"]:  # the owners' confirmations above their panel, the rest where they always are
        context["landing_messages"], context["messages"] = _landing_messages(request)
    return render(request, "marketplace/model.html", context, status=status)


def page_context(user, solution, revisions, revision, **overrides) -> dict:
    """Everything the page shows, in a number of queries that does not grow with the model.
    `solution` is one the user may see: every caller found it through the selectors."""
    artifacts, steps = _files_and_steps(solution, revision)
    publications = list(publications_of(solution, user))
    marks = viewer_marks(user, solution)
    can_manage = can_change_solution(user, solution, marks=marks)
    taking_part = signed_in(user)  # can_take_part, known without asking again
    shared = page_parts(solution)
    tags = shared.tags
    deployable = revision is not None and revision.is_ready and can_deploy(user, revision, seen=True,
                                                                           manages=can_manage)
    context = {
        "solution": solution, "revisions": revisions, "revision": revision,
        "tags": tags,
        "publications": publications,
        "publisher": next((p.approved_by for p in publications if p.approved_by_id), None),
        "in_catalogs": list({p.catalog_id: p.catalog for p in publications}.values()),
        "description_html": render_markdown(solution.description),
        "artifacts": artifacts,
        "bundle_ready": revision is not None and revision.is_ready,
        **_api_context(user, revision, artifacts),
        "job": steps[0].job if steps else None, "steps": steps,
        "can_deploy": deployable,
        **licence_context(user, solution, revision, deployable=deployable),
        **favorite_context(user, solution, shared, marks=marks),
        **ratings_context(user, solution, overrides.get("rating_form"), taking_part=taking_part,
                          owner=can_manage and owns(user, solution, marks=marks), shared=shared, marks=marks),
        **comments_context(user, solution, overrides.get("comment_form"), overrides.get("reply_to"),
                           taking_part=taking_part, all_threads=overrides.get("all_comments", False),
                           shared=shared),
        "can_manage": can_manage,
        "origin": _imported_origin(solution, revision),
    }
    if can_manage:
        context.update(manage_context(user, solution, revisions=revisions, revision=revision, tags=tags,
                                      overrides=overrides))
    return context


def _imported_origin(solution, revision):
    """Where the version shown came from (federation), for an imported model only: an ordinary
    model's page asks nothing more."""
    if revision is None or not solution.imported_from:
        return None
    origin = origin_of(revision)
    return origin if origin is not None and origin.is_imported else None


def licence_context(user, solution, revision, *, deployable: bool) -> dict:
    """The version's licence (its profile came with the versions' query: _revisions) and, when it needs
    an agreement, the viewer's own state from the policy's dry run, with why download and deploy are
    off. Per viewer, so never in the page's shared cache; an open licence asks nothing more (the policy
    would answer "open" from the same profile)."""
    profile = _profile_of(revision)
    url = reverse("licensing:solution", args=[solution.pk]) + (f"?version={revision.pk}" if revision else "")
    context = {"licence_profile": profile, "licence_url": url, "licence_state": None, "download_off": "",
               "deploy_off": ""}
    if profile is None or not profile.rtu_required or not revision.is_ready:
        return context
    state = viewer_state(user, revision, Action.DOWNLOAD)
    context.update(licence_state=state, download_off="" if state.allowed else Denial(state.decision.code).label)
    if deployable:
        deploy = viewer_state(user, revision, Action.DEPLOY)
        context["deploy_off"] = "" if deploy.allowed else Denial(deploy.decision.code).label
    return context


def _profile_of(revision):
    if revision is None:
        return None
    try:
        return revision.licence_profile
    except ObjectDoesNotExist:  # no licence file: nothing restricts it
        return None


def _api_context(user, revision, artifacts) -> dict:
    methods = signature.api_signature(artifacts)
    deployment = _running_deployment(user, revision)
    endpoint = deployment.endpoint_url if deployment else ""
    return {"methods": methods, "deployment": deployment, "local_runner": signature.LOCAL_RUNNER,
            "examples": signature.examples(methods, signature.samples_of(artifacts), endpoint) if methods else []}


def _running_deployment(user, revision):
    """A running deployment of this version the user can see: the examples call it. Not asked
    for when _revisions found none (most visitors deploy nothing)."""
    if revision is None or not signed_in(user) or not getattr(revision, "serving", True):
        return None
    # Only what the examples show: the list's joins are not needed here.
    return (_serving(user).filter(revision=revision).select_related(None).only("pk", "name", "endpoint_url")
            .order_by("-created").first())


def _serving(user):
    return visible_deployments(user).filter(status=DeploymentStatus.RUNNING).exclude(endpoint_url="")


def _files_and_steps(solution, revision) -> tuple[list[Artifact], list[StepResult]]:
    """The version's artifacts and its onboarding steps. Once onboarding is over they change only
    when the image is rebuilt, and new artifacts move the page_version on: cached with the page."""
    if revision is None:
        return [], []
    return page_cached(solution, f"revision:{revision.pk}", lambda: (_artifacts(revision), latest_steps_of(revision)),
                       settled=lambda found: revision.is_ready and (not found[1] or found[1][0].job.done))


def _artifacts(revision) -> list[Artifact]:
    return in_kind_order(Artifact.objects.filter(revision=revision).select_related("blob"))


def favorite_context(user, solution, shared: PageParts | None = None, *, marks: ViewerMarks | None = None) -> dict:
    shared = shared or page_parts(solution)
    marks = marks or viewer_marks(user, solution)
    return {"favorite_count": shared.favorites, "is_favorite": marks.favorite}


def ratings_context(user, solution, form=None, *, taking_part: bool | None = None, owner: bool | None = None,
                    shared: PageParts | None = None, marks: ViewerMarks | None = None) -> dict:
    """The average, how many gave each number of stars, the latest reviews, and the user's own.
    `taking_part`, `owner` and `marks` (selectors.can_take_part, owns, viewer_marks) when the caller knows."""
    marks = marks or viewer_marks(user, solution)
    taking_part = can_take_part(user, solution) if taking_part is None else taking_part
    owner = taking_part and owns(user, solution, marks=marks) if owner is None else owner
    shared = shared or page_parts(solution)
    by_stars = shared.stars
    total = sum(by_stars.values())
    mine = marks.rating
    return {
        "rating_total": total,
        "distribution": [{"stars": stars, "count": by_stars.get(stars, 0),
                          "percent": round(100 * by_stars.get(stars, 0) / total) if total else 0}
                         for stars in range(5, 0, -1)],
        "reviews": _with_heads(solution, shared.reviews),
        "my_rating": mine,
        "rating_form": form or RatingForm(initial={"stars": mine.stars, "review": mine.review} if mine else None),
        "can_take_part": taking_part,
        "is_owner": owner,
    }


def _with_heads(solution, reviews: list) -> list:
    """Each review with its stars, author and date drawn as HTML once per page version, like the
    comments (_comment_bodies): the same for every visitor."""
    heads = _drawn_once(solution, "review-heads", "marketplace/_model_review_head.html", "rating", reviews)
    for rating in reviews:
        rating.head_html = heads[rating.pk]
    return reviews


def _drawn_once(solution, part: str, template: str, name: str, items: list) -> dict:
    """`template` drawn for each of `items` (as `name`, with `solution`), by pk, kept with the page's
    shared part (selectors.page_cached). Any item the kept drawing lacks (the list was read again
    while a write raced the cache) is drawn now."""
    def draw(these) -> dict:
        drawing = get_template(template)
        return {item.pk: drawing.render({name: item, "solution": solution}) for item in these}
    drawn = page_cached(solution, part, lambda: draw(items))
    missing = [item for item in items if item.pk not in drawn]
    return {**drawn, **draw(missing)} if missing else drawn


def comments_context(user, solution, form=None, reply_to=None, *, taking_part: bool | None = None,
                     all_threads: bool = False, shared: PageParts | None = None) -> dict:
    """The latest THREADS_SHOWN threads (or all of them), oldest first, with the forms: a model
    with a thousand comments draws no slower than one with ten."""
    comments = (shared or page_parts(solution)).comments
    threads = comment_threads(solution, comments)
    # A reply with errors shows under its comment, unless the comment is the problem: then on top.
    replying = form is not None and bool(form.data.get("parent")) and "parent" not in form.errors
    reply_to = _int(form.data.get("parent")) if replying else reply_to
    expanded = all_threads or bool(reply_to)
    shown = threads if expanded else threads[-THREADS_SHOWN:]
    # Forms posted from the whole list come back to the whole list.
    keep = ALL_COMMENTS if expanded and len(threads) > THREADS_SHOWN else ""
    _prepare_comments(user, shown, _comment_bodies(solution, comments),
                      reverse("marketplace:model-comment", args=[solution.pk]), keep)
    return {
        "threads": shown,
        "comments_query": keep,
        "comment_count": _count_comments(threads),
        "earlier_comments": _count_comments(threads[:len(threads) - len(shown)]),
        "comment_form": form if form is not None and not replying else CommentForm(),
        "reply_form": form if replying else CommentForm(initial={"parent": reply_to}),
        "reply_to": reply_to,
        "can_take_part": can_take_part(user, solution) if taking_part is None else taking_part,
    }


def _prepare_comments(user, comments, bodies: dict[int, str], base: str, query: str = "") -> None:
    """What the template draws of each comment, made here: its shared HTML, whether this user may
    delete it, and its reply and delete addresses (see urlpatterns below) from one reverse(), as a
    reverse() per link was a third of the list's drawing time."""
    for comment in comments:
        comment.body_html = bodies.get(comment.pk, "")
        comment.can_delete = can_delete_comment(user, comment)
        comment.reply_url = f"{base}{comment.pk}/reply/"
        comment.delete_url = f"{base}{comment.pk}/delete/{query}"
        _prepare_comments(user, comment.thread_replies, bodies, base, query)


def _comment_bodies(solution, comments) -> dict[int, str]:
    """Each comment's author, time and text as HTML, the same for every visitor: drawn once per page
    version, not on every view; they were most of the list's drawing time."""
    shown = [comment for comment in comments if not comment.deleted_at]
    return _drawn_once(solution, "comment-bodies", "marketplace/_model_comment_body.html", "comment", shown)


def _count_comments(comments) -> int:
    return sum((not comment.deleted_at) + _count_comments(comment.thread_replies) for comment in comments)


def manage_context(user, solution, *, revisions: list, revision, tags: list, overrides: dict) -> dict:
    """The owners' panel: details, publishing, requests, co-owners, delete."""
    publish_form = overrides.get("publish_form") or _publish_form(user, solution, initial={
        "revision": revision.pk if revision else None})
    publish_form.freeze_choices(revisions)  # the same versions the selector shows: managers see them all
    return {
        "details_form": overrides.get("details_form") or DetailsForm(initial={
            "description": solution.description, "tags": ", ".join(tag.name for tag in tags),
            "model_type": solution.model_type}),
        "preview_html": overrides.get("preview_html") or render_markdown(solution.description),
        "card_form": overrides.get("card_form") or (CardForm.of(revision.card) if revision is not None else None),
        "publish_form": publish_form,
        "requests": list(requests_of(user).filter(solution=solution).order_by("-created")),
        "co_owners": list(SolutionShare.objects.filter(solution=solution).select_related("user", "shared_by")
                          .order_by("user__username")),
        "share_form": overrides.get("share_form") or ShareForm(),
        **_delete_context(user, solution, overrides),
    }


def _delete_context(user, solution, overrides: dict) -> dict:
    """The delete form, and the deployments deleting would leave serving (each opens for whoever may
    change it): the form lists them and asks for confirmation before it is sent."""
    allowed = can_delete_solution(user, solution)
    serving = list(deployments_serving(solution)) if allowed else []
    for deployment in serving:
        deployment.openable = can_manage(user, deployment)
    return {"can_delete": allowed, "delete_form": overrides.get("delete_form") or DeleteForm(),
            "serving_deployments": serving}


def _publish_form(user, solution, data=None, **kwargs) -> PublishForm:
    revisions = visible_revisions(user).filter(solution=solution).order_by("-created")
    return PublishForm(data, revisions=revisions, catalogs=visible_catalogs(user), **kwargs)


# ---------------------------------------------------------------- lookups: a 404 for what is not visible

def _visible_or_404(user, pk):
    return get_object_or_404(visible_solutions(user), pk=pk)


def _managed_or_404(user, pk):
    """Owners, co-owners and admins manage a model; to anyone else it may as well not exist."""
    return get_object_or_404(managed_solutions(user), pk=pk)


def _revisions(user, solution) -> list:
    """The versions the user may see, newest first, each knowing whether it is `serving` (see
    _running_deployment) and with its licence profile. Their solution is the one given: no join for it."""
    # Each with its licence profile (the text left out: the licence page shows it), joined, no query more.
    revisions = (visible_revisions(user).filter(solution=solution).select_related(None)
                 .select_related("licence_profile").defer("licence_profile__profile").order_by("-created"))
    if signed_in(user):
        revisions = revisions.annotate(serving=Exists(_serving(user).filter(revision=OuterRef("pk"))))
    found = list(revisions)
    for revision in found:
        revision.solution = solution
    return found


def _chosen(revisions: list, wanted: str | None):
    """`?version=<revision id>`, else the newest ready version, else the newest."""
    if wanted:
        try:
            wanted_id = uuid.UUID(wanted)
        except ValueError:
            raise Http404("no such version") from None
        found = next((revision for revision in revisions if revision.pk == wanted_id), None)
        if found is None:
            raise Http404("no such version")
        return found
    return next((revision for revision in revisions if revision.is_ready), revisions[0] if revisions else None)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- answering a POST

def _all_comments(request) -> bool:
    """Whether to show every comment thread: asked for, or a reply was posted (its thread may be an old one)."""
    return request.GET.get("comments") == "all" or bool(request.POST.get("parent"))


def _back(solution, anchor: str = "", query: str = ""):
    return redirect(reverse("marketplace:model", args=[solution.pk]) + query + (f"#{anchor}" if anchor else ""))


_SECTIONS = {
    "reviews": "marketplace/_model_ratings.html",
    "comments": "marketplace/_model_comments.html",
    "favorite": "marketplace/_model_favorite.html",
}


def _section(request, solution, section: str, form=None):
    """An htmx answer: the section drawn again (with the form's errors, if any, and the messages)."""
    solution.refresh_from_db()  # the services changed its counters
    user = request.user
    context = {"solution": solution, "htmx": True}
    if section == "reviews":
        context.update(ratings_context(user, solution, form))
    elif section == "comments":
        context.update(comments_context(user, solution, form, all_threads=_all_comments(request)))
    else:
        context.update(favorite_context(user, solution))
    return render(request, _SECTIONS[section], context)


def _done(request, solution, section: str, anchor: str = ""):
    if is_htmx(request):
        return _section(request, solution, section)
    expanded = section == "comments" and _all_comments(request)
    return _back(solution, anchor or section, ALL_COMMENTS if expanded else "")


def _failed(request, solution, section: str, form):
    """A participation form with errors: the section again (htmx), or the whole page."""
    if is_htmx(request):
        return _section(request, solution, section, form)
    form_name = "rating_form" if section == "reviews" else "comment_form"
    return _page(request, solution, status=400, all_comments=_all_comments(request), **{form_name: form})


def _refused(request, solution, refused: services.Refused, form, *, form_name: str):
    """A refusal of an owner's action: next to the field it is about, or else above the Manage panel."""
    if refused.field in form.fields:
        add_refusal(form, refused)
        return _page(request, solution, status=400, **{form_name: form})
    return _to_panel(request, solution, messages.ERROR, capfirst(refused.message))


def _to_panel(request, solution, level: int, text: str):
    """Back to the Manage panel, the action's confirmation (or refusal) above it: tagged so that the
    page draws it there, once (_landing_messages), not at the top the jump scrolled away from."""
    messages.add_message(request, level, text, extra_tags=LANDING_TAG)
    return _back(solution, MANAGE_LANDING)


def _landing_messages(request) -> tuple[list, list]:
    """The messages of the owners' actions (_to_panel), and the others."""
    landing, others = [], []
    for message in messages.get_messages(request):
        (landing if LANDING_TAG in (message.extra_tags or "").split() else others).append(message)
    return landing, others


# ---------------------------------------------------------------- ratings, comments, favorites

@require_POST
@login_required
def rate(request, pk):
    solution = _visible_or_404(request.user, pk)
    form = RatingForm(request.POST)
    if form.is_valid():
        try:
            services.rate(request.user, solution, form.cleaned_data["stars"], form.cleaned_data["review"])
        except services.Refused as refused:
            add_refusal(form, refused)
        else:
            messages.success(request, "Thank you: your rating is saved.")
            return _done(request, solution, "reviews")
    return _failed(request, solution, "reviews", form)


@require_POST
@login_required
def unrate(request, pk):
    solution = _visible_or_404(request.user, pk)
    services.unrate(request.user, solution)
    messages.success(request, "Your rating is removed.")
    return _done(request, solution, "reviews")


@require_POST
@login_required
def comment(request, pk):
    solution = _visible_or_404(request.user, pk)
    form = CommentForm(request.POST)
    if form.is_valid():
        parent_id = form.cleaned_data["parent"]
        parent = Comment.objects.filter(pk=parent_id, solution=solution).first() if parent_id else None
        try:
            if parent_id and parent is None:  # not on this model: say so without telling what it is
                raise services.Refused("that comment is not on this model", "parent")
            made = services.add_comment(request.user, solution, form.cleaned_data["text"], parent)
        except services.Refused as refused:
            add_refusal(form, refused)
        else:
            messages.success(request, "Your reply is posted." if parent else "Your comment is posted.")
            return _done(request, solution, "comments", f"comment-{made.pk}")
    return _failed(request, solution, "comments", form)


@require_GET
@login_required
def reply_form(request, pk, comment_id):
    """The reply box under one comment (htmx opens it inline; without htmx the page does)."""
    solution = _visible_or_404(request.user, pk)
    parent = get_object_or_404(Comment, pk=comment_id, solution=solution)
    if not is_htmx(request):
        url = reverse("marketplace:model", args=[solution.pk])
        return redirect(f"{url}?reply={parent.pk}#comment-{parent.pk}")
    return render(request, "marketplace/_model_reply_form.html", {
        "solution": solution, "comment": parent, "reply_form": CommentForm(initial={"parent": parent.pk})})


@require_POST
@login_required
def comment_delete(request, pk, comment_id):
    solution = _visible_or_404(request.user, pk)
    found = get_object_or_404(Comment, pk=comment_id, solution=solution)
    try:
        services.delete_comment(request.user, found)
    except services.Refused as refused:
        messages.error(request, capfirst(refused.message))
    else:
        messages.success(request, "Your comment is deleted.")
    return _done(request, solution, "comments")


@require_POST
@login_required
def favorite(request, pk):
    solution = _visible_or_404(request.user, pk)
    now = services.toggle_favorite(request.user, solution)
    if not is_htmx(request):
        messages.success(request, "Added to your favorites." if now else "Removed from your favorites.")
    return _done(request, solution, "favorite")


# ---------------------------------------------------------------- owners, co-owners and admins

@require_POST
@login_required
def edit(request, pk):
    solution = _managed_or_404(request.user, pk)
    form = DetailsForm(request.POST)
    if form.is_valid() and "preview" in request.POST:  # the preview button, without htmx
        html = render_markdown(form.cleaned_data["description"])
        return _page(request, solution, details_form=form, preview_html=html)
    if form.is_valid():
        try:
            services.update_details(request.user, solution, **form.cleaned_data)
        except services.Refused as refused:
            return _refused(request, solution, refused, form, form_name="details_form")
        return _to_panel(request, solution, messages.SUCCESS, "The details are saved.")
    return _page(request, solution, status=400, details_form=form)


@require_POST
@login_required
def card(request, pk, revision_id):
    """Its owners change a version's model card; a refusal goes beside its field, nothing typed is lost."""
    solution = _managed_or_404(request.user, pk)
    revisions = _revisions(request.user, solution)
    revision = _chosen(revisions, str(revision_id))
    form = CardForm(request.POST)
    if form.is_valid():
        try:
            services.set_card(request.user, revision, form.card())
        except services.Refused as refused:
            form.refused(refused.field or "", refused.message)
        else:
            messages.success(request, f"The model card of {revision.version} is saved.")
            return _back(solution, "model-card", f"?version={revision.pk}")
    return _page(request, solution, revisions, revision, status=400, card_form=form)


@require_POST
@login_required
def preview(request, pk):
    _managed_or_404(request.user, pk)
    html = render_markdown(request.POST.get("description", ""))
    return render(request, "marketplace/_model_preview.html", {"preview_html": html})


@require_POST
@login_required
def publish(request, pk):
    solution = _managed_or_404(request.user, pk)
    form = _publish_form(request.user, solution, request.POST)
    if not form.is_valid():
        return _page(request, solution, status=400, publish_form=form)
    revision, catalog = form.cleaned_data["revision"], form.cleaned_data["catalog"]
    try:
        result = services.publish(request.user, revision, catalog, form.cleaned_data["message"])
    except services.Refused as refused:
        return _refused(request, solution, refused, form, form_name="publish_form")
    if isinstance(result, Publication):
        return _to_panel(request, solution, messages.SUCCESS, f"Version {revision.version} is published in "
                                                              f"{catalog.name}.")
    return _to_panel(request, solution, messages.SUCCESS,
                     f"Request sent for review: a publisher will look at version {revision.version} for "
                     f"{catalog.name}. You are told when it is decided.")


@require_POST
@login_required
def unpublish(request, pk, publication_id):
    solution = _managed_or_404(request.user, pk)
    publication = get_object_or_404(Publication.objects.select_related("catalog", "revision"),
                                    pk=publication_id, solution=solution)
    services.unpublish(request.user, publication)
    return _to_panel(request, solution, messages.SUCCESS,
                     f"Version {publication.revision.version} is no longer in {publication.catalog.name}.")


@require_POST
@login_required
def withdraw(request, pk, request_id):
    solution = _managed_or_404(request.user, pk)
    found = get_object_or_404(PublishRequest.objects.select_related("catalog", "revision"),
                              pk=request_id, solution=solution)
    try:
        services.withdraw(request.user, found)
    except services.Refused as refused:
        return _to_panel(request, solution, messages.ERROR, capfirst(refused.message))
    return _to_panel(request, solution, messages.SUCCESS, f"The request for {found.catalog.name} is withdrawn.")


@require_POST
@login_required
def share(request, pk):
    solution = _managed_or_404(request.user, pk)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _page(request, solution, status=400, share_form=form)
    try:
        shared = services.share(request.user, solution, form.cleaned_data["username"])
    except services.Refused as refused:
        return _refused(request, solution, refused, form, form_name="share_form")
    return _to_panel(request, solution, messages.SUCCESS,
                     f"{shared.user.username} is now a co-owner and has been told.")


@require_POST
@login_required
def unshare(request, pk, user_id):
    solution = _managed_or_404(request.user, pk)
    found = get_object_or_404(SolutionShare.objects.select_related("user"), solution=solution, user_id=user_id)
    services.unshare(request.user, solution, found.user_id)
    if found.user_id == request.user.pk:  # a co-owner who left no longer sees a private model
        messages.success(request, f"{found.user.username} is no longer a co-owner.")
        return redirect("marketplace:my-models")
    return _to_panel(request, solution, messages.SUCCESS, f"{found.user.username} is no longer a co-owner.")


@require_POST
@login_required
def delete(request, pk):
    solution = _managed_or_404(request.user, pk)
    form = DeleteForm(request.POST)
    if not form.is_valid():
        return _page(request, solution, status=400, delete_form=form)
    try:
        services.soft_delete(request.user, solution)
    except services.Refused as refused:
        return _refused(request, solution, refused, form, form_name="delete_form")
    messages.success(request, f"{solution.name} is deleted. You can restore it from the deleted models below."
                              f"{_still_serving(solution)}")
    return redirect(reverse("marketplace:my-models") + "?tab=deleted")


def _still_serving(solution) -> str:
    """What deleting left running (deployment.services.on_solution_deleted told their creators)."""
    count = deployments_serving(solution).count()
    if not count:
        return ""
    these = "Its deployment keeps" if count == 1 else f"Its {count} deployments keep"
    return f" {these} serving it until stopped (Deployments → Stop)."


@require_POST
@login_required
def restore(request, pk):
    solution = get_object_or_404(deleted_solutions(request.user), pk=pk)
    try:
        services.restore(request.user, solution)
    except services.Refused as refused:
        messages.error(request, capfirst(refused.message))
    else:
        messages.success(request, f"{solution.name} is restored.")
    return redirect("marketplace:my-models")


urlpatterns = [
    path("models/<uuid:pk>/", model, name="model"),
    path("models/<uuid:pk>/rate/", rate, name="model-rate"),
    path("models/<uuid:pk>/unrate/", unrate, name="model-unrate"),
    path("models/<uuid:pk>/comments/", comment, name="model-comment"),
    path("models/<uuid:pk>/comments/<int:comment_id>/reply/", reply_form, name="model-reply"),
    path("models/<uuid:pk>/comments/<int:comment_id>/delete/", comment_delete, name="model-comment-delete"),
    path("models/<uuid:pk>/favorite/", favorite, name="model-favorite"),
    path("models/<uuid:pk>/edit/", edit, name="model-edit"),
    path("models/<uuid:pk>/versions/<uuid:revision_id>/card/", card, name="model-card"),
    path("models/<uuid:pk>/preview/", preview, name="model-preview"),
    path("models/<uuid:pk>/publish/", publish, name="model-publish"),
    path("models/<uuid:pk>/publications/<int:publication_id>/unpublish/", unpublish, name="model-unpublish"),
    path("models/<uuid:pk>/requests/<int:request_id>/withdraw/", withdraw, name="model-withdraw"),
    path("models/<uuid:pk>/share/", share, name="model-share"),
    path("models/<uuid:pk>/co-owners/<int:user_id>/remove/", unshare, name="model-unshare"),
    path("models/<uuid:pk>/delete/", delete, name="model-delete"),
    path("models/<uuid:pk>/restore/", restore, name="model-restore"),
]
