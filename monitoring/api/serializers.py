"""What the hook endpoints read and answer. A hook's secret is answered once, when it is made or rotated."""

from __future__ import annotations

from rest_framework import serializers

from monitoring.choices import RuleKind
from monitoring.models import Hook, HookDelivery


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
