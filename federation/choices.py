from django.db import models

from acumos_portal.choices import JobStatus

__all__ = ["ChangeKind", "ItemOutcome", "ItemStatus", "JobStatus", "PeerStatus", "SignatureStatus", "Trigger",
           "WithdrawalPolicy"]


class PeerStatus(models.TextChoices):
    """Acumos's peer statuses (C_PEER.STATUS_CD): only an active peer may call the peer API."""

    REQUESTED = "RQ", "requested"
    ACTIVE = "AC", "active"
    INACTIVE = "IN", "inactive"
    DECLINED = "DC", "declined"


class ChangeKind(models.TextChoices):
    """What the change feed says happened to a revision in a catalog."""

    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class SignatureStatus(models.TextChoices):
    """What the signature of a revision's manifest proves here."""

    # Signed by this instance (a model onboarded here).
    LOCAL = "local", "signed here"
    # The signature holds and the signer's certificate chains to a peer's registered certificate or CA.
    VERIFIED = "verified", "verified"
    # The signature holds, but the signer's certificate is not one this site knows (a model that came
    # through a peer from an instance this site has no link with).
    UNKNOWN_SIGNER = "unknown", "valid, signer not known here"


class WithdrawalPolicy(models.TextChoices):
    """What a subscription does with its copy of a revision the origin withdrew."""

    HIDE = "hide", "hide the local copy (deployments keep running)"
    KEEP = "keep", "keep the local copy listed"


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"


class ItemStatus(models.TextChoices):
    """Where one revision of a subscription is (SyncItem): tried again on later runs while failed."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # tried again on the next runs, up to ACUMOS_FEDERATION_ITEM_ATTEMPTS
    REFUSED = "refused"  # permanent: a bad signature or content, never tried again by itself


class ItemOutcome(models.TextChoices):
    """What one run did with one revision (SyncResult)."""

    IMPORTED = "imported"
    UNCHANGED = "unchanged"
    WITHDRAWN = "withdrawn"
    FAILED = "failed"
    REFUSED = "refused"
    WOULD_IMPORT = "would-import", "would import"
    WOULD_WITHDRAW = "would-withdraw", "would withdraw"
