from django.db import models


class TargetKind(models.TextChoices):
    LOCAL = "local", "Local process"
    DOCKER = "docker", "Docker host"
    KUBERNETES = "kubernetes", "Kubernetes"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DOWN = "down", "Not answering"
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


class Trigger(models.TextChoices):
    """Why an operation happened: someone asked, the deployment follows its solution, or a schedule."""

    USER = "user", "Asked for"
    FOLLOW = "follow", "Follows latest"
    SCHEDULE = "schedule", "Grace period ended"


# Deployments that a runner process or container stands behind (the status check looks at these).
LIVE = (DeploymentStatus.RUNNING, DeploymentStatus.DOWN)

# Operations that change what the deployment serves: its history.
SERVING_CHANGES = (OperationKind.DEPLOY, OperationKind.SWAP, OperationKind.ROLLBACK)


class TargetDeployers(models.TextChoices):
    """Who may deploy to a target (deployment.selectors applies it). Operators and admins deploy to
    every enabled target; OWNERS lets anyone else deploy there the models they own or co-own, and those
    an agreement lets them deploy (licensees)."""

    OPERATORS = "operators", "Operators and admins only"
    OWNERS = "owners", "Model owners and licensees too"
