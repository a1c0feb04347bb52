from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from acumos_portal.models import JobRow
from deployment import secretbox
from deployment.choices import (
    DEFAULT_ROLLOUT_GATES,
    DEFAULT_ROLLOUT_STEPS,
    SERVING_CHANGES,
    DeploymentStatus,
    OperationKind,
    RolloutMode,
    RolloutState,
    TargetDeployers,
    TargetKind,
    Trigger,
)


class Target(models.Model):
    """Where deployments go, configured by admins. `options` holds what is not secret (Docker host,
    network mode, limits, namespace...); `secret` (a kubeconfig, a pull secret) is stored encrypted
    and never shown back. A new target takes deployments from operators and admins only until an
    admin opens it to model owners (`deployers`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=12, choices=TargetKind.choices)
    options = models.JSONField(default=dict, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    deployers = models.CharField(
        max_length=10, choices=TargetDeployers.choices, default=TargetDeployers.OPERATORS,
        help_text="who may deploy here: operators and admins only, or also model owners (their own models) and "
                  "licensees (what their agreements let them deploy)")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def set_secret(self, value: str) -> None:
        self.secret_encrypted = secretbox.encrypt(value)

    def secret(self) -> str:
        return secretbox.decrypt(self.secret_encrypted)


NAME_MAX_LENGTH = 100


def validate_deployment_name(value: str) -> None:
    """A user's name for a deployment is shown on pages and in notifications: one line of printable
    text (no line breaks, tabs, control or invisible formatting characters, which could disguise it)."""
    if len(value) > NAME_MAX_LENGTH:
        raise ValidationError(f"A deployment's name has at most {NAME_MAX_LENGTH} characters; this one has "
                              f"{len(value)}.")
    if not value.isprintable():
        raise ValidationError("A deployment's name is one line of letters, digits, spaces and punctuation: "
                              "remove the line breaks, tabs or invisible characters.")


def default_rollout_steps() -> list:
    return list(DEFAULT_ROLLOUT_STEPS)


class Deployment(models.Model):
    """A running model service on a target. `revision` is what it serves now (hot swaps change it);
    `follows` makes it take every newly ready revision of that solution.

    `name` is the user's own name for it, optional ("house-prod"); pages, notifications and the API
    show `display_name`, which always says what it serves now. `idempotency_key` is the key of the
    request that created it (the API's Idempotency-Key header, or the deploy form's one-time key):
    unique per user, so a repeated request finds this deployment instead of making a second."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, validators=[validate_deployment_name],
                            help_text="the user's own name for it (optional); shown before what it serves")
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="deployments")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.PROTECT, related_name="deployments")
    follows = models.ForeignKey("marketplace.Solution", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="following_deployments")
    replicas = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    endpoint_url = models.CharField(max_length=300, blank=True)
    handle = models.JSONField(default=dict, blank=True, help_text="what the backend needs to find it again")
    admin_token_encrypted = models.TextField(editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deployments")
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    destroy_after = models.DateTimeField(null=True, blank=True, help_text="a stopped deployment's grace period end")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="the last status check")
    health = models.CharField(max_length=500, blank=True, help_text="what the last status check found")
    shared = models.BooleanField(default=False, help_text="open to signed-in users' Try it on the public model page")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, editable=False,
                                       help_text="the key of the request that created it (24 hours)")
    request_fingerprint = models.CharField(max_length=64, blank=True, editable=False,
                                           help_text="sha256 of that request: a key sent again with another "
                                                     "request is refused")
    rollout_mode = models.CharField(max_length=8, choices=RolloutMode.choices, default=RolloutMode.SWAP,
                                    help_text="how a new revision of the followed solution reaches it")
    rollout_steps = models.JSONField(default=default_rollout_steps, blank=True,
                                     help_text="a canary's weights (%), raised in this order, then promoted")
    rollout_gates = models.JSONField(default=dict, blank=True,
                                     help_text="the gates that differ from the defaults (DEFAULT_ROLLOUT_GATES)")

    class Meta:
        ordering = ["-created"]
        constraints = [
            # A repeated create finds the first by this key; two at once: the database lets one in.
            models.UniqueConstraint(fields=["created_by", "idempotency_key"],
                                    condition=models.Q(idempotency_key__isnull=False),
                                    name="deployment_idempotency_key_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} on {self.target.name}"

    @property
    def serving_name(self) -> str:
        """What it serves now: "HousePrice 1.1.0" (after a swap, the new model)."""
        return f"{self.revision.solution.name} {self.revision.version}"

    @property
    def display_name(self) -> str:
        """How every page, notification and the API name it: what it serves now, after the user's own
        name if it has one ("house-prod · HousePrice 1.1.0")."""
        return f"{self.name} · {self.serving_name}" if self.name else self.serving_name

    @property
    def is_live(self) -> bool:
        return self.status in (DeploymentStatus.RUNNING, DeploymentStatus.DOWN)

    def admin_token(self) -> str:
        return secretbox.decrypt(self.admin_token_encrypted)

    @property
    def gates(self) -> dict:
        """The gates a new rollout takes: the defaults, with the ones its owner set."""
        return {**DEFAULT_ROLLOUT_GATES, **(self.rollout_gates or {})}


class Operation(JobRow):
    """One thing done to a deployment (deploy, swap, rollback, stop, start, destroy): a visible job
    row with its log. Swaps and rollbacks are the deployment's history: who, what, when, how long."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=10, choices=OperationKind.choices)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.USER)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    revision = models.ForeignKey("marketplace.Revision", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", help_text="what it serves after this operation")
    previous_revision = models.ForeignKey("marketplace.Revision", null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="+")
    generation = models.PositiveIntegerField(null=True, blank=True, help_text="the runner's generation after it")
    target_generation = models.PositiveIntegerField(null=True, blank=True, help_text="rollback: to which")
    swap_ms = models.FloatField(null=True, blank=True, help_text="the runner's own swap time")
    rollout = models.ForeignKey("deployment.Rollout", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="operations", help_text="candidate, promote, abort: of which rollout")

    class Meta:
        ordering = ["-created"]
        # The reaper looks for running operations whose heartbeat is old.
        indexes = [models.Index(fields=["status", "heartbeat"], name="operation_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.kind} {self.deployment_id} ({self.status})"

    @property
    def changes_serving(self) -> bool:
        return self.kind in SERVING_CHANGES


class Rollout(models.Model):
    """A new revision reaching a deployment as a canary (a share of the requests, raised step by step) or a
    shadow (it answers a copy of the requests in the background), judged by its gates after each monitoring
    round (monitoring.rollouts): promoted when every gate held through the last step, rolled back when one
    failed. `reason` says why it ended or moved on, with the figures; `progress` what it waits for now.
    One runs at a time per deployment. Its runner changes are Operations (candidate, promote, abort)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="rollouts")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.PROTECT, related_name="+",
                                 help_text="the candidate")
    previous_revision = models.ForeignKey("marketplace.Revision", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+", help_text="what served when it began")
    mode = models.CharField(max_length=8, choices=RolloutMode.choices)
    weights = models.JSONField(default=list, help_text="the candidate's share (%) at each step")
    step = models.PositiveSmallIntegerField(default=0, help_text="index into weights")
    gates = models.JSONField(default=dict, help_text="the gates as they were when it began")
    state = models.CharField(max_length=12, choices=RolloutState.choices, default=RolloutState.RUNNING)
    reason = models.TextField(blank=True, help_text="why it moved on or ended, with the figures")
    progress = models.CharField(max_length=300, blank=True, help_text="what the running step waits for")
    candidate_generation = models.PositiveIntegerField(null=True, blank=True,
                                                       help_text="the runner's generation of the candidate")
    step_started_at = models.DateTimeField(null=True, blank=True,
                                           help_text="when the runners took this step's weight")
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text="the rollout a newer revision ended")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="empty: the gates decided")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["deployment"], condition=models.Q(state=RolloutState.RUNNING),
                                               name="one_running_rollout_per_deployment")]

    def __str__(self) -> str:
        return f"{self.mode} rollout of {self.revision_id} on {self.deployment_id} ({self.state})"

    @property
    def weight(self) -> float:
        return self.weights[min(self.step, len(self.weights) - 1)]

    @property
    def last_step(self) -> bool:
        return self.step >= len(self.weights) - 1
