from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from acumos_portal.models import JobRow
from deployment import secretbox
from deployment.choices import SERVING_CHANGES, DeploymentStatus, OperationKind, TargetDeployers, TargetKind, Trigger


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
        help_text="who may deploy here: operators and admins only, or also model owners (their own models)")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def set_secret(self, value: str) -> None:
        self.secret_encrypted = secretbox.encrypt(value)

    def secret(self) -> str:
        return secretbox.decrypt(self.secret_encrypted)


class Deployment(models.Model):
    """A running model service on a target. `revision` is what it serves now (hot swaps change it);
    `follows` makes it take every newly ready revision of that solution."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
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

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} on {self.target.name}"

    @property
    def is_live(self) -> bool:
        return self.status in (DeploymentStatus.RUNNING, DeploymentStatus.DOWN)

    def admin_token(self) -> str:
        return secretbox.decrypt(self.admin_token_encrypted)


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

    class Meta:
        ordering = ["-created"]
        # The reaper looks for running operations whose heartbeat is old.
        indexes = [models.Index(fields=["status", "heartbeat"], name="operation_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.kind} {self.deployment_id} ({self.status})"

    @property
    def changes_serving(self) -> bool:
        return self.kind in SERVING_CHANGES
