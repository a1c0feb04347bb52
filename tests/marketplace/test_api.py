"""/api/v1/solutions, /revisions, /artifacts: what is visible (only through marketplace.selectors),
streamed downloads with checksums, the bundle zip, the error shape, and the OpenAPI schema and docs."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from django.core.management import call_command

from marketplace import services, storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact

from ..factories import RevisionFactory, SolutionFactory

PART_KINDS = {"model": ArtifactKind.MODEL, "metadata": ArtifactKind.METADATA, "schema": ArtifactKind.PROTO}


@pytest.fixture
def revision(owner, bundle_parts):
    """A ready revision of the owner's with the example bundle's files stored as artifacts."""
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    for part, path in bundle_parts.items():
        blob, _ = storage.store_file(path)
        Artifact.objects.create(revision=revision, kind=PART_KINDS[part], name=path.name, blob=blob)
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name="image",
                            uri="registry.local/iris:1.0.0")
    return revision


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def assert_error(response, status: int, code: str, needle: str = "") -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body.keys() == {"error"} and body["error"].keys() == {"code", "message", "details"}
    assert body["error"]["code"] == code and needle in body["error"]["message"]
    return body["error"]


def streamed(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


# ---------------------------------------------------------------- solutions and revisions

@pytest.mark.django_db
def test_it_lists_the_solutions_a_user_may_see(owner, other_user, admin_user, client_for, revision):
    theirs = SolutionFactory(owner=other_user, name="Theirs")
    mine = results(client_for(owner).get("/api/v1/solutions"))
    assert [s["id"] for s in mine] == [str(revision.solution_id)]
    assert mine[0]["owner"] == "owner" and mine[0]["revision_count"] == 1
    assert mine[0]["revisions"] == f"/api/v1/revisions?solution={revision.solution_id}"
    assert [s["name"] for s in results(client_for(other_user).get("/api/v1/solutions"))] == ["Theirs"]
    assert {s["id"] for s in results(client_for(admin_user).get("/api/v1/solutions"))} == {
        str(revision.solution_id), str(theirs.id)}
    assert [s["name"] for s in results(client_for(admin_user).get("/api/v1/solutions?owner=other"))] == ["Theirs"]


@pytest.mark.django_db
def test_it_answers_a_solution_or_404_for_what_is_not_visible(owner, other_user, client_for, revision):
    url = f"/api/v1/solutions/{revision.solution_id}"
    assert client_for(owner).get(url).json()["name"] == "Iris"
    assert client_for(owner).get(url + "/").status_code == 200
    assert_error(client_for(other_user).get(url), 404, "not_found", "no such solution")
    assert_error(client_for(owner).get("/api/v1/solutions/00000000-0000-0000-0000-000000000000"), 404, "not_found")
    assert_error(client_for(owner).get("/api/v1/solutions/not-a-uuid"), 404, "not_found")


@pytest.mark.django_db
def test_it_lists_revisions_by_solution(owner, client_for, revision):
    other = RevisionFactory(solution=SolutionFactory(owner=owner, name="Other"))
    everything = results(client_for(owner).get("/api/v1/revisions"))
    assert {r["id"] for r in everything} == {str(revision.id), str(other.id)}
    filtered = results(client_for(owner).get(f"/api/v1/revisions?solution={revision.solution_id}"))
    assert [r["id"] for r in filtered] == [str(revision.id)]
    assert filtered[0]["artifacts"] == f"/api/v1/revisions/{revision.id}/artifacts"
    assert filtered[0]["bundle"] == f"/api/v1/revisions/{revision.id}/bundle"
    assert_error(client_for(owner).get("/api/v1/revisions?solution=nope"), 400, "invalid")


@pytest.mark.django_db
def test_it_answers_a_revision_with_its_metadata(owner, other_user, client_for, revision):
    detail = client_for(owner).get(f"/api/v1/revisions/{revision.id}").json()
    assert detail["version"] == "1.0.0" and detail["status"] == "ready" and detail["solution_name"] == "Iris"
    assert "metadata" in detail
    assert_error(client_for(other_user).get(f"/api/v1/revisions/{revision.id}"), 404, "not_found")


# ---------------------------------------------------------------- artifacts and downloads

@pytest.mark.django_db
def test_it_lists_the_artifacts_of_a_revision(owner, client_for, revision):
    listed = results(client_for(owner).get(f"/api/v1/revisions/{revision.id}/artifacts"))
    assert {a["kind"] for a in listed} == {"MI", "MD", "PB", "DI"}
    model = next(a for a in listed if a["kind"] == "MI")
    assert model["file_name"] == "modelpackage.zip" and model["size"] > 0 and len(model["sha256"]) == 64
    assert model["download"] == f"/api/v1/artifacts/{model['id']}/download"
    assert next(a for a in listed if a["kind"] == "DI")["download"] is None
    same = results(client_for(owner).get(f"/api/v1/artifacts?revision={revision.id}"))
    assert {a["id"] for a in same} == {a["id"] for a in listed}
    assert [a["kind"] for a in results(client_for(owner).get(f"/api/v1/artifacts?revision={revision.id}&kind=PB"))] \
        == ["PB"]


@pytest.mark.django_db
def test_it_streams_an_artifact_with_its_checksum(owner, client_for, revision, bundle_parts):
    artifact = revision.artifacts.get(kind=ArtifactKind.MODEL)
    response = client_for(owner).get(f"/api/v1/artifacts/{artifact.id}/download",
                                     headers={"Accept": "application/octet-stream"})
    assert response.status_code == 200
    data = streamed(response)
    assert data == bundle_parts["model"].read_bytes()
    assert response["X-Checksum-Sha256"] == hashlib.sha256(data).hexdigest() == artifact.sha256
    assert response["Content-Length"] == str(len(data))
    assert 'filename="modelpackage.zip"' in response["Content-Disposition"]


@pytest.mark.django_db
def test_it_has_no_file_to_download_for_a_reference(owner, client_for, revision):
    image = revision.artifacts.get(kind=ArtifactKind.IMAGE)
    assert client_for(owner).get(f"/api/v1/artifacts/{image.id}").json()["uri"] == "registry.local/iris:1.0.0"
    assert_error(client_for(owner).get(f"/api/v1/artifacts/{image.id}/download"), 404, "not_found", "reference")


@pytest.mark.django_db
def test_it_zips_the_bundle_of_a_revision(owner, client_for, revision, bundle_parts):
    response = client_for(owner).get(f"/api/v1/revisions/{revision.id}/bundle", headers={"Accept": "*/*"})
    assert response.status_code == 200
    assert 'filename="Iris-1.0.0.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(streamed(response))) as archive:
        assert sorted(archive.namelist()) == ["metadata.json", "model.proto", "modelpackage.zip"]
        assert archive.read("model.proto") == bundle_parts["schema"].read_bytes()


@pytest.mark.django_db
def test_it_hides_the_downloads_of_revisions_you_may_not_see(other_user, client_for, revision):
    artifact = revision.artifacts.get(kind=ArtifactKind.MODEL)
    assert_error(client_for(other_user).get(f"/api/v1/artifacts/{artifact.id}/download"), 404, "not_found")
    assert_error(client_for(other_user).get(f"/api/v1/revisions/{revision.id}/bundle"), 404, "not_found")
    assert_error(client_for(other_user).get(f"/api/v1/revisions/{revision.id}/artifacts"), 404, "not_found")
    assert results(client_for(other_user).get(f"/api/v1/artifacts?revision={revision.id}")) == []


# ---------------------------------------------------------------- the API as a whole

@pytest.mark.django_db
def test_it_wants_credentials_where_a_user_is_needed(client_for, revision):
    assert_error(client_for(None).get("/api/v1/onboarding/jobs"), 401, "not_authenticated")
    assert_error(client_for(None).get("/api/v1/notifications"), 401, "not_authenticated")
    response = client_for(None).get("/api/v1/solutions", headers={"Authorization": "Bearer acu_wrong"})
    assert_error(response, 401, "authentication_failed", "wrong, expired or revoked")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_anonymous_callers_read_what_is_public_and_nothing_else(client_for, catalogs, revision):
    """A private revision does not exist for them; published in the public catalog, it is readable."""
    artifact = revision.artifacts.get(kind=ArtifactKind.MODEL)
    urls = (f"/api/v1/solutions/{revision.solution_id}", f"/api/v1/revisions/{revision.id}",
            f"/api/v1/revisions/{revision.id}/artifacts", f"/api/v1/artifacts/{artifact.id}",
            f"/api/v1/artifacts/{artifact.id}/download", f"/api/v1/revisions/{revision.id}/bundle")
    anonymous = client_for(None)
    for url in urls:
        assert_error(anonymous.get(url), 404, "not_found")
    for url in ("/api/v1/solutions", "/api/v1/revisions", "/api/v1/artifacts"):
        assert results(anonymous.get(url)) == []
    services.publish_directly(revision, catalogs["public"])
    for url in urls:
        assert anonymous.get(url).status_code == 200, url
    assert [s["name"] for s in results(anonymous.get("/api/v1/solutions"))] == ["Iris"]


@pytest.mark.django_db
def test_it_answers_json_for_an_unknown_endpoint(owner, client_for):
    assert_error(client_for(owner).get("/api/v1/no-such-thing"), 404, "not_found", "/api/v1/no-such-thing")


@pytest.mark.django_db
def test_it_paginates(owner, client_for):
    for i in range(3):
        SolutionFactory(owner=owner, name=f"Model {i}")
    page = client_for(owner).get("/api/v1/solutions?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]


@pytest.mark.django_db
def test_it_serves_the_openapi_schema_and_docs_without_a_cdn(client_for):
    schema = client_for(None).get("/api/v1/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/v1/solutions", "/api/v1/revisions/{id}/bundle", "/api/v1/artifacts/{id}/download",
                 "/api/v1/solutions/{id}/ratings", "/api/v1/solutions/{id}/shares/{user_id}", "/api/v1/catalogs",
                 "/api/v1/publications", "/api/v1/publish-requests/{id}/approve", "/api/v1/notifications/read",
                 "/api/v1/onboarding/jobs", "/api/v1/onboarding/jobs/{id}", "/api/v1/tokens/{id}/rotate",
                 "/onboarding-app/v2/models", "/onboarding-app/v2/auth"):
        assert path in paths, sorted(paths)
    docs = client_for(None).get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    # Swagger's start-up script is served by the view itself (no inline script: the CSP), naming the schema.
    script = client_for(None).get("/api/v1/docs/?script=").content.decode()
    assert "/api/v1/schema/" in script
    for served in (html, script):
        assert "cdn" not in served.lower() and "https://" not in served


def test_the_openapi_schema_is_valid_and_generated_without_warnings(tmp_path):
    """Every view, serializer and parameter resolves: drf-spectacular's warnings fail this test."""
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/api/v1/publish-requests/{id}/decline" in target.read_text()
