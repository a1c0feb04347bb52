"""Peers, what they may see, the change feed they read, where imported revisions come from, and the
subscriptions that import them (README, "Federation")."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from acumos_portal.models import JobRow
from federation.choices import (
    ChangeKind,
    ItemOutcome,
    ItemStatus,
    PeerStatus,
    SignatureStatus,
    Trigger,
    WithdrawalPolicy,
)
from marketplace.models import Catalog, Revision


class Peer(models.Model):
    """Another marketplace. Its client certificate's subject CN names it (`subject`); the certificate
    must be the one registered here, or issued by the CA registered here (`certificate`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    subject = models.CharField(max_length=200, unique=True, help_text="the CN of its certificate's subject")
    api_url = models.URLField(max_length=300, help_text="its peer API, e.g. https://models.example.org:9443")
    certificate = models.TextField(help_text="PEM: its certificate, or the CA certificate(s) that issue it")
    contact = models.EmailField(blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=2, choices=PeerStatus.choices, default=PeerStatus.ACTIVE)
    self_registered = models.BooleanField(default=False, help_text="it asked to be a peer (peer/register)")
    rate_limit_kbps = models.PositiveIntegerField(default=0, help_text="cap on artifact downloads from it, in "
                                                                       "kilobytes a second (0: none)")
    catalogs = models.ManyToManyField(Catalog, through="CatalogGrant", related_name="+", blank=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    last_ping_at = models.DateTimeField(null=True, blank=True)
    last_ping_ok = models.BooleanField(null=True, blank=True)
    last_ping_message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == PeerStatus.ACTIVE


class CatalogGrant(models.Model):
    """A restricted catalog a peer may read (public ones every active peer reads)."""

    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="grants")
    catalog = models.ForeignKey(Catalog, on_delete=models.CASCADE, related_name="peer_grants")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["peer", "catalog"], name="one_grant_per_peer_catalog")]


class ChangeEvent(models.Model):
    """The change feed peers read with a cursor (`seq`): a revision published to or withdrawn from a
    catalog. The feed signs a tombstone for each withdrawal as it serves it (federation.manifests)."""

    seq = models.BigAutoField(primary_key=True)
    catalog_id = models.UUIDField()
    solution_id = models.UUIDField()
    revision_id = models.UUIDField()
    kind = models.CharField(max_length=10, choices=ChangeKind.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["catalog_id", "seq"], name="change_catalog_seq")]


class RevisionOrigin(models.Model):
    """A revision's signed manifest and where it comes from: made here when a peer first asks for a
    local revision, or kept as the origin signed it when the revision is imported."""

    revision = models.OneToOneField(Revision, primary_key=True, on_delete=models.CASCADE, related_name="origin")
    manifest = models.JSONField()
    signature = models.JSONField(help_text="{alg, certificate, value}: the origin's signature of the manifest")
    origin_name = models.CharField(max_length=200, help_text="the instance that onboarded it (its certificate's CN)")
    origin_instance = models.UUIDField()
    signer_sha256 = models.CharField(max_length=64, help_text="the signer's certificate's fingerprint")
    signature_status = models.CharField(max_length=10, choices=SignatureStatus.choices)
    peer = models.ForeignKey(Peer, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports",
                             help_text="the peer it was imported from (empty: onboarded here)")
    subscription = models.ForeignKey("Subscription", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="imports")
    hops = models.JSONField(default=list, help_text="instances it travelled through, origin first")
    created = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True, help_text="the origin withdrew it")

    def __str__(self) -> str:
        return f"{self.revision_id} from {self.origin_name}"

    @property
    def is_imported(self) -> bool:
        """Imported from a peer (and stays so if that peer or subscription is deleted since)."""
        return self.signature_status != SignatureStatus.LOCAL


class Subscription(models.Model):
    """A peer's catalog, imported here on an interval (and on demand) by its owner's runs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="subscriptions")
    catalog_id = models.UUIDField(help_text="the peer's catalog")
    catalog_name = models.CharField(max_length=100, blank=True)
    local_catalog = models.ForeignKey(Catalog, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                      help_text="where the imported revisions are published here")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions",
                              help_text="owns the imported models and hears of each run")
    interval_seconds = models.PositiveIntegerField(default=3600, help_text="0: only on demand")
    on_withdrawal = models.CharField(max_length=4, choices=WithdrawalPolicy.choices, default=WithdrawalPolicy.HIDE)
    enabled = models.BooleanField(default=True)
    cursor = models.BigIntegerField(null=True, blank=True, help_text="the last change read from the peer's feed")
    last_run_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["peer__name", "catalog_name"]
        constraints = [models.UniqueConstraint(fields=["peer", "catalog_id"], name="one_subscription_per_catalog")]

    def __str__(self) -> str:
        return f"{self.catalog_name or self.catalog_id} from {self.peer}"


class SyncRun(JobRow):
    """One run of a subscription: a job of the portal's one shape (acumos_portal.jobs)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    dry_run = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    cursor_from = models.BigIntegerField(null=True, blank=True)
    cursor_to = models.BigIntegerField(null=True, blank=True)
    bytes_fetched = models.BigIntegerField(default=0)
    bytes_reused = models.BigIntegerField(default=0, help_text="content already held here, not fetched")
    summary = models.JSONField(default=dict, blank=True, help_text="outcome -> count")

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["status", "heartbeat"], name="syncrun_status_heartbeat")]

    def __str__(self) -> str:
        return f"run of {self.subscription} ({self.status})"


class SyncItem(models.Model):
    """One revision a subscription has to import or withdraw, kept across runs: a failed one is tried
    again on the next runs, up to ACUMOS_FEDERATION_ITEM_ATTEMPTS, without holding the rest back."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="items")
    solution_id = models.UUIDField()
    revision_id = models.UUIDField()
    change = models.CharField(max_length=10, choices=ChangeKind.choices)
    name = models.CharField(max_length=200, blank=True)
    version = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=8, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    tombstone = models.JSONField(null=True, blank=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["modified"]
        constraints = [models.UniqueConstraint(fields=["subscription", "revision_id"], name="one_item_per_revision")]

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.status})"


class SyncResult(models.Model):
    """What one run did with one revision: the run's page lists them."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="results")
    revision_id = models.UUIDField()
    name = models.CharField(max_length=200, blank=True)
    version = models.CharField(max_length=50, blank=True)
    outcome = models.CharField(max_length=16, choices=ItemOutcome.choices)
    message = models.TextField(blank=True)
    bytes_fetched = models.BigIntegerField(default=0)
    bytes_reused = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
