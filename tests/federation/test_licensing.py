"""Licences that travel (design: docs/design/licensing.md, section 5). The export side in-process,
through the peer API as the terminator forwards calls: a revision whose licence needs an agreement
is hidden from a peer everywhere (listing, detail, artifacts, bytes, image blobs, the feed) until this
site's licensor grants that peer an export permit; the grant publishes it again in the feed; the
detail then carries the agreement, signed as the manifest is, and the export is counted once. The
import side with sync's own code and an origin stood in by a fake client: the agreement is checked
before anything is fetched, becomes an agreement for everyone on this site, binds the imported model's
local owner too, and never travels on."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from federation import manifests, signing, sync
from federation.choices import ChangeKind
from federation.models import CatalogGrant, ChangeEvent, Peer, Subscription, SyncItem
from licensing import exports, policy
from licensing import services as licensing
from licensing.choices import Action, AgreementSource, AssigneeKind, RuleKind
from licensing.models import Agreement, LicenceProfile, Rule, UsageRecord
from marketplace import services as marketplace_services
from marketplace.choices import ArtifactKind, CatalogAccess
from marketplace.models import Artifact, Revision, Solution
from onboarding import validation
from tests.factories import CatalogFactory, RevisionFactory, UserFactory, published_revision

from .pki import ThrowawayCA
from .test_peer_api import error_of, through_terminator, with_files

pytestmark = pytest.mark.django_db
PEER = "portal-b.test"  # the `peer` fixture's subject
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def peer_cert(ca):
    return ca.issue(PEER)


@pytest.fixture
def public(db):
    return CatalogFactory(name="Open shelf", access=CatalogAccess.PUBLIC)


def rtu(revision: Revision, required: bool = True) -> Revision:
    LicenceProfile.objects.create(revision=revision, keyword="Proprietary", rtu_required=required)
    return revision


def model_with_files(catalog) -> tuple[Revision, Artifact, Artifact]:
    """A published revision with a file artifact and an image (its reference carries its digest, so
    the manifest needs no registry)."""
    revision = with_files(published_revision(catalog), MD=b'{"name": "iris"}')
    image = Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name="image",
                                    uri=f"127.0.0.1:9/models/iris@{DIGEST}")
    return revision, revision.artifacts.get(kind=ArtifactKind.METADATA), image


def paths_of(revision: Revision, artifact: Artifact, image: Artifact, catalog) -> dict[str, str]:
    solution = revision.solution_id
    return {"listing": f"/federation/solutions?catalogId={catalog.pk}",
            "solution": f"/federation/solutions/{solution}",
            "detail": f"/federation/solutions/{solution}/revisions/{revision.pk}",
            "artifacts": f"/federation/solutions/{solution}/revisions/{revision.pk}/artifacts",
            "content": f"/federation/artifacts/{artifact.pk}/content",
            "blob": f"/federation/artifacts/{image.pk}/blobs/{DIGEST}"}


@pytest.fixture
def image_blobs(monkeypatch):
    """The image's blobs as the registry would stream them (no registry in these tests)."""
    from federation import transfer

    monkeypatch.setattr(transfer, "image_blob", lambda artifact, digest: iter([b"layer bytes"]))


def export_terms(*rules: licensing.RuleTerms, days: int | None = 30) -> licensing.Terms:
    return licensing.Terms(rules or (licensing.RuleTerms(Action.EXPORT), licensing.RuleTerms(Action.DOWNLOAD)), days)


def grant_export(of: Revision, subject: str = PEER, terms: licensing.Terms | None = None, **options):
    """An export agreement for `of`'s solution (every revision, unless `revision=` is given)."""
    solution = of.solution
    return licensing.grant(solution.owner, solution, licensing.Assignee(AssigneeKind.PEER, peer=subject),
                           terms or export_terms(), **options)


def visible(client, paths: dict[str, str], revision: Revision) -> dict[str, bool]:
    """What the peer gets of the revision on each path."""
    seen = {}
    for name, path in paths.items():
        response = client.get(path)
        if name == "listing":
            listed = response.json()["content"]
            seen[name] = str(revision.solution_id) in {s["solutionId"] for s in listed}
        else:
            seen[name] = response.status_code == 200
    revisions = client.get(f"/federation/solutions/{revision.solution_id}/revisions").json()["content"]
    seen["revisions"] = str(revision.pk) in {r["revisionId"] for r in revisions}
    return seen


def feed(client, catalog, since: int = 0) -> tuple[list[tuple[str, str]], int]:
    page = client.get(f"/federation/changes?catalogId={catalog.pk}&since={since}").json()["content"]
    return [(c["kind"], c["revisionId"]) for c in page["changes"]], page["cursor"]


# ---------------------------------------------------------------- export: the gate

def test_a_revision_that_needs_an_agreement_is_hidden_from_a_peer_everywhere(me, peer, peer_cert, public,
                                                                             image_blobs):
    gated, artifact, image = model_with_files(public)
    rtu(gated)
    client = through_terminator(peer_cert)
    paths = paths_of(gated, artifact, image, public)
    assert not any(visible(client, paths, gated).values())
    for name in ("solution", "detail", "artifacts", "content", "blob"):
        assert error_of(client.get(paths[name])) == "not_found", name
    assert ("published", str(gated.pk)) not in feed(client, public)[0]
    assert not UsageRecord.objects.exists()


def test_an_open_licence_revision_is_exported_as_before(me, peer, peer_cert, public, image_blobs):
    for required in (None, False):  # no profile at all, and one without rtuRequired
        revision, artifact, image = model_with_files(public)
        if required is not None:
            rtu(revision, required)
        client = through_terminator(peer_cert)
        assert all(visible(client, paths_of(revision, artifact, image, public), revision).values())
        detail = client.get(paths_of(revision, artifact, image, public)["detail"]).json()["content"]
        assert "agreement" not in detail and detail["manifest"]["revision"]["id"] == str(revision.pk)
        assert ("published", str(revision.pk)) in feed(client, public)[0]
    assert not UsageRecord.objects.exists()


def test_granting_an_export_agreement_shows_it_and_publishes_it_again_in_the_feed(
        me, peer, peer_cert, public, image_blobs, django_capture_on_commit_callbacks):
    gated, artifact, image = model_with_files(public)
    rtu(gated)
    later = published_revision(public)  # open: listed, so the feed's cursor moves past the hidden one
    client = through_terminator(peer_cert)
    changes, cursor = feed(client, public)
    assert changes == [("published", str(later.pk))]

    with django_capture_on_commit_callbacks(execute=True):
        grant_export(gated)

    assert feed(client, public, cursor)[0] == [("published", str(gated.pk))]
    assert all(visible(client, paths_of(gated, artifact, image, public), gated).values())
    assert b"".join(client.get(paths_of(gated, artifact, image, public)["blob"]).streaming_content) == b"layer bytes"


def test_the_detail_carries_the_agreement_signed_as_the_manifest_and_counts_the_export_once(
        me, peer, peer_cert, public):
    gated = rtu(with_files(published_revision(public), MD=b"{}"))
    agreement = grant_export(gated, terms=export_terms(licensing.RuleTerms(Action.EXPORT, count_limit=5),
                                                       licensing.RuleTerms(Action.DEPLOY, live_limit=2)))
    path = f"/federation/solutions/{gated.solution_id}/revisions/{gated.pk}"
    client = through_terminator(peer_cert)
    bodies = [client.get(path).json()["content"] for _ in range(3)]  # retries take nothing more

    signed = bodies[0]["agreement"]
    document = signed["document"]
    assert document == exports.agreement_document(agreement)
    assert document["assignee"] == {"kind": "peer", "subject": PEER}
    assert document["target"] == {"solution": str(gated.solution_id), "revision": None}
    assert {r["action"]: (r["count_limit"], r["live_limit"]) for r in document["rules"]} == {
        "export": (5, None), "deploy": (None, 2)}
    signer = signing.verify(document, signed["signature"], me.anchors)
    manifest_signer = signing.verify(bodies[0]["manifest"], bodies[0]["signature"], me.anchors)
    assert signer.trusted and signer.fingerprint == manifest_signer.fingerprint
    assert Rule.objects.get(agreement=agreement, action=Action.EXPORT).count_used == 1
    record = UsageRecord.objects.get()
    assert (record.agreement_id, record.revision_id, record.action, record.peer) == (
        agreement.pk, gated.pk, Action.EXPORT, PEER)


def test_an_export_count_is_of_revisions_and_one_received_stays_served(me, peer, peer_cert, public):
    first = rtu(with_files(published_revision(public), MD=b"{}"))
    second = rtu(RevisionFactory(solution=first.solution))
    marketplace_services.publish_directly(second, public)
    grant_export(first, terms=export_terms(licensing.RuleTerms(Action.EXPORT, count_limit=1)))
    client = through_terminator(peer_cert)
    detail = "/federation/solutions/{}/revisions/{}"
    assert client.get(detail.format(first.solution_id, first.pk)).status_code == 200  # takes the one export
    assert client.get(detail.format(first.solution_id, first.pk)).status_code == 200  # received: served again
    assert client.get(detail.format(second.solution_id, second.pk)).status_code == 404  # none left for another
    revisions = client.get(f"/federation/solutions/{first.solution_id}/revisions").json()["content"]
    assert [r["revisionId"] for r in revisions] == [str(first.pk)]


def _revoked(agreement):
    licensing.revoke(agreement.solution.owner, agreement, "partnership ended")


def _ended(agreement):
    Agreement.objects.filter(pk=agreement.pk).update(starts=timezone.now() - dt.timedelta(days=9),
                                                     ends=timezone.now() - dt.timedelta(days=1))


def _prohibited(agreement):
    licensing.grant(agreement.solution.owner, agreement.solution,
                    licensing.Assignee(AssigneeKind.PEER, peer=PEER),
                    licensing.Terms((licensing.RuleTerms(Action.EXPORT, kind=RuleKind.PROHIBIT),), None))


def _not_yet(agreement):
    Agreement.objects.filter(pk=agreement.pk).update(starts=timezone.now() + dt.timedelta(days=1), ends=None)


@pytest.mark.parametrize("undo", [_revoked, _ended, _prohibited, _not_yet], ids=lambda f: f.__name__.strip("_"))
def test_a_revoked_ended_prohibited_or_future_agreement_hides_it_again(me, peer, peer_cert, public, undo):
    gated = rtu(with_files(published_revision(public), MD=b"{}"))
    agreement = grant_export(gated)
    client = through_terminator(peer_cert)
    path = f"/federation/solutions/{gated.solution_id}/revisions/{gated.pk}"
    assert client.get(path).status_code == 200
    undo(agreement)
    assert client.get(path).status_code == 404
    assert ("published", str(gated.pk)) not in feed(client, public)[0]


def test_only_the_peer_granted_an_export_permit_receives_it(me, peer, peer_cert, public, ca):
    gated = rtu(with_files(published_revision(public), MD=b"{}"))
    Peer.objects.create(name="Delta", subject="portal-d.test", api_url="https://127.0.0.1:9", certificate=ca.pem)
    grant_export(gated, subject="portal-d.test")
    grant_export(gated, terms=export_terms(licensing.RuleTerms(Action.DOWNLOAD)))  # to Beta, no export rule
    path = f"/federation/solutions/{gated.solution_id}/revisions/{gated.pk}"
    assert through_terminator(peer_cert).get(path).status_code == 404
    assert through_terminator(ca.issue("portal-d.test")).get(path).status_code == 200


def test_a_grant_adds_events_only_for_the_peer_it_is_for_and_what_it_covers(
        me, peer, public, django_capture_on_commit_callbacks):
    restricted = CatalogFactory(name="Partners", access=CatalogAccess.RESTRICTED)
    gated = rtu(with_files(published_revision(public), MD=b"{}"))
    marketplace_services.publish_directly(gated, restricted)  # a catalog Beta does not read
    other = rtu(RevisionFactory(solution=gated.solution))  # a version the agreement below does not cover
    marketplace_services.publish_directly(other, public)
    before = ChangeEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        grant_export(gated, revision=gated)
        licensing.grant(gated.solution.owner, gated.solution,
                        licensing.Assignee(AssigneeKind.USER, user=UserFactory()), export_terms())
    added = list(ChangeEvent.objects.order_by("seq").values_list("catalog_id", "revision_id", "kind")[before:])
    assert added == [(public.pk, gated.pk, ChangeKind.PUBLISHED)]
    assert other.pk not in {row[1] for row in added}
    CatalogGrant.objects.create(peer=peer, catalog=restricted)  # now it reads both: a new grant says both
    with django_capture_on_commit_callbacks(execute=True):
        grant_export(gated)
    assert set(ChangeEvent.objects.order_by("seq").values_list("catalog_id", "kind")[before + 1:]) == {
        (public.pk, ChangeKind.PUBLISHED), (restricted.pk, ChangeKind.PUBLISHED)}


# ---------------------------------------------------------------- import: the subscriber's side

LICENCE = {"keyword": "LicenseRef-Beta-Proprietary", "licenseName": "Beta proprietary licence",
           "copyright": {"year": 2025, "company": "Beta Corp", "suffix": "All Rights Reserved"},
           "softwareType": "Machine Learning Model", "companyName": "Beta Corp",
           "contact": {"name": "Beta", "URL": "https://beta.test", "email": "licences@beta.test"},
           "rtuRequired": True}
FILES = {ArtifactKind.METADATA: "metadata.json", ArtifactKind.PROTO: "model.proto",
         ArtifactKind.MODEL: "modelpackage.zip", ArtifactKind.LICENCE: "license.json"}


class Signer:
    """An instance's key and certificate, as federation.signing signs with them."""

    def __init__(self, issued):
        self.certificate, self._key = issued.certificate, issued.key

    def private_key(self):
        return self._key


class Origin:
    """Beta as sync's client sees it: the revision's detail, its artifacts listed and their bytes.
    `fetched` is every artifact call made (a refusal must come before any)."""

    def __init__(self, detail: dict, files: dict[str, Path]):
        self.detail, self.files, self.fetched = detail, files, []
        self.ids = {kind: uuid.uuid4() for kind in files}

    def revision(self, solution_id, revision_id):
        return self.detail

    def artifacts(self, solution_id, revision_id):
        self.fetched.append("artifacts")
        return [{"artifactId": str(self.ids[kind]), "artifactTypeCode": kind} for kind in self.files]

    def download(self, path, target: Path, *, size: int, sha256: str) -> int:
        self.fetched.append(path)
        kind = next(k for k, i in self.ids.items() if str(i) in path)
        shutil.copyfile(self.files[kind], target)
        return size


@pytest.fixture
def beta(ca, peer):
    """Beta's signing identity: issued by the CA registered for the `peer` fixture."""
    return Signer(ca.issue(PEER))


@pytest.fixture
def offered(example_bundle, tmp_path) -> dict[str, Path]:
    """The files of the model Beta offers: the example bundle and a licence that needs an agreement."""
    licence = tmp_path / "license.json"
    licence.write_text(json.dumps(LICENCE))
    return {ArtifactKind.METADATA: example_bundle / "metadata.json", ArtifactKind.PROTO: example_bundle / "model.proto",
            ArtifactKind.MODEL: example_bundle / "modelpackage.zip", ArtifactKind.LICENCE: licence}


@pytest.fixture
def importing(peer, admin_user):
    """Beta's catalog subscribed to here, listed in a local catalog."""
    local = CatalogFactory(name="Beta's models", access=CatalogAccess.PUBLIC)
    return Subscription.objects.create(peer=peer, catalog_id=uuid.uuid4(), catalog_name="Beta models",
                                       owner=admin_user, local_catalog=local)


def manifest_of(files: dict[str, Path], solution_id: str, revision_id: str) -> dict:
    import hashlib

    return {
        "schema": manifests.SCHEMA, "origin": {"name": PEER, "instance": str(uuid.uuid4())},
        "solution": {"id": solution_id, "name": "Secret iris", "description": "", "modelType": "",
                     "toolkit": "sklearn", "tags": []},
        "revision": {"id": revision_id, "version": "1.0.0", "description": "", "created": timezone.now().isoformat(),
                     "metadata": validation.validate_metadata(files[ArtifactKind.METADATA])},
        "licence": json.loads(files[ArtifactKind.LICENCE].read_text()),
        "artifacts": sorted(({"kind": kind, "name": FILES[kind], "size": path.stat().st_size,
                              "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                             for kind, path in files.items()), key=lambda f: f["kind"]),
        "image": None, "signed": timezone.now().isoformat()}


def agreement_for(manifest: dict, *, subject: str = "portal-a.test", revision: bool = False, **changes) -> dict:
    """The document Beta's licensor's agreement for this site (portal-a.test, the `me` fixture) reads."""
    return {"schema": exports.DOCUMENT_SCHEMA, "agreement": str(uuid.uuid4()),
            "assignee": {"kind": "peer", "subject": subject},
            "target": {"solution": manifest["solution"]["id"],
                       "revision": manifest["revision"]["id"] if revision else None},
            "starts": None, "ends": (timezone.now() + dt.timedelta(days=30)).isoformat(),
            "rules": [{"action": "export", "kind": "permit", "count_limit": 3, "live_limit": None},
                      {"action": "download", "kind": "permit", "count_limit": 2, "live_limit": None}],
            **changes}


def offer(beta: Signer, files: dict[str, Path], *, document=None, agreement_signer: Signer | None = None,
          tamper=None) -> tuple[Origin, SyncItem]:
    solution_id, revision_id = str(uuid.uuid4()), str(uuid.uuid4())
    manifest = manifest_of(files, solution_id, revision_id)
    detail = {"revisionId": revision_id, "solutionId": solution_id, "manifest": manifest,
              "signature": signing.sign(manifest, beta), "origin": {"name": PEER, "hops": [PEER]}}
    document = document(manifest) if callable(document) else document
    if document is not None:
        signature = signing.sign(document, agreement_signer or beta)
        if tamper is not None:
            tamper(document)
        detail["agreement"] = {"document": document, "signature": signature}
    return Origin(detail, files), manifest


def import_offered(subscription, origin: Origin, manifest: dict):
    item, _ = SyncItem.objects.update_or_create(subscription=subscription, revision_id=manifest["revision"]["id"],
                                                defaults={"solution_id": manifest["solution"]["id"],
                                                          "change": ChangeKind.PUBLISHED})
    return sync.import_revision(origin, subscription, item, sync.Tally())


def test_an_import_with_its_agreement_makes_an_agreement_for_everyone_on_this_site(me, beta, offered, importing):
    origin, manifest = offer(beta, offered, document=agreement_for)
    outcome, message = import_offered(importing, origin, manifest)

    assert outcome == "imported", message
    revision = Revision.objects.get(pk=manifest["revision"]["id"])
    assert LicenceProfile.objects.get(revision=revision).rtu_required
    agreement = Agreement.objects.get(solution=revision.solution)
    assert (agreement.assignee_kind, agreement.source, agreement.licensor, agreement.licensor_name) == (
        AssigneeKind.SITE, AgreementSource.PEER, None, PEER)
    assert agreement.revision is None and agreement.ends is not None
    assert agreement.document == origin.detail["agreement"]["document"]
    assert agreement.signature == origin.detail["agreement"]["signature"]
    assert agreement.origin_instance == manifest["origin"]["instance"]
    assert {(r.action, r.kind, r.count_limit) for r in agreement.rules.all()} == {
        ("export", "permit", 3), ("download", "permit", 2)}


def test_a_new_agreement_for_a_revision_imported_before_is_imported_too(me, beta, offered, importing):
    """How an extension reaches this site: the grant publishes the revision again, and its detail
    carries the new agreement (the same one again is the agreement made before)."""
    origin, manifest = offer(beta, offered, document=agreement_for)
    import_offered(importing, origin, manifest)
    assert import_offered(importing, origin, manifest)[0] == "unchanged"
    assert Agreement.objects.count() == 1
    extended = agreement_for(manifest, ends=(timezone.now() + dt.timedelta(days=365)).isoformat())
    origin.detail["agreement"] = {"document": extended, "signature": signing.sign(extended, beta)}
    assert import_offered(importing, origin, manifest)[0] == "unchanged"
    assert Agreement.objects.count() == 2 and origin.fetched.count("artifacts") == 1
    origin.detail.pop("agreement")  # a revision imported before is never re-imported without one either
    with pytest.raises(sync.Refusal, match="none came with it"):
        import_offered(importing, origin, manifest)


def test_the_imported_models_local_owner_is_bound_by_the_site_agreement(me, beta, offered, importing, other_user):
    origin, manifest = offer(beta, offered, document=agreement_for)
    import_offered(importing, origin, manifest)
    revision = Revision.objects.get(pk=manifest["revision"]["id"])
    owner = importing.owner
    assert revision.solution.owner == owner

    for user in (owner, other_user):  # the owner is no licensor here: counted as anyone on the site
        decision = policy.decide(policy.Who.of(user), revision, Action.DOWNLOAD, consume=1, kind="bundle")
        assert (decision.allowed, decision.code) == (True, "entitled")
    assert UsageRecord.objects.filter(revision=revision, action=Action.DOWNLOAD).count() == 2
    exhausted = policy.decide(policy.Who.of(owner), revision, Action.DOWNLOAD, consume=1)
    assert (exhausted.allowed, exhausted.code) == (False, "usage_exhausted")  # 2 downloads for the whole site
    deploy = policy.decide(policy.Who.of(owner), revision, Action.DEPLOY)  # the agreement permits no deploy
    assert (deploy.allowed, deploy.code) == (False, "agreement_not_found")


def test_without_the_site_agreement_the_local_owner_may_not_use_an_imported_model(admin_user):
    revision = marketplace_services.revision_import(
        owner=admin_user, source=PEER, solution={"id": str(uuid.uuid4()), "name": "Secret iris", "tags": []},
        revision={"id": str(uuid.uuid4()), "version": "1.0.0"}, artifacts={})
    rtu(revision)
    decision = policy.decide(policy.Who.of(admin_user), revision, Action.DOWNLOAD, consume=1)
    assert (decision.allowed, decision.code) == (False, "agreement_not_found")
    assert not UsageRecord.objects.exists()


def _tampered(document):
    document["rules"][1]["count_limit"] = 1000


OTHER_CA = ThrowawayCA("Someone else's CA")
REFUSALS = {
    "missing": ({}, "none came with it"),
    "tampered": ({"document": agreement_for, "tamper": _tampered}, "signature does not hold"),
    "another signer": ({"document": agreement_for, "agreement_signer": Signer(OTHER_CA.issue(PEER))},
                       "not by who signed the manifest"),
    "for another site": ({"document": lambda m: agreement_for(m, subject="portal-c.test")},
                         "is for 'portal-c.test', not for this site"),
    "about another model": ({"document": lambda m: {**agreement_for(m), "target": {
        "solution": str(uuid.uuid4()), "revision": None}}}, "about another model"),
    "ended": ({"document": lambda m: agreement_for(m, ends=(timezone.now() - dt.timedelta(days=1)).isoformat())},
              "it ended on"),
    "unreadable rules": ({"document": lambda m: agreement_for(m, rules=[{"action": "fly", "kind": "permit"}])},
                         "cannot be read here"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_an_agreement_missing_or_not_to_be_believed_is_refused_before_anything_is_fetched(
        me, beta, offered, importing, case):
    options, why = REFUSALS[case]
    origin, manifest = offer(beta, offered, **options)
    with pytest.raises(sync.Refusal) as refused:
        import_offered(importing, origin, manifest)
    assert str(refused.value).startswith(f"refused: Secret iris needs an agreement for this site; ask {PEER} for one")
    assert why in str(refused.value)
    assert origin.fetched == []
    assert not Solution.objects.filter(pk=manifest["solution"]["id"]).exists()
    assert not Agreement.objects.exists()


def test_an_open_licence_is_imported_without_an_agreement(me, beta, offered, importing, tmp_path):
    open_licence = tmp_path / "open.json"
    open_licence.write_text(json.dumps({**LICENCE, "keyword": "Apache-2.0", "rtuRequired": False}))
    files = {**offered, ArtifactKind.LICENCE: open_licence}
    origin, manifest = offer(beta, files)
    outcome, message = import_offered(importing, origin, manifest)
    assert outcome == "imported", message
    assert not Agreement.objects.exists()


def test_an_imported_model_that_needs_an_agreement_never_travels_on(me, beta, offered, importing, ca):
    origin, manifest = offer(beta, offered, document=agreement_for)
    import_offered(importing, origin, manifest)
    revision = Revision.objects.get(pk=manifest["revision"]["id"])
    gamma = Peer.objects.create(name="Gamma", subject="portal-c.test", api_url="https://127.0.0.1:9",
                                certificate=ca.pem)
    path = f"/federation/solutions/{revision.solution_id}/revisions/{revision.pk}"
    client = through_terminator(ca.issue("portal-c.test"))
    assert client.get(path).status_code == 404
    with pytest.raises(licensing.NotAllowed):  # nobody here is its licensor
        licensing.grant(importing.owner, revision.solution, licensing.Assignee(AssigneeKind.PEER, peer=gamma.subject),
                        export_terms())
    # Even an export agreement written straight into the table, by a local user, does not make it travel.
    forced = Agreement.objects.create(solution=revision.solution, licensor=importing.owner,
                                      assignee_kind=AssigneeKind.PEER, assignee_peer=gamma.subject)
    Rule.objects.create(agreement=forced, action=Action.EXPORT)
    assert client.get(path).status_code == 404
    assert ("published", str(revision.pk)) not in feed(client, importing.local_catalog)[0]


# ---------------------------------------------------------------- the matrix's export row

EXPORT_PERSONAS = ("no_agreement", "granted", "other_peer_granted", "not_started", "expired", "exhausted",
                   "revoked", "prohibited")


def _arrange_export(persona: str, revision: Revision) -> None:
    """The peer's standing for `persona` (tests/licensing/test_matrix.py's personas, as a peer has them)."""
    now = timezone.now()
    if persona == "granted":
        grant_export(revision)
    elif persona == "other_peer_granted":
        grant_export(revision, subject="portal-c.test")
    elif persona == "not_started":
        grant_export(revision, starts=now + dt.timedelta(days=1), ends=now + dt.timedelta(days=30))
    elif persona == "expired":
        agreement = grant_export(revision)
        Agreement.objects.filter(pk=agreement.pk).update(starts=now - dt.timedelta(days=9),
                                                         ends=now - dt.timedelta(days=1))
    elif persona == "exhausted":
        agreement = grant_export(revision, terms=export_terms(licensing.RuleTerms(Action.EXPORT, count_limit=1)))
        Rule.objects.filter(agreement=agreement, action=Action.EXPORT).update(count_used=1)
    elif persona == "revoked":
        _revoked(grant_export(revision))
    elif persona == "prohibited":
        grant_export(revision)
        grant_export(revision, terms=export_terms(licensing.RuleTerms(Action.EXPORT, kind=RuleKind.PROHIBIT)))


@pytest.mark.parametrize("persona", EXPORT_PERSONAS)
@pytest.mark.parametrize("licence", ["open", "rtu"])
def test_export_matrix(licence, persona, me, peer, peer_cert, public, image_blobs):
    """Export to a peer: listed and served whole (detail, files, image blobs), or found nowhere; one usage
    row for an export under an agreement, none otherwise."""
    revision, artifact, image = model_with_files(public)
    rtu(revision, required=licence == "rtu")
    _arrange_export(persona, revision)

    seen = visible(through_terminator(peer_cert), paths_of(revision, artifact, image, public), revision)

    exported = licence == "open" or persona == "granted"
    assert seen == dict.fromkeys(seen, exported)
    assert UsageRecord.objects.filter(action=Action.EXPORT).count() == (1 if licence == "rtu" and exported else 0)


def test_a_peer_gets_no_file_of_a_revision_whose_export_it_has_not_taken(me, peer, peer_cert, public, image_blobs):
    """Listing the revisions and fetching their files straight away, skipping the detail that counts the
    export, gets nothing; the same files come once the detail was served."""
    revision, artifact, image = model_with_files(public)
    rtu(revision)
    agreement = grant_export(revision, terms=export_terms(licensing.RuleTerms(Action.EXPORT, count_limit=1)))
    client = through_terminator(peer_cert)
    paths = paths_of(revision, artifact, image, public)
    assert client.get(paths["content"]).status_code == 404
    assert client.get(paths["blob"]).status_code == 404
    assert Rule.objects.get(agreement=agreement, action=Action.EXPORT).count_used == 0
    assert client.get(paths["detail"]).status_code == 200
    assert client.get(paths["content"]).status_code == 200 and client.get(paths["blob"]).status_code == 200
    assert Rule.objects.get(agreement=agreement, action=Action.EXPORT).count_used == 1
