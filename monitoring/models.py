"""What the portal keeps of its live deployments' runners: figures over time, the rules that judge them,
and the alerts those rules raised."""

import uuid

from django.conf import settings
from django.db import models

from acumos_portal.models import JobRow
from monitoring.choices import AlertState, RuleKind, Variant


class Sample(models.Model):
    """One collection round's figures for one variant of a deployment: what its runner answered since the
    round before (requests, errors, latency) and where it stands now (drift per field, quality from feedback,
    a shadow's agreement with the live model)."""

    id = models.BigAutoField(primary_key=True)
    deployment = models.ForeignKey("deployment.Deployment", on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField(help_text="when the round collected it")
    variant = models.CharField(max_length=8, choices=Variant.choices, default=Variant.LIVE)
    generation = models.PositiveIntegerField(null=True, blank=True, help_text="the runner's generation serving it")
    requests = models.PositiveIntegerField(default=0, help_text="answered since the previous sample")
    errors = models.PositiveIntegerField(default=0, help_text="of those, answered with an error")
    p50_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    drift = models.JSONField(default=dict, blank=True,
                             help_text='{"<method>.<field>": {"score", "threshold", "drifted", "measure"}}')
    quality = models.JSONField(default=dict, blank=True,
                               help_text='{"<method>.<field>": {"metric", "value", "count"}}')
    agreement_rate = models.FloatField(null=True, blank=True, help_text="a shadow's answers equal to the live ones")
    # On the live sample: each replica's cumulative counts as read this round, so that the next round's figures
    # are the difference (monitoring.services: the runners count since they started, not per round).
    counters = models.JSONField(default=dict, blank=True, editable=False,
                                help_text="the runners' cumulative counts this round started from")

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["deployment", "at"])]

    def __str__(self):
        return f"{self.deployment_id} {self.variant} at {self.at:%Y-%m-%d %H:%M:%S}"

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


class AlertRule(models.Model):
    """A deployment's rule: its kind's figure beyond `threshold` in `windows` samples in a row fires it."""

    deployment = models.ForeignKey("deployment.Deployment", on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=12, choices=RuleKind.choices)
    threshold = models.FloatField()
    windows = models.PositiveSmallIntegerField(default=3, help_text="samples in a row beyond the threshold")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["deployment", "kind"], name="one_rule_per_kind")]

    def __str__(self):
        return f"{self.get_kind_display()} rule of {self.deployment_id}"


class Alert(models.Model):
    """A rule that fired: what triggered it (a sentence and the figures), until it resolves."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    deployment = models.ForeignKey("deployment.Deployment", on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.FIRING)
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    summary = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-fired_at"]
        indexes = [models.Index(fields=["deployment", "state"])]

    def __str__(self):
        return f"{self.summary} ({self.state})"


def default_hook_kinds() -> list[str]:
    """A hook is called for drift and quality alerts unless its owner says otherwise: those are what
    retraining cures; an error rate or a slow p99 is more often the code or the host."""
    return [RuleKind.DRIFT.value, RuleKind.QUALITY.value]


class Hook(models.Model):
    """A retraining hook: where the portal POSTs a signed event when one of the deployment's rules fires (or
    on the button), for a solution (every deployment of it that its setter may manage) or one deployment
    (which then takes it over the solution's). Exactly one of the two. `secret_encrypted` is the HMAC key,
    shown once to whoever makes or rotates it (deployment.secretbox at rest)."""

    solution = models.ForeignKey("marketplace.Solution", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="hooks")
    deployment = models.ForeignKey("deployment.Deployment", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="hooks")
    url = models.URLField(max_length=500)
    secret_encrypted = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    on_alert = models.JSONField(default=default_hook_kinds, blank=True,
                                help_text="the rule kinds whose alerts call it (the button always may)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(solution__isnull=True) ^ models.Q(deployment__isnull=True),
                                   name="hook_for_solution_or_deployment"),
            models.UniqueConstraint(fields=["solution"], condition=models.Q(solution__isnull=False),
                                    name="one_hook_per_solution"),
            models.UniqueConstraint(fields=["deployment"], condition=models.Q(deployment__isnull=False),
                                    name="one_hook_per_deployment"),
        ]

    def __str__(self):
        return f"hook of {'solution ' + str(self.solution_id) if self.solution_id else self.deployment_id}"


class HookDelivery(JobRow):
    """One event sent to a hook: a job row (acumos_portal.jobs) whose attempts are POSTs, retried with a
    growing pause (`next_attempt_at`) up to ACUMOS_HOOK_MAX_ATTEMPTS; each attempt's outcome is in `results`,
    the last answer in `response_status` and `response_body`. `event` is what is sent, but for the onboarding
    token, which is kept (encrypted) only until the delivery ends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hook = models.ForeignKey(Hook, on_delete=models.CASCADE, related_name="deliveries")
    deployment = models.ForeignKey("deployment.Deployment", on_delete=models.CASCADE, related_name="hook_deliveries")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries",
                              help_text="empty: sent by the button")
    kind = models.CharField(max_length=12, help_text="the event's type: a rule kind, or manual")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    event = models.JSONField(default=dict)
    token = models.ForeignKey("accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="the onboarding token the event carries")
    token_encrypted = models.TextField(blank=True, editable=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    results = models.JSONField(default=list, blank=True, help_text="each attempt: at, status or error, ms")

    class Meta:
        ordering = ["-created"]
        # The reaper looks for pending deliveries that are due and running ones whose heartbeat is old.
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="hookdelivery_status_next")]

    def __str__(self):
        return f"{self.kind} event to {self.hook_id} ({self.status})"
