"""What the hook and alert rule endpoints read and answer. A hook's secret is answered once, when it is made or
rotated."""

from __future__ import annotations

from rest_framework import serializers

from monitoring.alerts import DEFAULT_WINDOWS, MAX_WINDOWS, is_default
from monitoring.choices import RuleKind
from monitoring.models import Alert, AlertRule, Hook, HookDelivery


class HookInputSerializer(serializers.Serializer):
    """PUT: the whole hook (what is not given takes its default)."""

    url = serializers.CharField(max_length=500, help_text="http(s) URL the events are POSTed to; public addresses "
                                                          "only, unless an admin allows private ones")
    enabled = serializers.BooleanField(default=True)
    on_alert = serializers.ListField(child=serializers.ChoiceField(choices=RuleKind.choices), required=False,
                                     help_text="the rule kinds whose alerts call it (default drift and quality; "
                                               "[]: only the button)")


class HookSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              help_text="who set it last: the onboarding token is made while they "
                                                        "may change the model")

    class Meta:
        model = Hook
        fields = ["id", "solution", "deployment", "url", "enabled", "on_alert", "created_by", "created", "modified"]
        read_only_fields = fields


class NewSecretHookSerializer(HookSerializer):
    secret = serializers.SerializerMethodField(help_text="the HMAC key of X-Acumos-Signature: shown this once")

    class Meta(HookSerializer.Meta):
        fields = [*HookSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, hook) -> str:
        return self.context["secret"]


class DeliverySerializer(serializers.ModelSerializer):
    """One event and its attempts. `event` is what was sent, but for the onboarding token's value."""

    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = HookDelivery
        fields = ["id", "hook", "deployment", "alert", "kind", "status", "attempts", "next_attempt_at",
                  "response_status", "response_body", "results", "error", "event", "requested_by", "created",
                  "started", "finished"]
        read_only_fields = fields


class AlertRuleSerializer(serializers.ModelSerializer):
    """A deployment's rule of one kind as it judges now: the saved one, or the default (`default: true`)."""

    label = serializers.CharField(source="get_kind_display", read_only=True)
    default = serializers.SerializerMethodField(help_text="true: nobody set it (the default's values)")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              help_text="who set it (empty for a default)")

    class Meta:
        model = AlertRule
        fields = ["kind", "label", "threshold", "windows", "enabled", "default", "created_by", "modified"]
        read_only_fields = fields

    def get_default(self, rule) -> bool:
        return is_default(rule)


class AlertRuleInputSerializer(serializers.Serializer):
    """PUT: the rule (what is not given takes its default). Only for the schema: the values go to
    monitoring.alerts.set_rule as sent, whose refusals name the field and what it may be."""

    threshold = serializers.FloatField(help_text="drift: share of a method's input fields drifting (0: any one); "
                                                 "quality: accuracy under it (or MAE/RMSE over it); error_rate: share "
                                                 "of requests (0.05 is 5 %); p99: milliseconds")
    windows = serializers.IntegerField(required=False, default=DEFAULT_WINDOWS, min_value=1, max_value=MAX_WINDOWS,
                                       help_text="samples in a row beyond the threshold that fire it")
    enabled = serializers.BooleanField(required=False, default=True)


class AlertSerializer(serializers.ModelSerializer):
    """An alert a rule raised: what triggered it, in a sentence (`summary`) and in figures (`evidence`)."""

    kind = serializers.CharField(source="rule.kind", read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "kind", "state", "fired_at", "resolved_at", "summary", "evidence"]
        read_only_fields = fields
