from django.db import models


class TargetKind(models.TextChoices):
    LOCAL = "local", "Local process"
    DOCKER = "docker", "Docker host"
    KUBERNETES = "kubernetes", "Kubernetes"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"
    DESTROYED = "destroyed", "Destroyed"


class OperationKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    SWAP = "swap", "Hot swap"
    ROLLBACK = "rollback", "Roll back"
    STOP = "stop", "Stop"
    START = "start", "Start"
    DESTROY = "destroy", "Destroy"


# Operations that change what the deployment serves: its history.
SERVING_CHANGES = (OperationKind.DEPLOY, OperationKind.SWAP, OperationKind.ROLLBACK)
