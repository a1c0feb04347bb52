"""The admins' federation API, /api/v1/federation/: peers (with ping, status actions and the catalogs
granted to them), subscriptions (with runs started by hand) and runs with their results. Admins
only: anyone else signed in is answered 403, anonymous callers 401. What federation.services refuses
answers 400 about the field it names (acumos_portal.api.errors); no answer carries a key."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from acumos_portal.accounts.models import User
from acumos_portal.api.errors import refusals_about
from acumos_portal.api.views import NO_CONTENT, VisibleObjectMixin, valid
from federation import selectors, services
from federation.api.admin_serializers import (
    GrantInput,
    GrantSerializer,
    PeerChangeInput,
    PeerInput,
    PeerSerializer,
    PingResultSerializer,
    RunInput,
    SubscriptionChangeInput,
    SubscriptionInput,
    SubscriptionSerializer,
    SyncRunDetailSerializer,
    SyncRunSerializer,
)
from federation.choices import PeerStatus
from federation.models import Peer
from marketplace.choices import CatalogAccess
from marketplace.models import Catalog
from marketplace.selectors import signed_in

CATALOG_ID = OpenApiParameter("catalog_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                              description="the granted catalog's id")


class FederationAdmins(permissions.BasePermission):
    """Admins of this site only (as in Acumos); DRF answers 401 to a caller who is not signed in."""

    message = "only an admin of this site manages federation"

    def has_permission(self, request, view):
        return signed_in(request.user) and selectors.can_manage_federation(request.user)


class FederationViewSet(VisibleObjectMixin, viewsets.GenericViewSet):
    permission_classes = [FederationAdmins]


# ---------------------------------------------------------------- peers

@extend_schema(tags=["federation"])
class PeerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FederationViewSet):
    """Other marketplaces: those that asked to join (status RQ) first, then by name."""

    serializer_class = PeerSerializer
    filterset_fields = ["status"]
    not_found_message = "no such peer"

    def get_queryset(self):
        return selectors.peers_listed().prefetch_related("grants")

    def _answer(self, peer: Peer, code: int = status.HTTP_200_OK) -> Response:
        return Response(PeerSerializer(self.get_queryset().get(pk=peer.pk)).data, status=code)

    @extend_schema(request=PeerInput, responses={201: PeerSerializer})
    def create(self, request):
        given = valid(PeerInput, request)
        with refusals_about("peer"):
            peer = services.register_peer(request.user, **given)
        return self._answer(peer, status.HTTP_201_CREATED)

    @extend_schema(request=PeerChangeInput, responses=PeerSerializer)
    def partial_update(self, request, pk=None):
        peer = self.get_object()
        given = valid(PeerChangeInput, request)
        with refusals_about("peer"):
            services.update_peer(request.user, peer, **given)
        return self._answer(peer)

    @extend_schema(responses=NO_CONTENT)
    def destroy(self, request, pk=None):
        """Its subscriptions go with it; what they imported stays."""
        services.delete_peer(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=PingResultSerializer)
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        """Ask the peer who it is, over mutual TLS: `ok` false with the reason when it does not answer
        (or when this site has no identity yet)."""
        return Response(PingResultSerializer(services.ping(request.user, self.get_object())).data)

    @extend_schema(request=None, responses=PeerSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Approve a requested peer, or activate an inactive or declined one."""
        return self._status(PeerStatus.ACTIVE)

    @extend_schema(request=None, responses=PeerSerializer)
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        return self._status(PeerStatus.INACTIVE)

    @extend_schema(request=None, responses=PeerSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        return self._status(PeerStatus.DECLINED)

    def _status(self, wanted: str) -> Response:
        peer = self.get_object()
        with refusals_about("status"):
            services.set_status(self.request.user, peer, wanted)
        return self._answer(peer)

    @extend_schema(methods=["GET"], request=None, responses=GrantSerializer(many=True))
    @extend_schema(methods=["POST"], request=GrantInput, responses={201: GrantSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_fields=[])
    def grants(self, request, pk=None):
        """The restricted catalogs the peer may read (public ones every active peer reads); POST grants one."""
        peer = self.get_object()
        if request.method == "GET":
            return Response(GrantSerializer(selectors.grants_of(peer), many=True).data)
        catalog = _restricted_catalog(valid(GrantInput, request)["catalog"])
        made = services.grant(request.user, peer, catalog)
        return Response(GrantSerializer(made).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[CATALOG_ID], request=None, responses=NO_CONTENT)
    @action(detail=True, methods=["delete"], url_path=r"grants/(?P<catalog_id>[0-9a-fA-F-]{36})",
            url_name="grant")
    def revoke_grant(self, request, pk=None, catalog_id=None):
        """The peer may no longer read this catalog (nothing happens if it could not)."""
        peer = self.get_object()
        catalog = Catalog.objects.filter(pk=catalog_id).first()
        if catalog is None:
            raise exceptions.NotFound("no such catalog")
        services.revoke(request.user, peer, catalog)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _restricted_catalog(pk) -> Catalog:
    catalog = Catalog.objects.filter(pk=pk).first()
    if catalog is None:
        raise exceptions.ValidationError({"catalog": ["no such catalog"]})
    if catalog.access == CatalogAccess.PUBLIC:
        raise exceptions.ValidationError({"catalog": [f"{catalog.name} is public: every active peer reads it "
                                                      "without a grant"]})
    return catalog


# ---------------------------------------------------------------- subscriptions

@extend_schema(tags=["federation"])
class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FederationViewSet):
    """Catalogs of peers this site imports, each with its latest run and what still fails."""

    serializer_class = SubscriptionSerializer
    filterset_fields = ["peer", "enabled"]
    not_found_message = "no such subscription"

    def get_queryset(self):
        return selectors.subscriptions_for(self.request.user)

    @extend_schema(request=SubscriptionInput, responses={201: SubscriptionSerializer})
    def create(self, request):
        given = valid(SubscriptionInput, request)
        peer = Peer.objects.filter(pk=given.pop("peer")).first()
        if peer is None:
            raise exceptions.ValidationError({"peer": ["no such peer"]})
        given["owner"] = _owner(given.get("owner"), request.user)
        with refusals_about("subscription"):
            made = services.subscribe(request.user, peer, **given)
        return Response(SubscriptionSerializer(made).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SubscriptionChangeInput, responses=SubscriptionSerializer)
    def partial_update(self, request, pk=None):
        """Its interval, its policy when the origin withdraws a model, and whether it runs on its interval."""
        subscription = self.get_object()
        given = valid(SubscriptionChangeInput, request)
        with refusals_about("subscription"):
            services.update_subscription(request.user, subscription, **given)
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(responses=NO_CONTENT)
    def destroy(self, request, pk=None):
        """Nothing more is imported; what was imported stays."""
        services.unsubscribe(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RunInput, responses={202: SyncRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """A run now (`dry_run`: says what it would do and changes nothing), or the one already going;
        follow it at /api/v1/federation/runs/{id}."""
        subscription = self.get_object()
        dry_run = valid(RunInput, request)["dry_run"]
        with refusals_about("subscription"):
            started = services.start_run(request.user, subscription, dry_run=dry_run)
        return Response(SyncRunSerializer(started).data, status=status.HTTP_202_ACCEPTED)


def _owner(username: str | None, caller):
    if not username:
        return caller
    found = User.objects.filter(username=username, is_active=True).first()
    if found is None:
        raise exceptions.ValidationError({"owner": [f"no active user is named {username}"]})
    return found


# ---------------------------------------------------------------- runs

@extend_schema(tags=["federation"])
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FederationViewSet):
    """Runs of subscriptions, newest first; one run with what it did with each revision."""

    filterset_fields = ["subscription", "status", "dry_run"]
    not_found_message = "no such run"

    def get_queryset(self):
        return selectors.runs_for(self.request.user).select_related("requested_by")

    def get_serializer_class(self):
        return SyncRunDetailSerializer if self.action == "retrieve" else SyncRunSerializer

    @extend_schema(responses={200: SyncRunDetailSerializer, 404: OpenApiResponse(description="no such run")})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)
