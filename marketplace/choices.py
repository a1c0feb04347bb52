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
    FEDERATION = "federation", "Federation"
    LICENSING = "licensing", "Licensing"


# What each kind of notification is about, in a reader's words, grouped as the settings page shows them
# (NotificationPreference: every kind is on until its user turns it off).
NOTIFICATION_GROUPS = (
    ("Your models", (
        (NotificationKind.ONBOARDING_SUCCEEDED, "A model you uploaded finished onboarding and is ready."),
        (NotificationKind.ONBOARDING_FAILED, "A model you uploaded failed onboarding: where, and why."),
        (NotificationKind.PUBLISH_APPROVED, "A publisher approved a version of yours for a catalog."),
        (NotificationKind.PUBLISH_DECLINED, "A publisher declined a version of yours, saying why."),
        (NotificationKind.SHARED, "Someone made you a co-owner of their model."),
    )),
    ("What people say", (
        (NotificationKind.COMMENT, "Someone commented on your model, or replied to your comment."),
        (NotificationKind.REVIEW, "Someone rated or reviewed your model."),
    )),
    ("Deployments", (
        (NotificationKind.DEPLOYMENT, "A deployment you created: what someone else or the schedule did to it, "
                                      "its going down or coming back, its model deleted; and an operation of "
                                      "yours that failed."),
    )),
    ("Federation", (
        (NotificationKind.FEDERATION, "A subscription to a peer's catalog could not import or withdraw a model, or a "
                                      "peer asked to join (admins); a model you deployed was withdrawn by its origin."),
    )),
    ("Licensing", (
        (NotificationKind.LICENSING, "Someone asked to use a model you license, or answered or withdrew such a "
                                     "request; an agreement of yours was granted, revoked or nearly used up; a "
                                     "deployment of yours could not follow a new version its agreement does not "
                                     "cover."),
    )),
    ("Reviewing", (
        (NotificationKind.PUBLISH_REQUESTED, "A model waits for a publisher's review (publishers and admins)."),
    )),
)
# Kinds no one turns off: a failed upload leaves nothing behind, and this notification is where its owner
# learns that it failed and why (the job page is only found through it or My models).
ALWAYS_ON_NOTIFICATIONS = frozenset({NotificationKind.ONBOARDING_FAILED})


class SortOrder(models.TextChoices):
    RECENT = "recent", "Most recent"
    NAME = "name", "Name"
    RATING = "rating", "Best rated"
    DOWNLOADS = "downloads", "Most downloaded"
    VIEWS = "views", "Most viewed"
    RELEVANCE = "relevance", "Best match"
