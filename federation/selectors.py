"""What a peer may see, decided here and nowhere else: public catalogs and the restricted ones granted
to it, the ready revisions published in them (of live solutions, not withdrawn, and, when their licence
needs an agreement, exported to it by one: licensing.exports), their artifacts, and the changes in
those catalogs. Every view of the peer API reads through these."""

from __future__ import annotations

from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When

from federation.choices import ChangeKind, ItemStatus, PeerStatus, SignatureStatus
from federation.models import CatalogGrant, ChangeEvent, Peer, RevisionOrigin, Subscription, SyncItem, SyncRun
from licensing.exports import exportable_to, received_by
from marketplace.choices import ArtifactKind, CatalogAccess, RevisionStatus
from marketplace.models import Artifact, Catalog, Publication, Revision, Solution
from marketplace.selectors import is_admin


def catalogs_for(peer: Peer) -> QuerySet[Catalog]:
    if peer.status != PeerStatus.ACTIVE:
        return Catalog.objects.none()
    granted = Q(peer_grants__peer=peer)
    return Catalog.objects.filter(Q(access=CatalogAccess.PUBLIC) | granted).distinct()


def catalog_for(peer: Peer, catalog_id) -> Catalog | None:
    return catalogs_for(peer).filter(pk=catalog_id).first()


def revisions_for(peer: Peer, catalog: Catalog | None = None) -> QuerySet[Revision]:
    """Ready revisions of live solutions published in a catalog the peer sees (in `catalog` if
    given), not withdrawn by their origin, and exportable to it: a licence that needs an agreement
    travels only under an export permit granted to this peer (licensing.exports)."""
    catalogs = catalogs_for(peer) if catalog is None else catalogs_for(peer).filter(pk=catalog.pk)
    published = Publication.objects.filter(revision=OuterRef("pk"), catalog__in=catalogs)
    withdrawn = RevisionOrigin.objects.filter(revision=OuterRef("pk"), withdrawn_at__isnull=False)
    return (Revision.objects.filter(status=RevisionStatus.READY, solution__deleted_at__isnull=True)
            .filter(Exists(published)).exclude(Exists(withdrawn)).filter(exportable_to(peer.subject))
            .select_related("solution"))


def solutions_for(peer: Peer, catalog: Catalog | None = None) -> QuerySet[Solution]:
    return Solution.objects.filter(pk__in=revisions_for(peer, catalog).values("solution_id"))


def revision_for(peer: Peer, solution_id, revision_id) -> Revision | None:
    return revisions_for(peer).filter(pk=revision_id, solution_id=solution_id).first()


def artifact_for(peer: Peer, artifact_id) -> Artifact | None:
    """An artifact a peer may fetch: of a revision it sees and, if its licence needs an agreement, whose
    export to it was counted (its detail fetched first); and one that travels (not the image build's log,
    the origin's own business)."""
    received = revisions_for(peer).filter(received_by(peer.subject))
    return (Artifact.objects.filter(pk=artifact_id, revision__in=received.values("pk"))
            .exclude(kind=ArtifactKind.BUILD_LOG)
            .select_related("blob", "revision", "revision__solution").first())


def changes_for(peer: Peer, catalog: Catalog, since: int, limit: int) -> list[ChangeEvent]:
    """The catalog's changes after `since`, oldest first. A catalog the peer cannot see has none, and
    the publication of a revision the peer may not receive is not among them (its withdrawal is: a
    peer that had it under an agreement hides it)."""
    if catalog_for(peer, catalog.pk) is None:
        return []
    visible = Q(kind=ChangeKind.WITHDRAWN) | exportable_to(peer.subject, ref="revision_id")
    events = ChangeEvent.objects.filter(catalog_id=catalog.pk, seq__gt=since).filter(visible)
    return list(events.order_by("seq")[:limit])


def names_of(revision_ids) -> dict:
    """revision id -> (solution name, version), in one query, for the feed's events."""
    rows = Revision.objects.filter(pk__in=set(revision_ids)).values_list("pk", "solution__name", "version")
    return {pk: (name, version) for pk, name, version in rows}


def latest_change(catalog: Catalog) -> int:
    last = ChangeEvent.objects.filter(catalog_id=catalog.pk).order_by("-seq").values_list("seq", flat=True).first()
    return last or 0


# ---------------------------------------------------------------- for this site's own people

def can_manage_federation(user) -> bool:
    """Peers, grants and subscriptions are the site's admins' (as in Acumos)."""
    return is_admin(user)


def subscriptions_for(user) -> QuerySet[Subscription]:
    if not can_manage_federation(user):
        return Subscription.objects.none()
    return Subscription.objects.select_related("peer", "owner", "local_catalog")


def runs_for(user) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(subscription__in=subscriptions_for(user)).select_related("subscription__peer")


def origin_of(revision: Revision) -> RevisionOrigin | None:
    return RevisionOrigin.objects.filter(revision=revision).select_related("peer").first()


# ---------------------------------------------------------------- the admins' pages and API

def peers_listed() -> QuerySet[Peer]:
    """Every peer, those that asked to join and wait for an answer first, each with how many
    subscriptions this site has to its catalogs (`subscription_count`)."""
    waiting = Case(When(status=PeerStatus.REQUESTED, then=Value(0)), default=Value(1), output_field=IntegerField())
    return Peer.objects.annotate(subscription_count=Count("subscriptions"), waiting=waiting).order_by("waiting", "name")


def grants_of(peer: Peer) -> QuerySet[CatalogGrant]:
    return peer.grants.select_related("catalog", "granted_by").order_by("catalog__name")


def grantable_catalogs(peer: Peer) -> QuerySet[Catalog]:
    """The restricted catalogs not granted to the peer yet (public ones every active peer reads)."""
    return Catalog.objects.filter(access=CatalogAccess.RESTRICTED).exclude(peer_grants__peer=peer).order_by("name")


def last_runs(subscriptions) -> dict:
    """Each subscription's latest run, by subscription id, in one query."""
    latest = (SyncRun.objects.filter(subscription__in=[s.pk for s in subscriptions])
              .order_by("subscription_id", "-created").distinct("subscription_id"))
    return {run.subscription_id: run for run in latest}


def failing_items(subscription: Subscription) -> QuerySet[SyncItem]:
    """The revisions still failing (tried again on later runs) or refused for good, latest first."""
    return subscription.items.filter(status__in=[ItemStatus.FAILED, ItemStatus.REFUSED]).order_by("-modified")


def licence_of(revision: Revision) -> dict | None:
    """The licence profile an imported revision came with, as its origin signed it in the manifest:
    where licence enforcement (the licensing app) reads an imported model's terms. None for a revision
    onboarded here (its license.json artifact says) or one without a profile."""
    origin = (RevisionOrigin.objects.filter(revision=revision).exclude(signature_status=SignatureStatus.LOCAL)
              .only("manifest").first())
    licence = origin.manifest.get("licence") if origin else None
    return licence if isinstance(licence, dict) else None
