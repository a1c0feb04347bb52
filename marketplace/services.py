"""Everything that changes the marketplace: revisions and their artifacts, publishing and its review,
sharing, soft delete, ratings, comments, favorites, counters, the search index and notifications.

Who may do what is asked of marketplace.selectors; a refusal raises Refused with the field it is
about, so pages and the API show the same message."""

from __future__ import annotations

import time

from django.contrib.postgres.search import SearchVector
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, Exists, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from acumos_portal.accounts.models import User
from acumos_portal.api.refusals import Refused
from acumos_portal.caching import forget_now_and_on_commit
from marketplace import cards, gates, selectors
from marketplace.choices import (
    ALWAYS_ON_NOTIFICATIONS,
    ARTIFACT_FILE_NAMES,
    ArtifactKind,
    Audience,
    CatalogAccess,
    ModelType,
    NotificationKind,
    RequestStatus,
    RevisionStatus,
)
from marketplace.models import (
    Artifact,
    Blob,
    Catalog,
    Comment,
    Download,
    Favorite,
    Notification,
    NotificationPreference,
    Publication,
    PublishRequest,
    Rating,
    Revision,
    RevisionInput,
    Solution,
    SolutionShare,
    Tag,
)
from marketplace.signals import revision_ready, solution_deleted, solution_restored

MAX_TAGS = 10
SEED_CATALOGS = (
    {"name": "Public Models", "access": CatalogAccess.PUBLIC, "self_publish": False,
     "description": "Models anyone may find and use, published after a publisher's review."},
    {"name": "Company Models", "access": CatalogAccess.RESTRICTED, "self_publish": True,
     "description": "Models for everyone signed in to this site; owners publish them directly."},
)




def catalog_changed() -> None:
    """What lists show, or who may see it, changed: cached result counts start afresh (again on
    commit: a request may have counted the old rows in between)."""
    forget_now_and_on_commit(_next_generation)


def _next_generation() -> None:
    try:
        cache.incr(selectors.GENERATION_KEY)
    except ValueError:  # not there yet (or evicted): any new value makes new keys
        cache.set(selectors.GENERATION_KEY, int(time.time() * 1000), None)


def seed_catalogs() -> None:
    """The two catalogs every site starts with (Acumos seeds the same two)."""
    for spec in SEED_CATALOGS:
        Catalog.objects.get_or_create(name=spec["name"], defaults=spec)


def _require(allowed: bool, message: str = "not found") -> None:
    if not allowed:
        raise Refused(message)


# ---------------------------------------------------------------- revisions and their artifacts

class RevisionImmutable(Refused):
    """A ready revision's artifacts never change (its image and build log aside: revision_set_image)."""

    status = 409
    code = "revision_immutable"


@transaction.atomic
def revision_create(*, owner, solution_id, solution_name: str, toolkit: str, revision_id, version: str,
                    metadata: dict, artifacts: dict[str, Blob]) -> tuple[Revision, bool]:
    """A new revision of the owner's solution of this name, with the bundle's artifacts (kind: blob);
    and whether the solution was made for it (with `solution_id`, the id the upload answered with)."""
    solution, created = _solution_for(owner, solution_id, solution_name, toolkit, metadata)
    revision = Revision.objects.create(id=revision_id, solution=solution, version=version,
                                       metadata=metadata, description=metadata.get("description", ""),
                                       card=cards.clean(metadata.get("modelCard")), created_by=owner)
    _index(revision.pk)
    for kind, blob in artifacts.items():
        artifact_add(revision, kind, blob=blob)
    return revision, created


def _solution_for(owner, solution_id, name: str, toolkit: str, metadata: dict) -> tuple[Solution, bool]:
    """The owner's solution of this name, or a new one with the id the upload answered with. Two
    first uploads of a name share that id (onboarding.services._reserved_solution); the one that
    comes second finds the solution the first made (get_or_create: also when both try at once)."""
    solution, created = Solution.objects.get_or_create(
        owner=owner, name=name,
        defaults={"id": solution_id, "toolkit": toolkit, "description": metadata.get("description", "")})
    _refuse_if_imported(solution)
    return solution, created


class ImportedReadOnly(Refused):
    code, status = "imported_read_only", 409


def _refuse_if_imported(solution: Solution) -> None:
    """An imported model's content is its origin's: new versions and edits come from there."""
    if selectors.is_imported(solution):
        raise ImportedReadOnly(f"{solution.name} was imported from the peer {solution.imported_from} and is "
                               "read-only here: its versions and description come from there")


@transaction.atomic
def revision_import(*, owner, source: str, solution: dict, revision: dict, artifacts: dict[str, Blob],
                    image: tuple[str, str] | None = None, artifact_ids: dict | None = None) -> Revision:
    """A revision a peer made (federation), under the peer's ids: into the imported solution of that
    id, made for `owner` if new (named "<name> (<source>)" when the owner has a model of that name).
    Not ready yet: the caller marks it ready once everything is in place."""
    found = Solution.objects.filter(pk=solution["id"]).first()
    if found is not None and found.imported_from != source:
        raise Refused(f"a model with the id {solution['id']} exists here already and did not come from {source}")
    if found is None:
        name = solution["name"]
        if Solution.objects.filter(owner=owner, name=name).exists():
            name = f"{name} ({source})"[:200]
        found = Solution.objects.create(id=solution["id"], owner=owner, name=name, imported_from=source,
                                        description=solution.get("description", ""),
                                        model_type=solution.get("model_type") or ModelType.OTHER,
                                        toolkit=solution.get("toolkit", ""))
    if found.revisions.filter(version=revision["version"]).exists():
        raise Refused(f"{found.name} has a version {revision['version']} here already (another revision of that "
                      "version was imported before)")
    found.tags.set([Tag.objects.get_or_create(name=name)[0] for name in solution.get("tags", [])[:MAX_TAGS]])
    made = Revision.objects.create(id=revision["id"], solution=found, version=revision["version"],
                                   metadata=revision.get("metadata", {}), description=revision.get("description", ""),
                                   card=cards.clean((revision.get("metadata") or {}).get("modelCard")),
                                   created_by=owner)
    _index(made.pk)
    ids = artifact_ids or {}  # the peer's artifact ids, kept where given
    for kind, blob in artifacts.items():
        artifact_add(made, kind, blob=blob, artifact_id=ids.get(kind))
    if image:  # (name, uri): as an image build records it (revision_set_image)
        artifact_add(made, ArtifactKind.IMAGE, name=image[0], uri=image[1], artifact_id=ids.get(ArtifactKind.IMAGE))
    return made


def artifact_add(revision: Revision, kind: str, *, blob: Blob | None = None, uri: str = "",
                 name: str = "", artifact_id=None) -> Artifact:
    """The only way artifacts are added: a ready revision is immutable."""
    if Revision.objects.filter(pk=revision.pk, status=RevisionStatus.READY).exists():
        raise RevisionImmutable(f"revision {revision.version} is ready and can no longer change")
    return Artifact.objects.create(**({"id": artifact_id} if artifact_id else {}), revision=revision, kind=kind,
                                   name=name or ARTIFACT_FILE_NAMES.get(kind, kind), blob=blob, uri=uri)


def record_interface(revision: Revision, interface: dict) -> None:
    """The methods and their fields, read from the revision's proto (marketplace.descriptors.interface)."""
    with transaction.atomic():
        Revision.objects.filter(pk=revision.pk).update(interface=interface)
        RevisionInput.objects.filter(revision=revision).delete()
        task = Revision.objects.filter(pk=revision.pk).values_list("task", flat=True).first() or ""
        RevisionInput.objects.bulk_create(
            RevisionInput(revision=revision, method=method[:100], name=field["name"][:200], task=task)
            for method, sides in interface.items() for field in sides.get("inputs", []))


def _index(revision_id) -> None:
    """Discovery's columns from the card and the resources (the one place they are derived)."""
    revision = Revision.objects.filter(pk=revision_id).only("card", "resources").first()
    if revision is None:
        return
    card, resources = revision.card or {}, revision.resources or {}
    peak = resources.get("peak_memory_bytes")
    timings = [figures["single_ms"] for figures in (resources.get("methods") or {}).values()
               if isinstance(figures, dict) and figures.get("single_ms") is not None]
    explained = card.get("explainability") or {}
    words = [*explained.get("methods", []), *(scope for scope in ("local", "global") if explained.get(scope))]
    Revision.objects.filter(pk=revision_id).update(
        task=card.get("task", ""), peak_memory_mb=-(-peak // (1 << 20)) if peak else None,
        latency_ms=max(timings) if timings else None, explains=f" {' '.join(words)} " if words else "")
    RevisionInput.objects.filter(revision_id=revision_id).exclude(task=card.get("task", "")).update(
        task=card.get("task", ""))


class CardNotAllowed(Refused):
    status = 403
    code = "permission_denied"


def set_card(user, revision: Revision, card) -> Revision:
    """Its owners change a revision's model card (cards.clean says what may be in it)."""
    if not selectors.can_change_solution(user, revision.solution):
        raise CardNotAllowed("only this model's owners (or an admin) change its model card")
    try:
        revision.card = cards.clean(card)
    except cards.CardInvalid as exc:
        raise Refused(exc.message, field=f"card.{exc.field}") from None
    Revision.objects.filter(pk=revision.pk).update(card=revision.card)
    _index(revision.pk)
    return revision


def record_resources(revision_id, resources: dict) -> None:
    """What the sandboxed smoke test measured of a revision (onboarding.smoke.measured), with when."""
    Revision.objects.filter(pk=revision_id).update(
        resources={**resources, "measured_at": timezone.now().isoformat(timespec="seconds")})
    _index(revision_id)


def revision_mark_ready(revision: Revision) -> None:
    """Onboarding finished: the revision is ready (and immutable from now on), and the marketplace is
    told once (marketplace.signals.revision_ready), by the call that made it ready."""
    with transaction.atomic():
        made_ready = Revision.objects.filter(pk=revision.pk).exclude(status=RevisionStatus.READY).update(
            status=RevisionStatus.READY, ready_at=timezone.now())
        if made_ready:  # discovery describes a model by its newest ready version
            Revision.objects.filter(solution_id=revision.solution_id, latest_ready=True).update(latest_ready=False)
            Revision.objects.filter(pk=revision.pk).update(latest_ready=True)
    revision.refresh_from_db()
    if made_ready:
        revision_ready.send(sender=Revision, revision=revision)


@transaction.atomic
def revision_discard(revision_id, *, solution_id=None) -> None:
    """Undo an onboarding that failed: its revision goes unless it became ready, and the solution
    (given when the onboarding made it) if no revision is left in it."""
    Revision.objects.filter(pk=revision_id).exclude(status=RevisionStatus.READY).delete()
    if solution_id is not None:
        Solution.objects.filter(pk=solution_id, revisions__isnull=True).delete()


@transaction.atomic
def revision_set_image(revision: Revision, image_name: str, image_uri: str, log_blob: Blob) -> list[Blob]:
    """The image and its build log are what a build makes from the (immutable) bundle, so a rebuild
    may replace them on a ready revision; the bundle's own artifacts never change. Returns the build
    logs replaced, for the caller to delete once its transaction is over (storage.delete_blob_if_orphan:
    a file deleted inside a transaction that rolls back would be gone for good)."""
    revision = Revision.objects.select_for_update().get(pk=revision.pk)
    old_logs = [a.blob for a in revision.artifacts.filter(kind=ArtifactKind.BUILD_LOG).select_related("blob")]
    revision.artifacts.filter(kind__in=[ArtifactKind.IMAGE, ArtifactKind.BUILD_LOG]).delete()
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name=image_name, uri=image_uri)
    Artifact.objects.create(revision=revision, kind=ArtifactKind.BUILD_LOG,
                            name=ARTIFACT_FILE_NAMES[ArtifactKind.BUILD_LOG], blob=log_blob)
    return [blob for blob in old_logs if blob.pk != log_blob.pk]


# ---------------------------------------------------------------- publishing

@transaction.atomic
def publish(user, revision: Revision, catalog: Catalog, message: str = "") -> Publication | PublishRequest:
    """Into a self-publish catalog at once; otherwise a request that waits for a publisher."""
    _require(selectors.can_change_solution(user, revision.solution))
    _check_publishable(user, revision, catalog)
    if catalog.self_publish:
        return _add_publication(revision, catalog, published_by=user)
    request = PublishRequest.objects.create(solution=revision.solution, revision=revision, catalog=catalog,
                                            requested_by=user, message=message.strip())
    catalog_changed()  # publishers now see it
    _tell_publishers(request)
    return request


def _check_publishable(user, revision: Revision, catalog: Catalog) -> None:
    if revision.solution.is_deleted:
        raise Refused("a deleted model cannot be published; restore it first")
    if revision.status != RevisionStatus.READY:
        raise Refused(f"version {revision.version} is still onboarding; publish it when it is ready", "revision")
    if not selectors.visible_catalogs(user).filter(pk=catalog.pk).exists():
        raise Refused("no such catalog", "catalog")
    if Publication.objects.filter(revision=revision, catalog=catalog).exists():
        raise Refused(f"version {revision.version} is already in {catalog.name}", "catalog")
    if PublishRequest.objects.filter(revision=revision, catalog=catalog, status=RequestStatus.PENDING).exists():
        raise Refused(f"version {revision.version} already waits for review in {catalog.name}", "catalog")


def publish_directly(revision: Revision, catalog: Catalog, *, by=None) -> Publication:
    """No checks, no request: for seeding, imports and tests."""
    publication = _add_publication(revision, catalog, published_by=by or revision.solution.owner)
    reindex(revision.solution_id)
    return publication


def _add_publication(revision: Revision, catalog: Catalog, *, published_by, approved_by=None) -> Publication:
    publication = Publication.objects.create(catalog=catalog, solution=revision.solution, revision=revision,
                                             published_by=published_by, approved_by=approved_by)
    refresh_audience(revision.solution_id)
    return publication


def _tell_publishers(request: PublishRequest) -> None:
    reviewers = User.objects.filter(Q(groups__name="Publisher") | Q(groups__name="Admin") | Q(is_superuser=True),
                                    is_active=True).exclude(pk=request.solution.owner_id).distinct()
    for reviewer in reviewers:
        notify(reviewer, NotificationKind.PUBLISH_REQUESTED,
               f"{request.solution.name} {request.revision.version} waits for review in {request.catalog.name}",
               url="/manage/publish-requests/", message=request.message,
               # One row per request: two owners' models of one name are two events, never merged.
               target=f"publish-request:{request.pk}")


@transaction.atomic
def approve(reviewer, request: PublishRequest, comment: str = "") -> Publication:
    request = _lock_for_review(reviewer, request)
    _close(request, reviewer, RequestStatus.APPROVED, comment)
    publication = _add_publication(request.revision, request.catalog, published_by=request.requested_by,
                                   approved_by=reviewer)
    notify(request.requested_by, NotificationKind.PUBLISH_APPROVED,
           f"{request.solution.name} {request.revision.version} is published in {request.catalog.name}",
           url=solution_url(request.solution), message=comment)
    return publication


@transaction.atomic
def decline(reviewer, request: PublishRequest, comment: str) -> PublishRequest:
    if not comment.strip():
        raise Refused("say why it is declined: the owner reads this comment", "comment")
    request = _lock_for_review(reviewer, request)
    _close(request, reviewer, RequestStatus.DECLINED, comment)
    notify(request.requested_by, NotificationKind.PUBLISH_DECLINED,
           f"{request.solution.name} {request.revision.version} was not published in {request.catalog.name}",
           url=solution_url(request.solution), message=comment)
    return request


def _lock_for_review(reviewer, request: PublishRequest) -> PublishRequest:
    request = PublishRequest.objects.select_for_update().select_related("solution", "revision", "catalog").get(
        pk=request.pk)
    if not request.is_pending:
        raise Refused(f"this request was already {request.get_status_display().lower()}")
    if not selectors.can_review(reviewer, request):
        raise Refused("publishers cannot review their own models; another publisher must")
    return request


def _close(request: PublishRequest, reviewer, status: str, comment: str) -> None:
    request.status = status
    request.reviewed_by = reviewer
    request.review_comment = comment.strip()
    request.reviewed_at = timezone.now()
    request.save(update_fields=["status", "reviewed_by", "review_comment", "reviewed_at"])
    catalog_changed()


@transaction.atomic
def withdraw(user, request: PublishRequest) -> PublishRequest:
    _require(selectors.can_change_solution(user, request.solution))
    if not request.is_pending:
        raise Refused(f"this request was already {request.get_status_display().lower()}")
    request.status = RequestStatus.WITHDRAWN
    request.save(update_fields=["status"])
    catalog_changed()
    return request


@transaction.atomic
def unpublish(user, publication: Publication) -> None:
    _require(selectors.can_change_solution(user, publication.solution))
    solution_id = publication.solution_id
    publication.delete()
    refresh_audience(solution_id)


def refresh_audience(solution_id) -> None:
    refresh_audiences([solution_id])


def refresh_audiences(solution_ids) -> int:
    """The widest catalog any revision is published in decides who sees a solution (one UPDATE)."""
    published = Publication.objects.filter(solution=OuterRef("pk"))
    audience = Case(
        When(Exists(published.filter(catalog__access=CatalogAccess.PUBLIC)), then=Value(Audience.ANYONE)),
        When(Exists(published), then=Value(Audience.SIGNED_IN)),
        default=Value(Audience.PRIVATE))
    changed = Solution.objects.filter(pk__in=solution_ids).update(audience=audience)
    catalog_changed()
    return changed


@transaction.atomic
def delete_catalog(catalog: Catalog) -> None:
    """Only an empty catalog goes: its publications would otherwise vanish with it, and so would
    requests a publisher has not answered yet."""
    published = Publication.objects.filter(catalog=catalog).values("solution_id").distinct().count()
    if published:
        raise Refused(f"{catalog.name} still holds {published} model{'s' if published != 1 else ''}: "
                      "unpublish them first", "catalog")
    pending = catalog.publish_requests.filter(status=RequestStatus.PENDING).count()
    if pending:
        raise Refused(f"{catalog.name} has {pending} pending publish request{'s' if pending != 1 else ''}: "
                      "approve or decline them first", "catalog")
    catalog.delete()


# ---------------------------------------------------------------- owning

@transaction.atomic
def share(user, solution: Solution, username: str) -> SolutionShare:
    _require(selectors.can_change_solution(user, solution))
    co_owner = User.objects.filter(username=username.strip(), is_active=True).first()
    if co_owner is None:
        raise Refused(f"no active user is called {username.strip()!r}", "username")
    if co_owner.pk == solution.owner_id:
        raise Refused(f"{co_owner.username} owns this model already", "username")
    shared, created = SolutionShare.objects.get_or_create(solution=solution, user=co_owner,
                                                          defaults={"shared_by": user})
    if not created:
        raise Refused(f"{co_owner.username} is a co-owner already", "username")
    notify(co_owner, NotificationKind.SHARED, f"{user.username} shared {solution.name} with you",
           url=solution_url(solution))
    return shared


def unshare(user, solution: Solution, co_owner_id: int) -> None:
    _require(selectors.can_change_solution(user, solution))
    SolutionShare.objects.filter(solution=solution, user_id=co_owner_id).delete()


@transaction.atomic
def update_details(user, solution: Solution, *, description: str, tags: list[str], model_type: str) -> None:
    _require(selectors.can_change_solution(user, solution))
    _refuse_if_imported(solution)
    if len(tags) > MAX_TAGS:
        raise Refused(f"at most {MAX_TAGS} tags", "tags")
    solution.description = description
    solution.model_type = model_type
    solution.save(update_fields=["description", "model_type", "modified"])
    solution.tags.set([Tag.objects.get_or_create(name=name)[0] for name in tags])
    reindex(solution.pk)


@transaction.atomic
def soft_delete(user, solution: Solution) -> None:
    """Hidden everywhere but the owner's "deleted" list; pending requests are withdrawn."""
    _require(selectors.can_delete_solution(user, solution), "only the owner or an admin deletes a model")
    PublishRequest.objects.filter(solution=solution, status=RequestStatus.PENDING).update(
        status=RequestStatus.WITHDRAWN)
    Solution.objects.filter(pk=solution.pk).update(deleted_at=timezone.now())
    catalog_changed()
    solution_deleted.send(sender=Solution, solution=solution, by=user)  # its deployments' creators are told


def restore(user, solution: Solution) -> None:
    _require(selectors.can_delete_solution(user, solution), "only the owner or an admin restores a model")
    Solution.objects.filter(pk=solution.pk).update(deleted_at=None)
    catalog_changed()
    solution_restored.send(sender=Solution, solution=solution, by=user)


# ---------------------------------------------------------------- ratings, comments, favorites

@transaction.atomic
def rate(user, solution: Solution, stars: int, review: str = "") -> Rating:
    _require(selectors.can_take_part(user, solution))
    if selectors.owns(user, solution):
        raise Refused("you own this model: ratings are for others to give", "stars")
    if not 1 <= int(stars) <= 5:
        raise Refused("give 1 to 5 stars", "stars")
    rating, created = Rating.objects.update_or_create(solution=solution, user=user,
                                                      defaults={"stars": stars, "review": review.strip()})
    _refresh_rating(solution.pk)
    if created:
        notify(solution.owner, NotificationKind.REVIEW, f"{user.username} gave {solution.name} {stars} stars",
               url=solution_url(solution) + "#reviews", message=review.strip()[:500])
    return rating


def _refresh_rating(solution_id) -> None:
    Solution.objects.filter(pk=solution_id).update(
        rating_count=Coalesce(_rating_stat("count"), 0), rating_sum=Coalesce(_rating_stat("sum"), 0))
    Solution.objects.filter(pk=solution_id, rating_count__gt=0).update(
        rating_avg=F("rating_sum") * 1.0 / F("rating_count"))
    Solution.objects.filter(pk=solution_id, rating_count=0).update(rating_avg=0)


def _rating_stat(kind: str):
    ratings = Rating.objects.filter(solution=OuterRef("pk")).order_by().values("solution")
    aggregate = Count("pk") if kind == "count" else Sum("stars")
    return Subquery(ratings.annotate(value=aggregate).values("value")[:1])


def unrate(user, solution: Solution) -> None:
    Rating.objects.filter(solution=solution, user=user).delete()
    _refresh_rating(solution.pk)


@transaction.atomic
def add_comment(user, solution: Solution, text: str, parent: Comment | None = None) -> Comment:
    _require(selectors.can_take_part(user, solution))
    text = text.strip()
    if not text:
        raise Refused("write something first", "text")
    if len(text) > 8192:
        raise Refused("at most 8,192 characters", "text")
    if parent is not None and parent.solution_id != solution.pk:
        raise Refused("that comment belongs to another model", "parent")
    if parent is not None and parent.deleted_at:
        raise Refused("that comment was deleted", "parent")
    comment = Comment.objects.create(solution=solution, author=user, text=text, parent=parent)
    _tell_about_comment(comment)
    return comment


def _tell_about_comment(comment: Comment) -> None:
    solution = comment.solution
    told = {comment.author_id}
    for person in (solution.owner, comment.parent.author if comment.parent else None):
        if person is not None and person.pk not in told:
            told.add(person.pk)
            notify(person, NotificationKind.COMMENT, f"{comment.author.username} commented on {solution.name}",
                   url=solution_url(solution) + f"#comment-{comment.pk}", message=comment.text[:500])


def delete_comment(user, comment: Comment) -> None:
    """Gone, unless others replied to it: then its text goes and its place in the thread stays."""
    _require(selectors.can_delete_comment(user, comment), "only its author deletes a comment")
    _require(comment.deleted_at is None, "that comment was deleted already")
    with transaction.atomic():
        if comment.replies.exists():
            comment.text, comment.deleted_at = "", timezone.now()
            comment.save(update_fields=["text", "deleted_at"])
            return
        comment.delete()
        _prune(comment.parent_id)


def _prune(comment_id: int | None) -> None:
    """Up the thread, the deleted comments that have no reply left go for good."""
    while comment_id is not None:
        parent = Comment.objects.filter(pk=comment_id, deleted_at__isnull=False).first()
        if parent is None or parent.replies.exists():
            return
        parent.delete()
        comment_id = parent.parent_id


def toggle_favorite(user, solution: Solution) -> bool:
    """True when it is a favorite now."""
    _require(selectors.can_take_part(user, solution))
    deleted, _ = Favorite.objects.filter(solution=solution, user=user).delete()
    if deleted:
        return False
    Favorite.objects.get_or_create(solution=solution, user=user)
    return True


# ---------------------------------------------------------------- counters

VIEW_WINDOW_SECONDS = 30 * 60


def record_view(solution: Solution, *, viewer=None, visitor: str = "",
                marks: selectors.ViewerMarks | None = None) -> bool:
    """A look at the model page, counted unless it is its owners' own (their editing is not anyone's
    interest) or the same `visitor` (selectors.visitor_key) was counted in the last VIEW_WINDOW_SECONDS:
    a reload or coming back from a tab is not a second reader. Whether it was counted."""
    if selectors.owns(viewer, solution, marks=marks):
        return False
    if visitor and not cache.add(f"marketplace:viewed:{solution.pk}:{visitor}", True, VIEW_WINDOW_SECONDS):
        return False
    Solution.objects.filter(pk=solution.pk).update(view_count=F("view_count") + 1)
    return True


@transaction.atomic
def begin_download(user, revision: Revision, artifact: Artifact | None = None, *, kind: str) -> None:
    """Every download passes here before a byte is sent: the licence gate (licensing's policy: it may
    refuse, or take one download from an agreement), then the Download row and the count, all or
    nothing. `kind`: "bundle", "image", "deployment_bundle" or the artifact's kind."""
    gates.check_download(user, revision, artifact, kind)
    Download.objects.create(solution_id=revision.solution_id, revision=revision, artifact=artifact,
                            user=user if selectors.signed_in(user) else None)
    Solution.objects.filter(pk=revision.solution_id).update(download_count=F("download_count") + 1)


# ---------------------------------------------------------------- search index

def reindex(solution_id) -> None:
    """Refresh the text search reads: name, description, tags, author, licence."""
    solution = Solution.objects.select_related("owner").get(pk=solution_id)
    tags = " ".join(solution.tags.values_list("name", flat=True))
    author = f"{solution.owner.username} {solution.owner.get_full_name()}".strip()
    text = "\n".join([solution.name, solution.description, tags, author, solution.toolkit, solution.licence])
    Solution.objects.filter(pk=solution_id).update(search_text=text.lower())
    if connection.vendor == "postgresql":
        Solution.objects.filter(pk=solution_id).update(search_vector=search_vector_expression())
    catalog_changed()


def search_vector_expression():
    """Name weighs most, then tags and author, then the description (what HF Hub and Acumos rank)."""
    config = selectors.SEARCH_CONFIG
    return (SearchVector("name", weight="A", config=config)
            + SearchVector("search_text", weight="C", config=config))


def set_licence_summary(solution_id, *, label: str, ids: str, rtu_required: bool) -> None:
    """What search shows and filters by, from the latest ready revision's licence (licensing notes it)."""
    changed = (Solution.objects.filter(pk=solution_id)
               .exclude(licence=label[:100], licence_ids=ids[:600], rtu_required=rtu_required)
               .update(licence=label[:100], licence_ids=ids[:600], rtu_required=rtu_required))
    if changed:  # search reads the licence too
        reindex(solution_id)


def on_revision_ready(revision: Revision) -> None:
    """Onboarding finished: refresh the index (licensing has noted the licence), tell the owner."""
    reindex(revision.solution_id)
    if selectors.is_imported(revision.solution):  # nobody uploaded it here: its subscription's run reports it
        return
    notify(revision.created_by, NotificationKind.ONBOARDING_SUCCEEDED,
           f"{revision.solution.name} {revision.version} is onboarded and ready",
           url=f"/revisions/{revision.pk}/")


# ---------------------------------------------------------------- notifications

def notify(user, kind: str, title: str, *, url: str = "", message: str = "", target: str | None = None
           ) -> Notification | None:
    """The one way a notification is made, if the user wants this kind (selectors.wants_notification;
    None when not). The same event (`kind` and `title`) about the same object (`target`, by default
    the page `url` opens, without its anchor) while the user has not read the last one adds to it:
    one row "Hot swap done ×3", the latest time, url and message, not three."""
    if not selectors.wants_notification(user, kind):
        return None
    event = {"user": user, "kind": kind, "title": title[:200], "target": (target_of(url) if target is None
                                                                          else target)[:200]}
    latest = {"url": url, "message": message[:2048]}
    note = _add_to_unread(event, latest) or _first_of(event, latest)
    _forget_unread(user.pk)
    return note


@transaction.atomic
def set_notification_preferences(user, choices: dict[str, bool]) -> None:
    """Which kinds of events `user` hears of (kind: on); the kinds not named keep their setting."""
    unknown = sorted(kind for kind in choices if kind not in NotificationKind.values)
    if unknown:
        raise Refused(f"{unknown[0]!r} is not a kind of notification; the kinds are "
                      f"{', '.join(NotificationKind.values)}", "preferences")
    for kind, enabled in choices.items():
        if kind in ALWAYS_ON_NOTIFICATIONS and not enabled:
            raise Refused(f"\"{NotificationKind(kind).label}\" is always on: it is where you learn that an upload "
                          "of yours failed and why; leave it on", "preferences")
    for kind, enabled in choices.items():
        if kind not in ALWAYS_ON_NOTIFICATIONS:
            NotificationPreference.objects.update_or_create(user=user, kind=kind, defaults={"enabled": enabled})


def target_of(url: str) -> str:
    """The object a page address is about: comments on one model (#comment-5, #comment-6) are one."""
    return url.split("#", 1)[0].split("?", 1)[0]


def _add_to_unread(event: dict, latest: dict) -> Notification | None:
    """One UPDATE: the unread row of this event counts one more (F(): two at once count two)."""
    unread = Notification.objects.filter(read_at__isnull=True, **event)
    if not unread.update(count=F("count") + 1, created=timezone.now(), **latest):
        return None
    return unread.first()


def _first_of(event: dict, latest: dict) -> Notification:
    """A new row; if another process made this event's unread row since _add_to_unread looked (the
    constraint one_unread_notification_per_event says so), it adds to that one instead."""
    try:
        with transaction.atomic():
            return Notification.objects.create(**event, **latest)
    except IntegrityError:
        return _add_to_unread(event, latest) or Notification.objects.create(**event, **latest)


def _forget_unread(user_id: int) -> None:
    key = selectors.unread_key(user_id)
    forget_now_and_on_commit(lambda: cache.delete(key))


def mark_read(user, ids: list[int] | None = None) -> int:
    """Mark these (or all) of `user`'s notifications read; how many changed."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    changed = unread.update(read_at=timezone.now())
    _forget_unread(user.pk)
    return changed


def solution_url(solution: Solution) -> str:
    return f"/models/{solution.pk}/"
