"""One run of a subscription: read the peer's change feed from the subscription's cursor, record
what changed as items (kept across runs), then import or withdraw each item that is due.

An import believes nothing the peer says until it is checked: the manifest's signature (its origin's,
kept unchanged), every artifact's bytes against the manifest's sha256 and size (content held here
already is not fetched again; a transfer cut short resumes from its partial file on the next try),
the bundle through local validation and the sandboxed smoke test, the image against the manifest's
digest. A licence that needs an agreement needs the origin's signed agreement for this site, checked
before anything is fetched. Only then, in one transaction, are the solution and revision made (with
the peer's ids), marked ready, given that agreement as one for everyone here (licensing.exports), and
published in the subscription's local catalog. A failure keeps nothing it made
but the partial download; a failed item is tried again on later runs (ACUMOS_FEDERATION_ITEM_ATTEMPTS)
and never holds the others back."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from federation import identity, manifests, notices, signing
from federation import images as federation_images
from federation.choices import ChangeKind, ItemOutcome, ItemStatus, WithdrawalPolicy
from federation.client import PeerAnswer, PeerClient, PeerUnavailable
from federation.models import RevisionOrigin, Subscription, SyncItem, SyncResult, SyncRun
from images import oci
from licensing import exports
from marketplace import descriptors, storage
from marketplace import services as marketplace_services
from marketplace.choices import ArtifactKind, CatalogAccess, ModelType
from marketplace.models import Artifact, Blob, Catalog, Publication, Revision, Solution
from onboarding import smoke, validation

log = logging.getLogger(__name__)
PEER_GONE = "the peer is out of reach"
MAX_FEED_PAGES = 200  # of at most 500 changes: what one run reads, the next goes on from its cursor
REQUIRED = (ArtifactKind.METADATA, ArtifactKind.PROTO, ArtifactKind.MODEL)
BUNDLE_FILES = {ArtifactKind.METADATA: "metadata.json", ArtifactKind.PROTO: "model.proto",
                ArtifactKind.MODEL: "modelpackage.zip", ArtifactKind.LICENCE: "license.json"}


class Refusal(Exception):
    """Permanent: the peer's content is not to be believed or not acceptable here."""


class RunRefused(Exception):
    """Permanent for this run: the peer answered, refusing to give its feed (the run fails, saying why)."""


class TryLater(Exception):
    """Transient: the peer, the registry or storage were out of reach."""


@dataclass
class Tally:
    fetched: int = 0
    reused: int = 0
    created_blobs: list[int] = field(default_factory=list)
    artifact_ids: dict[str, uuid.UUID] = field(default_factory=dict)  # kind -> the peer's id, kept here


# ---------------------------------------------------------------- the run

def run(sync_run: SyncRun) -> dict:
    """The work of a claimed run; returns its summary (outcome -> count). A peer out of reach while
    the feed is read fails the run (the job shape retries it); an item's failure is the item's."""
    subscription = Subscription.objects.select_related("peer", "owner").get(pk=sync_run.subscription_id)
    sweep_partials()
    deadline = time.monotonic() + settings.ACUMOS_FEDERATION_RUN_SECONDS
    with PeerClient(subscription.peer, deadline=deadline) as client:
        try:
            cursor = read_changes(client, subscription, sync_run)
        except PeerUnavailable as exc:
            raise TryLater(str(exc)) from exc
        except PeerAnswer as exc:  # it answered, refusing: not a hiccup (no such catalog for this site, say)
            raise RunRefused(f"{subscription.peer.name} refused: {exc}") from exc
        gone = None
        if not sync_run.dry_run:
            _ensure_local_catalog(subscription, client)
            gone = _process_due(client, subscription, sync_run)
    if not sync_run.dry_run:  # the items are recorded: the next run starts from here and retries them
        Subscription.objects.filter(pk=subscription.pk).update(cursor=cursor, last_run_at=timezone.now())
    summary = _summary(sync_run)
    SyncRun.objects.filter(pk=sync_run.pk).update(summary=summary)
    if gone is not None:
        raise TryLater(f"{subscription.peer.name} went out of reach during the run ({gone}); what arrived is "
                       "kept and the next run takes up from there")
    return summary


def _process_due(client: PeerClient, subscription: Subscription, sync_run: SyncRun) -> str | None:
    """Each due item in turn; stop at the first that finds the peer out of reach (the rest would only
    use up their attempts), and say why."""
    for item in due_items(subscription):
        result = process(client, subscription, sync_run, item)
        if result.outcome == ItemOutcome.FAILED and result.message.startswith(PEER_GONE):
            return result.message
    return None


def read_changes(client: PeerClient, subscription: Subscription, sync_run: SyncRun) -> int:
    """Read the feed from the cursor, page by page, and record an item per changed revision (its
    latest change wins). A dry run records nothing: it lists what a run would do. The cursor reached."""
    cursor = subscription.cursor or 0
    SyncRun.objects.filter(pk=sync_run.pk).update(cursor_from=cursor)
    latest: dict[str, dict] = {}
    for _ in range(MAX_FEED_PAGES):
        page = client.changes(str(subscription.catalog_id), cursor)
        if not isinstance(page, dict) or not isinstance(page.get("changes"), list):
            raise RunRefused(f"{subscription.peer.name}'s change feed is not a list of changes")
        for given in page["changes"]:
            change = _well_formed(given, subscription)
            latest[change["revisionId"]] = change
        reached = _cursor(page.get("cursor"), subscription)
        if page.get("more") and reached <= cursor:
            raise RunRefused(f"{subscription.peer.name}'s change feed says there is more but its cursor "
                             "does not move")
        cursor = max(cursor, reached)
        if not page.get("more"):
            break
    else:  # the rest is read by the next run, from the cursor reached
        log.warning("federation run %s stopped reading the feed after %s pages", sync_run.pk, MAX_FEED_PAGES)
    SyncRun.objects.filter(pk=sync_run.pk).update(cursor_to=cursor)
    for change in latest.values():
        if sync_run.dry_run:
            _would(sync_run, subscription, change)
        else:
            _record_item(subscription, change)
    return cursor


def _well_formed(change, subscription: Subscription) -> dict:
    """A change as the feed must send it (ids that are UUIDs, a known kind); anything else is refused."""
    try:
        return {**change, "revisionId": str(uuid.UUID(str(change["revisionId"]))),
                "solutionId": str(uuid.UUID(str(change["solutionId"]))),
                "kind": ChangeKind(change["kind"]).value}
    except (KeyError, TypeError, ValueError) as exc:
        raise RunRefused(f"{subscription.peer.name}'s change feed holds a malformed change: {str(change)[:200]}") \
            from exc


def _cursor(value, subscription: Subscription) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError) as exc:
        raise RunRefused(f"{subscription.peer.name}'s change feed has no usable cursor") from exc


def _record_item(subscription: Subscription, change: dict) -> None:
    """A change makes its revision's item due again (a new change is a new chance: attempts restart)."""
    SyncItem.objects.update_or_create(
        subscription=subscription, revision_id=change["revisionId"],
        defaults={"solution_id": change["solutionId"], "change": change["kind"], "status": ItemStatus.PENDING,
                  "attempts": 0, "error": "", "tombstone": change.get("tombstone"),
                  "name": str(change.get("name") or "")[:200], "version": str(change.get("version") or "")[:50]})


def _would(sync_run: SyncRun, subscription: Subscription, change: dict) -> None:
    imported = RevisionOrigin.objects.filter(revision_id=change["revisionId"], subscription=subscription).first()
    if change["kind"] == ChangeKind.PUBLISHED:
        outcome = ItemOutcome.UNCHANGED if imported and not imported.withdrawn_at else ItemOutcome.WOULD_IMPORT
    else:
        outcome = ItemOutcome.WOULD_WITHDRAW if imported and not imported.withdrawn_at else ItemOutcome.UNCHANGED
    SyncResult.objects.create(run=sync_run, revision_id=change["revisionId"], outcome=outcome,
                              name=str(change.get("name") or "")[:200], version=str(change.get("version") or "")[:50],
                              message="dry run: nothing was changed")


def due_items(subscription: Subscription):
    return list(SyncItem.objects.filter(subscription=subscription, status__in=[ItemStatus.PENDING, ItemStatus.FAILED],
                                        attempts__lt=settings.ACUMOS_FEDERATION_ITEM_ATTEMPTS).order_by("modified"))


def process(client: PeerClient, subscription: Subscription, sync_run: SyncRun, item: SyncItem) -> SyncResult:
    started = time.monotonic()
    SyncItem.objects.filter(pk=item.pk).update(attempts=F("attempts") + 1)
    item.refresh_from_db()
    tally = Tally()
    try:
        if item.change == ChangeKind.PUBLISHED:
            outcome, message = import_revision(client, subscription, item, tally)
        else:
            outcome, message = withdraw(subscription, item)
        status, error = ItemStatus.DONE, ""
    except Refusal as exc:
        outcome, message, status, error = ItemOutcome.REFUSED, str(exc), ItemStatus.REFUSED, str(exc)
    except federation_images.WrongImage as exc:
        outcome, message, status, error = ItemOutcome.REFUSED, f"refused: {exc}", ItemStatus.REFUSED, str(exc)
    except PeerUnavailable as exc:
        outcome, message, status, error = ItemOutcome.FAILED, f"{PEER_GONE}: {exc}", ItemStatus.FAILED, str(exc)
    except (TryLater, oci.RegistryError, OSError) as exc:
        outcome, message, status, error = ItemOutcome.FAILED, str(exc), ItemStatus.FAILED, str(exc)
    except PeerAnswer as exc:  # the peer refused (gone from the catalog meanwhile, no longer granted)
        outcome, message, status, error = ItemOutcome.FAILED, str(exc), ItemStatus.FAILED, str(exc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a peer's answer not in the shape it must be
        message = f"refused: the peer's answer about this revision is malformed ({type(exc).__name__}: {exc})"
        outcome, status, error = ItemOutcome.REFUSED, ItemStatus.REFUSED, message
    if status != ItemStatus.DONE:
        _discard_blobs(tally)
        _tell_owner(subscription, item, message, final=status == ItemStatus.REFUSED
                    or item.attempts >= settings.ACUMOS_FEDERATION_ITEM_ATTEMPTS)
    SyncItem.objects.filter(pk=item.pk).update(status=status, error=error[:4000])
    SyncRun.objects.filter(pk=sync_run.pk).update(bytes_fetched=F("bytes_fetched") + tally.fetched,
                                                  bytes_reused=F("bytes_reused") + tally.reused)
    return SyncResult.objects.create(
        run=sync_run, revision_id=item.revision_id, name=item.name, version=item.version, outcome=outcome,
        message=message[:4000], bytes_fetched=tally.fetched, bytes_reused=tally.reused,
        seconds=round(time.monotonic() - started, 3))


# ---------------------------------------------------------------- importing one revision

def import_revision(client: PeerClient, subscription: Subscription, item: SyncItem, tally: Tally):
    detail = client.revision(str(item.solution_id), str(item.revision_id))
    try:
        checked = manifests.check(detail.get("manifest"), detail.get("signature"),
                                  solution_id=str(item.solution_id), revision_id=str(item.revision_id))
    except manifests.ManifestRefused as exc:
        raise Refusal(f"refused: {exc}") from exc
    manifest = checked.manifest
    _name_item(item, manifest)
    existing = Revision.objects.filter(pk=item.revision_id).select_related("solution").first()
    if existing is not None:
        agreement = check_agreement(manifest, detail, checked)
        outcome = _already_here(subscription, existing, checked)
        if agreement is not None:  # a new agreement (an extension, say) reaches this site this way
            _import_agreement(existing, checked, agreement)
        return outcome
    check_importable(subscription, manifest)  # before anything is fetched, stored or copied
    agreement = check_agreement(manifest, detail, checked)
    blobs = fetch_artifacts(client, item, manifest, tally, subscription)
    metadata, measured = check_bundle(blobs)
    if metadata != manifest["revision"].get("metadata"):
        raise Refusal("refused: the metadata in the signed manifest is not the metadata.json that came with it")
    check_licence(manifest, blobs.get(ArtifactKind.LICENCE))
    copied = federation_images.copy(client, manifest, detail, offered_image(tally)) \
        if manifest.get("image") else None
    if copied is not None:
        tally.fetched += copied.report.bytes_copied
        tally.reused += copied.report.bytes_skipped
    try:
        revision = _create(subscription, checked, blobs, copied.name_and_uri if copied else None, detail=detail,
                           metadata=metadata, artifact_ids=tally.artifact_ids, agreement=agreement)
    except Exception:
        if copied is not None:
            federation_images.discard(copied)
        raise
    marketplace_services.record_interface(revision, measured["interface"])
    if measured["resources"]:
        marketplace_services.record_resources(revision.pk, measured["resources"])  # ours, not the peer's figures
    what = f"imported {revision.solution.name} {revision.version} (signed by {checked.signer.name})"
    return ItemOutcome.IMPORTED, what + (f"; {image_in_words(copied.report)}" if copied else
                                         f"; {federation_images.why_no_copy(manifest)}")


def image_in_words(report: oci.CopyReport) -> str:
    """The image copy, in the units the run page shows bytes in."""
    total = report.blobs_present + report.blobs_mounted + report.blobs_copied
    return (f"image {report.digest[:19]}…: {report.blobs_copied} of {total} blobs copied "
            f"({filesizeformat(report.bytes_copied)}), {report.blobs_present} already here and "
            f"{report.blobs_mounted} mounted ({filesizeformat(report.bytes_skipped)} not sent)")


def offered_image(tally: Tally) -> str:
    """The peer's artifact id of the image (its manifest and blobs are read through it), from the
    listing fetch_artifacts read."""
    image = tally.artifact_ids.get(ArtifactKind.IMAGE)
    if image is None:
        raise Refusal("refused: the manifest names an image the peer does not offer")
    return str(image)


def check_importable(subscription: Subscription, manifest: dict) -> None:
    """A peer's ids and version may not land on anything that is not its own import: refused before
    any byte is fetched or any image copied (a copy onto a local model's image would replace it)."""
    solution_id, version = manifest["solution"]["id"], str(manifest["revision"].get("version", ""))
    found = Solution.objects.filter(pk=solution_id).first()
    if found is None:
        return
    if found.imported_from != subscription.peer.subject:
        raise Refusal(f"refused: a model with the id {solution_id} exists here already and did not come from "
                      f"{subscription.peer.name}")
    if found.revisions.filter(version=version).exists():
        raise Refusal(f"refused: {found.name} has a version {version} here already")


def needs_agreement(manifest: dict) -> bool:
    """The signed licence says a right to use is needed (read as licensing reads license.json)."""
    licence = manifest.get("licence")
    return isinstance(licence, dict) and bool(licence.get("rtuRequired", False))


def check_agreement(manifest: dict, detail: dict, checked) -> dict | None:
    """For a licence that needs an agreement: the agreement that came with the revision, {document,
    signature}, believed only when the manifest's own signer signed it, it names this site as its
    assignee, it is about this revision or its solution, and this site can read its rules and dates.
    Refused otherwise, before anything is fetched. None when the licence needs no agreement."""
    if not needs_agreement(manifest):
        return None
    name, origin = manifest["solution"].get("name", manifest["solution"]["id"]), checked.signer.name

    def refusal(why: str) -> Refusal:
        return Refusal(f"refused: {name} needs an agreement for this site; ask {origin} for one ({why})")

    given = detail.get("agreement")
    if not isinstance(given, dict) or not isinstance(given.get("document"), dict):
        raise refusal("none came with it")
    document = given["document"]
    try:
        signer = signing.verify(document, given.get("signature"), [])
    except signing.BadSignature as exc:
        raise refusal(f"the agreement's signature does not hold: {exc}") from exc
    if signer.fingerprint != checked.signer.fingerprint:
        raise refusal(f"the agreement was signed by {signer.name!r}, not by who signed the manifest")
    me = identity.load().name
    assignee = document.get("assignee") or {}
    if assignee.get("kind") != "peer" or assignee.get("subject") != me:
        raise refusal(f"the agreement is for {assignee.get('subject')!r}, not for this site ({me})")
    target = document.get("target") or {}
    if target.get("solution") != manifest["solution"]["id"] or \
            target.get("revision") not in (None, manifest["revision"]["id"]):
        raise refusal("the agreement is about another model")
    try:
        exports.check_document(document)
    except exports.BadDocument as exc:
        raise refusal(f"the agreement cannot be read here: {exc}") from exc
    return given


def _import_agreement(revision: Revision, checked, agreement: dict):
    """The origin's agreement for this site, as a local agreement every user here shares."""
    return exports.import_agreement(revision.solution, revision, agreement["document"], agreement["signature"],
                                    checked.signer.name, origin_instance=str(checked.manifest["origin"]["instance"]))


def _name_item(item: SyncItem, manifest: dict) -> None:
    item.name = str(manifest["solution"].get("name", ""))[:200]
    item.version = str(manifest["revision"].get("version", ""))[:50]
    SyncItem.objects.filter(pk=item.pk).update(name=item.name, version=item.version)


def _already_here(subscription: Subscription, revision: Revision, checked) -> tuple[str, str]:
    """Imported before: unchanged (published again if it had been withdrawn). A revision of this id
    that did not come from this subscription is never touched (a peer cannot overwrite ours)."""
    origin = RevisionOrigin.objects.filter(revision=revision, subscription=subscription).first()
    if origin is None:
        raise Refusal(f"refused: a revision with the id {revision.pk} exists here already and was not imported "
                      "by this subscription")
    if _content(origin.manifest) != _content(checked.manifest):
        raise Refusal("refused: the peer now signs a different manifest for a revision imported before "
                      "(ready revisions never change)")
    if origin.withdrawn_at is not None:
        with transaction.atomic():
            RevisionOrigin.objects.filter(pk=origin.pk).update(withdrawn_at=None)
            _publish(subscription, revision)
        return ItemOutcome.IMPORTED, "published again at its origin: listed again"
    return ItemOutcome.UNCHANGED, "already imported"


def _content(manifest: dict) -> dict:
    """What a revision is, without what may change at its origin after it is ready: its image (a
    rebuild gives a new digest; this copy keeps the image it has) and when it was signed."""
    return {key: value for key, value in manifest.items() if key not in ("image", "signed")}


def fetch_artifacts(client: PeerClient, item: SyncItem, manifest: dict, tally: Tally,
                    subscription: Subscription) -> dict[str, Blob]:
    """Every file artifact of the manifest as a local blob, its bytes checked against the manifest.
    The peer's artifact ids are kept (as Acumos does) in `tally.artifact_ids`, when no artifact here has one."""
    wanted = {entry["kind"]: entry for entry in manifest.get("artifacts", []) if entry.get("kind") in
              manifests.FILE_KINDS}
    missing = [kind for kind in REQUIRED if kind not in wanted]
    if missing:
        raise Refusal(f"refused: the manifest lists no {', '.join(missing)} artifact")
    limit = settings.ACUMOS_FEDERATION_MAX_ARTIFACT_MB << 20
    offered = {a["artifactTypeCode"]: a for a in client.artifacts(str(item.solution_id), str(item.revision_id))}
    tally.artifact_ids = _peer_artifact_ids(offered)
    blobs = {}
    for kind, entry in wanted.items():
        size, sha256 = int(entry.get("size", -1)), str(entry.get("sha256", ""))
        if not 0 <= size <= limit:
            raise Refusal(f"refused: {entry.get('name')} is {size} bytes; this site takes at most "
                          f"{settings.ACUMOS_FEDERATION_MAX_ARTIFACT_MB} MB per artifact")
        blobs[kind] = _blob_for(client, offered.get(kind), sha256, size, tally=tally, subscription=subscription)
    return blobs


def _peer_artifact_ids(offered: dict[str, dict]) -> dict[str, uuid.UUID]:
    """kind -> the peer's artifact id; an id that is not a UUID, or that an artifact here has, is refused."""
    ids = {}
    for kind, artifact in offered.items():
        try:
            ids[kind] = uuid.UUID(str(artifact["artifactId"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise Refusal(f"refused: the peer lists a {kind} artifact without a usable id") from exc
    if Artifact.objects.filter(pk__in=ids.values()).exists():
        raise Refusal("refused: the peer lists an artifact whose id an artifact here has already")
    return ids


def _blob_for(client: PeerClient, offered: dict | None, sha256: str, size: int, *, tally: Tally,
              subscription: Subscription) -> Blob:
    held = Blob.objects.filter(sha256=sha256, size=size).first()
    if held is not None:  # content-addressed: the same bytes are here already
        tally.reused += size
        return held
    if offered is None:
        raise Refusal("refused: the peer does not offer an artifact its manifest lists")
    partial = partial_path(subscription, sha256)
    try:
        tally.fetched += client.download(f"artifacts/{offered['artifactId']}/content", partial, size=size,
                                         sha256=sha256)
    except ValueError as exc:
        raise Refusal(f"refused: {exc}") from exc
    blob, created = storage.store_file(partial)
    partial.unlink(missing_ok=True)
    if created:
        tally.created_blobs.append(blob.pk)
    return blob


PARTIAL_DAYS = 7


def partials_dir() -> Path:
    return Path(settings.ACUMOS_FEDERATION_DIR) / "partial"


def partial_path(subscription: Subscription, sha256: str) -> Path:
    """Where a transfer lands until it is whole: the subscription's own (another peer can never feed
    it a prefix), named by the content it must become, so a transfer cut short resumes on a later run
    (the sha256 check decides what is kept)."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise Refusal(f"refused: {sha256!r} is not a sha256")
    folder = partials_dir() / str(subscription.pk)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / sha256


def sweep_partials(days: int = PARTIAL_DAYS) -> int:
    """Remove transfers cut short that no run took up for `days` days (and empty folders)."""
    cutoff, removed = time.time() - days * 86400, 0
    for path in partials_dir().glob("*/*") if partials_dir().exists() else ():
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    for folder in partials_dir().glob("*") if partials_dir().exists() else ():
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


def check_bundle(blobs: dict[str, Blob]) -> tuple[dict, dict]:
    """Local validation and the sandboxed smoke test, as for an upload: a peer is never trusted.
    Returns the validated metadata (what the revision records, not what the peer says it is), and what this
    instance read and measured: {"interface": from the proto, "resources": {} without a smoke test}."""
    with ExitStack() as stack:
        paths = {kind: stack.enter_context(storage.local_copy(blob.storage_key, suffix="." + BUNDLE_FILES[kind]
                                                              .rsplit(".", 1)[-1]))
                 for kind, blob in blobs.items() if kind in BUNDLE_FILES}
        try:
            metadata = validation.validate_metadata(paths[ArtifactKind.METADATA])
            proto = validation.validate_proto(paths[ArtifactKind.PROTO], metadata)
            validation.validate_package(paths[ArtifactKind.MODEL], proto)
            if ArtifactKind.LICENCE in paths:
                validation.validate_licence(paths[ArtifactKind.LICENCE])
        except validation.Invalid as exc:
            raise Refusal(f"refused by local validation: {exc.message}") from exc
        resources = _smoke(paths) if settings.ACUMOS_SMOKE_TEST else {}
    return metadata, {"interface": descriptors.interface(proto), "resources": resources}


def check_licence(manifest: dict, blob: Blob | None) -> None:
    """The licence the manifest states is the licence file that came with it: terms travel as signed,
    never one text in the manifest and another in the bundle."""
    stated = manifest.get("licence")
    if blob is None:
        if stated is not None:
            raise Refusal("refused: the manifest states a licence but no license.json came with it")
        return
    with storage.open_blob(blob) as handle:
        data = handle.read(manifests.MAX_MANIFEST_BYTES)
    try:
        shipped = json.loads(data)
    except ValueError:
        shipped = None
    if shipped != stated:
        raise Refusal("refused: the licence in the signed manifest is not the license.json that came with it")


def _smoke(paths: dict[str, Path]) -> dict:
    directory = smoke.workspace()
    try:
        bundle = directory / "bundle"
        bundle.mkdir()
        for kind in REQUIRED:
            shutil.copyfile(paths[kind], bundle / BUNDLE_FILES[kind])
        return smoke.run(directory, bundle, timeout=settings.ACUMOS_SMOKE_TIMEOUT).resources
    except smoke.SmokeFailed as exc:
        raise Refusal(f"refused by the smoke test: {exc}") from exc
    finally:
        smoke.discard(directory)


def _create(subscription: Subscription, checked, blobs: dict[str, Blob], image, *, detail: dict,
            metadata: dict, artifact_ids: dict, agreement: dict | None = None) -> Revision:
    manifest = checked.manifest
    solution, revision = manifest["solution"], manifest["revision"]
    hops = [str(hop)[:200] for hop in (detail.get("origin") or {}).get("hops") or [checked.signer.name]][:20]
    if hops[-1] != subscription.peer.subject:  # the peer it came through, unless it is the origin itself
        hops.append(subscription.peer.subject)
    with transaction.atomic():
        try:
            made = marketplace_services.revision_import(
                owner=subscription.owner, source=subscription.peer.subject,
                solution=_solution_fields(solution),
                revision={"id": revision["id"], "version": str(revision.get("version", ""))[:50],
                          "description": str(revision.get("description", "")), "metadata": metadata},
                artifacts=blobs, image=image, artifact_ids=artifact_ids)
        except marketplace_services.Refused as exc:
            raise Refusal(f"refused: {exc.message}") from exc
        RevisionOrigin.objects.create(
            revision=made, manifest=manifest, signature=checked.signature, origin_name=checked.signer.name,
            origin_instance=manifest["origin"]["instance"], signer_sha256=checked.signer.fingerprint,
            signature_status=checked.status, peer=subscription.peer, subscription=subscription, hops=hops)
        marketplace_services.revision_mark_ready(made)  # its licence profile is noted (licensing)
        if agreement is not None:
            _import_agreement(made, checked, agreement)
        _publish(subscription, made)
    return made


def _model_type(code) -> str:
    return code if code in ModelType.values else ModelType.OTHER


def _solution_fields(solution: dict) -> dict:
    """What the peer's manifest says of the solution, cut to this site's field sizes."""
    return {"id": solution["id"], "name": str(solution.get("name", ""))[:200],
            "description": str(solution.get("description", "")), "model_type": _model_type(solution.get("modelType")),
            "toolkit": str(solution.get("toolkit", ""))[:30],
            "tags": [str(t)[:50] for t in solution.get("tags", []) if isinstance(t, str)]}


def _publish(subscription: Subscription, revision: Revision) -> None:
    catalog = subscription.local_catalog
    if catalog is not None and not Publication.objects.filter(catalog=catalog, revision=revision).exists():
        marketplace_services.publish_directly(revision, catalog, by=subscription.owner)


def _ensure_local_catalog(subscription: Subscription, client: PeerClient) -> None:
    """The peer's catalog has a local copy, with the peer's id (as Acumos does) when that is free."""
    if subscription.local_catalog_id:
        return
    remote = next((c for c in client.catalogs() if c.get("catalogId") == str(subscription.catalog_id)), None)
    if remote is None:
        raise TryLater(f"{subscription.peer.name} no longer offers this catalog to this site")
    name = str(remote.get("name") or subscription.catalog_name or "Imported")[:80]
    if Catalog.objects.filter(name=name).exists():
        name = f"{name} ({subscription.peer.name})"[:100]
    access = CatalogAccess.RESTRICTED  # imported models are this site's members', not the world's, until an admin says
    catalog_id = subscription.catalog_id if not Catalog.objects.filter(pk=subscription.catalog_id).exists() else None
    catalog = Catalog.objects.create(**({"id": catalog_id} if catalog_id else {}), name=name, access=access,
                                     description=str(remote.get("description", ""))[:2000])
    Subscription.objects.filter(pk=subscription.pk).update(local_catalog=catalog, catalog_name=name)
    subscription.local_catalog = catalog


# ---------------------------------------------------------------- withdrawals

def withdraw(subscription: Subscription, item: SyncItem) -> tuple[str, str]:
    origin = RevisionOrigin.objects.filter(revision_id=item.revision_id, subscription=subscription).select_related(
        "revision__solution").first()
    if origin is None:
        return ItemOutcome.UNCHANGED, "withdrawn at the origin; never imported here"
    try:
        manifests.check_tombstone(item.tombstone, peer=subscription.peer, revision_id=str(item.revision_id))
    except manifests.ManifestRefused as exc:
        raise Refusal(f"refused: {exc}") from exc
    item.name, item.version = origin.revision.solution.name, origin.revision.version
    SyncItem.objects.filter(pk=item.pk).update(name=item.name, version=item.version)
    if origin.withdrawn_at is not None:
        return ItemOutcome.UNCHANGED, "already withdrawn"
    with transaction.atomic():
        RevisionOrigin.objects.filter(pk=origin.pk).update(withdrawn_at=timezone.now())
        if subscription.on_withdrawal == WithdrawalPolicy.HIDE:
            for publication in Publication.objects.filter(revision=origin.revision):
                publication.delete()
            marketplace_services.refresh_audience(origin.revision.solution_id)
    told = notices.tell_deployers(origin.revision)
    hidden = "hidden here" if subscription.on_withdrawal == WithdrawalPolicy.HIDE else "kept listed here"
    return ItemOutcome.WITHDRAWN, f"withdrawn at its origin; {hidden}; {told} deployment owner(s) told"


# ---------------------------------------------------------------- the rest

def _discard_blobs(tally: Tally) -> None:
    for blob in Blob.objects.filter(pk__in=tally.created_blobs):
        storage.delete_blob_if_orphan(blob)


def _tell_owner(subscription: Subscription, item: SyncItem, message: str, *, final: bool) -> None:
    notices.tell_item_failed(subscription, item, message, final=final)


def _summary(sync_run: SyncRun) -> dict:
    counts: dict[str, int] = {}
    for outcome in SyncResult.objects.filter(run=sync_run).values_list("outcome", flat=True):
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
