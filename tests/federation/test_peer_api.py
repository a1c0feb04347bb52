"""The peer API in-process, as the terminator forwards calls to it (its secret, the client certificate
escaped): who gets in (an active peer whose certificate is the registered one or issued by its CA,
current), what a peer sees (public catalogs and the restricted ones granted to it, nothing else),
signed manifests that verify, artifact bytes with Range, and the change feed with signed tombstones."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from django.test import Client

from federation import identity, manifests, signing
from federation.choices import PeerStatus, SignatureStatus
from federation.models import CatalogGrant, ChangeEvent, Peer
from marketplace import services as marketplace_services
from marketplace import storage
from marketplace.choices import ArtifactKind, CatalogAccess
from marketplace.models import Artifact
from tests.factories import CatalogFactory, RevisionFactory, published_revision

from .conftest import TERMINATOR_SECRET
from .pki import ThrowawayCA


@pytest.fixture
def peer_cert(ca):
    """The client certificate of the `peer` fixture (CN portal-b.test, issued by its registered CA)."""
    return ca.issue("portal-b.test")


def through_terminator(issued=None, *, secret: str = TERMINATOR_SECRET) -> Client:
    headers = {"X-Acumos-Terminator": secret, "X-Client-Verify": "SUCCESS" if issued else "NONE"}
    if issued is not None:
        headers["X-Client-Cert"] = issued.escaped
    return Client(headers=headers)


def error_of(response) -> str:
    body = response.json()
    assert body["content"] is None and body["message"]
    return body["error"]


@pytest.fixture
def public(db):
    return CatalogFactory(name="Open shelf", access=CatalogAccess.PUBLIC)


def with_files(revision, **contents: bytes):
    """Give a revision file artifacts (kind code -> bytes), stored as the pipeline stores them."""
    for kind, data in contents.items():
        with tempfile.NamedTemporaryFile(delete=False) as handle:
            handle.write(data)
        blob, _ = storage.store_file(Path(handle.name))
        Path(handle.name).unlink()
        Artifact.objects.create(revision=revision, kind=kind, name=kind, blob=blob)
    return revision


# ---------------------------------------------------------------- who gets in

@pytest.mark.django_db
def test_an_active_peer_with_its_certificate_is_answered(me, peer, peer_cert):
    response = through_terminator(peer_cert).get("/federation/ping")
    assert response.status_code == 200
    body = response.json()
    assert body["error"] is None
    assert body["content"]["name"] == "portal-a.test" and body["content"]["you"] == "Beta"
    assert body["content"]["fingerprint"] == me.fingerprint


@pytest.mark.django_db
@pytest.mark.parametrize("secret", ["", "not-the-secret"])
def test_calls_that_did_not_come_through_the_terminator_are_refused(me, peer, peer_cert, secret):
    response = through_terminator(peer_cert, secret=secret).get("/federation/ping")
    assert response.status_code == 403 and error_of(response) == "not_through_terminator"


@pytest.mark.django_db
def test_no_client_certificate_is_refused(me, peer):
    response = through_terminator(None).get("/federation/ping")
    assert response.status_code == 403 and error_of(response) == "no_client_certificate"


@pytest.mark.django_db
def test_an_unknown_subject_is_refused(me, peer, ca):
    response = through_terminator(ca.issue("stranger.test")).get("/federation/catalogs")
    assert response.status_code == 403 and error_of(response) == "unknown_peer"


@pytest.mark.django_db
def test_an_expired_certificate_is_refused(me, peer, ca):
    response = through_terminator(ca.issue("portal-b.test", expired=True)).get("/federation/catalogs")
    assert response.status_code == 403 and error_of(response) == "certificate_not_current"


@pytest.mark.django_db
def test_the_peers_name_on_a_certificate_from_another_ca_is_refused(me, peer):
    impostor = ThrowawayCA("Someone else's CA").issue("portal-b.test")
    response = through_terminator(impostor).get("/federation/catalogs")
    assert response.status_code == 403 and error_of(response) == "certificate_mismatch"


@pytest.mark.django_db
def test_a_pinned_certificate_is_accepted_and_no_other(me, ca):
    pinned = ca.issue("portal-c.test")
    Peer.objects.create(name="C", subject="portal-c.test", api_url="https://127.0.0.1:9", certificate=pinned.pem)
    assert through_terminator(pinned).get("/federation/ping").status_code == 200
    same_ca_other_key = ca.issue("portal-c.test")
    response = through_terminator(same_ca_other_key).get("/federation/ping")
    assert response.status_code == 403 and error_of(response) == "certificate_mismatch"


@pytest.mark.django_db
@pytest.mark.parametrize("status", [PeerStatus.INACTIVE, PeerStatus.REQUESTED, PeerStatus.DECLINED])
def test_a_peer_that_is_not_active_is_refused(me, peer, peer_cert, status):
    Peer.objects.filter(pk=peer.pk).update(status=status)
    response = through_terminator(peer_cert).get("/federation/catalogs")
    assert response.status_code == 403 and error_of(response) == "peer_not_active"


@pytest.mark.django_db
def test_without_an_identity_the_api_says_so(settings, tmp_path, peer, peer_cert):
    settings.ACUMOS_FEDERATION_DIR = tmp_path / "none"
    settings.ACUMOS_FEDERATION_TERMINATOR_SECRET = TERMINATOR_SECRET
    identity.forget()
    response = through_terminator(peer_cert).get("/federation/ping")
    assert response.status_code == 503 and error_of(response) == "no_identity"


@pytest.mark.django_db
def test_only_get_is_served(me, peer, peer_cert):
    assert through_terminator(peer_cert).post("/federation/catalogs").status_code == 405


# ---------------------------------------------------------------- what a peer sees

@pytest.mark.django_db
def test_a_peer_sees_public_catalogs_and_granted_restricted_ones_only(me, peer, peer_cert, public, restricted):
    client = through_terminator(peer_cert)
    names = [c["name"] for c in client.get("/federation/catalogs").json()["content"]]
    assert "Open shelf" in names and "Partners" not in names
    CatalogGrant.objects.create(peer=peer, catalog=restricted)
    names = [c["name"] for c in client.get("/federation/catalogs").json()["content"]]
    assert "Partners" in names


@pytest.mark.django_db
def test_a_restricted_catalogs_models_are_invisible_until_granted(me, peer, peer_cert, restricted):
    revision = with_files(published_revision(restricted), MD=b"{}")
    artifact = revision.artifacts.get()
    client = through_terminator(peer_cert)
    paths = [f"/federation/solutions?catalogId={restricted.pk}",
             f"/federation/solutions/{revision.solution_id}",
             f"/federation/solutions/{revision.solution_id}/revisions/{revision.pk}",
             f"/federation/solutions/{revision.solution_id}/revisions/{revision.pk}/artifacts",
             f"/federation/artifacts/{artifact.pk}/content",
             f"/federation/changes?catalogId={restricted.pk}"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert error_of(response) == "not_found"
    CatalogGrant.objects.create(peer=peer, catalog=restricted)
    for path in paths:
        assert client.get(path).status_code == 200, path


@pytest.mark.django_db
def test_unpublished_deleted_and_other_peers_grants_stay_invisible(me, peer, peer_cert, ca, public, restricted):
    private = RevisionFactory()
    deleted = published_revision(public)
    marketplace_services.soft_delete(deleted.solution.owner, deleted.solution)
    other = Peer.objects.create(name="D", subject="portal-d.test", api_url="https://127.0.0.1:9", certificate=ca.pem)
    CatalogGrant.objects.create(peer=other, catalog=restricted)
    granted_to_other = published_revision(restricted)
    client = through_terminator(peer_cert)
    for revision in (private, deleted, granted_to_other):
        path = f"/federation/solutions/{revision.solution_id}/revisions/{revision.pk}"
        assert client.get(path).status_code == 404
    listed = client.get(f"/federation/solutions?catalogId={public.pk}").json()["content"]
    assert str(deleted.solution_id) not in {s["solutionId"] for s in listed}


# ---------------------------------------------------------------- signed manifests and bytes

@pytest.mark.django_db
def test_a_revision_comes_with_a_manifest_its_origin_signed(me, peer, peer_cert, public):
    metadata, model = b'{"name": "iris"}', b"model bytes " * 1000
    revision = with_files(published_revision(public), MD=metadata, MI=model)
    body = through_terminator(peer_cert).get(
        f"/federation/solutions/{revision.solution_id}/revisions/{revision.pk}").json()["content"]
    manifest, signature = body["manifest"], body["signature"]
    assert manifest["origin"] == {"name": "portal-a.test", "instance": str(me.instance_id)}
    files = {entry["kind"]: entry for entry in manifest["artifacts"]}
    assert files[ArtifactKind.MODEL]["sha256"] == hashlib.sha256(model).hexdigest()
    assert files[ArtifactKind.MODEL]["size"] == len(model)
    signer = signing.verify(manifest, signature, me.anchors)
    assert signer.name == "portal-a.test" and signer.trusted
    checked = manifests.check(manifest, signature, solution_id=str(revision.solution_id),
                              revision_id=str(revision.pk))
    assert checked.status == SignatureStatus.VERIFIED  # this instance's own CA is an anchor


@pytest.mark.django_db
def test_a_tampered_manifest_or_another_signer_is_refused(me, peer, peer_cert, public, ca):
    revision = with_files(published_revision(public), MD=b"{}")
    body = through_terminator(peer_cert).get(
        f"/federation/solutions/{revision.solution_id}/revisions/{revision.pk}").json()["content"]
    ids = {"solution_id": str(revision.solution_id), "revision_id": str(revision.pk)}
    tampered = json.loads(json.dumps(body["manifest"]))
    tampered["artifacts"][0]["sha256"] = "0" * 64
    with pytest.raises(manifests.ManifestRefused, match="does not match"):
        manifests.check(tampered, body["signature"], **ids)

    class Impostor:  # a key of its own claiming to be portal-a.test's origin
        issued = ca.issue("portal-x.test")
        certificate = issued.certificate

        def private_key(self):
            return self.issued.key

    forged = signing.sign(body["manifest"], Impostor())
    with pytest.raises(manifests.ManifestRefused, match="names 'portal-a.test' as its origin"):
        manifests.check(body["manifest"], forged, **ids)
    with pytest.raises(manifests.ManifestRefused, match="another revision"):
        manifests.check(body["manifest"], body["signature"], solution_id=ids["solution_id"],
                        revision_id=str(RevisionFactory().pk))


@pytest.mark.django_db
def test_artifact_content_is_streamed_with_range(me, peer, peer_cert, public):
    data = bytes(range(256)) * 40
    revision = with_files(published_revision(public), MI=data)
    path = f"/federation/artifacts/{revision.artifacts.get().pk}/content"
    client = through_terminator(peer_cert)
    whole = client.get(path)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == data
    assert whole["Accept-Ranges"] == "bytes"
    part = client.get(path, headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert b"".join(part.streaming_content) == data[1000:]
    middle = client.get(path, headers={"Range": "bytes=10-19"})
    assert b"".join(middle.streaming_content) == data[10:20]
    beyond = client.get(path, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{len(data)}"


# ---------------------------------------------------------------- the change feed

@pytest.mark.django_db
def test_the_feed_lists_changes_after_the_cursor_with_signed_tombstones(me, peer, peer_cert, public):
    client = through_terminator(peer_cert)
    first = published_revision(public)
    page = client.get(f"/federation/changes?catalogId={public.pk}").json()["content"]
    assert [(c["kind"], c["revisionId"]) for c in page["changes"]] == [("published", str(first.pk))]
    assert (page["changes"][0]["name"], page["changes"][0]["version"]) == (first.solution.name, first.version)
    cursor = page["cursor"]
    assert client.get(f"/federation/changes?catalogId={public.pk}&since={cursor}").json()["content"]["changes"] == []

    second = published_revision(public)
    marketplace_services.unpublish(first.solution.owner, first.publications.get())
    page = client.get(f"/federation/changes?catalogId={public.pk}&since={cursor}").json()["content"]
    assert [(c["kind"], c["revisionId"]) for c in page["changes"]] == [
        ("published", str(second.pk)), ("withdrawn", str(first.pk))]
    tombstone = page["changes"][1]["tombstone"]
    me_as_peer = Peer(name="A", subject="portal-a.test", certificate=me.public_pem())
    document = manifests.check_tombstone(tombstone, peer=me_as_peer, revision_id=str(first.pk))
    assert document["catalogId"] == str(public.pk)
    with pytest.raises(manifests.ManifestRefused):
        manifests.check_tombstone(tombstone, peer=me_as_peer, revision_id=str(second.pk))
    stranger = Peer(name="X", subject="x", certificate=ThrowawayCA("x").pem)
    with pytest.raises(manifests.ManifestRefused):
        manifests.check_tombstone(tombstone, peer=stranger, revision_id=str(first.pk))


@pytest.mark.django_db
def test_deleting_and_restoring_a_model_is_in_the_feed(me, public):
    revision = published_revision(public)
    owner = revision.solution.owner
    marketplace_services.soft_delete(owner, revision.solution)
    marketplace_services.restore(owner, revision.solution)
    kinds = list(ChangeEvent.objects.filter(revision_id=revision.pk).values_list("kind", flat=True))
    assert kinds == ["published", "withdrawn", "published"]


@pytest.mark.django_db
def test_the_feed_pages_with_more_and_refuses_bad_numbers(me, peer, peer_cert, public):
    for _ in range(3):
        published_revision(public)
    client = through_terminator(peer_cert)
    page = client.get(f"/federation/changes?catalogId={public.pk}&limit=2").json()["content"]
    assert len(page["changes"]) == 2 and page["more"] is True
    rest = client.get(f"/federation/changes?catalogId={public.pk}&since={page['cursor']}&limit=2").json()["content"]
    assert len(rest["changes"]) == 1 and rest["more"] is False
    bad = client.get(f"/federation/changes?catalogId={public.pk}&since=x")
    assert bad.status_code == 400 and error_of(bad) == "invalid"


# ---------------------------------------------------------------- asking to become a peer

@pytest.mark.django_db
def test_self_registration_is_closed_unless_the_site_opens_it(me, settings, ca):
    stranger = ca.issue("portal-new.test")
    client = through_terminator(stranger)
    closed = client.post("/federation/peer/register", data="{}", content_type="application/json")
    assert closed.status_code == 403 and error_of(closed) == "registration_closed"
    settings.ACUMOS_FEDERATION_REGISTRATION = True
    body = {"apiUrl": "https://127.0.0.1:9443", "contact": "ops@new.test"}
    opened = client.post("/federation/peer/register", data=json.dumps(body), content_type="application/json")
    assert opened.status_code == 202 and opened.json()["content"] == {"status": "received"}
    requested = Peer.objects.get(subject="portal-new.test")
    assert requested.self_registered and requested.status == PeerStatus.REQUESTED
    waiting = client.get("/federation/catalogs")
    assert waiting.status_code == 403 and error_of(waiting) == "peer_not_active"


# ---------------------------------------------------------------- the matrix, with the persona "peer"

def peer_api_paths(revision, artifact, catalog) -> list[str]:
    solution = revision.solution_id
    return ["/federation/ping", "/federation/catalogs", f"/federation/changes?catalogId={catalog.pk}",
            f"/federation/solutions?catalogId={catalog.pk}", f"/federation/solutions/{solution}",
            f"/federation/solutions/{solution}/revisions",
            f"/federation/solutions/{solution}/revisions/{revision.pk}",
            f"/federation/solutions/{solution}/revisions/{revision.pk}/artifacts",
            f"/federation/artifacts/{artifact.pk}/content"]


# What each caller gets from a restricted catalog's model: the granted peer everything; a peer it is not
# granted to only its own ping, the catalog list (without it) and a model list that is empty or 404; callers
# that are not active peers nothing at all. (The solution's revisions list answers 200 with an empty list.)
EXPECTED = {
    "granted peer": [200] * 9,
    "peer not granted": [200, 200, 404, 404, 404, 200, 404, 404, 404],
    "inactive peer": [403] * 9,
    "unknown certificate": [403] * 9,
    "signed-in admin, not through the terminator": [403] * 9,
}


@pytest.mark.django_db
@pytest.mark.parametrize("caller", list(EXPECTED))
def test_peer_api_permission_matrix(me, ca, restricted, admin_user, caller):
    revision = with_files(published_revision(restricted), MD=b"{}")
    artifact = revision.artifacts.get()
    granted_cert, other_cert, inactive_cert = ca.issue("granted.test"), ca.issue("other.test"), ca.issue("off.test")
    for name, status in (("granted.test", PeerStatus.ACTIVE), ("other.test", PeerStatus.ACTIVE),
                         ("off.test", PeerStatus.INACTIVE)):
        made = Peer.objects.create(name=name, subject=name, api_url="https://127.0.0.1:9", certificate=ca.pem,
                                   status=status)
        if name != "other.test":
            CatalogGrant.objects.create(peer=made, catalog=restricted)
    clients = {"granted peer": through_terminator(granted_cert), "peer not granted": through_terminator(other_cert),
               "inactive peer": through_terminator(inactive_cert),
               "unknown certificate": through_terminator(ca.issue("nobody.test"))}
    if caller not in clients:
        clients[caller] = Client()
        clients[caller].force_login(admin_user)
    got = [clients[caller].get(path).status_code for path in peer_api_paths(revision, artifact, restricted)]
    assert got == EXPECTED[caller]


@pytest.mark.django_db
def test_a_peer_has_no_way_into_the_portals_own_api_or_pages(me, peer, peer_cert):
    """Its certificate is no account here: to the rest of the portal a peer is anonymous."""
    client = through_terminator(peer_cert)
    assert client.get("/api/v1/deployments").status_code == 401
    assert client.get("/api/v1/federation/peers").status_code in (401, 404)
    page = client.get("/site/federation/")
    assert page.status_code in (302, 404) and "PRIVATE KEY" not in page.content.decode()


# ---------------------------------------------------------------- what an attacker's probe found

@pytest.mark.django_db
@pytest.mark.parametrize("cn", ["", "nul\x00inside", "new\nline"])
def test_a_certificate_whose_cn_cannot_name_a_peer_is_refused_with_a_sentence(me, ca, cn):
    response = through_terminator(ca.issue(cn or "placeholder", hosts=["h.test"]) if cn else _no_cn(ca)).get(
        "/federation/ping")
    assert response.status_code == 403 and error_of(response) == "bad_client_certificate"


def _no_cn(ca):
    """A certificate from the CA whose subject has no common name at all."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from .pki import Issued

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "No name")]))
                   .issuer_name(ca.certificate.subject).public_key(key.public_key()).serial_number(7)
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(ca.key, hashes.SHA256()))
    return Issued(certificate, key)


@pytest.mark.django_db
def test_a_range_too_long_to_be_a_number_is_ignored_not_a_500(me, peer, peer_cert, public):
    revision = with_files(published_revision(public), MI=b"0123456789")
    path = f"/federation/artifacts/{revision.artifacts.get().pk}/content"
    response = through_terminator(peer_cert).get(path, headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"0123456789"


@pytest.mark.django_db
def test_the_image_build_log_never_travels(me, peer, peer_cert, public):
    revision = with_files(published_revision(public), BL=b"build secrets")
    response = through_terminator(peer_cert).get(f"/federation/artifacts/{revision.artifacts.get().pk}/content")
    assert response.status_code == 404
