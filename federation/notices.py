"""Who hears of what federation does: the subscription's owner of items that fail, admins of peers
that ask to join, the owners of deployments of a revision its origin withdrew."""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse

from acumos_portal.accounts.choices import Role
from acumos_portal.accounts.models import User
from deployment.choices import DeploymentStatus
from deployment.models import Deployment
from marketplace import services as marketplace_services
from marketplace.choices import NotificationKind


def tell_item_failed(subscription, item, message: str, *, final: bool) -> None:
    what = f"{item.name or item.revision_id} {item.version}".strip()
    title = (f"Federation: {what} from {subscription.peer.name} was refused" if final else
             f"Federation: {what} from {subscription.peer.name} failed; it will be tried again")
    marketplace_services.notify(subscription.owner, NotificationKind.FEDERATION, title[:200], message=message,
                                url=reverse("federation:subscription", args=[subscription.pk]))


def tell_admins_of_request(peer) -> None:
    admins = User.objects.filter(Q(groups__name=Role.ADMIN) | Q(is_superuser=True), is_active=True).distinct()
    for admin in admins:
        marketplace_services.notify(admin, NotificationKind.FEDERATION,
                                    f"Federation: {peer.name} asks to become a peer",
                                    message=f"{peer.name} ({peer.api_url}) asked to join; approve or decline it.",
                                    url=reverse("federation:peer", args=[peer.pk]))


def tell_deployers(revision) -> int:
    """The owners of live deployments of a revision its origin withdrew: they keep serving, but should
    know. Returns how many were told."""
    live = Deployment.objects.filter(revision=revision).exclude(status=DeploymentStatus.DESTROYED)
    creators = {d.created_by for d in live.select_related("created_by")}
    title = f"{revision.solution.name} {revision.version} was withdrawn at its origin"
    for user in creators:
        marketplace_services.notify(
            user, NotificationKind.FEDERATION, title[:200],
            message="Its origin withdrew it. Your deployment keeps serving it; consider moving to another model.",
            url=marketplace_services.solution_url(revision.solution))
    return len(creators)
