from django.db import models


class Variant(models.TextChoices):
    """Which model of a deployment's runner a sample describes (the runner's own words)."""

    LIVE = "live", "Live"
    CANARY = "canary", "Canary"
    SHADOW = "shadow", "Shadow"


class RuleKind(models.TextChoices):
    DRIFT = "drift", "Input drift"
    QUALITY = "quality", "Quality from feedback"
    ERROR_RATE = "error_rate", "Error rate"
    P99 = "p99", "p99 latency"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"
