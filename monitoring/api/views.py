"""A model's or a deployment's retraining hook: read, set, remove, rotate its secret, call it (the button), and
list its deliveries; a deployment's alert rules (read, set, reset) and its alerts.

Who may comes from monitoring.hooks (can_change_hook, can_deliver_now) and, for rules, from
deployment.selectors.can_manage (monitoring.alerts.set_rule asks it): what the caller cannot see answers 404 as
everywhere; what they see but may not change, 403. Alert rules and alerts are read by whoever sees the deployment.
Refusals answer 400 about their field (the URL guard's message says what is wrong with the URL; a rule's values go
to set_rule as sent, whose message says what the field may be), 403 or 404."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from acumos_portal.api.errors import refusals_about
from acumos_portal.api.views import NO_CONTENT, forbid_unless, valid
from deployment.selectors import visible_deployments
from marketplace.selectors import visible_solutions
from monitoring import alerts, hooks
from monitoring.api.serializers import (
    AlertRuleInputSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    DeliverySerializer,
    HookInputSerializer,
    HookSerializer,
    NewSecretHookSerializer,
)
from monitoring.choices import AlertState
from monitoring.models import Alert, HookDelivery

NEW_SECRET = {201: NewSecretHookSerializer,
              200: OpenApiResponse(HookSerializer, description="changed (the secret stays; it is not answered)")}


class SolutionSubject:
    """The solution of the URL, if the caller may see it and change its hook."""

    def subject(self):
        solution = visible_solutions(self.request.user).filter(pk=self.kwargs["pk"]).first()
        if solution is None:
            raise exceptions.NotFound("no such solution")
        forbid_unless(hooks.can_change_hook(self.request.user, solution),
                      "only this model's owners or an admin may see or change its retraining hook")
        return solution

    def deliveries(self, solution):
        return HookDelivery.objects.filter(hook__solution=solution)


class DeploymentSubject:
    def subject(self):
        deployment = visible_deployments(self.request.user).filter(pk=self.kwargs["pk"]).first()
        if deployment is None:
            raise exceptions.NotFound("no such deployment")
        forbid_unless(hooks.can_change_hook(self.request.user, deployment),
                      "only whoever created this deployment, an operator or an admin may see or change its hook")
        return deployment

    def deliveries(self, deployment):
        """Every event about this deployment: to its own hook, or to its model's."""
        return HookDelivery.objects.filter(deployment=deployment)


@extend_schema(tags=["hooks"])
class HookView(APIView):
    @extend_schema(responses={200: HookSerializer, 404: OpenApiResponse(description="no hook is set")})
    def get(self, request, pk):
        """The hook (never its secret)."""
        hook = hooks.hook_of(self.subject())
        if hook is None:
            raise exceptions.NotFound("no retraining hook is set here")
        return Response(HookSerializer(hook).data)

    @extend_schema(request=HookInputSerializer, responses=NEW_SECRET)
    def put(self, request, pk):
        """Set the hook. A new one answers 201 with its `secret` (shown this once); a changed one 200."""
        subject = self.subject()
        given = valid(HookInputSerializer, request)
        with refusals_about("hook"):
            hook, secret = hooks.set_hook(subject, url=given["url"], enabled=given["enabled"],
                                          on_alert=given.get("on_alert"), user=request.user)
        if secret:
            return Response(NewSecretHookSerializer(hook, context={"secret": secret}).data,
                            status=status.HTTP_201_CREATED)
        return Response(HookSerializer(hook).data)

    @extend_schema(responses=NO_CONTENT)
    def delete(self, request, pk):
        """Remove the hook, with its deliveries; the tokens they carried are revoked."""
        with refusals_about("hook"):
            hooks.remove_hook(self.subject(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["hooks"])
class HookRotateView(APIView):
    @extend_schema(request=None, responses={200: NewSecretHookSerializer})
    def post(self, request, pk):
        """A new secret, answered this once; the old one stops signing at once."""
        with refusals_about("hook"):
            hook, secret = hooks.rotate_secret(self.subject(), user=request.user)
        return Response(NewSecretHookSerializer(hook, context={"secret": secret}).data)


@extend_schema(tags=["hooks"])
class HookDeliveriesView(generics.ListAPIView):
    """The events sent, newest first: status, attempts, each attempt's outcome, the last answer."""

    serializer_class = DeliverySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL, no user
            return HookDelivery.objects.none()
        return self.deliveries(self.subject()).select_related("requested_by").order_by("-created")


class SolutionHookView(SolutionSubject, HookView):
    pass


class SolutionHookRotateView(SolutionSubject, HookRotateView):
    pass


class SolutionHookDeliveriesView(SolutionSubject, HookDeliveriesView):
    pass


class DeploymentHookView(DeploymentSubject, HookView):
    pass


class DeploymentHookRotateView(DeploymentSubject, HookRotateView):
    pass


class DeploymentHookDeliveriesView(DeploymentSubject, HookDeliveriesView):
    pass


@extend_schema(tags=["hooks"])
class DeploymentHookDeliverView(DeploymentSubject, APIView):
    @extend_schema(request=None, responses={202: DeliverySerializer,
                                            404: OpenApiResponse(description="no hook applies to it")})
    def post(self, request, pk):
        """Call the deployment's hook now (its own, else its model's) with a `manual` event."""
        deployment = visible_deployments(request.user).filter(pk=pk).first()
        if deployment is None:
            raise exceptions.NotFound("no such deployment")
        with refusals_about("hook"):
            delivery = hooks.deliver_now(deployment, request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


# ---------------------------------------------------------------- alert rules and alerts

def _visible_deployment(request, pk):
    deployment = visible_deployments(request.user).filter(pk=pk).first()
    if deployment is None:
        raise exceptions.NotFound("no such deployment")
    return deployment


RULE_FIELDS = ("threshold", "windows", "enabled")


def _rule_values(data) -> dict:
    """The body's values as sent (set_rule judges them), the default's for those not given; a body that is no
    object, lacks the threshold or names another field is refused here, naming it."""
    if not isinstance(data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["send a JSON object: {threshold, windows, enabled}"]})
    unknown = sorted(set(data) - set(RULE_FIELDS))
    if unknown:
        raise exceptions.ValidationError({name: [f"not a field of a rule; the fields are {', '.join(RULE_FIELDS)}"]
                                          for name in unknown})
    if "threshold" not in data:
        raise exceptions.ValidationError({"threshold": ["this field is required"]})
    return {"threshold": data["threshold"], "windows": data.get("windows", alerts.DEFAULT_WINDOWS),
            "enabled": data.get("enabled", True)}


@extend_schema(tags=["alerts"])
class AlertRulesView(APIView):
    @extend_schema(responses={200: AlertRuleSerializer(many=True)})
    def get(self, request, pk):
        """The deployment's rules, one per kind: the one set, or the default (`default: true`)."""
        deployment = _visible_deployment(request, pk)
        return Response(AlertRuleSerializer(alerts.effective_rules(deployment), many=True).data)


@extend_schema(tags=["alerts"])
class AlertRuleView(APIView):
    @extend_schema(request=AlertRuleInputSerializer, responses={200: AlertRuleSerializer})
    def put(self, request, pk, kind):
        """Set the rule of `kind` (drift, quality, error_rate, p99). Turning it off resolves its firing alert."""
        deployment = _visible_deployment(request, pk)
        values = _rule_values(request.data)
        with refusals_about("rule"):
            rule = alerts.set_rule(deployment, kind, user=request.user, **values)
        return Response(AlertRuleSerializer(rule).data)

    @extend_schema(request=None, responses={200: AlertRuleSerializer})
    def delete(self, request, pk, kind):
        """Back to the default rule of `kind` (answered)."""
        deployment = _visible_deployment(request, pk)
        with refusals_about("rule"):
            rule = alerts.reset_rule(deployment, kind, user=request.user)
        return Response(AlertRuleSerializer(rule).data)


@extend_schema(tags=["alerts"])
class AlertListView(generics.ListAPIView):
    """The deployment's alerts, newest first (`?state=firing` or `resolved`): what fired them, when, and when
    they resolved."""

    serializer_class = AlertSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL, no user
            return Alert.objects.none()
        deployment = _visible_deployment(self.request, self.kwargs["pk"])
        found = Alert.objects.filter(deployment=deployment).select_related("rule").order_by("-fired_at", "-id")
        state = self.request.query_params.get("state")
        if state is not None:
            if state not in AlertState.values:
                raise exceptions.ValidationError({"state": [f"one of {', '.join(AlertState.values)}"]})
            found = found.filter(state=state)
        return found
