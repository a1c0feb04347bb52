"""/api/v1/deployments, /api/v1/deployment-operations and /api/v1/deployment-targets. Who may see
and change what comes only from deployment.selectors; what is not visible answers 404. What
deployment.services refuses answers 400 about the deployment; a busy deployment, a grace period not over
and a reused Idempotency-Key 409; a quota reached 429; a licence that refuses (deploy, start, swap in) 403,
or 402 when access is sold, with its code (acumos_portal.api.errors)."""

from __future__ import annotations

import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from acumos_portal.api.errors import refusals_about
from acumos_portal.api.views import VisibleObjectMixin, forbid_unless, valid
from deployment import selectors, services
from deployment.api.serializers import (
    DeploymentChangeSerializer,
    DeploymentSerializer,
    DeployRequestSerializer,
    DestroyRequestSerializer,
    OperationSerializer,
    RollbackRequestSerializer,
    RolloutSerializer,
    RolloutSettingsAnswerSerializer,
    RolloutSettingsSerializer,
    SwapRequestSerializer,
    TargetSerializer,
)
from deployment.models import Operation
from licensing.policy import LicenceDenied
from marketplace.selectors import visible_revisions

ACCEPTED = {202: OperationSerializer}
LICENCE_DENIED = {
    403: OpenApiResponse(description="the model's licence needs an agreement that allows this (codes "
                                     "agreement_not_found, right_to_use_revoked, timing_constraint, usage_exhausted, "
                                     "live_limit_reached, usage_prohibited); the message says what to do"),
    402: OpenApiResponse(description="access is sold by the licensor (code payment_required; details.payment_url)")}
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="A key of yours for this create (e.g. a UUID; 1-255 printable ASCII characters). Sent again "
                "with the same body within 24 hours, it answers 200 with the deployment the first request made "
                "(header Idempotent-Replayed: true) instead of making a second; with another body, 409 "
                "idempotency_key_reused.")
ROLLOUT_ID = OpenApiParameter("rollout_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                              description="the rollout's id (GET /api/v1/deployments/{id}/rollouts)")


@extend_schema(tags=["deployments"])
class DeploymentViewSet(VisibleObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet):
    """Deployments the caller may see. Every change answers 202 with the operation that does it;
    follow it at /api/v1/deployment-operations/{id}."""

    serializer_class = DeploymentSerializer
    filterset_fields = ["status", "target", "revision"]
    not_found_message = "no such deployment"

    def get_queryset(self):
        return selectors.visible_deployments(self.request.user)

    @extend_schema(request=DeployRequestSerializer, parameters=[IDEMPOTENCY_KEY], responses={
        202: DeploymentSerializer,
        200: OpenApiResponse(DeploymentSerializer, description="the Idempotency-Key's earlier request made it"),
        409: OpenApiResponse(description="the Idempotency-Key came with another body (code idempotency_key_reused)"),
        429: OpenApiResponse(description="the caller's live deployments are at the quota "
                                         "(ACUMOS_QUOTA_LIVE_DEPLOYMENTS; code quota_exceeded)"),
        **LICENCE_DENIED})
    def create(self, request):
        given = valid(DeployRequestSerializer, request)
        revision = _revision(request, given["revision"])
        if not selectors.can_deploy(request.user, revision, seen=True):
            refuse_deploy(request.user, revision)
        # Unknown, disabled and not open to this user read the same: which targets exist is not told.
        target = selectors.targets_for(request.user).filter(pk=given["target"]).first()
        if target is None:
            raise exceptions.ValidationError({"target": ["no enabled target with this id"]})
        with refusals_about("deployment"):
            deployment, made = services.deploy_once(
                revision=revision, target=target, user=request.user, name=given.get("name", ""),
                replicas=given["replicas"], follow=given["follow"],
                idempotency_key=request.headers.get("Idempotency-Key"))
        if made:
            return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_200_OK,
                        headers={"Idempotent-Replayed": "true"})

    @extend_schema(request=DeploymentChangeSerializer, responses=DeploymentSerializer)
    def partial_update(self, request, pk=None):
        """Change its own settings: `name`, `shared`. What is not given stays."""
        deployment = self._managed()
        given = valid(DeploymentChangeSerializer, request)
        with refusals_about("deployment"):
            if "name" in given:
                services.rename(deployment, given["name"])
        if "shared" in given:
            forbid_unless(selectors.can_share(request.user, deployment),
                          "only operators, admins and whoever created this deployment share it")
            services.set_shared(deployment, given["shared"])
        return Response(DeploymentSerializer(deployment).data)

    @extend_schema(request=SwapRequestSerializer, responses={**ACCEPTED, **LICENCE_DENIED})
    @action(detail=True, methods=["post"])
    def swap(self, request, pk=None):
        deployment = self._managed()
        revision = _revision(request, valid(SwapRequestSerializer, request)["revision"])
        return _accepted(lambda: services.swap(deployment, revision, request.user))

    @extend_schema(request=RollbackRequestSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        deployment = self._managed()
        generation = valid(RollbackRequestSerializer, request).get("generation")
        return _accepted(lambda: services.rollback(deployment, request.user, generation))

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        deployment = self._managed()
        return _accepted(lambda: services.stop(deployment, request.user))

    @extend_schema(request=None, responses={**ACCEPTED, **LICENCE_DENIED, 429: OpenApiResponse(
        description="starting it would pass the caller's live-deployments quota (code quota_exceeded)")})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        deployment = self._managed()
        return _accepted(lambda: services.start(deployment, request.user))

    @extend_schema(request=DestroyRequestSerializer, responses={**ACCEPTED, 409: OpenApiResponse(
        description="still in its grace period (code grace_period_not_over; details.destroy_after), or busy")})
    @action(detail=True, methods=["post"], url_path="destroy")
    def decommission(self, request, pk=None):
        """The second step of decommissioning: a stopped deployment, after its grace period."""
        deployment = self._managed()
        force = valid(DestroyRequestSerializer, request)["force"]  # services.destroy asks who may
        return _accepted(lambda: services.destroy(deployment, request.user, force=force))

    @extend_schema(request=None, responses=RolloutSerializer(many=True))
    @action(detail=True, methods=["get"])
    def rollouts(self, request, pk=None):
        """Its canary and shadow rollouts, newest first (the last 50)."""
        deployment = self.get_object()
        return Response(RolloutSerializer(selectors.rollouts_of(deployment)[:50], many=True).data)

    @extend_schema(request=None, parameters=[ROLLOUT_ID], responses={**ACCEPTED, 409: OpenApiResponse(
        description="the rollout has ended, its candidate is not held yet (code rollout_not_running), or "
                    "another operation runs (deployment_busy)")})
    @action(detail=True, methods=["post"], url_path=r"rollouts/(?P<rollout_id>[^/.]+)/promote")
    def promote_rollout(self, request, pk=None, rollout_id=None):
        """Promote the candidate now: it becomes the live model, whatever its gates say so far."""
        rollout = self._rollout(self._managed(), rollout_id)
        return _accepted(lambda: services.promote_rollout(rollout, request.user))

    @extend_schema(request=None, parameters=[ROLLOUT_ID], responses={**ACCEPTED, 409: OpenApiResponse(
        description="the rollout has ended (code rollout_not_running), or another operation runs")})
    @action(detail=True, methods=["post"], url_path=r"rollouts/(?P<rollout_id>[^/.]+)/abort")
    def abort_rollout(self, request, pk=None, rollout_id=None):
        """Drop the candidate from every replica; the live model, which never stopped answering, stays."""
        rollout = self._rollout(self._managed(), rollout_id)
        return _accepted(lambda: services.abort_rollout(rollout, request.user))

    @extend_schema(methods=["GET"], request=None, responses=RolloutSettingsAnswerSerializer)
    @extend_schema(methods=["PUT"], request=RolloutSettingsSerializer, responses=RolloutSettingsAnswerSerializer)
    @action(detail=True, methods=["get", "put"], url_path="rollout-settings")
    def rollout_settings(self, request, pk=None):
        """How a new revision of the followed solution reaches it (mode swap, canary or shadow), a canary's
        steps and the gates. PUT: `mode`; `steps` and `gates` when given (a gate left out takes its default)."""
        if request.method == "GET":
            return Response(RolloutSettingsAnswerSerializer(self.get_object()).data)
        deployment = self._managed()
        given = valid(RolloutSettingsSerializer, request)
        with refusals_about("deployment"):
            services.set_rollout_settings(deployment, mode=given["mode"], steps=given.get("steps"),
                                          gates=given.get("gates"))
        return Response(RolloutSettingsAnswerSerializer(deployment).data)

    def _rollout(self, deployment, rollout_id):
        rollout = selectors.rollouts_of(deployment).filter(pk=_uuid_or_none(rollout_id)).first()
        if rollout is None:
            raise exceptions.NotFound("no such rollout")
        return rollout

    def _managed(self):
        deployment = self.get_object()
        forbid_unless(selectors.can_manage(self.request.user, deployment),
                      "only operators, admins and whoever created this deployment change it")
        return deployment


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _revision(request, pk):
    revision = visible_revisions(request.user).filter(pk=pk).first()
    if revision is None:
        raise exceptions.ValidationError({"revision": ["no such revision"]})
    return revision


def refuse_deploy(user, revision) -> None:
    """403: with the licence's code and sentence (request an agreement, it was revoked, it is used up)
    when an agreement is what the user lacks; else because only others deploy this model."""
    refused = selectors.deploy_refusal(user, revision)
    if refused is not None:
        raise LicenceDenied(refused)
    forbid_unless(False, "only operators, admins, the model's owners and its licensees deploy it")


def _accepted(ask) -> Response:
    """The operation `ask` starts, answered 202."""
    with refusals_about("deployment"):
        operation = ask()
    return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["deployments"])
class OperationViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Operations (deploy, swap, rollback, stop, start, destroy) of the deployments the caller may see."""

    serializer_class = OperationSerializer
    filterset_fields = ["deployment", "kind", "status"]
    not_found_message = "no such operation"

    def get_queryset(self):
        deployments = selectors.visible_deployments(self.request.user)
        return Operation.objects.filter(deployment__in=deployments).select_related("requested_by")


@extend_schema(tags=["deployments"])
class TargetViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """The enabled targets the caller may deploy to (admins configure them in the portal): every one
    for operators and admins; for anyone else, those open to model owners (`deployers` "owners")."""

    serializer_class = TargetSerializer
    not_found_message = "no such target"

    def get_queryset(self):
        return selectors.targets_for(self.request.user)
