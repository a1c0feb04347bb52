from django.db import models


class BuildTrigger(models.TextChoices):
    ONBOARDING = "onboarding", "Onboarding"
    MANUAL = "manual", "Create microservice"


class BuilderKind(models.TextChoices):
    """How images are made: a Docker engine (docker SDK, DOCKER_HOST), or the daemonless builder
    that appends the model layer to the base image through the registry's HTTP API."""

    DOCKER = "docker", "Docker engine"
    DAEMONLESS = "daemonless", "Daemonless (registry API)"

