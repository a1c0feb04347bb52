from django.db import models


class ModelType(models.TextChoices):
    # Acumos CDS model type codes.
    CLASSIFICATION = "CL", "Classification"
    REGRESSION = "RG", "Regression"
    PREDICTION = "PR", "Prediction"
    DATA_SOURCE = "DS", "Data source"
    OTHER = "OT", "Other"


class RevisionStatus(models.TextChoices):
    ONBOARDING = "onboarding", "Onboarding"
    READY = "ready", "Ready"


class ArtifactKind(models.TextChoices):
    """Acumos artifact type codes. Acumos files model.proto under MI too; we give it its own code."""

    MODEL = "MI", "Model package"
    METADATA = "MD", "Metadata"
    PROTO = "PB", "Protobuf definition"
    LICENCE = "LI", "Licence"
    PROTOBUF_JSON = "PJ", "PROTOBUF.json"
    TGIF = "TG", "TGIF.json"
    IMAGE = "DI", "Docker image"
    LOG = "LG", "Log"
    BUILD_LOG = "BL", "Image build log"


ARTIFACT_FILE_NAMES = {
    ArtifactKind.MODEL: "modelpackage.zip",
    ArtifactKind.METADATA: "metadata.json",
    ArtifactKind.PROTO: "model.proto",
    ArtifactKind.LICENCE: "license.json",
    ArtifactKind.PROTOBUF_JSON: "PROTOBUF.json",
    ArtifactKind.TGIF: "TGIF.json",
    ArtifactKind.LOG: "onboarding.log",
    ArtifactKind.BUILD_LOG: "image-build.log",
}
# The files that make a bundle: what `python -m runner_image serve` needs, plus the licence.
BUNDLE_KINDS = (ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.MODEL, ArtifactKind.LICENCE)
