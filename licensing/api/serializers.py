"""What the licensing API reads and answers."""

from __future__ import annotations

from rest_framework import serializers

from licensing.choices import Action, AssigneeKind, OfferMode, RequestStatus
from licensing.models import AccessRequest, Agreement, LicenceProfile, Offer, Rule, UsageRecord


class RuleSerializer(serializers.ModelSerializer):
    remaining = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Rule
        fields = ["action", "kind", "count_limit", "count_used", "remaining", "live_limit", "live_used"]


class AgreementSerializer(serializers.ModelSerializer):
    solution_name = serializers.CharField(source="solution.name", read_only=True)
    licensor = serializers.SlugRelatedField(slug_field="username", read_only=True)
    assignee = serializers.CharField(source="assignee_label", read_only=True)
    rules = RuleSerializer(many=True, read_only=True)

    class Meta:
        model = Agreement
        fields = ["id", "solution", "solution_name", "revision", "licensor", "licensor_name", "assignee_kind",
                  "assignee", "starts", "ends", "status", "revoked_at", "revoke_reason", "source", "rules",
                  "created"]


class AssigneeInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[AssigneeKind.USER, AssigneeKind.GROUP, AssigneeKind.ORGANISATION,
                                            AssigneeKind.PEER])
    name = serializers.CharField(max_length=200, help_text="a username, group name, organisation name or slug, "
                                                           "or a peer's certificate subject")


class LicenceGrantInput(serializers.Serializer):
    solution = serializers.UUIDField()
    revision = serializers.UUIDField(required=False, allow_null=True, help_text="empty: every revision")
    assignee = AssigneeInput()
    terms = serializers.JSONField(help_text='{"rules": [{"action": "download", "count_limit": 10}], "days": 365}')
    starts = serializers.DateTimeField(required=False, allow_null=True)
    ends = serializers.DateTimeField(required=False, allow_null=True)


class RevokeInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class AccessDeclineInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class AccessApproveInput(serializers.Serializer):
    terms = serializers.JSONField(required=False, allow_null=True, help_text="empty: the offer's terms")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class AccessRequestSerializer(serializers.ModelSerializer):
    solution_name = serializers.CharField(source="solution.name", read_only=True)
    requester = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AccessRequest
        fields = ["id", "solution", "solution_name", "revision", "requester", "status", "message", "answers",
                  "decision_reason", "decided_by", "decided_at", "agreement", "created"]


class AccessRequestInput(serializers.Serializer):
    solution = serializers.UUIDField()
    revision = serializers.UUIDField(required=False, allow_null=True)
    message = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    answers = serializers.DictField(required=False, default=dict)


class RequestListQuery(serializers.Serializer):
    role = serializers.ChoiceField(choices=["requester", "licensor"], required=False, default="requester")
    status = serializers.ChoiceField(choices=RequestStatus.choices, required=False)


class AcceptInput(serializers.Serializer):
    revision = serializers.UUIDField()
    text_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$|^$", allow_blank=True,
                                         help_text="the sha256 of the licence text shown (GET .../licence)")


class OfferSerializer(serializers.ModelSerializer):
    class Meta:
        model = Offer
        fields = ["solution", "mode", "terms", "payment_required", "payment_url", "request_prompt",
                  "request_fields", "modified"]
        read_only_fields = ["solution", "modified"]


class OfferInput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=OfferMode.choices)
    terms = serializers.JSONField(required=False, allow_null=True)
    payment_required = serializers.BooleanField(required=False, default=False)
    payment_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    request_prompt = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    request_fields = serializers.ListField(child=serializers.DictField(), required=False, default=list)


class LicenceSerializer(serializers.ModelSerializer):
    text = serializers.CharField(read_only=True)

    class Meta:
        model = LicenceProfile
        fields = ["revision", "keyword", "licence_name", "spdx", "rtu_required", "text_sha256", "text", "source",
                  "profile"]


class RelicenseInput(serializers.Serializer):
    version = serializers.CharField(max_length=50, help_text="the new revision's version")
    profile = serializers.DictField(help_text="the new license.json (Acumos licence profile 1.0.0, with spdx, "
                                              "licenseText and licenseUrl if wanted)")


class AccessQuery(serializers.Serializer):
    action = serializers.ChoiceField(choices=Action.choices, required=False, default=Action.DOWNLOAD)


class CheckInput(serializers.Serializer):
    profile = serializers.DictField()


class UsageQueryInput(serializers.Serializer):
    solution = serializers.UUIDField(required=False)
    assignee = serializers.CharField(required=False, max_length=200)
    action = serializers.ChoiceField(choices=Action.choices, required=False)
    start = serializers.DateField(required=False, help_text="from this day")
    end = serializers.DateField(required=False, help_text="to this day, inclusive")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")


class UsageRecordSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = UsageRecord
        fields = ["at", "solution", "revision", "agreement", "action", "kind", "user", "peer", "deployment_id",
                  "quantity", "source"]
