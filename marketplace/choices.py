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


class CatalogAccess(models.TextChoices):
    # Acumos CDS access type codes: public catalogs are seen by anyone (and federated),
    # restricted ones by signed-in users.
    PUBLIC = "PB", "Public"
    RESTRICTED = "RS", "Restricted"


class Audience(models.IntegerChoices):
    """Who may see a solution, kept on the solution so lists and search filter on one indexed
    column: the widest catalog one of its revisions is published in."""

    PRIVATE = 0, "Private"
    SIGNED_IN = 1, "Signed-in users"
    ANYONE = 2, "Anyone"


class RequestStatus(models.TextChoices):
    # Acumos C_PUBLISH_REQUEST status codes.
    PENDING = "PE", "Pending"
    APPROVED = "AP", "Approved"
    DECLINED = "DC", "Declined"
    WITHDRAWN = "WD", "Withdrawn"


class NotificationKind(models.TextChoices):
    ONBOARDING_SUCCEEDED = "onboarding_succeeded", "Onboarding finished"
    ONBOARDING_FAILED = "onboarding_failed", "Onboarding failed"
    PUBLISH_REQUESTED = "publish_requested", "Publication requested"
    PUBLISH_APPROVED = "publish_approved", "Publication approved"
    PUBLISH_DECLINED = "publish_declined", "Publication declined"
    COMMENT = "comment", "New comment"
    REVIEW = "review", "New review"
    SHARED = "shared", "Shared with you"
    DEPLOYMENT = "deployment", "Deployment status"


class SortOrder(models.TextChoices):
    RECENT = "recent", "Most recent"
    NAME = "name", "Name"
    RATING = "rating", "Best rated"
    DOWNLOADS = "downloads", "Most downloaded"
    VIEWS = "views", "Most viewed"
    RELEVANCE = "relevance", "Best match"
