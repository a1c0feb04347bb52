"""The sync engine's decisions on one item, in-process (the end-to-end runs are test_sync.py): a
withdrawal believed only with the peer's signed tombstone, hiding or keeping the copy as the
subscription says and telling the owners of its deployments; a revision id that exists here already
and was not imported by the subscription is never touched; a name the owner has already gets the
peer's name beside it; imported models are read-only here."""

from __future__ import annotations

import json
import uuid

import pytest

from acumos_portal.api.refusals import Refused
from deployment.choices import DeploymentStatus
from federation import identity, manifests, sync
from federation.choices import ChangeKind, ItemOutcome, PeerStatus, SignatureStatus, WithdrawalPolicy
from federation.models import ChangeEvent, Peer, RevisionOrigin, Subscription, SyncItem
from marketplace import services as marketplace_services
from marketplace.choices import CatalogAccess
from marketplace.models import Notification, Publication, Solution
from tests.factories import CatalogFactory, DeploymentFactory, RevisionFactory, SolutionFactory, UserFactory

from .pki import ThrowawayCA

pytestmark = pytest.mark.django_db


@pytest.fixture
def origin_peer(me):
    """A peer whose key is this test's identity: tombstones signed with `me` are that peer's."""
    return Peer.objects.create(name="Alpha", subject=me.name, api_url="https://127.0.0.1:9",
                               certificate=me.public_pem())


@pytest.fixture
def local_catalog(db):
    return CatalogFactory(name="Alpha's models", access=CatalogAccess.RESTRICTED)


@pytest.fixture
def copy(origin_peer, local_catalog, admin_user):
    """A revision imported by a subscription and listed in its local catalog."""
    subscription = Subscription.objects.create(peer=origin_peer, catalog_id=uuid.uuid4(), owner=admin_user,
                                               local_catalog=local_catalog)
    solution = SolutionFactory(owner=admin_user, imported_from=origin_peer.subject)
    revision = RevisionFactory(solution=solution)
    marketplace_services.publish_directly(revision, local_catalog)
    RevisionOrigin.objects.create(revision=revision, manifest={"m": 1}, signature={}, origin_name=origin_peer.name,
                                  origin_instance=uuid.uuid4(), signer_sha256="0" * 64,
                                  signature_status=SignatureStatus.VERIFIED, peer=origin_peer,
                                  subscription=subscription, hops=[origin_peer.name])
    return subscription, revision


def withdrawal(subscription, revision, *, signed=True) -> SyncItem:
    event = ChangeEvent.objects.create(catalog_id=subscription.catalog_id, solution_id=revision.solution_id,
                                       revision_id=revision.pk, kind=ChangeKind.WITHDRAWN)
    tombstone = manifests.tombstone(event)
    if not signed:
        tombstone["document"]["revisionId"] = str(uuid.uuid4())  # changed after signing
    return SyncItem.objects.create(subscription=subscription, solution_id=revision.solution_id,
                                   revision_id=revision.pk, change=ChangeKind.WITHDRAWN, tombstone=tombstone)


def test_a_signed_withdrawal_hides_the_copy_and_tells_its_deployers(copy):
    subscription, revision = copy
    deployer = UserFactory()
    DeploymentFactory(revision=revision, created_by=deployer, status=DeploymentStatus.RUNNING)
    DeploymentFactory(revision=revision, created_by=UserFactory(), status=DeploymentStatus.DESTROYED)

    outcome, message = sync.withdraw(subscription, withdrawal(subscription, revision))

    assert outcome == ItemOutcome.WITHDRAWN and "1 deployment owner(s) told" in message
    assert not Publication.objects.filter(revision=revision).exists()
    assert RevisionOrigin.objects.get(revision=revision).withdrawn_at is not None
    told = Notification.objects.get(user=deployer)
    assert "withdrawn at its origin" in told.title and "keeps serving" in told.message
    assert Notification.objects.filter(title__contains="withdrawn").count() == 1  # not the destroyed one's owner
    # Hidden here is withdrawn for this site's own subscribers too: the local catalog's feed says so.
    assert ChangeEvent.objects.filter(catalog_id=subscription.local_catalog_id, revision_id=revision.pk,
                                      kind=ChangeKind.WITHDRAWN).exists()


def test_the_keep_policy_marks_the_copy_withdrawn_and_keeps_it_listed(copy):
    subscription, revision = copy
    Subscription.objects.filter(pk=subscription.pk).update(on_withdrawal=WithdrawalPolicy.KEEP)
    subscription.refresh_from_db()
    outcome, message = sync.withdraw(subscription, withdrawal(subscription, revision))
    assert outcome == ItemOutcome.WITHDRAWN and "kept listed" in message
    assert Publication.objects.filter(revision=revision).exists()
    assert RevisionOrigin.objects.get(revision=revision).withdrawn_at is not None


def test_a_withdrawal_whose_tombstone_does_not_hold_is_refused_and_changes_nothing(copy):
    subscription, revision = copy
    with pytest.raises(sync.Refusal, match="signature does not hold"):
        sync.withdraw(subscription, withdrawal(subscription, revision, signed=False))
    assert Publication.objects.filter(revision=revision).exists()
    assert RevisionOrigin.objects.get(revision=revision).withdrawn_at is None


def test_a_withdrawal_signed_by_someone_else_is_refused(copy, ca):
    subscription, revision = copy
    item = withdrawal(subscription, revision)
    Peer.objects.filter(pk=subscription.peer_id).update(certificate=ca.pem)  # the peer's key is not `me` now
    subscription.refresh_from_db()
    with pytest.raises(sync.Refusal):
        sync.withdraw(subscription, item)
    assert Publication.objects.filter(revision=revision).exists()


def test_a_revision_id_that_exists_here_and_was_not_imported_is_never_touched(copy):
    subscription, _ = copy
    ours = RevisionFactory()
    checked = manifests.Checked(manifest={"m": 2}, signature={}, signer=None, status=SignatureStatus.VERIFIED)
    with pytest.raises(sync.Refusal, match="was not imported by this subscription"):
        sync._already_here(subscription, ours, checked)


def test_a_changed_manifest_for_a_revision_imported_before_is_refused(copy):
    subscription, revision = copy
    checked = manifests.Checked(manifest={"m": "other"}, signature={}, signer=None, status=SignatureStatus.VERIFIED)
    with pytest.raises(sync.Refusal, match="different manifest"):
        sync._already_here(subscription, revision, checked)
    same = manifests.Checked(manifest={"m": 1}, signature={}, signer=None, status=SignatureStatus.VERIFIED)
    assert sync._already_here(subscription, revision, same)[0] == ItemOutcome.UNCHANGED


# ---------------------------------------------------------------- making the copy

def imported_revision(owner, *, solution_id=None, name="Iris", source="Alpha", version="1.0.0"):
    return marketplace_services.revision_import(
        owner=owner, source=source, solution={"id": str(solution_id or uuid.uuid4()), "name": name, "tags": ["x"]},
        revision={"id": str(uuid.uuid4()), "version": version}, artifacts={})


def test_an_import_keeps_the_peers_ids_and_names_it_beside_a_local_model_of_the_same_name(admin_user):
    SolutionFactory(owner=admin_user, name="Iris")
    solution_id = uuid.uuid4()
    made = imported_revision(admin_user, solution_id=solution_id)
    assert str(made.solution_id) == str(solution_id) and made.solution.name == "Iris (Alpha)"
    assert made.solution.imported_from == "Alpha"
    second = imported_revision(admin_user, solution_id=solution_id, version="1.1.0")
    assert str(second.solution_id) == str(solution_id)  # a new revision of the same imported model
    with pytest.raises(Refused, match="has a version 1.1.0 here already"):  # another revision, the same version
        imported_revision(admin_user, solution_id=solution_id, version="1.1.0")


def test_a_peer_cannot_import_into_a_local_model_or_another_peers(admin_user):
    local = SolutionFactory(owner=admin_user)
    with pytest.raises(Refused, match="did not come from Alpha"):
        imported_revision(admin_user, solution_id=local.pk)
    theirs = imported_revision(admin_user, source="Beta")
    with pytest.raises(Refused, match="did not come from Alpha"):
        imported_revision(admin_user, solution_id=theirs.solution_id, source="Alpha")
    assert Solution.objects.get(pk=local.pk).revisions.count() == 0


def test_an_imported_model_is_read_only_here(admin_user):
    made = imported_revision(admin_user)
    with pytest.raises(marketplace_services.ImportedReadOnly):
        marketplace_services.update_details(admin_user, made.solution, description="mine now", tags=[],
                                            model_type=made.solution.model_type)
    with pytest.raises(marketplace_services.ImportedReadOnly):  # onboarding a new version under its name
        marketplace_services.revision_create(owner=admin_user, solution_id=uuid.uuid4(),
                                             solution_name=made.solution.name, toolkit="sklearn",
                                             revision_id=uuid.uuid4(), version="9.9.9", metadata={}, artifacts={})


def test_the_licence_travels_in_the_signed_manifest_and_is_read_from_there(copy):
    from federation import selectors

    _, revision = copy
    profile = {"$schema": "https://artifacts.acumos.org/schema/artifacts/license-profile/1.0.0/schema.json",
               "keyword": "Apache-2.0", "licenseName": "Apache License 2.0"}
    RevisionOrigin.objects.filter(revision=revision).update(manifest={"m": 1, "licence": profile})
    assert selectors.licence_of(revision) == profile
    assert selectors.licence_of(RevisionFactory()) is None  # onboarded here: its own license.json says
    Peer.objects.all().delete()  # the peer goes: what it sent keeps its terms and its origin
    assert selectors.licence_of(revision) == profile
    assert RevisionOrigin.objects.get(revision=revision).is_imported


def test_the_licence_the_manifest_states_must_be_the_licence_file_that_came(tmp_path):
    from marketplace import storage

    profile = {"keyword": "MIT", "licenseName": "MIT"}
    path = tmp_path / "license.json"
    path.write_text(json.dumps(profile))
    blob, _ = storage.store_file(path)
    sync.check_licence({"licence": profile}, blob)  # the same terms: accepted
    sync.check_licence({"licence": None}, None)
    with pytest.raises(sync.Refusal, match="not the license.json"):
        sync.check_licence({"licence": {**profile, "keyword": "Proprietary"}}, blob)
    with pytest.raises(sync.Refusal, match="no license.json came"):
        sync.check_licence({"licence": profile}, None)


# ---------------------------------------------------------------- who a signature proves

def _signed_by(issued, manifest: dict) -> dict:
    class Key:
        certificate = issued.certificate

        def private_key(self):
            return issued.key

    from federation import signing

    return signing.sign(manifest, Key())


def _manifest(origin_name: str) -> dict:
    return {"schema": manifests.SCHEMA, "origin": {"name": origin_name, "instance": str(uuid.uuid4())},
            "solution": {"id": str(uuid.uuid4())}, "revision": {"id": str(uuid.uuid4())}}


def test_a_peers_ca_proves_its_own_instance_only_not_an_origin_it_names(ca, admin_user):
    """B's CA can mint a certificate named C: that proves nothing about C; only C's registered CA does."""
    Peer.objects.create(name="B", subject="b.test", api_url="https://b.test", certificate=ca.pem)
    c_ca = ThrowawayCA("C's CA")
    Peer.objects.create(name="C", subject="c.test", api_url="https://c.test", certificate=c_ca.pem,
                        status=PeerStatus.INACTIVE)  # known to this site, not a partner: it still proves C
    for issued, status in ((ca.issue("c.test"), SignatureStatus.UNKNOWN_SIGNER),
                           (c_ca.issue("c.test"), SignatureStatus.VERIFIED)):
        manifest = _manifest("c.test")
        checked = manifests.check(manifest, _signed_by(issued, manifest), solution_id=manifest["solution"]["id"],
                                  revision_id=manifest["revision"]["id"])
        assert checked.status == status


def _status_of(issued, origin_name: str) -> str:
    manifest = _manifest(origin_name)
    return manifests.check(manifest, _signed_by(issued, manifest), solution_id=manifest["solution"]["id"],
                           revision_id=manifest["revision"]["id"]).status


def test_a_pinned_certificate_vouches_for_itself_not_for_what_its_key_signs(ca):
    from cryptography.hazmat.primitives.asymmetric import ec

    from .pki import Issued

    leaf = ca.issue("pinned.test")
    Peer.objects.create(name="P", subject="pinned.test", api_url="https://p.test", certificate=leaf.pem)
    key = ec.generate_private_key(ec.SECP256R1())
    minted = identity.issue(leaf.certificate, leaf.key, key.public_key(), "pinned.test", ["p.test"])
    assert _status_of(leaf, "pinned.test") == SignatureStatus.VERIFIED
    assert _status_of(Issued(minted, key), "pinned.test") == SignatureStatus.UNKNOWN_SIGNER


def test_a_peer_that_only_asked_to_join_vouches_for_no_one():
    asked = ThrowawayCA("Asked")
    Peer.objects.create(name="Q", subject="asked.test", api_url="https://q.test", certificate=asked.pem,
                        status=PeerStatus.REQUESTED, self_registered=True)
    assert _status_of(asked.issue("asked.test"), "asked.test") == SignatureStatus.UNKNOWN_SIGNER


def test_ids_and_versions_that_are_not_the_peers_own_import_are_refused_before_anything_is_fetched(copy):
    subscription, revision = copy
    local = SolutionFactory()
    about = {"solution": {"id": str(local.pk)}, "revision": {"version": "1.0.0"}}
    with pytest.raises(sync.Refusal, match="did not come from Alpha"):
        sync.check_importable(subscription, about)
    clash = {"solution": {"id": str(revision.solution_id)}, "revision": {"version": revision.version}}
    with pytest.raises(sync.Refusal, match=f"has a version {revision.version} here already"):
        sync.check_importable(subscription, clash)
    sync.check_importable(subscription, {"solution": {"id": str(revision.solution_id)},
                                         "revision": {"version": "99.0.0"}})  # a new version of its own import


def test_an_import_made_ready_tells_no_one_it_was_onboarded(admin_user):
    made = imported_revision(admin_user)
    marketplace_services.revision_mark_ready(made)
    assert not Notification.objects.filter(user=admin_user, kind="onboarding_succeeded").exists()


def test_the_peers_artifact_ids_are_kept_unless_one_is_taken_here():
    from tests.factories import RevisionFactory as Revisions

    theirs = {"MD": {"artifactId": str(uuid.uuid4())}, "MI": {"artifactId": str(uuid.uuid4())}}
    assert {k: str(v) for k, v in sync._peer_artifact_ids(theirs).items()} == {
        k: v["artifactId"] for k, v in theirs.items()}
    from marketplace.models import Artifact

    ours = Artifact.objects.create(revision=Revisions(), kind="MD", name="metadata.json")
    with pytest.raises(sync.Refusal, match="id an artifact here has"):
        sync._peer_artifact_ids({"MD": {"artifactId": str(ours.pk)}})
    with pytest.raises(sync.Refusal, match="without a usable id"):
        sync._peer_artifact_ids({"MD": {"artifactId": "../../etc"}})
