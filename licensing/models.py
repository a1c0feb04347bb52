"""Licence profiles, agreements (rights to use) and their rules, offers, requests, acceptances, usage,
live deployment slots and runner entitlements. Expired and exhausted are computed from dates and
counts, never stored: they cannot go stale."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from licensing.choices import (
    Action,
    AgreementSource,
    AgreementStatus,
    AssigneeKind,
    OfferMode,
    ProfileSource,
    RequestStatus,
    RuleKind,
    UsageSource,
)


class LicenceProfile(models.Model):
    """What a ready revision's license.json says, checked (licensing.profiles). One per revision, and
    like the revision it never changes: a new licence is a new revision."""

    revision = models.OneToOneField("marketplace.Revision", on_delete=models.CASCADE, primary_key=True,
                                    related_name="licence_profile")
    keyword = models.CharField(max_length=100, blank=True)
    licence_name = models.CharField(max_length=200, blank=True)
    spdx = models.CharField(max_length=500, blank=True, help_text="canonical SPDX expression, empty if none")
    # " MIT Apache-2.0 ": spaces around every id, so that `icontains " MIT "` finds an id, not a prefix.
    spdx_ids = models.CharField(max_length=600, blank=True)
    rtu_required = models.BooleanField(default=False)
    text_sha256 = models.CharField(max_length=64, blank=True)
    profile = models.JSONField(default=dict)
    source = models.CharField(max_length=10, choices=ProfileSource.choices, default=ProfileSource.UPLOADED)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(text_sha256__regex=r"^([0-9a-f]{64})?$"),
                                              name="licence_text_sha256_hex")]

    def __str__(self) -> str:
        return self.spdx or self.keyword or "no licence"

    @property
    def text(self) -> str:
        return str(self.profile.get("licenseText") or "")


class Agreement(models.Model):
    """A right to use (LUM's ODRL agreement): a licensor lets an assignee do what its rules permit with
    a solution (every revision) or one revision, between two dates, until revoked."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    solution = models.ForeignKey("marketplace.Solution", on_delete=models.CASCADE, related_name="agreements")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="agreements", help_text="empty: every revision of the solution")
    licensor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="agreements_granted")
    licensor_name = models.CharField(max_length=200, blank=True, help_text="the origin, for an imported one")
    assignee_kind = models.CharField(max_length=12, choices=AssigneeKind.choices)
    assignee_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                                      related_name="agreements")
    assignee_group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, null=True, blank=True,
                                       related_name="agreements")
    assignee_organisation = models.ForeignKey("accounts.Organisation", on_delete=models.CASCADE, null=True,
                                              blank=True, related_name="agreements")
    # The peer's certificate subject: licensing sits below federation and holds no key to its Peer.
    assignee_peer = models.CharField(max_length=200, blank=True)
    starts = models.DateTimeField(null=True, blank=True)
    ends = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=AgreementStatus.choices, default=AgreementStatus.ACTIVE)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    revoke_reason = models.TextField(blank=True)
    source = models.CharField(max_length=14, choices=AgreementSource.choices, default=AgreementSource.GRANTED)
    # For one imported from a peer: the document its origin signed, kept as evidence.
    origin_instance = models.CharField(max_length=200, blank=True)
    document = models.JSONField(null=True, blank=True)
    signature = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(name="agreement_assignee_matches_kind", condition=(
                Q(assignee_kind=AssigneeKind.USER, assignee_user__isnull=False, assignee_group__isnull=True,
                  assignee_organisation__isnull=True, assignee_peer="")
                | Q(assignee_kind=AssigneeKind.GROUP, assignee_user__isnull=True, assignee_group__isnull=False,
                    assignee_organisation__isnull=True, assignee_peer="")
                | Q(assignee_kind=AssigneeKind.ORGANISATION, assignee_user__isnull=True,
                    assignee_group__isnull=True, assignee_organisation__isnull=False, assignee_peer="")
                | (Q(assignee_kind=AssigneeKind.PEER, assignee_user__isnull=True, assignee_group__isnull=True,
                     assignee_organisation__isnull=True) & ~Q(assignee_peer=""))
                | Q(assignee_kind=AssigneeKind.SITE, assignee_user__isnull=True, assignee_group__isnull=True,
                    assignee_organisation__isnull=True, assignee_peer=""))),
            models.CheckConstraint(name="agreement_dates_in_order",
                                   condition=Q(starts__isnull=True) | Q(ends__isnull=True) | Q(starts__lt=F("ends"))),
        ]
        indexes = [
            models.Index(fields=["assignee_user", "solution"], name="agreement_by_user"),
            models.Index(fields=["assignee_peer", "solution"], condition=~Q(assignee_peer=""),
                         name="agreement_by_peer"),
            models.Index(fields=["solution"], name="agreement_by_set",
                         condition=Q(assignee_kind__in=[AssigneeKind.GROUP, AssigneeKind.ORGANISATION,
                                                        AssigneeKind.SITE])),
            models.Index(fields=["solution", "status"], name="agreement_by_solution"),
        ]

    def __str__(self) -> str:
        return f"{self.solution_id} for {self.assignee_label}"

    @property
    def assignee_label(self) -> str:
        if self.assignee_kind == AssigneeKind.USER:
            return self.assignee_user.username if self.assignee_user_id else "?"
        if self.assignee_kind == AssigneeKind.GROUP:
            return f"group {self.assignee_group.name}" if self.assignee_group_id else "?"
        if self.assignee_kind == AssigneeKind.ORGANISATION:
            return self.assignee_organisation.name if self.assignee_organisation_id else "?"
        if self.assignee_kind == AssigneeKind.PEER:
            return f"peer {self.assignee_peer}"
        return "everyone on this site"

    @property
    def is_revoked(self) -> bool:
        return self.status == AgreementStatus.REVOKED


class Rule(models.Model):
    """One permission or prohibition of an agreement (ODRL), for one action, with its constraints."""

    agreement = models.ForeignKey(Agreement, on_delete=models.CASCADE, related_name="rules")
    action = models.CharField(max_length=8, choices=Action.choices)
    kind = models.CharField(max_length=8, choices=RuleKind.choices, default=RuleKind.PERMIT)
    count_limit = models.PositiveIntegerField(null=True, blank=True, help_text="empty: no limit")
    count_used = models.PositiveIntegerField(default=0)
    live_limit = models.PositiveIntegerField(null=True, blank=True, help_text="deploy only: live deployments at once")
    live_used = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["action"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "action"], name="one_rule_per_action"),
            # The backstop of the conditional updates that consume counts (licensing.services).
            models.CheckConstraint(name="rule_count_within_limit",
                                   condition=Q(count_limit__isnull=True) | Q(count_used__lte=F("count_limit"))),
            models.CheckConstraint(name="rule_live_within_limit",
                                   condition=Q(live_limit__isnull=True) | Q(live_used__lte=F("live_limit"))),
            models.CheckConstraint(name="prohibition_has_no_limits", condition=~Q(kind=RuleKind.PROHIBIT)
                                   | Q(count_limit__isnull=True, live_limit__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.action}"

    @property
    def remaining(self) -> int | None:
        return None if self.count_limit is None else max(0, self.count_limit - self.count_used)


class Offer(models.Model):
    """The licensor's terms for a solution: how people get an agreement, and what they get."""

    solution = models.OneToOneField("marketplace.Solution", on_delete=models.CASCADE, primary_key=True,
                                    related_name="licence_offer")
    mode = models.CharField(max_length=14, choices=OfferMode.choices, default=OfferMode.REQUEST)
    # {"rules": [{"action", "kind", "count_limit", "live_limit"}], "days": N or null}: what an approved
    # request or a click-through gets (licensing.terms checks the shape).
    terms = models.JSONField(default=dict)
    payment_required = models.BooleanField(default=False)
    payment_url = models.URLField(blank=True)
    request_prompt = models.TextField(blank=True, help_text="shown above the request form")
    request_fields = models.JSONField(default=list, blank=True,
                                      help_text='[{"name", "label", "type": text|checkbox|select, "options"}]')
    modified = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"offer for {self.solution_id}"


class AccessRequest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    solution = models.ForeignKey("marketplace.Solution", on_delete=models.CASCADE, related_name="access_requests")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="+")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_requests")
    status = models.CharField(max_length=9, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    message = models.TextField(blank=True)
    answers = models.JSONField(default=dict, blank=True)
    decision_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    agreement = models.ForeignKey(Agreement, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["solution", "requester"],
                                               condition=Q(status=RequestStatus.PENDING),
                                               name="one_pending_request_per_user")]
        indexes = [models.Index(fields=["requester", "solution", "-created"], name="request_latest")]

    def __str__(self) -> str:
        return f"{self.requester} asks for {self.solution_id} ({self.status})"


class Acceptance(models.Model):
    """Evidence of a click-through: who accepted which text (its hash) of which revision, when."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="licence_acceptances")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.CASCADE, related_name="+")
    text_sha256 = models.CharField(max_length=64)
    spdx = models.CharField(max_length=500, blank=True)
    accepted_at = models.DateTimeField(auto_now_add=True)
    agreement = models.ForeignKey(Agreement, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "revision", "text_sha256"], name="one_acceptance")]

    def __str__(self) -> str:
        return f"{self.user} accepted {self.text_sha256[:12]}"


class UsageRecord(models.Model):
    """One entitled use: a download, a deploy, an export, or a runner's report of N predictions. Owners'
    use and open licences write none (marketplace.Download still counts downloads)."""

    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="usage")
    solution = models.ForeignKey("marketplace.Solution", on_delete=models.CASCADE, related_name="+")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=8, choices=Action.choices)
    kind = models.CharField(max_length=30, blank=True, help_text="what was downloaded: bundle, image, an artifact")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+")
    peer = models.CharField(max_length=200, blank=True)
    deployment_id = models.UUIDField(null=True, blank=True)  # no key: deployment sits above
    quantity = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=6, choices=UsageSource.choices, default=UsageSource.PORTAL)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["agreement", "-at"], name="usage_by_agreement"),
                   models.Index(fields=["solution", "-at"], name="usage_by_solution")]
        constraints = [
            # An export is recorded once, however many retries and Range requests the peer makes.
            models.UniqueConstraint(fields=["agreement", "revision"], condition=Q(action=Action.EXPORT),
                                    name="one_export_record_per_revision"),
        ]

    def __str__(self) -> str:
        return f"{self.action} x{self.quantity} under {self.agreement_id}"


class DeploymentGrant(models.Model):
    """A live slot: a deployment running under an agreement's deploy rule. Released once."""

    deployment_id = models.UUIDField(unique=True)
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="deployment_grants")
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    revision = models.ForeignKey("marketplace.Revision", on_delete=models.CASCADE, related_name="+")
    active = models.BooleanField(default=True)
    started = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.deployment_id} under {self.agreement_id}"


class Entitlement(models.Model):
    """A signed document issued to one replica of a deployment: the runner meters predictions against
    it without asking the portal (licensing.entitlements)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    grant = models.ForeignKey(DeploymentGrant, on_delete=models.CASCADE, related_name="entitlements")
    replica = models.PositiveSmallIntegerField(default=0)
    predictions = models.PositiveIntegerField(null=True, blank=True, help_text="reserved; empty: unlimited")
    reported_used = models.PositiveIntegerField(default=0)
    not_after = models.DateTimeField()
    issued = models.DateTimeField()
    superseded_at = models.DateTimeField(null=True, blank=True)
    settled = models.BooleanField(default=False, help_text="its unused reservation went back to the rule")
    document = models.JSONField()

    class Meta:
        ordering = ["-issued"]

    def __str__(self) -> str:
        return f"entitlement {self.id} for replica {self.replica}"
