from django.db import models


class Action(models.TextChoices):
    """What a right to use permits or prohibits (ODRL's actions, as LUM names them)."""

    DOWNLOAD = "download", "Download"
    DEPLOY = "deploy", "Deploy"
    PREDICT = "predict", "Predict"
    EXPORT = "export", "Export to a peer"


class RuleKind(models.TextChoices):
    PERMIT = "permit", "Permitted"
    PROHIBIT = "prohibit", "Prohibited"


class AssigneeKind(models.TextChoices):
    USER = "user", "A user"
    GROUP = "group", "A group"
    ORGANISATION = "organisation", "An organisation"
    PEER = "peer", "A peer marketplace"
    SITE = "site", "Everyone signed in here"  # only agreements imported from a peer


class AgreementStatus(models.TextChoices):
    """Stored states only: expired and exhausted are computed from dates and counts, never stale."""

    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"


class AgreementSource(models.TextChoices):
    GRANTED = "granted", "Granted by the licensor"
    REQUEST = "request", "An approved request"
    CLICK_THROUGH = "click_through", "The licence accepted"
    PEER = "peer", "Imported from a peer"


class OfferMode(models.TextChoices):
    GRANT_ONLY = "grant_only", "The licensor grants rights; nobody may ask"
    REQUEST = "request", "Users request access; the licensor approves or declines"
    CLICK_THROUGH = "click_through", "Users accept the licence and get the terms at once"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ProfileSource(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded with the model"
    EDITOR = "editor", "Written in the licence editor"
    PEER = "peer", "Imported from a peer"


class UsageSource(models.TextChoices):
    PORTAL = "portal", "The portal"
    RUNNER = "runner", "A runner's meter"


class Denial(models.TextChoices):
    """LUM's denial types (Acumos LUM usageDenialReason), plus the live-deployment limit and payment.
    The runner answers the same codes."""

    AGREEMENT_NOT_FOUND = "agreement_not_found", "No agreement"
    TIMING_CONSTRAINT = "timing_constraint", "Outside the agreement's dates"
    USAGE_EXHAUSTED = "usage_exhausted", "Count used up"
    LIVE_LIMIT_REACHED = "live_limit_reached", "Live deployments at the limit"
    USAGE_PROHIBITED = "usage_prohibited", "Prohibited"
    RIGHT_TO_USE_REVOKED = "right_to_use_revoked", "Revoked"
    PAYMENT_REQUIRED = "payment_required", "Payment needed"
