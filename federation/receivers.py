"""The change feed is written as the marketplace changes: a publication made or removed, a model
deleted or restored, each becomes a ChangeEvent of its catalog (what peers read with a cursor). An
export agreement granted to a peer publishes again what it makes exportable, so that a peer whose
cursor had passed those revisions (they were hidden from it) fetches them."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from federation import selectors
from federation.choices import ChangeKind
from federation.models import ChangeEvent, Peer
from licensing import exports
from licensing.choices import AssigneeKind
from licensing.signals import agreement_granted
from marketplace.models import Publication
from marketplace.signals import solution_deleted, solution_restored


def connect() -> None:
    post_save.connect(on_publication_saved, sender=Publication, dispatch_uid="federation-published")
    post_delete.connect(on_publication_deleted, sender=Publication, dispatch_uid="federation-unpublished")
    solution_deleted.connect(on_solution_deleted, dispatch_uid="federation-solution-deleted")
    solution_restored.connect(on_solution_restored, dispatch_uid="federation-solution-restored")
    agreement_granted.connect(on_agreement_granted, dispatch_uid="federation-agreement-granted")


def record(publications, kind: str) -> None:
    ChangeEvent.objects.bulk_create([
        ChangeEvent(catalog_id=p.catalog_id, solution_id=p.solution_id, revision_id=p.revision_id, kind=kind)
        for p in publications])


def on_publication_saved(sender, instance: Publication, created: bool, **kwargs) -> None:
    if created:
        record([instance], ChangeKind.PUBLISHED)


def on_publication_deleted(sender, instance: Publication, **kwargs) -> None:
    record([instance], ChangeKind.WITHDRAWN)


def on_solution_deleted(sender, solution, **kwargs) -> None:
    record(Publication.objects.filter(solution_id=solution.pk), ChangeKind.WITHDRAWN)


def on_solution_restored(sender, solution, **kwargs) -> None:
    record(Publication.objects.filter(solution_id=solution.pk), ChangeKind.PUBLISHED)


def on_agreement_granted(sender, agreement, **kwargs) -> None:
    """Sent after the grant commits. Only an agreement with a peer registered here, and only the
    revisions it makes exportable to that peer, in the catalogs that peer reads."""
    if agreement.assignee_kind != AssigneeKind.PEER:
        return
    peer = Peer.objects.filter(subject=agreement.assignee_peer).first()
    if peer is None:
        return
    exportable = selectors.revisions_for(peer).filter(pk__in=exports.covered_revisions(agreement).values("pk"))
    record(Publication.objects.filter(revision__in=exportable.values("pk"),
                                      catalog__in=selectors.catalogs_for(peer).values("pk")), ChangeKind.PUBLISHED)
