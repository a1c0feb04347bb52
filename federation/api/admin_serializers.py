"""What the admins' federation API (/api/v1/federation/) answers and reads. A peer's `certificate` is
the public certificate (or CA) it was registered with; no key is ever part of an answer.

Each choice set is drawn in one schema component only (drf-spectacular names an enum after its
component when a field name such as `status` or `trigger` has several): a run's `trigger` is a
plain string for that reason."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from federation.choices import WithdrawalPolicy
from federation.models import CatalogGrant, Peer, Subscription, SyncItem, SyncResult, SyncRun
from federation.selectors import failing_items

INTERVAL_HELP = "seconds between runs, at least 60; 0: only when run by hand (POST .../run)"


class PeerSerializer(serializers.ModelSerializer):
    """A peer. `status`: RQ requested (it asked to join), AC active, IN inactive, DC declined; changed
    with the activate, deactivate and decline actions."""

    subscriptions = serializers.IntegerField(source="subscription_count", read_only=True,
                                             help_text="this site's subscriptions to its catalogs")
    granted_catalogs = serializers.SerializerMethodField(help_text="ids of the restricted catalogs it may read")

    class Meta:
        model = Peer
        fields = ["id", "name", "subject", "api_url", "certificate", "contact", "description", "status",
                  "rate_limit_kbps", "self_registered", "created", "modified", "last_ping_at", "last_ping_ok",
                  "last_ping_message", "subscriptions", "granted_catalogs"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_granted_catalogs(self, peer: Peer) -> list[str]:
        return [str(grant.catalog_id) for grant in peer.grants.all()]


class PeerInput(serializers.Serializer):
    """POST: a peer to register (active at once)."""

    name = serializers.CharField(max_length=100)
    api_url = serializers.CharField(max_length=300, help_text="its federation address, https://")
    certificate = serializers.CharField(help_text="PEM: its certificate, or the CA certificate(s) that issue it")
    subject = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                    help_text="its certificate's subject CN; needed when `certificate` is a CA")
    contact = serializers.EmailField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)

    def validate_certificate(self, pem: str) -> str:
        if "PRIVATE KEY" in pem:
            raise serializers.ValidationError("this is a private key: send the certificate only")
        return pem


class PeerChangeInput(PeerInput):
    """PATCH: what is not given stays."""

    subject = serializers.CharField(max_length=200, required=False,
                                    help_text="its certificate's subject CN (a registered peer always has one)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class PingResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField(help_text="what the peer answered, or why it did not")
    answer = serializers.JSONField(allow_null=True, help_text="its ping answer: name, instance, fingerprint, ...")


class GrantSerializer(serializers.ModelSerializer):
    catalog_name = serializers.CharField(source="catalog.name", read_only=True)
    granted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = CatalogGrant
        fields = ["catalog", "catalog_name", "granted_by", "created"]
        read_only_fields = fields


class GrantInput(serializers.Serializer):
    catalog = serializers.UUIDField(help_text="a restricted catalog of this site (public ones every active peer reads)")


class SyncRunSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    trigger = serializers.CharField(read_only=True, help_text="schedule or manual")
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = SyncRun
        fields = ["id", "subscription", "status", "trigger", "dry_run", "requested_by", "created", "started",
                  "finished", "duration_seconds", "heartbeat", "attempts", "cursor_from", "cursor_to",
                  "bytes_fetched", "bytes_reused", "summary", "log", "error"]
        read_only_fields = fields


class SyncResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncResult
        fields = ["revision_id", "name", "version", "outcome", "message", "bytes_fetched", "bytes_reused", "seconds",
                  "created"]
        read_only_fields = fields


class SyncRunDetailSerializer(SyncRunSerializer):
    """A run with what it did with each revision."""

    results = SyncResultSerializer(many=True, read_only=True)

    class Meta(SyncRunSerializer.Meta):
        fields = [*SyncRunSerializer.Meta.fields, "results"]
        read_only_fields = fields


class FailingItemSerializer(serializers.ModelSerializer):
    """A revision still failing (tried again on later runs) or refused for good."""

    class Meta:
        model = SyncItem
        fields = ["solution_id", "revision_id", "change", "name", "version", "status", "attempts", "error", "modified"]
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    peer_name = serializers.CharField(source="peer.name", read_only=True)
    last_run = serializers.SerializerMethodField()
    failing_items = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = ["id", "peer", "peer_name", "catalog_id", "catalog_name", "local_catalog", "owner",
                  "interval_seconds", "on_withdrawal", "enabled", "cursor", "last_run_at", "created", "last_run",
                  "failing_items"]
        read_only_fields = fields

    @extend_schema_field(SyncRunSerializer(allow_null=True))
    def get_last_run(self, subscription: Subscription):
        run = subscription.runs.select_related("requested_by").first()
        return SyncRunSerializer(run).data if run else None

    @extend_schema_field(FailingItemSerializer(many=True))
    def get_failing_items(self, subscription: Subscription):
        return FailingItemSerializer(failing_items(subscription), many=True).data


class SubscriptionInput(serializers.Serializer):
    peer = serializers.UUIDField(help_text="the peer's id")
    catalog_id = serializers.UUIDField(help_text="the id of one of the peer's catalogs (as its /federation/catalogs "
                                                 "lists them)")
    catalog_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    owner = serializers.CharField(max_length=150, required=False,
                                  help_text="user name of who owns the imported models here; default: the caller")
    interval_seconds = serializers.IntegerField(min_value=0, default=3600, help_text=INTERVAL_HELP)
    on_withdrawal = serializers.ChoiceField(choices=WithdrawalPolicy.choices, default=WithdrawalPolicy.HIDE)


class SubscriptionChangeInput(serializers.Serializer):
    """PATCH: what is not given stays."""

    interval_seconds = serializers.IntegerField(min_value=0, required=False, help_text=INTERVAL_HELP)
    on_withdrawal = serializers.ChoiceField(choices=WithdrawalPolicy.choices, required=False)
    enabled = serializers.BooleanField(required=False, help_text="false: runs only when run by hand")

    def validate_interval_seconds(self, seconds: int) -> int:
        if seconds and seconds < 60:
            raise serializers.ValidationError("at least 60 seconds, or 0 to run only on demand")
        return seconds


class RunInput(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="say what it would import or withdraw, change nothing")
