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
    CANDIDATE = "candidate", "Candidate"  # set a canary or shadow beside the live model, or change its weight
    PROMOTE = "promote", "Promote"
    ABORT = "abort", "Abort candidate"


class Trigger(models.TextChoices):
    """Why an operation happened: someone asked, the deployment follows its solution, or a schedule."""

    USER = "user", "Asked for"
    FOLLOW = "follow", "Follows latest"
    SCHEDULE = "schedule", "Grace period ended"
    GATES = "gates", "Rollout gates"  # a rollout's gates held (next step, promote) or one failed (roll back)


# Deployments that a runner process or container stands behind (the status check looks at these).
LIVE = (DeploymentStatus.RUNNING, DeploymentStatus.DOWN)

# Operations that change what the deployment serves: its history.
SERVING_CHANGES = (OperationKind.DEPLOY, OperationKind.SWAP, OperationKind.ROLLBACK, OperationKind.PROMOTE)


class TargetDeployers(models.TextChoices):
    """Who may deploy to a target (deployment.selectors applies it). Operators and admins deploy to
    every enabled target; OWNERS lets anyone else deploy there the models they own or co-own, and those
    an agreement lets them deploy (licensees)."""

    OPERATORS = "operators", "Operators and admins only"
    OWNERS = "owners", "Model owners and licensees too"


class RolloutMode(models.TextChoices):
    """How a new revision of a followed solution reaches the deployment."""

    SWAP = "swap", "Swap at once"
    CANARY = "canary", "Canary (a share of the requests, raised in steps)"
    SHADOW = "shadow", "Shadow (answers in the background first)"


class RolloutState(models.TextChoices):
    RUNNING = "running", "Running"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"  # a gate failed
    ABORTED = "aborted", "Aborted"  # by hand, or a newer revision (or a swap) took its place
    FAILED = "failed", "Failed"  # the runner refused the candidate (its interface, its sample) or a step


ROLLOUT_ENDED = (RolloutState.PROMOTED, RolloutState.ROLLED_BACK, RolloutState.ABORTED, RolloutState.FAILED)
ROLLOUT_OPERATIONS = (OperationKind.CANDIDATE, OperationKind.PROMOTE, OperationKind.ABORT)

# The gates a rollout judges its candidate by (Deployment.rollout_gates overrides them one by one):
# `max_error_rate` (0-1) and `max_p99_ms` for every candidate, `min_agreement` (0-1, a shadow's answers
# equal to the live ones), `min_quality` (accuracy from feedback, 0-1; None: not judged) once
# `min_feedback` answers have their truth; each step needs `min_requests` answered by the candidate and
# `step_rounds` collection rounds before it is judged to hold.
DEFAULT_ROLLOUT_GATES = {"max_error_rate": 0.05, "max_p99_ms": 1000.0, "min_agreement": 0.9, "min_quality": None,
                         "min_feedback": 30, "min_requests": 100, "step_rounds": 3}
DEFAULT_ROLLOUT_STEPS = (10, 50)  # a canary's weights (%), in order; after the last, promote
SHADOW_WEIGHT = 100  # a shadow sees every request (in the background), in one step
