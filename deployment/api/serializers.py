from __future__ import annotations

from rest_framework import serializers

from deployment.choices import RolloutMode
from deployment.forms import MAX_REPLICAS
from deployment.models import NAME_MAX_LENGTH, Deployment, Operation, Rollout, Target, validate_deployment_name


class TargetSerializer(serializers.ModelSerializer):
    """What anyone who may deploy sees of a target: never its secret or its options (hosts, namespaces).
    `deployers`: "operators" (operators and admins only) or "owners" (model owners too)."""

    class Meta:
        model = Target
        fields = ["id", "name", "kind", "enabled", "deployers"]


class OperationSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Operation
        fields = ["id", "deployment", "kind", "trigger", "status", "requested_by", "previous_revision", "revision",
                  "generation", "target_generation", "swap_ms", "rollout", "log", "error", "created", "started",
                  "finished", "heartbeat", "attempts"]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer):
    """`name` is the user's own name for it ("" when none was given); `display_name` is how the portal
    names it: what it serves now, after that name ("house-prod · HousePrice 1.1.0"). `shared`: open to
    signed-in users' Try it on the model page."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    target_name = serializers.CharField(source="target.name", read_only=True)
    display_name = serializers.CharField(read_only=True)

    class Meta:
        model = Deployment
        fields = ["id", "name", "display_name", "target", "target_name", "revision", "follows", "replicas", "status",
                  "endpoint_url", "health", "checked_at", "created_by", "created", "modified", "stopped_at",
                  "destroy_after", "shared"]
        read_only_fields = fields


def _name_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=NAME_MAX_LENGTH, allow_blank=True, validators=[validate_deployment_name],
                                 help_text="your own name for it, e.g. house-prod (optional; shown before what it "
                                           "serves)", **kwargs)


class DeploymentChangeSerializer(serializers.Serializer):
    """PATCH: what is not given keeps its value."""

    name = _name_field(required=False)
    shared = serializers.BooleanField(required=False, help_text=(
        "open to signed-in users' Try it on the public model page (those who may see the version it serves)"))


class DeployRequestSerializer(serializers.Serializer):
    revision = serializers.UUIDField(help_text="the ready revision to deploy")
    target = serializers.UUIDField(help_text="the id of an enabled target the caller may use "
                                             "(GET /api/v1/deployment-targets)")
    name = _name_field(required=False)
    replicas = serializers.IntegerField(min_value=1, max_value=MAX_REPLICAS, default=1)
    follow = serializers.BooleanField(default=False, help_text="swap in every new ready revision of its solution")


class SwapRequestSerializer(serializers.Serializer):
    revision = serializers.UUIDField(help_text="any ready revision you may see, of this solution or another")


class RollbackRequestSerializer(serializers.Serializer):
    generation = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                          help_text="the runner generation to serve again; omitted: the one before")


class DestroyRequestSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text=(
        "do not wait for the grace period: admins, and whoever created the deployment if the site allows it "
        "(Manage → Site settings); refused otherwise with 409 grace_period_not_over and its end date"))


class RolloutSerializer(serializers.ModelSerializer):
    """A canary or shadow rollout of `revision` beside `previous_revision`: its `weights` (%) and `step`
    (an index into them), the `gates` it is judged by, its `state`, `reason` (why it moved on or ended, with
    the figures), `progress` (what the running step waits for) and `decided_by` (empty: the gates decided)."""

    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    mode = serializers.CharField(read_only=True, help_text="canary or shadow")
    state = serializers.CharField(read_only=True, help_text="running, promoted, rolled_back, aborted or failed")
    weight = serializers.FloatField(read_only=True)

    class Meta:
        model = Rollout
        fields = ["id", "deployment", "revision", "previous_revision", "mode", "weights", "step", "weight", "gates",
                  "state", "reason", "progress", "candidate_generation", "step_started_at", "replaces", "decided_by",
                  "created", "updated", "finished"]
        read_only_fields = fields


class RolloutSettingsSerializer(serializers.Serializer):
    """How a new revision of the followed solution reaches the deployment. deployment.services checks the
    values (set_rollout_settings), naming the field and what it allows."""

    mode = serializers.CharField(help_text=f"one of {', '.join(RolloutMode.values)}: swap at once, a canary "
                                           "raised in steps, or a shadow answering in the background first")
    steps = serializers.JSONField(required=False, help_text="a canary's weights in %, rising, e.g. [10, 50]; "
                                                            "after the last step it is promoted (omitted: kept)")
    gates = serializers.JSONField(required=False, help_text=(
        "the gates that differ from the defaults, e.g. {\"max_error_rate\": 0.02}: max_error_rate (0-1), "
        "max_p99_ms, min_agreement (a shadow's, 0-1), min_quality (accuracy from feedback, 0-1, or null: not "
        "judged), min_feedback, min_requests (per step), step_rounds (collection rounds per step); omitted: kept"))


class RolloutSettingsAnswerSerializer(serializers.ModelSerializer):
    mode = serializers.CharField(source="rollout_mode")
    steps = serializers.JSONField(source="rollout_steps")
    gates = serializers.JSONField(help_text="every gate, the defaults included")

    class Meta:
        model = Deployment
        fields = ["mode", "steps", "gates"]
        read_only_fields = fields
