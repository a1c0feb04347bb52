"""POST /api/v1/discovery (a requirement: the matching models, best first, and the near misses, each with
why), POST /api/v1/discovery/deploy (the chosen version deployed in one call: the deployment's id)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from acumos_portal.api.errors import refusals_about
from acumos_portal.api.views import valid
from deployment import selectors as deployment_selectors
from deployment import services as deployment_services
from deployment.api.serializers import DeploymentSerializer
from deployment.api.views import refuse_deploy
from deployment.choices import TargetKind
from discovery import selectors
from discovery.api.serializers import AnswerSerializer, DeployChosenSerializer, RequirementSerializer
from marketplace.selectors import visible_revisions


@extend_schema(tags=["discovery"])
class DiscoveryView(APIView):
    permission_classes = []  # anyone: the answer holds only the models the caller may see

    @extend_schema(request=RequirementSerializer, responses=AnswerSerializer)
    def post(self, request):
        """The models whose newest ready version meets every part of the requirement, best first (by latency,
        then memory), each with why; and the near misses, each with what it misses by. Every part is optional;
        task, inputs and catalog say which models are relevant at all."""
        given = RequirementSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        return Response(AnswerSerializer(selectors.discover(request.user, given.requirement())).data)


@extend_schema(tags=["discovery"])
class DeployChosenView(APIView):
    @extend_schema(request=DeployChosenSerializer, responses={202: DeploymentSerializer})
    def post(self, request):
        """Deploy the chosen version on a target (by default this host's sandboxed runners, if you may use
        them): the answer is the deployment, its `id` to call or follow it with. Who may deploy what is the
        deployments' rule (their owners, licensees, operators, admins)."""
        given = valid(DeployChosenSerializer, request)
        revision = visible_revisions(request.user).filter(pk=given["revision"]).first()
        if revision is None:
            raise exceptions.ValidationError({"revision": ["no such revision"]})
        if not deployment_selectors.can_deploy(request.user, revision, seen=True):
            refuse_deploy(request.user, revision)
        target = _target(request.user, given.get("target"))
        with refusals_about("deployment"):
            deployment, made = deployment_services.deploy_once(
                revision=revision, target=target, user=request.user, name=given.get("name", ""), replicas=1,
                follow=False, idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(DeploymentSerializer(deployment).data,
                        status=status.HTTP_202_ACCEPTED if made else status.HTTP_200_OK)


def _target(user, chosen):
    targets = deployment_selectors.targets_for(user)
    if chosen is not None:
        target = targets.filter(pk=chosen).first()
    else:  # this host first: the sandboxed local runners need nothing set up
        target = targets.filter(kind=TargetKind.LOCAL).first() or targets.order_by("name").first()
    if target is None:
        raise exceptions.ValidationError({"target": ["no enabled target with this id" if chosen else
                                                     "you may use no enabled target: ask an operator for one"]})
    return target
