from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from marketplace.choices import (
    ARTIFACT_FILE_NAMES,
    ArtifactKind,
    Audience,
    CatalogAccess,
    ModelType,
    NotificationKind,
    RequestStatus,
    RevisionStatus,
)

LIVE = Q(deleted_at__isnull=True)


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Solution(models.Model):
    """A model as the marketplace knows it; its versions are Revisions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="solutions")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    model_type = models.CharField(max_length=2, choices=ModelType.choices, default=ModelType.OTHER)
    toolkit = models.CharField(max_length=30, blank=True, help_text="the runner flavour (sklearn, onnx, ...)")
    tags = models.ManyToManyField(Tag, blank=True, related_name="solutions")
    licence = models.CharField(max_length=100, blank=True,
                               help_text="the latest licence: its SPDX expression, else its keyword")
    # Kept by licensing (services.set_licence_summary): the SPDX ids with spaces around each (" MIT "),
    # so a filter by one id finds it inside "Apache-2.0 OR MIT" on either database; and whether the latest
    # licence needs an agreement to use the model.
    licence_ids = models.CharField(max_length=600, blank=True, default="", db_default="")
    rtu_required = models.BooleanField(default=False, db_default=False)
    # Acumos's sourceId: a model a subscription imported from a peer marketplace (federation). Its
    # content is the origin's: read-only here (selectors.is_imported decides what that forbids).
    imported_from = models.CharField(max_length=100, blank=True, help_text="the peer it was imported from")
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="soft delete: restorable by the owner")
    # Kept by marketplace.services, so that lists filter and sort on one indexed row.
    audience = models.PositiveSmallIntegerField(choices=Audience.choices, default=Audience.PRIVATE)
    view_count = models.PositiveIntegerField(default=0)
    download_count = models.PositiveIntegerField(default=0)
    rating_count = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    rating_avg = models.FloatField(default=0)
    # Bumped by any change to what every visitor of the model page sees alike (its tags, ratings,
    # comments, favorites, its versions' files): the key of that part's cache (selectors.page_cached).
    page_version = models.PositiveIntegerField(default=0, db_default=0)
    # Name, description, tags and author as one text; on PostgreSQL also as a weighted tsvector.
    search_text = models.TextField(blank=True, editable=False)
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["-modified"]
        constraints = [
            # Re-onboarding the same name by the same owner adds a revision (Acumos rule).
            models.UniqueConstraint(fields=["owner", "name"], name="unique_solution_name_per_owner"),
        ]
        # One per sort order, in that order's exact columns: a page of 24 is read off the index,
        # skipping what the reader may not see, instead of sorting every visible row.
        indexes = [
            models.Index(fields=["-modified", "id"], condition=LIVE, name="solution_recent"),
            models.Index(fields=["name", "id"], condition=LIVE, name="solution_name"),
            models.Index(fields=["-rating_avg", "-rating_count", "id"], condition=LIVE, name="solution_rating"),
            models.Index(fields=["-download_count", "id"], condition=LIVE, name="solution_downloads"),
            models.Index(fields=["-view_count", "id"], condition=LIVE, name="solution_views"),
            # The counts (results and filters) read every visible row: covered, they are read off this
            # index alone (an index-only scan), not the table's wide rows.
            models.Index(fields=["audience", "id"], include=["owner", "model_type", "toolkit", "licence"],
                         condition=LIVE, name="solution_counts"),
        ]
        # The GIN index on search_vector is made by migration 0004 on PostgreSQL only.

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Revision(models.Model):
    """One version of a solution. Immutable once ready: its artifacts never change after that."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="revisions")
    version = models.CharField(max_length=50)
    status = models.CharField(max_length=12, choices=RevisionStatus.choices, default=RevisionStatus.ONBOARDING)
    description = models.TextField(blank=True)
    metadata = models.JSONField(default=dict)
    # Measured in the sandboxed smoke test (onboarding.smoke.measured), never taken from the uploader: peak
    # memory, package size, load time, per-method latency; {} until measured (or when smoke tests are off).
    resources = models.JSONField(default=dict, blank=True)
    # The owner's model card (marketplace.cards.clean): from metadata.json's modelCard, changed on its page.
    card = models.JSONField(default=dict, blank=True)
    # {method: {"inputs": [{"name", "type"}], "outputs": [...]}}, read from its proto at onboarding.
    interface = models.JSONField(default=dict, blank=True)
    # What discovery filters on, kept from the card, the resources and the interface by marketplace.services
    # (_index): columns with indexes, not JSON, so that a requirement over 100,000 models is an index scan.
    latest_ready = models.BooleanField(default=False, db_default=False)  # the solution's newest ready one
    task = models.CharField(max_length=30, blank=True, default="", db_default="")
    peak_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)  # its slowest method's median single call
    explains = models.CharField(max_length=200, blank=True, default="", db_default="")  # " local shap ... "
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["solution", "version"], name="unique_version_per_solution")]
        indexes = [models.Index(fields=["task", "latency_ms", "peak_memory_mb", "id"], name="revision_discovery",
                                condition=models.Q(latest_ready=True))]

    def __str__(self) -> str:
        return f"{self.solution.name} {self.version}"

    @property
    def is_ready(self) -> bool:
        return self.status == RevisionStatus.READY

    @property
    def task_label(self) -> str:
        """The card's task in words ("anomaly detection"), or ""."""
        return str(self.card.get("task", "")).replace("_", " ") if isinstance(self.card, dict) else ""


class RevisionInput(models.Model):
    """One input field of one method of a revision (from Revision.interface): discovery finds the models that
    take a requirement's fields by name."""

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="inputs")
    method = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    # The revision's task, copied (marketplace.services._index): a requirement with a task then reads only the
    # index entries of that task's models, a tenth of them or less, not every model's with the names.
    task = models.CharField(max_length=30, blank=True, default="", db_default="")

    class Meta:
        # Unique, and the index discovery reads alone (name first: a requirement names fields), without the table.
        constraints = [models.UniqueConstraint(fields=["name", "revision", "method"], name="revision_input_name")]
        indexes = [models.Index(fields=["task", "name", "revision", "method"], name="revision_input_task_name")]


class Blob(models.Model):
    """Stored bytes, addressed by their sha256: identical content is stored once."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    storage_key = models.CharField(max_length=300)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256[:12]


class Artifact(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=2, choices=ArtifactKind.choices)
    name = models.CharField(max_length=200)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True, related_name="artifacts")
    uri = models.CharField(max_length=500, blank=True, help_text="for artifacts that are not files (images)")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind"]
        constraints = [models.UniqueConstraint(fields=["revision", "kind"], name="one_artifact_per_kind")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def sha256(self) -> str:
        return self.blob.sha256 if self.blob else ""

    @property
    def size(self) -> int:
        return self.blob.size if self.blob else 0

    @property
    def file_name(self) -> str:
        return ARTIFACT_FILE_NAMES.get(self.kind, self.name)


# ---------------------------------------------------------------- catalogs and publishing

class Catalog(models.Model):
    """A shelf of published revisions. Public: anyone sees it; restricted: signed-in users."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    access = models.CharField(max_length=2, choices=CatalogAccess.choices, default=CatalogAccess.RESTRICTED)
    self_publish = models.BooleanField(default=False, help_text="owners publish without a publisher's approval")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def audience(self) -> int:
        return Audience.ANYONE if self.access == CatalogAccess.PUBLIC else Audience.SIGNED_IN


class Publication(models.Model):
    """A revision in a catalog. `solution` repeats revision.solution so lists need no join."""

    catalog = models.ForeignKey(Catalog, on_delete=models.PROTECT, related_name="publications")
    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="publications")
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="publications")
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", help_text="the publisher who approved it, if one had to")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["catalog", "revision"], name="one_publication_per_catalog")]

    def __str__(self) -> str:
        return f"{self.revision} in {self.catalog}"


class PublishRequest(models.Model):
    """An owner's request to publish a revision to a catalog that needs approval."""

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="publish_requests")
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="publish_requests")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="publish_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    message = models.TextField(blank=True, help_text="what the owner tells the publisher")
    status = models.CharField(max_length=2, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    review_comment = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(
            fields=["revision", "catalog"], condition=Q(status=RequestStatus.PENDING),
            name="one_pending_request_per_catalog")]

    def __str__(self) -> str:
        return f"{self.revision} to {self.catalog} ({self.get_status_display()})"

    @property
    def is_pending(self) -> bool:
        return self.status == RequestStatus.PENDING


class SolutionShare(models.Model):
    """A co-owner: sees the private solution and may manage it like its owner (but not delete it)."""

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shared_solutions")
    shared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["solution", "user"], name="one_share_per_user")]


# ---------------------------------------------------------------- what people do with models

class Rating(models.Model):
    """One star rating (and optional review) per user and solution."""

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    stars = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    review = models.TextField(blank=True, max_length=4000)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-modified"]
        constraints = [
            models.UniqueConstraint(fields=["solution", "user"], name="one_rating_per_user"),
            models.CheckConstraint(condition=Q(stars__gte=1, stars__lte=5), name="stars_1_to_5"),
        ]


class Comment(models.Model):
    """A comment on a solution; `parent` makes it a reply (threads)."""

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="comments")
    revision = models.ForeignKey(Revision, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments")
    text = models.TextField(max_length=8192)
    created = models.DateTimeField(auto_now_add=True)
    # Deleted while it had replies: it stays, without its text, so the thread keeps what others wrote.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created"]


class Favorite(models.Model):
    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="favorites")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favorites")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["solution", "user"], name="one_favorite_per_user")]


class Download(models.Model):
    """One download of an artifact or bundle (Acumos C_SOLUTION_DOWNLOAD)."""

    solution = models.ForeignKey(Solution, on_delete=models.CASCADE, related_name="downloads")
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="+")
    artifact = models.ForeignKey(Artifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    created = models.DateTimeField(auto_now_add=True)


class Notification(models.Model):
    """Something a user should know; read per user. The same event (kind and title) about the same
    object (target) while the last one is unread adds to it (count, created: the latest) instead of
    making another row: marketplace.services.notify."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=30, choices=NotificationKind.choices)
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True, max_length=2048, help_text="the latest event's")
    url = models.CharField(max_length=500, blank=True, help_text="the latest event's")
    target = models.CharField(max_length=200, blank=True,
                              help_text="what it is about (the object's page, without the anchor): repeats group by it")
    count = models.PositiveIntegerField(default=1, db_default=1, help_text="how many times it happened while unread")
    created = models.DateTimeField(auto_now_add=True, help_text="when it last happened")
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]
        constraints = [
            # One unread row per event: two workers telling the same thing at once add to one row
            # (services.notify inserts, and on this conflict adds to the row the other made).
            models.UniqueConstraint(fields=["user", "kind", "target", "title"], condition=Q(read_at__isnull=True),
                                    name="one_unread_notification_per_event"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class NotificationPreference(models.Model):
    """Whether a user hears of one kind of event (choices.NOTIFICATION_GROUPS); a kind with no row is on."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="notification_preferences")
    kind = models.CharField(max_length=30, choices=NotificationKind.choices)
    enabled = models.BooleanField()
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_notification_preference_per_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {'on' if self.enabled else 'off'}"
