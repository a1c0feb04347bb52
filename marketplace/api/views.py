"""REST API over the marketplace: solutions (search, ratings, comments, favorites, sharing, soft
delete), revisions and artifacts (with downloads), catalogs, publications, publish requests and
notifications.

What a user may see comes only from marketplace.selectors: anything else answers 404, exactly as
if it did not exist. What they may see but not change answers 403 (as the image build and
deployment APIs do); anonymous callers get 401 wherever a user is needed. What marketplace.services
refuses answers 400 with the field it is about."""

from __future__ import annotations

from dataclasses import asdict

from django.db.models import Case, Q, Value, When
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from acumos_portal.api.errors import refusals_about
from acumos_portal.api.pagination import Pagination
from acumos_portal.api.views import (
    FILE_RESPONSE,
    NO_CONTENT,
    READ_OR_SIGNED_IN,
    SIGNED_IN,
    AnyAcceptNegotiation,
    ListFiltersOnlyMixin,
    VisibleObjectMixin,
    forbid_unless,
    valid,
)
from marketplace import downloads, selectors, services
from marketplace.api.filters import (
    ArtifactFilter,
    NotificationFilter,
    PublicationFilter,
    PublishRequestFilter,
    RevisionFilter,
    SolutionFilter,
)
from marketplace.api.serializers import (
    ApproveInput,
    ArtifactSerializer,
    CardSerializer,
    CatalogSerializer,
    CommentInput,
    CommentSerializer,
    DeclineInput,
    DeletedSolutionSerializer,
    DescriptionSerializer,
    FavoriteSerializer,
    MarkedReadSerializer,
    MarkReadInput,
    NotificationPreferencesInput,
    NotificationPreferencesSerializer,
    NotificationSerializer,
    PublicationSerializer,
    PublishInput,
    PublishRequestSerializer,
    RatingInput,
    RatingSerializer,
    RevisionDetailSerializer,
    RevisionSerializer,
    ShareInput,
    SolutionDetailsInput,
    SolutionSearchSerializer,
    SolutionSerializer,
    SolutionShareSerializer,
    UnreadCountSerializer,
)
from marketplace.choices import RequestStatus, RevisionStatus
from marketplace.models import Comment, Favorite, Publication, PublishRequest, Rating, Revision, Solution


class ReadOrAdmin(permissions.BasePermission):
    """Anyone reads (what the queryset lets them see); only portal admins change (catalogs only)."""

    message = "only admins manage catalogs"

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or selectors.is_admin(request.user)


# ---------------------------------------------------------------- solutions

def search_params(request) -> selectors.SearchParams:
    given = SolutionSearchSerializer(data=request.query_params)
    given.is_valid(raise_exception=True)
    fields = {name: value for name, value in given.validated_data.items() if value}
    if "catalog" in fields:
        fields["catalog"] = str(fields["catalog"])
    return selectors.SearchParams(**fields)


USER_ID = OpenApiParameter("user_id", int, OpenApiParameter.PATH, description="the co-owner's user id")
COMMENT_ID = OpenApiParameter("comment_id", int, OpenApiParameter.PATH)


@extend_schema(tags=["marketplace"])
class SolutionViewSet(ListFiltersOnlyMixin, VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Solutions (models) the caller may see: anyone reads the public ones; signed-in users also
    those of restricted catalogs, their own and those shared with them. The list searches and
    filters exactly as the browse page does."""

    serializer_class = SolutionSerializer
    filterset_class = SolutionFilter
    permission_classes = READ_OR_SIGNED_IN
    not_found_message = "no such solution"

    def get_queryset(self):
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to search with
            return Solution.objects.none()
        if self.action == "list":
            solutions = selectors.search_solutions(user, search_params(self.request))
        elif self.action in ("deleted", "restore"):
            # Deleted models are no one's to see but those who manage them, revisions included.
            solutions = selectors.deleted_solutions(user).order_by("-deleted_at", "id")
            return selectors.decorate_solutions(solutions, user, revisions=Revision.objects.all())
        else:
            solutions = selectors.visible_solutions(user).order_by("-modified", "id")
        return selectors.decorate_solutions(solutions, user)

    @extend_schema(parameters=[SolutionSearchSerializer])
    def list(self, request, *args, **kwargs):
        """Search (`q`) and filter; `sort` is recent, name, rating, downloads, views or relevance.
        Relevance (the default with `q` on PostgreSQL) ranks the ACUMOS_RANK_WINDOW (500) most recently
        updated matches, so `count` is at most that; any other `sort` lists every match."""
        return super().list(request, *args, **kwargs)

    def _page(self, items, serializer_class) -> Response:
        page = self.paginate_queryset(items)
        return self.get_paginated_response(serializer_class(page, many=True).data)

    def _reread(self, solution: Solution) -> dict:
        fresh = selectors.decorate_solutions(selectors.visible_solutions(self.request.user), self.request.user).get(
            pk=solution.pk)
        return SolutionSerializer(fresh).data

    def _managed(self) -> Solution:
        solution = self.get_object()
        forbid_unless(selectors.can_change_solution(self.request.user, solution),
                      "only the model's owner, its co-owners and admins change it")
        return solution

    # -------------------------------------------- ratings

    @extend_schema(methods=["GET"], responses=RatingSerializer(many=True), filters=False)
    @extend_schema(methods=["POST"], request=RatingInput, responses={200: RatingSerializer, 201: RatingSerializer})
    @extend_schema(methods=["DELETE"], request=None, responses=NO_CONTENT)
    @action(detail=True, methods=["get", "post", "delete"])
    def ratings(self, request, pk=None):
        """Its ratings and reviews, newest first. POST rates it (again: replaces yours); DELETE removes yours."""
        solution = self.get_object()
        if request.method == "GET":
            return self._page(selectors.ratings_of(solution), RatingSerializer)
        if request.method == "DELETE":
            return self._unrate(solution)
        given = valid(RatingInput, request)
        rated_before = Rating.objects.filter(solution=solution, user=request.user).exists()
        with refusals_about("solution"):
            rating = services.rate(request.user, solution, given["stars"], given["review"])
        answer = status.HTTP_200_OK if rated_before else status.HTTP_201_CREATED
        return Response(RatingSerializer(rating).data, status=answer)

    def _unrate(self, solution: Solution) -> Response:
        if not Rating.objects.filter(solution=solution, user=self.request.user).exists():
            raise exceptions.NotFound("you have not rated this model")
        services.unrate(self.request.user, solution)
        return Response(status=status.HTTP_204_NO_CONTENT)

    # -------------------------------------------- comments

    @extend_schema(methods=["GET"], responses=CommentSerializer(many=True), filters=False)
    @extend_schema(methods=["POST"], request=CommentInput, responses={201: CommentSerializer})
    @action(detail=True, methods=["get", "post"])
    def comments(self, request, pk=None):
        """Its comments, oldest first and flat: a reply names its `parent`. POST adds one (or a reply)."""
        solution = self.get_object()
        if request.method == "GET":
            comments = Comment.objects.filter(solution=solution).select_related("author").order_by("created", "id")
            return self._page(comments, CommentSerializer)
        given = valid(CommentInput, request)
        parent = self._parent(solution, given.get("parent"))
        with refusals_about("solution"):
            comment = services.add_comment(request.user, solution, given["text"], parent)
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _parent(solution: Solution, parent_id: int | None) -> Comment | None:
        if parent_id is None:
            return None
        parent = Comment.objects.filter(pk=parent_id, solution=solution).first()
        if parent is None:
            raise exceptions.ValidationError({"parent": ["no such comment on this model"]})
        return parent

    @extend_schema(request=None, responses=NO_CONTENT, parameters=[COMMENT_ID])
    @action(detail=True, methods=["delete"], url_path=r"comments/(?P<comment_id>[0-9]+)",
            permission_classes=SIGNED_IN)
    def delete_comment(self, request, pk=None, comment_id=None):
        """Delete a comment (yours; admins: anyone's). One with replies stays as a placeholder
        (`deleted`, no author, no text), so the replies keep their thread."""
        comment = Comment.objects.filter(pk=comment_id, solution=self.get_object(), deleted_at__isnull=True).first()
        if comment is None:
            raise exceptions.NotFound("no such comment on this model")
        forbid_unless(selectors.can_delete_comment(request.user, comment), "only its author deletes a comment")
        services.delete_comment(request.user, comment)
        return Response(status=status.HTTP_204_NO_CONTENT)

    # -------------------------------------------- favorites

    @extend_schema(request=None, responses={200: FavoriteSerializer})
    @action(detail=True, methods=["post", "delete"], permission_classes=SIGNED_IN)
    def favorite(self, request, pk=None):
        """POST makes it one of your favorites, DELETE not; either answers how many people favor it."""
        solution = self.get_object()
        wanted = request.method == "POST"
        if solution.is_favorite != wanted:
            with refusals_about("solution"):
                services.toggle_favorite(request.user, solution)
        return Response({"favorite": wanted, "count": Favorite.objects.filter(solution=solution).count()})

    # -------------------------------------------- owning

    @extend_schema(responses=SolutionShareSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], permission_classes=SIGNED_IN)
    def shares(self, request, pk=None):
        """Its co-owners (for those who manage it)."""
        shares = self._managed().shares.select_related("user", "shared_by").order_by("created", "id")
        return self._page(shares, SolutionShareSerializer)

    @extend_schema(request=ShareInput, responses={201: SolutionShareSerializer})
    @action(detail=True, methods=["post"], permission_classes=SIGNED_IN)
    def share(self, request, pk=None):
        """Make someone a co-owner: they see it and manage it like its owner (but do not delete it)."""
        solution = self._managed()
        username = valid(ShareInput, request)["username"]
        with refusals_about("username"):
            shared = services.share(request.user, solution, username)
        return Response(SolutionShareSerializer(shared).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=NO_CONTENT, parameters=[USER_ID])
    @action(detail=True, methods=["delete"], url_path=r"shares/(?P<user_id>[0-9]+)", permission_classes=SIGNED_IN)
    def unshare(self, request, pk=None, user_id=None):
        """Stop sharing it with this co-owner."""
        solution = self._managed()
        if not solution.shares.filter(user_id=user_id).exists():
            raise exceptions.NotFound("this user is not a co-owner of this model")
        services.unshare(request.user, solution, int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=SolutionDetailsInput, responses=SolutionSerializer)
    @action(detail=True, methods=["patch"], permission_classes=SIGNED_IN)
    def details(self, request, pk=None):
        """Change its description (Markdown), tags or model type; what is not given stays."""
        solution = self._managed()
        given = valid(SolutionDetailsInput, request)
        with refusals_about("solution"):
            services.update_details(
                request.user, solution, description=given.get("description", solution.description),
                tags=given.get("tags", [tag.name for tag in solution.tags.all()]),
                model_type=given.get("model_type", solution.model_type))
        return Response(self._reread(solution))

    # Not named `delete`: a view's attribute by that name would also answer HTTP DELETE.
    @extend_schema(request=None, responses=NO_CONTENT)
    @action(detail=True, methods=["post"], url_path="delete", permission_classes=SIGNED_IN)
    def soft_delete(self, request, pk=None):
        """Soft delete: hidden everywhere but your deleted list (GET /solutions/deleted) until restored."""
        solution = self._managed()
        forbid_unless(selectors.can_delete_solution(request.user, solution),
                      "only the model's owner or an admin deletes it")
        services.soft_delete(request.user, solution)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=SolutionSerializer)
    @action(detail=True, methods=["post"], permission_classes=SIGNED_IN)
    def restore(self, request, pk=None):
        """Bring back a deleted model you manage."""
        solution = self.get_object()
        forbid_unless(selectors.can_delete_solution(request.user, solution),
                      "only the model's owner or an admin restores it")
        services.restore(request.user, solution)
        return Response(self._reread(solution))

    @extend_schema(responses=DeletedSolutionSerializer(many=True), filters=False)
    @action(detail=False, methods=["get"], permission_classes=SIGNED_IN)
    def deleted(self, request):
        """The deleted models you manage, most recently deleted first."""
        return self._page(self.get_queryset(), DeletedSolutionSerializer)


# ---------------------------------------------------------------- revisions

@extend_schema(tags=["marketplace"])
class RevisionViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Revisions (versions) of the solutions the caller may see; `?solution=<id>` for one solution's."""

    filterset_class = RevisionFilter
    permission_classes = READ_OR_SIGNED_IN
    not_found_message = "no such revision"

    def get_queryset(self):
        return selectors.visible_revisions(self.request.user).select_related("created_by")

    def get_serializer_class(self):
        return RevisionDetailSerializer if self.action == "retrieve" else RevisionSerializer

    @extend_schema(responses=ArtifactSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, serializer_class=ArtifactSerializer)
    def artifacts(self, request, pk=None):
        """The artifacts of one revision."""
        revision = self.get_object()
        artifacts = selectors.visible_artifacts(request.user).filter(revision=revision)
        page = self.paginate_queryset(artifacts)
        return self.get_paginated_response(ArtifactSerializer(page, many=True).data)

    @extend_schema(responses={200: FILE_RESPONSE}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, content_negotiation_class=AnyAcceptNegotiation)
    def bundle(self, request, pk=None):
        """A zip of metadata.json, model.proto, modelpackage.zip (and license.json): what `runner_image serve` takes."""
        revision = self.get_object()
        if revision.status != RevisionStatus.READY:
            raise exceptions.NotFound(f"version {revision.version} is still onboarding: it has no bundle yet")
        services.begin_download(request.user, revision, kind="bundle")
        return downloads.bundle_response(revision)

    @extend_schema(request=CardSerializer, responses=DescriptionSerializer, filters=False)
    @action(detail=True, methods=["get", "put"], url_path="description", filterset_class=None,
            serializer_class=DescriptionSerializer)
    def described(self, request, pk=None):  # not `description`: DRF gives a view that attribute of its own
        """What the version says of itself (its model card: task, hyperparameters, explainability, evaluation,
        intended use, limitations), what the portal read from its files (framework, methods and fields) and
        measured (resources). PUT `{"card": {...}}` changes the card: its owners only; a 400 names the field."""
        revision = self.get_object()
        if request.method == "PUT":
            given = CardSerializer(data=request.data)
            given.is_valid(raise_exception=True)
            with refusals_about("card"):
                revision = services.set_card(request.user, revision, given.validated_data["card"])
        return Response(DescriptionSerializer(revision).data)


# ---------------------------------------------------------------- artifacts

@extend_schema(tags=["marketplace"])
class ArtifactViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Artifacts of the revisions the caller may see; `?revision=<id>` for one revision's."""

    serializer_class = ArtifactSerializer
    filterset_class = ArtifactFilter
    permission_classes = READ_OR_SIGNED_IN
    not_found_message = "no such artifact"

    def get_queryset(self):
        return selectors.visible_artifacts(self.request.user)

    @extend_schema(responses={200: FILE_RESPONSE}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, content_negotiation_class=AnyAcceptNegotiation)
    def download(self, request, pk=None):
        """The artifact's file, streamed, with its sha256 in `ETag` and `X-Checksum-Sha256`."""
        artifact = self.get_object()
        if artifact.blob_id is None:
            raise exceptions.NotFound("this artifact is a reference, not a file; see its uri")
        services.begin_download(request.user, artifact.revision, artifact, kind=artifact.name)
        return downloads.artifact_response(artifact)


# ---------------------------------------------------------------- catalogs

@extend_schema(tags=["publishing"])
class CatalogViewSet(VisibleObjectMixin, viewsets.ModelViewSet):
    """Catalogs: anyone sees the public ones, signed-in users the restricted ones too; admins manage them."""

    serializer_class = CatalogSerializer
    filterset_fields = ["access", "self_publish"]
    permission_classes = [ReadOrAdmin]
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]
    not_found_message = "no such catalog"

    def get_queryset(self):
        return selectors.visible_catalogs(self.request.user).order_by("name")

    @extend_schema(responses=NO_CONTENT)
    def destroy(self, request, *args, **kwargs):
        """Only an empty catalog goes: unpublish its models and settle its pending requests first."""
        catalog = self.get_object()
        with refusals_about("catalog"):
            services.delete_catalog(catalog)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- publications

@extend_schema(tags=["publishing"])
class PublicationViewSet(VisibleObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Revisions in catalogs, as far as the caller may see both. POST publishes (or asks to); DELETE unpublishes."""

    serializer_class = PublicationSerializer
    filterset_class = PublicationFilter
    permission_classes = READ_OR_SIGNED_IN
    not_found_message = "no such publication"

    def get_queryset(self):
        user = self.request.user
        return (Publication.objects
                .filter(catalog__in=selectors.visible_catalogs(user), solution__in=selectors.visible_solutions(user))
                .select_related("catalog", "solution", "revision", "published_by", "approved_by")
                .order_by("-created", "-id"))

    @extend_schema(request=PublishInput, responses={
        201: OpenApiResponse(PublicationSerializer, description="published: the catalog is self-publish"),
        202: OpenApiResponse(PublishRequestSerializer, description="a publisher must approve: the request")})
    def create(self, request):
        given = valid(PublishInput, request)
        revision = self._revision(given["revision"])
        catalog = selectors.visible_catalogs(request.user).filter(pk=given["catalog"]).first()
        if catalog is None:
            raise exceptions.ValidationError({"catalog": ["no such catalog"]})
        with refusals_about("revision"):
            made = services.publish(request.user, revision, catalog, given["message"])
        if isinstance(made, PublishRequest):
            return Response(PublishRequestSerializer(made).data, status=status.HTTP_202_ACCEPTED)
        return Response(PublicationSerializer(made).data, status=status.HTTP_201_CREATED)

    def _revision(self, pk) -> Revision:
        revision = selectors.visible_revisions(self.request.user).filter(pk=pk).first()
        if revision is None:
            raise exceptions.ValidationError({"revision": ["no such revision"]})
        forbid_unless(selectors.can_change_solution(self.request.user, revision.solution),
                      "only the model's owner, its co-owners and admins publish it")
        return revision

    @extend_schema(responses=NO_CONTENT)
    def destroy(self, request, *args, **kwargs):
        """Unpublish: the revision leaves this catalog (the model stays, as do its other publications)."""
        publication = self.get_object()
        forbid_unless(selectors.can_change_solution(request.user, publication.solution),
                      "only the model's owner, its co-owners and admins unpublish it")
        services.unpublish(request.user, publication)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- publish requests

PENDING_FIRST = Case(When(status=RequestStatus.PENDING, then=Value(0)), default=Value(1))


@extend_schema(tags=["publishing"])
class PublishRequestViewSet(ListFiltersOnlyMixin, VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """The requests on models you manage, and for publishers the ones they review; pending first.
    A publisher never reviews their own model's request: that answers 400 (you see it as its owner)."""

    serializer_class = PublishRequestSerializer
    filterset_class = PublishRequestFilter
    permission_classes = SIGNED_IN
    not_found_message = "no such publish request"

    def get_queryset(self):
        user = self.request.user
        seen = Q(pk__in=selectors.requests_of(user).values("pk"))
        if selectors.is_publisher(user):
            seen |= Q(pk__in=selectors.reviewable_requests(user).values("pk"))
        return (PublishRequest.objects.filter(seen)
                .select_related("solution", "revision", "catalog", "requested_by", "reviewed_by")
                .order_by(PENDING_FIRST, "-created", "-id"))

    def _answer(self, publish_request: PublishRequest) -> Response:
        return Response(PublishRequestSerializer(self.get_queryset().get(pk=publish_request.pk)).data)

    def _to_review(self) -> PublishRequest:
        publish_request = self.get_object()
        forbid_unless(selectors.is_publisher(self.request.user), "only publishers review publish requests")
        return publish_request

    @extend_schema(request=ApproveInput, responses=PublishRequestSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Publish the revision in the catalog; the owner is told (with your comment, if any)."""
        publish_request = self._to_review()
        comment = valid(ApproveInput, request)["comment"]
        with refusals_about("publish_request"):
            services.approve(request.user, publish_request, comment)
        return self._answer(publish_request)

    @extend_schema(request=DeclineInput, responses=PublishRequestSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        """Refuse it, saying why in `comment`: the owner reads it."""
        publish_request = self._to_review()
        comment = valid(DeclineInput, request)["comment"]
        with refusals_about("publish_request"):
            services.decline(request.user, publish_request, comment)
        return self._answer(publish_request)

    @extend_schema(request=None, responses=PublishRequestSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        """Take back a pending request on a model you manage."""
        publish_request = self.get_object()
        forbid_unless(selectors.can_change_solution(request.user, publish_request.solution),
                      "only the model's owner, its co-owners and admins withdraw its requests")
        with refusals_about("publish_request"):
            services.withdraw(request.user, publish_request)
        return self._answer(publish_request)


# ---------------------------------------------------------------- notifications

class NotificationPagination(Pagination):
    """Pages of notifications that also say how many are unread (the bell's number)."""

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["unread"] = selectors.unread_count(self.request.user)
        return response

    def get_paginated_response_schema(self, schema):
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["unread"] = {"type": "integer", "description": "how many of yours are unread"}
        answer["required"] = [*answer.get("required", []), "unread"]
        return answer


@extend_schema(tags=["notifications"])
class NotificationViewSet(ListFiltersOnlyMixin, VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Your notifications, newest first; `?unread=true` for the unread ones."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    pagination_class = NotificationPagination
    permission_classes = SIGNED_IN
    not_found_message = "no such notification"

    def get_queryset(self):
        return selectors.notifications_of(self.request.user)

    @extend_schema(request=MarkReadInput, responses=MarkedReadSerializer)
    @action(detail=False, methods=["post"])
    def read(self, request):
        """Mark these (`ids`) or, with no `ids`, all of your notifications read."""
        ids = valid(MarkReadInput, request).get("ids")
        marked = services.mark_read(request.user, ids)
        return Response({"marked": marked, "unread": selectors.unread_count(request.user)})

    @extend_schema(responses=UnreadCountSerializer, filters=False)
    @action(detail=False, methods=["get"], url_path="unread-count")
    def unread_count(self, request):
        """How many of yours are unread: what the bell shows."""
        return Response({"unread": selectors.unread_count(request.user)})

    @extend_schema(methods=["GET"], responses=NotificationPreferencesSerializer, filters=False)
    @extend_schema(methods=["PUT"], request=NotificationPreferencesInput, responses=NotificationPreferencesSerializer)
    @action(detail=False, methods=["get", "put"], filterset_class=None, pagination_class=None)
    def preferences(self, request):
        """Which kinds of events you are told of, grouped, each on unless you turned it off. PUT sets the
        kinds it lists (the GET answer, changed, may be sent back as it is); the others keep their setting.
        Some are always on (`always_on`): turning one off answers 400."""
        if request.method == "PUT":
            given = valid(NotificationPreferencesInput, request)["preferences"]
            with refusals_about("preferences"):
                services.set_notification_preferences(request.user, {c["kind"]: c["enabled"] for c in given})
        return Response({"preferences": [asdict(choice) for choice in selectors.notification_choices(request.user)]})
